"""Shared numerical kernels: pure functions that know nothing about networks.

* :mod:`.ridge` -- ridge regression from data or from Gram statistics (paper 004, Section 6.1).
* :mod:`.nnls` -- box-constrained QPs / NNLS with one shared matrix (paper 004 (13)).
* :mod:`.simplex` -- simplex projection and the cross-entropy prox of Appendix A (15)/(16).
* :mod:`.pgd` -- a small accelerated projected-gradient routine.
* :mod:`.majorize` -- regression through a convex function of the outputs (MM, shared matrix).
* :mod:`.majorize_dual` -- the same MM computed in sample space (fewer rows than columns).
* :mod:`.mirror` -- Bregman proximal gradient with an activation's potential as the distance.
* :mod:`.prox` -- closed-form proximal maps of the splitting methods (ReLU, linear layer).

Like ``torch.linalg``, the kernels check shapes, dtypes and settings but not the values: NaN or
infinite entries propagate to the result (training reports them once per epoch, with the epoch
and method; ridge regressions refuse them at once, their statistics being summed).
"""

from __future__ import annotations

from .majorize import MMResult, augmented_gram, mm_precision, mm_regression
from .majorize_dual import dual_applies, mm_regression_dual, sample_precision
from .mirror import MirrorResult, bregman_gradient
from .nnls import QPResult, box_qp, nnls
from .pgd import APGResult, apg, lipschitz_sym
from .prox import linear_prox, relu_prox
from .ridge import GramStats, gram_stats, ridge, ridge_from_stats, ridge_operator
from .simplex import project_simplex, simplex_ce_prox

__all__ = [
    "APGResult",
    "MMResult",
    "MirrorResult",
    "augmented_gram",
    "mm_precision",
    "mm_regression",
    "dual_applies",
    "mm_regression_dual",
    "sample_precision",
    "GramStats",
    "QPResult",
    "apg",
    "box_qp",
    "bregman_gradient",
    "gram_stats",
    "linear_prox",
    "lipschitz_sym",
    "nnls",
    "project_simplex",
    "relu_prox",
    "ridge",
    "ridge_from_stats",
    "ridge_operator",
    "simplex_ce_prox",
]
