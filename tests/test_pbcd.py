"""Proximal BCD of Zeng et al.: every closed-form block update against its optimality condition."""

from __future__ import annotations

import copy

import torch

from liftnet import fit, get_method, mlp
from liftnet.metrics import targets_for


def test_one_sweep_satisfies_every_block_optimality_condition(small_data):
    X, y = small_data[0], small_data[1]
    net = mlp("8-12-3", loss="mse")
    method = get_method("pbcd", gamma=1.5, rho=0.7, alpha=2.0, init_std=0.3)
    res = fit(method, net, X, y, epochs=2, progress=False)
    old = copy.deepcopy(res.state)
    Y = targets_for(net, y, X.dtype)
    new = method.step(net, res.state, X, Y, new_batch=False)
    g, r, a = method.gamma, method.rho, method.alpha
    (W1, b1), (W2, b2) = new.params
    (W1o, b1o), (W2o, b2o) = old.params
    ones = torch.ones(len(X), 1, dtype=X.dtype)
    zero = 1e-9
    # V_L: (V - Y) + gamma (V - U_L) + alpha (V - V_old) = 0
    V2, U2 = new.V[1], new.U[1]
    assert ((V2 - Y) + g * (V2 - old.U[1]) + a * (V2 - old.V[1])).abs().max() < zero
    # U_L: gamma (U - V_L) + rho (U - V_1 W_2^T - b_2) = 0 with the old V_1, W_2, b_2
    assert (g * (U2 - V2) + r * (U2 - old.V[0] @ W2o.T - b2o)).abs().max() < zero
    # (W_2, b_2): rho [V_1 1]^T ([V_1 1] theta - U_2) + alpha (theta - theta_old) = 0
    Va = torch.cat([old.V[0], ones], 1)
    theta, theta_old = torch.cat([W2, b2[:, None]], 1).T, torch.cat([W2o, b2o[:, None]], 1).T
    assert (r * Va.T @ (Va @ theta - U2) + a * (theta - theta_old)).abs().max() < 1e-8
    # V_1 (no proximal term): rho (V W_2^T + b_2 - U_2) W_2 + gamma (V - relu(U_1_old)) = 0
    V1 = new.V[0]
    assert (r * (V1 @ W2.T + b2 - U2) @ W2 + g * (V1 - torch.relu(old.U[0]))).abs().max() < zero
    # U_1: entry-wise global minimum of gamma/2 (V_1 - relu(u))^2 + rho/2 (u - m)^2
    #      + alpha/2 (u - U_old)^2 with m = X W_1^T + b_1 (old weights)
    m1 = X @ W1o.T + b1o
    grid = torch.linspace(-10, 10, 200001, dtype=X.dtype)
    for i, j in [(0, 0), (5, 3), (17, 11), (99, 6), (150, 1), (199, 9)]:
        f = lambda u, i=i, j=j: (g / 2 * (V1[i, j] - torch.relu(u)) ** 2  # noqa: E731
                                 + r / 2 * (u - m1[i, j]) ** 2 + a / 2 * (u - old.U[0][i, j]) ** 2)
        assert float(f(new.U[0][i, j])) <= float(f(grid).min()) + 1e-7
    # (W_1, b_1): the proximal least squares with the new U_1
    Xa = torch.cat([X, ones], 1)
    theta, theta_old = torch.cat([W1, b1[:, None]], 1).T, torch.cat([W1o, b1o[:, None]], 1).T
    assert (r * Xa.T @ (Xa @ theta - new.U[0]) + a * (theta - theta_old)).abs().max() < 1e-8


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
