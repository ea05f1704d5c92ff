"""Back-propagation baseline: its steps against plain ``torch.nn`` / ``torch.optim`` code built
from the documented definitions (loss per sample, batch ``reduction``, l2 ``weight_decay`` added
to the loss on the weights only, and the optimizer each name stands for)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from liftnet import mlp
from liftnet.methods.backprop import Backprop

OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam")
LR = {"sgd": 0.05, "momentum": 0.05, "rmsprop": 0.01, "adam": 0.01}


def _reference_optimizer(name, params, lr):
    """The optimizer the docstring names: momentum is SGD with momentum 0.9; torch defaults."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    return torch.optim.Adam(params, lr=lr)


def _reference_model(params):
    """The 5-7-6-3 tanh network by hand: Linear, Tanh, Linear, Tanh, Linear (logits)."""
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 6), nn.Tanh(),
                          nn.Linear(6, 3)).double()
    with torch.no_grad():
        for lin, (W, b) in zip(model[::2], params, strict=True):
            lin.weight.copy_(W)
            lin.bias.copy_(b)
    return model


def _reference_loss(model, X, y, Y, loss, reduction, weight_decay):
    """Per sample: cross-entropy of the logits, or ||output - Y||^2; summed or averaged over
    the batch; plus weight_decay * sum ||W||^2 over the weight matrices (not the biases)."""
    out = model(X)
    if loss == "ce":
        data = nn.CrossEntropyLoss(reduction="sum")(out, y)
    else:
        data = nn.MSELoss(reduction="sum")(out, Y)  # = sum_i ||out_i - Y_i||^2
    if reduction == "mean":
        data = data / X.shape[0]
    return data + weight_decay * sum(lin.weight.square().sum() for lin in model[::2])


def _batches(loss, seed=0):
    g = torch.Generator().manual_seed(seed)
    batches = []
    for n in (9, 13):  # two batches of different sizes: the mean and the sum differ in scale
        X = torch.randn(n, 5, generator=g, dtype=torch.float64)
        y = torch.randint(0, 3, (n,), generator=g)
        Y = (nn.functional.one_hot(y, 3).double() if loss == "ce"
             else torch.randn(n, 3, generator=g, dtype=torch.float64))
        batches.append((X, y, Y))
    return batches, g


@pytest.mark.parametrize("loss", ["ce", "mse"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_two_steps_match_plain_torch(optimizer, reduction, loss):
    net = mlp("5-7-6-3", activation="tanh", loss=loss)
    batches, g = _batches(loss)
    wd = 0.3
    method = Backprop(optimizer=optimizer, lr=LR[optimizer], reduction=reduction,
                      weight_decay=wd)
    X0, _, Y0 = batches[0]
    state = method.init_state(net, X0, Y0, generator=g)
    model = _reference_model([(W.detach(), b.detach()) for W, b in state.params])
    opt = _reference_optimizer(optimizer, model.parameters(), LR[optimizer])

    for X, y, Y in batches:
        # the objective is the documented loss of the batch at the current weights
        with torch.no_grad():
            want = float(_reference_loss(model, X, y, Y, loss, reduction, wd))
        assert method.objective(net, state, X, Y) == pytest.approx(want, rel=1e-12)
        state = method.step(net, state, X, Y)
        opt.zero_grad()
        _reference_loss(model, X, y, Y, loss, reduction, wd).backward()
        opt.step()
        for lin, (W, b) in zip(model[::2], state.params, strict=True):
            torch.testing.assert_close(W.detach(), lin.weight.detach(), rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(b.detach(), lin.bias.detach(), rtol=1e-10, atol=1e-12)
    assert state.step == 2


def test_weight_decay_and_reduction_change_the_step():
    """The settings are not no-ops: with adam (invariant to the loss's scale), the decay and the
    reduction change the weights after two steps."""
    net = mlp("5-7-6-3", activation="tanh", loss="ce")
    batches, g = _batches("ce", seed=1)
    X0, _, Y0 = batches[0]
    start = Backprop().init_state(net, X0, Y0, generator=g).params

    def run(**kw):
        method = Backprop(optimizer="adam", lr=0.01, **kw)
        state = method.init_state(net, X0, Y0, params=start)
        for X, _, Y in batches:
            state = method.step(net, state, X, Y)
        return torch.cat([W.detach().flatten() for W, _ in state.params])

    plain = run(weight_decay=0.0, reduction="mean")
    decayed = run(weight_decay=0.3, reduction="mean")
    summed = run(weight_decay=0.3, reduction="sum")
    assert (plain - decayed).abs().max() > 1e-4
    assert (decayed - summed).abs().max() > 1e-4
