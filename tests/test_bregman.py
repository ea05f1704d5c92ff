"""Lifted Bregman training (paper 001): the blocks against scipy, the objective against its
formula, every proximal activation, the linear-activation share and the CLI contract."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from conftest import teacher_data
from liftnet import fit, load_model, mlp
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
