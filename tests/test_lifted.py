"""The classic lifted network (paper 004): monotone BCD, prediction rule (12), capabilities."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from liftnet import Lifted, fit, lifted_predict, mlp
from liftnet.metrics import targets_for
from liftnet.solvers import project_simplex


@pytest.mark.parametrize("penalty", ["shifted", "squared"])
@pytest.mark.parametrize("loss", ["ce", "mse"])
@pytest.mark.parametrize("arch,activation", [("8-12-3", "relu"), ("8-10-6-3", "relu"),
                                              ("8-10-3", "hardtanh")])
def test_bcd_sweeps_never_increase_the_objective(penalty, loss, arch, activation, small_data):
    X, y = small_data[0], small_data[1]
    net = mlp(arch, activation=activation, loss=loss)
    method = Lifted(lam=2.0, lam_out=0.5, rho=1e-3, penalty=penalty, tol=1e-8, max_inner=2000)
    Y = targets_for(net, y, X.dtype)
    state = method.init_state(net, X, Y, generator=torch.Generator().manual_seed(0))
    values = []
    for i in range(8):
        state = method.step(net, state, X, Y, new_batch=(i == 0))
        values.append(method.objective(net, state, X, Y))
    diffs = np.diff(values)
    assert (diffs <= 1e-9 * max(1.0, abs(values[0]))).all(), values
    assert values[-1] < values[0]


@pytest.mark.parametrize("penalty", ["shifted", "squared"])
def test_minibatch_sweeps_within_a_batch_never_increase(penalty, small_data):
    X, y = small_data[0], small_data[1]
    net = mlp("8-12-3")
    method = Lifted(lam=1.0, gamma=0.5, penalty=penalty, tol=1e-8, max_inner=2000)
    Y = targets_for(net, y, X.dtype)
    state = method.init_state(net, X, Y, generator=torch.Generator().manual_seed(0))
    state = method.step(net, state, X[:50], Y[:50], new_batch=True)  # first batch
    state = method.step(net, state, X[50:100], Y[50:100], new_batch=True)  # sets the prox centre
    assert state.prev is not None
    values = [method.objective(net, state, X[50:100], Y[50:100])]
    for _ in range(5):
        state = method.step(net, state, X[50:100], Y[50:100], new_batch=False)
        values.append(method.objective(net, state, X[50:100], Y[50:100]))
    assert (np.diff(values) <= 1e-9 * abs(values[0])).all(), values


def test_lifted_method_refuses_activations_without_box_divergence():
    net = mlp("8-12-3", activation="sigmoid")
    X = torch.randn(10, 8)
    with pytest.raises(ValueError, match="Lifted does not support activation 'sigmoid'"):
        fit(Lifted(), net, X, torch.zeros(10, dtype=torch.long), epochs=1, progress=False)


def _trained(small_data, loss="ce", arch="8-12-3"):
    net = mlp(arch, loss=loss)
    res = fit(Lifted(lam=1.0), net, small_data[0], small_data[1], epochs=5, progress=False)
    return net, res.state.params


def _rule_objective(net, params, X, xs, penalty="squared"):
    """Objective of the prediction rule (12) with lambda factored out, by plain autograd."""
    chain = [X, *xs]
    val = 0.0
    for l in range(net.n_hidden):
        U = net.layers[l].forward(chain[l], *params[l])
        val = val + ((xs[l] - U) ** 2).sum()
        if penalty == "shifted":
            val = val - (torch.clamp(U, max=0.0) ** 2).sum()
    U = net.layers[-1].forward(xs[-1], *params[-1])
    if net.loss == "ce":
        val = val + ((U - project_simplex(U)) ** 2).sum()
    return val


@pytest.mark.parametrize("penalty", ["squared", "shifted"])
@pytest.mark.parametrize("loss,arch", [("ce", "8-12-3"), ("mse", "8-12-3"), ("ce", "8-10-6-3")])
def test_lifted_prediction_rule_satisfies_optimality_conditions(small_data, loss, arch, penalty):
    net, params = _trained(small_data, loss, arch)
    X = small_data[2]
    out, xs = lifted_predict(net, params, X, penalty=penalty, tol=1e-10, max_iter=20000)
    xs = [x.detach().clone().requires_grad_() for x in xs]
    _rule_objective(net, params, X, xs, penalty).backward()
    for x in xs:  # KKT for x >= 0: grad >= 0, x >= 0, x * grad = 0
        g = x.grad
        assert (x >= 0).all()
        assert g.min() > -1e-5
        assert (x * g).abs().max() < 1e-5
    # and it is a minimum no worse than the feed-forward point
    acts, _ = net.forward_all(params, X)
    rule = _rule_objective(net, params, X, xs, penalty)
    assert rule <= _rule_objective(net, params, X, acts, penalty) + 1e-9
    if penalty == "shifted" and loss == "mse":  # every term is zero at the feed-forward point
        torch.testing.assert_close(out, net.forward(params, X), atol=1e-6, rtol=0)


def test_lifted_prediction_rule_against_cvxpy(small_data):
    cp = pytest.importorskip("cvxpy", reason="cvxpy is the independent reference here")
    net, params = _trained(small_data, "mse", "8-10-6-3")
    X = small_data[2][:5]
    _, xs = lifted_predict(net, params, X, penalty="squared", tol=1e-12, max_iter=50000)
    (W0, b0), (W1, b1), _ = [(W.numpy(), b.numpy()) for W, b in params]
    for i in range(len(X)):
        x1, x2 = cp.Variable(10), cp.Variable(6)
        u0 = W0 @ X[i].numpy() + b0
        obj = cp.sum_squares(x1 - u0) + cp.sum_squares(x2 - W1 @ x1 - b1)
        cp.Problem(cp.Minimize(obj), [x1 >= 0, x2 >= 0]).solve()
        np.testing.assert_allclose(xs[0][i].numpy(), x1.value, atol=1e-4)
        np.testing.assert_allclose(xs[1][i].numpy(), x2.value, atol=1e-4)


def test_lifted_prediction_rule_equals_feed_forward_when_all_preactivations_positive():
    g = torch.Generator().manual_seed(1)
    net = mlp("5-7-4-3", loss="mse")
    params = [(torch.rand(7, 5, generator=g, dtype=torch.float64), torch.rand(7, generator=g,
               dtype=torch.float64) + 0.1),
              (torch.rand(4, 7, generator=g, dtype=torch.float64), torch.rand(4, generator=g,
               dtype=torch.float64) + 0.1),
              (torch.randn(3, 4, generator=g, dtype=torch.float64), torch.zeros(3,
               dtype=torch.float64))]
    X = torch.rand(20, 5, generator=g, dtype=torch.float64)
    out, xs = lifted_predict(net, params, X, penalty="squared", tol=1e-12)
    torch.testing.assert_close(out, net.forward(params, X))
    acts, pre = net.forward_all(params, X)
    assert all((U > 0).all() for U in pre[:-1])
    for a, x in zip(acts, xs, strict=True):
        torch.testing.assert_close(a, x)
