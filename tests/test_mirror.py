"""The Bregman proximal gradient solver (liftnet.solvers.mirror) against scipy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from scipy.special import expit, xlogy

from liftnet.solvers import bregman_gradient

# (sigma, sigma^{-1}, F on the closed range, range, sup sigma', F* (torch))
LINKS = {
    "sigmoid": (torch.sigmoid, torch.logit,
                lambda v: xlogy(v, v) + xlogy(1 - v, 1 - v), (0.0, 1.0), 0.25,
                lambda u: torch.logaddexp(u, torch.zeros_like(u))),
    "tanh": (torch.tanh, torch.atanh,
             lambda v: 0.5 * (xlogy(1 - v, 1 - v) + xlogy(1 + v, 1 + v)), (-1.0, 1.0), 1.0,
             lambda u: torch.logaddexp(u, -u) - np.log(2.0)),
}


def _quadratic(A, T):
    """g(Z) = 1/2 ||Z A^T - T||^2: (value, gradient)."""
    return (lambda Z: 0.5 * float(((Z @ A.T - T) ** 2).sum()), lambda Z: (Z @ A.T - T) @ A)


def _problem(seed: int, n: int = 7, d: int = 5, k: int = 3):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(k, d, generator=g, dtype=torch.float64)
    T = torch.randn(n, k, generator=g, dtype=torch.float64)
    U = 2.0 * torch.randn(n, d, generator=g, dtype=torch.float64)
    return A, T, U


def _newton_polish(h, dh, x, shape, An, w, name, lo, hi, steps=30):
    """Exact Newton steps (numpy, the Hessian per row: w F''(z) on the diagonal plus A^T A)
    from L-BFGS-B's point, which stops where its tests say (ftol, gtol) and can leave the
    minimiser off by about 1e-6 along flat directions; each step halved until h does not
    increase and the point stays inside the range.  Returns (x, h(x))."""
    G = An.T @ An
    for _ in range(steps):
        Z = x.reshape(shape)
        curv = 1.0 / (1.0 - Z**2) if name == "tanh" else 1.0 / (Z * (1.0 - Z))
        g = dh(x).reshape(shape)
        step = np.stack([np.linalg.solve(w * np.diag(c) + G, gi) for c, gi in zip(curv, g,
                                                                                   strict=True)])
        t, fx = 1.0, h(x)
        while t > 1e-12:
            cand = x - t * step.ravel()
            if np.all(cand > lo) and np.all(cand < hi) and h(cand) <= fx:
                break
            t /= 2
        else:
            break
        x = cand
    return x, h(x)


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
@pytest.mark.parametrize("w", [0.3, 2.0])
@pytest.mark.parametrize("adaptive", [False, True])
def test_bregman_gradient_matches_scipy(name, w, adaptive):
    """min w (F(Z) - <U, Z>) + 1/2 ||Z A^T - T||^2 over the range of sigma; adaptive: the
    local relative smoothness by the value test."""
    sigma, inv, F, (lo, hi), slope, conj = LINKS[name]
    A, T, U = _problem(1)
    An, Tn, Un = A.numpy(), T.numpy(), U.numpy()
    shape = Un.shape

    def h(z):
        Z = z.reshape(shape)
        return w * (F(Z) - Un * Z).sum() + 0.5 * ((Z @ An.T - Tn) ** 2).sum()

    def dh(z):
        Z = np.clip(z.reshape(shape), lo + 1e-15, hi - 1e-15)
        return (w * (np.arctanh(Z) if name == "tanh" else np.log(Z / (1 - Z)))
                - w * Un + (Z @ An.T - Tn) @ An).ravel()

    ref = minimize(h, np.full(Un.size, 0.5 * (lo + hi)), jac=dh, method="L-BFGS-B",
                   bounds=[(lo + 1e-12, hi - 1e-12)] * Un.size,
                   options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 50000})
    ref.x, ref.fun = _newton_polish(h, dh, ref.x, shape, An, w, name, lo, hi)
    smooth = float(torch.linalg.matrix_norm(A, ord=2)) ** 2 * slope  # relative to F
    value, grad = _quadratic(A, T)
    extra = {"value_g": value, "conjugate": conj} if adaptive else {}
    res = bregman_gradient(grad, sigma, U, torch.zeros_like(U), w, smooth, tol=1e-12,
                           max_iter=100000, **extra)
    assert res.converged
    assert h(res.x.numpy().ravel()) <= ref.fun + 1e-9 * max(1.0, abs(ref.fun))
    np.testing.assert_allclose(res.x.numpy(), ref.x.reshape(shape), atol=1e-6)
    torch.testing.assert_close(sigma(res.v), res.x)
    torch.testing.assert_close(res.v, inv(res.x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
@pytest.mark.parametrize("adaptive", [False, True])
def test_bregman_gradient_decreases_the_objective_at_every_step(name, adaptive):
    sigma, _, F, _, slope, conj = LINKS[name]
    A, T, U = _problem(2)
    w = 0.5

    def h(Z):
        Z = Z.numpy()
        return w * (F(Z) - U.numpy() * Z).sum() + 0.5 * ((Z @ A.numpy().T - T.numpy()) ** 2).sum()

    smooth = float(torch.linalg.matrix_norm(A, ord=2)) ** 2 * slope
    value, grad = _quadratic(A, T)
    extra = {"value_g": value, "conjugate": conj} if adaptive else {}
    values = [h(sigma(torch.zeros_like(U)))]
    for k in range(1, 30):
        res = bregman_gradient(grad, sigma, U, torch.zeros_like(U), w, smooth, tol=0.0,
                               max_iter=k, **extra)
        assert res.iterations == k and not res.converged
        values.append(h(res.x))
    assert all(b <= a + 1e-12 for a, b in zip(values, values[1:], strict=False))
    assert values[-1] < values[0]


def test_adaptive_steps_need_fewer_iterations_than_the_global_bound():
    """A loose global bound (100 times the relative smoothness): the value test finds the
    local one, so the adaptive iteration reaches the tolerance in far fewer steps."""
    sigma, _, _, _, slope, conj = LINKS["sigmoid"]
    A, T, U = _problem(3)
    value, grad = _quadratic(A, T)
    smooth = 100.0 * float(torch.linalg.matrix_norm(A, ord=2)) ** 2 * slope
    plain = bregman_gradient(grad, sigma, U, torch.zeros_like(U), 1.0, smooth, tol=1e-8,
                             max_iter=100000)
    fast = bregman_gradient(grad, sigma, U, torch.zeros_like(U), 1.0, smooth, tol=1e-8,
                            max_iter=100000, value_g=value, conjugate=conj)
    assert plain.converged and fast.converged
    assert fast.iterations * 5 < plain.iterations
    torch.testing.assert_close(fast.x, plain.x, atol=1e-6, rtol=0)


def test_bregman_gradient_without_g_converges_to_sigma_of_u():
    """g = 0: the minimiser of F(Z) - <U, Z> is sigma(U), reached at the linear rate
    L / (w + L) in mirror coordinates."""
    U = torch.linspace(-8.0, 8.0, 17, dtype=torch.float64)[None, :]
    res = bregman_gradient(torch.zeros_like, torch.sigmoid, U, torch.zeros_like(U), 1.0, 1.0,
                           tol=1e-13, max_iter=200)
    assert res.converged
    np.testing.assert_allclose(res.x.numpy(), expit(U.numpy()), atol=1e-12)


def test_bregman_gradient_invalid_arguments_raise():
    U = torch.zeros(2, 3)
    g = torch.zeros_like
    for kwargs, match in (({"weight": 0.0}, "weight must be finite and > 0"),
                          ({"smoothness": float("nan")}, "smoothness must be finite and > 0"),
                          ({"tol": -1.0}, "tol must be >= 0"),
                          ({"max_iter": -1}, "max_iter must be >= 0")):
        args = {"weight": 1.0, "smoothness": 1.0, **kwargs}
        extra = {k: args.pop(k) for k in ("tol", "max_iter") if k in args}
        with pytest.raises(ValueError, match=match):
            bregman_gradient(g, torch.sigmoid, U, U, args["weight"], args["smoothness"], **extra)


def test_a_saturated_start_is_not_taken_for_convergence():
    """From V0 = 30 (sigma(V0) = 1 - 1e-13) towards sigma(0) = 1/2: the first steps move Z by
    almost nothing while the gradient of h is large; the stopping rule must see the gradient."""
    U = torch.zeros(1, 3, dtype=torch.float64)
    V0 = torch.full_like(U, 30.0)
    for extra in ({}, {"value_g": lambda Z: 0.0,
                       "conjugate": lambda u: torch.logaddexp(u, torch.zeros_like(u))}):
        res = bregman_gradient(torch.zeros_like, torch.sigmoid, U, V0, 1.0, 1.0, tol=1e-8,
                               max_iter=10000, **extra)
        assert res.converged and res.iterations > 1
        torch.testing.assert_close(res.x, torch.full_like(U, 0.5), atol=1e-6, rtol=0)


def test_large_mirror_coordinates_do_not_overflow_in_float32():
    U = torch.zeros(2, 2)
    res = bregman_gradient(torch.zeros_like, torch.sigmoid, U, torch.full_like(U, 1e30), 1.0,
                           1e10, tol=1e-6, max_iter=5)
    assert torch.isfinite(res.v).all() and not res.converged
