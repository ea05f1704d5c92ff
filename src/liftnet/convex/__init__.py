"""Exact training of small ReLU networks by the nuclear-norm convex heuristic (paper 002).

``reformulation`` writes the exact-fit network as affine constraints plus bilinear equalities
and those as rank constraints (numpy, pure); ``solve`` minimises the weighted sum of nuclear
norms with CVXPY, an optional dependency (``pip install liftnet[convex]``) imported only when a
problem is solved.  The sequential scheme is :class:`liftnet.methods.Convex` (``--method convex``).
"""

from __future__ import annotations

from .reformulation import (
    PRODUCT_BLOCKS,
    RELU_BLOCKS,
    LiftedPoint,
    affine_residual,
    bilinear_blocks,
    bilinear_residuals,
    bilinear_violations,
    heuristic_value,
    lift,
    max_violation,
    network_output,
    rank_matrix,
    reference,
    relative_output_error,
    residual_nuclear_norm,
)
from .solve import (
    CVXPY_MISSING,
    SOLVERS,
    ProblemSize,
    Solution,
    import_cvxpy,
    problem_size,
    psd_sides,
    solve_heuristic,
)

__all__ = [
    "CVXPY_MISSING", "PRODUCT_BLOCKS", "RELU_BLOCKS", "SOLVERS", "LiftedPoint", "ProblemSize",
    "Solution", "affine_residual", "bilinear_blocks", "bilinear_residuals", "bilinear_violations",
    "heuristic_value", "import_cvxpy", "lift", "max_violation", "network_output", "problem_size",
    "psd_sides", "rank_matrix", "reference", "relative_output_error", "residual_nuclear_norm",
    "solve_heuristic",
]
