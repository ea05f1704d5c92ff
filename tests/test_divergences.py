"""Fenchel-Young gaps of liftnet.divergences against independent closed forms and scipy.

B(v, u) = F(v) + F*(u) - u v (paper 003, Theorem 1 (4); ReLU form (5)) for every activation of
``FENCHEL_ACTIVATIONS``: non-negativity, zero exactly at v = sigma(u), biconvexity, the gradient
formulas, the conjugates (closed forms and a numerical sup), per-sample sums and error messages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar

from liftnet.activations import ReLU, get_activation, register_activation
from liftnet.divergences import (
    FENCHEL_ACTIVATIONS,
    conjugate,
    fenchel_b,
    fenchel_gap,
    inverse,
    with_conjugate,
)

DT = torch.float64
ALPHA = get_activation("leaky_relu").alpha


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _domain_sample(name: str, shape, g: torch.Generator) -> torch.Tensor:
    """Random points of dom F, including some near (or at) its boundary."""
    if name == "relu":
        v = 2.0 * torch.randn(shape, generator=g, dtype=DT).abs()
        flat = v.reshape(-1)
        flat[:3] = torch.tensor([0.0, 1e-12, 1e-6], dtype=DT)
        return v
    if name == "sigmoid":
        v = torch.rand(shape, generator=g, dtype=DT) * 0.998 + 0.001
        flat = v.reshape(-1)
        flat[:4] = torch.tensor([1e-12, 1 - 1e-12, 1e-6, 1 - 1e-6], dtype=DT)
        return v
    if name == "tanh":
        v = (2 * torch.rand(shape, generator=g, dtype=DT) - 1) * 0.998
        flat = v.reshape(-1)
        flat[:4] = torch.tensor([-1 + 1e-12, 1 - 1e-12, -1 + 1e-6, 1 - 1e-6], dtype=DT)
        return v
    # leaky_relu, identity: dom F = R
    return 3.0 * torch.randn(shape, generator=g, dtype=DT)


def _interior_sample(name: str, shape, g: torch.Generator) -> torch.Tensor:
    """Random points well inside dom F (for gradients: away from boundary and kinks)."""
    if name == "relu":
        return 0.05 + 2.0 * torch.rand(shape, generator=g, dtype=DT)
    if name == "sigmoid":
        return 0.02 + 0.96 * torch.rand(shape, generator=g, dtype=DT)
    if name == "tanh":
        return (2 * torch.rand(shape, generator=g, dtype=DT) - 1) * 0.96
    v = 3.0 * torch.randn(shape, generator=g, dtype=DT)
    return torch.where(v.abs() < 0.05, v + 0.1, v)


# --------------------------------------------------------------------------------------------
# independent numpy references
# --------------------------------------------------------------------------------------------


def _np_potential(name: str, v: np.ndarray) -> np.ndarray:
    """F(v) with F(0) = 0, written out from sigma^{-1}; +inf outside the domain."""
    v = np.asarray(v, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if name == "relu":
            return np.where(v >= 0, v * v / 2, np.inf)
        if name == "leaky_relu":
            return np.where(v >= 0, v * v / 2, v * v / (2 * ALPHA))
        if name == "identity":
            return v * v / 2
        if name == "sigmoid":
            inside = (v >= 0) & (v <= 1)
            vc = np.clip(v, 0, 1)
            ent = np.where(vc > 0, vc * np.log(np.where(vc > 0, vc, 1)), 0.0) + np.where(
                vc < 1, (1 - vc) * np.log(np.where(vc < 1, 1 - vc, 1)), 0.0
            )
            return np.where(inside, ent, np.inf)
        if name == "tanh":
            inside = (v >= -1) & (v <= 1)
            vc = np.clip(v, -1, 1)
            a = np.where(vc < 1, (1 - vc) * np.log(np.where(vc < 1, 1 - vc, 1)), 0.0)
            c = np.where(vc > -1, (1 + vc) * np.log(np.where(vc > -1, 1 + vc, 1)), 0.0)
            return np.where(inside, 0.5 * (a + c), np.inf)
    raise AssertionError(name)


def _np_conjugate(name: str, u: np.ndarray) -> np.ndarray:
    """F*(u) in closed form: relu max(u,0)^2/2, sigmoid log(1+e^u), tanh log cosh u."""
    u = np.asarray(u, dtype=np.float64)
    if name == "relu":
        return np.maximum(u, 0) ** 2 / 2
    if name == "leaky_relu":
        return np.where(u >= 0, u * u / 2, ALPHA * u * u / 2)
    if name == "identity":
        return u * u / 2
    if name == "sigmoid":
        return np.logaddexp(0.0, u)
    if name == "tanh":
        return np.logaddexp(u, -u) - math.log(2.0)
    raise AssertionError(name)


def _np_sigma(name: str, u: np.ndarray) -> np.ndarray:
    u = np.asarray(u, dtype=np.float64)
    if name == "relu":
        return np.maximum(u, 0)
    if name == "leaky_relu":
        return np.maximum(ALPHA * u, u)
    if name == "identity":
        return u
    if name == "sigmoid":
        return 1 / (1 + np.exp(-u))
    if name == "tanh":
        return np.tanh(u)
    raise AssertionError(name)


def _np_inverse(name: str, v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    if name in ("relu", "identity"):
        return v
    if name == "leaky_relu":
        return np.where(v >= 0, v, v / ALPHA)
    if name == "sigmoid":
        return np.log(v) - np.log1p(-v)
    if name == "tanh":
        return np.arctanh(v)
    raise AssertionError(name)


# --------------------------------------------------------------------------------------------
# non-negativity, zero set
# --------------------------------------------------------------------------------------------


def test_fenchel_activations_registered():
    assert set(FENCHEL_ACTIVATIONS) == {"relu", "leaky_relu", "sigmoid", "tanh", "identity"}
    for name in FENCHEL_ACTIVATIONS:
        assert get_activation(name).name == name


@pytest.mark.parametrize("name", FENCHEL_ACTIVATIONS)
def test_gap_nonnegative_and_finite_on_domain(name):
    g = _gen(1)
    V = _domain_sample(name, (400,), g)
    U = 4.0 * torch.randn(400, generator=g, dtype=DT)
    # large |u| as well (overflow of exp / cosh)
    U[:40] = torch.tensor([30.0, -30.0, 50.0, -50.0] * 10, dtype=DT)
    gap = fenchel_gap(name, V, U)
    assert gap.shape == V.shape and gap.dtype == DT
    assert torch.isfinite(gap).all(), gap[~torch.isfinite(gap)]
    assert (gap >= 0).all()
    # and against the independent formula F(v) + F*(u) - u v
    ref = _np_potential(name, V.numpy()) + _np_conjugate(name, U.numpy()) - U.numpy() * V.numpy()
    np.testing.assert_allclose(gap.numpy(), np.maximum(ref, 0), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", FENCHEL_ACTIVATIONS)
def test_gap_large_u_grid(name):
    """All combinations of |u| up to 30 and v across the domain: finite and >= 0."""
    u = torch.tensor([-30.0, -20.0, -5.0, -1e-3, 0.0, 1e-3, 5.0, 20.0, 30.0], dtype=DT)
    v = _domain_sample(name, (25,), _gen(2))
    U, V = torch.meshgrid(u, v, indexing="ij")
    gap = fenchel_gap(name, V, U)
    assert torch.isfinite(gap).all()
    assert (gap >= 0).all()


@pytest.mark.parametrize("name", FENCHEL_ACTIVATIONS)
def test_gap_zero_exactly_at_sigma(name):
    g = _gen(3)
    U = 8.0 * (2 * torch.rand(500, generator=g, dtype=DT) - 1)
    U[:5] = torch.tensor([0.0, 1e-8, -1e-8, 8.0, -8.0], dtype=DT)
    V = get_activation(name).map(U)
    gap = fenchel_gap(name, V, U)
    assert torch.isfinite(gap).all()
    assert gap.abs().max() <= 1e-10


@pytest.mark.parametrize("name", FENCHEL_ACTIVATIONS)
@pytest.mark.parametrize("delta", [0.05, 0.2])
def test_gap_positive_off_sigma(name, delta):
    """F'' >= 1 on the domain (>= 4 for sigmoid), so B(sigma(u) + s delta, u) >= delta^2 / 2."""
    g = _gen(4)
    U = 6.0 * (2 * torch.rand(500, generator=g, dtype=DT) - 1)
    S = get_activation(name).map(U)
    if name == "relu":
        sign = torch.ones_like(S)  # stay in v >= 0
    elif name == "sigmoid":
        sign = torch.where(S < 0.5, 1.0, -1.0).to(DT)
        U = U.clamp(-3.0, 3.0)  # sigma(u) +- 0.2 stays in (0, 1)
        S = torch.sigmoid(U)
    elif name == "tanh":
        sign = torch.where(S < 0, 1.0, -1.0).to(DT)
        U = U.clamp(-2.0, 2.0)
        S = torch.tanh(U)
    else:
        sign = torch.where(torch.rand(500, generator=g, dtype=DT) < 0.5, 1.0, -1.0).to(DT)
    V = S + sign * delta
    gap = fenchel_gap(name, V, U)
    assert torch.isfinite(gap).all()
    assert (gap >= 0.5 * delta**2 * (1 - 1e-9)).all(), gap.min()


@pytest.mark.parametrize(
    ("name", "bad"),
    [("relu", -1e-9), ("relu", -3.0), ("sigmoid", -0.1), ("sigmoid", 1.1), ("tanh", -1.5),
     ("tanh", 1.0 + 1e-9)],
)
def test_gap_infinite_outside_domain(name, bad):
    U = torch.tensor([-30.0, -1.0, 0.0, 2.0, 30.0], dtype=DT)
    V = torch.full_like(U, bad)
    gap = fenchel_gap(name, V, U)
    assert torch.isinf(gap).all() and (gap > 0).all()


# --------------------------------------------------------------------------------------------
# closed forms: (5), identity, conjugates
# --------------------------------------------------------------------------------------------


def test_relu_matches_paper_form_5():
    g = _gen(5)
    U = 3.0 * torch.randn(300, generator=g, dtype=DT)
    V = 2.0 * torch.randn(300, generator=g, dtype=DT)  # both signs
    V[:3] = torch.tensor([0.0, -0.0, -1e-12], dtype=DT)
    u, v = U.numpy(), V.numpy()
    ref = np.where(v >= 0, v**2 / 2 + np.maximum(u, 0) ** 2 / 2 - u * v, np.inf)
    gap = fenchel_gap("relu", V, U).numpy()
    assert np.array_equal(np.isinf(gap), np.isinf(ref))
    assert np.isinf(gap).sum() > 100
    fin = np.isfinite(ref)
    np.testing.assert_allclose(gap[fin], ref[fin], rtol=1e-12, atol=1e-12)


def test_identity_is_half_squared_distance():
    g = _gen(6)
    U = 5.0 * torch.randn(300, generator=g, dtype=DT)
    V = 5.0 * torch.randn(300, generator=g, dtype=DT)
    gap = fenchel_gap("identity", V, U)
    torch.testing.assert_close(gap, 0.5 * (V - U) ** 2, rtol=1e-10, atol=1e-10)


def test_leaky_relu_matches_written_out_form():
    g = _gen(7)
    U = 3.0 * torch.randn(300, generator=g, dtype=DT)
    V = 2.0 * torch.randn(300, generator=g, dtype=DT)
    u, v, a = U.numpy(), V.numpy(), ALPHA
    F = np.where(v >= 0, v**2 / 2, v**2 / (2 * a))
    Fs = np.where(u >= 0, u**2 / 2, a * u**2 / 2)
    np.testing.assert_allclose(
        fenchel_gap("leaky_relu", V, U).numpy(), F + Fs - u * v, rtol=1e-10, atol=1e-10
    )


@pytest.mark.parametrize("name", FENCHEL_ACTIVATIONS)
def test_conjugate_closed_form(name):
    u = torch.cat(
        [
            torch.linspace(-40, 40, 401, dtype=DT),
            torch.tensor([-700.0, -100.0, 100.0, 700.0], dtype=DT),
        ]
    )
    if name in ("relu", "leaky_relu", "identity"):
        u = u[u.abs() <= 100]
    got = conjugate(name, u).numpy()
    ref = _np_conjugate(name, u.numpy())
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, ref, rtol=1e-13, atol=1e-13)
    zero = conjugate(name, torch.zeros(1, dtype=DT))
    assert abs(float(zero) - float(_np_conjugate(name, np.zeros(1))[0])) < 1e-15


def test_sigmoid_gap_positive_at_v_one_for_large_u():
    """v = 1 is in dom F (F(1) = 0) but sigma(u) < 1 for every finite u, so
    B(1, u) = log(1 + e^u) - u = log(1 + e^{-u}) > 0; e.g. 7.6e-10 at u = 21, far above the
    ~1e-14 rounding of the float64 evaluation."""
    u = torch.tensor([15.0, 19.0, 21.0, 23.0, 25.0], dtype=DT)
    gap = fenchel_gap("sigmoid", torch.ones_like(u), u)
    ref = np.log1p(np.exp(-u.numpy()))
    assert (gap > 0).all(), gap
    np.testing.assert_allclose(gap.numpy(), ref, rtol=1e-3)


def _bounds(name: str, u: float) -> tuple[float, float]:
    if name == "relu":
        return 0.0, max(u, 0.0) + 10.0
    if name == "sigmoid":
        return 0.0, 1.0
    if name == "tanh":
        return -1.0, 1.0
    r = abs(u) / ALPHA + 10.0 if name == "leaky_relu" else abs(u) + 10.0
    return -r, r


@pytest.mark.parametrize("name", FENCHEL_ACTIVATIONS)
def test_conjugate_is_numerical_sup(name):
    """F*(u) = sup_v u v - F(v), the sup by scipy's bounded scalar minimisation of the library's
    potential (so potential and conjugate are a Fenchel pair), and of the independent F."""
    act = get_activation(name)
    for u in (-4.0, -1.3, -0.2, 0.0, 0.7, 2.5, 5.0):

        def neg(v, u=u):
            return -(u * v - float(act.potential(torch.tensor([v], dtype=DT))[0]))

        def neg_np(v, u=u):
            return -(u * v - float(_np_potential(name, np.array([v]))[0]))

        lo, hi = _bounds(name, u)
        res = minimize_scalar(neg, bounds=(lo, hi), method="bounded",
                              options={"xatol": 1e-12, "maxiter": 2000})
        res_np = minimize_scalar(neg_np, bounds=(lo, hi), method="bounded",
                                 options={"xatol": 1e-12, "maxiter": 2000})
        sup = -min(res.fun, neg(lo), neg(hi))
        sup_np = -min(res_np.fun, neg_np(lo), neg_np(hi))
        got = float(conjugate(name, torch.tensor([u], dtype=DT))[0])
        assert got == pytest.approx(sup, abs=1e-8), (name, u)
        assert got == pytest.approx(sup_np, abs=1e-8), (name, u)
        # and the maximiser is sigma(u)
        assert res_np.x == pytest.approx(float(_np_sigma(name, np.array([u]))[0]), abs=1e-4)


@pytest.mark.parametrize("name", FENCHEL_ACTIVATIONS)
def test_potential_matches_independent_form(name):
    v = _domain_sample(name, (300,), _gen(8))
    np.testing.assert_allclose(
        get_activation(name).potential(v).numpy(), _np_potential(name, v.numpy()),
        rtol=1e-12, atol=1e-14,
    )


@pytest.mark.parametrize("name", FENCHEL_ACTIVATIONS)
def test_inverse_is_inverse_of_map(name):
    v = _interior_sample(name, (300,), _gen(9))
    act = get_activation(name)
    inv = inverse(name, v)
    np.testing.assert_allclose(inv.numpy(), _np_inverse(name, v.numpy()), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(act.map(inv), v, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------------
# biconvexity
# --------------------------------------------------------------------------------------------


def _midpoint_violation(f, a, b):
    fa, fb, fm = f(a), f(b), f(0.5 * (a + b))
    scale = 1.0 + fa.abs() + fb.abs()
    return ((fm - 0.5 * (fa + fb)) / scale).max()


@pytest.mark.parametrize("name", FENCHEL_ACTIVATIONS)
def test_convex_in_u_for_fixed_v(name):
    g = _gen(10)
    n = 3000
    V = _domain_sample(name, (n,), g)
    U1 = 6.0 * torch.randn(n, generator=g, dtype=DT)
    U2 = 6.0 * torch.randn(n, generator=g, dtype=DT)
    viol = _midpoint_violation(lambda u: fenchel_gap(name, V, u), U1, U2)
    assert viol <= 1e-12, viol


@pytest.mark.parametrize("name", FENCHEL_ACTIVATIONS)
def test_convex_in_v_for_fixed_u(name):
    g = _gen(11)
    n = 3000
    U = 4.0 * torch.randn(n, generator=g, dtype=DT)
    V1 = _domain_sample(name, (n,), g)
    V2 = _domain_sample(name, (n,), g)
    viol = _midpoint_violation(lambda v: fenchel_gap(name, v, U), V1, V2)
    assert viol <= 1e-12, viol


def test_convexity_check_detects_nonconvexity():
    """The midpoint check itself fails on a non-convex function (sanity of the helper)."""
    a = torch.tensor([-1.0], dtype=DT)
    b = torch.tensor([1.0], dtype=DT)
    assert _midpoint_violation(lambda x: -(x**2), a, b) > 0.1


# --------------------------------------------------------------------------------------------
# gradients
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FENCHEL_ACTIVATIONS)
def test_partial_gradients(name):
    g = _gen(12)
    n = 500
    V = _interior_sample(name, (n,), g).requires_grad_(True)
    U = 4.0 * torch.randn(n, generator=g, dtype=DT)
    U = torch.where(U.abs() < 0.05, U + 0.1, U).requires_grad_(True)  # away from u = 0
    gap = fenchel_gap(name, V, U)
    assert (gap > 1e-8).all()  # away from the zero set (clamp at 0)
    gu, gv = torch.autograd.grad(gap.sum(), (U, V))
    act = get_activation(name)
    with torch.no_grad():
        torch.testing.assert_close(gu, act.map(U) - V, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(gv, inverse(name, V) - U, rtol=1e-10, atol=1e-10)
    u, v = U.detach().numpy(), V.detach().numpy()
    np.testing.assert_allclose(gu.numpy(), _np_sigma(name, u) - v, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gv.numpy(), _np_inverse(name, v) - u, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", FENCHEL_ACTIVATIONS)
def test_partial_gradients_finite_differences(name):
    g = _gen(13)
    V = _interior_sample(name, (200,), g)
    U = 3.0 * torch.randn(200, generator=g, dtype=DT)
    h = 1e-6
    du = (fenchel_gap(name, V, U + h) - fenchel_gap(name, V, U - h)) / (2 * h)
    dv = (fenchel_gap(name, V + h, U) - fenchel_gap(name, V - h, U)) / (2 * h)
    torch.testing.assert_close(du, get_activation(name).map(U) - V, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(dv, inverse(name, V) - U, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------
# per-sample sums
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FENCHEL_ACTIVATIONS)
@pytest.mark.parametrize("shape", [(7,), (6, 5), (4, 3, 5)])
def test_fenchel_b_sums_per_sample(name, shape):
    g = _gen(14)
    V = _domain_sample(name, shape, g)
    U = 3.0 * torch.randn(shape, generator=g, dtype=DT)
    B = fenchel_b(name, V, U)
    assert B.shape == (shape[0],)
    gap = fenchel_gap(name, V, U)
    ref = gap if len(shape) == 1 else gap.sum(dim=tuple(range(1, len(shape))))
    torch.testing.assert_close(B, ref, rtol=1e-12, atol=1e-12)
    # element by element, independently
    gnp = (_np_potential(name, V.numpy()) + _np_conjugate(name, U.numpy())
           - U.numpy() * V.numpy())
    ref_np = gnp.reshape(shape[0], -1).sum(1)
    np.testing.assert_allclose(B.numpy(), ref_np, rtol=1e-9, atol=1e-9)


def test_fenchel_b_infinite_only_for_the_offending_sample():
    g = _gen(15)
    V = torch.rand(4, 3, 5, generator=g, dtype=DT)
    U = torch.randn(4, 3, 5, generator=g, dtype=DT)
    V[2, 1, 3] = -0.5
    B = fenchel_b("relu", V, U)
    assert torch.isinf(B[2]) and torch.isfinite(B[[0, 1, 3]]).all()


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["softplus", "sin"])
def test_unknown_activation_raises(bad):
    v = torch.full((3, 2), 0.3, dtype=DT)
    u = torch.zeros(3, 2, dtype=DT)
    with pytest.raises(ValueError, match=bad):
        fenchel_gap(bad, v, u)
    with pytest.raises(ValueError, match=bad):
        fenchel_b(bad, v, u)
    with pytest.raises(ValueError, match=bad):
        conjugate(bad, u)
    with pytest.raises(ValueError, match=bad):
        inverse(bad, v)


def test_unregistered_name_raises():
    v = torch.zeros(2, dtype=DT)
    with pytest.raises(ValueError, match="no_such_activation"):
        fenchel_gap("no_such_activation", v, v)


@pytest.mark.parametrize("name", with_conjugate())
def test_every_conjugate_is_the_supremum_of_its_potential(name):
    """F*(u) = sup_v (u v - F(v)) (Legendre-Fenchel), by a fine grid over dom F, for every
    registered activation that defines F*; and sigma^{-1}(sigma(u)) = u where sigma is
    strictly increasing (inverse is the argmax's u)."""
    act = get_activation(name)
    lo, hi = act.domain
    v = torch.linspace(-8 if lo is None else lo, 8 if hi is None else hi, 400001,
                       dtype=torch.float64)
    u = torch.linspace(-3, 3, 25, dtype=torch.float64)
    F = act.potential(v)
    sup = (u[:, None] * v[None, :] - F[None, :]).max(1).values
    torch.testing.assert_close(act.conjugate(u), sup, atol=2e-4, rtol=0)
    # the maximiser v = sigma(u) satisfies u = F'(v) = sigma^{-1}(v) inside the range
    s = act.map(u)
    inside = torch.ones_like(s, dtype=torch.bool)
    if lo is not None:
        inside &= s > lo + 1e-9
    if hi is not None:
        inside &= s < hi - 1e-9
    if name != "soft_threshold":  # sigma^{-1}(0) is an interval there
        torch.testing.assert_close(act.inverse(s[inside]), u[inside], atol=1e-6, rtol=0)


def test_fenchel_gap_is_clamped_at_zero_against_rounding():
    """The docstring promises B >= 0 clamped against rounding: at points v = sigma(u) where
    F(v) + F*(u) - u v rounds below zero the result is exactly 0 (not a tiny negative)."""
    u = torch.linspace(-8, 8, 20001, dtype=torch.float64)
    for name in ("sigmoid", "tanh", "leaky_relu", "identity"):
        act = get_activation(name)
        v = act.map(u)
        raw = act.potential(v) + act.conjugate(u) - u * v
        gap = fenchel_gap(name, v, u)
        if bool((raw < 0).any()):
            assert bool((gap[raw < 0] == 0).all())
        assert bool((gap >= 0).all())
    # a value computed in float32 as well
    u32 = torch.linspace(-8, 8, 20001, dtype=torch.float32)
    gap32 = fenchel_gap("sigmoid", torch.sigmoid(u32), u32)
    assert bool((gap32 >= 0).all())
    assert bool((fenchel_b("sigmoid", torch.sigmoid(u32)[None], u32[None]) >= 0).all())


def test_with_conjugate_lists_a_registered_activation(registries):
    @dataclass(frozen=True)
    class ReluCopy(ReLU):
        name: ClassVar[str] = "relu_copy"

    register_activation(ReluCopy())
    assert "relu_copy" in with_conjugate()
    assert set(with_conjugate()) >= {"relu", "leaky_relu", "sigmoid", "tanh", "identity",
                                     "hardtanh", "piecewise_sigmoid", "soft_threshold"}
    u = torch.linspace(-2, 2, 9, dtype=torch.float64)
    torch.testing.assert_close(conjugate("relu_copy", u), 0.5 * torch.relu(u) ** 2)
