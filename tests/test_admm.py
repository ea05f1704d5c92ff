"""ADMM of Taylor et al.: every closed-form update satisfies its optimality condition."""

from __future__ import annotations

import copy

import pytest
import torch

from liftnet import fit, get_method, mlp
from liftnet.metrics import targets_for


def _grid_min(f, lo=-8.0, hi=8.0, n=160001):
    u = torch.linspace(lo, hi, n, dtype=torch.float64)
    return f(u).min()


@pytest.mark.parametrize("arch", ["8-12-3", "8-12-6-5-3"])
@pytest.mark.parametrize("multiplier", ["augmented", "bregman", "assign"])
def test_one_iteration_satisfies_every_block_optimality_condition(multiplier, arch, small_data):
    """Every block of every layer (the deeper net checks the hidden layers after the first,
    whose updates use the next layer's old weights and variables)."""
    X, y = small_data[0], small_data[1]
    net = mlp(arch, loss="mse")
    method = get_method("admm", multiplier=multiplier, warmup=1, beta=2.0, gamma=3.0)
    res = fit(method, net, X, y, epochs=3, progress=False)  # past warm-up: lam != 0
    old = copy.deepcopy(res.state)
    assert old.lam.abs().max() > 0
    Y = targets_for(net, y, X.dtype)
    new = method.step(net, res.state, X, Y, new_batch=False)
    beta, gamma = method.beta, method.gamma
    L = len(net.layers)
    ones = torch.ones(len(X), 1, dtype=X.dtype)
    shift = old.lam / beta if multiplier == "augmented" else 0.0
    for l in range(L - 1):  # the hidden layers, first to last
        a_in = X if l == 0 else new.a[l - 1]
        W, b = new.params[l]
        # W_l <- z_l pinv(a_{l-1}): normal equations of least squares with an intercept
        Aa = torch.cat([a_in, ones], 1)
        assert (Aa.T @ (a_in @ W.T + b - old.z[l])).abs().max() < 1e-8
        # a_l: beta (a W_{l+1}^T + b_{l+1} - z_{l+1} - shift) W_{l+1} + gamma (a - relu(z_l))
        # = 0, with the next layer's old weights and z (and the shift at the output only)
        Wn, bn = old.params[l + 1]
        s = shift if l + 1 == L - 1 else 0.0
        a = new.a[l]
        grad = beta * (a @ Wn.T + bn - old.z[l + 1] - s) @ Wn + gamma * (a - torch.relu(old.z[l]))
        assert grad.abs().max() < 1e-9
        # z_l: entry-wise global minimum of gamma/2 (a - relu(z))^2 + beta/2 (z - m)^2
        m_l = a_in @ W.T + b
        for i, j in [(0, 0), (3, 5), (7, 4), (10, 2), (42, 1)]:
            j %= a.shape[1]
            av, mv, z = float(a[i, j]), float(m_l[i, j]), new.z[l][i, j]
            f = lambda u, a=av, m=mv: gamma / 2 * (a - torch.relu(u)) ** 2 + beta / 2 * (u - m) ** 2  # noqa: E731
            assert float(f(z.reshape(1))) <= float(_grid_min(f)) + 1e-7
    # W_L: least squares of z_L (+ lam / beta when the multiplier is coupled) on a_{L-1}
    a_last = new.a[L - 2]
    W2, b2 = new.params[-1]
    Aa = torch.cat([a_last, ones], 1)
    assert (Aa.T @ (a_last @ W2.T + b2 - old.z[-1] - shift)).abs().max() < 1e-8
    # z_L: (z - Y) + lam + beta (z - m) = 0 with the multiplier before its update
    m2 = a_last @ W2.T + b2
    zL = new.z[-1]
    torch.testing.assert_close(zL - Y + old.lam + beta * (zL - m2), torch.zeros_like(zL),
                               atol=1e-10, rtol=0)
    # the multiplier: accumulated, or assigned by the public reimplementation
    expected = beta * (zL - m2) + (0 if multiplier == "assign" else old.lam)
    torch.testing.assert_close(new.lam, expected)


def test_warmup_keeps_the_multiplier_at_zero(small_data):
    X, y = small_data[0], small_data[1]
    res = fit(get_method("admm", warmup=4), mlp("8-12-3", loss="mse"), X, y, epochs=4,
              progress=False)
    assert torch.count_nonzero(res.state.lam) == 0
    res = fit(get_method("admm", warmup=4), mlp("8-12-3", loss="mse"), X, y, epochs=5,
              progress=False)
    assert torch.count_nonzero(res.state.lam) > 0


def test_without_bias_the_biases_stay_zero(small_data):
    X, y = small_data[0], small_data[1]
    res = fit(get_method("admm", bias=False), mlp("8-12-6-3", loss="mse"), X, y, epochs=4,
              progress=False)
    assert all(torch.count_nonzero(b) == 0 for _, b in res.state.params)


@pytest.mark.parametrize("bias", [True, False])
def test_weight_decay_makes_every_w_step_a_ridge_regression(bias, small_data):
    """rho > 0: W_l <- argmin beta/2 ||z_l - a W^T - b||^2 + rho/2 ||W||^2 (the bias not
    decayed), i.e. the normal equations with alpha = rho / beta; rho = 0 is the paper's."""
    X, y = small_data[0], small_data[1]
    net = mlp("8-12-3", loss="mse")
    method = get_method("admm", rho=0.7, beta=2.0, warmup=1, bias=bias)
    res = fit(method, net, X, y, epochs=3, progress=False)
    old = copy.deepcopy(res.state)
    new = method.step(net, res.state, X, targets_for(net, y, X.dtype), new_batch=False)
    alpha = method.rho / method.beta
    for l, (a_in, target) in enumerate([(X, old.z[0]),
                                        (new.a[0], old.z[1] + old.lam / method.beta)]):
        W, b = new.params[l]
        resid = a_in @ W.T + b - target
        torch.testing.assert_close(a_in.T @ resid + alpha * W.T, torch.zeros_like(W.T),
                                   atol=1e-8, rtol=0)
        if bias:
            assert resid.sum(0).abs().max() < 1e-8
    # the objective counts the decay: rho/2 sum ||W||^2 / N on top of the rho = 0 value
    plain = get_method("admm", beta=2.0, warmup=1, bias=bias)
    reg = sum(0.5 * 0.7 * float((W**2).sum()) for W, _ in new.params) / len(X)
    assert method.objective(net, new, X, targets_for(net, y, X.dtype)) == pytest.approx(
        plain.objective(net, new, X, targets_for(net, y, X.dtype)) + reg, rel=1e-12)


def test_a_state_stepped_with_another_rho_or_bias_rebuilds_the_cached_operator(small_data):
    """The first layer's least-squares operator is cached with the state; a method with
    another weight decay or intercept must not reuse it."""
    X, y = small_data[0], small_data[1]
    net = mlp("8-12-3", loss="mse")
    res = fit(get_method("admm", warmup=1), net, X, y, epochs=2, progress=False)
    Y = targets_for(net, y, X.dtype)
    for hp in ({"rho": 0.7}, {"rho": 0.7, "bias": False}, {"rho": 2.0, "bias": False}):
        method = get_method("admm", warmup=1, **hp)
        state = copy.deepcopy(res.state)
        target = state.z[0].clone()
        W, b = method.step(net, state, X, Y, new_batch=False).params[0]
        resid = X @ W.T + b - target
        torch.testing.assert_close(X.T @ resid + hp["rho"] / method.beta * W.T,
                                   torch.zeros_like(W.T), atol=1e-8, rtol=0)
        assert hp.get("bias", True) or torch.count_nonzero(b) == 0
        res.state = state  # the next setting starts from this one's cache


@pytest.mark.parametrize("multiplier, rho", [("augmented", 0.0), ("bregman", 0.7)])
def test_objective_is_the_augmented_lagrangian_of_the_module_docstring(multiplier, rho,
                                                                       small_data):
    """After a step past the warm-up (lam != 0), the objective is, per sample (N = 200),
    A = 1/2 ||z_L - Y||^2 + <lam, r_L> + beta/2 ||r_L||^2, r_L = z_L - a_{L-1} W_L^T - b_L,
        + sum_{l<L} [beta/2 ||z_l - a_{l-1} W_l^T - b_l||^2 + gamma/2 ||a_l - relu(z_l)||^2]
        + rho/2 sum_l ||W_l||^2  (a_0 = X), evaluated in numpy on the state's variables."""
    import numpy as np

    X, y = small_data[0], small_data[1]
    net = mlp("8-12-6-3", loss="mse")
    method = get_method("admm", multiplier=multiplier, warmup=1, beta=2.0, gamma=3.0, rho=rho)
    res = fit(method, net, X, y, epochs=3, progress=False)
    Y = targets_for(net, y, X.dtype)
    state = method.step(net, res.state, X, Y, new_batch=False)
    assert state.lam.abs().max() > 1e-3
    beta, gamma = 2.0, 3.0
    npy = lambda t: t.detach().double().numpy()  # noqa: E731
    z, a, lam = [npy(t) for t in state.z], [npy(t) for t in state.a], npy(state.lam)
    Ws = [(npy(W), npy(b)) for W, b in state.params]
    Yn = npy(Y)
    ins = [npy(X), *a]  # a_0 = X, a_1, a_2
    L = len(Ws)
    assert len(z) == L and len(a) == L - 1
    r = [z[l] - (ins[l] @ Ws[l][0].T + Ws[l][1]) for l in range(L)]
    A = 0.5 * np.sum((z[-1] - Yn) ** 2) + np.sum(lam * r[-1]) + beta / 2 * np.sum(r[-1] ** 2)
    for l in range(L - 1):
        A += beta / 2 * np.sum(r[l] ** 2) + gamma / 2 * np.sum((a[l] - np.maximum(z[l], 0)) ** 2)
    A += rho / 2 * sum(np.sum(W**2) for W, _ in Ws)
    lagrange_term = abs(np.sum(lam * r[-1])) / len(X)
    value = method.objective(net, state, X, Y)
    assert value == pytest.approx(A / len(X), rel=1e-10, abs=1e-12)
    # the multiplier's term is not lost in the tolerance
    assert lagrange_term > 1e-6 * abs(value)
