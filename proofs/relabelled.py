"""Section 3 inside Section 4: D_rand and D_det in the two-Gaussian model, step by step (gaussfeat.relabelled).

y and t are uniform signs, x = y mu + z with z ~ N(0, Sigma), the source classifier sign(x^T w_s) with unit
direction u; each point moves to x' = x + t eps u and is relabelled t. The matrix steps are checked in
two dimensions with a general symmetric Sigma = [[p, q], [q, r]], the expectations with sympy.stats: t and y
as Rademacher variables, z = L g with L = [[l_11, 0], [l_21, l_22]] (any covariance L L^T) and g standard normal.
"""

from __future__ import annotations

import sympy as sp
from sympy.stats import Expectation, Normal, Rademacher

from .derivation import Derivation
from .spectral import column

eps, k, m, nw, ab = sp.symbols("epsilon k m n_w a_b", positive=True)
slack = sp.Symbol("kappa", nonnegative=True)
s1, s2 = sp.symbols("s_1 s_2", positive=True)  # eigenvalues, in the Cauchy-Schwarz step
a1, a2, c1, c2, w1, w2, theta, q, l21 = sp.symbols("a_1 a_2 c_1 c_2 w_1 w_2 theta q l_21", real=True)
p, r, l11, l22 = sp.symbols("p r l_11 l_22", positive=True)
scale, b = sp.symbols("c b", positive=True)
T, Y = Rademacher("t"), Rademacher("y")
G1, G2 = Normal("g_1", 0, 1), Normal("g_2", 0, 1)
reach = sp.Symbol("b_u", positive=True)  # u^T Sigma^-1 mu, where it is positive
cholesky_factor = sp.ImmutableMatrix([[l11, 0], [l21, l22]])  # any 2 x 2 covariance is L L^T (Cholesky)


def _expected(matrix: sp.Matrix) -> sp.ImmutableMatrix:
    """Entry-wise Expectation over the random symbols (evaluated by the checker)."""
    return sp.ImmutableMatrix(matrix.shape[0], matrix.shape[1], [Expectation(sp.expand(e)) for e in matrix])


def derive() -> Derivation:
    """D_rand's and D_det's population MLEs, their accuracy on the original distribution, and D_det's threshold."""
    proof = Derivation(
        "Section 3 in the model",
        "D_rand and D_det for two Gaussians",
        r"Let $x = y\mu + z$, $z \sim \mathcal N(0, \Sigma)$, $y$ a uniform sign, and let the source $\operatorname{sign}"
        r"(x^\top w_s)$ have unit direction $u$. Moving each point to $x' = x + t\varepsilon u$ (the exact targeted "
        r"$\ell_2$ adversary toward $t$ within $\varepsilon$) and labelling it $t$, the population MLE of the "
        r"relabelled set is, for D_rand ($t$ a uniform sign independent of $y$), $\mu' = \varepsilon u$, "
        r"$\Sigma' = \Sigma + \mu\mu^\top$, whose classifier $w' = \Sigma'^{-1}\mu'$ has $w'^\top\mu = \varepsilon\, "
        r"u^\top w / (1 + m)$ with $w = \Sigma^{-1}\mu$, $m = \mu^\top\Sigma^{-1}\mu$: above chance on the original "
        r"distribution iff $u^\top w > 0$, at an accuracy that does not depend on $\varepsilon$; and for D_det ($t = -y$) "
        r"$\mu' = \varepsilon u - \mu$, $\Sigma' = \Sigma$, with $w'^\top\mu = \varepsilon u^\top w - m$: below chance "
        r"for $\varepsilon < \varepsilon^* = m / u^\top w$, at chance at $\varepsilon^*$, above beyond. For the "
        r"standard source $u = w/\lVert w\rVert$, $\varepsilon^* = \mu^\top w / \lVert w\rVert = \lVert\mu\rVert\cos(\mu, w)$, "
        r"the distance from $\mu$ to the source's boundary and the source's median margin (its robust accuracy at "
        r"$\varepsilon^*$ is 1/2); $\varepsilon^{*2} = m\, u^\top\Sigma u \ge m / u^\top\Sigma^{-1}u$ "
        r"(Theorem 1's misalignment); and no unit source has a smaller threshold.",
    )
    sigma, mu, u = sp.MatrixSymbol("Sigma", 2, 2), sp.MatrixSymbol("mu", 2, 1), sp.MatrixSymbol("u", 2, 1)
    root = cholesky_factor
    general = {sigma: sp.ImmutableMatrix([[p, q], [q, r]]), mu: column(a1, a2), u: column(c1, c2)}
    sampled = {**general, sigma: root * root.T}
    z = root * column(G1, G2)  # z ~ N(0, L Lᵀ), explicit: the expectations act on it
    x = Y * column(a1, a2) + z
    source = column(c1, c2)

    # the adversary: for a linear source, t delta^T w_s is largest on the ball at delta = t eps u
    phi, psi, radius = sp.Symbol("phi", real=True), sp.Symbol("psi", real=True), sp.Symbol("r_delta", nonnegative=True)
    unit = column(sp.cos(phi), sp.sin(phi))  # w = n_w (cos phi, sin phi), n_w = ||w||
    delta = radius * column(sp.cos(psi), sp.sin(psi))
    gap = eps * nw - nw * (delta.T * unit)[0]
    miss = ((delta - eps * unit).T * (delta - eps * unit))[0]
    adversary = proof.equal(
        "The targeted adversary's gain δᵀw falls short of ε‖w‖ by a square plus the unused budget (w stands for t w_s, "
        "w = n_w (cos φ, sin φ), δ = r (cos ψ, sin ψ)).",
        gap, (nw / (2 * eps)) * (miss + eps**2 - radius**2),
    )
    on_ball = proof.compare(
        "Within the ball, r = ε/(1 + κ) with κ ≥ 0, the gain is at most ε‖w‖, attained only at δ = ε w/‖w‖.",
        gap, ">=", 0, witness=(nw / (2 * eps)) * (miss + eps**2 * slack * (2 + slack) / (1 + slack) ** 2),
        where={radius: eps / (1 + slack)},
    )

    # D_rand
    moved_rand = x + T * eps * source
    rand_mean = proof.equal(
        "D_rand's MLE mean: E[t x'] = ε u (t independent of y and z).",
        _expected(T * moved_rand), eps * u, where=sampled,
    )
    rand_cov = proof.equal(
        "D_rand's MLE covariance: x' − tμ' = x, so Σ' = E[x xᵀ] = Σ + μμᵀ.",
        _expected((moved_rand - T * eps * source) * (moved_rand - T * eps * source).T), sigma + mu * mu.T, where=sampled,
    )
    noise = proof.equal(
        "At n points the MLE's mean is the average of t x', whose covariance is also Σ + μμᵀ: D_rand's signal εu "
        "carries noise of covariance (Σ + μμᵀ)/n, and is lost as ε shrinks at fixed n.",
        _expected((T * moved_rand - eps * source) * (T * moved_rand - eps * source).T), sigma + mu * mu.T, where=sampled,
    )
    sherman = proof.equal(
        "Sherman-Morrison: (Σ + μμᵀ)⁻¹ μ = Σ⁻¹μ / (1 + μᵀΣ⁻¹μ).",
        (sigma + mu * mu.T).I * mu, sigma.I * mu / (1 + (mu.T * sigma.I * mu)[0]), where=general,
    )
    rand_margin = proof.equal(
        "So D_rand's classifier w' = ε (Σ + μμᵀ)⁻¹ u has w'ᵀμ = ε uᵀΣ⁻¹μ / (1 + m).",
        ((eps * (sigma + mu * mu.T).I * u).T * mu)[0], eps * (u.T * sigma.I * mu)[0] / (1 + (mu.T * sigma.I * mu)[0]),
        where=general,
    )
    free_of_eps = proof.equal(
        "The accuracy Φ(w'ᵀμ / √(w'ᵀΣw')) is unchanged when w' is scaled by c > 0: D_rand's does not depend on ε.",
        (scale * ab) / sp.sqrt(scale**2 * b), ab / sp.sqrt(b),
    )

    # D_det
    moved_det = x - Y * eps * source
    det_mean = proof.equal(
        "D_det's MLE mean (t = −y): E[t x'] = ε u − μ.",
        _expected(-Y * moved_det), eps * u - mu, where=sampled,
    )
    det_cov = proof.equal(
        "D_det's MLE covariance: x' − tμ' = x − yμ = z, so Σ' = Σ.",
        _expected((moved_det + Y * (eps * source - column(a1, a2))) * (moved_det + Y * (eps * source - column(a1, a2))).T),
        sigma, where=sampled,
    )
    det_margin = proof.equal(
        "D_det's classifier w' = Σ⁻¹(εu − μ) has w'ᵀμ = ε uᵀΣ⁻¹μ − μᵀΣ⁻¹μ.",
        ((sigma.I * (eps * u - mu)).T * mu)[0], eps * (u.T * sigma.I * mu)[0] - (mu.T * sigma.I * mu)[0],
        where=general,
    )
    at_threshold = proof.equal("At ε* = m / b_u (b_u = uᵀΣ⁻¹μ > 0) the margin vanishes: accuracy 1/2.", eps * reach - m, 0, where={eps: m / reach})
    above = proof.compare(
        "Beyond it, ε = ε*(1 + k) with k > 0, the margin is k m > 0: D_det beats chance.",
        eps * reach - m, ">", 0, witness=k * m, where={eps: m * (1 + k) / reach},
    )
    below = proof.compare(
        "Below it, ε = ε*/(1 + k), the margin is negative: D_det's classifier predicts the flipped label.",
        eps * reach - m, "<", 0, witness=-k * m / (1 + k), where={eps: m / ((1 + k) * reach)},
    )

    # the standard source
    w = sigma.I * mu
    quad = proof.equal(
        "For w = Σ⁻¹μ, wᵀΣw = μᵀΣ⁻¹μ = m.",
        (w.T * sigma * w)[0], (mu.T * sigma.I * mu)[0], where=general,
    )
    distance = proof.equal(
        "With u = w/‖w‖: ε* = m/‖w‖ = μᵀw/‖w‖ = ‖μ‖ cos(μ, w), the distance from μ to the boundary wᵀx = 0.",
        (mu.T * w)[0] / sp.sqrt((w.T * w)[0]),
        sp.sqrt((mu.T * mu)[0]) * ((mu.T * w)[0] / (sp.sqrt((mu.T * mu)[0]) * sp.sqrt((w.T * w)[0]))),
        where=general,
    )
    spread = proof.equal(
        "So ε*² = m² / ‖w‖² = m · uᵀΣu: the Mahalanobis distance squared times the data's variance along u.",
        ((mu.T * w)[0]) ** 2 / (w.T * w)[0], (mu.T * sigma.I * mu)[0] * (w.T * sigma * w)[0] / (w.T * w)[0],
        where=general,
    )
    median = proof.equal(
        "A point's margin along u, y xᵀu, is normal with mean (so median) μᵀu = μᵀw/‖w‖ = ε*: the source's exact "
        "robust accuracy Φ((wᵀμ − ε‖w‖)/√(wᵀΣw)) is Φ(0) = 1/2 at ε*. The relabelling moves exactly half the points "
        "across the source's boundary there, and D_det beats chance exactly where it moves more than half.",
        ((w.T * mu)[0] - eps * sp.sqrt((w.T * w)[0])) / sp.sqrt((w.T * sigma * w)[0]), 0,
        where={eps: (mu.T * sigma.I * mu)[0] / sp.sqrt((w.T * w)[0]), **general},
    )
    cauchy = proof.compare(
        "Cauchy-Schwarz in Σ's eigenbasis (u with coordinates c): (uᵀΣu)(uᵀΣ⁻¹u) ≥ ‖u‖⁴, so ε*² ≥ m / M(u), "
        "M(u) = uᵀΣ⁻¹u/‖u‖² Theorem 1's misalignment; equality iff u is an eigenvector.",
        (c1**2 * s1 + c2**2 * s2) * (c1**2 / s1 + c2**2 / s2) - (c1**2 + c2**2) ** 2, ">=", 0,
        witness=c1**2 * c2**2 * (s1 - s2) ** 2 / (s1 * s2),
    )
    lagrange = proof.equal(
        "For a unit source u = (cos θ, sin θ), ‖w‖² − (uᵀw)² = (u₁w₂ − u₂w₁)² ≥ 0: uᵀw ≤ ‖w‖.",
        w1**2 + w2**2 - (sp.cos(theta) * w1 + sp.sin(theta) * w2) ** 2, (sp.cos(theta) * w2 - sp.sin(theta) * w1) ** 2,
    )
    smallest = proof.compare(
        "So every unit source's threshold m / uᵀw is at least the standard source's m/‖w‖ (uᵀw = ‖w‖/(1 + κ), κ ≥ 0).",
        m / (nw / (1 + slack)) - m / nw, ">=", 0, witness=m * slack / nw,
    )

    proof.conclusion = (
        rf"Step {adversary.number}-{on_ball.number}: against a linear source the exact targeted $\ell_2$ adversary moves "
        rf"every point by $t\varepsilon u$, whatever the loss, as long as it falls with the target's margin. Steps "
        rf"{rand_mean.number}-{rand_cov.number} give D_rand's population MLE (step {noise.number}: at n points its mean's "
        rf"noise), and steps {sherman.number}-"
        rf"{rand_margin.number} its classifier's margin on the original class mean: positive exactly when "
        rf"$u^\top\Sigma^{{-1}}\mu > 0$, which the standard source always has ($u^\top w = \lVert w\rVert$); as "
        rf"$w'$ is linear in $\varepsilon$ and the accuracy is scale-free (step {free_of_eps.number}), D_rand's "
        rf"population accuracy does not depend on $\varepsilon > 0$. Steps {det_mean.number}-{det_margin.number} do "
        rf"the same for D_det, whose margin $\varepsilon u^\top w - m$ changes sign exactly at $\varepsilon^*$ (steps "
        rf"{at_threshold.number}-{below.number}). For the standard source $\varepsilon^*$ is the $\ell_2$ distance "
        rf"from $\mu$ to the source's boundary, $\lVert\mu\rVert$ times Theorem 3's alignment (steps {quad.number}-"
        rf"{distance.number}), the Mahalanobis distance times the data's spread along the perturbation (step "
        rf"{spread.number}), hence at least $\sqrt{{m / M(u)}}$ (step {cauchy.number}): the more misaligned the "
        rf"perturbation (Theorem 1), the smaller the radius at which D_det generalises can be. It is also the source's "
        rf"median margin, the radius at which its own attack succeeds on half the points (step {median.number}): a "
        rf"prediction free of the pixels' scale that a network source can be held to. No unit source does "
        rf"better than the standard one (steps {lagrange.number}-{smallest.number}); a robust source, better aligned "
        rf"with $\mu$, needs a larger $\varepsilon$."
    )
    return proof
