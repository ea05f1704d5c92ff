"""Proximal BCD of Zeng et al.: every closed-form block update against its optimality condition."""

from __future__ import annotations

import copy

import pytest
import torch

from liftnet import fit, get_method, mlp
from liftnet.metrics import targets_for


@pytest.mark.parametrize("arch", ["8-12-3", "8-12-6-5-3"])
def test_one_sweep_satisfies_every_block_optimality_condition(arch, small_data):
    """Every block of every layer, in the sweep's order (last layer first): a block sees the
    blocks updated before it in the sweep and the old values of the others."""
    X, y = small_data[0], small_data[1]
    net = mlp(arch, loss="mse")
    method = get_method("pbcd", gamma=1.5, rho=0.7, alpha=2.0, init_std=0.3)
    res = fit(method, net, X, y, epochs=2, progress=False)
    old = copy.deepcopy(res.state)
    Y = targets_for(net, y, X.dtype)
    new = method.step(net, res.state, X, Y, new_batch=False)
    g, r, a = method.gamma, method.rho, method.alpha
    L = len(net.layers)
    ones = torch.ones(len(X), 1, dtype=X.dtype)
    zero = 1e-9
    # V_L: (V - Y) + gamma (V - U_L) + alpha (V - V_old) = 0
    VL, UL = new.V[-1], new.U[-1]
    assert ((VL - Y) + g * (VL - old.U[-1]) + a * (VL - old.V[-1])).abs().max() < zero
    # U_L: gamma (U - V_L) + rho (U - V_{L-1} W_L^T - b_L) = 0 with the old V_{L-1}, W_L, b_L
    WLo, bLo = old.params[-1]
    assert (g * (UL - VL) + r * (UL - old.V[L - 2] @ WLo.T - bLo)).abs().max() < zero
    grid = torch.linspace(-10, 10, 200001, dtype=X.dtype)
    for l in range(L - 1, -1, -1):
        x_in = X if l == 0 else old.V[l - 1]  # updated after this layer's blocks
        W, b = new.params[l]
        Wo, bo = old.params[l]
        if l < L - 1:
            # U_l: entry-wise global minimum of gamma/2 (V_l - relu(u))^2 + rho/2 (u - m)^2
            #      + alpha/2 (u - U_old)^2 with the new V_l and m = x_in W_l^T + b_l (old W_l)
            m = x_in @ Wo.T + bo
            for i, j in [(0, 0), (5, 3), (17, 11), (99, 6), (150, 1), (199, 9)]:
                j %= m.shape[1]
                f = lambda u, i=i, j=j, m=m, l=l: (  # noqa: E731
                    g / 2 * (new.V[l][i, j] - torch.relu(u)) ** 2 + r / 2 * (u - m[i, j]) ** 2
                    + a / 2 * (u - old.U[l][i, j]) ** 2)
                assert float(f(new.U[l][i, j])) <= float(f(grid).min()) + 1e-7
        # (W_l, b_l): rho [x 1]^T ([x 1] theta - U_l) + alpha (theta - theta_old) = 0
        xa = torch.cat([x_in, ones], 1)
        theta, theta_old = torch.cat([W, b[:, None]], 1).T, torch.cat([Wo, bo[:, None]], 1).T
        assert (r * xa.T @ (xa @ theta - new.U[l]) + a * (theta - theta_old)).abs().max() < 1e-8
        if l > 0:
            # V_{l-1} (no proximal term): rho (V W_l^T + b_l - U_l) W_l + gamma (V - relu(U_old))
            V = new.V[l - 1]
            grad = r * (V @ W.T + b - new.U[l]) @ W + g * (V - torch.relu(old.U[l - 1]))
            assert grad.abs().max() < zero


def test_published_setting_is_the_default():
    m = get_method("pbcd")
    assert (m.gamma, m.rho, m.alpha, m.init_std, m.bias_init) == (1.0, 1.0, 5.0, 0.01, 0.1)
    assert type(m).default_batch_size == 0 and type(m).default_epochs == 50


def test_initial_weights_follow_the_authors_scheme():
    net = mlp("50-400-10", loss="mse")
    X = torch.zeros(4, 50)
    state = get_method("pbcd").init_state(net, X, torch.zeros(4, 10),
                                          generator=torch.Generator().manual_seed(0))
    W, b = state.params[0]
    assert abs(float(W.std()) - 0.01) < 0.001 and torch.all(b == 0.1)


def test_objective_is_the_module_docstrings_e_over_n(small_data):
    """After two sweeps (the variables away from the feed-forward point), the objective is E
    of the module docstring divided by N, evaluated in numpy, with gamma and rho not 1 (a
    missing factor would hide behind the default of 1)."""
    import numpy as np

    X, y = small_data[0], small_data[1]
    net = mlp("8-12-6-3", loss="mse")
    method = get_method("pbcd", gamma=1.7, rho=0.6, alpha=2.0, init_std=0.3)
    Y = targets_for(net, y, X.dtype)
    state = fit(method, net, X, y, epochs=2, progress=False).state
    U = [u.numpy() for u in state.U]
    V = [v.numpy() for v in state.V]
    x, t = X.numpy(), Y.numpy()
    W0, b0 = state.params[0][0].numpy(), state.params[0][1].numpy()
    assert np.abs(U[0] - (x @ W0.T + b0)).max() > 1e-3  # away from the feed-forward point
    g, r = method.gamma, method.rho
    e = 0.5 * ((V[-1] - t) ** 2).sum()
    for l, (W, b) in enumerate(state.params):
        v_in = x if l == 0 else V[l - 1]
        e += r / 2 * ((U[l] - v_in @ W.numpy().T - b.numpy()) ** 2).sum()
        act = U[l] if l == len(U) - 1 else np.maximum(U[l], 0.0)
        e += g / 2 * ((V[l] - act) ** 2).sum()
    assert method.objective(net, state, X, Y) == pytest.approx(e / len(x), rel=1e-12)
