"""Hypothesis strategies: SPD matrices with a controlled condition number, and instances."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

MAX_CONDITION = 1e4


@st.composite
def spd_matrices(draw, min_dim: int = 1, max_dim: int = 64, max_condition: float = MAX_CONDITION, scale: float = 1.0):
    """A symmetric positive-definite matrix: random orthogonal basis, log-spread eigenvalues.

    The condition number is drawn in [1, max_condition] and the eigenvalues lie in
    [scale / sqrt(k), scale * sqrt(k)], endpoints included (so cond is exactly k when d >= 2).
    """
    d = draw(st.integers(min_dim, max_dim))
    k = draw(st.floats(1.0, max_condition))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    logs = rng.uniform(-0.5, 0.5, d)
    if d >= 2:
        logs[:2] = [-0.5, 0.5]
    eigenvalues = scale * k**logs
    basis, upper = np.linalg.qr(rng.standard_normal((d, d)))
    sigma = (basis * eigenvalues) @ basis.T
    return (sigma + sigma.T) / 2


@st.composite
def means(draw, d: int):
    """A nonzero mean of norm in [0.1, 10]."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    mu = rng.standard_normal(d)
    return mu / np.linalg.norm(mu) * draw(st.floats(0.1, 10.0))
