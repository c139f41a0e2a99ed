"""gaussfeat: the two-Gaussian model of Ilyas et al. (NeurIPS 2019), Section 4, made checkable.

y is uniform on {-1, +1} and x ~ N(y mu*, Sigma*). The package provides the model and its
standard MLE, exact and approximate adversaries, the closed-form robust MLE of Theorem 2 and
adversarial training by (sub)gradient descent, and Theorems 1-3 as functions returning reports.
Section 3's relabelled sets D_rand and D_det inside the model, in closed form (:mod:`.relabelled`).
Beyond the paper's model: a k-class mixture with a shared covariance (:mod:`.mixture`), a product-Laplace
model (:mod:`.laplace`), and the measurements of both (:mod:`.beyond`, ``gaussfeat beyond``).
Conventions (the 1/2 in the NLL, eps as an l2 radius) are stated in each module's docstring.
"""

from ._checks import GaussfeatError
from .adversary import l2_adversary, lagrangian_adversary, pgd_adversary
from .alignment import gradient_alignment, worst_case_alignment, worst_case_mean
from . import curve, linear, metrics
from .instances import figure4, random_instance
from .laplace import (
    LaplaceFit,
    ProductLaplace,
    aligned_laplace,
    laplace_adversary,
    laplace_ball_maximiser,
    laplace_mle,
    llr_alignment,
    random_laplace,
    robust_laplace_mle,
    robust_laplace_objective,
    robust_laplace_scales,
)
from .mixture import GaussianMixture, mixture_mle, pairwise_alignments, random_mixture, robust_mixture_mle
from .model import TwoGaussian, mle
from .relabelled import RelabelledFit, d_det, d_det_threshold, d_rand
from .robust import (
    RobustFit,
    paper_lambda_bound_shapes,
    relaxed_budget,
    relaxed_gradient,
    relaxed_objective,
    robust_covariance,
    robust_eigenvalues,
    robust_lambda,
    robust_mle,
)
from .theorems import Check, TheoremReport, check_all, relabelled_sets, theorem1, theorem2, theorem3
from .vulnerability import misalignment_gap, penalized_gap

__all__ = [
    "Check",
    "GaussfeatError",
    "GaussianMixture",
    "LaplaceFit",
    "ProductLaplace",
    "RelabelledFit",
    "RobustFit",
    "TheoremReport",
    "TwoGaussian",
    "aligned_laplace",
    "check_all",
    "curve",
    "d_det",
    "d_det_threshold",
    "d_rand",
    "figure4",
    "gradient_alignment",
    "l2_adversary",
    "lagrangian_adversary",
    "laplace_adversary",
    "laplace_ball_maximiser",
    "laplace_mle",
    "linear",
    "llr_alignment",
    "metrics",
    "misalignment_gap",
    "mixture_mle",
    "mle",
    "pairwise_alignments",
    "paper_lambda_bound_shapes",
    "penalized_gap",
    "pgd_adversary",
    "random_instance",
    "random_laplace",
    "random_mixture",
    "relabelled_sets",
    "relaxed_budget",
    "relaxed_gradient",
    "relaxed_objective",
    "robust_covariance",
    "robust_eigenvalues",
    "robust_lambda",
    "robust_laplace_mle",
    "robust_laplace_objective",
    "robust_laplace_scales",
    "robust_mixture_mle",
    "robust_mle",
    "theorem1",
    "theorem2",
    "theorem3",
    "worst_case_alignment",
    "worst_case_mean",
]
__version__ = "0.1.0"
