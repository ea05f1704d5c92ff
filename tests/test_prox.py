"""Closed-form proximal maps of the splitting methods against independent references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar

from liftnet.solvers import linear_prox, relu_prox


def _brute_relu_prox(v: float, c: float, gamma: float, s: float) -> tuple[float, float]:
    """Global minimum of gamma/2 (v - relu(u))^2 + s/2 (u - c)^2 by bounded scalar searches on
    each half-line (the objective is convex on each)."""
    f = lambda u: gamma / 2 * (v - max(u, 0.0)) ** 2 + s / 2 * (u - c) ** 2  # noqa: E731
    span = 10 * (abs(v) + abs(c) + 1)
    best = min(
        (minimize_scalar(f, bounds=(lo, hi), method="bounded", options={"xatol": 1e-12})
         for lo, hi in ((-span, 0.0), (0.0, span))),
        key=lambda r: r.fun,
    )
    return float(best.x), float(best.fun)


@pytest.mark.parametrize("gamma,s", [(1.0, 6.0), (5.0, 5.0), (0.3, 2.0), (10.0, 0.5), (0.0, 1.0)])
def test_relu_prox_matches_brute_force(gamma, s):
    g = torch.Generator().manual_seed(int(gamma * 10 + s))
    v = torch.randn(300, generator=g, dtype=torch.float64) * 2
    c = torch.randn(300, generator=g, dtype=torch.float64) * 2
    # the branch boundary c = kappa * relu(v) and the kinks c = 0, v = 0 are the hard cases
    kappa = 1 - (1 + gamma / s) ** 0.5
    v[:20] = v[:20].abs()
    c[:20] = kappa * v[:20] * (1 + 1e-3 * torch.randn(20, generator=g, dtype=torch.float64))
    c[20:25] = 0.0
    v[25:30] = 0.0
    u = relu_prox(v, c, gamma, s)
    f = gamma / 2 * (v - torch.relu(u)) ** 2 + s / 2 * (u - c) ** 2
    for i in range(len(v)):
        _, fbest = _brute_relu_prox(float(v[i]), float(c[i]), gamma, s)
        assert float(f[i]) <= fbest + 1e-9 * (1 + abs(fbest)), (i, float(v[i]), float(c[i]))


def test_relu_prox_out_argument_and_errors():
    v, c = torch.randn(7, 5), torch.randn(7, 5)
    out = torch.empty(7, 5)
    res = relu_prox(v, c, 1.0, 6.0, out=out)
    assert res.data_ptr() == out.data_ptr()
    torch.testing.assert_close(out, relu_prox(v, c, 1.0, 6.0))
    with pytest.raises(ValueError, match="s > 0"):
        relu_prox(v, c, 1.0, 0.0)
    with pytest.raises(ValueError, match="gamma >= 0"):
        relu_prox(v, c, -1.0, 1.0)


@pytest.mark.parametrize("d_out,d_in", [(3, 12), (12, 5), (6, 6)])  # Woodbury and direct
@pytest.mark.parametrize("with_bias", [False, True])
def test_linear_prox_matches_dense_solve(d_out, d_in, with_bias):
    g = torch.Generator().manual_seed(d_out * 100 + d_in)
    n, rho, gamma = 9, 1.7, 0.6
    T = torch.randn(n, d_out, generator=g, dtype=torch.float64)
    W = torch.randn(d_out, d_in, generator=g, dtype=torch.float64)
    P = torch.randn(n, d_in, generator=g, dtype=torch.float64)
    b = torch.randn(d_out, generator=g, dtype=torch.float64) if with_bias else None
    V = linear_prox(T, W, P, rho=rho, gamma=gamma, b=b)
    # reference: minimise the vectorised quadratic with numpy's dense least squares
    Tb = T.numpy() - (0 if b is None else b.numpy())
    A = np.vstack([np.sqrt(rho) * np.kron(np.eye(n), W.numpy()),
                   np.sqrt(gamma) * np.eye(n * d_in)])
    rhs = np.concatenate([np.sqrt(rho) * Tb.ravel(), np.sqrt(gamma) * P.numpy().ravel()])
    ref = np.linalg.lstsq(A, rhs, rcond=None)[0].reshape(n, d_in)
    np.testing.assert_allclose(V.numpy(), ref, rtol=1e-9, atol=1e-10)


def test_linear_prox_float32_and_limits():
    g = torch.Generator().manual_seed(0)
    T, W, P = torch.randn(50, 4, generator=g), torch.randn(4, 30, generator=g), torch.randn(
        50, 30, generator=g)
    V32 = linear_prox(T, W, P, rho=1.0, gamma=1.0)
    V64 = linear_prox(T.double(), W.double(), P.double(), rho=1.0, gamma=1.0)
    assert V32.dtype == torch.float32
    torch.testing.assert_close(V32.double(), V64, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(linear_prox(T, W, P, rho=0.0, gamma=1.0), P)
    with pytest.raises(ValueError, match="gamma > 0"):
        linear_prox(T, W, P, rho=1.0, gamma=0.0)
    with pytest.raises(ValueError, match="shapes do not agree"):
        linear_prox(T, W.T, P, rho=1.0, gamma=1.0)


@pytest.mark.parametrize("d_out,d_in", [(10, 300), (300, 300), (3, 10)])
def test_linear_prox_is_accurate_for_large_weights_and_consistent_targets(d_out, d_in):
    # T nearly P_true W^T + b with large W: a normal-equations right-hand side would cancel
    g = torch.Generator().manual_seed(d_out + d_in)
    n, rho, gamma = 40, 1.0, 1.0
    W = torch.randn(d_out, d_in, generator=g, dtype=torch.float64) * 100
    b = torch.randn(d_out, generator=g, dtype=torch.float64) * 100
    P = torch.randn(n, d_in, generator=g, dtype=torch.float64)
    T = (P + 0.01 * torch.randn(n, d_in, generator=g, dtype=torch.float64)) @ W.T + b

    def objective(V):
        V = V.double()
        return float(rho / 2 * ((V @ W.T + b - T) ** 2).sum() + gamma / 2 * ((V - P) ** 2).sum())

    A = rho * W.T @ W + gamma * torch.eye(d_in, dtype=torch.float64)
    best = objective(torch.linalg.solve(A, (rho * (T - b) @ W + gamma * P).T).T)
    for dtype, tol in ((torch.float64, 1e-6), (torch.float32, 1e-2)):
        V = linear_prox(T.to(dtype), W.to(dtype), P.to(dtype), rho=rho, gamma=gamma,
                        b=b.to(dtype))
        assert objective(V) <= best * (1 + tol) + tol, (dtype, objective(V), best)
        assert objective(V) <= objective(P)  # never worse than not moving
