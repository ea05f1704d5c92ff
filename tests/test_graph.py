"""Network descriptions and architecture strings."""

from __future__ import annotations

import pytest
import torch

from liftnet import mlp, parse_arch
from liftnet.graph import Network, lenet5_spec, network
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
    "scheme,std", [("normal", 0.1**0.5), ("variance_scaling", (2 / 400) ** 0.5),
                   ("xavier", (6 / (400 + 300)) ** 0.5 / 3**0.5)]  # uniform on [-a, a]
)
def test_init_schemes_have_the_stated_spread(scheme, std):
    net = mlp("400-300-10")
    W, b = net.init_params(generator=torch.Generator().manual_seed(0), scheme=scheme, bias=0.1)[0]
    assert abs(float(W.std()) - std) < 0.05 * std
    assert abs(float(W.mean())) < 0.05 * std  # centred
    if scheme == "xavier":  # Glorot's uniform range a = sqrt(6 / (fan_in + fan_out))
        a = (6 / (400 + 300)) ** 0.5
        assert 0.95 * a < float(W.abs().max()) <= a
    assert torch.all(b == 0.1)
    with pytest.raises(ValueError, match="init scheme"):
        net.init_params(scheme="orthogonal")


def test_convolution_fans_set_the_he_spread():
    """A convolution's fan-in is in_channels * k * k (He / variance_scaling: std sqrt(2 /
    fan_in)); Xavier's symmetric formula would hide swapped fans."""
    net = network("3x8x8-conv16k3-5")
    W, _ = net.init_params(generator=torch.Generator().manual_seed(0),
                           scheme="variance_scaling")[0]
    assert W.shape == (16, 3, 3, 3)
    std = (2 / (3 * 9)) ** 0.5
    assert abs(float(W.std()) - std) < 0.1 * std


def test_check_params_wants_one_dtype_across_layers():
    net = mlp("5-4-3")
    p = net.init_params(generator=torch.Generator().manual_seed(0))
    mixed = [p[0], (p[1][0].double(), p[1][1].double())]
    with pytest.raises(ValueError, match="one dtype and device"):
        net.check_params(mixed)


def test_lenet5_spec_pads_square_28_images_only_and_activation_counts_are_checked():
    from liftnet.graph import lenet5_spec

    assert "p2" in lenet5_spec((1, 28, 28), 10)
    assert "p2" not in lenet5_spec((1, 28, 32), 10)
    with pytest.raises(ValueError, match="3 activations for 2 layers"):
        network("6-4-3", activations=["relu", "relu", "simplex"])


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


def test_convolutions_and_pooling_after_a_dense_layer_are_refused():
    # review 23: Network took them, save_model wrote them, and load_model then called the file
    # damaged, since no architecture string writes them
    from liftnet.layers import Conv2d

    with pytest.raises(ValueError, match="pooling needs an image input"):
        Network((Dense(16, 16, "relu"), Dense(4, 3, "simplex", pool=2, in_shape=(1, 4, 4))))
    with pytest.raises(ValueError, match="a convolution needs an image input"):
        Network((Dense(16, 16, "relu"), Conv2d((1, 4, 4), 2, 3, padding=1),
                 Dense(32, 3, "simplex")))
    net = network("1x8x8-conv2k3p1-pool2-3")  # after a convolution: fine
    assert network(net.spec) == net


def test_outputs_name_a_dtype_mismatch_and_mixed_parameters():
    # review 23: float64 inputs against float32 weights (numpy's default against torch's)
    # were a RuntimeError from inside the layer; W and b of different dtypes passed
    # check_params and to_torch quietly cast the bias
    net = network("5-4-3")
    p = net.init_params(generator=torch.Generator().manual_seed(0))
    X = torch.randn(6, 5, dtype=torch.float64)
    with pytest.raises(ValueError, match="inputs are torch.float64 on cpu but the weights "
                                         r"torch.float32 on cpu: convert .*X.to\(W.dtype\)"):
        net.predict(p, X)
    assert net.predict(p, X.float()).shape == (6,)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        net.outputs(p, X.float(), batch_size=0)
    mixed = [p[0], (p[1][0], p[1][1].double())]
    with pytest.raises(ValueError, match="layer 1: W is torch.float32 on cpu and b "
                                         "torch.float64 on cpu.*one dtype and device"):
        net.check_params(mixed)


@pytest.mark.parametrize("spec, message", [
    ("784-\u00b2-10", "must look like '784-300-10'"),  # a superscript two: no width
    ("1x28x28-conv\u00b2k5-10", r"cannot read 'conv\u00b2k5'"),
    ("1x99999x99999-2", "the input 1x99999x99999 has 9999800001 values, more than 2"),
    ("1x1000x1000-conv4096k1-10", "conv4096k1 outputs 4096000000 values, more than 2"),
])
def test_architecture_strings_at_their_edges(spec, message):
    # review 23: str.isdigit and \\d took superscript digits (int() then failed), and only
    # single numbers were held to 2**31 - 1, not the sizes they make
    with pytest.raises(ValueError, match=message):
        network(spec)


@pytest.mark.parametrize("side", [29, 30, 31, 33])
def test_lenet5_names_the_image_sides_it_takes(side):
    with pytest.raises(ValueError, match=f"LeNet-5 takes 28x28 images or sides that are "
                                         f"multiples of 4 from 32 up .* got {side}x{side}"):
        lenet5_spec((1, side, side))
    assert network(lenet5_spec((3, 36, 36))).layers[-1].out_features == 10
