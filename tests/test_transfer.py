"""Weights move to and from torch.nn as copies, and the outputs agree."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from liftnet import from_torch, mlp, to_torch

ELEMENTWISE = ["relu", "leaky_relu", "sigmoid", "tanh", "hardtanh", "piecewise_sigmoid",
               "softplus", "identity", "soft_threshold", "sign", "sin"]


@pytest.mark.parametrize("arch,activation,loss",
                         [("6-9-4", a, "ce") for a in ELEMENTWISE]
                         + [("6-9-5-4", "hardtanh", "mse"), ("6-4", "relu", "ce")])
def test_to_torch_matches_forward_and_round_trips(arch, activation, loss):
    net = mlp(arch, activation=activation, loss=loss)
    params = net.init_params(generator=torch.Generator().manual_seed(0), bias=0.1)
    model = to_torch(net, params)
    assert isinstance(model, nn.Sequential)
    X = torch.randn(11, 6)
    with torch.no_grad():
        torch.testing.assert_close(model(X), net.forward(params, X))
    lin = model[0]
    assert lin.weight.shape == params[0][0].shape  # nn.Linear layout: a copy, no transpose
    lin.weight.data.add_(1.0)  # a copy: the liftnet params are untouched
    assert not torch.equal(lin.weight.data, params[0][0])
    net2, params2 = from_torch(to_torch(net, params), loss=loss)
    assert net2 == net
    for (W, b), (W2, b2) in zip(params, params2, strict=True):
        assert torch.equal(W, W2) and torch.equal(b, b2)


def test_from_torch_refuses_unknown_modules():
    with pytest.raises(ValueError, match="Dropout"):
        from_torch(nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.1), nn.Linear(4, 2)))
    with pytest.raises(ValueError, match="last module"):
        from_torch(nn.Sequential(nn.Linear(3, 4), nn.ReLU()))
    with pytest.raises(ValueError, match=r"Softshrink\(0.25\): no registered activation"):
        from_torch(nn.Sequential(nn.Linear(3, 4), nn.Softshrink(0.25), nn.Linear(4, 2)))
    with pytest.raises(ValueError, match="from_torch reads an nn.Sequential .* got int"):
        from_torch(3)
    for threshold in (5.0, 15.0, 30.0):  # review 23: thresholds above 4 passed as 'softplus'
        with pytest.raises(ValueError, match="only nn.Softplus"):
            from_torch(nn.Sequential(nn.Linear(3, 4), nn.Softplus(threshold=threshold),
                                     nn.Linear(4, 2)))
    net, _ = from_torch(nn.Sequential(nn.Linear(3, 4), nn.Softplus(), nn.Linear(4, 2)))
    assert net.layers[0].activation == "softplus"


def test_from_torch_reads_a_linear_layer_and_nested_sequentials():
    lin = nn.Linear(3, 2)
    net, params = from_torch(lin)
    assert net.sizes == (3, 2) and torch.equal(params[0][0], lin.weight.detach())
    inner = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    model = nn.Sequential(inner, nn.Sequential(nn.Linear(4, 5), nn.Tanh()), nn.Linear(5, 2))
    net, params = from_torch(model)
    assert net.sizes == (3, 4, 5, 2)
    assert [la.activation for la in net.layers[:-1]] == ["relu", "tanh"]
    X = torch.randn(7, 3)
    with torch.no_grad():
        torch.testing.assert_close(net.forward(params, X), model(X))


def test_from_torch_bias_free_and_consecutive_linears_and_copies():
    """A Linear without bias reads as a zero bias, two Linears in a row as an identity
    activation between them, and the parameters are copies (training them in place leaves
    the torch model alone)."""
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4, bias=False), nn.ReLU(), nn.Linear(4, 5),
                          nn.Linear(5, 2))
    net, params = from_torch(model)
    assert [la.activation for la in net.layers[:-1]] == ["relu", "identity"]
    assert torch.count_nonzero(params[0][1]) == 0
    X = torch.randn(9, 3, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(net.forward(params, X), model(X))
        before = model[0].weight.clone()
        params[0][0].add_(1.0)
        params[1][1].add_(1.0)
    assert torch.equal(model[0].weight, before)
    assert not torch.equal(model[2].bias, params[1][1])


def test_check_params_names_the_bad_shape():
    net = mlp("6-9-4")
    params = net.init_params()
    params[1] = (params[1][0].T, params[1][1])
    with pytest.raises(ValueError, match="layer 1: expected W"):
        net.forward(params, torch.randn(2, 6))


def test_mixed_activations_survive_save_and_load(tmp_path):
    from liftnet import Dense, Network, load_model, save_model

    net = Network((Dense(6, 5, "hardtanh"), Dense(5, 4, "relu"), Dense(4, 3, "simplex")), "ce")
    params = net.init_params(generator=torch.Generator().manual_seed(0))
    net2, params2, _ = load_model(save_model(tmp_path / "m.pt", net, params))
    assert net2 == net
    for (W, b), (W2, b2) in zip(params, params2, strict=True):
        assert torch.equal(W, W2) and torch.equal(b, b2)


def test_width_changing_hidden_activation_is_refused():
    from liftnet import Dense, Network

    with pytest.raises(ValueError, match="changes the width"):
        Network((Dense(6, 5, "simplex"), Dense(5, 3, "simplex")), "ce")


def test_calibrate_output_minimises_the_cross_entropy_and_keeps_the_argmax():
    from liftnet.transfer import calibrate_output

    net = mlp("6-9-4")
    g = torch.Generator().manual_seed(0)
    params = net.init_params(generator=g)
    X = torch.randn(200, 6, generator=g, dtype=torch.float32)
    y = net.predict(params, X)
    y[:20] = (y[:20] + 1) % 4  # some mistakes, so the best temperature is finite
    new, tau = calibrate_output(net, params, X, y)
    assert torch.equal(net.predict(new, X), net.predict(params, X))

    def ce(t):
        return float(torch.nn.functional.cross_entropy(t * net.forward(params, X), y))

    grid = torch.logspace(-3, 4, 400).tolist()
    assert ce(tau) <= min(ce(t) for t in grid) + 1e-6
    # the whole output layer is scaled (weights and bias): the logits are tau times the old
    biased = [*params[:-1], (params[-1][0], torch.randn(4, generator=g))]
    new, tau = calibrate_output(net, biased, X, y)
    torch.testing.assert_close(net.forward(new, X), tau * net.forward(biased, X))
    # nearly separable labels on small logits: the best temperature is above 100
    small = [*params[:-1], (params[-1][0] * 1e-2, params[-1][1] * 0)]
    y0 = net.predict(small, X)
    y0[:10] = (y0[:10] + 1) % 4
    _, tau = calibrate_output(net, small, X, y0)
    assert 100 < tau < 1e4
    logits = net.forward(small, X)
    slope = lambda t: float(((torch.softmax(t * logits, 1) * logits).sum(1)  # noqa: E731
                             - logits.gather(1, y0[:, None])[:, 0]).mean())
    assert abs(slope(tau)) < 1e-3 * abs(slope(tau / 10))  # an interior minimum, not a bound


def test_calibrate_output_names_bad_input():
    from liftnet.transfer import calibrate_output

    net = mlp("6-9-4")
    g = torch.Generator().manual_seed(0)
    params = net.init_params(generator=g)
    X = torch.randn(20, 6, generator=g, dtype=torch.float32)
    y = torch.arange(20) % 4
    nan = [(W.clone(), b.clone()) for W, b in params]
    nan[0][0][0, 0] = float("nan")
    cases = [
        ((params, X, y % 4 + 1), r"calibration labels must lie in \[0, 3\]"),
        ((params, X, y[:5]), "calibration inputs and targets differ in length"),
        ((params, X, y.float()), "cross-entropy needs integer class labels"),
        ((params, X[:, :5], y), "calibration inputs have 5 features"),
        ((params, X.double(), y), "calibration inputs are torch.float64 but the weights "
                                  "torch.float32"),
        ((params, X.masked_fill(X > 2, float("nan")), y), "calibration inputs contain NaN"),
        ((nan, X, y), "outputs on the calibration inputs contain NaN"),
        ((params[:1], X, y), r"expected 2 \(W, b\) pairs"),
    ]
    for args, match in cases:
        with pytest.raises(ValueError, match=match):
            calibrate_output(net, *args)
    for iters in (0, 2.5, True):
        with pytest.raises(ValueError, match="iters must be a positive integer"):
            calibrate_output(net, params, X, y, iters=iters)
