"""Command line: ``python -m proofs [--out PATH] [--quiet]`` checks Theorems 1-3 and Section 3 in the model step by step
and writes PROOFS.md."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from . import relabelled, theorem1, theorem2, theorem3
from .derivation import Derivation, ProofError
from .report import markdown

THEOREMS = (theorem1, theorem2, theorem3, relabelled)  # each module's derive() is looked up when the command runs
DEFAULT_OUT = Path(__file__).with_name("PROOFS.md")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m proofs",
        description="Check the derivations of Theorems 1-3 and of D_rand and D_det in the two-Gaussian model step by step; "
        "write them as Markdown with LaTeX if all hold.",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the document (default: proofs/PROOFS.md)")
    parser.add_argument("--quiet", action="store_true", help="print only a summary per theorem and any failure")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run every derivation; exit status 1 if a step fails (PROOFS.md is then left as it was), else 0."""
    args = build_parser().parse_args(argv)
    derivations: list[Derivation] = []
    for module in THEOREMS:
        start = time.perf_counter()
        try:
            proof = module.derive()
        except ProofError as error:
            _print_steps(error.derivation, args.quiet)
            print(f"  {error.step.number:3d}  FAILED  {error.step.statement}\n       {error}")
            continue
        _print_steps(proof, args.quiet)
        print(f"  all {len(proof.steps)} steps hold ({time.perf_counter() - start:.1f} s)")
        derivations.append(proof)
    if len(derivations) < len(THEOREMS):
        print(f"A step failed; {args.out} not written.")
        return 1
    args.out.write_text(markdown(derivations), encoding="utf-8")
    steps = sum(len(proof.steps) for proof in derivations)
    print(f"All {steps} steps of {len(derivations)} theorems hold; wrote {args.out}")
    return 0


def _print_steps(proof: Derivation, quiet: bool) -> None:
    print(f"{proof.name}: {proof.title}")
    if not quiet:
        for step in proof.steps:
            print(f"  {step.number:3d}  ok  {step.statement}")
