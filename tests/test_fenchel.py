"""Fenchel lifted networks (paper 003): every block update against an independent scipy
solution of the problem it states, the objective against its formula, conv and activations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from scipy.special import xlogy

import liftnet.methods.fenchel as fenchel_module
from liftnet import fit, get_method, to_torch
from liftnet.graph import network
from liftnet.metrics import targets_for

TIGHT = {"tol": 1e-10, "max_inner": 5000, "gamma": 0.7, "gamma_out": 1.3, "rho": 0.05,
         "rho_out": 0.02, "lam": 1.5, "loss_weight": 2.0}


def _problem(arch="6-5-4-3", loss="ce", n=12, seed=0, **hp):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, int(arch.split("-")[0]), generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=g)
    net = network(arch, loss=loss)
    Y = targets_for(net, y, X.dtype)
    method = get_method("fenchel", **{**TIGHT, **hp})
    state = method.init_state(net, X, Y, generator=g)
    state.acts, _ = net.forward_all(state.params, X)
    # move the lifted variables away from the feed-forward point
    state.acts = [(A + 0.3 * torch.randn(A.shape, generator=g, dtype=A.dtype)).clamp_min(0)
                  for A in state.acts]
    state.inner = {"x": [], "w": []}
    return net, method, state, X, Y


def _relu_b2(V, U):  # 2 B(V, U) of (5), written out
    return (V**2 + np.maximum(U, 0) ** 2 - 2 * U * V).sum()


def _out_loss(U, Y, loss, c):
    if loss == "ce":
        m = U.max(1, keepdims=True)
        lse = (m[:, 0] + np.log(np.exp(U - m).sum(1)))
        return c * (lse - (U * Y).sum(1)).sum()
    return c * ((U - Y) ** 2).sum()


@pytest.mark.parametrize("loss", ["ce", "mse"])
@pytest.mark.parametrize("l", [1, 2])
@pytest.mark.parametrize("x_momentum", ["fista", "strong"])
def test_x_step_matches_scipy(loss, l, x_momentum):
    net, method, state, X, Y = _problem(loss=loss, x_momentum=x_momentum)
    Wb = [(W.numpy(), b.numpy()) for W, b in state.params]
    xs = [X.numpy()] + [A.numpy() for A in state.acts]
    lam = TIGHT["lam"]
    U_prev = xs[l - 1] @ Wb[l - 1][0].T + Wb[l - 1][1]
    shape = xs[l].shape

    def f(z):
        Z = z.reshape(shape)
        own = lam * _relu_b2(Z, U_prev)
        U = Z @ Wb[l][0].T + Wb[l][1]
        if l == len(net.layers) - 1:
            return own + _out_loss(U, Y.numpy(), loss, TIGHT["loss_weight"])
        return own + lam * _relu_b2(xs[l + 1], U)

    ref = minimize(f, xs[l].ravel(), method="L-BFGS-B", bounds=[(0, None)] * xs[l].size,
                   options={"ftol": 1e-15, "gtol": 1e-11, "maxiter": 20000, "maxfun": 100000})
    Z = method._x_step(net, state, X, Y, l).numpy()
    assert f(Z.ravel()) <= ref.fun + 1e-8 * max(1.0, abs(ref.fun))
    np.testing.assert_allclose(Z, ref.x.reshape(shape), atol=1e-5)


@pytest.mark.parametrize("x_momentum,expected", [("fista", 0.0), ("strong", 2 * TIGHT["lam"])])
def test_x_momentum_gives_apg_the_x_steps_modulus(monkeypatch, x_momentum, expected):
    """x_momentum="strong": the X-step's strong convexity 2 lam inf F'' (ReLU: 2 lam) reaches
    the solver; "fista" passes none."""
    import liftnet.methods.fenchel as fenchel_module

    seen = []
    real = fenchel_module.apg

    def spy(*args, **kwargs):
        seen.append(kwargs["strong_convexity"])
        return real(*args, **kwargs)

    monkeypatch.setattr(fenchel_module, "apg", spy)
    net, method, state, X, Y = _problem(x_momentum=x_momentum)
    method._x_step(net, state, X, Y, 1)
    assert seen == [expected]


@pytest.mark.parametrize("loss", ["ce", "mse"])
@pytest.mark.parametrize("l", [0, 1, 2])
@pytest.mark.parametrize("wide", [False, True, "singular"])
def test_w_step_matches_scipy(loss, l, wide, monkeypatch):
    """wide: 12 samples into 20 inputs without weight decay, so layer 0 is solved in sample
    space (liftnet.solvers.majorize_dual); the others in the primal form.  "singular": the
    same, with the sample-space matrix found numerically singular (as for a proximal weight
    of 1e-20), so layer 0 falls back to the primal form: the same optimum."""
    hp = {"rho": 0.0, "rho_out": 0.0} if wide else {}
    if wide == "singular":
        def singular(*args, **kwargs):
            raise ValueError("the sample-space matrix is not positive definite")

        monkeypatch.setattr(fenchel_module, "sample_precision", singular)
    net, method, state, X, Y = _problem(arch="20-5-4-3" if wide else "6-5-4-3", loss=loss, **hp)
    calls = []
    dual = fenchel_module.mm_regression_dual
    monkeypatch.setattr(fenchel_module, "mm_regression_dual",
                        lambda *a, **k: calls.append(1) or dual(*a, **k))
    prev = [(W.clone() + 0.1, b.clone() - 0.1) for W, b in state.params]
    xs = [X.numpy()] + [A.numpy() for A in state.acts]
    last = l == len(net.layers) - 1
    gamma = TIGHT["gamma_out"] if last else TIGHT["gamma"]
    rho = 0.0 if wide else TIGHT["rho_out"] if last else TIGHT["rho"]
    W0, b0 = prev[l][0].numpy(), prev[l][1].numpy()
    m, d = W0.shape

    def f(theta):
        W, b = theta[: m * d].reshape(m, d), theta[m * d :]
        U = xs[l] @ W.T + b
        data = (_out_loss(U, Y.numpy(), loss, TIGHT["loss_weight"]) if last
                else TIGHT["lam"] * _relu_b2(xs[l + 1], U))
        return (data + gamma * (((W - W0) ** 2).sum() + ((b - b0) ** 2).sum())
                + rho * (W**2).sum())

    W, b = state.params[l]
    start = np.concatenate([W.numpy().ravel(), b.numpy()])
    ref = minimize(f, start, method="L-BFGS-B",
                   options={"ftol": 1e-15, "gtol": 1e-11, "maxiter": 20000, "maxfun": 100000})
    Wn, bn = method._w_step(net, state, X, Y, l, prev[l])
    assert len(calls) == (1 if wide is True and l == 0 else 0)
    got = np.concatenate([Wn.numpy().ravel(), bn.numpy()])
    assert f(got) <= ref.fun + 1e-8 * max(1.0, abs(ref.fun))
    np.testing.assert_allclose(got, ref.x, atol=1e-5)


def _check_hidden_w_step(net, method, state, X, Y, l, b2, T=None):
    """Layer l's W-step towards T (default X_{l+1}) against L-BFGS-B on
    lam b2(T, X_l W^T + b) + gamma ||(W, b) - (W, b)^0||^2 + rho ||W||^2 (b2 = 2 B, numpy)."""
    prev = [(W.clone() + 0.1, b.clone() - 0.1) for W, b in state.params]
    xs = [X.numpy()] + [A.numpy() for A in state.acts]
    target = xs[l + 1] if T is None else T.numpy()
    W0, b0 = prev[l][0].numpy(), prev[l][1].numpy()
    m, d = W0.shape

    def f(theta):
        W, b = theta[: m * d].reshape(m, d), theta[m * d :]
        data = TIGHT["lam"] * b2(target, xs[l] @ W.T + b)
        return (data + TIGHT["gamma"] * (((W - W0) ** 2).sum() + ((b - b0) ** 2).sum())
                + TIGHT["rho"] * (W**2).sum())

    W, b = state.params[l]
    ref = minimize(f, np.concatenate([W.numpy().ravel(), b.numpy()]), method="L-BFGS-B",
                   options={"ftol": 1e-15, "gtol": 1e-11, "maxiter": 20000, "maxfun": 100000})
    Wn, bn = method._w_step(net, state, X, Y, l, prev[l], target=T)
    got = np.concatenate([Wn.numpy().ravel(), bn.numpy()])
    np.testing.assert_allclose(got, ref.x, atol=1e-5)


@pytest.mark.parametrize("l", [0, 1])
def test_w_step_towards_a_given_target_matches_scipy(l):
    """The W-step of ``target_extrapolation``: the same problem with X_{l+1} replaced."""
    net, method, state, X, Y = _problem()
    g = torch.Generator().manual_seed(7)
    T = torch.rand(state.acts[l].shape, generator=g, dtype=X.dtype)
    _check_hidden_w_step(net, method, state, X, Y, l, _relu_b2, T)


def _one_batch_step(net, X, Y, **hp):
    method = get_method("fenchel", **{**TIGHT, **hp})
    state = method.init_state(net, X, Y, generator=torch.Generator().manual_seed(1))
    start = [(W.clone(), b.clone()) for W, b in state.params]
    return method, method.step(net, state, X, Y, new_batch=True), start


def test_target_extrapolation_moves_only_its_layers_w_step_targets():
    """kappa = (1, 3): the X-steps and the W-steps of layers 0 and 2 are those of the plain
    step; layer 1's W-step fits X0 + 3 (X_2 - X0), X0 the feed-forward activations."""
    g = torch.Generator().manual_seed(5)
    X = torch.rand(15, 6, generator=g, dtype=torch.float64)
    net = network("6-5-4-3", loss="ce")
    Y = targets_for(net, torch.randint(0, 3, (15,), generator=g), X.dtype)
    _, plain, start = _one_batch_step(net, X, Y)
    method, kappa, _ = _one_batch_step(net, X, Y, target_extrapolation="1,3")
    _, ones, _ = _one_batch_step(net, X, Y, target_extrapolation="1,1")
    for (W, b), (W1, b1) in zip(plain.params, ones.params, strict=True):
        assert torch.equal(W, W1) and torch.equal(b, b1)
    for A, B in zip(plain.acts, kappa.acts, strict=True):
        assert torch.equal(A, B)
    for l in (0, 2):
        assert torch.equal(plain.params[l][0], kappa.params[l][0])
    assert not torch.allclose(plain.params[1][0], kappa.params[1][0])
    ff, _ = net.forward_all(start, X)
    state = method.init_state(net, X, Y, generator=torch.Generator().manual_seed(1))
    state.acts, state.inner = list(kappa.acts), {"x": [], "w": []}
    target = (ff[1] + 3.0 * (kappa.acts[1] - ff[1])).clamp_min(0.0)
    W, b = method._w_step(net, state, X, Y, 1, start[1], target=target)
    assert torch.equal(W, kappa.params[1][0]) and torch.equal(b, kappa.params[1][1])
    with pytest.raises(ValueError, match="target_extrapolation has 3 entries"):
        _one_batch_step(net, X, Y, target_extrapolation="1,2,3")


def test_target_extrapolation_only_in_the_first_sweep_of_a_batch():
    """K = 2 with kappa: the first sweep is the one-sweep extrapolated step, the second the
    plain sweep from its point, anchored at the batch's starting weights.  (Extrapolating
    in the second sweep too multiplied the first sweep's own weight change by kappa: LeNet-5
    fell to 0.90 after an epoch.)"""
    g = torch.Generator().manual_seed(5)
    X = torch.rand(15, 6, generator=g, dtype=torch.float64)
    net = network("6-5-4-3", loss="ce")
    Y = targets_for(net, torch.randint(0, 3, (15,), generator=g), X.dtype)
    _, one, start = _one_batch_step(net, X, Y, target_extrapolation="2,3")
    _, two, _ = _one_batch_step(net, X, Y, target_extrapolation="2,3", alternations=2)
    plain = get_method("fenchel", **TIGHT)
    state = plain.init_state(net, X, Y, generator=torch.Generator().manual_seed(1))
    state.params = [(W.clone(), b.clone()) for W, b in one.params]
    state.acts, state.inner = [A.clone() for A in one.acts], {"x": [], "w": []}
    for l in range(net.n_hidden, 0, -1):
        state.acts[l - 1] = plain._x_step(net, state, X, Y, l)
    for l in range(len(net.layers)):
        W, b = plain._w_step(net, state, X, Y, l, start[l])
        assert torch.equal(W, two.params[l][0]) and torch.equal(b, two.params[l][1])
    for A, B in zip(state.acts, two.acts, strict=True):
        assert torch.equal(A, B)
    assert not torch.allclose(one.params[1][0], two.params[1][0])


def test_target_extrapolation_leaves_later_full_data_sweeps_alone():
    X, y = _regression()
    net = network("6-8-5-3", loss="mse")
    Y = targets_for(net, y, X.dtype)
    hp = {"gamma": 0.0, "gamma_out": 0.0, "rho": 1e-3, "rho_out": 1e-3, "max_inner": 10}
    states = []
    for kappa in (None, "4,4"):
        method = get_method("fenchel", target_extrapolation=kappa, **hp)
        state = method.init_state(net, X, Y, generator=torch.Generator().manual_seed(0))
        state = method.step(net, get_method("fenchel", **hp).step(net, state, X, Y), X, Y,
                            new_batch=False)
        states.append(state)
    for (W, b), (W1, b1) in zip(states[0].params, states[1].params, strict=True):
        assert torch.equal(W, W1) and torch.equal(b, b1)


def test_float32_w_step_keeps_improvements_below_float32_resolution():
    """A W-step on many rows whose best improvement is below float32's resolution of the
    objective's sum (as for LeNet's first convolution: 392,000 outputs, targets moved by a few
    1e-4): the solver's never-worse safeguard must compare float64 values, or it throws the
    step away (LeNet's first convolution never trained before this was fixed)."""
    g = torch.Generator().manual_seed(3)
    n = 100_000
    X = torch.rand(n, 4, generator=g)
    y = torch.randint(0, 2, (n,), generator=g)
    net = network("4-3-2", loss="ce")
    Y = targets_for(net, y, X.dtype)
    method = get_method("fenchel", gamma=1e-3, gamma_out=1e-3)
    state = method.init_state(net, X, Y, generator=g)
    state.acts, _ = net.forward_all(state.params, X)
    state.inner = {"x": [], "w": []}
    ff = state.acts[0]
    V = torch.randn(3, 4, generator=g)  # targets moved by 1e-4 along a linear function of X
    state.acts[0] = (ff + 1e-4 * (X @ V.T) * (ff > 0)).clamp_min(0.0)
    W0, b0 = (p.clone() for p in state.params[0])
    W, b = method._w_step(net, state, X, Y, 0, (W0, b0))
    T, lam, gam = state.acts[0].double(), method.lam, method.gamma

    def f64(Wc, bc):
        U = X.double() @ Wc.double().T + bc.double()
        return float(lam * (torch.relu(U) ** 2 - 2 * U * T).sum()
                     + gam * ((Wc.double() - W0.double()) ** 2).sum()
                     + gam * ((bc.double() - b0.double()) ** 2).sum())

    assert not torch.equal(W, W0)
    assert f64(W, b) < f64(W0, b0)


def test_objective_is_the_formula():
    net, method, state, X, Y = _problem(loss="ce", n=9)
    Wb = [(W.numpy(), b.numpy()) for W, b in state.params]
    xs = [X.numpy()] + [A.numpy() for A in state.acts]
    lam, c = TIGHT["lam"], TIGHT["loss_weight"]
    total = 0.0
    for l, (W, b) in enumerate(Wb):
        U = xs[l] @ W.T + b
        if l == len(Wb) - 1:
            total += _out_loss(U, Y.numpy(), "ce", c)
        else:
            total += lam * _relu_b2(xs[l + 1], U)
        total += (TIGHT["rho_out"] if l == len(Wb) - 1 else TIGHT["rho"]) * (W**2).sum()
    assert method.objective(net, state, X, Y) == pytest.approx(total / len(X), rel=1e-10)


def test_per_layer_lams_enter_the_objective():
    net, method, state, X, Y = _problem(loss="mse", n=9)
    base = get_method("fenchel", **{**TIGHT, "lam": 1.0})
    doubled = get_method("fenchel", **{**TIGHT, "lams": "1,3"})
    e1, e3 = base.objective(net, state, X, Y), doubled.objective(net, state, X, Y)
    # only the second link's gap is weighted by 3 instead of 1
    U1 = state.acts[0] @ state.params[1][0].T + state.params[1][1]
    gap2 = _relu_b2(state.acts[1].numpy(), U1.numpy()) / len(X)
    assert e3 - e1 == pytest.approx(2 * gap2, rel=1e-9)
    with pytest.raises(ValueError, match="lams has 3 entries"):
        get_method("fenchel", lams="1,2,3").init_state(net, X, Y)
    with pytest.raises(ValueError, match="gammas has 2 entries"):
        get_method("fenchel", gammas="1,2").init_state(net, X, Y)
    # one number is a one-entry list (what the benchmarks' --set passes for "3")
    assert get_method("fenchel", target_extrapolation=3).target_extrapolation == (3.0,)
    with pytest.raises(ValueError, match="non-empty list"):
        get_method("fenchel", lams=True)
    # a doubled comma is a typo, not a dropped layer ("1,,2" was read as "1,2")
    for typo in ("1,,2", ",1,2", "1,2,"):
        with pytest.raises(ValueError, match="empty entry"):
            get_method("fenchel", lams=typo)


def _blobs(n, seed):
    """8x8 images with a bright blob in one of 4 quadrants; the label is the quadrant."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    img = 0.1 * torch.rand(n, 1, 8, 8, generator=g)
    for i in range(n):
        r, c = divmod(int(y[i]), 2)
        img[i, 0, 4 * r + 1 : 4 * r + 3, 4 * c + 1 : 4 * c + 3] += 1.0
    return img.reshape(n, -1), y


def test_convolutional_network_trains_and_exports():
    X, y = _blobs(240, 0)
    Xt, yt = _blobs(120, 1)
    net = network("1x8x8-conv4k3p1-pool2-conv6k3p1-pool2-4", loss="ce")
    res = fit(get_method("fenchel", gamma=1.0, gamma_out=1.0), net, X, y, epochs=3,
              batch_size=60, X_test=Xt, y_test=yt, progress=False)
    assert res.history[-1]["test_accuracy"] >= 0.9  # chance: 0.25
    with torch.no_grad():
        assert torch.allclose(to_torch(net, res.state.params)(Xt),
                              net.forward(res.state.params, Xt), atol=1e-5)


@pytest.mark.parametrize("activation",
                         ["leaky_relu", "sigmoid", "tanh", "hardtanh", "piecewise_sigmoid"])
def test_other_activations_train_and_softplus_is_refused(small_data, activation):
    """Theorem 1's strictly increasing activations and the clipped-linear ones (F = v^2 / 2 on
    a box): Algorithm 1 never increases E (every block exactly minimised; the sigmoid's and
    tanh's X-steps by Bregman proximal gradient, the others by projected gradient on dom F)
    and the network learns; an activation without a Fenchel X-step is a clear error."""
    Xtr, ytr, Xte, yte = small_data
    net = network("8-12-3", activation=activation, loss="ce")
    res = fit(get_method("fenchel", gamma=1.0, gamma_out=1.0, loss_weight=1.0), net, Xtr, ytr,
              epochs=8, batch_size=0, X_test=Xte, y_test=yte, progress=False)
    objectives = [h["objective"] for h in res.history]
    assert all(b <= a + 1e-9 * abs(a) for a, b in zip(objectives, objectives[1:], strict=False))
    assert objectives[-1] < objectives[0]
    assert res.history[-1]["test_accuracy"] >= 0.8  # the majority class: 0.6
    with pytest.raises(ValueError, match="Fenchel does not support activation 'softplus'"):
        fit(get_method("fenchel"), network("8-12-3", activation="softplus"), Xtr, ytr, epochs=1,
            progress=False)


# sigma, F and F* of the smooth activations, numpy (the references of the next two tests)
SMOOTH = {
    "sigmoid": (lambda u: 1 / (1 + np.exp(-u)),
                lambda v: xlogy(v, v) + xlogy(1 - v, 1 - v), lambda u: np.logaddexp(u, 0.0)),
    "tanh": (np.tanh, lambda v: 0.5 * (xlogy(1 - v, 1 - v) + xlogy(1 + v, 1 + v)),
             lambda u: np.logaddexp(u, -u) - np.log(2.0)),
    "hardtanh": (lambda u: np.clip(u, -1, 1), lambda v: 0.5 * v * v,
                 lambda u: np.clip(u, -1, 1) * u - 0.5 * np.clip(u, -1, 1) ** 2),
    "piecewise_sigmoid": (lambda u: np.clip(u, 0, 1), lambda v: 0.5 * v * v,
                          lambda u: np.clip(u, 0, 1) * u - 0.5 * np.clip(u, 0, 1) ** 2),
    "leaky_relu": (lambda u: np.maximum(0.01 * u, u),
                   lambda v: 0.5 * np.where(v >= 0, v * v, v * v / 0.01),
                   lambda u: 0.5 * np.where(u >= 0, u * u, 0.01 * u * u)),
}
#: (lower, upper) bounds of dom F for scipy, the margin kept from an open end
BOUNDS = {"sigmoid": (1e-12, 1 - 1e-12), "tanh": (-1 + 1e-12, 1 - 1e-12), "hardtanh": (-1, 1),
          "piecewise_sigmoid": (0, 1), "leaky_relu": (None, None)}


def _smooth_problem(activation, loss="ce", seed=0):
    """The 6-5-4-3 problem with sigmoid or tanh hidden layers, the lifted activations moved
    off the feed-forward point inside the range."""
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(12, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (12,), generator=g)
    net = network("6-5-4-3", activation=activation, loss=loss)
    Y = targets_for(net, y, X.dtype)
    method = get_method("fenchel", **TIGHT)
    state = method.init_state(net, X, Y, generator=g)
    _, pre = net.forward_all(state.params, X)
    sigma = {"sigmoid": torch.sigmoid, "tanh": torch.tanh,
             "hardtanh": lambda u: u.clamp(-1.0, 1.0),
             "piecewise_sigmoid": lambda u: u.clamp(0.0, 1.0),
             "leaky_relu": lambda u: torch.maximum(0.01 * u, u)}[activation]
    state.acts = [sigma(U + 0.5 * torch.randn(U.shape, generator=g, dtype=U.dtype))
                  for U in pre[:-1]]
    state.inner = {"x": [], "w": []}
    return net, method, state, X, Y


def _smooth_b2(activation, V, U):  # 2 B(V, U) = 2 (F(V) + F*(U) - U V), Theorem 1
    _, F, Fc = SMOOTH[activation]
    return 2.0 * (F(V) + Fc(U) - U * V).sum()


@pytest.mark.parametrize("activation",
                         ["sigmoid", "tanh", "hardtanh", "piecewise_sigmoid", "leaky_relu"])
@pytest.mark.parametrize("l", [1, 2])
def test_smooth_activation_x_step_matches_scipy(activation, l):
    net, method, state, X, Y = _smooth_problem(activation)
    Wb = [(W.numpy(), b.numpy()) for W, b in state.params]
    xs = [X.numpy()] + [A.numpy() for A in state.acts]
    lam = TIGHT["lam"]
    U_prev = xs[l - 1] @ Wb[l - 1][0].T + Wb[l - 1][1]
    shape = xs[l].shape
    lo, hi = BOUNDS[activation]
    if activation in ("hardtanh", "piecewise_sigmoid"):  # some start on the box's faces
        assert (xs[l] == hi).any() and (xs[l] == lo).any()

    def f(z):
        Z = z.reshape(shape)
        own = lam * _smooth_b2(activation, Z, U_prev)
        U = Z @ Wb[l][0].T + Wb[l][1]
        if l == len(net.layers) - 1:
            return own + _out_loss(U, Y.numpy(), "ce", TIGHT["loss_weight"])
        return own + lam * _smooth_b2(activation, xs[l + 1], U)

    ref = minimize(f, xs[l].ravel(), method="L-BFGS-B", bounds=[(lo, hi)] * xs[l].size,
                   options={"ftol": 1e-15, "gtol": 1e-11, "maxiter": 20000, "maxfun": 100000})
    Z = method._x_step(net, state, X, Y, l).numpy()
    assert f(Z.ravel()) <= ref.fun + 1e-8 * max(1.0, abs(ref.fun))
    np.testing.assert_allclose(Z, ref.x.reshape(shape), atol=1e-5)
    assert (lo is None or lo <= Z.min()) and (hi is None or Z.max() <= hi)
    assert np.abs(Z - xs[l]).max() > 1e-3  # the step moved (not the fallback to its start)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
@pytest.mark.parametrize("l", [0, 1])
def test_smooth_activation_w_step_matches_scipy(activation, l):
    """The W-step through F* of the sigmoid (curvature 2 lam / 4) and of tanh."""
    net, method, state, X, Y = _smooth_problem(activation)
    _check_hidden_w_step(net, method, state, X, Y, l,
                         lambda V, U: _smooth_b2(activation, V, U))


def test_sigmoid_targets_are_projected_on_the_range_and_one_lambda_refuses_it():
    """target_extrapolation moves a sigmoid layer's target along X - X0 and clips it to [0, 1]
    (dom F); Appendix A's scaling needs positively homogeneous activations."""
    from liftnet.methods.fenchel import Fenchel, one_lambda

    Z = torch.tensor([[-0.5, 0.3, 1.7]])
    assert torch.equal(Fenchel._project("sigmoid", Z), torch.tensor([[0.0, 0.3, 1.0]]))
    assert torch.equal(Fenchel._project("tanh", 2 * Z), torch.tensor([[-1.0, 0.6, 1.0]]))
    assert torch.equal(Fenchel._project("leaky_relu", Z), Z)
    net = network("6-5-3", activation="sigmoid", loss="ce")
    with pytest.raises(ValueError, match="positively homogeneous.*'sigmoid'"):
        one_lambda(get_method("fenchel", lams="2"), net)


@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_one_lambda_scaling_is_equivalent(loss):
    """Appendix A: per-layer multipliers == one multiplier on scaled variables with scaled
    weight decays and proximal weights; the two trainings' iterates map onto each other."""
    from liftnet.methods.fenchel import FenchelState, one_lambda, scale_variables

    net, _, state, X, Y = _problem(loss=loss, n=15, seed=2)
    method = get_method("fenchel", **{**TIGHT, "lams": "0.5,3", "tol": 1e-12})
    single = one_lambda(method, net)
    assert single.lams is None and single.lam == 1.0
    lams = method.layer_lams(net)
    p_bar, a_bar = scale_variables(net, lams, state.params, state.acts)
    other = FenchelState(params=p_bar, acts=a_bar)
    assert single.objective(net, other, X, Y) == pytest.approx(
        method.objective(net, state, X, Y), rel=1e-12)
    for _ in range(2):
        method.step(net, state, X, Y, new_batch=False)
        single.step(net, other, X, Y, new_batch=False)
    back_p, back_a = scale_variables(net, lams, other.params, other.acts, inverse=True)
    for (W, b), (Wb, bb) in zip(state.params, back_p, strict=True):
        torch.testing.assert_close(W, Wb, rtol=1e-7, atol=1e-9)
        torch.testing.assert_close(b, bb, rtol=1e-7, atol=1e-9)
    for A, Ab in zip(state.acts, back_a, strict=True):
        torch.testing.assert_close(A, Ab, rtol=1e-7, atol=1e-9)
    # and the scaled problem is a genuinely different parameterisation
    assert not torch.allclose(state.params[1][0], other.params[1][0])


def test_cli_per_layer_lists_and_errors(tmp_path, capsys):
    import json

    from liftnet.cli import main

    out = tmp_path / "r.json"
    assert main(["train", "--method", "fenchel", "--dataset", "digits", "--arch", "64-20-10",
                 "--epochs", "1", "--batch-size", "200", "--lams", "2", "--gammas", "1,3",
                 "--out", str(out), "--quiet"]) == 0
    rec = json.loads(out.read_text())
    assert rec["config"]["lams"] == [2.0] and rec["config"]["gammas"] == [1.0, 3.0]
    assert rec["test_accuracy"] > 0.5  # ten classes: chance is 0.1
    assert main(["train", "--method", "fenchel", "--dataset", "digits", "--arch", "64-20-10",
                 "--epochs", "1", "--lams", "1,2", "--quiet"]) == 2
    assert "lams has 2 entries" in capsys.readouterr().err


# Algorithm 1 without proximal terms, small weight decays, 10 solver steps per block
FULL_SET_HP = {"gamma": 0.0, "gamma_out": 0.0, "rho": 1e-3, "rho_out": 1e-3, "loss_weight": 1.0,
               "max_inner": 10}


def _regression(n=40, seed=3):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=g)
    return X, y


def test_extrapolated_sweeps_never_increase_the_objective_and_change_the_iterates():
    X, y = _regression()
    net = network("6-8-5-3", loss="mse")
    hp = FULL_SET_HP
    runs = {}
    for beta in (0.0, 0.9):
        method = get_method("fenchel", extrapolation=beta, **hp)
        Y = targets_for(net, y, X.dtype)
        state = method.init_state(net, X, Y, generator=torch.Generator().manual_seed(0))
        values = []
        for k in range(25):
            state = method.step(net, state, X, Y, new_batch=k == 0)
            values.append(method.objective(net, state, X, Y))
        assert all(b <= a * (1 + 1e-12) for a, b in zip(values, values[1:], strict=False)), beta
        runs[beta] = (values, state)
    # the momentum moves the iterates (and here lowers the objective faster)
    assert not torch.allclose(runs[0.9][1].params[0][0], runs[0.0][1].params[0][0])
    assert runs[0.9][0][-1] < runs[0.0][0][-1]
    # plain sweeps never extrapolate nor restart; with beta = 0.9 each of the 24 steps after
    # the first restarts at most once, and the last one did not (a restart resets Nesterov's
    # t to 1)
    plain, fast = runs[0.0][1], runs[0.9][1]
    assert plain.restarts == 0 and plain.momentum_t == 1.0
    assert fast.previous is not None and fast.restarts <= 24 and fast.momentum_t > 1.0


def test_extrapolation_is_ignored_with_batches():
    X, y = _regression(n=30)
    net = network("6-8-3", loss="ce")
    params = []
    for beta in (0.0, 0.5):
        res = fit(get_method("fenchel", extrapolation=beta, gamma=1.0, gamma_out=1.0), net, X,
                  y, epochs=2, batch_size=10, progress=False)
        params.append(res.state.params)
    for (W0, b0), (W1, b1) in zip(*params, strict=True):
        assert torch.equal(W0, W1) and torch.equal(b0, b1)


def test_extrapolation_restarts_from_the_last_iterate_when_the_sweep_ends_higher():
    X, y = _regression()
    net = network("6-8-5-3", loss="mse")
    hp = FULL_SET_HP
    method, plain = get_method("fenchel", extrapolation=0.9, **hp), get_method("fenchel", **hp)
    Y = targets_for(net, y, X.dtype)
    state = method.init_state(net, X, Y, generator=torch.Generator().manual_seed(0))
    for k in range(3):
        state = method.step(net, state, X, Y, new_batch=k == 0)
    # a previous iterate far away: the extrapolated start is bad, the sweep must be redone
    params, acts = state.previous
    state.previous = ([(W + 5.0, b - 5.0) for W, b in params], [A + 5.0 for A in acts])
    state.momentum_t = 10.0
    x_k = ([(W.clone(), b.clone()) for W, b in state.params], [A.clone() for A in state.acts])
    before, restarts = method.objective(net, state, X, Y), state.restarts
    state = method.step(net, state, X, Y, new_batch=False)
    assert state.restarts == restarts + 1 and state.momentum_t == 1.0
    assert method.objective(net, state, X, Y) <= before
    reference = plain.init_state(net, X, Y, params=x_k[0])
    reference.acts = x_k[1]
    reference = plain.step(net, reference, X, Y, new_batch=False)
    for (W, b), (Wr, br) in zip(state.params, reference.params, strict=True):
        assert torch.allclose(W, Wr, atol=1e-12) and torch.allclose(b, br, atol=1e-12)


def test_reused_pre_activations_give_the_step_computed_afresh(monkeypatch):
    """The first sweep of a batch reuses the feed-forward pre-activations (X-step below and
    W-step of the first layer): the step must equal one that recomputes every product."""
    g = torch.Generator().manual_seed(8)
    X = torch.rand(15, 6, generator=g, dtype=torch.float64)
    net = network("6-5-4-3", loss="ce")
    Y = targets_for(net, torch.randint(0, 3, (15,), generator=g), X.dtype)
    _, reused, _ = _one_batch_step(net, X, Y, target_extrapolation="2,3", alternations=2)

    def afresh(net, state, l, x_in):
        return net.layers[l].forward(x_in, *state.params[l])

    monkeypatch.setattr(fenchel_module.Fenchel, "_pre_activation", staticmethod(afresh))
    _, fresh, _ = _one_batch_step(net, X, Y, target_extrapolation="2,3", alternations=2)
    for (W, b), (W1, b1) in zip(reused.params, fresh.params, strict=True):
        assert torch.equal(W, W1) and torch.equal(b, b1)
    for A, B in zip(reused.acts, fresh.acts, strict=True):
        assert torch.equal(A, B)


def test_pre_activation_memo_is_used_only_for_the_same_tensors():
    net, method, state, X, _ = _problem()
    W, b = state.params[0]
    marker = torch.full((len(X), 5), 7.0, dtype=X.dtype)
    state.pre = {0: (W, b, X, marker)}
    assert method._pre_activation(net, state, 0, X) is marker  # same tensors: reused
    for changed in ((W.clone(), b), (W, b.clone())):  # new weights (a W-step): recomputed
        state.params[0] = changed
        state.pre = {0: (W, b, X, marker)}
        U = method._pre_activation(net, state, 0, X)
        assert torch.equal(U, net.layers[0].forward(X, *changed))
    state.pre = {0: (*state.params[0], X, marker)}
    U = method._pre_activation(net, state, 0, X.clone())  # other inputs: recomputed
    assert torch.equal(U, net.layers[0].forward(X, *state.params[0]))


def test_identity_activation_is_not_overwritten_by_its_own_gradient(monkeypatch):
    """For the identity map sigma(U) is U itself: the link gradient must not write into U (it
    zeroed the lifted activations through the reused pre-activation, and made every
    sample-space W-step refuse its move)."""
    g = torch.Generator().manual_seed(4)
    X = torch.rand(15, 6, generator=g, dtype=torch.float64)
    net = network("6-5-3", loss="ce", activation="identity")
    Y = targets_for(net, torch.randint(0, 3, (15,), generator=g), X.dtype)
    U = torch.randn(15, 5, generator=g, dtype=torch.float64)
    before = U.clone()
    fenchel_module.Fenchel._link_term("identity", 1.0, torch.zeros_like(U))[1](U)
    assert torch.equal(U, before)
    _, reused, _ = _one_batch_step(net, X, Y)

    def afresh(net, state, l, x_in):
        return net.layers[l].forward(x_in, *state.params[l])

    monkeypatch.setattr(fenchel_module.Fenchel, "_pre_activation", staticmethod(afresh))
    _, fresh, _ = _one_batch_step(net, X, Y)
    for (W, b), (W1, b1) in zip(reused.params, fresh.params, strict=True):
        assert torch.equal(W, W1) and torch.equal(b, b1)
    assert reused.acts[0].abs().sum() > 0 and torch.equal(reused.acts[0], fresh.acts[0])
    assert reused.pre == {}  # the memo lives within a step


def test_identity_w_step_in_sample_space_moves_like_the_primal_form():
    """The sample-space MM read its outputs after the identity link's gradient had overwritten
    them, so its step was wrong and refused: it must now match the primal form."""
    g = torch.Generator().manual_seed(2)
    R, d, m = 8, 12, 3
    P = torch.rand(R, d, generator=g, dtype=torch.float64)
    T = torch.randn(R, m, generator=g, dtype=torch.float64)
    W0 = torch.randn(m, d, generator=g, dtype=torch.float64)
    b0 = torch.zeros(m, dtype=torch.float64)
    value, grad, curv = fenchel_module.Fenchel._link_term("identity", 0.7, T)
    from liftnet.solvers.majorize import augmented_gram, mm_precision, mm_regression
    from liftnet.solvers.majorize_dual import mm_regression_dual, sample_precision
    common = dict(W0=W0, b0=b0, g_w=0.5, g_b=0.5, tol=1e-10, max_iter=500)
    dual = mm_regression_dual(P, grad, value, W0.clone(), b0.clone(),
                              sample_precision(P, curv, 0.5), curv, **common)
    primal = mm_regression(P, grad, value, W0.clone(), b0.clone(),
                           mm_precision(augmented_gram(P), curv, 0.5, 0.5, 0.0), **common)
    assert not torch.allclose(dual.W, W0)
    torch.testing.assert_close(dual.W, primal.W, rtol=1e-7, atol=1e-9)


def test_conv_w_step_on_images_takes_the_steps_of_the_rows_regression():
    """A convolution's W-step runs its MM steps as conv2d on the images (Conv2d.design): the
    same iterates as the regression on the im2col rows towards the same targets in rows."""
    from liftnet.layers import Conv2d
    from liftnet.solvers.majorize import augmented_gram, mm_precision, mm_regression

    g = torch.Generator().manual_seed(3)
    for c in (1, 2):  # the batched product and oneDNN's weight gradient
        layer = Conv2d((c, 7, 7), 3, 3, padding=1, pool=1)
        X = torch.rand(4, layer.input_size, generator=g, dtype=torch.float64)
        W0 = 0.3 * torch.randn(3, c * 9, generator=g, dtype=torch.float64)
        b0 = torch.zeros(3, dtype=torch.float64)
        T = torch.rand(4, layer.out_features, generator=g, dtype=torch.float64)
        design = layer.design(X)
        H = mm_precision(augmented_gram(design.rows), 2.0, 0.1, 0.1, 0.0)
        common = dict(W0=W0, b0=b0, g_w=0.1, g_b=0.1, tol=1e-12, max_iter=7)
        value, grad, _ = fenchel_module.Fenchel._link_term("relu", 1.0, T)
        on_images = mm_regression(design, grad, value, W0.clone(), b0.clone(), H, **common)
        value, grad, _ = fenchel_module.Fenchel._link_term("relu", 1.0, layer.to_rows(T))
        on_rows = mm_regression(design.rows, grad, value, W0.clone(), b0.clone(), H, **common)
        assert on_images.iterations == on_rows.iterations >= 3
        assert not torch.allclose(on_images.W, W0)
        torch.testing.assert_close(on_images.W, on_rows.W, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(on_images.b, on_rows.b, rtol=1e-10, atol=1e-12)


def test_lenet5_hyperparameters_let_scalars_override_the_per_layer_defaults():
    from liftnet.graph import lenet5_spec, network
    from liftnet.methods.fenchel import LENET5_DEFAULTS, lenet5_hyperparameters

    net = network(lenet5_spec((1, 28, 28), 10), loss="ce")
    assert get_method("fenchel", **lenet5_hyperparameters()) == get_method(
        "fenchel", **LENET5_DEFAULTS)
    m = get_method("fenchel", **lenet5_hyperparameters({"lam": 2.0, "gamma_out": 50.0}))
    assert m.layer_lams(net) == [2.0] * 4
    assert m.layer_gammas(net) == [1e-4, 1e-2, 1.0, 1.0, 50.0]
    m = get_method("fenchel", **lenet5_hyperparameters({"gamma": 5.0}))
    assert m.layer_gammas(net) == [5.0] * 4 + [1.0] and m.layer_lams(net) == [5, 5, 1, 1]
    # per-layer values given by the user win over the scalars
    m = get_method("fenchel", **lenet5_hyperparameters({"lam": 2.0, "lams": "1,1,1,3",
                                                        "gamma": 5.0, "gammas": "1,2,3,4,5"}))
    assert m.layer_lams(net) == [1, 1, 1, 3] and m.layer_gammas(net) == [1, 2, 3, 4, 5]


def test_shadowed_refuses_only_a_scalar_that_its_list_would_contradict():
    from liftnet.methods.fenchel import shadowed

    assert shadowed({"lam": 2.0, "lams": (2.0, 2.0)}) == []  # the list says the same
    assert shadowed({"lam": 2.0, "lams": "2,1"}) == [("lam", "lams")]
    assert shadowed({"gamma": 3.0, "gamma_out": 7.0, "gammas": (3.0, 3.0, 7.0)}) == []
    assert shadowed({"gamma": 3.0, "gammas": (3.0, 3.0, 7.0)}) == []  # hidden entries only
    assert shadowed({"gamma": 7.0, "gammas": (3.0, 3.0, 7.0)}) == [("gamma", "gammas")]
    assert shadowed({"gamma_out": 3.0, "gammas": (3.0, 3.0, 7.0)}) == [("gamma_out", "gammas")]
    assert shadowed({"lam": 2.0, "lams": "x"}) == [("lam", "lams")]  # unreadable: refused
    assert shadowed({"lam": 2.0, "lams": None, "gamma": 1.0}) == []


def test_float32_regression_with_targets_in_the_thousands_matches_float64():
    """A review found float32 Fenchel regression turning NaN (targets x1000) or stalling
    (x3000, R^2 0.58 against 0.92): the output layer's Gram matrix of large, nearly collinear
    activations lost its small eigenvalues in float32; rejected steps are now solved again
    with the Gram matrix in float64."""
    from sklearn.datasets import load_digits

    from liftnet.estimator import LiftedRegressor

    X = load_digits().data[:200] / 16.0
    y = X[:, 10] + X[:, 20]
    for scale in (1e3, 3e3):
        r2 = [LiftedRegressor("fenchel", hidden_layer_sizes=(8,), epochs=1, dtype=dtype)
              .fit(X, y * scale).score(X, y * scale) for dtype in ("float32", "float64")]
        assert r2[1] > 0.9 and abs(r2[0] - r2[1]) < 1e-3, (scale, r2)


@pytest.mark.parametrize("hp", [{"gamma": 1e-20}, {"lam": 1e20}, {"gamma": 0.0, "gamma_out": 0.0}])
def test_tiny_proximal_weights_fall_back_to_the_primal_w_step(hp):
    """A review found gamma=1e-20 (or lam=1e20) with batches of 60 into 64 inputs failing with
    'the sample-space matrix is not positive definite (NaN in the design?)': the sample-space
    matrix is then numerically singular, and the W-step now takes the primal form."""
    from sklearn.datasets import load_digits

    from liftnet import mlp

    X = torch.tensor(load_digits().data[:200] / 16.0, dtype=torch.float32)
    y = torch.tensor(load_digits().target[:200])
    res = fit(get_method("fenchel", **hp), mlp("64-8-10", loss="ce"), X, y, epochs=1,
              batch_size=60, progress=False)
    assert all(torch.isfinite(W).all() and torch.isfinite(b).all() for W, b in res.state.params)


def test_the_convolution_step_bound_of_a_zero_or_tiny_kernel_is_zero_or_tiny():
    # review 22: the power iteration divided 0 by 0 for a zero kernel (and for one whose
    # square underflows, e.g. a convolution after dead units), and the X-step then refused
    # its NaN step size; the bound scales with ||W||^2 like a dense layer's
    from liftnet.layers import Conv2d

    layer = Conv2d((2, 6, 5), 3, 3, padding=1)
    g = torch.Generator().manual_seed(0)
    W = torch.randn(layer.weight_shape, generator=g, dtype=torch.float64)
    unit = fenchel_module._op_norm_sq(layer, W, torch.float64)
    A = torch.stack([layer.forward(e[None], W, torch.zeros(3, dtype=torch.float64))[0]
                     for e in torch.eye(layer.input_size, dtype=torch.float64)])
    exact = float(torch.linalg.matrix_norm(A, ord=2)) ** 2
    assert exact <= unit <= 1.06 * exact
    assert fenchel_module._op_norm_sq(layer, torch.zeros_like(W), torch.float64) == 0.0
    tiny = fenchel_module._op_norm_sq(layer, W * 1e-160, torch.float64)
    assert tiny == pytest.approx(unit * 1e-320, rel=1e-2)  # subnormal: few digits left


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_a_zero_convolution_kernel_trains(activation):
    g = torch.Generator().manual_seed(0)
    net = network("1x6x6-conv2k3p1-pool2-conv3k3-4", loss="ce", activation=activation)
    X = torch.rand(8, 36, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (8,), generator=g)
    params = net.init_params(generator=g, scheme="xavier", bias=0.1, dtype=torch.float64)
    params[1] = (torch.zeros_like(params[1][0]), params[1][1])
    res = fit(get_method("fenchel"), net, X, y, epochs=2, params=params, progress=False)
    assert all(np.isfinite(e["objective"]) for e in res.history)
    assert res.history[1]["objective"] <= res.history[0]["objective"] * (1 + 1e-12)


def test_a_scheduled_change_of_the_objective_is_no_restart():
    """A schedule that changes the objective between steps (here a larger lambda, which
    raises it): the restart test compares the extrapolated sweep with the new objective's
    value at x_k, not with the old objective's stored value, so a sweep that lowers the new
    objective is kept (no restart, Nesterov's t keeps growing)."""
    X, y = _regression()
    net = network("6-8-5-3", loss="mse")
    hp = {**FULL_SET_HP, "extrapolation": 0.9}
    first, later = get_method("fenchel", **hp), get_method("fenchel", **{**hp, "lam": 3.0})
    Y = targets_for(net, y, X.dtype)
    state = first.init_state(net, X, Y, generator=torch.Generator().manual_seed(0))
    for k in range(4):
        state = first.step(net, state, X, Y, new_batch=k == 0)
    restarts, t = state.restarts, state.momentum_t
    before = later.objective(net, state, X, Y)
    assert before > state.value  # the stored value is the old objective's, below the new
    state = later.step(net, state, X, Y, new_batch=False)
    after = later.objective(net, state, X, Y)
    assert after <= before
    assert state.restarts == restarts and state.momentum_t > t
    assert state.value == pytest.approx(after, rel=1e-12) and state.value_of == repr(later)


def test_extrapolation_turned_off_and_on_again_starts_anew():
    """A schedule that turns the extrapolation off and back on: the plain sweeps in between
    leave no stale value, previous iterate or momentum behind, so the objective never
    increases."""
    X, y = _regression()
    net = network("6-8-5-3", loss="mse")
    hp = FULL_SET_HP
    fast, plain = get_method("fenchel", extrapolation=0.9, **hp), get_method("fenchel", **hp)
    Y = targets_for(net, y, X.dtype)
    state = fast.init_state(net, X, Y, generator=torch.Generator().manual_seed(0))
    values = []
    for k, method in enumerate([fast] * 5 + [plain] * 20 + [fast] * 5):
        state = method.step(net, state, X, Y, new_batch=k == 0)
        values.append(fast.objective(net, state, X, Y))  # the same objective for both
        if method is plain:
            assert state.previous is None and state.value is None
    assert all(b <= a * (1 + 1e-12) for a, b in zip(values, values[1:], strict=False))
