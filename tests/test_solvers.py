"""Every solver against an independent reference: numpy closed forms, scipy, sklearn, cvxpy."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
import torch
from scipy.optimize import lsq_linear
from scipy.optimize import nnls as scipy_nnls

from liftnet.solvers import (
    GramStats,
    apg,
    box_qp,
    gram_stats,
    lipschitz_sym,
    nnls,
    project_simplex,
    ridge,
    ridge_from_stats,
    ridge_operator,
    simplex_ce_prox,
)
from liftnet.solvers.simplex import _nu_bracket, _nu_lower_appendix_a, _z_of_nu

# the package re-exports functions with the same names as two of its modules
nnls_module = importlib.import_module("liftnet.solvers.nnls")
pgd_module = importlib.import_module("liftnet.solvers.pgd")

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: 2e-4, torch.float64: 1e-10}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------------- ridge


def _ridge_reference(X, T, alpha, fit_intercept=True, W0=None, b0=None, gamma=0.0):
    """Normal equations solved by numpy in float64."""
    X, T = np.asarray(X, np.float64), np.asarray(T, np.float64)
    n, d = X.shape
    Xa = np.c_[X, np.ones(n)] if fit_intercept else X
    m = Xa.shape[1]
    pen = np.diag([alpha] * d + [0.0] * (m - d)) + gamma * np.eye(m)
    rhs = Xa.T @ T
    if gamma:
        theta0 = np.zeros((m, T.shape[1]))
        if W0 is not None:
            theta0[:d] = np.asarray(W0, np.float64).T
        if fit_intercept and b0 is not None:
            theta0[d] = np.asarray(b0, np.float64)
        rhs = rhs + gamma * theta0
    theta = np.linalg.solve(Xa.T @ Xa + pen, rhs)
    b = theta[d] if fit_intercept else np.zeros(T.shape[1])
    return theta[:d].T, b


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_ridge_matches_normal_equations(dtype, fit_intercept):
    g = _gen(0)
    X = torch.randn(80, 7, generator=g, dtype=dtype) + 0.5
    T = torch.randn(80, 3, generator=g, dtype=dtype)
    W, b = ridge(X, T, 0.7, fit_intercept=fit_intercept)
    W_ref, b_ref = _ridge_reference(X, T, 0.7, fit_intercept)
    assert W.shape == (3, 7) and b.shape == (3,)
    assert W.dtype == dtype and b.dtype == dtype
    np.testing.assert_allclose(W.double().numpy(), W_ref, atol=TOL[dtype] * 10)
    np.testing.assert_allclose(b.double().numpy(), b_ref, atol=TOL[dtype] * 10)
    if not fit_intercept:
        assert torch.all(b == 0)


def test_ridge_matches_sklearn():
    from sklearn.linear_model import Ridge

    g = _gen(1)
    X = torch.randn(60, 5, generator=g, dtype=torch.float64) * 3 + 1
    T = torch.randn(60, 4, generator=g, dtype=torch.float64)
    # sklearn: ||T - X W^T - b||^2 + alpha ||W||^2  ==  2 x ours with the same alpha
    for alpha in (1e-3, 1.0, 50.0):
        ref = Ridge(alpha=alpha, fit_intercept=True, solver="cholesky").fit(X.numpy(), T.numpy())
        W, b = ridge(X, T, alpha)
        np.testing.assert_allclose(W.numpy(), ref.coef_, atol=1e-9)
        np.testing.assert_allclose(b.numpy(), ref.intercept_, atol=1e-9)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_ridge_proximal_matches_direct_solve(fit_intercept):
    g = _gen(2)
    X = torch.randn(40, 6, generator=g, dtype=torch.float64)
    T = torch.randn(40, 2, generator=g, dtype=torch.float64)
    W0 = torch.randn(2, 6, generator=g, dtype=torch.float64)
    b0 = torch.randn(2, generator=g, dtype=torch.float64)
    W, b = ridge(X, T, 0.3, fit_intercept=fit_intercept, W0=W0, b0=b0, gamma=2.5)
    W_ref, b_ref = _ridge_reference(X, T, 0.3, fit_intercept, W0, b0, 2.5)
    np.testing.assert_allclose(W.numpy(), W_ref, atol=1e-10)
    np.testing.assert_allclose(b.numpy(), b_ref, atol=1e-10)
    # a huge proximal weight pins the solution to (W0, b0)
    W, b = ridge(X, T, 0.3, W0=W0, b0=b0, gamma=1e12)
    torch.testing.assert_close(W, W0, atol=1e-8, rtol=0)
    torch.testing.assert_close(b, b0, atol=1e-8, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_ridge_from_summed_stats_equals_ridge_on_all(dtype):
    g = _gen(3)
    X = torch.randn(90, 5, generator=g, dtype=dtype)
    T = torch.randn(90, 3, generator=g, dtype=dtype)
    s1, s2 = gram_stats(X[:40], T[:40]), gram_stats(X[40:], T[40:])
    total = s1 + s2
    assert isinstance(total, GramStats) and total.n == 90
    assert (total.d_in, total.d_out) == (5, 3)
    full = gram_stats(X, T)
    torch.testing.assert_close(total.xx, full.xx)
    torch.testing.assert_close(sum([s1, s2]).xt, full.xt)
    for a, b in zip(ridge_from_stats(total, 0.1), ridge(X, T, 0.1), strict=True):
        torch.testing.assert_close(a, b, atol=TOL[dtype] * 10, rtol=0)
    # the weight scales the data term: weight w and alpha w give the same solution
    Wa, ba = ridge_from_stats(gram_stats(X, T, weight=4.0), 0.4)
    Wb, bb = ridge_from_stats(full, 0.1)
    torch.testing.assert_close(Wa, Wb, atol=TOL[dtype] * 10, rtol=0)
    torch.testing.assert_close(ba, bb, atol=TOL[dtype] * 10, rtol=0)


def test_gram_stats_layout():
    X = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=torch.float64)
    T = torch.tensor([[1.0], [0.0], [2.0]], dtype=torch.float64)
    s = gram_stats(X, T)
    Xa = torch.cat([X, torch.ones(3, 1, dtype=torch.float64)], dim=1)
    torch.testing.assert_close(s.xx, Xa.T @ Xa)
    torch.testing.assert_close(s.xt, Xa.T @ T)


@pytest.mark.parametrize("dtype", DTYPES)
def test_ridge_singular_system_is_finite_min_norm(dtype):
    g = _gen(4)
    base = torch.randn(30, 3, generator=g, dtype=dtype)
    # rank-deficient: a duplicated column, a zero column and a constant column (= intercept)
    X = torch.cat(
        [base, base[:, :1], torch.zeros(30, 1, dtype=dtype), torch.ones(30, 1, dtype=dtype)], 1
    )
    T = torch.randn(30, 2, generator=g, dtype=dtype)
    W, b = ridge(X, T, 0.0)
    assert torch.isfinite(W).all() and torch.isfinite(b).all()
    # fitted values equal the least-squares fit; the coefficients are the minimum-norm ones
    Xa = np.c_[X.double().numpy(), np.ones(30)]
    theta, *_ = np.linalg.lstsq(Xa, T.double().numpy(), rcond=None)
    tol = 1e-3 if dtype == torch.float32 else 1e-8
    np.testing.assert_allclose((X @ W.T + b).double().numpy(), Xa @ theta, atol=tol)
    np.testing.assert_allclose(W.double().numpy(), theta[:-1].T, atol=tol)
    # more features than samples, no intercept
    X = torch.randn(4, 10, generator=g, dtype=dtype)
    W, b = ridge(X, T[:4], 0.0, fit_intercept=False)
    assert torch.isfinite(W).all()
    np.testing.assert_allclose((X @ W.T).double().numpy(), T[:4].double().numpy(), atol=tol)


def test_ridge_with_one_null_direction_is_the_pseudo_inverse_solution():
    """N = d_in samples: [X, 1] has exactly one null direction, whose Cholesky pivots are
    often far above rounding level; the solution must still be the minimum-norm one
    (numpy's pinv), the same for the rows in any order (review 21: it was off by up to 31)."""
    rng = np.random.default_rng(0)
    for n in (3, 12, 40):
        for _ in range(15):
            X, T = rng.standard_normal((n, n)), rng.standard_normal((n, 2))
            Xa = np.c_[X, np.ones(n)]
            ref = np.linalg.pinv(Xa) @ T
            W, b = ridge(torch.from_numpy(X), torch.from_numpy(T), 0.0)
            np.testing.assert_allclose(np.c_[W.numpy(), b.numpy()], ref.T, atol=1e-6)
            M = ridge_operator(gram_stats(torch.from_numpy(X), torch.from_numpy(T)).xx, 0.0)
            np.testing.assert_allclose(M.numpy() @ np.r_[X.T @ T, T.sum(0, keepdims=True)],
                                       ref, atol=1e-6)


def test_ridge_invalid_inputs_raise():
    X, T = torch.randn(10, 3), torch.randn(10, 2)
    with pytest.raises(ValueError, match="alpha must be >= 0, got -1"):
        ridge(X, T, -1.0)
    with pytest.raises(ValueError, match="gamma must be >= 0, got -0.5"):
        ridge(X, T, 1.0, gamma=-0.5)
    with pytest.raises(ValueError, match=r"\(10, 3\) and \(9, 2\)"):
        ridge(X, T[:9], 1.0)
    with pytest.raises(ValueError, match="W0"):
        ridge(X, T, 1.0, W0=torch.zeros(3, 2), gamma=1.0)
    with pytest.raises(ValueError, match="b0"):
        ridge(X, T, 1.0, b0=torch.zeros(3), gamma=1.0)
    with pytest.raises(FloatingPointError, match="ridge statistics contain NaN or Inf"):
        ridge(X.masked_fill(X > 1, float("nan")), T, 1.0)


# ----------------------------------------------------------------------------- nnls / box_qp


def _objective_rows(Z, H, Q):
    return 0.5 * ((Z @ H) * Z).sum(1) - (Q * Z).sum(1)


def _nnls_problem(dtype=torch.float64, seed=5):
    g = _gen(seed)
    A = torch.randn(30, 12, generator=g, dtype=dtype)
    C = torch.randn(50, 30, generator=g, dtype=dtype)
    return A, C


def test_nnls_matches_scipy():
    A, C = _nnls_problem()
    res = nnls(A, C, tol=1e-8, max_iter=5000)
    assert res.converged and res.residual <= 1e-8
    ref = np.stack([scipy_nnls(A.numpy(), c)[0] for c in C.numpy()])
    np.testing.assert_allclose(res.Z.numpy(), ref, atol=1e-6)
    assert (res.Z >= 0).all()


def test_nnls_float32():
    A, C = _nnls_problem(torch.float32)
    res = nnls(A, C, tol=1e-5, max_iter=5000)
    assert res.Z.dtype == torch.float32 and res.converged
    ref = np.stack([scipy_nnls(A.double().numpy(), c)[0] for c in C.double().numpy()])
    np.testing.assert_allclose(res.Z.numpy(), ref, atol=1e-3)
    with pytest.raises(ValueError, match="A and C must share dtype and device, got "
                                         "torch.float32/cpu and torch.float64/cpu"):
        nnls(A, C.double())


@pytest.mark.parametrize("bounds", [(0.0, 0.3), (-0.2, 0.2), (None, 0.1), (-0.1, None)])
def test_box_qp_matches_lsq_linear(bounds):
    A, C = _nnls_problem(seed=6)
    lower, upper = bounds
    res = box_qp(A.T @ A, C @ A, lower=lower, upper=upper, tol=1e-9, max_iter=10000)
    assert res.converged
    lb = -np.inf if lower is None else lower
    ub = np.inf if upper is None else upper
    ref = np.stack([lsq_linear(A.numpy(), c, bounds=(lb, ub), tol=1e-12).x for c in C.numpy()])
    np.testing.assert_allclose(res.Z.numpy(), ref, atol=1e-6)


def test_box_qp_unbounded_is_linear_solve():
    A, C = _nnls_problem(seed=7)
    H, Q = A.T @ A, C @ A
    res = box_qp(H, Q, lower=None, upper=None, tol=1e-10, max_iter=10000)
    ref = np.linalg.solve(H.numpy(), Q.numpy().T).T
    np.testing.assert_allclose(res.Z.numpy(), ref, atol=1e-8)


def test_box_qp_kkt_conditions():
    A, C = _nnls_problem(seed=8)
    H, Q = A.T @ A + 0.1 * torch.eye(12, dtype=torch.float64), C @ A
    lower, upper = 0.0, 0.25
    res = box_qp(H, Q, lower=lower, upper=upper, tol=1e-10, max_iter=10000)
    Z, G = res.Z, res.Z @ H - Q
    eps = 1e-7
    assert (Z >= lower).all() and (Z <= upper).all()
    interior = (Z > lower + eps) & (Z < upper - eps)
    assert G[interior].abs().max() < 1e-6  # stationarity
    assert (G[Z <= lower + eps] >= -1e-6).all()  # multipliers of z >= lower are >= 0
    assert (G[Z >= upper - eps] <= 1e-6).all()  # multipliers of z <= upper are >= 0
    # the reported residual is the stopping quantity
    L = torch.linalg.eigvalsh(H)[-1]
    r = (Z - (Z - G / L).clamp(lower, upper)).norm() * L / Q.norm()
    assert math.isclose(res.residual, float(r), rel_tol=1e-6, abs_tol=1e-14)


@pytest.mark.parametrize("dtype", DTYPES)
def test_box_qp_never_worse_than_start(dtype):
    A, C = _nnls_problem(dtype, seed=9)
    H, Q = A.T @ A, C @ A
    Z0 = torch.randn(50, 12, generator=_gen(10), dtype=dtype).abs()
    Z0[:10] = nnls(A, C[:10], tol=1e-9, max_iter=5000).Z.to(dtype)  # some rows start optimal
    for max_iter in (0, 1, 2, 5, 50):
        res = box_qp(H, Q, Z0, tol=1e-12, max_iter=max_iter)
        assert res.iterations <= max_iter
        f, f0 = _objective_rows(res.Z, H, Q), _objective_rows(Z0, H, Q)
        assert (f <= f0 + 100 * torch.finfo(dtype).eps * (1 + f0.abs())).all()  # up to rounding
    # a start outside the box is projected first
    res = box_qp(H, Q, -Z0, max_iter=0)
    assert torch.equal(res.Z, torch.zeros_like(Z0))


def test_box_qp_warm_start_from_solution():
    A, C = _nnls_problem(seed=11)
    first = nnls(A, C, tol=1e-7, max_iter=5000)
    again = nnls(A, C, first.Z, tol=1e-7)
    assert again.converged and again.iterations <= 1
    torch.testing.assert_close(again.Z, first.Z, atol=1e-7, rtol=0)


def test_box_qp_blocks_match_single_block(monkeypatch):
    A, C = _nnls_problem(seed=12)
    C = torch.cat([C] * 8)  # 400 rows
    H, Q = A.T @ A, C @ A
    one = box_qp(H, Q, tol=1e-9, max_iter=5000)
    monkeypatch.setattr(nnls_module, "_CHUNK_ELEMENTS", 12 * 256)  # blocks of 256 rows
    two = box_qp(H, Q, tol=1e-9, max_iter=5000)
    assert one.converged and two.converged and two.residual <= 1e-9
    torch.testing.assert_close(one.Z, two.Z, atol=1e-8, rtol=0)


def _box_qp_residual(Z, H, Q, lower=0.0, upper=None):
    """The stopping quantity of :func:`box_qp`, r = ||Z - P(Z - G/L)||_F L / ||Q||_F."""
    L = float(torch.linalg.eigvalsh(H)[-1])
    G = Z @ H - Q
    return float((Z - (Z - G / L).clamp(lower, upper)).norm()) * L / float(Q.norm())


def test_box_qp_converged_implies_residual_below_tol():
    """Rows of very different scales (||q_i|| over four decades), so rows are frozen at
    different times: the docstring promises r <= tol whenever every block stopped, which needs
    the frozen rows' residuals to stay in the block's stopping sum (review 31: without them,
    ``converged`` came with r up to 1.2 tol)."""
    tol = 1e-6
    for seed in range(4):
        g = _gen(seed)
        A = torch.randn(30, 12, generator=g, dtype=torch.float64)
        C = torch.randn(400, 30, generator=g, dtype=torch.float64) * torch.logspace(
            -3, 1, 400, dtype=torch.float64)[:, None]
        H, Q = A.T @ A, C @ A
        res = box_qp(H, Q, tol=tol, max_iter=5000)
        assert res.converged and res.residual <= tol
        assert math.isclose(res.residual, _box_qp_residual(res.Z, H, Q), rel_tol=1e-9)


def test_box_qp_too_long_steps_never_worse_than_start(monkeypatch):
    """With L 20x too small the FISTA steps overshoot and rows end above their start: the
    monotone guarantee must put those rows back to (the projection of) Z0, so that every row's
    objective is at most its start's, and the reported residual is the returned Z's."""
    A, C = _nnls_problem(seed=9)
    H, Q = A.T @ A, C @ A
    Z0 = torch.randn(50, 12, generator=_gen(10), dtype=torch.float64).abs()
    monkeypatch.setattr(nnls_module, "lipschitz_sym", lambda M: lipschitz_sym(M) / 20)
    L = lipschitz_sym(H) / 20
    f0 = _objective_rows(Z0, H, Q)
    for max_iter in (1, 2, 5):
        res = box_qp(H, Q, Z0, tol=1e-12, max_iter=max_iter)
        kept = (res.Z == Z0).all(dim=1)
        assert (_objective_rows(res.Z, H, Q) <= f0).all()  # every row is no worse ...
        assert kept.any()  # ... and the safeguard was needed (the overshoot is real)
        G = res.Z @ H - Q
        r = float((res.Z - (res.Z - G / L).clamp_min(0)).norm()) * L / float(Q.norm())
        assert math.isclose(res.residual, r, rel_tol=1e-9) and not res.converged


def test_box_qp_blocks_report_the_largest_count_and_the_total_residual(monkeypatch):
    """Rows solved in blocks (here 256 rows each): ``iterations`` is the largest number of
    steps any block took, not the last block's, and ``converged`` means r <= tol for the
    whole Q, also when one block alone missed its share of the budget."""
    monkeypatch.setattr(nnls_module, "_CHUNK_ELEMENTS", 12 * 256)
    A = torch.randn(30, 12, generator=_gen(12), dtype=torch.float64)
    C = torch.randn(256, 30, generator=_gen(13), dtype=torch.float64)
    H, Q1 = A.T @ A, C @ A
    # a hard first block, a trivial second one (q = 0: z = 0 is optimal, no steps needed)
    Q = torch.cat([Q1, torch.zeros_like(Q1)])
    res = box_qp(H, Q, tol=1e-12, max_iter=7)
    assert res.iterations == 7 and not res.converged
    assert math.isclose(res.residual, _box_qp_residual(res.Z, H, Q), rel_tol=1e-9)
    # block 1: small rows started at 0, no steps; its residual (~0.7 tol) is above its share
    # (~tol / 2) of the budget, but block 2 starts at its solution, so r <= tol overall
    Z2 = box_qp(H, Q1, tol=1e-13, max_iter=20000).Z
    Q = torch.cat([1e-3 * Q1, Q1])
    res = box_qp(H, Q, torch.cat([torch.zeros_like(Q1), Z2]), tol=1e-3, max_iter=0)
    r = _box_qp_residual(res.Z, H, Q)
    assert math.isclose(res.residual, r, rel_tol=1e-9) and 0.5e-3 < r <= 1e-3
    assert res.converged


def test_box_qp_invalid_inputs_raise():
    H, Q = torch.eye(3), torch.randn(4, 3)
    with pytest.raises(ValueError, match="lower <= upper"):
        box_qp(H, Q, lower=1.0, upper=0.0)
    with pytest.raises(ValueError, match=r"Q must be \(N, d\)"):
        box_qp(H, Q[:, :2])
    with pytest.raises(ValueError, match="Z0"):
        box_qp(H, Q, Q[:2])
    with pytest.raises(ValueError, match="largest eigenvalue"):
        box_qp(torch.zeros(3, 3), Q)
    with pytest.raises(ValueError, match=r"A must be \(m, d\)"):
        nnls(torch.randn(5, 3), torch.randn(4, 4))


# --------------------------------------------------------------------------------- simplex


def test_project_simplex_matches_cvxpy():
    cp = pytest.importorskip("cvxpy")
    V = torch.randn(6, 5, generator=_gen(13), dtype=torch.float64) * 2
    Z = project_simplex(V)
    for v, z in zip(V.numpy(), Z.numpy(), strict=True):
        x = cp.Variable(5)
        cp.Problem(cp.Minimize(cp.sum_squares(x - v)), [x >= 0, cp.sum(x) == 1]).solve(
            solver=cp.CLARABEL
        )
        np.testing.assert_allclose(z, x.value, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_project_simplex_properties(dtype):
    g = _gen(14)
    V = torch.randn(200, 7, generator=g, dtype=dtype) * 3
    Z = project_simplex(V)
    assert Z.dtype == dtype and Z.shape == V.shape
    assert (Z >= 0).all()
    torch.testing.assert_close(Z.sum(1), torch.ones(200, dtype=dtype))
    torch.testing.assert_close(project_simplex(Z), Z)  # idempotent
    torch.testing.assert_close(project_simplex(V + 5.0), Z)  # invariant to shifts along 1
    # variational inequality <v - P(v), w - P(v)> <= 0 for w on the simplex
    W = project_simplex(torch.randn(200, 7, generator=g, dtype=dtype))
    assert (((V - Z) * (W - Z)).sum(1) <= 1e-4).all()
    # points already on the simplex, a vertex, and a batch with leading dimensions
    e = torch.zeros(1, 7, dtype=dtype)
    e[0, 2] = 1
    assert torch.equal(project_simplex(e), e)
    torch.testing.assert_close(project_simplex(V.reshape(20, 10, 7)), Z.reshape(20, 10, 7))
    # review 24: large values next to the 1 (an offset, a dominant entry) lost it to rounding
    for offset in (1e4, 1e6, -1e10):
        shifted = V + offset  # (rounded in float32: compare with the rounded rows' projection)
        ref = project_simplex(shifted.double() - offset).to(dtype)
        torch.testing.assert_close(project_simplex(shifted), ref, atol=1e-6, rtol=0)
    big = torch.tensor([[1e8, 0.0, 0.0], [-1e10, -1e10 + 0.5, -1e10 - 3]], dtype=dtype)
    third = 1 / 3 if dtype == torch.float32 else None  # float32: the three values are equal
    want = torch.tensor([[1.0, 0.0, 0.0],
                         [third, third, third] if third else [0.25, 0.75, 0.0]], dtype=dtype)
    torch.testing.assert_close(project_simplex(big), want)


def _labels(kind: str, n: int, p: int, g: torch.Generator) -> torch.Tensor:
    if kind == "onehot":
        return torch.nn.functional.one_hot(torch.randint(0, p, (n,), generator=g), p).double()
    Y = torch.rand(n, p, generator=g, dtype=torch.float64)
    Y[:, 0] = 0.0  # soft labels with a zero entry
    return Y / Y.sum(1, keepdim=True)


def _ce_objective(z, y, u, lam):
    mask = y > 0
    with np.errstate(divide="ignore"):
        return -(y[mask] * np.log(z[mask])).sum() + lam * ((z - u) ** 2).sum()


@pytest.mark.filterwarnings("ignore:Solution may be inaccurate")
@pytest.mark.parametrize("lam", [0.01, 1.0, 100.0])
@pytest.mark.parametrize("kind", ["onehot", "soft"])
@pytest.mark.parametrize("scale", [1.0, 50.0])
def test_simplex_ce_prox_matches_cvxpy(lam, kind, scale):
    cp = pytest.importorskip("cvxpy")
    g = _gen(15)
    p = 5
    Y = _labels(kind, 3, p, g)
    U = scale * torch.randn(3, p, generator=g, dtype=torch.float64)
    Z = simplex_ce_prox(Y, U, lam).numpy()
    for y, u, z in zip(Y.numpy(), U.numpy(), Z, strict=True):
        x = cp.Variable(p)
        sup = np.flatnonzero(y > 0)  # log only where y_i > 0 (0 log 0 = 0)
        obj = -y[sup] @ cp.log(x[sup]) + lam * cp.sum_squares(x - u)
        cp.Problem(cp.Minimize(obj), [cp.sum(x) == 1, x >= 0]).solve(solver=cp.CLARABEL)
        xv = np.maximum(x.value, 0.0)
        ours, theirs = _ce_objective(z, y, u, lam), _ce_objective(xv, y, u, lam)
        # ours is at least as good (in practice strictly better: the interior-point solution is
        # accurate to ~1e-5 in z when the objective is ~1e6 or lam is small) ...
        assert ours <= theirs + 1e-10 * (1 + abs(theirs))
        # ... and, by 2 lam-strong convexity, ||z - z*||^2 <= (f(x_cvxpy) - f*) / lam.
        np.testing.assert_allclose(z, xv, atol=2e-4)


@pytest.mark.parametrize("lam", [0.01, 1.0, 100.0])
@pytest.mark.parametrize("kind", ["onehot", "soft"])
def test_simplex_ce_prox_kkt(lam, kind):
    g = _gen(16)
    n, p = 500, 10
    Y = _labels(kind, n, p, g)
    U = (
        torch.randn(n, p, generator=g, dtype=torch.float64)
        * torch.tensor([0.1, 1.0, 50.0]).repeat(n // 3 + 1)[:n, None].double()
    )
    Z = simplex_ce_prox(Y, U, lam)
    assert (Z >= 0).all()
    torch.testing.assert_close(Z.sum(1), torch.ones(n, dtype=torch.float64), atol=1e-11, rtol=0)
    # stationarity: z_i - y_i / (2 lam z_i) - u_i = nu for every i with y_i > 0 ...
    S = Y > 0
    assert (Z[S] > 0).all()
    nu_all = torch.where(S, Z - Y / (2 * lam * Z.clamp_min(1e-300)) - U, torch.nan)
    nu = nu_all.nanmean(1)
    spread = (nu_all - nu[:, None]).abs().nan_to_num(0).amax(1)
    assert (spread <= 1e-8 * (1 + U.abs().amax(1))).all()
    # ... and z_i = max(0, u_i + nu) where y_i = 0 (complementary slackness)
    expect = (U + nu[:, None]).clamp_min(0)
    assert (
        (Z - expect).abs()[~S] <= 1e-8 * (1 + U.abs().amax(1, keepdim=True).expand(n, p)[~S])
    ).all()


def test_simplex_ce_prox_bracket_is_valid():
    g = _gen(17)
    for lam in (1e-3, 0.01, 1.0, 100.0, 1e4):
        for scale in (0.01, 1.0, 50.0, 1e4):
            for kind in ("onehot", "soft"):
                Y = _labels(kind, 300, 10, g)
                U = scale * torch.randn(300, 10, generator=g, dtype=torch.float64)
                lo, hi = _nu_bracket(Y, U, lam)
                C = Y / (2 * lam)
                assert torch.isfinite(lo).all() and torch.isfinite(hi).all() and (lo <= hi).all()
                f_lo = _z_of_nu(U, C, lo[:, None]).sum(1) - 1
                f_hi = _z_of_nu(U, C, hi[:, None]).sum(1) - 1
                assert (f_lo <= 1e-12).all() and (f_hi >= -1e-12 * (1 + scale)).all()


def test_corrected_appendix_a_lower_bound_is_valid():
    g = _gen(24)
    n_finite = 0
    for lam in (0.01, 0.3, 1.0, 10.0):
        for kind in ("onehot", "soft"):
            Y = _labels(kind, 400, 6, g)
            # u near z0 = 1_I / k, where theta is small and the bound is finite
            U = Y.gt(0).double() / Y.gt(0).sum(1, keepdim=True) + 0.3 * torch.randn(
                400, 6, generator=g, dtype=torch.float64
            )
            lo = _nu_lower_appendix_a(Y, U, lam)
            ok = torch.isfinite(lo)
            n_finite += int(ok.sum())
            f_lo = _z_of_nu(U[ok], Y[ok] / (2 * lam), lo[ok, None]).sum(1) - 1
            assert (f_lo <= 1e-12).all()
    assert n_finite > 1000


def test_paper_lower_bound_counterexample():
    # Appendix A's lower bound (1/p)(1 - 1^T u - 1^T y e^theta / (2 lam)) excludes nu* here.
    lam, p = 1.0, 4
    y = torch.zeros(1, p, dtype=torch.float64)
    y[0, 0] = 1.0
    u = y.clone()
    z = simplex_ce_prox(y, u, lam)
    torch.testing.assert_close(z, y)
    nu_star = -1 / (2 * lam)  # from z_1 - y_1 / (2 lam z_1) - u_1 = nu at z = e_1
    theta = 0.0  # z0 = e_1 = u and log 1 = 0
    paper_lower = (1 - 1 - math.exp(theta) / (2 * lam)) / p
    assert paper_lower > nu_star
    lo, hi = _nu_bracket(y, u, lam)
    assert lo.item() <= nu_star <= hi.item()


def test_simplex_ce_prox_dtype_limits_and_errors():
    g = _gen(18)
    Y = _labels("onehot", 20, 4, g).float()
    U = torch.randn(20, 4, generator=g)
    Z = simplex_ce_prox(Y, U, 0.5)
    assert Z.dtype == torch.float32
    torch.testing.assert_close(Z.sum(1), torch.ones(20))
    # lam -> infinity: the projection of U; Y = 0: exactly the projection
    torch.testing.assert_close(simplex_ce_prox(Y, U, 1e9), project_simplex(U), atol=1e-6, rtol=0)
    torch.testing.assert_close(simplex_ce_prox(torch.zeros_like(U), U, 0.5), project_simplex(U))
    # lam -> 0: the labels
    torch.testing.assert_close(simplex_ce_prox(Y, U, 1e-9), Y, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="lam must be > 0, got 0"):
        simplex_ce_prox(Y, U, 0.0)
    with pytest.raises(ValueError, match="non-negative"):
        simplex_ce_prox(-Y, U, 1.0)
    with pytest.raises(ValueError, match=r"\(20, 4\) and \(20, 3\)"):
        simplex_ce_prox(Y, U[:, :3], 1.0)


# ------------------------------------------------------------------------------------- apg


def _lsq_problem(seed, m=25, d=8):
    g = _gen(seed)
    A = torch.randn(m, d, generator=g, dtype=torch.float64)
    c = torch.randn(m, generator=g, dtype=torch.float64)
    return A, c


@pytest.mark.parametrize("use_objective", [False, True])
def test_apg_box_quadratic_matches_lsq_linear(use_objective):
    A, c = _lsq_problem(19)
    H = A.T @ A
    L = lipschitz_sym(H)
    res = apg(
        lambda x: H @ x - A.T @ c,
        lambda x: x.clamp(0.0, 0.5),
        torch.zeros(8, dtype=torch.float64),
        L,
        objective_fn=(lambda x: 0.5 * (A @ x - c).square().sum()) if use_objective else None,
        tol=1e-10,
        max_iter=10000,
    )
    assert res.converged and res.residual <= 1e-10 and isinstance(res.x, torch.Tensor)
    ref = lsq_linear(A.numpy(), c.numpy(), bounds=(0.0, 0.5), tol=1e-12).x
    np.testing.assert_allclose(res.x.numpy(), ref, atol=1e-8)


def test_apg_unconstrained_closed_form():
    A, c = _lsq_problem(20)
    H, q = A.T @ A + 0.5 * torch.eye(8, dtype=torch.float64), A.T @ c
    res = apg(
        lambda x: H @ x - q,
        lambda x: x,
        torch.zeros(8, dtype=torch.float64),
        lipschitz_sym(H),
        tol=1e-11,
        max_iter=10000,
    )
    np.testing.assert_allclose(res.x.numpy(), np.linalg.solve(H.numpy(), q.numpy()), atol=1e-9)


def test_apg_list_variable():
    # min 1/2 ||A1 x1 + A2 X2 e - c||^2 over x1 >= 0 (vector) and X2 in [-1, 1] (a 2x2 matrix)
    A, c = _lsq_problem(21, m=30, d=9)
    A1, A2 = A[:, :5], A[:, 5:]

    def grad(xs):
        x1, X2 = xs
        r = A1 @ x1 + A2 @ X2.reshape(-1) - c
        return [A1.T @ r, (A2.T @ r).reshape(2, 2)]

    def project(xs):
        return [xs[0].clamp_min(0), xs[1].clamp(-1, 1)]

    x0 = [torch.ones(5, dtype=torch.float64), torch.zeros(2, 2, dtype=torch.float64)]
    res = apg(grad, project, x0, lipschitz_sym(A.T @ A), tol=1e-10, max_iter=10000)
    assert isinstance(res.x, list) and res.x[1].shape == (2, 2) and res.converged
    lb = np.r_[np.zeros(5), -np.ones(4)]
    ub = np.r_[np.full(5, np.inf), np.ones(4)]
    ref = lsq_linear(A.numpy(), c.numpy(), bounds=(lb, ub), tol=1e-12).x
    np.testing.assert_allclose(torch.cat([res.x[0], res.x[1].reshape(-1)]).numpy(), ref, atol=1e-8)
    assert torch.equal(x0[0], torch.ones(5, dtype=torch.float64))  # inputs untouched


def test_apg_max_iter_reports_true_residual():
    A, c = _lsq_problem(22)
    H, q = A.T @ A, A.T @ c
    res = apg(
        lambda x: H @ x - q,
        lambda x: x.clamp_min(0),
        torch.zeros(8, dtype=torch.float64),
        lipschitz_sym(H),
        tol=1e-14,
        max_iter=3,
    )
    assert res.iterations == 3 and not res.converged
    x, L = res.x, lipschitz_sym(H)
    scale = max(1.0, float((H @ torch.zeros(8, dtype=torch.float64) - q).norm()))
    r = float((x - (x - (H @ x - q) / L).clamp_min(0)).norm()) * L / scale
    assert math.isclose(res.residual, r, rel_tol=1e-9)
    with pytest.raises(ValueError, match="lipschitz"):
        apg(lambda x: x, lambda x: x, torch.zeros(2), 0.0)


def test_apg_strongly_convex_momentum_matches_lsq_linear_in_fewer_steps():
    """With the modulus mu known, the constant momentum of Nesterov's strongly convex scheme
    reaches the same non-negative ridge solution as FISTA (the shape of a ReLU X-step: more
    unknowns than rows, the ridge term the only strong convexity), in fewer steps."""
    g = _gen(24)
    A = torch.randn(100, 200, generator=g, dtype=torch.float64) @ torch.diag(
        torch.logspace(0, 0.5, 200, dtype=torch.float64))
    c = 3 * torch.randn(100, generator=g, dtype=torch.float64)
    mu = 10.0
    H = A.T @ A + mu * torch.eye(200, dtype=torch.float64)
    L = lipschitz_sym(H)

    def solve(m, tol=1e-10):
        return apg(lambda x: H @ x - A.T @ c, lambda x: x.clamp_min(0),
                   torch.zeros(200, dtype=torch.float64), L, tol=tol, max_iter=100000,
                   strong_convexity=m)

    runs = {m: solve(m) for m in (0.0, mu)}
    # reference: the ridge term as extra least-squares rows
    A_aug = np.vstack([A.numpy(), np.sqrt(mu) * np.eye(200)])
    c_aug = np.r_[c.numpy(), np.zeros(200)]
    ref = lsq_linear(A_aug, c_aug, bounds=(0.0, np.inf), tol=1e-13).x
    for res in runs.values():
        assert res.converged
        np.testing.assert_allclose(res.x.numpy(), ref, atol=1e-7)
    assert runs[mu].iterations < 0.8 * runs[0.0].iterations
    # a modulus above L is clipped to L (momentum 0: projected gradient)
    np.testing.assert_allclose(solve(10 * L, tol=1e-9).x.numpy(), ref, atol=1e-6)
    for bad in (-1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="strong_convexity"):
            apg(lambda x: x, lambda x: x, torch.zeros(2), 1.0, strong_convexity=bad)


@pytest.mark.parametrize("mu", [0.0, 0.3, 40.0])
def test_apg_second_point_carries_the_strongly_convex_momentum(mu):
    """f(x) = a x^2 / 2 - c x with a step 1/L, L = 4a: after the first step x1 the gradient is
    evaluated at x1 + beta (x1 - x0), beta = (1 - q) / (1 + q), q = sqrt(min(mu, L) / L);
    FISTA's first beta is 0.  mu > L (an overestimated modulus) is clipped to L: no momentum,
    not a negative one extrapolating backwards."""
    a, c, L = 1.0, 2.0, 4.0
    points = []

    def grad(x):
        points.append(float(x))
        return a * x - c

    apg(grad, lambda x: x, torch.tensor(10.0, dtype=torch.float64), L, tol=1e-12,
        max_iter=3, strong_convexity=mu)
    x0 = 10.0
    x1 = x0 - (a * x0 - c) / L
    q = math.sqrt(min(mu, L) / L)
    beta = (1 - q) / (1 + q) if mu else 0.0
    assert points[:2] == pytest.approx([x0, x1 + beta * (x1 - x0)], rel=1e-15, abs=0)


def test_apg_start_is_projected():
    """The method starts at P(x0): with max_iter = 0, or when P(x0) is already optimal, the
    returned x must still be feasible, never x0 itself."""
    A, c = _lsq_problem(25)
    H, q = A.T @ A, A.T @ c
    x0 = torch.linspace(-1.0, 1.0, 8, dtype=torch.float64)
    res = apg(lambda x: H @ x - q, lambda x: x.clamp_min(0), x0, lipschitz_sym(H), max_iter=0)
    assert res.iterations == 0 and torch.equal(res.x, x0.clamp_min(0))
    # f(x) = ||x - c||^2 / 2 on x >= 0: the minimiser is P(c) = max(c, 0), reached at once
    c = torch.tensor([1.5, -2.0, 0.25, -0.5], dtype=torch.float64)
    res = apg(lambda x: x - c, lambda x: x.clamp_min(0), c, 1.0, tol=1e-12)
    assert res.converged and res.iterations == 0 and res.residual == 0.0
    assert torch.equal(res.x, c.clamp_min(0))


def test_apg_residual_scale_is_at_least_one():
    """The stopping rule divides by max(1, ||grad f(P(x0))||): with a first gradient of norm
    below 1 the residual is the unscaled one (the formula of the docstring, recomputed), and a
    start at the optimum (gradient ~ 0) converges at once instead of dividing by ~0."""
    A, c = _lsq_problem(22)
    H, q = A.T @ A, 1e-3 * (A.T @ c)
    L = lipschitz_sym(H)
    assert float(q.norm()) < 1  # the first gradient is -q
    res = apg(lambda x: H @ x - q, lambda x: x.clamp_min(0), torch.zeros(8, dtype=torch.float64),
              L, tol=1e-14, max_iter=3)
    x = res.x
    r = float((x - (x - (H @ x - q) / L).clamp_min(0)).norm()) * L / 1.0
    assert res.iterations == 3 and math.isclose(res.residual, r, rel_tol=1e-9)
    # unconstrained, started at numpy's solution of H x = q
    x_star = torch.from_numpy(np.linalg.solve(H.numpy(), q.numpy()))
    res = apg(lambda x: H @ x - q, lambda x: x, x_star, L, tol=1e-10, max_iter=50)
    assert res.converged and res.iterations == 0 and res.residual <= 1e-10
    assert torch.equal(res.x, x_star)


def test_lipschitz_sym(monkeypatch):
    g = _gen(23)
    B = torch.randn(40, 40, generator=g, dtype=torch.float64)
    H = B @ B.T
    top = float(np.linalg.eigvalsh(H.numpy())[-1])
    assert math.isclose(lipschitz_sym(H), top, rel_tol=1e-10)
    monkeypatch.setattr(pgd_module, "_EIGVALSH_MAX_DIM", 10)  # force power iteration
    est = lipschitz_sym(H)
    assert top <= est <= 1.02 * top
    assert lipschitz_sym(torch.zeros(3, 3)) == 0.0


def test_gram_stats_reuses_a_precomputed_input_gram():
    g = torch.Generator().manual_seed(5)
    X = torch.randn(40, 6, generator=g, dtype=torch.float64)
    T1, T2 = (torch.randn(40, 3, generator=g, dtype=torch.float64) for _ in range(2))
    first = gram_stats(X, T1)
    again = gram_stats(X, T2, xx=first.xx)
    fresh = gram_stats(X, T2)
    torch.testing.assert_close(again.xx, fresh.xx)
    torch.testing.assert_close(again.xt, fresh.xt)
    again.xx.add_(1.0)  # a copy: the cached matrix is not changed through the result
    torch.testing.assert_close(first.xx, fresh.xx)
    with pytest.raises(ValueError, match="xx must be"):
        gram_stats(X, T2, xx=first.xx[:3, :3])


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("alpha", [0.0, 0.3])
def test_ridge_operator_reproduces_ridge_from_stats(fit_intercept, alpha):
    g = torch.Generator().manual_seed(5)
    X = torch.randn(40, 6, generator=g, dtype=torch.float64)
    X[:, 2] = 0.0  # a constant-zero feature (MNIST's border pixels): singular when alpha = 0
    stats = gram_stats(X, X[:, :1])
    M = ridge_operator(stats.xx, alpha, fit_intercept=fit_intercept)
    m = 7 if fit_intercept else 6
    for seed in range(3):
        T = torch.randn(40, 3, generator=torch.Generator().manual_seed(seed), dtype=X.dtype)
        s = gram_stats(X, T)
        W, b = ridge_from_stats(s, alpha, fit_intercept=fit_intercept)
        theta = M @ s.xt[:m]
        torch.testing.assert_close(theta[:6].T, W)
        if fit_intercept:
            torch.testing.assert_close(theta[6], b)
    with pytest.raises(ValueError, match="alpha"):
        ridge_operator(stats.xx, -1.0)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_ridge_operator_float32_collinear_is_min_norm(fit_intercept):
    """float32 statistics of a design with one exactly dependent column (rounded in float32, so
    the Gram matrix is barely definite, not singular): with alpha = 0 the operator must judge
    the matrix at float32 precision and give the minimum-norm solution, as ridge_from_stats
    does, i.e. numpy's lstsq with singular values below float32 precision dropped (review 31:
    judged at float64 precision, it was off by 0.02-0.3 on weights of size 0.1)."""
    g = _gen(5)
    X = torch.randn(200, 6, generator=g)
    X[:, 2] = 0.3 * X[:, 0] - X[:, 1]
    T = torch.randn(200, 3, generator=g)
    s = gram_stats(X, T)
    m = 7 if fit_intercept else 6
    theta = ridge_operator(s.xx, 0.0, fit_intercept=fit_intercept) @ s.xt[:m].double()
    W, b = ridge_from_stats(s, 0.0, fit_intercept=fit_intercept)
    np.testing.assert_allclose(theta[:6].T.numpy(), W.double().numpy(), atol=1e-6)
    Xa = X.double().numpy()
    if fit_intercept:
        Xa = np.c_[Xa, np.ones(200)]
        np.testing.assert_allclose(theta[6].numpy(), b.double().numpy(), atol=1e-6)
    ref, *_ = np.linalg.lstsq(Xa, T.double().numpy(), rcond=1e-5)
    np.testing.assert_allclose(theta.numpy(), ref, atol=1e-6)
