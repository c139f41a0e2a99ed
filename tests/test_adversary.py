"""Adversaries: the exact l2 maximiser, the Lagrangian adversary and PGD.

The l2 adversary maximises the convex quadratic g(delta) = (v + delta)^T P (v + delta), P = Sigma^-1,
v = x - y mu, over ||delta|| <= eps (the NLL is g/2 plus a constant). By the trust-region optimality
theorem (More and Sorensen, 1983) delta is a *global* maximiser iff

    ||delta|| = eps,   P (v + delta) = eta delta,   eta I - P positive semidefinite (eta >= 1/sigma_min),

so checking these three conditions certifies the answer; brute force over the sphere and PGD are
independent cross-checks. Reference quantities here use np.linalg.inv / solve, not the library's
eigen-decomposition.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import minimize
from scipy.stats import ortho_group

from gaussfeat import TwoGaussian, figure4, l2_adversary, lagrangian_adversary, pgd_adversary, random_instance
from gaussfeat.adversary import ball_maximiser
from tests.strategies import means, spd_matrices

# KKT residual ||P(v + delta) - eta delta|| / ||P(v + delta)||: the secular equation is solved by Newton
# to a relative step of 1e-9 (error left ~1e-18), then delta is rescaled onto the sphere, so what is
# left is rounding in the eigen-decomposition and in P = inv(Sigma): ~ cond(Sigma) x 1e-16 <= 1e-12
# for cond <= 1e4. 1e-9 leaves three orders of magnitude.
KKT_RTOL = 1e-9
NORM_RTOL = 1e-12


def residuals(model, x, y):
    return np.atleast_2d(x) - np.atleast_1d(y)[:, None] * model.mu


def quadratic(model, x, y, delta):
    """g(delta) = (v + delta)^T Sigma^-1 (v + delta) per row, = 2 (NLL - constant)."""
    u = residuals(model, x, y) + delta
    return np.einsum("ij,ij->i", u, np.linalg.solve(model.sigma, u.T).T)


def multipliers(model, x, y, delta):
    """eta per row by least squares from P(v + delta) = eta delta, and the relative residual."""
    grad = np.linalg.solve(model.sigma, (residuals(model, x, y) + delta).T).T
    eta = np.einsum("ij,ij->i", grad, delta) / np.einsum("ij,ij->i", delta, delta)
    residual = np.linalg.norm(grad - eta[:, None] * delta, axis=1) / np.linalg.norm(grad, axis=1)
    return eta, residual


def assert_certified_maximiser(model, x, y, eps, delta):
    """The three optimality conditions above, with tolerances that rounding alone cannot reach."""
    np.testing.assert_allclose(np.linalg.norm(delta, axis=1), eps, rtol=NORM_RTOL)
    eta, residual = multipliers(model, x, y, delta)
    assert residual.max() <= KKT_RTOL, f"KKT residual {residual.max():.3g}"
    sigma_min = np.linalg.eigvalsh(model.sigma)[0]
    assert np.all(eta >= (1 - 1e-9) / sigma_min), f"eta {eta.min():.6g} < 1/sigma_min = {1 / sigma_min:.6g}"


def great_circle_curvature_bound(model, v_norm, eps):
    """|d^2/dtheta^2 g(eps u(theta))| <= 2 eps p_max (|v| + 2 eps) along any great circle."""
    return 2 * eps * (v_norm + 2 * eps) / np.linalg.eigvalsh(model.sigma)[0]


# --- l2 adversary: brute force in two dimensions ---------------------------------------------

def rotated(eigenvalues, seed):
    """Q diag(eigenvalues) Q^T with a Haar-random Q."""
    q = ortho_group.rvs(len(eigenvalues), random_state=seed)
    return q @ np.diag(eigenvalues) @ q.T


TWO_D = {
    "figure4": figure4(),
    "rotated-cond-1e3": TwoGaussian(np.array([0.3, -0.4]), rotated([0.01, 10.0], seed=1)),
    "random": random_instance(2, seed=5, condition=7.0),
}
ANGLES = np.linspace(0, 2 * np.pi, 100_000, endpoint=False)


@pytest.mark.parametrize("eps", [0.05, 0.5, 3.0])
@pytest.mark.parametrize("name", TWO_D)
def test_l2_adversary_attains_the_brute_force_maximum_over_the_circle_in_two_dimensions(name, eps):
    model = TWO_D[name]
    x, y = model.sample(12, seed=2)
    bottom = np.linalg.eigh(model.sigma)[1][:, 0]
    top = np.linalg.eigh(model.sigma)[1][:, 1]
    extra_v = np.array([np.zeros(2), 0.01 * top, 0.3 * bottom + 2 * top])  # v = 0, hard case, generic
    x = np.vstack([x, model.mu + extra_v])
    y = np.concatenate([y, np.ones(3)])
    delta = l2_adversary(model, x, y, eps)
    exact = quadratic(model, x, y, delta)
    circle = eps * np.stack([np.cos(ANGLES), np.sin(ANGLES)], axis=1)
    precision = np.linalg.inv(model.sigma)
    # the grid's best point is within half a spacing of the maximiser, where g' = 0
    spacing = ANGLES[1]
    for i, v in enumerate(residuals(model, x, y)):
        u = v + circle
        grid = np.einsum("ij,jk,ik->i", u, precision, u).max()
        slack = 0.5 * great_circle_curvature_bound(model, np.linalg.norm(v), eps) * (spacing / 2) ** 2
        assert exact[i] >= grid * (1 - 1e-13), f"row {i}: grid point beats the adversary"
        assert exact[i] - grid <= slack + 1e-13 * grid, f"row {i}: value {exact[i]} above the max {grid} + {slack}"


# --- l2 adversary: the trust-region hard case ------------------------------------------------

HARD_SIGMA = np.diag([0.5, 1.0, 2.0])
HARD_V = np.array([0.0, 0.1, 0.1])


def hard_case_answer():
    """P = diag(2, 1, 1/2), b = P v = (0, 0.1, 0.05), gap = p_max - p = (0, 1, 3/2):
    delta_i = b_i / gap_i off the bottom eigenvector, the rest of the norm along it."""
    rest = np.array([0.1 / 1.0, 0.05 / 1.5])
    return np.array([np.sqrt(1.0 - rest @ rest), *rest])


def fibonacci_sphere(count):
    index = np.arange(count) + 0.5
    z = 1 - 2 * index / count
    phi = np.pi * (1 + 5**0.5) * index
    r = np.sqrt(1 - z**2)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


SPHERE = fibonacci_sphere(400_000)


def brute_force_on_sphere(model, v, eps):
    """The max of g over a Fibonacci grid on the sphere of radius eps, then polished by BFGS on z -> eps z/|z|."""
    precision = np.linalg.inv(model.sigma)
    u = v + eps * SPHERE
    values = np.einsum("ij,jk,ik->i", u, precision, u)
    start = SPHERE[np.argmax(values)]

    def negative(z):
        w = v + eps * z / np.linalg.norm(z)
        return -(w @ precision @ w)

    polished = minimize(negative, start, method="BFGS", options={"gtol": 1e-12})
    return values.max(), -polished.fun


def test_hard_case_matches_the_analytic_answer():
    model = TwoGaussian(np.array([1.0, -2.0, 0.5]), HARD_SIGMA)
    delta = l2_adversary(model, model.mu + HARD_V, 1.0, 1.0)[0]
    expected = hard_case_answer()
    np.testing.assert_allclose(np.abs(delta[0]), expected[0], rtol=1e-12)  # either sign is a maximiser
    np.testing.assert_allclose(delta[1:], expected[1:], rtol=1e-12)
    assert_certified_maximiser(model, model.mu + HARD_V, [1.0], 1.0, delta[None])
    eta, _ = multipliers(model, model.mu + HARD_V, [1.0], delta[None])
    assert eta[0] == pytest.approx(2.0, rel=1e-12)  # eta sits exactly at 1/sigma_min in the hard case


def test_hard_case_value_agrees_with_brute_force_and_optimisation_on_the_sphere():
    model = TwoGaussian(np.zeros(3), HARD_SIGMA)
    delta = l2_adversary(model, HARD_V, 1.0, 1.0)
    exact = quadratic(model, HARD_V, [1.0], delta)[0]
    grid, polished = brute_force_on_sphere(model, HARD_V, 1.0)
    assert exact >= grid and exact >= polished * (1 - 1e-13)
    assert exact == pytest.approx(polished, rel=1e-10)
    # a first-order guess (the stationary point of the unconstrained problem, pushed to the sphere)
    # is not the maximiser: the hard case is genuinely different
    naive = HARD_V / np.linalg.norm(HARD_V)
    assert quadratic(model, HARD_V, [1.0], naive[None])[0] < exact - 0.1


def test_hard_case_in_a_rotated_basis_has_the_same_value_and_coordinates():
    """Rotated, the bottom component is ~1e-17 instead of 0: the near-hard case must land on the same answer."""
    rotation = ortho_group.rvs(3, random_state=4)
    model = TwoGaussian(np.array([0.2, 0.0, -0.7]), rotation @ HARD_SIGMA @ rotation.T)
    x = model.mu + rotation @ HARD_V
    delta = l2_adversary(model, x, 1.0, 1.0)
    coordinates = rotation.T @ delta[0]
    expected = hard_case_answer()
    np.testing.assert_allclose(np.abs(coordinates[0]), expected[0], rtol=1e-8)
    np.testing.assert_allclose(coordinates[1:], expected[1:], rtol=1e-8, atol=1e-12)
    reference = TwoGaussian(np.zeros(3), HARD_SIGMA)
    assert quadratic(model, x, 1.0, delta)[0] == pytest.approx(quadratic(reference, HARD_V, 1.0, expected[None])[0], rel=1e-10)


@pytest.mark.parametrize(
    "bottom",
    [
        1e-12,
        1e-100,
        1e-160,
        1e-170,
    ],
)
def test_near_hard_case_is_continuous_with_the_hard_case(bottom):
    """A bottom component that is tiny but nonzero takes the Newton path; the answer is the hard
    case's with the bottom coordinate's sign set by that component, to within |bottom|-sized terms."""
    model = TwoGaussian(np.zeros(3), HARD_SIGMA)
    v = HARD_V + np.array([bottom, 0.0, 0.0])
    delta = l2_adversary(model, v, 1.0, 1.0)[0]
    np.testing.assert_allclose(delta, hard_case_answer(), rtol=1e-9)


def test_zero_residual_puts_the_whole_budget_along_the_bottom_eigenvector():
    model = random_instance(5, seed=6, condition=20.0)
    eps = 0.7
    delta = l2_adversary(model, model.mu, 1.0, eps)[0]
    bottom = np.linalg.eigh(model.sigma)[1][:, 0]
    assert np.linalg.norm(delta) == pytest.approx(eps, rel=NORM_RTOL)
    assert abs(delta @ bottom) == pytest.approx(eps, rel=1e-10)
    assert quadratic(model, model.mu, 1.0, delta[None])[0] == pytest.approx(eps**2 / np.linalg.eigvalsh(model.sigma)[0], rel=1e-10)


@pytest.mark.parametrize("scale", [0.3, 1.0, 4.0])
def test_isotropic_sigma_pushes_straight_away_from_the_mean(scale):
    model = TwoGaussian(np.array([1.0, -1.0, 2.0, 0.0]), scale * np.eye(4))
    x, y = model.sample(20, seed=7)
    eps = 0.4
    v = residuals(model, x, y)
    delta = l2_adversary(model, x, y, eps)
    np.testing.assert_allclose(delta, eps * v / np.linalg.norm(v, axis=1, keepdims=True), rtol=1e-12, atol=1e-15)


def test_zero_radius_gives_zero_perturbations():
    model = random_instance(4, seed=8)
    x, y = model.sample(10, seed=8)
    delta = l2_adversary(model, x, y, 0.0)
    assert delta.shape == x.shape
    np.testing.assert_array_equal(delta, 0.0)


ROTATION_3 = ortho_group.rvs(3, random_state=9)
REPEATED = {
    "bottom-repeated": ROTATION_3 @ np.diag([1.0, 1.0, 3.0]) @ ROTATION_3.T,
    "top-repeated": ROTATION_3 @ np.diag([0.5, 2.0, 2.0]) @ ROTATION_3.T,
    "diagonal-bottom-repeated": np.diag([0.4, 0.4, 1.0]),
}


@pytest.mark.parametrize("name", REPEATED)
def test_repeated_eigenvalues_give_a_certified_maximiser_matching_brute_force(name):
    model = TwoGaussian(np.array([0.5, 0.1, -0.3]), REPEATED[name])
    x, y = model.sample(6, seed=10)
    eps = 0.8
    delta = l2_adversary(model, x, y, eps)
    assert_certified_maximiser(model, x, y, eps, delta)
    values = quadratic(model, x, y, delta)
    for i, v in enumerate(residuals(model, x, y)):
        _, polished = brute_force_on_sphere(model, v, eps)
        assert values[i] >= polished * (1 - 1e-12)


@pytest.mark.parametrize("rotated", [False, True])
def test_hard_case_with_a_repeated_bottom_eigenvalue(rotated):
    """Sigma = diag(1, 1, 3), v = (0, 0, 0.2): p = (1, 1, 1/3), delta_3 = (0.2/3) / (2/3) = 0.1 and the
    remaining norm sqrt(1 - 0.01) anywhere in the 2-D bottom eigenspace; value 0.99 + (0.3)^2 / 3 = 1.02."""
    rotation = ROTATION_3 if rotated else np.eye(3)
    model = TwoGaussian(np.zeros(3), rotation @ np.diag([1.0, 1.0, 3.0]) @ rotation.T)
    v = rotation @ np.array([0.0, 0.0, 0.2])
    delta = l2_adversary(model, v, 1.0, 1.0)
    coordinates = rotation.T @ delta[0]
    assert coordinates[2] == pytest.approx(0.1, rel=1e-8)
    assert np.linalg.norm(coordinates[:2]) == pytest.approx(np.sqrt(0.99), rel=1e-10)
    assert quadratic(model, v, 1.0, delta)[0] == pytest.approx(1.02, rel=1e-10)


def test_l2_adversary_is_odd_in_the_residual():
    """delta(-v) = -delta(v) for generic v: the problem is symmetric under v -> -v."""
    model = random_instance(6, seed=11, condition=50.0)
    x, y = model.sample(30, seed=11)
    forward = l2_adversary(model, x, y, 0.6)
    backward = l2_adversary(model, -x, -y, 0.6)
    np.testing.assert_allclose(backward, -forward, rtol=1e-10, atol=1e-14)


def test_l2_adversary_beats_random_points_of_the_ball():
    model = random_instance(10, seed=12, condition=100.0)
    x, y = model.sample(50, seed=12)
    eps = 0.5
    exact = quadratic(model, x, y, l2_adversary(model, x, y, eps))
    rng = np.random.default_rng(13)
    for _ in range(20):
        direction = rng.normal(size=x.shape)
        candidate = eps * rng.random((len(x), 1)) ** 0.1 * direction / np.linalg.norm(direction, axis=1, keepdims=True)
        assert np.all(quadratic(model, x, y, candidate) <= exact * (1 + 1e-13))


def test_l2_adversary_maximises_the_nll_itself():
    model = random_instance(4, seed=14)
    x, y = model.sample(25, seed=14)
    delta = l2_adversary(model, x, y, 0.3)
    pgd = pgd_adversary(model, x, y, 0.3, steps=200)
    assert np.all(model.nll(x + delta, y) >= model.nll(x + pgd, y) - 1e-12 * np.abs(model.nll(x + delta, y)))
    np.testing.assert_allclose(model.nll(x + delta, y) - model.nll(x, y),
                               (quadratic(model, x, y, delta) - quadratic(model, x, y, 0 * delta)) / 2, rtol=1e-9)


@st.composite
def attacks(draw):
    sigma = draw(spd_matrices())
    d = len(sigma)
    mu = draw(means(d))
    n = draw(st.integers(1, 16))
    seed = draw(st.integers(0, 2**32 - 1))
    spread = draw(st.floats(1e-2, 10.0))
    eps = draw(st.floats(1e-3, 10.0))
    rng = np.random.default_rng(seed)
    y = rng.choice([-1.0, 1.0], size=n)
    x = y[:, None] * mu + spread * rng.multivariate_normal(np.zeros(d), sigma, size=n)
    return TwoGaussian(mu, sigma), x, y, eps


@given(attacks())
def test_l2_adversary_is_a_certified_global_maximiser_that_pgd_never_beats(attack):
    model, x, y, eps = attack
    delta = l2_adversary(model, x, y, eps)
    assert_certified_maximiser(model, x, y, eps, delta)
    exact = quadratic(model, x, y, delta)
    for random_start in (False, True):
        pgd = pgd_adversary(model, x, y, eps, steps=100, random_start=random_start, seed=0)
        assert np.all(quadratic(model, x, y, pgd) <= exact * (1 + 1e-12))


# --- ball_maximiser --------------------------------------------------------------------------

P = np.array([2.0, 1.0, 0.5])
MIXED = {
    "generic": np.array([0.3, -0.2, 0.5]),
    "hard": np.array([0.0, 0.1, 0.1]),
    "zero": np.zeros(3),
    "fills-without-bottom": np.array([0.0, 2.0, 0.5]),  # no bottom component, but the rest exceeds the ball
    "large": np.array([5.0, 5.0, 5.0]),
    "generic-negated": np.array([-0.3, 0.2, -0.5]),
}


def test_ball_maximiser_on_a_batch_mixing_generic_and_hard_case_rows():
    eps = 1.0
    w = np.stack(list(MIXED.values()))
    delta, eta = ball_maximiser(w, P, eps)
    rows = dict(zip(MIXED, range(len(MIXED))))
    np.testing.assert_allclose(np.linalg.norm(delta, axis=1), eps, rtol=NORM_RTOL)
    assert np.all(eta >= P.max())
    generic = [rows[k] for k in ("generic", "fills-without-bottom", "large", "generic-negated")]
    np.testing.assert_allclose(delta[generic], P * w[generic] / (eta[generic, None] - P), rtol=1e-9)
    for name in ("hard", "zero"):
        assert eta[rows[name]] == P.max()
    np.testing.assert_allclose(delta[rows["hard"]], [np.sqrt(1 - 0.1**2 - (0.05 / 1.5) ** 2), 0.1, 0.05 / 1.5], rtol=1e-12)
    np.testing.assert_allclose(np.abs(delta[rows["zero"]]), [1.0, 0.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(delta[rows["generic-negated"]], -delta[rows["generic"]], rtol=1e-12)
    assert delta[rows["fills-without-bottom"], 0] == 0.0  # the Newton path keeps it off the bottom eigenvector
    # each row is solved as if alone
    for i, row in enumerate(w):
        alone, _ = ball_maximiser(row[None], P, eps)
        np.testing.assert_allclose(alone[0], delta[i], rtol=1e-13, atol=1e-15)
    # and each is a certified maximiser in these coordinates: P(w + d) = eta d with eta >= max P
    np.testing.assert_allclose(P * (w + delta), eta[:, None] * delta, rtol=1e-9, atol=1e-12)


def test_ball_maximiser_handles_batches_larger_than_a_block():
    rng = np.random.default_rng(15)
    p = np.exp(rng.uniform(-3, 3, 7))
    w = rng.normal(size=(300, 7)) * rng.uniform(0.01, 3, (300, 1))
    w[::17, np.argmax(p)] = 0.0  # sprinkle hard-ish rows across block boundaries
    delta, eta = ball_maximiser(w, p, 0.9)
    for i in (0, 127, 128, 129, 255, 256, 299):
        alone, alone_eta = ball_maximiser(w[i : i + 1], p, 0.9)
        np.testing.assert_allclose(alone[0], delta[i], rtol=1e-13, atol=1e-15)
        assert alone_eta[0] == eta[i]
    np.testing.assert_allclose(np.linalg.norm(delta, axis=1), 0.9, rtol=NORM_RTOL)


def test_ball_maximiser_at_zero_radius_returns_zeros_and_infinite_multipliers():
    delta, eta = ball_maximiser(np.ones((3, 2)), np.array([1.0, 2.0]), 0.0)
    np.testing.assert_array_equal(delta, 0.0)
    assert np.all(np.isinf(eta))


# --- Lagrangian adversary --------------------------------------------------------------------

LAGRANGE_MODEL = random_instance(5, seed=16, condition=30.0)


def penalised(model, x, y, delta, C):
    """l(x + delta) - C/2 ||delta||^2, without the NLL's constant."""
    return quadratic(model, x, y, delta) / 2 - C / 2 * np.sum(delta**2, axis=1)


def penalised_terms(model, x, y, delta, C):
    """The sizes of the two terms :func:`penalised` subtracts, which its rounding error scales with."""
    return np.abs(quadratic(model, x, y, delta)) / 2 + C / 2 * np.sum(delta**2, axis=1)


@pytest.mark.parametrize("factor", [1.01, 2.0, 100.0])
def test_lagrangian_adversary_is_the_closed_form_inverse(factor):
    model = LAGRANGE_MODEL
    C = factor / np.linalg.eigvalsh(model.sigma)[0]
    x, y = model.sample(30, seed=17)
    delta = lagrangian_adversary(model, x, y, C)
    expected = np.linalg.solve(C * model.sigma - np.eye(model.dim), residuals(model, x, y).T).T
    np.testing.assert_allclose(delta, expected, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("factor", [1.01, 2.0, 100.0])
def test_lagrangian_adversary_is_the_stationary_point_and_beats_random_perturbations(factor):
    model = LAGRANGE_MODEL
    C = factor / np.linalg.eigvalsh(model.sigma)[0]
    x, y = model.sample(30, seed=18)
    delta = lagrangian_adversary(model, x, y, C)
    gradient = np.linalg.solve(model.sigma, (residuals(model, x, y) + delta).T).T - C * delta
    scale = np.linalg.norm(np.linalg.solve(model.sigma, residuals(model, x, y).T).T, axis=1)
    assert np.all(np.linalg.norm(gradient, axis=1) <= 1e-9 * (scale + C * np.linalg.norm(delta, axis=1)))
    best = penalised(model, x, y, delta, C)
    hessian_gap = C * np.eye(model.dim) - np.linalg.inv(model.sigma)  # positive definite
    rng = np.random.default_rng(19)
    for size in (1e-3, 0.1, 10.0):
        r = size * rng.normal(size=x.shape)
        loss = best - penalised(model, x, y, delta + r, C)
        assert np.all(loss > 0)
        # the objective is quadratic: the loss is exactly 1/2 r^T (C I - P) r, up to the rounding of the terms
        # it is the difference of (near C = 1/lambda_min a loss of 4e-6 from terms of 5e4): a few of their ulps,
        # at most 2.5 measured (rtol 1e-6 alone failed on an AMD EPYC whose BLAS rounds otherwise)
        exact = 0.5 * np.einsum("ij,jk,ik->i", r, hessian_gap, r)
        rounding = 16 * np.finfo(float).eps * (penalised_terms(model, x, y, delta, C) + penalised_terms(model, x, y, delta + r, C))
        assert np.all(np.abs(loss - exact) <= 1e-6 * exact + rounding)


def test_lagrangian_adversary_at_the_l2_multiplier_is_the_l2_adversary():
    """KKT: the l2 maximiser is (eta Sigma - I)^-1 v, so the Lagrangian adversary with C = eta reproduces it."""
    model = LAGRANGE_MODEL
    x, y = model.sample(8, seed=20)
    delta = l2_adversary(model, x, y, 0.4)
    eta, _ = multipliers(model, x, y, delta)
    for i in range(len(x)):
        np.testing.assert_allclose(lagrangian_adversary(model, x[i], y[i], eta[i])[0], delta[i], rtol=1e-7, atol=1e-12)


def test_lagrangian_adversary_shrinks_to_zero_as_the_penalty_grows():
    model = LAGRANGE_MODEL
    x, y = model.sample(10, seed=21)
    sizes = [np.abs(lagrangian_adversary(model, x, y, C)).max() for C in (1e2, 1e4, 1e6)]
    assert sizes[0] > 50 * sizes[1] > 50**2 * sizes[2] > 0


# --- PGD -------------------------------------------------------------------------------------

PGD_MODEL = random_instance(3, seed=1, condition=10.0)
PGD_X, PGD_Y = PGD_MODEL.sample(200, seed=2)


@pytest.mark.parametrize("random_start", [False, True])
@pytest.mark.parametrize("eps", [0.05, 1.0])
def test_pgd_stays_in_the_ball(eps, random_start):
    delta = pgd_adversary(PGD_MODEL, PGD_X, PGD_Y, eps, steps=30, step_size=0.7 * eps, random_start=random_start, seed=3)
    assert np.all(np.linalg.norm(delta, axis=1) <= eps * (1 + 1e-12))


def test_pgd_random_start_is_reproducible_with_a_seed():
    run = lambda seed: pgd_adversary(PGD_MODEL, PGD_X, PGD_Y, 0.5, steps=3, random_start=True, seed=seed)
    np.testing.assert_array_equal(run(4), run(4))
    assert not np.allclose(run(4), run(5))
    # without a random start the seed is irrelevant
    np.testing.assert_array_equal(
        pgd_adversary(PGD_MODEL, PGD_X, PGD_Y, 0.5, steps=3, seed=4), pgd_adversary(PGD_MODEL, PGD_X, PGD_Y, 0.5, steps=3, seed=5)
    )


@pytest.mark.parametrize("random_start", [False, True])
def test_pgd_with_a_fixed_step_size_never_gets_worse_per_point_with_more_steps(random_start):
    """Same start and step size: a longer run extends the same trajectory and returns its best iterate."""
    values = [
        quadratic(PGD_MODEL, PGD_X, PGD_Y, pgd_adversary(PGD_MODEL, PGD_X, PGD_Y, 0.5, steps=k, step_size=0.3, random_start=random_start, seed=6))
        for k in (1, 5, 25, 125)
    ]
    for fewer, more in zip(values, values[1:]):
        assert np.all(more >= fewer)
    assert np.mean(values[-1]) > np.mean(values[0])


def test_pgd_with_the_default_step_size_never_gets_worse_per_point_with_more_steps():
    """The default step (eps / 4) does not depend on the step count: 4x the steps extends the same trajectory."""
    values = [quadratic(PGD_MODEL, PGD_X, PGD_Y, pgd_adversary(PGD_MODEL, PGD_X, PGD_Y, 0.5, steps=k)) for k in (1, 4, 16, 64)]
    for fewer, more in zip(values, values[1:]):
        assert np.all(more >= fewer)


def test_pgd_with_the_default_step_size_converges_to_the_exact_maximum_where_the_papers_convention_stalls():
    """2.5 eps / steps caps the path at 2.5 eps: more steps stop helping short of the maximum."""
    eps = 3.0
    exact = quadratic(PGD_MODEL, PGD_X, PGD_Y, l2_adversary(PGD_MODEL, PGD_X, PGD_Y, eps))
    shortfall = lambda **options: np.mean(1 - quadratic(PGD_MODEL, PGD_X, PGD_Y, pgd_adversary(PGD_MODEL, PGD_X, PGD_Y, eps, **options)) / exact)  # noqa: E731
    assert shortfall(steps=200) < 1e-8
    papers = [shortfall(steps=k, step_size=2.5 * eps / k) for k in (50, 200)]
    assert min(papers) > 100 * shortfall(steps=200) and papers[1] > papers[0] / 3


def test_pgd_never_returns_worse_than_its_start():
    start_value = quadratic(PGD_MODEL, PGD_X, PGD_Y, np.zeros_like(PGD_X))
    delta = pgd_adversary(PGD_MODEL, PGD_X, PGD_Y, 0.5, steps=2, step_size=5.0)  # wild steps
    assert np.all(quadratic(PGD_MODEL, PGD_X, PGD_Y, delta) >= start_value)


def test_pgd_with_many_small_steps_approaches_the_exact_maximum():
    """With step 0.05 eps the iterates can travel 100 eps along the sphere; the relative shortfall
    measured with 1000 steps is ~1e-11 on average and ~1e-8 at worst (from 1e-3 after 20 steps)."""
    eps = 0.3
    exact = quadratic(PGD_MODEL, PGD_X, PGD_Y, l2_adversary(PGD_MODEL, PGD_X, PGD_Y, eps))
    shortfall = lambda steps: (exact - quadratic(PGD_MODEL, PGD_X, PGD_Y, pgd_adversary(PGD_MODEL, PGD_X, PGD_Y, eps, steps=steps, step_size=0.05 * eps))) / exact
    few, many = shortfall(20), shortfall(2000)
    assert many.min() >= -1e-13  # PGD never beats the exact maximiser
    assert many.max() <= 1e-6 and np.mean(many) <= 1e-9
    assert np.mean(many) < 1e-3 * np.mean(few)


def test_pgd_at_zero_radius_returns_zeros():
    for random_start in (False, True):
        np.testing.assert_array_equal(pgd_adversary(PGD_MODEL, PGD_X, PGD_Y, 0.0, random_start=random_start, seed=0), 0.0)
