"""Command line: ``gaussfeat check`` (the theorem battery), ``gaussfeat figures``, ``gaussfeat prove`` and
``gaussfeat beyond`` (Theorems 2 and 3 beyond two Gaussians, measured).

``gaussfeat prove`` runs :mod:`proofs` and stays here: proofs is the floor below gaussfeat (it imports
only sympy, never gaussfeat), so this import points down the layers; it is made inside the subcommand so
that gaussfeat runs without sympy.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from . import __version__
from ._checks import GaussfeatError
from .beyond import BeyondConfig, run_beyond, write_beyond
from .figures import FIGURES, make_figures
from .instances import figure4, random_instance
from .theorems import TheoremReport, check_all


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _seed(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gaussfeat",
        description="Check, derive and draw Theorems 1-3 of 'Adversarial Examples Are Not Bugs, They Are Features' "
        "(Ilyas et al., 2019, Section 4) on two-Gaussian instances.",
    )
    parser.add_argument("--version", action="version", version=f"gaussfeat {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser(
        "check",
        help="run the theorem battery; exit 1 if any check fails",
        description="Run every check of Theorems 1-3, and of D_rand and D_det in the model (Section 3 in the model), "
        "on two instances: the 2-D Figure 4 instance "
        "(mu = (1, 0.2), Sigma = diag(1, 0.01)) and a random one of dimension --dim (eigenvalues "
        "log-uniform over a factor 100, mean 1, random basis, |mu| = 1). Prints a table, or JSON "
        "with --json. Exit status 0 if every check passes, 1 otherwise.",
    )
    check.add_argument("--dim", type=_positive_int, default=32, help="dimension of the random instance (default 32)")
    check.add_argument("--eps", type=_positive_float, default=0.5, help="l2 radius of the robust adversary (default 0.5)")
    check.add_argument("--seed", type=_seed, default=0, help="seed for the random instance and Monte Carlo (default 0)")
    check.add_argument("--samples", type=_positive_int, default=100_000, help="Monte Carlo samples per check (default 100000)")
    check.add_argument("--json", nargs="?", const="-", metavar="PATH", help="write the reports as JSON to PATH ('-' or no PATH: stdout)")
    figures = commands.add_parser(
        "figures",
        help="draw Figure 4 and one figure per theorem (PNG, PDF and JSON data)",
        description="Compute and draw the Section 4 figures:\n\n"
        + "\n".join(f"  {name}: {spec.description}" for name, spec in FIGURES.items())
        + "\n\nEach is written as NAME.png, NAME.pdf and NAME.json (the numbers drawn, seed, versions, seconds).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    figures.add_argument("--out", default="figures", metavar="DIR", help="output folder, created if missing (default: figures)")
    figures.add_argument("--only", nargs="+", metavar="NAME", choices=list(FIGURES),
                         help="draw only these figures (default: all)")
    figures.add_argument("--seed", type=_seed, default=0, help="seed for samples and random instances (default 0)")
    prove = commands.add_parser(
        "prove",
        help="run the symbolic derivations of Theorems 1-3 and Section 3 in the model (same as python -m proofs)",
        description="Run every step of the sympy derivations of Theorems 1-3 and of D_rand and D_det in the model, "
        "print them, and write "
        "them in LaTeX to proofs/PROOFS.md (or --out). Exit status 1 if any step fails.",
    )
    prove.add_argument("--out", metavar="PATH", help="where to write the Markdown derivation (default: proofs/PROOFS.md)")
    prove.add_argument("--quiet", action="store_true", help="print only failures and the summary")
    defaults = BeyondConfig()
    beyond = commands.add_parser(
        "beyond",
        help="measure Theorems 2 and 3 beyond two Gaussians (k-class mixture, Student-t, Laplace)",
        description="Fit the robust MLE (exact l2 adversary, and the Lagrangian relaxation where it differs) at each "
        "radius --eps for: a k-class Gaussian mixture with shared covariance (dimension --dim, and --low-dim), the "
        "Gaussian learner on Student-t data, and a two-class product-Laplace model (random means, and means "
        "aligned with the LLR gradient at eps = 0). Records the spread (cond(Sigma) or max b / min b: should fall) and "
        "the gradient alignment with the mean (should rise), and whether each trend held at every step. Writes "
        "DIR/beyond.json (every number, settings, seeds, versions, seconds) and DIR/beyond.md (the table), and prints "
        "the table (or the JSON with --json). Exit status 0, or 2 on bad input.",
    )
    beyond.add_argument("--dim", type=_positive_int, default=defaults.dim, help=f"dimension of the models (default {defaults.dim})")
    beyond.add_argument("--low-dim", type=_seed, default=defaults.low_dim,
                        help=f"dimension of a second mixture, where the exact adversary has kinks; 0: none (default {defaults.low_dim})")
    beyond.add_argument("--classes", type=_positive_int, default=defaults.classes, help=f"classes of the mixture (default {defaults.classes})")
    beyond.add_argument("--samples", type=_positive_int, default=defaults.samples, help=f"training points per model (default {defaults.samples})")
    beyond.add_argument("--eps", type=float, nargs="+", default=list(defaults.eps), metavar="EPS",
                        help="l2 radii, ascending; 0 is the standard MLE (default: %(default)s)")
    beyond.add_argument("--condition", type=_positive_float, default=defaults.condition,
                        help=f"cond(Sigma*); the Laplace scales spread by its square root (default {defaults.condition:g})")
    beyond.add_argument("--dof", type=_positive_float, default=defaults.dof, help=f"Student-t degrees of freedom, > 2 (default {defaults.dof:g})")
    beyond.add_argument("--seed", type=_seed, default=defaults.seed, help=f"seed of instances and samples (default {defaults.seed})")
    beyond.add_argument("--out", default="results/beyond-two-gaussians", metavar="DIR",
                        help="output folder, created if missing (default: results/beyond-two-gaussians)")
    beyond.add_argument("--json", action="store_true", help="print the JSON record instead of the table")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "figures":
        return _figures(args)
    if args.command == "prove":
        return _prove(args)
    if args.command == "beyond":
        return _beyond(args)
    return _check(args)


def _beyond(args: argparse.Namespace) -> int:
    try:
        config = BeyondConfig(dim=args.dim, low_dim=args.low_dim, classes=args.classes, samples=args.samples,
                              eps=tuple(args.eps), condition=args.condition, dof=args.dof, seed=args.seed)
        result = run_beyond(config)
        json_path, md_path = write_beyond(result, args.out)
    except (GaussfeatError, OSError) as error:
        print(f"gaussfeat: error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json_path.read_text(), end="")
    else:
        print(md_path.read_text(), end="")
        print(f"wrote {json_path} and {md_path} ({result['seconds']:.1f} s)")
    return 0


def _figures(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    try:
        make_figures(args.out, args.only, seed=args.seed, report=print)
    except ImportError as error:
        print(f"gaussfeat: error: figures need matplotlib ({error}); pip install 'matplotlib>=3.8'", file=sys.stderr)
        return 2
    except (GaussfeatError, OSError) as error:
        print(f"gaussfeat: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(args.only or FIGURES)} figure(s) to {args.out} ({time.perf_counter() - started:.1f} s)")
    return 0


def _prove(args: argparse.Namespace) -> int:
    try:
        from proofs.cli import main as prove
    except ImportError as error:
        print(f"gaussfeat: error: the proofs need sympy ({error}); pip install 'sympy>=1.12'", file=sys.stderr)
        return 2
    return prove([*(["--out", args.out] if args.out else []), *(["--quiet"] if args.quiet else [])])


def _check(args: argparse.Namespace) -> int:
    instances = {"figure4": figure4(), f"random-d{args.dim}": random_instance(args.dim, args.seed)}
    results = {}
    started = time.perf_counter()
    try:
        for name, model in instances.items():
            if args.samples <= model.dim:
                raise GaussfeatError(f"--samples must exceed the dimension {model.dim}, got {args.samples}")
            results[name] = check_all(model.sigma, args.eps, mu=model.mu, samples=args.samples, seed=args.seed)
    except GaussfeatError as error:
        print(f"gaussfeat: error: {error}", file=sys.stderr)
        return 2
    passed = all(report.passed for reports in results.values() for report in reports)
    if args.json is not None:
        payload = {
            "passed": passed,
            "seconds": time.perf_counter() - started,
            "instances": {name: [report.to_dict() for report in reports] for name, reports in results.items()},
        }
        text = json.dumps(payload, indent=2, default=_jsonable)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as handle:
                handle.write(text + "\n")
    if args.json != "-":
        for name, reports in results.items():
            print(_table(name, reports))
        print(f"{'ALL CHECKS PASSED' if passed else 'SOME CHECKS FAILED'} ({time.perf_counter() - started:.1f} s)")
    return 0 if passed else 1


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _table(name: str, reports: tuple[TheoremReport, ...]) -> str:
    lines = [f"== {name} =="]
    for report in reports:
        values = ", ".join(f"{key}={value:.6g}" for key, value in report.closed_form.items() if isinstance(value, float))
        lines.append(f"{report.theorem}: {'PASS' if report.passed else 'FAIL'}   [{values}]")
        for check in report.checks:
            mark = "ok  " if check.passed else "FAIL"
            lines.append(f"  {mark} {check.claim}")
            lines.append(f"         value {check.value:.6g}   vs {check.reference:.6g}   tolerance {check.tolerance:.3g}")
    return "\n".join(lines)
