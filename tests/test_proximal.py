"""Proximal activations of liftnet.proximal against independent numpy/scipy references.

For every name of ``PROX_ACTIVATIONS``: sigma = prox_Psi (scipy minimisation of
1/2 (x - z)^2 + Psi(x)), Psi (the table of the module docstring, +inf outside the domain, convex),
Phi^* = (1/2 |.|^2 + Psi)^* (a numerical sup), the Bregman penalty L_Psi(y, z) (non-negative,
zero at y = sigma(z), >= 1/2 |y - sigma(z)|^2, gradient sigma(z) - y, biconvex, +inf outside the
domain; cross-entropy for softmax, (5) of paper 003 for relu), prox_{mu Phi} (scipy) and the
error messages. Softmax is row-wise over the last dimension, the others element-wise. The
references below are written out from the formulas and never call the library; the scalar
minimisers are polished in 40-digit arithmetic (mpmath, installed with torch through sympy).
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch
from scipy.optimize import minimize, minimize_scalar
from scipy.special import expit, logsumexp, rel_entr, xlogy
from scipy.special import softmax as np_softmax

from liftnet.activations import get_activation
from liftnet.proximal import (
    PROX_ACTIVATIONS,
    _prox_generic,
    bregman_gap,
    bregman_grad_z,
    bregman_loss,
    is_proximal,
    phi_conjugate,
    prox_phi,
    psi,
    sigma,
)

DT = torch.float64
LEAKY_ALPHA = 0.01  # LeakyReLU() default
SOFT_ALPHA = 0.1  # SoftThreshold() default
INF = math.inf

#: dom Psi of the element-wise activations (softmax: the probability simplex of each row)
DOMAINS: dict[str, tuple[float, float]] = {
    "relu": (0.0, INF),
    "leaky_relu": (-INF, INF),
    "hardtanh": (-1.0, 1.0),
    "soft_threshold": (-INF, INF),
    "sigmoid": (0.0, 1.0),
    "tanh": (-1.0, 1.0),
    "identity": (-INF, INF),
}
ELEMENTWISE = [n for n in PROX_ACTIVATIONS if n != "softmax"]
ALL = list(PROX_ACTIVATIONS)


def _t(x) -> torch.Tensor:
    return torch.tensor(np.array(x, dtype=np.float64))  # a copy: no negative strides


# --------------------------------------------------------------------------------------------
# independent references (numpy / scipy)
# --------------------------------------------------------------------------------------------


def sigma_ref(name: str, z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "leaky_relu":
        return np.where(z >= 0, z, LEAKY_ALPHA * z)
    if name == "hardtanh":
        return np.clip(z, -1.0, 1.0)
    if name == "soft_threshold":
        return np.sign(z) * np.maximum(np.abs(z) - SOFT_ALPHA, 0.0)
    if name == "sigmoid":
        return expit(z)
    if name == "tanh":
        return np.tanh(z)
    if name == "identity":
        return z.copy()
    if name == "softmax":
        return np_softmax(z, axis=-1)
    raise AssertionError(name)


def psi_ref(name: str, x) -> np.ndarray:
    """Psi of the module docstring's table, +inf outside dom Psi (softmax: row-wise)."""
    x = np.asarray(x, dtype=np.float64)
    if name == "softmax":
        on = (x >= 0).all(-1) & (np.abs(x.sum(-1) - 1.0) <= 1e-9)
        val = xlogy(x, x).sum(-1) - 0.5 * (x * x).sum(-1)
        return np.where(on, val, np.inf)
    lo, hi = DOMAINS[name]
    inside = (x >= lo) & (x <= hi)
    xc = np.clip(x, lo, hi)
    if name in ("relu", "hardtanh", "identity"):
        val = np.zeros_like(xc)
    elif name == "leaky_relu":
        val = (1.0 / LEAKY_ALPHA - 1.0) * np.minimum(xc, 0.0) ** 2 / 2
    elif name == "soft_threshold":
        val = SOFT_ALPHA * np.abs(xc)
    elif name == "sigmoid":
        val = xlogy(xc, xc) + xlogy(1 - xc, 1 - xc) - xc**2 / 2
    elif name == "tanh":
        val = (xlogy(1 + xc, 1 + xc) + xlogy(1 - xc, 1 - xc)) / 2 - xc**2 / 2
    else:
        raise AssertionError(name)
    return np.where(inside, val, np.inf)


def _psi1(name: str, x: float) -> float:
    return float(psi_ref(name, np.array([x]))[0])


def _bounds(name: str, center: float, radius: float) -> tuple[float, float]:
    """dom Psi intersected with [center - radius, center + radius]."""
    lo, hi = DOMAINS[name]
    return max(lo, center - radius), min(hi, center + radius)


MP = mpmath.MPContext()  # a private context: 40 digits without touching mpmath.mp
MP.dps = 40


def _psi_mp(name: str, x):
    """Psi(x) of the table in 40-digit arithmetic, for x in dom Psi."""
    if name in ("relu", "hardtanh", "identity"):
        return MP.zero
    if name == "leaky_relu":
        return (1 / MP.mpf(LEAKY_ALPHA) - 1) * min(x, 0) ** 2 / 2
    if name == "soft_threshold":
        return MP.mpf(SOFT_ALPHA) * abs(x)

    def xlogx(t):
        return t * MP.log(t) if t > 0 else MP.zero

    if name == "sigmoid":
        return xlogx(x) + xlogx(1 - x) - x * x / 2
    if name == "tanh":
        return (xlogx(1 + x) + xlogx(1 - x)) / 2 - x * x / 2
    raise AssertionError(name)


def _argmin_1d(f, lo: float, hi: float, f_mp=None) -> float:
    """argmin of a convex f on [lo, hi] by scipy's bounded Brent method.

    With ``f_mp`` (f in 40-digit arithmetic) the result x0 is polished by a second bounded
    search of d -> f_mp(x0 + d) - f_mp(x0) on |d| <= 1e-4: in float64, f is only known to
    ~eps |f(x*)|, which hides x* to ~sqrt(eps |f(x*)| / f''), up to ~1e-7 here.
    """
    opts = {"xatol": 1e-12, "maxiter": 2000}
    res = minimize_scalar(f, bounds=(lo, hi), method="bounded", options=opts)
    # the bounded method never evaluates the end points themselves
    x0 = min((res.x, lo, hi), key=f)
    if f_mp is None:
        return x0
    f0 = f_mp(MP.mpf(x0))

    def g(d):
        return float(f_mp(MP.mpf(x0) + MP.mpf(d)) - f0)

    dlo, dhi = max(lo - x0, -1e-4), min(hi - x0, 1e-4)
    res = minimize_scalar(g, bounds=(dlo, dhi), method="bounded", options=opts)
    return x0 + min((res.x, dlo, dhi, 0.0), key=g)


def prox_psi_ref(name: str, z: float) -> float:
    """argmin_x 1/2 (x - z)^2 + Psi(x) on dom Psi."""
    lo, hi = _bounds(name, z, abs(z) + 5.0)
    zm = MP.mpf(z)
    return _argmin_1d(lambda x: 0.5 * (x - z) ** 2 + _psi1(name, x), lo, hi,
                      lambda x: (x - zm) ** 2 / 2 + _psi_mp(name, x))


def conj_ref(name: str, z: float) -> float:
    """sup_x x z - x^2/2 - Psi(x), numerically."""
    lo, hi = _bounds(name, z, abs(z) + 5.0)

    def neg(x):
        return -(x * z - 0.5 * x * x - _psi1(name, x))

    return -neg(_argmin_1d(neg, lo, hi))


def prox_phi_ref(name: str, v: float, mu: float) -> float:
    """argmin_x mu (x^2/2 + Psi(x)) + (x - v)^2/2 on dom Psi."""
    lo, hi = _bounds(name, v, abs(v) + 2.0)
    mum, vm = MP.mpf(mu), MP.mpf(v)

    def f(x):
        return mu * (0.5 * x * x + _psi1(name, x)) + 0.5 * (x - v) ** 2

    def f_mp(x):
        return mum * (x * x / 2 + _psi_mp(name, x)) + (x - vm) ** 2 / 2

    return _argmin_1d(f, lo, hi, f_mp)


def _simplex_argmin(f, jac, k: int) -> np.ndarray:
    res = minimize(f, np.full(k, 1.0 / k), jac=jac, method="SLSQP",
                   bounds=[(1e-12, 1.0)] * k,
                   constraints=[{"type": "eq", "fun": lambda x: x.sum() - 1.0,
                                 "jac": lambda x: np.ones_like(x)}],
                   options={"ftol": 1e-14, "maxiter": 500})
    assert res.success, res.message
    return res.x


def _domain_sample(name: str, rng: np.random.Generator, n: int = 6, d: int = 5) -> np.ndarray:
    """(n, d) points of dom Psi (rows on the simplex for softmax), boundary points included."""
    if name == "softmax":
        y = rng.dirichlet(np.ones(d), size=n)
        y[0] = np.eye(d)[2]  # a one-hot row (zeros on the boundary)
        return y
    lo, hi = DOMAINS[name]
    if name == "relu":
        y = np.abs(2.0 * rng.standard_normal((n, d)))
        y[0, :3] = [0.0, 1e-12, 1e-6]
    elif math.isinf(lo):
        y = 3.0 * rng.standard_normal((n, d))
        y[0, :2] = [0.0, -1e-8]
    else:
        y = rng.uniform(lo, hi, (n, d))
        y[0, :4] = [lo, hi, lo + 1e-9, hi - 1e-9]
    return y


def _z_sample(rng: np.random.Generator, n: int = 6, d: int = 5, scale: float = 3.0):
    z = scale * rng.standard_normal((n, d))
    z[-1, :3] = [0.0, 12.0, -12.0]
    return z


# --------------------------------------------------------------------------------------------
# the registry
# --------------------------------------------------------------------------------------------


def test_prox_activations_are_the_documented_ones():
    assert set(PROX_ACTIVATIONS) == set(DOMAINS) | {"softmax"}
    assert len(PROX_ACTIVATIONS) == len(set(PROX_ACTIVATIONS)) == 8


@pytest.mark.parametrize("name", ALL)
def test_sigma_matches_formula(name):
    z = _z_sample(np.random.default_rng(0))
    out = sigma(name, _t(z))
    assert out.shape == z.shape and out.dtype == DT
    np.testing.assert_allclose(out.numpy(), sigma_ref(name, z), rtol=1e-14, atol=1e-15)


# --------------------------------------------------------------------------------------------
# 1. sigma = prox_Psi
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_sigma_is_prox_of_psi(name):
    rng = np.random.default_rng(1)
    z = np.concatenate([[-4.0, -1.0, -0.5, -0.05, 0.0, 0.05, 0.5, 1.0, 4.0],
                        2.0 * rng.standard_normal(4)])
    ref = np.array([prox_psi_ref(name, float(zi)) for zi in z])
    got = sigma(name, _t(z)).numpy()
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9)


def test_softmax_is_prox_of_psi_on_simplex():
    rng = np.random.default_rng(2)
    for z in (rng.standard_normal(3), 1.5 * rng.standard_normal(4), np.array([2.0, -1.0, 0.5])):

        def f(x, z=z):
            return 0.5 * np.sum((x - z) ** 2) + float(psi_ref("softmax", x))

        def jac(x, z=z):  # d/dx [1/2 |x - z|^2 + sum x log x - |x|^2/2]
            return -z + np.log(x) + 1.0

        ref = _simplex_argmin(f, jac, z.size)
        got = sigma("softmax", _t(z)[None, :])[0].numpy()
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)


# --------------------------------------------------------------------------------------------
# 2. Psi: formula, domain, convexity
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_psi_matches_formula(name):
    x = _domain_sample(name, np.random.default_rng(3), n=8)
    got = psi(name, _t(x))
    ref = psi_ref(name, x)
    assert got.shape == ref.shape and got.dtype == DT
    assert np.isfinite(ref).all()
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-12, atol=1e-13)


#: points outside dom Psi (none for the activations on all of R) and points inside it
OUTSIDE = {
    "relu": [-1e-9, -0.5, -40.0],
    "hardtanh": [-1.0 - 1e-9, 1.0 + 1e-9, 3.0, -7.0],
    "sigmoid": [-1e-9, 1.0 + 1e-9, -0.5, 2.0],
    "tanh": [-1.0 - 1e-9, 1.0 + 1e-9, 1.5, -3.0],
    "leaky_relu": [],
    "soft_threshold": [],
    "identity": [],
}
INSIDE = {
    "relu": [0.0, 1e-9, 3.0, 1e3],
    "hardtanh": [-1.0, 1.0, 0.0, 0.3],
    "sigmoid": [0.0, 1.0, 1e-12, 0.5],
    "tanh": [-1.0, 1.0, 0.0, -0.999],
    "leaky_relu": [-1e3, -1.0, 0.0, 1e3],
    "soft_threshold": [-1e3, 0.0, 1e-12, 1e3],
    "identity": [-1e3, 0.0, 1e3],
}


@pytest.mark.parametrize("name", ALL)
def test_psi_infinite_exactly_outside_domain(name):
    if name == "softmax":
        bad = np.array([[0.5, 0.5, 0.1], [1.2, -0.2, 0.0], [0.3, 0.3, 0.3], [2.0, 0.0, 0.0]])
        good = np.array([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    else:
        bad = np.array(OUTSIDE[name], dtype=np.float64)
        good = np.array(INSIDE[name], dtype=np.float64)
    got_bad = psi(name, _t(bad)).numpy()
    assert np.isposinf(got_bad).all(), got_bad
    got_good = psi(name, _t(good)).numpy()
    assert np.isfinite(got_good).all(), got_good
    np.testing.assert_allclose(got_good, psi_ref(name, good), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ALL)
def test_psi_convex_midpoint(name):
    rng = np.random.default_rng(4)
    a = _domain_sample(name, rng, n=20)
    b = _domain_sample(name, rng, n=20)[::-1]  # pairs boundary points with interior ones
    fa, fb = psi(name, _t(a)).numpy(), psi(name, _t(b)).numpy()
    fm = psi(name, _t(0.5 * (a + b))).numpy()
    scale = 1.0 + np.abs(fa) + np.abs(fb)
    assert np.all(fm <= 0.5 * (fa + fb) + 1e-12 * scale)
    # a strict check that the helper can fail: -Psi is not convex where Psi is strictly convex
    if name in ("sigmoid", "tanh", "leaky_relu", "softmax"):
        assert np.any(-fm > -0.5 * (fa + fb) + 1e-9)


# --------------------------------------------------------------------------------------------
# 3. Phi^* = (1/2 |.|^2 + Psi)^*
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_phi_conjugate_is_numerical_sup(name):
    z = np.array([-8.0, -3.0, -1.2, -0.3, -0.05, 0.0, 0.05, 0.4, 1.0, 2.5, 8.0])
    ref = np.array([conj_ref(name, float(zi)) for zi in z])
    got = phi_conjugate(name, _t(z))
    assert got.shape == z.shape and got.dtype == DT
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10, atol=1e-8)


def test_phi_conjugate_softmax_is_logsumexp():
    rng = np.random.default_rng(5)
    z = 5.0 * rng.standard_normal((6, 4))
    z[0] = [1000.0, 999.0, -1000.0, 0.0]  # no overflow
    z[1] = [-1000.0, -1001.0, -1000.5, -2000.0]
    got = phi_conjugate("softmax", _t(z))
    assert got.shape == (6,)
    np.testing.assert_allclose(got.numpy(), logsumexp(z, axis=-1), rtol=1e-14, atol=1e-12)


def test_phi_conjugate_softmax_is_sup_over_simplex():
    rng = np.random.default_rng(6)
    for z in (rng.standard_normal(3), 1.5 * rng.standard_normal(4)):

        def neg(x, z=z):  # -(<x, z> - |x|^2/2 - Psi(x))
            return -(x @ z - 0.5 * x @ x - float(psi_ref("softmax", x)))

        def jac(x, z=z):
            return -z + np.log(x) + 1.0

        x = _simplex_argmin(neg, jac, z.size)
        got = float(phi_conjugate("softmax", _t(z)[None, :])[0])
        assert got == pytest.approx(-neg(x), abs=1e-7)


# --------------------------------------------------------------------------------------------
# 4. the Bregman loss L_Psi(y, z)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_bregman_gap_is_phi_plus_numerical_conjugate(name):
    """L(y, z) = y^2/2 + Psi(y) + sup_x (x z - x^2/2 - Psi(x)) - y z, all independently."""
    rng = np.random.default_rng(7)
    y = _domain_sample(name, rng, n=2, d=4).ravel()
    z = 2.0 * rng.standard_normal(y.size)
    ref = np.array([0.5 * yi * yi + _psi1(name, yi) + conj_ref(name, zi) - yi * zi
                    for yi, zi in zip(y, z, strict=True)])
    got = bregman_gap(name, _t(y), _t(z)).numpy()
    np.testing.assert_allclose(got, np.maximum(ref, 0.0), rtol=1e-9, atol=1e-8)


@pytest.mark.parametrize("name", ALL)
def test_loss_nonnegative_and_strongly_convex_bound(name):
    rng = np.random.default_rng(8)
    y = _domain_sample(name, rng)
    z = _z_sample(rng)
    loss = bregman_loss(name, _t(y), _t(z))
    assert loss.shape == (y.shape[0],) and loss.dtype == DT
    loss = loss.numpy()
    assert np.isfinite(loss).all()
    assert (loss >= 0).all()
    lower = 0.5 * ((y - sigma_ref(name, z)) ** 2).sum(-1)
    assert np.all(loss >= lower - 1e-12 * (1 + lower)), (loss, lower)


@pytest.mark.parametrize("name", ALL)
def test_loss_zero_at_sigma(name):
    rng = np.random.default_rng(9)
    z = _z_sample(rng)
    loss = bregman_loss(name, _t(sigma_ref(name, z)), _t(z)).numpy()
    assert np.all(np.abs(loss) <= 1e-12), loss


@pytest.mark.parametrize("name", ALL)
def test_loss_gradient_in_z(name):
    rng = np.random.default_rng(10)
    y = _domain_sample(name, rng, n=4, d=4)
    z = _z_sample(rng, n=4, d=4)
    expected = sigma_ref(name, z) - y
    Y, Z = _t(y), _t(z)
    # the closed form
    grad = bregman_grad_z(name, Y, Z)
    assert grad.shape == z.shape
    np.testing.assert_allclose(grad.numpy(), expected, rtol=1e-13, atol=1e-14)
    # central finite differences of the per-sample loss (samples are independent)
    h = 1e-6
    fd = np.empty_like(z)
    for j in range(z.shape[1]):
        e = np.zeros_like(z)
        e[:, j] = h
        fd[:, j] = (bregman_loss(name, Y, _t(z + e)) - bregman_loss(name, Y, _t(z - e))).numpy()
    np.testing.assert_allclose(fd / (2 * h), expected, rtol=0, atol=1e-6)
    # autograd through the loss
    Zg = Z.clone().requires_grad_(True)
    bregman_loss(name, Y, Zg).sum().backward()
    np.testing.assert_allclose(Zg.grad.numpy(), expected, rtol=1e-10, atol=1e-12)


def _midpoint_ok(f, a: np.ndarray, b: np.ndarray) -> bool:
    fa, fb, fm = f(a), f(b), f(0.5 * (a + b))
    return bool(np.all(fm <= 0.5 * (fa + fb) + 1e-12 * (1 + np.abs(fa) + np.abs(fb))))


@pytest.mark.parametrize("name", ALL)
def test_loss_convex_in_z(name):
    rng = np.random.default_rng(11)
    y = _domain_sample(name, rng, n=10)
    z1, z2 = _z_sample(rng, n=10), 4.0 * rng.standard_normal((10, 5))
    assert _midpoint_ok(lambda z: bregman_loss(name, _t(y), _t(z)).numpy(), z1, z2)


@pytest.mark.parametrize("name", ALL)
def test_loss_convex_in_y(name):
    rng = np.random.default_rng(12)
    z = _z_sample(rng, n=10)
    y1, y2 = _domain_sample(name, rng, n=10), _domain_sample(name, rng, n=10)[::-1]
    assert _midpoint_ok(lambda y: bregman_loss(name, _t(y), _t(z)).numpy(), y1, y2)


#: (sample index, entry index, value) put outside dom Psi
BAD_ENTRIES = {
    "relu": [(1, 0, -1e-9), (3, 4, -2.0)],
    "hardtanh": [(1, 1, 1.0 + 1e-9), (3, 2, -1.5)],
    "sigmoid": [(1, 0, -0.1), (3, 3, 1.1)],
    "tanh": [(1, 4, 1.5), (3, 0, -1.0 - 1e-9)],
}


@pytest.mark.parametrize("name", ALL)
def test_loss_infinite_outside_domain(name):
    rng = np.random.default_rng(13)
    y = _domain_sample(name, rng)
    z = _z_sample(rng)
    if name == "softmax":
        y[1] = [0.3, 0.3, 0.3, 0.3, 0.3]  # sums to 1.5
        y[3] = [1.2, -0.2, 0.0, 0.0, 0.0]  # sums to 1, one negative entry
        bad_rows = [1, 3]
    elif name in BAD_ENTRIES:
        bad_rows = []
        for i, j, val in BAD_ENTRIES[name]:
            y[i, j] = val
            bad_rows.append(i)
    else:  # dom Psi = R: finite for every y, even huge ones
        y[1, 0], y[3, 2] = 1e4, -1e4
        bad_rows = []
    loss = bregman_loss(name, _t(y), _t(z)).numpy()
    bad = np.zeros(y.shape[0], dtype=bool)
    bad[bad_rows] = True
    assert np.isposinf(loss[bad]).all(), loss
    assert np.isfinite(loss[~bad]).all() and (loss[~bad] >= 0).all(), loss


# --------------------------------------------------------------------------------------------
# 5. closed forms: cross-entropy, (5) of paper 003, identity
# --------------------------------------------------------------------------------------------


def test_softmax_one_hot_is_cross_entropy():
    rng = np.random.default_rng(14)
    z = 4.0 * rng.standard_normal((7, 5))
    z[0] = [50.0, -50.0, 0.0, 1.0, 2.0]
    labels = rng.integers(0, 5, size=7)
    labels[0] = 1
    y = np.eye(5)[labels]
    Z = _t(z)
    got = bregman_loss("softmax", _t(y), Z)
    ce = torch.nn.functional.cross_entropy(Z, torch.as_tensor(labels), reduction="none")
    np.testing.assert_allclose(got.numpy(), ce.numpy(), rtol=1e-13, atol=1e-12)


def test_softmax_probability_row_is_kl_divergence():
    """For y on the simplex, L(y, z) = KL(y || softmax(z))."""
    rng = np.random.default_rng(15)
    y = _domain_sample("softmax", rng, n=6, d=4)
    z = 3.0 * rng.standard_normal((6, 4))
    ref = rel_entr(y, np_softmax(z, axis=-1)).sum(-1)
    np.testing.assert_allclose(bregman_loss("softmax", _t(y), _t(z)).numpy(), ref,
                               rtol=1e-10, atol=1e-12)


def test_relu_is_fenchel_gap_form_5():
    rng = np.random.default_rng(16)
    u = 3.0 * rng.standard_normal((6, 5))
    v = _domain_sample("relu", rng)
    ref = (v**2 / 2 + np.maximum(u, 0.0) ** 2 / 2 - u * v).sum(-1)
    np.testing.assert_allclose(bregman_loss("relu", _t(v), _t(u)).numpy(), ref,
                               rtol=1e-12, atol=1e-12)


def test_identity_is_half_squared_distance():
    rng = np.random.default_rng(17)
    y, z = 3.0 * rng.standard_normal((6, 5)), 3.0 * rng.standard_normal((6, 5))
    ref = 0.5 * ((y - z) ** 2).sum(-1)
    np.testing.assert_allclose(bregman_loss("identity", _t(y), _t(z)).numpy(), ref,
                               rtol=1e-12, atol=1e-12)


def test_loss_sums_over_all_but_batch_dimension():
    rng = np.random.default_rng(18)
    y = np.abs(rng.standard_normal((3, 2, 4)))
    z = rng.standard_normal((3, 2, 4))
    ref = (y**2 / 2 + np.maximum(z, 0.0) ** 2 / 2 - z * y).reshape(3, -1).sum(1)
    got = bregman_loss("relu", _t(y), _t(z))
    assert got.shape == (3,)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------------
# 6. prox_{mu Phi}
# --------------------------------------------------------------------------------------------

V_PROX = np.array([-50.0, -12.0, -3.0, -1.0, -0.3, -0.05, 0.0, 0.02, 0.1, 0.7, 1.0, 2.5, 9.0,
                   50.0])


@pytest.mark.parametrize("mu", [0.0, 0.01, 1.0, 37.5])
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_prox_phi_matches_scipy(name, mu):
    v = np.concatenate([V_PROX, 4.0 * np.random.default_rng(19).standard_normal(3)])
    ref = np.array([prox_phi_ref(name, float(vi), mu) for vi in v])
    got = prox_phi(name, _t(v), mu)
    assert got.shape == v.shape and got.dtype == DT
    np.testing.assert_allclose(got.numpy(), ref, rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_prox_phi_tensor_mu_per_sample(name):
    mus = np.array([0.0, 0.01, 1.0, 37.5])
    v = np.stack([np.array([-50.0, -2.0, -0.2, 0.0, 0.6, 3.0, 50.0]) * (1 + 0.1 * k)
                  for k in range(4)])
    got = prox_phi(name, _t(v), _t(mus)[:, None])
    assert got.shape == v.shape and got.dtype == DT
    ref = np.array([[prox_phi_ref(name, float(vi), float(mu)) for vi in row]
                    for row, mu in zip(v, mus, strict=True)])
    np.testing.assert_allclose(got.numpy(), ref, rtol=0, atol=1e-9)
    # and each row equals the scalar-mu call
    for k, mu in enumerate(mus):
        np.testing.assert_allclose(got[k].numpy(), prox_phi(name, _t(v[k]), float(mu)).numpy(),
                                   rtol=0, atol=1e-12)


BISECTABLE = [n for n in ELEMENTWISE if is_proximal(get_activation(n))]


@pytest.mark.parametrize("mu", [0.0, 0.01, 1.0, 37.5])
@pytest.mark.parametrize("name", BISECTABLE)
def test_generic_bisection_prox_matches_scipy(name, mu):
    """The prox a registered activation gets (a root of (1 - t) sigma(u) + t u = w,
    from its ``map`` and ``slope`` only) on every built-in it applies to."""
    assert {"sigmoid", "tanh", "relu", "leaky_relu", "identity"} <= set(BISECTABLE)
    v = np.concatenate([V_PROX, 4.0 * np.random.default_rng(19).standard_normal(3)])
    ref = np.array([prox_phi_ref(name, float(vi), mu) for vi in v])
    got = _prox_generic(get_activation(name), _t(v) / (1 + mu), mu / (1 + mu))
    assert got.shape == v.shape and got.dtype == DT
    np.testing.assert_allclose(got.numpy(), ref, rtol=0, atol=1e-9)


def test_prox_phi_softmax_raises():
    with pytest.raises(ValueError, match="softmax") as info:
        prox_phi("softmax", torch.zeros(2, 3, dtype=DT), 1.0)
    assert "not implemented" in str(info.value)


# --------------------------------------------------------------------------------------------
# 7. unknown activations
# --------------------------------------------------------------------------------------------

_X = torch.zeros(2, 3, dtype=DT)
CALLS = {
    "sigma": lambda n: sigma(n, _X),
    "psi": lambda n: psi(n, _X),
    "phi_conjugate": lambda n: phi_conjugate(n, _X),
    "bregman_gap": lambda n: bregman_gap(n, _X, _X),
    "bregman_loss": lambda n: bregman_loss(n, _X, _X),
    "bregman_grad_z": lambda n: bregman_grad_z(n, _X, _X),
    "prox_phi": lambda n: prox_phi(n, _X, 1.0),
}


@pytest.mark.parametrize("bad", ["sign", "maxpool", "simplex", "Relu", "no_such"])
@pytest.mark.parametrize("fn", list(CALLS))
def test_unknown_activation_raises(fn, bad):
    with pytest.raises(ValueError) as info:
        CALLS[fn](bad)
    msg = str(info.value)
    assert repr(bad) in msg
    for name in PROX_ACTIVATIONS:
        assert name in msg
