"""Theorem 3 (gradient alignment; Section 4, proof in Appendix E), step by step.

For the linear classifier f(x) = x^T Sigma^-1 mu (or any increasing function of it) the input gradient is
Sigma^-1 mu, and the worst case over mu of cos(mu, Sigma^-1 mu) is 2 sqrt(k)/(1 + k), k = cond(Sigma), by the
Kantorovich inequality. The paper compares Sigma* with Theorem 2's Sigma_r; here cond(Sigma_r) is shown to fall
as the budget grows, so the worst-case alignment rises.
"""

from __future__ import annotations

import sympy as sp

from .derivation import Derivation
from .spectral import Q, column, diagonal, let_rotation

m, M, k, c, w, X, Y, scale = sp.symbols("m M k c w X Y sigma", positive=True)
alpha, beta, g = sp.symbols("alpha beta g", nonnegative=True)
s, u, t, t_min, t_max = sp.symbols("s u t t_min t_max", positive=True)
i, j, d = sp.symbols("i j d", integer=True, positive=True)
a, x, p = sp.IndexedBase("a", real=True), sp.IndexedBase("x", real=True), sp.IndexedBase("p")
eig = sp.IndexedBase("s", positive=True)  # the eigenvalues s_i of Sigma
h, e, s_plus = sp.Function("h"), sp.Function("e"), sp.Function("s_+")


def _sum(term: sp.Expr, index: sp.Symbol = i) -> sp.Sum:
    """The sum of term over index = 1..d."""
    return sp.Sum(term, (index, 1, d))


def _cosine(coordinates: tuple[sp.Expr, ...], eigenvalues: tuple[sp.Expr, ...]) -> sp.Expr:
    """cos(mu, Sigma^-1 mu) from mu's coordinates in Sigma's eigenbasis and Sigma's eigenvalues."""
    pairs = list(zip(coordinates, eigenvalues))
    norms = sum(ak**2 for ak in coordinates) * sum(ak**2 / sk**2 for ak, sk in pairs)
    return sum(ak**2 / sk for ak, sk in pairs) / sp.sqrt(norms)


def derive() -> Derivation:
    """Theorem 3: min over mu of cos(mu, Sigma^-1 mu) = 2 sqrt(k)/(1 + k), rising as robust training lowers k."""
    proof = Derivation(
        "Theorem 3",
        "Gradient alignment",
        r"For $f(x) = \varphi(x^\top \Sigma^{-1}\mu)$ with $\varphi$ increasing, $\nabla_x f$ points along "
        r"$\Sigma^{-1}\mu$, and $\min_{\mu \ne 0} \cos(\mu, \Sigma^{-1}\mu) = \frac{2\sqrt{\kappa}}{1 + \kappa}$ with "
        r"$\kappa = \operatorname{cond}(\Sigma)$ (Kantorovich), attained at $\mu = \sqrt{\sigma_{\min}}\, e_{\min} + "
        r"\sqrt{\sigma_{\max}}\, e_{\max}$. The bound falls as $\kappa$ grows, and $\operatorname{cond}(\Sigma_r)$ falls "
        r"strictly from $\operatorname{cond}(\Sigma_*)$ towards 1 as the budget $\varepsilon$ grows: the robust model's "
        r"worst-case alignment is strictly larger than the standard one's when $\Sigma_*$ is anisotropic and "
        r"$\varepsilon > 0$, and equal (to 1) when $\Sigma_*$ is isotropic.",
    )
    n = sp.Symbol("n", integer=True, positive=True)
    sigma, mu, point = sp.MatrixSymbol("Sigma", n, n), sp.MatrixSymbol("mu", n, 1), sp.MatrixSymbol("x", n, 1)
    sigma2, mu2, D = sp.MatrixSymbol("Sigma", 2, 2), sp.MatrixSymbol("mu", 2, 1), sp.MatrixSymbol("D", 2, 2)
    s1, s2 = sp.symbols("s_1 s_2", positive=True)
    a1, a2 = sp.symbols("a_1 a_2", real=True, nonzero=True)
    let_rotation(proof)
    proof.let(D, diagonal(s1, s2), "the diagonal matrix of Σ's eigenvalues in the 2-D checks")
    proof.let(x[i], a[i] / sp.sqrt(eig[i]), "the coordinates of x = Σ^(−1/2) μ, where μ has coordinates a_i in Σ's eigenbasis")
    proof.let(p[i], (a[i] ** 2 / eig[i]) / _sum(a[j] ** 2 / eig[j], j), "the weights x_i²/‖x‖²")

    gradient = proof.equal(
        "The input gradient of xᵀΣ⁻¹μ is Σ⁻¹μ, the same at every x (any dimension n).",
        sp.Derivative(point.T * sigma.I * mu, point),
        sigma.I * mu,
    )
    rotated = {sigma2: Q * D * Q.T, mu2: Q * column(a1, a2)}
    basis = [
        proof.equal(f"In Σ's eigenbasis (Σ = Q D Qᵀ, μ = Q a), {name} is a sum over eigenvalues (2-D check).", form, value, where=rotated)
        for name, form, value in [
            ("μᵀΣ⁻¹μ", mu2.T * sigma2.I * mu2, a1**2 / s1 + a2**2 / s2),
            ("‖μ‖²", mu2.T * mu2, a1**2 + a2**2),
            ("‖Σ⁻¹μ‖²", mu2.T * sigma2.I * sigma2.I * mu2, a1**2 / s1**2 + a2**2 / s2**2),
        ]
    ]
    whitened = proof.equal(
        "In x = Σ^(−1/2) μ the cosine is ‖x‖²/√((xᵀΣx)(xᵀΣ⁻¹x)).",
        _sum(a[i] ** 2 / eig[i]) / sp.sqrt(_sum(a[i] ** 2) * _sum(a[i] ** 2 / eig[i] ** 2)),
        _sum(x[i] ** 2) / sp.sqrt(_sum(eig[i] * x[i] ** 2) * _sum(x[i] ** 2 / eig[i])),
    )
    proof.equal("The weights p_i ≥ 0 sum to 1.", _sum(p[i]), 1)
    squared = proof.equal(
        "The squared cosine is 1/(AH), with A = Σ p_i s_i and H = Σ p_i/s_i.",
        _sum(x[i] ** 2) ** 2 / (_sum(eig[i] * x[i] ** 2) * _sum(x[i] ** 2 / eig[i])),
        1 / (_sum(p[i] * eig[i]) * _sum(p[i] / eig[i])),
    )

    proof.equal("Kantorovich's pointwise identity, for an eigenvalue s.", (s - m) * (s - M) / s, s + m * M / s - (m + M))
    pointwise = proof.compare(
        "For m ≤ s ≤ M (s = m + α, M = s + β), (s − m)(s − M)/s ≤ 0.",
        (s - m) * (s - M) / s,
        "<=",
        witness=-alpha * beta / (m + alpha),
        where={s: m + alpha, M: m + alpha + beta},
    )
    average = proof.equal(
        "Averaging that over eigenvalues s_i in [m, M] with the weights p_i gives A + mMH − (m + M), which is therefore ≤ 0.",
        _sum(p[i] * (eig[i] - m) * (eig[i] - M) / eig[i]),
        _sum(p[i] * eig[i]) + m * M * _sum(p[i] / eig[i]) - (m + M),
    )
    am_gm = proof.compare("AM-GM: 4XY ≤ (X + Y)², here with X = A and Y = mMH.", (X + Y) ** 2 - 4 * X * Y, ">=", witness=(X - Y) ** 2)
    square = proof.compare(
        "And (A + mMH)² ≤ (m + M)², as 0 < X = A + mMH ≤ m + M = X + g.",
        (m + M) ** 2 - X**2,
        ">=",
        witness=g * (2 * X + g),
        where={M: X + g - m},
    )
    bound = proof.equal(
        "So cos ≥ 2√(mM)/(m + M), which is 2√k/(1 + k) with k = M/m.",
        2 * sp.sqrt(m * M) / (m + M),
        2 * sp.sqrt(k) / (1 + k),
        where={M: k * m},
    )
    attained = proof.equal(
        "The bound is attained at Σ = diag(m, M), μ = (√m, √M).",
        _cosine((a1, a2), (s1, s2)),
        2 * sp.sqrt(m * M) / (m + M),
        where={s1: m, s2: M, a1: sp.sqrt(m), a2: sp.sqrt(M)},
    )
    isotropic = proof.equal(
        "For isotropic Σ = σI every μ has cosine 1, the bound at k = 1: the strict inequality needs anisotropy.",
        _cosine((a1, a2), (s1, s2)),
        1,
        where={s1: scale, s2: scale},
    )
    proof.equal("The bound's slope in k.", sp.Derivative(2 * sp.sqrt(k) / (1 + k), k), (1 - k) / (sp.sqrt(k) * (1 + k) ** 2))
    falling = proof.compare(
        "The bound falls strictly as the condition number k > 1 grows (k = 1 + w).",
        sp.Derivative(2 * sp.sqrt(k) / (1 + k), k),
        "<",
        witness=-w / (sp.sqrt(1 + w) * (2 + w) ** 2),
        where={k: 1 + w},
    )

    half, quarter = sp.Rational(1, 2), sp.Rational(1, 4)
    proof.let(h(u), (half + sp.sqrt(quarter + u)) ** 2, "the robust eigenvalue relative to t, as a function of u = c/t")
    proof.let(s_plus(t), t / 2 + c + sp.sqrt(c * t + t**2 / 4), "Theorem 2's robust eigenvalue, with c = 1/λ")
    proof.let(e(u), 1 - 1 / (2 * sp.sqrt(quarter + u)), "the elasticity of h")
    proof.equal("Theorem 2's eigenvalue map is s₊(t) = t h(c/t).", s_plus(t), t * h(c / t))
    proof.equal("The elasticity u h'(u)/h(u) of h is e(u).", u * sp.Derivative(h(u), u) / h(u), e(u))
    elastic = proof.compare(
        "The elasticity is increasing.",
        sp.Derivative(e(u), u),
        ">",
        witness=1 / (4 * (quarter + u) ** sp.Rational(3, 2)),
    )
    cond = s_plus(t_max) / s_plus(t_min)
    proof.equal(
        "So cond(Σ_r) = s₊(t_max)/s₊(t_min) is cond(Σ*) = t_max/t_min times h(c/t_max)/h(c/t_min).",
        cond,
        t_max / t_min * h(c / t_max) / h(c / t_min),
    )
    proof.equal(
        "Its log's slope in c is the difference of elasticities over c.",
        sp.Derivative(sp.log(cond), c),
        (e(c / t_max) - e(c / t_min)) / c,
    )
    near, far = sp.sqrt(quarter + c / t_min), sp.sqrt(quarter + c / (t_min * (1 + w)))
    decreasing = proof.compare(
        "cond(Σ_r) falls strictly as c = 1/λ grows, for anisotropic Σ* (t_max = t_min(1 + w)).",
        sp.Derivative(sp.log(cond), c),
        "<",
        witness=-w / (2 * t_min * (1 + w) * near * far * (near + far)),
        where={t_max: t_min * (1 + w)},
    )
    start = proof.equal("Without an adversary (c → 0) cond(Σ_r) is cond(Σ*) = t_max/t_min.", sp.Limit(cond, c, 0, "+"), t_max / t_min)
    end = proof.equal("With an unbounded budget (c → ∞) cond(Σ_r) → 1.", sp.Limit(cond, c, sp.oo), 1)

    proof.conclusion = (
        rf"The gradient is $\Sigma^{{-1}}\mu$ (step {gradient.number}); an increasing $\varphi$ only rescales it by "
        rf"$\varphi' > 0$, which leaves the cosine unchanged. In $\Sigma$'s eigenbasis (steps {basis[0].number}-"
        rf"{basis[-1].number}) the cosine is $1/\sqrt{{AH}}$ for the weights $p_i$ (steps {whitened.number}-"
        rf"{squared.number}). Averaging the pointwise inequality (step {pointwise.number}) gives $A + mMH \le m + M$ "
        rf"(step {average.number}); with AM-GM and squaring (steps {am_gm.number}-{square.number}), "
        rf"$4mM\,AH \le (A + mMH)^2 \le (m + M)^2$, so $\cos \ge 2\sqrt{{mM}}/(m + M) = 2\sqrt\kappa/(1 + \kappa)$ "
        rf"(step {bound.number}), with equality at $\mu = \sqrt{{m}}\,e_{{\min}} + \sqrt{{M}}\,e_{{\max}}$ (step "
        rf"{attained.number}): the minimum over $\mu$ is the bound, and it is strictly decreasing in $\kappa \ge 1$ "
        rf"(step {falling.number}). For the robust model, $\kappa_r = \operatorname{{cond}}(\Sigma_r) = "
        rf"s_+(t_{{\max}})/s_+(t_{{\min}})$ because $s_+$ is increasing (Theorem 2). Its logarithm has slope "
        rf"$[e(c/t_{{\max}}) - e(c/t_{{\min}})]/c < 0$ in $c = 1/\lambda$ (step {decreasing.number}; $e$ is increasing, "
        rf"step {elastic.number}), so $\kappa_r$ falls strictly from $\operatorname{{cond}}(\Sigma_*)$ at $c = 0$ to 1 "
        rf"as $c \to \infty$ (steps {start.number}-{end.number}). $\lambda(\varepsilon)$ decreases in $\varepsilon$ "
        rf"(Theorem 2), so $c$ grows with $\varepsilon$: the worst-case alignment $2\sqrt{{\kappa_r}}/(1 + \kappa_r)$ "
        rf"rises strictly with $\varepsilon$, and exceeds the standard model's for every $\varepsilon > 0$ when "
        rf"$\Sigma_*$ is anisotropic. When $\Sigma_* = \sigma I$ both sides are 1 (step {isotropic.number})."
    )
    proof.corrections += [
        rf"The strict inequality of Theorem 3 needs an anisotropic $\Sigma_*$ (and $\varepsilon > 0$): for "
        rf"$\Sigma_* = \sigma I$ every $\mu$ has cosine 1 for both models (step {isotropic.number}); otherwise it "
        rf"holds for every $\varepsilon > 0$ (steps {decreasing.number}-{start.number}).",
    ]
    return proof
