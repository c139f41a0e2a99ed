"""The figures of Section 4: Figure 4, one per theorem, and Section 3 in the model, each written as PNG, PDF and JSON.

Each figure's JSON holds the numbers it draws (:mod:`.data`), the seed, the library versions
and the seconds it took, so a figure can be checked or redrawn without recomputing it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .._checks import GaussfeatError
from ..provenance import versions
from . import data


@dataclass(frozen=True)
class FigureSpec:
    """A figure: what it shows, the data it needs (names in :data:`DATA`), and its function in
    :mod:`.draw` (named, so that listing the figures does not import matplotlib)."""

    description: str
    sources: tuple[str, ...]
    drawer: str


DATA: dict[str, Callable[..., dict]] = {
    "blending": data.blending,
    "misalignment": data.misalignment,
    "robust_spectrum": data.robust_spectrum,
    "relaxation_gap": data.relaxation_gap,
    "relabelled": data.relabelled,
}

FIGURES: dict[str, FigureSpec] = {
    "figure4_blending": FigureSpec(
        "the paper's Figure 4: as eps grows, mu stays, Sigma blends with I, the gradient turns toward mu*",
        ("blending",), "blending"),
    "theorem1_misalignment": FigureSpec(
        "Theorem 1: the adversary's gain against cond(Sigma*) at fixed trace, smallest at isotropy",
        ("misalignment",), "misalignment"),
    "theorem2_robust_covariance": FigureSpec(
        "Theorem 2: eigenvalues and condition number of Sigma_r against eps, and the relaxation gap against d",
        ("robust_spectrum", "relaxation_gap"), "robust_covariance"),
    "theorem3_alignment": FigureSpec(
        "Theorem 3: worst-case, typical and instance gradient alignment against eps",
        ("robust_spectrum",), "alignment"),
    "section3_relabelled": FigureSpec(
        "Section 3 in the model: D_rand's and D_det's accuracy against eps and eps/eps*, closed form and sampled",
        ("relabelled",), "relabelled"),
}


def make_figures(out: str | Path = "figures", names: Iterable[str] | None = None, *, seed: int = 0,
                 report: Callable[[str], None] = lambda line: None) -> dict[str, list[Path]]:
    """Compute and write the named figures (default: all) into ``out``; return the files per figure.

    Writes ``NAME.png``, ``NAME.pdf`` and ``NAME.json`` for each; the data shared by two figures is
    computed once. ``report`` receives one line per finished figure.
    """
    from . import draw  # matplotlib

    names = list(FIGURES) if names is None else list(names)
    unknown = [name for name in names if name not in FIGURES]
    if unknown or not names:
        raise GaussfeatError(f"figure names must be among {sorted(FIGURES)}, got {names}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise GaussfeatError(f"seed must be a nonnegative integer, got {seed!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    computed: dict[str, tuple[dict, float]] = {}
    written = {}
    for name in names:
        spec = FIGURES[name]
        started = time.perf_counter()
        for source in spec.sources:
            if source not in computed:
                begun = time.perf_counter()
                computed[source] = (DATA[source](seed=seed), time.perf_counter() - begun)
        figure = getattr(draw, spec.drawer)(*(computed[source][0] for source in spec.sources))
        paths = [out / f"{name}.{suffix}" for suffix in ("png", "pdf", "json")]
        figure.savefig(paths[0], dpi=150)
        figure.savefig(paths[1], metadata={"CreationDate": None})
        record = {"figure": name, "description": spec.description, "seed": seed, "versions": _versions(),
                  "seconds_to_compute": {source: round(computed[source][1], 2) for source in spec.sources},
                  "data": {source: computed[source][0] for source in spec.sources}}
        paths[2].write_text(json.dumps(record, indent=1) + "\n")
        written[name] = paths
        report(f"{name}: {time.perf_counter() - started:.1f} s -> {', '.join(str(p) for p in paths)}")
    return written


def _versions() -> dict[str, str]:
    import matplotlib

    return {**versions(), "matplotlib": matplotlib.__version__}


__all__ = ["DATA", "FIGURES", "FigureSpec", "make_figures"]
