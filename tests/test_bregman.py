"""Lifted Bregman training (paper 001): the blocks against scipy, the objective against its
formula, every proximal activation, the linear-activation share and the CLI contract."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
import torch
from scipy.optimize import brentq, minimize
from scipy.special import expit, softmax
from torch import nn

from conftest import teacher_data
from liftnet import fit, load_model, mlp
from liftnet.activations import Activation, register_activation
from liftnet.cli import main as cli_main
from liftnet.methods.bregman import Bregman
from liftnet.metrics import linear_share, targets_for


def _problem(seed=0, n=30, spec="5-6-4-3", loss="ce", activation="relu"):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, int(spec.split("-")[0]), generator=g, dtype=torch.float64)
    k = int(spec.split("-")[-1])
    y = torch.randint(0, k, (n,), generator=g)
    net = mlp(spec, loss=loss, activation=activation)
    Y = targets_for(net, y, X.dtype) if loss == "ce" else torch.randn(n, k, generator=g,
                                                                       dtype=X.dtype)
    return net, X, Y, g


def _x_objective(net, params, X, Y, acts):
    """E(W; X) of (2) for fixed W as a function of the hidden variables (independent code)."""
    xs = [X, *acts, Y]
    total = 0.0
    for l, (W, b) in enumerate(params):
        U = xs[l] @ W.T + b
        T = xs[l + 1]
        if l == len(params) - 1:
            total = total + (torch.logsumexp(U, 1) - (U * T).sum(1)).sum()
        else:  # relu: B(v, u) = v^2/2 + relu(u)^2/2 - u v on v >= 0
            total = total + (T**2 / 2 + torch.relu(U) ** 2 / 2 - U * T).sum()
    return total / X.shape[0]


def test_x_steps_reach_the_scipy_minimiser():
    net, X, Y, g = _problem()
    method = Bregman(x_steps=3000, w_steps=1, tol=1e-12)
    state = method.init_state(net, X, Y, generator=g)
    params = [(W.clone(), b.clone()) for W, b in state.params]
    state = method.step(net, state, X, Y)
    sizes = [a.numel() for a in state.acts]
    shapes = [a.shape for a in state.acts]

    def f(z):
        zt = torch.tensor(z, requires_grad=True)
        acts = [p.reshape(s) for p, s in zip(zt.split(sizes), shapes, strict=True)]
        val = _x_objective(net, params, X, Y, acts)
        val.backward()
        return float(val.detach()), zt.grad.numpy()

    z0 = torch.cat([a.flatten() for a in net.forward_all(params, X)[0]]).numpy()
    ref = minimize(f, z0, jac=True, method="L-BFGS-B", bounds=[(0, None)] * len(z0),
                   options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 10000})
    got = torch.cat([a.flatten() for a in state.acts]).numpy()
    assert f(got)[0] <= ref.fun + 1e-9
    np.testing.assert_allclose(got, ref.x, atol=1e-4)


@pytest.mark.parametrize("spec,n,loss", [("5-6-4-3", 30, "ce"), ("40-6-3", 20, "ce"),
                                         ("40-3", 20, "mse"), ("5-3", 30, "mse")])
def test_w_steps_solve_the_proximal_regression(spec, n, loss):
    """After the X-steps, each (W_l, b_l) minimises the subproblem of the module docstring
    (with fewer samples than inputs the steps run in the row space, by Woodbury; the
    identity output layer of mse once overwrote U there)."""
    net, X, Y, g = _problem(seed=1, spec=spec, n=n, loss=loss)
    method = Bregman(x_steps=3, w_steps=400, tol=1e-14, tau=2.0, rho=0.05)
    state = method.init_state(net, X, Y, generator=g)
    Wk = [(W.clone(), b.clone()) for W, b in state.params]
    state = method.step(net, state, X, Y)
    xs = [X, *state.acts, Y]
    for l, (Wl, bl) in enumerate(state.params):
        shape = Wl.shape

        def f(z, l=l, shape=shape):
            zt = torch.tensor(z, requires_grad=True)
            W, b = zt[: shape[0] * shape[1]].reshape(shape), zt[shape[0] * shape[1]:]
            U = xs[l] @ W.T + b
            T = xs[l + 1]
            if l == len(state.params) - 1 and loss == "mse":
                link = (U ** 2 / 2 - U * T).sum()
            elif l == len(state.params) - 1:
                link = (torch.logsumexp(U, 1) - (U * T).sum(1)).sum()
            else:
                link = (torch.relu(U) ** 2 / 2 - U * T).sum()
            val = link / X.shape[0] + ((W - Wk[l][0]).square().sum()
                                       + (b - Wk[l][1]).square().sum()) / (2 * method.tau)
            val = val + method.rho / 2 * W.square().sum()
            val.backward()
            return float(val.detach()), zt.grad.numpy()

        z0 = torch.cat([Wk[l][0].flatten(), Wk[l][1]]).numpy()
        ref = minimize(f, z0, jac=True, method="L-BFGS-B",
                       options={"ftol": 1e-15, "gtol": 1e-11, "maxiter": 5000})
        got = torch.cat([Wl.flatten(), bl]).numpy()
        assert f(got)[0] <= ref.fun + 1e-9
        np.testing.assert_allclose(got, ref.x, atol=1e-5)


def test_objective_formula_at_the_feed_forward_point():
    """With X from the feed-forward pass every hidden penalty is 0: E = mean CE + rho/2 ||W||^2."""
    net, X, Y, g = _problem(seed=2)
    method = Bregman(rho=0.3)
    state = method.init_state(net, X, Y, generator=g)
    logits = net.forward(state.params, X)
    want = float(torch.nn.functional.cross_entropy(logits, Y.argmax(1)))
    want += 0.15 * sum(float(W.square().sum()) for W, _ in state.params)
    assert method.objective(net, state, X, Y) == pytest.approx(want, rel=1e-12)
    # and the squared loss: 1/2 ||Y - U||^2 per sample
    net2, X2, Y2, g2 = _problem(seed=3, loss="mse")
    m2 = Bregman(rho=0.0, loss_weight=3.0)
    s2 = m2.init_state(net2, X2, Y2, generator=g2)
    U = net2.forward(s2.params, X2)
    want2 = 3.0 * float(0.5 * (U - Y2).square().sum(1).mean())
    assert m2.objective(net2, s2, X2, Y2) == pytest.approx(want2, rel=1e-12)


@pytest.mark.parametrize("loss_weight", [1.0, 2.5])
def test_objective_formula_at_the_lifted_point(loss_weight):
    """After a step the lifted X_l differ from the feed-forward ones, so every hidden Bregman
    penalty counts: E = 1/s sum_i [sum_l L_Psi + c L_out] + rho/2 sum_l ||W_l||^2 (the module
    docstring's (2); rho on the weights, not the biases)."""
    net, X, Y, g = _problem(seed=5)
    method = Bregman(rho=0.3, tau=1.0, loss_weight=loss_weight, x_steps=5, w_steps=2)
    state = method.init_state(net, X, Y, generator=g)
    state = method.step(net, state, X, Y)
    params, acts = state.params, state.acts
    ff = net.forward_all(params, X)[0]
    assert all(float((a - f).abs().max()) > 1e-3 for a, f in zip(acts, ff, strict=True))
    # (2) with c = 1, then (c - 1) times the output's term (mean cross-entropy) added
    want = float(_x_objective(net, params, X, Y, acts))
    W_L, b_L = params[-1]
    out = float(torch.nn.functional.cross_entropy(acts[-1] @ W_L.T + b_L, Y.argmax(1)))
    hidden = want - out
    assert hidden > 1e-3  # the hidden penalties are not all zero here
    want += (loss_weight - 1.0) * out
    want += 0.15 * sum(float(W.square().sum()) for W, _ in params)
    assert method.objective(net, state, X, Y) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "hardtanh", "soft_threshold",
                                        "sigmoid", "tanh", "identity"])
def test_every_proximal_activation_trains_monotonically(activation, small_data):
    Xtr, ytr, Xte, yte = small_data
    net = mlp("8-12-3", activation=activation)
    res = fit(Bregman(tau=1.0), net, Xtr, ytr, epochs=15, batch_size=0, X_test=Xte,
              y_test=yte, progress=False)
    objs = [h["objective"] for h in res.history]
    assert all(b <= a * (1 + 1e-9) + 1e-12 for a, b in zip(objs, objs[1:], strict=False))
    assert objs[-1] < objs[0]
    majority = float(torch.bincount(ytr).max()) / len(ytr)  # 0.585: always the largest class
    assert res.history[-1]["train_accuracy"] > majority + 0.1


def test_learns_the_teacher_in_batches(small_data):
    Xtr, ytr, Xte, yte = small_data
    res = fit(Bregman(), mlp("8-12-3"), Xtr, ytr, epochs=30, batch_size=50, X_test=Xte,
              y_test=yte, progress=False)
    assert res.history[-1]["train_accuracy"] >= 0.85
    assert res.history[-1]["test_accuracy"] >= 0.75


@pytest.mark.parametrize("batch_size", [0, 50])
def test_trains_a_network_without_hidden_layers(batch_size, small_data):
    # no lifted activations: the X-steps have nothing to update, the W-steps train the layer
    Xtr, ytr, Xte, yte = small_data
    res = fit(Bregman(tau=1.0), mlp("8-3"), Xtr, ytr, epochs=10, batch_size=batch_size,
              X_test=Xte, y_test=yte, progress=False)
    objs = [h["objective"] for h in res.history]
    if batch_size == 0:
        assert all(b <= a * (1 + 1e-9) + 1e-12 for a, b in zip(objs, objs[1:], strict=False))
    assert objs[-1] < objs[0] and res.state.inner == 0
    majority = float(torch.bincount(ytr).max()) / len(ytr)
    assert res.history[-1]["train_accuracy"] > majority + 0.1


def test_refuses_activations_that_are_not_proximal_maps():
    with pytest.raises(ValueError, match="Bregman does not support activation 'sign'"):
        Bregman().init_state(mlp("4-3-2", activation="sign"), torch.zeros(2, 4),
                             torch.zeros(2, 2))
    with pytest.raises(ValueError, match="Conv2d"):
        from liftnet.graph import network
        net = network("1x8x8-conv2k3-4")
        Bregman().init_state(net, torch.zeros(2, 64), torch.zeros(2, 4))


@pytest.mark.parametrize("bad", [{"tau": 0.0}, {"tau": -1.0}, {"x_steps": 0}, {"w_steps": 0},
                                 {"alternations": 0}, {"rho": -1e-3}, {"loss_weight": 0.0},
                                 {"tol": float("nan")}, {"init": "zeros"},
                                 {"bias_init": float("inf")}])
def test_invalid_hyperparameters(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        Bregman(**bad)


def test_linear_share_matches_its_definition():
    net, X, _, g = _problem(seed=4)
    params = net.init_params(generator=g, dtype=X.dtype)
    shares = linear_share(net, params, X, batch_size=7)  # chunks must not change the figure
    h = X
    for l, (W, b) in enumerate(params[:-1]):
        U = h @ W.T + b
        assert shares[l] == pytest.approx(float((U > 0).double().mean()), abs=1e-15)
        h = torch.relu(U)
    assert len(shares) == net.n_hidden
    sig = dataclasses.replace(net, layers=tuple(
        dataclasses.replace(la, activation="sigmoid") if i < net.n_hidden else la
        for i, la in enumerate(net.layers)))
    assert linear_share(sig, params, X) == [None] * net.n_hidden
    # a box activation (built in or registered) is the identity on the interior of its box
    U = X @ params[0][0].T + params[0][1]
    for name, inside in (("hardtanh", U.abs() < 1), ("piecewise_sigmoid", (U > 0) & (U < 1)),
                         ("identity", U == U), ("leaky_relu", U > 0)):
        one = dataclasses.replace(net, layers=(
            dataclasses.replace(net.layers[0], activation=name), *net.layers[1:]))
        assert linear_share(one, params, X)[0] == pytest.approx(
            float(inside.double().mean()), abs=1e-15)


def test_cli_writes_linear_share(tmp_path, monkeypatch):
    import liftnet.data as datamod
    X, y = teacher_data(n=300, dtype=torch.float32)

    def fake_load(name, **kw):
        return datamod.Dataset(name=name, X_train=X[:240], y_train=y[:240], X_test=X[240:],
                               y_test=y[240:], n_classes=3)

    monkeypatch.setattr(datamod, "load_dataset", fake_load)
    out, model = tmp_path / "b.json", tmp_path / "b.pt"
    cli_main(["train", "--method", "bregman", "--arch", "8-10-10-3", "--dataset", "mnist",
              "--epochs", "2", "--batch-size", "40", "--seed", "0", "--quiet", "--out", str(out),
              "--tau", "3", "--x-steps", "5", "--save", str(model)])
    rec = json.loads(out.read_text())
    assert rec["method"] == "bregman" and rec["config"]["tau"] == 3.0
    assert rec["config"]["x_steps"] == 5
    assert "pre-activation > 0" in rec["linear_share_definition"]
    net, params, _ = load_model(model)  # the shares of the trained weights, on the test set
    assert len(rec["linear_share"]) == 2
    assert rec["linear_share"] == linear_share(net, params, X[240:])
    h, expected = X[240:].double(), []
    for W, b in params[:-1]:  # ReLU: the share of (unit, sample) pairs with pre-activation > 0
        U = h @ W.double().T + b.double()
        expected.append(float((U > 0).double().mean()))
        h = U.clamp_min(0)
    assert rec["linear_share"] == pytest.approx(expected, abs=2e-3)  # float32 sign flips at 0


# One step against the module docstring written out in numpy / scipy (independent of the
# method's code): step sizes, sweep order, the prox of mu Phi, the W-steps' majoriser.

ALPHA_LEAKY = 0.01
LIP = {"relu": 1.0, "leaky_relu": 1.0, "sigmoid": 0.25, "tanh": 1.0, "identity": 1.0,
       "softmax": 0.5}


def _np_sigma(name, u):
    if name == "relu":
        return np.maximum(u, 0)
    if name == "leaky_relu":
        return np.maximum(ALPHA_LEAKY * u, u)
    if name == "sigmoid":
        return expit(u)
    if name == "tanh":
        return np.tanh(u)
    if name == "identity":
        return u
    if name == "softmax":
        return softmax(u, axis=1)
    raise AssertionError(name)


def _np_prox_phi(name, v, mu):
    """prox_{mu Phi}(v) = argmin_x mu Phi(x) + (x - v)^2 / 2, i.e. x + mu sigma^{-1}(x) = v."""
    if name == "relu":
        return np.maximum(v, 0) / (1 + mu)
    if name == "identity":
        return v / (1 + mu)
    if name == "leaky_relu":
        return np.where(v >= 0, v / (1 + mu), v / (1 + mu / ALPHA_LEAKY))
    # x = sigma(z) with z the root of sigma(z) + mu z = v (increasing in z), bracketed by
    # the range of sigma: sigmoid in (0, 1), tanh in (-1, 1)
    if name == "sigmoid":
        f, lo_r, hi_r = expit, 0.0, 1.0
    elif name == "tanh":
        f, lo_r, hi_r = np.tanh, -1.0, 1.0
    else:
        raise AssertionError(name)
    out = np.empty_like(v)
    for i, vi in np.ndenumerate(v):
        z = brentq(lambda z, vi=vi: f(z) + mu * z - vi, (vi - hi_r) / mu - 1e-9,
                   (vi - lo_r) / mu + 1e-9, xtol=1e-14, rtol=4 * np.finfo(float).eps,
                   maxiter=500)
        out[i] = f(z)
    return out


def _reference_step(params, X, Y, acts_names, out_act, *, tau, rho, c_out, x_steps, w_steps,
                    alternations):
    """One step of the module docstring, in numpy: X re-initialised by the feed-forward pass,
    then ``alternations`` rounds of ``x_steps`` backward sweeps (Gauss-Seidel, X_L .. X_1)
    and ``w_steps`` majorised steps (W_l, b_l) <- (W_l, b_l) - g_l H_l^{-1}."""
    L = len(params)
    names = [*acts_names, out_act]  # activation applied to U_l
    weights = [1.0] * (L - 1) + [c_out]
    Wa = [np.concatenate([W, b[:, None]], 1) for W, b in params]
    Wk = [w.copy() for w in Wa]
    xs = [X]
    for l in range(L - 1):
        xs.append(_np_sigma(names[l], xs[l] @ Wa[l][:, :-1].T + Wa[l][:, -1]))
    xs.append(Y)
    s = X.shape[0]
    for _ in range(alternations):
        for _ in range(x_steps):
            for l in range(L - 1, 0, -1):
                W, b = Wa[l][:, :-1], Wa[l][:, -1]
                Wp, bp = Wa[l - 1][:, :-1], Wa[l - 1][:, -1]
                G = weights[l] * (_np_sigma(names[l], xs[l] @ W.T + b) - xs[l + 1])
                Uprev = xs[l - 1] @ Wp.T + bp
                mu = 1.0 / (LIP[names[l]] * weights[l] * np.linalg.norm(W, 2) ** 2)
                xs[l] = _np_prox_phi(names[l - 1], xs[l] - mu * (G @ W - Uprev), mu)
        for l in range(L):
            A = np.concatenate([xs[l], np.ones((s, 1))], 1)
            H = LIP[names[l]] * weights[l] / s * A.T @ A + (1 / tau + rho) * np.eye(A.shape[1])
            for _ in range(w_steps):
                g = weights[l] / s * (_np_sigma(names[l], A @ Wa[l].T) - xs[l + 1]).T @ A
                g += (Wa[l] - Wk[l]) / tau
                g[:, :-1] += rho * Wa[l][:, :-1]
                Wa[l] = Wa[l] - np.linalg.solve(H, g.T).T
    return xs[1:-1], [(w[:, :-1], w[:, -1]) for w in Wa]


CASES = [
    # spec, n, loss, activation: the Cholesky form (s >= n + 1) and the row space (s < n + 1)
    ("5-6-4-3", 30, "ce", "relu"),
    ("12-5-3", 8, "ce", "sigmoid"),
    ("4-5-5-2", 11, "mse", "tanh"),
    ("9-7-3", 6, "mse", "leaky_relu"),
]


@pytest.mark.parametrize("spec,n,loss,activation", CASES)
@pytest.mark.parametrize("loss_weight", [1.0, 2.5])
def test_step_matches_the_docstring_updates(spec, n, loss, activation, loss_weight):
    """One full step (2 alternations of 2 backward X-sweeps and 2 W-steps), against the update
    rules of the module docstring written out in numpy/scipy: step sizes mu_l = 1/(c_l
    ||W_l||_2^2) with c_l the Lipschitz constant of sigma_{l+1} (sigmoid 1/4, softmax 1/2) times
    the layer's weight, the prox of mu Phi, g_l, H_l with the 1/s scaling, the centre W^k / tau
    and rho on the weights only."""
    g = torch.Generator().manual_seed(7)
    k = int(spec.split("-")[-1])
    X = torch.randn(n, int(spec.split("-")[0]), generator=g, dtype=torch.float64)
    net = mlp(spec, loss=loss, activation=activation)
    if loss == "ce":
        Y = targets_for(net, torch.randint(0, k, (n,), generator=g), X.dtype)
    else:
        Y = torch.randn(n, k, generator=g, dtype=X.dtype)
    method = Bregman(tau=0.7, rho=0.05, loss_weight=loss_weight, x_steps=2, w_steps=2,
                     alternations=2, tol=1e-15, bias_init=0.1)
    state = method.init_state(net, X, Y, generator=g)
    params0 = [(W.numpy().copy(), b.numpy().copy()) for W, b in state.params]
    state = method.step(net, state, X, Y)
    acts, params = _reference_step(
        params0, X.numpy(), Y.numpy(), [la.activation for la in net.layers[:-1]],
        "softmax" if loss == "ce" else "identity", tau=0.7, rho=0.05, c_out=loss_weight,
        x_steps=2, w_steps=2, alternations=2)
    for a, r in zip(state.acts, acts, strict=True):
        np.testing.assert_allclose(a.numpy(), r, rtol=1e-9, atol=1e-10)
    for (W, b), (Wr, br) in zip(state.params, params, strict=True):
        np.testing.assert_allclose(W.numpy(), Wr, rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(b.numpy(), br, rtol=1e-9, atol=1e-10)
    assert state.inner == 4 and state.step == 1  # 2 rounds of 2 sweeps


def test_each_batch_restarts_x_from_the_feed_forward_pass():
    """Implicit SGD: for a new mini-batch X is re-initialised by the feed-forward pass (module
    docstring), even when the batch has the same number of rows as the last one: a step on
    batch B after a step on batch A equals a step on B from the same weights with a fresh
    state; with new_batch=False the lifted X of the last call are kept."""
    g = torch.Generator().manual_seed(3)
    net = mlp("5-6-4-3")
    XA, XB = (torch.randn(20, 5, generator=g, dtype=torch.float64) for _ in range(2))
    yA, yB = (targets_for(net, torch.randint(0, 3, (20,), generator=g), torch.float64)
              for _ in range(2))
    method = Bregman(tau=1.0)
    state = method.step(net, method.init_state(net, XA, yA, generator=g), XA, yA)
    fresh = method.init_state(net, XB, yB, params=state.params)
    want = method.step(net, fresh, XB, yB)
    got = method.step(net, state, XB, yB)  # new_batch defaults to True
    for (W, b), (Wr, br) in zip(got.params, want.params, strict=True):
        torch.testing.assert_close(W, Wr, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(b, br, rtol=1e-12, atol=1e-12)


def test_x_sweeps_stop_at_the_relative_tolerance():
    """The X-loop stops at the first sweep that moves X by at most tol relative to ||X||
    (squared norms compared with tol^2), counting that sweep; with a moderate tol the number of
    sweeps is the first k at which the reference's k-th sweep moves X by <= tol ||X_start||."""
    g = torch.Generator().manual_seed(5)
    net = mlp("5-6-4-3")
    X = torch.randn(30, 5, generator=g, dtype=torch.float64)
    Y = targets_for(net, torch.randint(0, 3, (30,), generator=g), X.dtype)
    st0 = Bregman(tau=1.0).init_state(net, X, Y, generator=g)
    params0 = [(W.numpy().copy(), b.numpy().copy()) for W, b in st0.params]
    start = net.forward_all(st0.params, X)[0]
    size = math.sqrt(sum(float(a.square().sum()) for a in start))
    # per-sweep moves of the reference (x_steps = k, no W-steps effect on the X-part)
    prev = [a.numpy() for a in start]
    moves = []
    for k in range(1, 60):
        acts, _ = _reference_step(params0, X.numpy(), Y.numpy(), ["relu", "relu"], "softmax",
                                  tau=1.0, rho=1e-4, c_out=1.0, x_steps=k, w_steps=1,
                                  alternations=1)
        moves.append(math.sqrt(sum(float(np.square(a - p).sum())
                                   for a, p in zip(acts, prev, strict=True))))
        prev = acts
    for tol in (1e-2, 1e-3, 1e-4):
        want = next(k + 1 for k, m in enumerate(moves) if m <= tol * size)
        method = Bregman(tau=1.0, tol=tol, x_steps=500, w_steps=1)
        st = method.init_state(net, X, Y, params=st0.params)
        st = method.step(net, st, X, Y)
        assert st.inner == want, (tol, st.inner, want)


@pytest.mark.parametrize("init", ["xavier", "normal", "variance_scaling"])
def test_init_state_uses_the_init_scheme_and_bias_init(init):
    """``init`` and ``bias_init`` reach the initialisation: the same draws as
    net.init_params(scheme=init, bias=bias_init) from the same generator."""
    net = mlp("6-5-4-3")
    X = torch.zeros(4, 6, dtype=torch.float64)
    state = Bregman(init=init, bias_init=-0.7).init_state(
        net, X, torch.zeros(4, 3), generator=torch.Generator().manual_seed(11))
    want = net.init_params(generator=torch.Generator().manual_seed(11), scheme=init, bias=-0.7,
                           dtype=torch.float64)
    for (W, b), (Wr, br) in zip(state.params, want, strict=True):
        assert torch.equal(W, Wr) and torch.equal(b, br)
    # the schemes differ (so a scheme that is ignored is seen)
    other = net.init_params(generator=torch.Generator().manual_seed(11),
                            scheme="normal" if init != "normal" else "xavier", dtype=torch.float64)
    assert not torch.equal(state.params[0][0], other[0][0])


def test_hidden_activations_exclude_softmax():
    assert "softmax" not in Bregman.supported_activations()
    assert set(Bregman.supported_activations()) >= {"relu", "leaky_relu", "hardtanh",
                                                     "soft_threshold", "sigmoid", "tanh",
                                                     "identity"}


def test_step_uses_the_slope_of_a_registered_activation(registries):
    """A registered proximal activation sigma(u) = u / 2 (Psi = x^2 / 2, Phi = x^2, slope 1/2)
    on the hidden layer of 5-6-3 (mse): its slope is the Lipschitz constant c_1 of the W-step
    majoriser H_1 (module docstring), checked against the numpy reference."""
    @dataclass(frozen=True)
    class Half(Activation):
        name: ClassVar[str] = "half"
        slope: ClassVar[float | None] = 0.5

        def map(self, u):
            return 0.5 * u

        def _phi(self, v):
            return v * v

        def conjugate(self, u):
            return 0.25 * u * u

        def inverse(self, v):
            return 2.0 * v

        def torch_module(self):
            return nn.Identity()

    register_activation(Half())
    g = torch.Generator().manual_seed(2)
    X = torch.randn(25, 5, generator=g, dtype=torch.float64)
    Y = torch.randn(25, 3, generator=g, dtype=torch.float64)
    net = mlp("5-6-3", loss="mse", activation="half")
    method = Bregman(tau=0.7, rho=0.05, x_steps=1, w_steps=1, tol=1e-15)
    state = method.init_state(net, X, Y, generator=g)
    W0, b0 = (t.numpy().copy() for t in state.params[0])
    state = method.step(net, state, X, Y)
    # reference for layer 0 (input X fixed): one majorised step with c_0 = 1/2
    A = np.concatenate([X.numpy(), np.ones((25, 1))], 1)
    Wa = np.concatenate([W0, b0[:, None]], 1)
    T = state.acts[0].numpy()
    g0 = (0.5 * A @ Wa.T - T).T @ A / 25
    g0[:, :-1] += 0.05 * W0
    H = 0.5 / 25 * A.T @ A + (1 / 0.7 + 0.05) * np.eye(6)
    want = Wa - np.linalg.solve(H, g0.T).T
    np.testing.assert_allclose(state.params[0][0].numpy(), want[:, :-1], rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(state.params[0][1].numpy(), want[:, -1], rtol=1e-9, atol=1e-11)
