"""Executable derivations of Theorems 1-3 of Ilyas et al. (2019), Section 4: every step checked by sympy.

``python -m proofs`` checks all three and writes PROOFS.md; ``proofs.theorem1.derive()`` (likewise 2 and 3)
returns one :class:`Derivation`. :mod:`proofs.derivation` says what it takes for a step to be checked.
"""

from .derivation import Definition, Derivation, ProofError, Step

__all__ = ["Definition", "Derivation", "ProofError", "Step"]
