"""Spectral helpers for symmetric positive-definite matrices."""

from __future__ import annotations

from typing import Callable

import numpy as np


def spectral_map(sigma: np.ndarray, f: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """The matrix function f(Sigma) = Q f(Lambda) Q^T of a symmetric matrix."""
    eigenvalues, basis = np.linalg.eigh(sigma)
    return (basis * f(eigenvalues)) @ basis.T


def condition_number(sigma: np.ndarray) -> float:
    """kappa(Sigma) = sigma_max / sigma_min of an SPD matrix."""
    eigenvalues = np.linalg.eigvalsh(sigma)
    return float(eigenvalues[-1] / eigenvalues[0])


def relative_frobenius(a: np.ndarray, b: np.ndarray) -> float:
    """||a - b||_F / ||b||_F."""
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))
