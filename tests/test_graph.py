"""Network descriptions and architecture strings."""

from __future__ import annotations

import pytest
import torch

from liftnet import mlp, parse_arch
from liftnet.graph import Network, network
from liftnet.layers import Dense


def test_parse_arch():
    assert parse_arch("784-300-10") == (784, 300, 10)
    assert parse_arch([4, 3]) == (4, 3)
    for bad in ["784", "784-x-10", "784-0-10", "", "64--10", "-64-10", "64-10-", [8, 4.7, 3],
                None, [True, 3], "784-3e2-10"]:
        with pytest.raises(ValueError, match="architecture"):
            parse_arch(bad)


def test_params_and_inputs_of_the_wrong_kind_are_named():
    net = mlp("5-6-3")
    params = net.init_params(generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"layer 0: expected a \(W, b\) pair of real"):
        net.check_params([(1.0, 2.0), params[1]])
    with pytest.raises(ValueError, match="layer 1: expected a"):
        net.check_params([params[0], (params[1][0].to(torch.complex64), params[1][1])])
    with pytest.raises(ValueError, match=r"inputs of shape \(N, 5\) for 5-6-3, got \(4, 7\)"):
        net.predict(params, torch.randn(4, 7))


def test_mlp_layers_and_output_activation():
    net = mlp("784-500-150-10", loss="ce")
    assert net.sizes == (784, 500, 150, 10) and net.n_hidden == 2 and net.spec == "784-500-150-10"
    assert [layer.activation for layer in net.layers] == ["relu", "relu", "simplex"]
    assert mlp("3-4-2", loss="mse").layers[-1].activation == "identity"
    with pytest.raises(ValueError, match="loss"):
        mlp("3-4-2", loss="hinge")
    with pytest.raises(ValueError, match="activation|unknown"):
        mlp("3-4-2", activation="swish")


@pytest.mark.parametrize(
    "scheme,std", [("normal", 0.1**0.5), ("variance_scaling", (2 / 400) ** 0.5)]
)
def test_init_schemes_have_the_stated_spread(scheme, std):
    net = mlp("400-300-10")
    W, b = net.init_params(generator=torch.Generator().manual_seed(0), scheme=scheme, bias=0.1)[0]
    assert abs(float(W.std()) - std) < 0.05 * std
    assert torch.all(b == 0.1)
    with pytest.raises(ValueError, match="init scheme"):
        net.init_params(scheme="orthogonal")


def test_forward_all_and_predict():
    net = mlp("5-6-3")
    params = net.init_params(generator=torch.Generator().manual_seed(0))
    X = torch.randn(4, 5)
    acts, pre = net.forward_all(params, X)
    assert [a.shape for a in acts] == [(4, 6)] and [p.shape for p in pre] == [(4, 6), (4, 3)]
    torch.testing.assert_close(pre[-1], net.forward(params, X))
    assert net.predict(params, X).shape == (4,)


def test_bytes_are_not_an_architecture():
    # bytes are a sequence of ints: b"64-8-10" would read as widths 54-52-45-...
    for bad in (b"64-8-10", bytearray(b"64-8-10"), memoryview(b"4-3")):
        for make in (network, mlp, parse_arch):
            with pytest.raises(TypeError, match="got .*b'.*decode it first"):
                make(bad)


def test_the_output_activation_must_be_the_losss():
    # the network outputs the last pre-activation (trained and exported as such): another
    # output activation would be silently ignored
    with pytest.raises(ValueError, match="output layer's activation must be 'identity' for "
                                         "loss 'mse'.*got 'relu'"):
        network("6-4-3", activations=["relu", "relu"], loss="mse")
    with pytest.raises(ValueError, match="must be 'simplex' for loss 'ce'.*got 'identity'"):
        network("6-4-3", activations=["relu", "identity"])
    with pytest.raises(ValueError, match="output layer's activation"):
        Network((Dense(6, 4), Dense(4, 3)), "mse")  # Dense's default activation is relu
    with pytest.raises(ValueError, match="output layer's activation"):
        network("1x8x8-conv2k3-3", activations=["tanh", "sigmoid"], loss="mse")
    net = network("6-4-3", activations=["tanh", "identity"], loss="mse")
    assert [layer.activation for layer in net.layers] == ["tanh", "identity"]
    assert network("6-4-3", activations=["tanh", "simplex"]).layers[-1].activation == "simplex"
