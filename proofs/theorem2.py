"""Theorem 2 (robustly learned parameters; Section 4, proof in Appendix E.3), step by step.

The relaxed robust MLE (eq. 11 with the l2 ball replaced by a penalty (lam/2)||delta||^2 shared by all
points, Appendix E.3.3) minimises over (mu, Sigma)

    F(Sigma) = E[max_delta l(x + delta; y mu, Sigma) - (lam/2)||delta||^2]
             = lam/2 tr[(lam Sigma - I)^-1 Sigma*] + 1/2 log det Sigma   (+ const, at mu = mu*),

and the paper's Sigma_r = 1/2 Sigma* + I/lam + (Sigma*/lam + Sigma*^2/4)^(1/2) is its minimiser. lam is tied to
the radius eps by E||delta*||^2 = eps^2 (as in gaussfeat.robust), and the resulting rates are compared with the
paper's bounds Omega((1 + e^1/2)/(e^1/2 + e^3/2)) <= lam <= O((1 + e^1/2)/e^1/2).
"""

from __future__ import annotations

import sympy as sp
from sympy.stats import Expectation, Normal, Rademacher

from .derivation import Derivation
from .spectral import Q, diagonal, let_rotation

s, t, lam, w, eps, b, tau = sp.symbols("s t lambda w epsilon b tau", positive=True)
d = sp.Symbol("d", integer=True, positive=True)
v, delta, offset = sp.symbols("v delta b_mu", real=True)
phi, F, p, P, U = (sp.Function(name) for name in ("phi", "F", "p", "P", "U"))
s_plus, s_minus = sp.Function("s_+"), sp.Function("s_-")
V = Normal("v", 0, sp.sqrt(t))  # the residual coordinate along a shared eigenvector: E v^2 = t
Y = Rademacher("y")  # the label
root = sp.sqrt(t / lam + t**2 / 4)


def derive() -> Derivation:
    """Theorem 2: Sigma_r is the relaxed objective's unique minimiser; lam(eps) and its rates."""
    proof = Derivation(
        "Theorem 2",
        "Robustly learned parameters",
        r"For $\lambda > 0$ the relaxed robust objective $F(\mu, \Sigma) = \mathbb E\left[\max_\delta "
        r"\ell(x + \delta; y\mu, \Sigma) - \tfrac{\lambda}{2}\lVert\delta\rVert_2^2\right]$ (finite iff "
        r"$\lambda\Sigma \succ I$) has the unique minimiser $\mu_r = \mu_*$, $\Sigma_r = \tfrac12\Sigma_* + "
        r"\tfrac1\lambda I + \left(\tfrac1\lambda\Sigma_* + \tfrac14\Sigma_*^2\right)^{1/2}$. It keeps the order of "
        r"$\Sigma_*$'s eigenvalues, $\operatorname{cond}(\Sigma_r) < \operatorname{cond}(\Sigma_*)$ unless $\Sigma_*$ "
        r"is isotropic, and $\Sigma_r \to \Sigma_*$ as $\lambda \to \infty$. Tying $\lambda$ to the radius by "
        r"$\mathbb E\lVert\delta^*\rVert_2^2 = \varepsilon^2$ defines a unique, decreasing $\lambda(\varepsilon)$, with "
        r"$\lambda \sim \sqrt{\operatorname{tr}\Sigma_*^{-1}}/\varepsilon$ as $\varepsilon \to 0$ and "
        r"$\lambda \sim d/\varepsilon^2$ as $\varepsilon \to \infty$: the paper's bounds on $\lambda$ have these "
        r"rates only when its $\varepsilon$ is a budget on the squared norm.",
    )
    n = sp.Symbol("n", integer=True, positive=True)
    sigma, sigma_star, I = sp.MatrixSymbol("Sigma", n, n), sp.MatrixSymbol("Sigma_*", n, n), sp.Identity(n)
    sigma2, sigma2_star, I2 = sp.MatrixSymbol("Sigma", 2, 2), sp.MatrixSymbol("Sigma_*", 2, 2), sp.Identity(2)
    D, D_star = sp.MatrixSymbol("D", 2, 2), sp.MatrixSymbol("D_*", 2, 2)
    s1, s2, t1, t2 = sp.symbols("s_1 s_2 t_1 t_2", positive=True)
    let_rotation(proof)
    proof.let(D, diagonal(s1, s2), "the diagonal matrix of Σ's eigenvalues in the 2-D check")
    proof.let(D_star, diagonal(t1, t2), "the diagonal matrix of Σ*'s eigenvalues in the 2-D check")
    proof.let(
        phi(delta),
        (v + delta) ** 2 / (2 * s) - lam * delta**2 / 2,
        "the inner objective along an eigenvector of Σ (eigenvalue s, residual coordinate v), constants dropped",
    )
    proof.let(
        F(s),
        lam * t / (2 * (lam * s - 1)) + sp.log(s) / 2,
        "the relaxed objective along an eigenvector shared with Σ* (eigenvalue t)",
    )
    proof.let(p(s), (lam * s - 1) ** 2 - lam**2 * s * t, "the stationarity polynomial")
    proof.let(s_plus(t), t / 2 + 1 / lam + root, "the larger root of p, the paper's Σ_r eigenvalue by eigenvalue")
    proof.let(s_minus(t), t / 2 + 1 / lam - root, "the smaller root of p")

    gradient = proof.equal(
        "The gradient of the data term, Σ and Σ* symmetric, any dimension n (the log-det term adds Σ⁻¹/2, by Jacobi's formula).",
        sp.Derivative(lam / 2 * sp.Trace((lam * sigma - I).I * sigma_star), sigma),
        -(lam**2) / 2 * (lam * sigma - I).I * sigma_star * (lam * sigma - I).I,
        where={sigma.T: sigma, sigma_star.T: sigma_star},
    )
    commute = proof.equal(
        "So ∇F = 0 reads λ²Σ* = (λΣ − I)Σ⁻¹(λΣ − I) = λ²Σ − 2λI + Σ⁻¹: Σ* is a function of Σ, sharing its eigenbasis.",
        (lam * sigma - I) * sigma.I * (lam * sigma - I),
        lam**2 * sigma - 2 * lam * I + sigma.I,
    )
    proof.equal(
        "On a shared eigenvector (s of Σ, t of Σ*) the stationarity condition λ²t = λ²s − 2λ + 1/s is p(s) = 0.",
        s * (lam**2 * s - 2 * lam + 1 / s - lam**2 * t),
        p(s),
    )
    split = proof.equal(
        "With a shared eigenbasis the relaxed objective splits into one term per eigen-direction (2-D check).",
        lam / 2 * sp.Trace((lam * sigma2 - I2).I * sigma2_star) + sp.log(sp.Determinant(sigma2)) / 2,
        sum(lam * tk / (2 * (lam * sk - 1)) + sp.log(sk) / 2 for sk, tk in [(s1, t1), (s2, t2)]),
        where={sigma2: Q * D * Q.T, sigma2_star: Q * D_star * Q.T},
    )

    proof.equal(
        "δ* = v/(λs − 1) is a stationary point of the inner objective (a maximum iff λs > 1, as in Theorem 1).",
        sp.Subs(sp.Derivative(phi(delta), delta), delta, v / (lam * s - 1)),
        0,
    )
    inner = proof.equal("The inner maximum is λv²/(2(λs − 1)).", phi(v / (lam * s - 1)), lam * v**2 / (2 * (lam * s - 1)))
    mean = proof.equal(
        "A mean off by b_μ along the direction adds λb_μ²/(2(λs − 1)) > 0 to the expected inner maximum, so μ_r = μ*.",
        Expectation(lam * (V + Y * offset) ** 2 / (2 * (lam * s - 1))),
        lam * (t + offset**2) / (2 * (lam * s - 1)),
    )
    proof.equal(
        "With v ~ N(0, t), the relaxed objective per direction is F(s).",
        Expectation(lam * V**2 / (2 * (lam * s - 1))) + sp.log(s) / 2,
        F(s),
    )

    proof.equal("F'(s) has the sign of p(s) on s > 1/λ.", sp.Derivative(F(s), s), p(s) / (2 * s * (lam * s - 1) ** 2))
    proof.equal("p is the quadratic λ²s² − (2λ + λ²t)s + 1.", p(s), lam**2 * s**2 - (2 * lam + lam**2 * t) * s + 1)
    roots = proof.equal("Its roots are s₊ and s₋.", p(s), lam**2 * (s - s_plus(t)) * (s - s_minus(t)))
    infeasible = proof.compare(
        "The smaller root is infeasible: λs₋ < 1.",
        1 - lam * s_minus(t),
        ">",
        witness=lam * t / (sp.sqrt(lam * t + lam**2 * t**2 / 4) + lam * t / 2),
    )
    feasible = proof.compare("The larger root is feasible: λs₊ > 1.", lam * s_plus(t) - 1, ">", witness=lam * t / 2 + lam * root)
    left = proof.equal("F blows up at the left end of its domain s > 1/λ.", sp.Limit(F(s), s, 1 / lam, "+"), sp.oo)
    right = proof.equal("F blows up as s grows.", sp.Limit(F(s), s, sp.oo), sp.oo)
    curvature = proof.compare(
        "F is strictly convex at s₊.",
        sp.Subs(sp.Derivative(F(s), (s, 2)), s, s_plus(t)),
        ">",
        witness=lam**2 * root / (s_plus(t) * (lam * t / 2 + lam * root) ** 2),
    )

    proof.equal("s₊ is a perfect square: √s₊ = √t/2 + √(t/4 + 1/λ).", s_plus(t), (sp.sqrt(t) / 2 + sp.sqrt(t / 4 + 1 / lam)) ** 2)
    ratio = proof.equal(
        "Relative to t: s₊/t = (1/2 + √(1/4 + 1/(λt)))².",
        s_plus(t) / t,
        (sp.Rational(1, 2) + sp.sqrt(sp.Rational(1, 4) + 1 / (lam * t))) ** 2,
    )
    standard = proof.equal("Without an adversary (λ → ∞) the standard MLE returns: s₊ → t.", sp.Limit(s_plus(t), lam, sp.oo), t)
    order = proof.compare(
        "s₊ is increasing in t, so Σ_r keeps the order of Σ*'s eigenvalues.",
        sp.Derivative(s_plus(t), t),
        ">",
        witness=sp.Rational(1, 2) + (t / 4 + 1 / (2 * lam)) / root,
    )
    near, far = sp.sqrt(sp.Rational(1, 4) + 1 / (lam * t)), sp.sqrt(sp.Rational(1, 4) + 1 / (lam * t * (1 + w)))
    shrink = proof.compare(
        "s₊/t is smaller at a larger eigenvalue t(1 + w), so cond(Σ_r) < cond(Σ*) whenever Σ* is anisotropic.",
        s_plus(t) / t - s_plus(t * (1 + w)) / (t * (1 + w)),
        ">",
        witness=w * (1 + near + far) / (lam * t * (1 + w) * (near + far)),
    )

    budget = proof.equal(
        "The optimal perturbation's expected square along the direction is t/(λs − 1)².",
        Expectation((V / (lam * s - 1)) ** 2),
        t / (lam * s - 1) ** 2,
    )
    per_term = proof.equal("At s₊, by p(s₊) = 0, that is 1/(λ²s₊).", t / (lam * s_plus(t) - 1) ** 2, 1 / (lam**2 * s_plus(t)))
    proof.equal("λ²s₊ is a perfect square too.", lam**2 * s_plus(t), (lam * sp.sqrt(t) / 2 + sp.sqrt(lam**2 * t / 4 + lam)) ** 2)
    half_root = sp.sqrt(lam**2 * t / 4 + lam)
    monotone = proof.compare(
        "λ²s₊ is increasing in λ, so each term 1/(λ²s₊) of ε² is decreasing in λ.",
        sp.Derivative(lam**2 * s_plus(t), lam),
        ">",
        witness=2 * (lam * sp.sqrt(t) / 2 + half_root) * (sp.sqrt(t) / 2 + (lam * t / 4 + sp.Rational(1, 2)) / half_root),
    )
    proof.equal("Each term tends to ∞ as λ → 0 ...", sp.Limit(1 / (lam**2 * s_plus(t)), lam, 0, "+"), sp.oo)
    tiny = proof.equal(
        "... and to 0 as λ → ∞, so every ε > 0 has exactly one λ(ε), decreasing in ε.",
        sp.Limit(1 / (lam**2 * s_plus(t)), lam, sp.oo),
        0,
    )
    small = proof.equal(
        "As λ → ∞, λ² · 1/(λ²s₊) → 1/t: ε²λ² → tr Σ*⁻¹, so λ ~ √(tr Σ*⁻¹)/ε as ε → 0.",
        sp.Limit(lam**2 / (lam**2 * s_plus(t)), lam, sp.oo),
        1 / t,
    )
    large = proof.equal(
        "As λ → 0, λ · 1/(λ²s₊) → 1: ε²λ → d, so λ ~ d/ε² as ε → ∞.",
        sp.Limit(lam / (lam**2 * s_plus(t)), lam, 0, "+"),
        1,
    )

    shape = (1 + sp.sqrt(b)) / (sp.sqrt(b) + b ** sp.Rational(3, 2))
    proof.let(P(b), shape, "the shape of the paper's lower bound on λ, for a budget b")
    proof.let(U(b), (1 + sp.sqrt(b)) / sp.sqrt(b), "the shape of the paper's upper bound on λ")
    proof.equal("The lower shape behaves as b^(−1/2) as b → 0 ...", sp.Limit(sp.sqrt(b) * P(b), b, 0, "+"), 1)
    proof.equal("... and as 1/b as b → ∞.", sp.Limit(b * P(b), b, sp.oo), 1)
    small_lam, large_lam = sp.sqrt(tau) / eps, d / eps**2  # lam(eps)'s asymptotic forms, tau = tr Sigma*^-1
    squared = [
        proof.equal(
            "Reading the paper's ε as a squared budget (b = ε², τ = tr Σ*⁻¹), λ/P tends to √τ as ε → 0: the rates match.",
            sp.Limit(small_lam / P(eps**2), eps, 0, "+"),
            sp.sqrt(tau),
        ),
        proof.equal("With b = ε², λ/P tends to d as ε → ∞: the rates match.", sp.Limit(large_lam / P(eps**2), eps, sp.oo), d),
        proof.equal(
            "With b = ε², λ/U tends to √τ as ε → 0: the upper bound's rate matches too.",
            sp.Limit(small_lam / U(eps**2), eps, 0, "+"),
            sp.sqrt(tau),
        ),
    ]
    radius = [
        proof.equal(
            "Reading ε as the radius (b = ε), λ/P is unbounded as ε → 0: the rates differ.",
            sp.Limit(small_lam / P(eps), eps, 0, "+"),
            sp.oo,
        ),
        proof.equal("With b = ε, λ/P tends to 0 as ε → ∞: the rates differ.", sp.Limit(large_lam / P(eps), eps, sp.oo), 0),
        proof.equal(
            "With b = ε, λ/U is unbounded as ε → 0: λ = O(U(ε)) fails.",
            sp.Limit(small_lam / U(eps), eps, 0, "+"),
            sp.oo,
        ),
    ]

    proof.conclusion = (
        rf"Stationarity in $\Sigma$ (steps {gradient.number}-{commute.number}) forces $\Sigma$ to share $\Sigma_*$'s "
        rf"eigenbasis, and then the objective splits over eigen-directions (step {split.number}). Along each, the "
        rf"inner maximum is finite iff $\lambda s > 1$ and equals $\lambda v^2/(2(\lambda s - 1))$ (step {inner.number}); "
        rf"a mean offset only adds a positive term (step {mean.number}), so $\mu_r = \mu_*$. $F$ is continuous on "
        rf"$(1/\lambda, \infty)$ and tends to $+\infty$ at both ends (steps {left.number}-{right.number}), so it has a "
        rf"minimiser there, which is a root of $p$; of the two roots (step {roots.number}) only $s_+$ lies in the "
        rf"domain (steps {infeasible.number}-{feasible.number}), and $F''(s_+) > 0$ (step {curvature.number}). Hence "
        rf"$s_+(t)$, eigenvalue by eigenvalue, is the unique minimiser: the paper's $\Sigma_r$. It tends to $\Sigma_*$ "
        rf"as $\lambda \to \infty$ (step {standard.number}), keeps the eigenvalue order (step {order.number}), and "
        rf"shrinks the ratio $s_+/t$ more at larger $t$ (steps {ratio.number}, {shrink.number}), so "
        rf"$\operatorname{{cond}}(\Sigma_r) = s_+(t_{{\max}})/s_+(t_{{\min}}) < t_{{\max}}/t_{{\min}}$. The budget "
        rf"$\varepsilon^2 = \mathbb E\lVert\delta^*\rVert^2 = \sum_i 1/(\lambda^2 s_+(t_i)) = "
        rf"\operatorname{{tr}}(\Sigma_r^{{-1}})/\lambda^2$ (steps {budget.number}-{per_term.number}) falls strictly "
        rf"from $\infty$ to $0$ as $\lambda$ grows (steps {monotone.number}-{tiny.number}), so $\lambda(\varepsilon)$ "
        rf"is unique and decreasing; $\varepsilon \to 0$ iff $\lambda \to \infty$, where $\varepsilon^2\lambda^2 \to "
        rf"\sum_i 1/t_i$ (step {small.number}), and $\varepsilon \to \infty$ iff $\lambda \to 0$, where "
        rf"$\varepsilon^2\lambda \to d$ (step {large.number}). As $\lambda(\varepsilon)$ is asymptotic to these "
        rf"forms, $\lambda/P$ and $\lambda/U$ have the limits of steps {squared[0].number}-{radius[-1].number}: finite "
        rf"and positive when the paper's $\varepsilon$ is read as $\varepsilon^2$, degenerate when it is read as the radius."
    )
    proof.corrections += [
        rf"The bounds $\Omega\left(\frac{{1 + \varepsilon^{{1/2}}}}{{\varepsilon^{{1/2}} + \varepsilon^{{3/2}}}}\right) "
        rf"\le \lambda \le O\left(\frac{{1 + \varepsilon^{{1/2}}}}{{\varepsilon^{{1/2}}}}\right)$ have the rates of "
        rf"$\lambda(\varepsilon)$ only if $\varepsilon$ is a budget on the **squared** norm, "
        rf"$\mathbb E\lVert\delta\rVert_2^2 \le \varepsilon$ (steps {squared[0].number}-{squared[-1].number}). Read as "
        rf"the radius of the $\ell_2$ ball of eq. (11), $\lambda$ over the lower shape is unbounded as "
        rf"$\varepsilon \to 0$ and vanishes as $\varepsilon \to \infty$, and the upper bound fails (steps "
        rf"{radius[0].number}-{radius[-1].number}).",
    ]
    return proof
