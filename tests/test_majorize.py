"""liftnet.solvers.majorize against scipy's L-BFGS-B and numpy closed forms.

Problem (module docstring), rows first:

    min_{W, b}  phi(P W^T + 1 b^T) + g_w ||W - W0||^2 + g_b ||b - b0||^2 + rho ||W||^2

written out again here in numpy (value and gradient) and minimised by scipy with tight
tolerances; the MM solution must match it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from scipy.special import logsumexp, softmax

from liftnet.solvers.majorize import MMResult, augmented_gram, mm_precision, mm_regression

DT = torch.float64


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Tiny matrices: intra-op threads only add contention (10-100x slower on a busy machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# --------------------------------------------------------------------------------------------
# the three losses of the docstring: torch callables for the solver, numpy for the reference
# --------------------------------------------------------------------------------------------


class RectifiedLS:
    """phi(U) = lam sum(relu(U)^2 - 2 U T), curvature 2 lam."""

    def __init__(self, T: np.ndarray, lam: float):
        self.T, self.lam = T, lam
        self.Tt = torch.from_numpy(T)
        self.curvature = 2.0 * lam

    def value_np(self, U):
        return self.lam * float(np.sum(np.maximum(U, 0) ** 2 - 2 * U * self.T))

    def grad_np(self, U):
        return self.lam * (2 * np.maximum(U, 0) - 2 * self.T)

    def value_u(self, U: torch.Tensor) -> float:
        return self.lam * float((torch.relu(U) ** 2 - 2 * U * self.Tt).sum())

    def grad_u(self, U: torch.Tensor) -> torch.Tensor:
        return self.lam * (2 * torch.relu(U) - 2 * self.Tt)


class SoftmaxCE:
    """phi(U) = c sum_rows(logsumexp(U_r) - <U_r, Y_r>), curvature c / 2."""

    def __init__(self, Y: np.ndarray, c: float):
        self.Y, self.c = Y, c
        self.Yt = torch.from_numpy(Y)
        self.curvature = c / 2.0

    def value_np(self, U):
        return self.c * float(np.sum(logsumexp(U, axis=1) - np.sum(U * self.Y, axis=1)))

    def grad_np(self, U):
        return self.c * (softmax(U, axis=1) - self.Y)

    def value_u(self, U: torch.Tensor) -> float:
        return self.c * float((torch.logsumexp(U, 1) - (U * self.Yt).sum(1)).sum())

    def grad_u(self, U: torch.Tensor) -> torch.Tensor:
        return self.c * (torch.softmax(U, 1) - self.Yt)


class Squared:
    """phi(U) = c ||U - Y||^2, curvature 2 c (exact)."""

    def __init__(self, Y: np.ndarray, c: float):
        self.Y, self.c = Y, c
        self.Yt = torch.from_numpy(Y)
        self.curvature = 2.0 * c

    def value_np(self, U):
        return self.c * float(np.sum((U - self.Y) ** 2))

    def grad_np(self, U):
        return 2 * self.c * (U - self.Y)

    def value_u(self, U: torch.Tensor) -> float:
        return self.c * float(((U - self.Yt) ** 2).sum())

    def grad_u(self, U: torch.Tensor) -> torch.Tensor:
        return 2 * self.c * (U - self.Yt)


def _objective_np(loss, P, W, b, W0, b0, g_w, g_b, rho):
    U = P @ W.T + b[None, :]
    return (loss.value_np(U) + g_w * np.sum((W - W0) ** 2) + g_b * np.sum((b - b0) ** 2)
            + rho * np.sum(W**2))


def _scipy_solve(loss, P, W0, b0, g_w, g_b, rho, x0W=None, x0b=None):
    """Reference minimiser: L-BFGS-B on the numpy objective with its analytic gradient."""
    m, d = W0.shape

    def fg(x):
        W, b = x[: m * d].reshape(m, d), x[m * d :]
        U = P @ W.T + b[None, :]
        G = loss.grad_np(U)
        f = (loss.value_np(U) + g_w * np.sum((W - W0) ** 2) + g_b * np.sum((b - b0) ** 2)
             + rho * np.sum(W**2))
        gW = G.T @ P + 2 * g_w * (W - W0) + 2 * rho * W
        gb = G.sum(0) + 2 * g_b * (b - b0)
        return f, np.concatenate([gW.ravel(), gb])

    x0 = np.concatenate([(W0 if x0W is None else x0W).ravel(), b0 if x0b is None else x0b])
    res = minimize(fg, x0, jac=True, method="L-BFGS-B",
                   options={"gtol": 1e-12, "ftol": 1e-15, "maxiter": 20000,
                            "maxfun": 40000, "maxcor": 30})
    W, b = res.x[: m * d].reshape(m, d), res.x[m * d :]
    return W, b, res


def _mm(loss, P, W, b, *, W0=None, b0=None, g_w=0.0, g_b=0.0, rho=0.0, tol=1e-12,
        max_iter=5000, curvature=None):
    Pt = torch.from_numpy(P)
    Hinv = mm_precision(augmented_gram(Pt), loss.curvature if curvature is None else curvature,
                        g_w, g_b, rho)
    return mm_regression(
        Pt, loss.grad_u, loss.value_u, torch.from_numpy(W).clone(), torch.from_numpy(b).clone(),
        Hinv,
        W0=None if W0 is None else torch.from_numpy(W0),
        b0=None if b0 is None else torch.from_numpy(b0),
        g_w=g_w, g_b=g_b, rho=rho, tol=tol, max_iter=max_iter,
    )


def _problem(R, d, m, seed):
    rng = np.random.default_rng(seed)
    P = rng.standard_normal((R, d))
    W0 = 0.3 * rng.standard_normal((m, d))
    b0 = 0.3 * rng.standard_normal(m)
    return rng, P, W0, b0


# --------------------------------------------------------------------------------------------
# augmented_gram, mm_precision
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("R", "d", "chunk"), [(40, 6, 65536), (40, 6, 7), (41, 3, 1),
                                               (200, 15, 64), (10, 4, 10)])
def test_augmented_gram(R, d, chunk):
    P = np.random.default_rng(R + d).standard_normal((R, d)) + 0.5
    A = np.hstack([P, np.ones((R, 1))])
    G = augmented_gram(torch.from_numpy(P), chunk=chunk)
    assert G.shape == (d + 1, d + 1) and G.dtype == DT
    np.testing.assert_allclose(G.numpy(), A.T @ A, rtol=1e-12, atol=1e-10)


def test_augmented_gram_float32_input_accumulates_in_float64():
    """float32 rows: each chunk's product in float32 (exact to ~1e-7 of its entries), the
    chunks summed in float64, so many rows lose nothing more (non-negative rows, as im2col
    patches of images: no cancellation to hide behind)."""
    P = np.random.default_rng(0).random((150_000, 5)).astype(np.float32)
    A = np.hstack([P.astype(np.float64), np.ones((len(P), 1))])
    for chunk in (32, 4096):
        G = augmented_gram(torch.from_numpy(P), chunk=chunk)
        assert G.dtype == DT
        np.testing.assert_allclose(G.numpy(), A.T @ A, rtol=1e-6)
    # the row sums (the bias column) and the row count are exact sums of the float32 values
    np.testing.assert_allclose(G.numpy()[:5, 5], P.astype(np.float64).sum(0), rtol=1e-13)
    assert G[5, 5] == len(P)


def test_augmented_gram_of_signed_float32_rows_is_exact():
    """Rows of both signs (standardised inputs) cancel: float32 products would lose the small
    eigenvalues and the MM steps would stop being majorisations, so they are multiplied in
    float64 (here nearly collinear columns: the smallest eigenvalue is about 1e-6 of the
    largest, far below float32 product errors)."""
    rng = np.random.default_rng(1)
    base = rng.standard_normal((20_000, 1))
    P = (base + 1e-3 * rng.standard_normal((20_000, 4))).astype(np.float32)
    A = np.hstack([P.astype(np.float64), np.ones((len(P), 1))])
    G = augmented_gram(torch.from_numpy(P)).numpy()
    np.testing.assert_allclose(G, A.T @ A, rtol=1e-12, atol=1e-9)
    ev = np.linalg.eigvalsh(G)
    np.testing.assert_allclose(ev, np.linalg.eigvalsh(A.T @ A), rtol=1e-9, atol=1e-9)
    # the caller's hint: signed=True is the same float64 product, signed=False the float32 one
    Pt = torch.from_numpy(P)
    assert torch.equal(augmented_gram(Pt, signed=True), torch.from_numpy(G))
    G32 = augmented_gram(Pt, signed=False).numpy()
    assert not np.array_equal(G32, G)
    np.testing.assert_allclose(G32, A.T @ A, rtol=1e-5)


@pytest.mark.parametrize(("curv", "g_w", "g_b", "rho"),
                         [(2.0, 0.5, 0.1, 0.0), (0.25, 0.0, 1.0, 0.3), (1.0, 0.0, 0.0, 0.0),
                          (3.0, 1e-3, 2.0, 0.05)])
def test_mm_precision_is_inverse(curv, g_w, g_b, rho):
    rng = np.random.default_rng(1)
    P = rng.standard_normal((60, 5))
    A = np.hstack([P, np.ones((60, 1))])
    H = curv * A.T @ A + 2 * np.diag([g_w + rho] * 5 + [g_b])
    Hinv = mm_precision(augmented_gram(torch.from_numpy(P)), curv, g_w, g_b, rho)
    assert Hinv.dtype == DT and Hinv.shape == (6, 6)
    np.testing.assert_allclose(H @ Hinv.numpy(), np.eye(6), atol=1e-8)
    np.testing.assert_allclose(Hinv.numpy(), np.linalg.inv(H), rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(Hinv.numpy(), Hinv.numpy().T, atol=1e-12)


# --------------------------------------------------------------------------------------------
# against scipy
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("R", "d", "m"), [(40, 6, 3), (200, 15, 7), (120, 4, 1)])
@pytest.mark.parametrize(("g_w", "g_b", "rho"), [(0.5, 0.2, 0.0), (0.1, 0.05, 0.3)])
def test_rectified_least_squares_matches_scipy(R, d, m, g_w, g_b, rho):
    rng, P, W0, b0 = _problem(R, d, m, seed=R + d + m)
    T = np.maximum(rng.standard_normal((R, m)), 0.0)
    loss = RectifiedLS(T, lam=0.7)
    Wref, bref, res = _scipy_solve(loss, P, W0, b0, g_w, g_b, rho)
    Ws = rng.standard_normal((m, d))
    bs = rng.standard_normal(m)
    out = _mm(loss, P, Ws, bs, W0=W0, b0=b0, g_w=g_w, g_b=g_b, rho=rho)
    assert isinstance(out, MMResult)
    W, b = out.W.numpy(), out.b.numpy()
    assert W.shape == (m, d) and b.shape == (m,)
    scale = max(np.abs(Wref).max(), np.abs(bref).max(), 1.0)
    np.testing.assert_allclose(W, Wref, rtol=1e-5, atol=1e-6 * scale)
    np.testing.assert_allclose(b, bref, rtol=1e-5, atol=1e-6 * scale)
    f_mm = _objective_np(loss, P, W, b, W0, b0, g_w, g_b, rho)
    assert f_mm <= res.fun + 1e-9 * abs(res.fun)
    assert f_mm == pytest.approx(res.fun, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize(("R", "d", "m"), [(40, 6, 3), (200, 15, 7)])
def test_softmax_cross_entropy_matches_scipy(R, d, m):
    rng, P, W0, b0 = _problem(R, d, m, seed=7 * R + d)
    Y = np.eye(m)[rng.integers(0, m, R)]
    loss = SoftmaxCE(Y, c=1.5)
    g_w, g_b = 0.4, 0.1
    Wref, bref, res = _scipy_solve(loss, P, W0, b0, g_w, g_b, 0.0)
    out = _mm(loss, P, W0, b0, W0=W0, b0=b0, g_w=g_w, g_b=g_b)
    W, b = out.W.numpy(), out.b.numpy()
    scale = max(np.abs(Wref).max(), np.abs(bref).max(), 1.0)
    np.testing.assert_allclose(W, Wref, rtol=1e-5, atol=1e-6 * scale)
    np.testing.assert_allclose(b, bref, rtol=1e-5, atol=1e-6 * scale)
    f_mm = _objective_np(loss, P, W, b, W0, b0, g_w, g_b, 0.0)
    assert f_mm == pytest.approx(res.fun, rel=1e-9, abs=1e-9)


def test_default_centres_are_the_start():
    """W0 = None, b0 = None means the proximal terms are centred at the starting point."""
    rng, P, W0, b0 = _problem(80, 5, 3, seed=3)
    T = np.maximum(rng.standard_normal((80, 3)), 0.0)
    loss = RectifiedLS(T, lam=1.0)
    Wref, bref, _ = _scipy_solve(loss, P, W0, b0, 0.3, 0.2, 0.1)
    out = _mm(loss, P, W0, b0, g_w=0.3, g_b=0.2, rho=0.1)
    np.testing.assert_allclose(out.W.numpy(), Wref, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(out.b.numpy(), bref, rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------------------------
# squared loss: the first step is exact
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("R", "d", "m"), [(40, 6, 3), (200, 15, 7)])
@pytest.mark.parametrize(("g_w", "g_b", "rho"), [(0.5, 0.2, 0.0), (0.0, 0.3, 0.7),
                                                 (0.0, 0.0, 0.0)])
def test_squared_loss_first_step_is_ridge_solution(R, d, m, g_w, g_b, rho):
    rng, P, W0, b0 = _problem(R, d, m, seed=11 * R + m)
    Y = rng.standard_normal((R, m))
    c = 0.8
    loss = Squared(Y, c)
    # normal equations per unit: (c A^T A + D) theta_j = c A^T y_j + D0 theta0_j
    A = np.hstack([P, np.ones((R, 1))])
    D = np.diag([g_w + rho] * d + [g_b])
    rhs = c * A.T @ Y + np.vstack([g_w * W0.T, g_b * b0[None, :]])
    theta = np.linalg.solve(c * A.T @ A + D, rhs).T  # (m, d+1)
    Ws, bs = rng.standard_normal((m, d)), rng.standard_normal(m)
    out = _mm(loss, P, Ws, bs, W0=W0, b0=b0, g_w=g_w, g_b=g_b, rho=rho, max_iter=1)
    assert out.iterations == 1
    np.testing.assert_allclose(out.W.numpy(), theta[:, :d], rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(out.b.numpy(), theta[:, d], rtol=1e-8, atol=1e-8)


# --------------------------------------------------------------------------------------------
# monotonicity
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rls", "ce"])
def test_start_at_optimum_does_not_increase(kind):
    rng, P, W0, b0 = _problem(100, 8, 4, seed=21)
    if kind == "rls":
        loss = RectifiedLS(np.maximum(rng.standard_normal((100, 4)), 0.0), lam=0.9)
    else:
        loss = SoftmaxCE(np.eye(4)[rng.integers(0, 4, 100)], c=2.0)
    g_w, g_b, rho = 0.2, 0.1, 0.05
    Wopt, bopt, _ = _scipy_solve(loss, P, W0, b0, g_w, g_b, rho)
    f_opt = _objective_np(loss, P, Wopt, bopt, W0, b0, g_w, g_b, rho)
    for max_iter in (1, 2, 5):
        out = _mm(loss, P, Wopt, bopt, W0=W0, b0=b0, g_w=g_w, g_b=g_b, rho=rho, tol=0.0,
                  max_iter=max_iter)
        f = _objective_np(loss, P, out.W.numpy(), out.b.numpy(), W0, b0, g_w, g_b, rho)
        assert f <= f_opt + 1e-12 * abs(f_opt)


@pytest.mark.parametrize("kind", ["rls", "ce", "sq"])
def test_two_steps_decrease_from_random_start(kind):
    rng, P, W0, b0 = _problem(150, 10, 5, seed=31)
    if kind == "rls":
        loss = RectifiedLS(np.maximum(rng.standard_normal((150, 5)), 0.0), lam=1.3)
    elif kind == "ce":
        loss = SoftmaxCE(np.eye(5)[rng.integers(0, 5, 150)], c=1.0)
    else:
        loss = Squared(rng.standard_normal((150, 5)), c=0.5)
    g_w, g_b, rho = 0.3, 0.2, 0.1
    Ws, bs = 2.0 * rng.standard_normal((5, 10)), 2.0 * rng.standard_normal(5)
    f0 = _objective_np(loss, P, Ws, bs, W0, b0, g_w, g_b, rho)
    out = _mm(loss, P, Ws, bs, W0=W0, b0=b0, g_w=g_w, g_b=g_b, rho=rho, tol=0.0, max_iter=2)
    f = _objective_np(loss, P, out.W.numpy(), out.b.numpy(), W0, b0, g_w, g_b, rho)
    assert out.iterations == 2 and not out.converged
    assert f < f0 - 1e-3 * abs(f0)


def test_never_worse_than_start_with_too_small_curvature():
    """A precision built from a curvature 100x too small overshoots: the first step increases
    the objective, and the solver must then return the start unchanged."""
    rng, P, W0, b0 = _problem(100, 6, 3, seed=41)
    loss = Squared(rng.standard_normal((100, 3)), c=1.0)
    Ws, bs = rng.standard_normal((3, 6)), rng.standard_normal(3)
    f0 = _objective_np(loss, P, Ws, bs, Ws, bs, 0.1, 0.1, 0.0)
    # the raw overshooting step is indeed worse (so the safeguard is what is being tested)
    Pt = torch.from_numpy(P)
    Hinv = mm_precision(augmented_gram(Pt), loss.curvature / 100, 0.1, 0.1, 0.0)
    theta = np.hstack([Ws, bs[:, None]])
    U = P @ Ws.T + bs
    grad = np.hstack([loss.grad_np(U).T @ P, loss.grad_np(U).sum(0)[:, None]])
    step = theta - grad @ Hinv.numpy()
    assert _objective_np(loss, P, step[:, :6], step[:, 6], Ws, bs, 0.1, 0.1, 0.0) > f0
    out = _mm(loss, P, Ws, bs, g_w=0.1, g_b=0.1, max_iter=1, tol=0.0,
              curvature=loss.curvature / 100)
    f = _objective_np(loss, P, out.W.numpy(), out.b.numpy(), Ws, bs, 0.1, 0.1, 0.0)
    assert f <= f0
    np.testing.assert_array_equal(out.W.numpy(), Ws)
    np.testing.assert_array_equal(out.b.numpy(), bs)


def test_safeguard_counts_the_bias_proximal_term():
    """The "never worse than the start" check compares the whole objective, including
    g_b ||b - b0||^2, in both directions.

    (a) Exact step, start at the unpenalised least-squares fit with b0 far away: the step (the
    proximal ridge solution, numpy's normal equations) raises phi but lowers the objective
    through b, and must be accepted.  (b) A precision built with g_b / 100 (a b-step 100x too
    long for g_b = 1000): the raw step raises the objective through b while phi falls, and the
    start must be kept."""
    rng, P, _, _ = _problem(60, 5, 2, seed=71)
    Y = rng.standard_normal((60, 2))
    loss = Squared(Y, c=1.0)
    A = np.hstack([P, np.ones((60, 1))])
    fit = np.linalg.lstsq(A, Y, rcond=None)[0].T
    Ws, bs = fit[:, :5].copy(), fit[:, 5].copy()
    b0, g_b = bs + 5.0, 2.0
    f0 = _objective_np(loss, P, Ws, bs, Ws, b0, 0.0, g_b, 0.0)
    theta = np.linalg.solve(A.T @ A + np.diag([0.0] * 5 + [g_b]),
                            A.T @ Y + np.vstack([np.zeros((5, 2)), g_b * b0[None, :]])).T
    assert loss.value_np(A @ theta.T) > loss.value_np(A @ fit.T)  # phi rises
    out = _mm(loss, P, Ws, bs, b0=b0, g_b=g_b, max_iter=1, tol=0.0)
    assert not out.rejected
    np.testing.assert_allclose(out.W.numpy(), theta[:, :5], rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(out.b.numpy(), theta[:, 5], rtol=1e-8, atol=1e-8)
    assert _objective_np(loss, P, out.W.numpy(), out.b.numpy(), Ws, b0, 0.0, g_b, 0.0) < f0

    rng, P, _, _ = _problem(100, 6, 3, seed=41)
    loss = Squared(rng.standard_normal((100, 3)), c=1.0)
    Ws, bs = rng.standard_normal((3, 6)), rng.standard_normal(3)
    g_w, g_b = 0.1, 1000.0
    f0 = _objective_np(loss, P, Ws, bs, Ws, bs, g_w, g_b, 0.0)
    Pt = torch.from_numpy(P)
    Hinv = mm_precision(augmented_gram(Pt), loss.curvature, g_w, g_b / 100, 0.0)
    U = P @ Ws.T + bs
    grad = np.hstack([loss.grad_np(U).T @ P, loss.grad_np(U).sum(0)[:, None]])
    step = np.hstack([Ws, bs[:, None]]) - grad @ Hinv.numpy()
    assert loss.value_np(P @ step[:, :6].T + step[:, 6]) < loss.value_np(U)  # phi falls ...
    assert _objective_np(loss, P, step[:, :6], step[:, 6], Ws, bs, g_w, g_b, 0.0) > f0  # f rises
    out = mm_regression(Pt, loss.grad_u, loss.value_u, torch.from_numpy(Ws).clone(),
                        torch.from_numpy(bs).clone(), Hinv, g_w=g_w, g_b=g_b, tol=0.0,
                        max_iter=1)
    assert out.rejected
    assert _objective_np(loss, P, out.W.numpy(), out.b.numpy(), Ws, bs, g_w, g_b, 0.0) <= f0
    np.testing.assert_array_equal(out.W.numpy(), Ws)
    np.testing.assert_array_equal(out.b.numpy(), bs)


# --------------------------------------------------------------------------------------------
# stopping rule
# --------------------------------------------------------------------------------------------


def test_converged_flag_and_iterations():
    rng, P, W0, b0 = _problem(120, 5, 3, seed=51)
    loss = RectifiedLS(np.maximum(rng.standard_normal((120, 3)), 0.0), lam=1.0)
    g_w, g_b = 1.0, 1.0  # well conditioned
    out = _mm(loss, P, W0, b0, W0=W0, b0=b0, g_w=g_w, g_b=g_b, tol=1e-10, max_iter=5000)
    assert out.converged
    assert 1 <= out.iterations < 5000
    assert out.step <= 1e-10
    Wref, bref, _ = _scipy_solve(loss, P, W0, b0, g_w, g_b, 0.0)
    np.testing.assert_allclose(out.W.numpy(), Wref, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(out.b.numpy(), bref, rtol=1e-6, atol=1e-8)

    # too few steps for the tolerance: not converged, every step used, step above tol
    short = _mm(loss, P, W0 + 1.0, b0, W0=W0, b0=b0, g_w=g_w, g_b=g_b, tol=1e-10, max_iter=3)
    assert not short.converged
    assert short.iterations == 3
    assert short.step > 1e-10

    # a loose tolerance stops after the first step, without momentum
    loose = _mm(loss, P, W0, b0, W0=W0, b0=b0, g_w=g_w, g_b=g_b, tol=10.0, max_iter=50)
    assert loose.converged and loose.iterations == 1 and loose.step <= 10.0


@pytest.mark.parametrize("kind", ["rls", "ce"])
def test_stops_only_at_a_point_without_momentum(kind):
    """The stopping rule fires only for a step taken from a point without momentum (module
    docstring): the last gradient is then evaluated at the outputs of the previous iterate
    itself, which the same solve with one step fewer returns, not at an extrapolated point.
    Loose tolerances, so that steps from momentum points also fall below them."""
    rng, P, W0, b0 = _problem(120, 5, 3, seed=51)
    if kind == "rls":
        loss = RectifiedLS(np.maximum(rng.standard_normal((120, 3)), 0.0), lam=1.0)
    else:
        loss = SoftmaxCE(np.eye(3)[rng.integers(0, 3, 120)], c=1.0)
    Pt = torch.from_numpy(P)
    Hinv = mm_precision(augmented_gram(Pt), loss.curvature, 0.01, 0.01, 0.0)

    def solve(grad_u, tol, max_iter):
        return mm_regression(Pt, grad_u, loss.value_u, torch.from_numpy(W0 + 1.0),
                             torch.from_numpy(b0), Hinv, W0=torch.from_numpy(W0),
                             b0=torch.from_numpy(b0), g_w=0.01, g_b=0.01, tol=tol,
                             max_iter=max_iter)

    seen = []

    def recording_grad_u(U):
        seen.append(U.clone())
        return loss.grad_u(U)

    for tol in (1e-2, 1e-3, 1e-4):
        seen.clear()
        out = solve(recording_grad_u, tol, 500)
        assert out.converged and not out.rejected and out.step <= tol
        assert len(seen) == out.iterations >= 2
        prev = solve(loss.grad_u, tol, out.iterations - 1)
        assert not prev.converged
        torch.testing.assert_close(seen[-1], Pt @ prev.W.T + prev.b, rtol=1e-12, atol=1e-12)


def test_squared_loss_converges_within_three_steps():
    """Exact curvature: the first step is the minimiser, so the next step is ~0. (The first
    FISTA extrapolation has coefficient 0 but still counts as a momentum point, and the
    stopping rule only fires at a point without momentum, hence up to three steps.)"""
    rng, P, W0, b0 = _problem(90, 7, 4, seed=61)
    loss = Squared(rng.standard_normal((90, 4)), c=1.0)
    out = _mm(loss, P, W0, b0, W0=W0, b0=b0, g_w=0.5, g_b=0.5, tol=1e-8, max_iter=50)
    assert out.converged and out.iterations <= 3 and out.step <= 1e-8
    one = _mm(loss, P, W0, b0, W0=W0, b0=b0, g_w=0.5, g_b=0.5, tol=1e-8, max_iter=1)
    np.testing.assert_allclose(out.W.numpy(), one.W.numpy(), rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(out.b.numpy(), one.b.numpy(), rtol=1e-8, atol=1e-8)


def test_ill_conditioned_float32_gram_is_rejected_never_nan():
    """Float32 rows whose Gram matrix is ill-conditioned (columns of scale 1e3 nearly
    collinear with the bias: a regression's output layer with targets in the thousands,
    cond(H) ~ 1e9): the float32-chunked Gram matrix loses the small eigenvalues, its MM steps
    diverge (the review found NaN weights returned), and the solver keeps the start and says
    so (``rejected``); with the Gram matrix in float64 the same float32 rows reach the ridge
    solution."""
    rng = np.random.default_rng(0)
    R, d, g = 200, 8, 1e-3
    P = 1000.0 + rng.standard_normal((R, d))
    y = P @ rng.standard_normal(d) + 3.0
    A = np.hstack([P, np.ones((R, 1))])
    theta = np.linalg.solve(A.T @ A + g / 2 * np.eye(d + 1), A.T @ y)  # the ridge solution
    P32 = torch.tensor(P, dtype=torch.float32)
    Y = torch.tensor(y[:, None], dtype=torch.float64)

    def solve(gram):
        return mm_regression(
            P32, lambda U: 2.0 * (U.double() - Y).float(),
            lambda U: float(((U.double() - Y) ** 2).sum()),
            torch.zeros(1, d), torch.zeros(1), mm_precision(gram, 2.0, g / 2, g / 2, 0.0),
            g_w=g / 2, g_b=g / 2, tol=1e-10, max_iter=200)

    rounded = solve(augmented_gram(P32))
    assert rounded.rejected and not rounded.W.any() and not rounded.b.any()
    exact = solve(augmented_gram(P32.double()))
    assert not exact.rejected
    fitted = float(((P32.double() @ exact.W.double().T + exact.b.double() - Y) ** 2).sum())
    best, start = float(((A @ theta - y) ** 2).sum()), float((Y**2).sum())
    assert fitted - best <= 1e-9 * (start - best)
