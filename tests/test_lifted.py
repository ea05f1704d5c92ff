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


@pytest.mark.parametrize("activation", ["relu", "hardtanh"])
def test_lifted_prediction_rule_with_unequal_link_weights_against_cvxpy(small_data, activation):
    """The rule's per-link weights (the lifted method's lam, lam_out) and a two-sided box:
    the joint convex problem (squared penalty, cross-entropy output: the squared distance of
    the logits to the simplex) solved by cvxpy per test point, with weights 0.5, 3, 2."""
    cp = pytest.importorskip("cvxpy", reason="cvxpy is the independent reference here")
    net = mlp("8-10-6-3", loss="ce", activation=activation)
    res = fit(Lifted(lam=1.0), net, small_data[0], small_data[1], epochs=5, progress=False)
    params = res.state.params
    X = small_data[2][:4]
    lams = [0.5, 3.0, 2.0]
    out, xs = lifted_predict(net, params, X, penalty="squared", lams=lams, tol=1e-13,
                             max_iter=200000)
    (W0, b0), (W1, b1), (W2, b2) = [(W.numpy(), b.numpy()) for W, b in params]
    lo, hi = (0.0, None) if activation == "relu" else (-1.0, 1.0)
    for i in range(len(X)):
        x1, x2, yv = cp.Variable(10), cp.Variable(6), cp.Variable(3)
        obj = (lams[0] * cp.sum_squares(x1 - W0 @ X[i].numpy() - b0)
               + lams[1] * cp.sum_squares(x2 - W1 @ x1 - b1)
               + lams[2] * cp.sum_squares(yv - W2 @ x2 - b2))
        cons = [x1 >= lo, x2 >= lo, yv >= 0, cp.sum(yv) == 1]
        if hi is not None:
            cons += [x1 <= hi, x2 <= hi]
        cp.Problem(cp.Minimize(obj), cons).solve()
        np.testing.assert_allclose(xs[0][i].numpy(), x1.value, atol=2e-4)
        np.testing.assert_allclose(xs[1][i].numpy(), x2.value, atol=2e-4)
        np.testing.assert_allclose(out[i].numpy(), yv.value, atol=2e-4)
    if activation == "hardtanh":  # the upper bound is active somewhere, so it is tested
        assert max(float(x.max()) for x in xs) == pytest.approx(1.0, abs=1e-9)


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


# ------------------------------------------------------------------------------------------------
# One BCD sweep, block by block, against references written here in numpy / cvxpy from paper 004
# ((13), (14), (15), section 6.1) and the objective (10)/(11) as the module docstring normalises
# it.  With ``sweeps=1`` a step runs: X_{L+1} by (14) at the batch's feed-forward point, then
# X_L, ..., X_1 by (13), each with the new X_{l+1} and the not yet updated X_{l-1}, then every
# (W_l, b_l) with the final X's and the weights of the start of the step (which the X-steps use).

_LAM, _LAM_OUT, _RHO, _GAMMA = 0.7, 3.0, 0.05, 0.4
_BOXES = {"relu": (0.0, np.inf), "hardtanh": (-1.0, 1.0)}  # C_l: X >= 0, |X| <= 1
_ARCHS = [("4-5-3", "relu"), ("4-5-4-3", "relu"), ("4-5-3", "hardtanh")]


def _random_problem(arch, loss, rng, n=6):
    """Random weights with non-zero biases (so that some pre-activations are cut by the box)
    and a batch maker: X ~ N(0, I), Y soft labels (ce) or N(0, I) targets (mse)."""
    sizes = [int(s) for s in arch.split("-")]
    params = [(torch.from_numpy(1.5 * rng.normal(size=(o, i)) / np.sqrt(i)),
               torch.from_numpy(0.5 * rng.normal(size=o)))
              for i, o in zip(sizes[:-1], sizes[1:], strict=True)]

    def batch():
        X = rng.normal(size=(n, sizes[0]))
        k = sizes[-1]
        Y = rng.dirichlet(np.ones(k), size=n) if loss == "ce" else rng.normal(size=(n, k))
        return torch.from_numpy(X), torch.from_numpy(Y)

    return params, batch


def _one_sweep(arch, activation, loss, penalty, proximal, seed=0):
    """One ``Lifted.step`` (new batch, one sweep) on a small float64 problem.

    ``proximal``: a first step on another batch comes before it, so that the step under test
    starts a new mini-batch with a proximal centre (gamma > 0): the weights at its start.
    Returns the method, the numpy weights at the start of the step, the batch (numpy) and the
    state after it.
    """
    rng = np.random.default_rng(seed)
    params, batch = _random_problem(arch, loss, rng)
    net = mlp(arch, activation=activation, loss=loss)
    method = Lifted(lam=_LAM, lam_out=_LAM_OUT, rho=_RHO, gamma=_GAMMA, penalty=penalty,
                    sweeps=1, tol=1e-11, max_inner=20000)
    X, Y = batch()
    state = method.init_state(net, X, Y, params=params)
    if proximal:
        state = method.step(net, state, X, Y, new_batch=True)
        X, Y = batch()
    start = [(W.numpy().copy(), b.numpy().copy()) for W, b in state.params]
    state = method.step(net, state, X, Y, new_batch=True)
    return method, start, X.numpy(), Y.numpy(), state


def _clip(U, box):
    return np.clip(U, *box)


def _np_forward(params, X, box):
    """Hidden activations X_1..X_L of the feed-forward rule (paper 004 (2))."""
    acts = []
    for W, b in params[:-1]:
        X = _clip(X @ W.T + b, box)
        acts.append(X)
    return acts


def _np_target(penalty, shifted_link, x_next, u0, box):
    """Least-squares target of a link: X_{l+1}, or for the shifted divergence
    ||v - u||^2 - ||u - sigma(u)||^2 of a hidden link its majoriser's centre v + u0 - sigma(u0)
    at the current pre-activation u0 (module docstring)."""
    if penalty == "shifted" and shifted_link:
        return x_next + u0 - _clip(u0, box)
    return x_next


@pytest.mark.parametrize("loss", ["mse", "ce"])
@pytest.mark.parametrize("arch,activation", _ARCHS)
def test_one_sweep_output_block_solves_14(arch, activation, loss):
    """X_{L+1} = argmin_Z loss(Y, Z) + lam_out ||Z - X_L W_L^T - b_L||^2 at the feed-forward X_L
    (14); ``mse``: Z free, so (Z - Y) + lam_out (Z - U) = 0; ``ce``: Z on the simplex (15),
    compared with cvxpy."""
    _, start, X, Y, state = _one_sweep(arch, activation, loss, "shifted", proximal=True)
    W, b = start[-1]
    U = _np_forward(start, X, _BOXES[activation])[-1] @ W.T + b
    Z = state.out.numpy()
    if loss == "mse":
        np.testing.assert_allclose((Z - Y) + _LAM_OUT * (Z - U), 0.0, atol=1e-12)
        return
    cp = pytest.importorskip("cvxpy", reason="cvxpy is the independent reference here")
    V = cp.Variable(Z.shape)
    obj = -cp.sum(cp.multiply(Y, cp.log(V))) + _LAM_OUT * cp.sum_squares(V - U)
    tight = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12, "tol_ktratio": 1e-10}
    cp.Problem(cp.Minimize(obj), [V >= 0, cp.sum(V, axis=1) == 1]).solve(solver=cp.CLARABEL,
                                                                        **tight)
    np.testing.assert_allclose(Z, V.value, atol=1e-8)
    np.testing.assert_allclose(Z.sum(1), 1.0, atol=1e-10)
    assert Z.min() >= 0


@pytest.mark.parametrize("penalty", ["shifted", "squared"])
@pytest.mark.parametrize("loss", ["mse", "ce"])
@pytest.mark.parametrize("arch,activation", _ARCHS)
def test_one_sweep_hidden_blocks_satisfy_the_kkt_conditions_of_13(arch, activation, loss,
                                                                  penalty):
    """X_l = argmin_{Z in C} lam_{l+1} ||T_l - Z W_l^T - b_l||^2 + lam_l ||Z - X_{l-1} W_{l-1}^T
    - b_{l-1}||^2 (13), T_l the link's target; KKT of the box QP: Z = P_C(Z - grad)."""
    _, start, X, Y, state = _one_sweep(arch, activation, loss, penalty, proximal=True)
    box = _BOXES[activation]
    L = len(start) - 1
    acts0 = _np_forward(start, X, box)  # the new batch's lifted variables before the sweep
    new = [X, *(a.numpy() for a in state.acts), state.out.numpy()]
    lams = [_LAM] * L + [_LAM_OUT]
    for l in range(L, 0, -1):
        Z = new[l]
        assert (Z >= box[0]).all() and (Z <= box[1]).all()
        W, b = start[l]
        T = _np_target(penalty, l < L, new[l + 1], acts0[l - 1] @ W.T + b, box)
        x_prev = X if l == 1 else acts0[l - 2]  # X_{l-1} is updated after X_l
        U_prev = x_prev @ start[l - 1][0].T + start[l - 1][1]
        grad = lams[l - 1] * (Z - U_prev) + lams[l] * (Z @ W.T + b - T) @ W
        scale = max(1.0, np.abs(U_prev).max(), np.abs(T).max())
        assert np.abs(Z - _clip(Z - grad, box)).max() < 1e-8 * scale, l


@pytest.mark.parametrize("proximal", [False, True])
@pytest.mark.parametrize("penalty", ["shifted", "squared"])
@pytest.mark.parametrize("loss", ["mse", "ce"])
@pytest.mark.parametrize("arch,activation", _ARCHS)
def test_one_sweep_w_steps_solve_their_ridge_normal_equations(arch, activation, loss, penalty,
                                                              proximal):
    """(W_l, b_l) = argmin lam_{l+1}/N ||[X_l 1] theta - T_l||^2 + rho ||W||^2
    (+ gamma ||theta - theta_prev||^2 in a new mini-batch after the first), theta = [W b]^T,
    i.e. (lam/N A^T A + rho D + gamma I) theta = lam/N A^T T + gamma theta_prev with
    D = diag(1, .., 1, 0): the bias is not decayed (section 6.1, module docstring)."""
    _, start, X, Y, state = _one_sweep(arch, activation, loss, penalty, proximal)
    box = _BOXES[activation]
    L = len(start) - 1
    n = len(X)
    new = [X, *(a.numpy() for a in state.acts), state.out.numpy()]
    lams = [_LAM] * L + [_LAM_OUT]
    gamma = _GAMMA if proximal else 0.0
    for l, (W0, b0) in enumerate(start):
        T = _np_target(penalty, l < L, new[l + 1], new[l] @ W0.T + b0, box)
        A = np.hstack([new[l], np.ones((n, 1))])
        D = np.diag(np.r_[np.ones(A.shape[1] - 1), 0.0])
        theta0 = np.vstack([W0.T, b0[None, :]])
        lhs = lams[l] / n * A.T @ A + _RHO * D + gamma * np.eye(A.shape[1])
        theta = np.linalg.solve(lhs, lams[l] / n * A.T @ T + gamma * theta0)
        W, b = state.params[l]
        np.testing.assert_allclose(W.numpy(), theta[:-1].T, atol=1e-9, rtol=0)
        np.testing.assert_allclose(b.numpy(), theta[-1], atol=1e-9, rtol=0)


@pytest.mark.parametrize("penalty", ["shifted", "squared"])
@pytest.mark.parametrize("loss", ["mse", "ce"])
@pytest.mark.parametrize("arch,activation", _ARCHS)
def test_objective_equals_the_formula_away_from_the_feed_forward_point(arch, activation, loss,
                                                                       penalty):
    """F = (1/N) [loss(Y, X_{L+1}) + sum_l lam_{l+1} D(X_l W_l^T + b_l, X_{l+1})]
    + rho sum ||W_l||^2 + gamma sum ||(W_l, b_l) - (W_l, b_l)_prev||^2 (module docstring),
    D(u, v) = ||v - u||^2 (- ||u - sigma(u)||^2 on hidden links for ``shifted``), at random
    lifted variables, weights and proximal centre."""
    rng = np.random.default_rng(3)
    params, batch = _random_problem(arch, loss, rng)
    X, Y = batch()
    net = mlp(arch, activation=activation, loss=loss)
    method = Lifted(lam=_LAM, lam_out=_LAM_OUT, rho=_RHO, gamma=_GAMMA, penalty=penalty)
    state = method.init_state(net, X, Y, params=params)
    box = _BOXES[activation]
    n, k = Y.shape
    acts = [_clip(rng.normal(size=(n, W.shape[0])), box) for W, _ in params[:-1]]
    out = rng.dirichlet(np.ones(k), size=n) if loss == "ce" else rng.normal(size=(n, k))
    prev = [(W + 0.3 * torch.from_numpy(rng.normal(size=W.shape)),
             b + 0.3 * torch.from_numpy(rng.normal(size=b.shape))) for W, b in params]
    state.acts, state.out = [torch.from_numpy(a) for a in acts], torch.from_numpy(out)
    state.prev = prev

    Xn, Yn = X.numpy(), Y.numpy()
    ws = [(W.numpy(), b.numpy()) for W, b in params]
    xs = [Xn, *acts, out]
    L = len(ws) - 1
    lams = [_LAM] * L + [_LAM_OUT]
    data = -(Yn * np.log(out)).sum() if loss == "ce" else ((out - Yn) ** 2).sum()
    for l, (W, b) in enumerate(ws):
        U = xs[l] @ W.T + b
        d = ((xs[l + 1] - U) ** 2).sum()
        if penalty == "shifted" and l < L:
            d -= ((U - _clip(U, box)) ** 2).sum()
        data += lams[l] * d
    reg = _RHO * sum((W**2).sum() for W, _ in ws)
    prox = _GAMMA * sum(((W - W0.numpy()) ** 2).sum() + ((b - b0.numpy()) ** 2).sum()
                        for (W, b), (W0, b0) in zip(ws, prev, strict=True))
    assert method.objective(net, state, X, Y) == pytest.approx(data / n + reg + prox, rel=1e-12)
    state.prev = None  # no proximal centre (full batch, or the first mini-batch): no gamma term
    assert method.objective(net, state, X, Y) == pytest.approx(data / n + reg, rel=1e-12)


def test_lifted_prediction_rule_bad_input_is_a_clear_error(small_data):
    X, y = small_data[:2]
    net = mlp([X.shape[1], 6, int(y.max()) + 1], loss="ce")
    params = fit(Lifted(), net, X, y, epochs=1, progress=False).state.params
    with pytest.raises(ValueError, match=rf"X must be a tensor of shape \(N, {X.shape[1]}\)"):
        lifted_predict(net, params, X[:, :-1])
    with pytest.raises(ValueError, match="X must be a tensor of shape"):
        lifted_predict(net, params, X.numpy())
    with pytest.raises(ValueError, match="lams must be finite numbers > 0"):
        lifted_predict(net, params, X, lams=[-1.0, -1.0])
    with pytest.raises(ValueError, match="lams must be finite numbers > 0"):
        lifted_predict(net, params, X, lams=[float("nan"), 1.0])
    from liftnet.graph import network

    conv = network("1x2x2-conv2k1-3")
    with pytest.raises(ValueError, match="for dense networks without pooling"):
        lifted_predict(conv, [], torch.rand(2, 4))
