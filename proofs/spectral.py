"""The reduction from matrices to eigenvalues, made concrete in two dimensions.

Every matrix in Theorems 1-3 is a function of Sigma* (or shares its eigenbasis): for
Sigma* = Q diag(t_i) Q^T, a rational function f gives f(Sigma*) = Q diag(f(t_i)) Q^T, quadratic forms
in v = Q w split into sums over the coordinates of w, and traces are sums over eigenvalues. The
derivations check this reduction on 2 x 2 matrices with a symbolic rotation Q in the Cayley
parametrisation (every rotation but the half-turn), which keeps the algebra rational and fast.
"""

from __future__ import annotations

import sympy as sp

from .derivation import Derivation

q = sp.Symbol("q", real=True)
ROTATION = sp.ImmutableMatrix([[1 - q**2, -2 * q], [2 * q, 1 - q**2]]) / (1 + q**2)
Q = sp.MatrixSymbol("Q", 2, 2)


def let_rotation(proof: Derivation) -> sp.MatrixSymbol:
    """Define Q := ROTATION in ``proof``; returns Q."""
    return proof.let(Q, ROTATION, "a rotation by a symbolic angle (Cayley parametrisation), for the 2-D checks")


def diagonal(*entries: sp.Expr) -> sp.ImmutableMatrix:
    """diag(entries) as an immutable matrix (so it can stand in a ``where`` substitution)."""
    return sp.ImmutableMatrix(sp.diag(*entries))


def column(*entries: sp.Expr) -> sp.ImmutableMatrix:
    """A column vector."""
    return sp.ImmutableMatrix(entries)
