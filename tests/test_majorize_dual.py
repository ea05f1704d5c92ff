"""liftnet.solvers.majorize_dual: the sample-space MM regression against scipy's L-BFGS-B and
against the primal MM of liftnet.solvers.majorize (same iterates, so the same iteration count).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from liftnet.solvers.majorize import augmented_gram, mm_precision, mm_regression
from liftnet.solvers.majorize_dual import dual_applies, mm_regression_dual, sample_precision
from test_majorize import (
    RectifiedLS,
    SoftmaxCE,
    Squared,
    _mm,
    _objective_np,
    _problem,
    _scipy_solve,
    _single_thread,  # noqa: F401 (autouse fixture: one thread for tiny matrices)
)


def _dual(loss, P, W, b, *, W0, b0, g_w, g_b, rho, tol=1e-12, max_iter=5000):
    Pt = torch.from_numpy(P)
    C = sample_precision(Pt, loss.curvature, g_b)
    return mm_regression_dual(
        Pt, loss.grad_u, loss.value_u, torch.from_numpy(W).clone(), torch.from_numpy(b).clone(),
        C, loss.curvature, W0=torch.from_numpy(W0), b0=torch.from_numpy(b0), g_w=g_w, g_b=g_b,
        rho=rho, tol=tol, max_iter=max_iter)


def _loss(kind, rng, R, m):
    if kind == "relu":
        return RectifiedLS(np.maximum(rng.standard_normal((R, m)), 0.0), lam=0.7)
    if kind == "ce":
        return SoftmaxCE(np.eye(m)[rng.integers(0, m, R)], c=3.0)
    return Squared(rng.standard_normal((R, m)), c=0.5)


def test_sample_precision_is_the_woodbury_inverse():
    rng = np.random.default_rng(0)
    P = rng.standard_normal((7, 12))
    C = sample_precision(torch.from_numpy(P), 2.5, 0.8).numpy()
    A = np.hstack([P, np.ones((7, 1))])
    np.testing.assert_allclose(C, np.linalg.inv(np.eye(7) / 2.5 + A @ A.T / 1.6), rtol=1e-10)


@pytest.mark.parametrize("kind", ["relu", "ce", "mse"])
@pytest.mark.parametrize("g_w,rho", [(0.6, 0.0), (0.4, 0.3)])
def test_dual_matches_scipy_and_primal(kind, g_w, rho):
    R, d, m = 9, 14, 4
    rng, P, W0, b0 = _problem(R, d, m, seed=3)
    loss = _loss(kind, rng, R, m)
    g_b = g_w + rho
    W_s = W0 + 0.2 * rng.standard_normal(W0.shape)  # a start away from the proximal centre
    b_s = b0 + 0.2 * rng.standard_normal(b0.shape)
    res = _dual(loss, P, W_s, b_s, W0=W0, b0=b0, g_w=g_w, g_b=g_b, rho=rho)
    assert res.converged
    W_ref, b_ref, _ = _scipy_solve(loss, P, W0, b0, g_w, g_b, rho)
    f = _objective_np(loss, P, res.W.numpy(), res.b.numpy(), W0, b0, g_w, g_b, rho)
    f_ref = _objective_np(loss, P, W_ref, b_ref, W0, b0, g_w, g_b, rho)
    assert f <= f_ref + 1e-9 * max(1.0, abs(f_ref))
    np.testing.assert_allclose(res.W.numpy(), W_ref, atol=1e-5)
    np.testing.assert_allclose(res.b.numpy(), b_ref, atol=1e-5)
    # the same MM iterates as the primal form: same steps, same stopping point
    for tol, cap in ((1e-4, 100), (1e-7, 4)):  # converged; stopped by the cap (not mse)
        primal = _mm(loss, P, W_s, b_s, W0=W0, b0=b0, g_w=g_w, g_b=g_b, rho=rho, tol=tol,
                     max_iter=cap)
        dual = _dual(loss, P, W_s, b_s, W0=W0, b0=b0, g_w=g_w, g_b=g_b, rho=rho, tol=tol,
                     max_iter=cap)
        assert dual.iterations == primal.iterations
        np.testing.assert_allclose(dual.W.numpy(), primal.W.numpy(), rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(dual.b.numpy(), primal.b.numpy(), rtol=1e-7, atol=1e-9)
        assert dual.step == pytest.approx(primal.step, rel=1e-6, abs=1e-8)  # rounding level


def test_dual_never_returns_a_worse_point():
    """A curvature far too small (not a majoriser): the iterates can go up; the solver must
    hand back the start rather than a worse point."""
    R, d, m = 6, 10, 3
    rng, P, W0, b0 = _problem(R, d, m, seed=5)
    loss = _loss("mse", rng, R, m)
    Pt = torch.from_numpy(P)
    C = sample_precision(Pt, loss.curvature / 100, 0.1)
    res = mm_regression_dual(Pt, loss.grad_u, loss.value_u, torch.from_numpy(W0),
                             torch.from_numpy(b0), C, loss.curvature / 100, g_w=0.1, g_b=0.1,
                             tol=1e-12, max_iter=3)
    f0 = _objective_np(loss, P, W0, b0, W0, b0, 0.1, 0.1, 0.0)
    f = _objective_np(loss, P, res.W.numpy(), res.b.numpy(), W0, b0, 0.1, 0.1, 0.0)
    assert f <= f0 + 1e-12


def test_float32_design_matches_float64():
    """Batches arrive in float32: the solve (float64 C, float32 products) must still reach the
    float64 optimum's objective to float32 accuracy, and match the primal form in float32."""
    R, d, m = 20, 40, 5
    rng, P, W0, b0 = _problem(R, d, m, seed=7)
    loss = _loss("relu", rng, R, m)
    ref = _dual(loss, P, W0, b0, W0=W0, b0=b0, g_w=1.0, g_b=1.0, rho=0.0)
    f_ref = _objective_np(loss, P, ref.W.numpy(), ref.b.numpy(), W0, b0, 1.0, 1.0, 0.0)
    loss32 = RectifiedLS(loss.T.astype(np.float32), lam=loss.lam)
    P32 = torch.from_numpy(P.astype(np.float32))
    W32, b32 = torch.from_numpy(W0.astype(np.float32)), torch.from_numpy(b0.astype(np.float32))
    C = sample_precision(P32, loss32.curvature, 1.0)
    res = mm_regression_dual(P32, loss32.grad_u, loss32.value_u, W32, b32, C, loss32.curvature,
                             g_w=1.0, g_b=1.0, tol=1e-5, max_iter=1000)
    assert res.W.dtype == torch.float32 and res.converged
    f = _objective_np(loss, P, res.W.double().numpy(), res.b.double().numpy(), W0, b0, 1.0, 1.0,
                      0.0)
    assert f - f_ref <= 1e-5 * abs(f_ref)
    primal = _mm(loss32, P.astype(np.float32), W0.astype(np.float32), b0.astype(np.float32),
                 g_w=1.0, g_b=1.0, tol=1e-5, max_iter=1000)
    np.testing.assert_allclose(res.W.numpy(), primal.W.numpy(), atol=1e-4)


def test_dual_applies_and_refuses():
    assert dual_applies(500, 784, 10.0, 10.0, 0.0)
    assert not dual_applies(500, 300, 10.0, 10.0, 0.0)  # more rows than columns: primal
    assert not dual_applies(5, 10, 1.0, 2.0, 0.0)  # different weights for W and b
    assert not dual_applies(5, 10, 0.0, 0.0, 0.0)  # no proximal term
    P = torch.zeros(5, 10, dtype=torch.float64)
    with pytest.raises(ValueError, match="g_b = g_w \\+ rho"):
        mm_regression_dual(P, lambda U: U, lambda U: 0.0, torch.zeros(2, 10, dtype=P.dtype),
                           torch.zeros(2, dtype=P.dtype), torch.eye(5, dtype=P.dtype), 1.0,
                           g_w=1.0, g_b=3.0)
    with pytest.raises(ValueError, match="must be > 0"):
        sample_precision(P, 0.0, 1.0)


@pytest.mark.parametrize("kind", ["relu", "ce"])
def test_dual_from_the_proximal_centre_matches_the_primal(kind):
    """Algorithm 2's usual case (the step starts at W0, no weight decay): the start's outputs
    double as U~0; the iterates must still be the primal form's."""
    R, d, m = 9, 14, 4
    rng, P, W0, b0 = _problem(R, d, m, seed=11)
    loss = _loss(kind, rng, R, m)
    primal = _mm(loss, P, W0.copy(), b0.copy(), W0=W0, b0=b0, g_w=0.5, g_b=0.5, tol=1e-6,
                 max_iter=200)
    dual = _dual(loss, P, W0.copy(), b0.copy(), W0=W0, b0=b0, g_w=0.5, g_b=0.5, rho=0.0,
                 tol=1e-6, max_iter=200)
    assert dual.iterations == primal.iterations and dual.converged
    np.testing.assert_allclose(dual.W.numpy(), primal.W.numpy(), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(dual.b.numpy(), primal.b.numpy(), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("kind", ["relu", "ce"])
def test_given_start_outputs_are_used_and_change_nothing(kind):
    """``U``: the caller's outputs of the start (the Fenchel step reuses the feed-forward
    pre-activation).  Passing the true ones changes nothing, in both forms; passing others
    shows they are the ones used (no silent recomputation)."""
    R, d, m = 9, 14, 4
    rng, P, W0, b0 = _problem(R, d, m, seed=3)
    loss = _loss(kind, rng, R, m)
    W, b = W0 + 0.1 * rng.standard_normal(W0.shape), b0.copy()
    Pt, Wt, bt = torch.from_numpy(P), torch.from_numpy(W), torch.from_numpy(b)
    U = torch.addmm(bt, Pt, Wt.T)
    common = dict(W0=torch.from_numpy(W0), b0=torch.from_numpy(b0), g_w=0.5, g_b=0.5,
                  tol=1e-6, max_iter=50)
    C = sample_precision(Pt, loss.curvature, 0.5)
    H = mm_precision(augmented_gram(Pt), loss.curvature, 0.5, 0.5, 0.0)
    for solve in (lambda **kw: mm_regression_dual(Pt, loss.grad_u, loss.value_u, Wt, bt, C,
                                                  loss.curvature, **common, **kw),
                  lambda **kw: mm_regression(Pt, loss.grad_u, loss.value_u, Wt, bt, H,
                                             **common, **kw)):
        plain, given = solve(), solve(U=U.clone())
        assert given.iterations == plain.iterations
        assert torch.equal(given.W, plain.W) and torch.equal(given.b, plain.b)
        wrong = solve(U=U + torch.from_numpy(rng.standard_normal(tuple(U.shape))))
        assert not torch.allclose(wrong.W, plain.W)
