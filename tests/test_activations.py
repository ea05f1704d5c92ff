"""Activations as argmin maps: each map checked against an independent minimiser (scipy, cvxpy)."""

from __future__ import annotations

import math

import cvxpy as cp
import numpy as np
import pytest
import torch
from scipy.integrate import quad
from scipy.optimize import minimize_scalar

from liftnet.activations import (
    ACTIVATIONS,
    Activation,
    LeakyReLU,
    MaxPool,
    get_activation,
)

ELEMENTWISE = [name for name, act in ACTIVATIONS.items() if act.elementwise]
EXTRA = {"leaky_relu_0.3": LeakyReLU(alpha=0.3)}
ELEMENTWISE_ACTS = [(n, ACTIVATIONS[n]) for n in ELEMENTWISE] + list(EXTRA.items())

# Reference sigma^{-1} = Phi' on the interior of dom Phi, written independently of the library.
INVERSE = {
    "relu": lambda v, a: v,
    "leaky_relu": lambda v, a: np.where(v >= 0, v, v / a.alpha),
    "sigmoid": lambda v, a: np.log(v / (1 - v)),
    "tanh": lambda v, a: np.arctanh(v),
    "hardtanh": lambda v, a: v,
    "soft_threshold": lambda v, a: v + a.alpha * np.sign(v),
    "piecewise_sigmoid": lambda v, a: v,
    "sign": lambda v, a: np.zeros_like(v),
    "softplus": lambda v, a: np.log(np.expm1(v)),
    "sin": lambda v, a: np.arcsin(v),
    "identity": lambda v, a: v,
}
BOXES = {
    "relu": (0.0, None),
    "hardtanh": (-1.0, 1.0),
    "piecewise_sigmoid": (0.0, 1.0),
    "identity": (None, None),
}


def _t(x: np.ndarray | float) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float64)).reshape(1, 1)


def _inputs(name: str, n: int = 25, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-3.0, 3.0, n) if name == "sin" else 3.0 * rng.standard_normal(n)


def _expected_argmin(name: str, act: Activation, u: np.ndarray) -> np.ndarray:
    if name == "sin":  # sin is the argmin only on [-pi/2, pi/2]; sign(u) beyond
        return np.sin(np.clip(u, -math.pi / 2, math.pi / 2))
    return act.map(torch.as_tensor(u)).numpy()


def _scalar_argmin(f, act: Activation, u: float) -> float:
    lo, hi = act.domain
    lo = -abs(u) - 10.0 if lo is None else lo
    hi = abs(u) + 10.0 if hi is None else hi
    res = minimize_scalar(f, bounds=(lo, hi), method="bounded", options={"xatol": 1e-11})
    return float(res.x)


def _sample_domain(act: Activation, n: int, rng: np.random.Generator) -> np.ndarray:
    lo, hi = act.domain
    if lo is not None and hi is not None:
        return rng.uniform(lo, hi, n)
    if lo is not None:
        return lo + rng.exponential(2.0, n)
    return 3.0 * rng.standard_normal(n)


def test_registry_and_box() -> None:
    assert set(ACTIVATIONS) == {
        "relu", "leaky_relu", "sigmoid", "tanh", "hardtanh", "soft_threshold",
        "piecewise_sigmoid", "sign",
        "softplus", "sin", "simplex", "maxpool", "identity",
    }  # fmt: skip
    assert set(INVERSE) == set(ELEMENTWISE)
    for name, act in ACTIVATIONS.items():
        assert act.name == name
        assert act.box == BOXES.get(name)
        assert get_activation(name) is act
        assert get_activation(act) is act
    assert not ACTIVATIONS["simplex"].elementwise and not ACTIVATIONS["maxpool"].elementwise


@pytest.mark.parametrize("name,act", ELEMENTWISE_ACTS, ids=[n for n, _ in ELEMENTWISE_ACTS])
def test_divergence_argmin_matches_scipy(name: str, act: Activation) -> None:
    u = _inputs(name)
    got = [
        _scalar_argmin(lambda v, ui=ui: act.divergence(_t(ui), _t(v)).item(), act, ui) for ui in u
    ]
    np.testing.assert_allclose(got, _expected_argmin(name, act, u), atol=1e-6)


@pytest.mark.parametrize("name,act", ELEMENTWISE_ACTS, ids=[n for n, _ in ELEMENTWISE_ACTS])
def test_bc_form_argmin_matches_scipy(name: str, act: Activation) -> None:
    """argmin_v Phi(v) - u v = sigma(u) (paper (7)), also for the JC-box activations."""
    u = _inputs(name, seed=1)
    got = [
        _scalar_argmin(lambda v, ui=ui: (act.potential(_t(v)) - ui * v).item(), act, ui) for ui in u
    ]
    np.testing.assert_allclose(got, _expected_argmin(name, act, u), atol=1e-6)


@pytest.mark.parametrize("name,act", ELEMENTWISE_ACTS, ids=[n for n, _ in ELEMENTWISE_ACTS])
def test_divergence_gap_nonnegative_and_domain(name: str, act: Activation) -> None:
    rng = np.random.default_rng(2)
    u = torch.as_tensor(_inputs(name, n=200, seed=3)).reshape(20, 10)
    v = torch.as_tensor(_sample_domain(act, 200, rng)).reshape(20, 10)
    best = torch.as_tensor(_expected_argmin(name, act, u.numpy()))
    d_min = act.divergence(u, best)
    assert d_min.shape == (20,) and torch.isfinite(d_min).all()
    assert (act.divergence(u, v) - d_min >= -1e-10).all()
    assert act.in_domain(v).all()
    lo, hi = act.domain
    for bound, step in ((lo, -0.5), (hi, 0.5)):
        if bound is not None:
            w = v.clone()
            w[::2, 3] = bound + step
            assert not act.in_domain(w)[::2, 3].any()
            d = act.divergence(u, w)
            assert torch.isinf(d[::2]).all() and torch.isfinite(d[1::2]).all()
            assert torch.isinf(act.potential(w)[::2, 3]).all()


@pytest.mark.parametrize("name,act", ELEMENTWISE_ACTS, ids=[n for n, _ in ELEMENTWISE_ACTS])
def test_potential_derivative_is_inverse(name: str, act: Activation) -> None:
    """Phi(0) = 0 and Phi' = sigma^{-1}, by central differences and by autograd."""
    rng = np.random.default_rng(4)
    lo, hi = act.domain
    v = _sample_domain(act, 50, rng)
    v = np.clip(v, -np.inf if lo is None else lo + 0.05, np.inf if hi is None else hi - 0.05)
    v = v[np.abs(v) > 1e-3]  # keep clear of the kink of leaky ReLU at 0
    h = 1e-6
    vt = torch.as_tensor(v)
    fd = (act.potential(vt + h) - act.potential(vt - h)).numpy() / (2 * h)
    ref = INVERSE[name.split("_0")[0]](v, act)
    np.testing.assert_allclose(fd, ref, rtol=1e-6, atol=1e-6)
    vt.requires_grad_(True)
    (grad,) = torch.autograd.grad(act.potential(vt).sum(), vt)
    np.testing.assert_allclose(grad.numpy(), ref, rtol=1e-9, atol=1e-9)
    assert act.potential(torch.zeros(1, dtype=torch.float64)).item() == 0.0


def test_softplus_potential_matches_quadrature() -> None:
    act = ACTIVATIONS["softplus"]
    for v in (1e-4, 0.1, 0.5, math.log(2.0), 0.9, 2.0, 7.0, 30.0):
        ref = quad(lambda t: math.log(math.expm1(t)), 0.0, v, limit=200)[0]
        got = act.potential(torch.tensor([v], dtype=torch.float64)).item()
        assert got == pytest.approx(ref, rel=1e-9, abs=1e-12)
        got32 = act.potential(torch.tensor([v])).item()
        assert got32 == pytest.approx(ref, rel=1e-5, abs=1e-6)


def test_sin_argmin_is_clipped() -> None:
    act = ACTIVATIONS["sin"]
    u = torch.tensor([0.5, 1.5, 2.0, -3.0], dtype=torch.float64)
    assert torch.equal(act.map(u), torch.sin(u))  # map is the true sine ...
    v = torch.linspace(-1, 1, 20001, dtype=torch.float64)
    argmin = v[(act.potential(v)[None] - u[:, None] * v).argmin(1)]  # ... the argmin is not
    torch.testing.assert_close(
        argmin,
        torch.tensor([math.sin(0.5), math.sin(1.5), 1.0, -1.0], dtype=torch.float64),
        atol=1e-4,
        rtol=0,
    )


def _cvxpy_simplex(u: np.ndarray) -> np.ndarray:
    v = cp.Variable(u.shape)
    cp.Problem(cp.Minimize(cp.sum_squares(v - u)), [v >= 0, cp.sum(v, axis=1) == 1]).solve(
        solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12
    )
    return v.value


@pytest.mark.parametrize("scale", [0.1, 1.0, 10.0])
def test_simplex_projection_matches_cvxpy(scale: float) -> None:
    act = ACTIVATIONS["simplex"]
    u = scale * np.random.default_rng(5).standard_normal((6, 7))
    v = act.map(torch.as_tensor(u))
    np.testing.assert_allclose(v.numpy(), _cvxpy_simplex(u), atol=1e-6)
    assert (v >= 0).all() and torch.allclose(v.sum(1), torch.ones(6, dtype=v.dtype))
    assert act.in_domain(v).all()
    d_min = act.divergence(torch.as_tensor(u), v)
    assert d_min.shape == (6,) and torch.isfinite(d_min).all()
    w = torch.distributions.Dirichlet(torch.ones(7, dtype=torch.float64)).sample((6,))
    assert (act.divergence(torch.as_tensor(u), w) - d_min >= -1e-12).all()
    w[0, 0] += 0.1  # row sum != 1
    w[1] = w[1] - w[1, 0] - 1e-3  # negative entries
    assert not act.in_domain(w)[:2].any() and act.in_domain(w)[2:].all()
    assert torch.isinf(act.divergence(torch.as_tensor(u), w)[:2]).all()


def test_simplex_projection_cases() -> None:
    proj = ACTIVATIONS["simplex"].map
    u = torch.tensor([[0.2, 0.3, 0.5], [10.0, 0.0, 0.0], [1.0, 1.0, 1.0], [-5.0, -5.0, 0.0]])
    expected = torch.tensor([[0.2, 0.3, 0.5], [1.0, 0, 0], [1 / 3] * 3, [0.0, 0.0, 1.0]])
    torch.testing.assert_close(proj(u), expected)


def _cvxpy_maxpool(u: np.ndarray, k: int, c: float) -> tuple[np.ndarray, float]:
    """min_v 1^T v + c 1^T (u - E v)_+ as an LP, for one row u of length p k."""
    p = u.size // k
    v = cp.Variable(p)
    expand = np.kron(np.eye(p), np.ones((k, 1)))  # E, (p k, p)
    obj = cp.sum(v) + c * cp.sum(cp.pos(u - expand @ v))
    prob = cp.Problem(cp.Minimize(obj))
    prob.solve(solver=cp.CLARABEL)
    return v.value, prob.value


@pytest.mark.parametrize("k", [2, 3, 4])
def test_maxpool_argmin(k: int) -> None:
    rng = np.random.default_rng(6)
    u = rng.standard_normal((4, 3 * k))
    paper, unique = MaxPool(k), MaxPool(k, hinge_weight=2.0)
    ut = torch.as_tensor(u)
    vmax = paper.map(ut)
    blocks = np.sort(u.reshape(4, 3, k), axis=-1)
    second = torch.as_tensor(blocks[..., -2])
    for i in range(4):
        # paper's divergence (c = 1): the minimum value is attained at the max, and the argmin
        # is the interval [second largest, largest] of each block
        v_lp, val = _cvxpy_maxpool(u[i], k, 1.0)
        assert paper.divergence(ut[i : i + 1], vmax[i : i + 1]).item() == pytest.approx(val)
        assert ((v_lp >= blocks[i, :, -2] - 1e-6) & (v_lp <= blocks[i, :, -1] + 1e-6)).all()
        # c = 2: the max is the unique minimiser
        v_lp, val = _cvxpy_maxpool(u[i], k, 2.0)
        np.testing.assert_allclose(v_lp, vmax[i].numpy(), atol=1e-6)
        assert unique.divergence(ut[i : i + 1], vmax[i : i + 1]).item() == pytest.approx(val)
    d_max = paper.divergence(ut, vmax)
    torch.testing.assert_close(paper.divergence(ut, second), d_max)  # flat between the two
    torch.testing.assert_close(paper.divergence(ut, 0.5 * (second + vmax)), d_max)
    assert (paper.divergence(ut, vmax + 0.1) > d_max).all()
    assert (paper.divergence(ut, second - 0.1) > d_max).all()
    assert (unique.divergence(ut, second) > unique.divergence(ut, vmax)).all()
    v = torch.as_tensor(rng.standard_normal((4, 3)))
    assert (paper.divergence(ut, v) - d_max >= -1e-12).all()
    assert paper.in_domain(v).all()


@pytest.mark.parametrize("name", list(ACTIVATIONS) + list(EXTRA))
def test_torch_module_matches_map(name: str) -> None:
    act = ACTIVATIONS.get(name) or EXTRA[name]
    u = 3.0 * torch.randn(8, 12, generator=torch.Generator().manual_seed(7))
    module = act.torch_module()
    assert isinstance(module, torch.nn.Module)
    torch.testing.assert_close(module(u), act.map(u), rtol=0, atol=0)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_float32_and_shapes(name: str) -> None:
    """D(u, sigma(u)) is finite in float32 even where sigma saturates; (N, ...) -> (N,)."""
    act = ACTIVATIONS[name]
    u = 30.0 * torch.randn(5, 2, 3, 4, generator=torch.Generator().manual_seed(8))
    if name == "sin":
        u = u.clamp(-math.pi / 2, math.pi / 2)
    v = act.map(u)
    d = act.divergence(u, v)
    assert d.shape == (5,) and d.dtype == torch.float32 and torch.isfinite(d).all()
    per_row = torch.stack([act.divergence(u[i : i + 1], v[i : i + 1])[0] for i in range(5)])
    torch.testing.assert_close(d, per_row)


def test_invalid_names_and_parameters() -> None:
    with pytest.raises(ValueError, match="nope.*relu") as info:
        get_activation("nope")
    assert "did you mean" not in str(info.value)
    with pytest.raises(ValueError, match=r"'tanhh' \(did you mean 'tanh'\?\); valid: ") as info:
        get_activation("tanhh")
    hidden, blocks = str(info.value).split("; valid: ")[1].split("; not elementwise")
    assert "relu" in hidden and "simplex" not in hidden and "maxpool" not in hidden
    assert blocks == " (output and pooling layers): maxpool, simplex"
    for alpha in (2, 0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match=f"alpha must be in \\(0, 1\\), got {alpha}"):
            LeakyReLU(alpha=alpha)
    with pytest.raises(ValueError, match="k must be"):
        MaxPool(k=0)
    with pytest.raises(ValueError, match="hinge_weight"):
        MaxPool(k=2, hinge_weight=0.5)
    with pytest.raises(TypeError, match="Simplex"):
        ACTIVATIONS["simplex"].potential(torch.zeros(2, 3))


@pytest.mark.parametrize("name", [n for n, a in ACTIVATIONS.items() if a.min_curvature() > 0])
def test_min_curvature_bounds_the_potentials_second_derivative_from_below(name):
    """inf Phi'' (the X-steps' strong convexity) <= every slope of Phi' = sigma^{-1} inside the
    domain <= sup Phi'' (their Lipschitz constant, where finite), and it is attained."""
    act = ACTIVATIONS[name]
    lower, upper = act.domain
    lo = -3.0 if lower is None else lower + 1e-6
    hi = 3.0 if upper is None else upper - 1e-6
    v = torch.linspace(lo, hi, 20001, dtype=torch.float64)
    slopes = torch.diff(act.inverse(v)) / torch.diff(v)
    assert float(slopes.min()) >= act.min_curvature() * (1 - 1e-9)
    assert float(slopes.min()) == pytest.approx(act.min_curvature(), rel=1e-6)  # attained
    if act.curvature() is not None:
        assert float(slopes.max()) <= act.curvature() * (1 + 1e-9)


def test_min_curvature_is_one_over_the_slope_and_zero_without_one():
    assert ACTIVATIONS["relu"].min_curvature() == 1.0
    assert ACTIVATIONS["sigmoid"].min_curvature() == 4.0  # sigma' <= 1/4
    assert {n for n, a in ACTIVATIONS.items() if a.min_curvature() > 0} >= {
        "relu", "leaky_relu", "identity", "hardtanh", "piecewise_sigmoid", "sigmoid", "tanh"}
    assert all(a.min_curvature() == 0.0 for a in ACTIVATIONS.values() if a.slope is None)
