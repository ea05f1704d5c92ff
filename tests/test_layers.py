"""Convolutional and pooled layers: the linear maps against torch's own, their adjoints and
row forms, the architecture strings, export to ``torch.nn``, saved models, back-propagation
training and the command line on convolutional networks."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from liftnet import fit, get_method, load_model, mlp, save_model, to_torch
from liftnet.cli import main
from liftnet.graph import Network, lenet5_spec, network
from liftnet.layers import Conv2d, Dense

D = torch.float64
SMALL = "1x8x8-conv3k3p1-pool2-conv4k3-pool2-5-3"  # 8x8 -> 3x8x8 -> 3x4x4 -> 4x2x2 -> 4x1x1 -> 5
LENET = "1x28x28-conv6k5p2-pool2-conv16k5-pool2-120-84-10"


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape: int, g: torch.Generator) -> torch.Tensor:
    return torch.randn(*shape, generator=g, dtype=D)


def _inner(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a * b).sum())


# ---------------------------------------------------------------------------------------------
# 1. the layers against torch, adjoints and row forms

CONV_CASES = [
    # in_shape, out_channels, kernel, padding, pool
    ((1, 6, 6), 2, 3, 0, 1),
    ((1, 8, 8), 3, 3, 2, 1),
    ((3, 8, 8), 4, 3, 0, 2),
    ((2, 8, 6), 3, 5, 2, 2),
    ((3, 9, 9), 2, 2, 1, 3),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("pool", [2, 3, 4])
def test_pooling_and_its_adjoint_equal_torch_bit_for_bit(pool, dtype):
    """The CPU pooling (strided additions in avg_pool2d's order) is F.avg_pool2d bit for bit,
    over entries of very different sizes (an order change would round differently), for a
    dense and a convolutional layer; its adjoint is the expanded copy of G / pool^2."""
    g = _gen(pool)
    n, shape = 5, (2, 12, 24)
    scale = 10.0 ** torch.randint(-4, 5, (n, *shape), generator=g)
    X = (torch.randn(n, *shape, generator=g, dtype=torch.float64) * scale).to(dtype)
    want = F.avg_pool2d(X, pool)
    dense = Dense(math.prod(want.shape[1:]), 3, in_shape=shape, pool=pool)
    assert torch.equal(dense.patches(X.reshape(n, -1)), want.reshape(n, -1))
    conv = Conv2d(shape, 3, 1, pool=pool)
    W, b = torch.ones(3, 2, 1, 1, dtype=dtype), torch.zeros(3, dtype=dtype)
    assert torch.equal(conv.forward(X.reshape(n, -1), W, b),
                       F.conv2d(want, W, b).reshape(n, -1))
    G = torch.randn(want.shape, generator=g, dtype=dtype)
    h, w = want.shape[2:]
    spread = (G / pool**2)[:, :, :, None, :, None].expand(n, 2, h, pool, w, pool)
    eye = torch.eye(dense.in_features, dtype=dtype)  # the adjoint of the pooling alone
    square = Dense(dense.in_features, dense.in_features, in_shape=shape, pool=pool)
    assert torch.equal(square.adjoint(G.reshape(n, -1), eye), spread.reshape(n, -1))


@pytest.mark.parametrize("in_shape,out_c,k,pad,pool", CONV_CASES)
def test_conv_forward_matches_torch(in_shape, out_c, k, pad, pool):
    g = _gen(1)
    layer = Conv2d(in_shape, out_c, k, padding=pad, pool=pool)
    n = 4
    X = _randn(n, layer.input_size, g=g)
    W, b = _randn(*layer.weight_shape, g=g), _randn(out_c, g=g)
    assert layer.weight_shape == (out_c, in_shape[0], k, k)
    imgs = X.reshape(n, *in_shape)
    if pool > 1:
        imgs = F.avg_pool2d(imgs, pool)
    want = F.conv2d(imgs, W, b, padding=pad)
    assert tuple(want.shape[1:]) == layer.out_shape
    U = layer.forward(X, W, b)
    assert U.shape == (n, layer.out_features) and U.dtype == D
    torch.testing.assert_close(U, want.reshape(n, -1), rtol=0, atol=1e-12)


@pytest.mark.parametrize("in_shape,out_c,k,pad,pool", CONV_CASES)
def test_conv_adjoint_is_the_transpose(in_shape, out_c, k, pad, pool):
    g = _gen(2)
    layer = Conv2d(in_shape, out_c, k, padding=pad, pool=pool)
    n = 3
    X = _randn(n, layer.input_size, g=g)
    W = _randn(*layer.weight_shape, g=g)
    G = _randn(n, layer.out_features, g=g)
    A = layer.adjoint(G, W)
    assert A.shape == X.shape
    lhs = _inner(layer.forward(X, W, torch.zeros(out_c, dtype=D)), G)
    assert lhs == pytest.approx(_inner(X, A), rel=0, abs=1e-10)
    # and it is the same map as autograd's vector-Jacobian product
    Xr = X.clone().requires_grad_()
    (layer.forward(Xr, W, torch.zeros(out_c, dtype=D)) * G).sum().backward()
    torch.testing.assert_close(A, Xr.grad, rtol=0, atol=1e-10)


@pytest.mark.parametrize("in_shape,out_c,k,pad,pool", CONV_CASES)
def test_conv_rows_and_patches(in_shape, out_c, k, pad, pool):
    g = _gen(3)
    layer = Conv2d(in_shape, out_c, k, padding=pad, pool=pool)
    n = 3
    X = _randn(n, layer.input_size, g=g)
    W, b = _randn(*layer.weight_shape, g=g), _randn(out_c, g=g)
    U = layer.forward(X, W, b)
    P = layer.patches(X)
    positions = layer.out_shape[1] * layer.out_shape[2]
    assert P.shape == (n * positions, in_shape[0] * k * k)
    R = layer.to_rows(U)
    assert R.shape == (n * positions, out_c)
    torch.testing.assert_close(R, P @ W.reshape(out_c, -1).T + b, rtol=0, atol=1e-10)
    # row i*positions + p holds sample i at output position p
    torch.testing.assert_close(R[positions + 1], U.reshape(n, out_c, -1)[1, :, 1])
    assert torch.equal(layer.from_rows(R, n), U)
    V = _randn(n, layer.out_features, g=g)
    assert torch.equal(layer.from_rows(layer.to_rows(V), n), V)


@pytest.mark.parametrize("in_shape,out_c,k,pad,pool", CONV_CASES)
def test_conv_patches_equal_torch_unfold(in_shape, out_c, k, pad, pool):
    """The im2col rows, built from a strided view, are F.unfold's columns transposed."""
    layer = Conv2d(in_shape, out_c, k, padding=pad, pool=pool)
    n = 3
    X = _randn(n, layer.input_size, g=_gen(4))
    imgs = X.reshape(n, *in_shape)
    if pool > 1:
        imgs = F.avg_pool2d(imgs, pool)
    cols = F.unfold(imgs, k, padding=pad)  # (n, C k k, positions)
    assert torch.equal(layer.patches(X), cols.transpose(1, 2).reshape(-1, cols.shape[1]))


@pytest.mark.parametrize("in_shape,out_c,k,pad,pool", CONV_CASES)
def test_conv_design_is_the_rows_regression(in_shape, out_c, k, pad, pool):
    """The W-step design of a convolution (conv2d, and its weight gradient: oneDNN's, or the
    batched product for one input channel) is the regression on the im2col rows, laid out
    channel-major like forward; for a dense layer it is the rows themselves."""
    g = _gen(5)
    layer = Conv2d(in_shape, out_c, k, padding=pad, pool=pool)
    n = 3
    X = _randn(n, layer.input_size, g=g)
    theta = _randn(out_c, in_shape[0] * k * k + 1, g=g)  # [W, b]: the MM loop's column slices
    W, b = theta[:, :-1], theta[:, -1]
    design = layer.design(X)
    assert torch.equal(design.rows, layer.patches(X))
    assert design.signed is bool((X < 0).any())
    U = design.apply(W, b)
    torch.testing.assert_close(U, layer.forward(X, W.reshape(layer.weight_shape), b),
                               rtol=0, atol=1e-12)
    torch.testing.assert_close(layer.to_rows(U), design.rows @ W.T + b, rtol=0, atol=1e-10)
    G = _randn(n, layer.out_features, g=g)
    gW, gb = design.adjoint(G)
    R = layer.to_rows(G)
    torch.testing.assert_close(gW, R.T @ design.rows, rtol=0, atol=1e-10)
    torch.testing.assert_close(gb, R.sum(0), rtol=0, atol=1e-12)
    assert design.signed is False or layer.design(X.abs()).signed is False
    dense = Dense(layer.out_features, 4)
    rows = dense.design(U)
    assert rows.rows is U and rows.signed is None
    G4 = _randn(n, 4, g=g)
    torch.testing.assert_close(rows.adjoint(G4)[0], G4.T @ U, rtol=0, atol=1e-12)
    torch.testing.assert_close(rows.adjoint(G4)[1], G4.sum(0), rtol=0, atol=1e-12)


@pytest.mark.parametrize("in_shape,pool", [((2, 4, 4), 2), ((3, 6, 6), 3), ((1, 8, 8), 1)])
def test_pooled_dense_layer(in_shape, pool):
    g = _gen(4)
    c, h, w = in_shape
    d_in = c * (h // pool) * (w // pool)
    layer = Dense(d_in, 5, pool=pool, in_shape=in_shape if pool > 1 else None)
    n = 4
    X = _randn(n, c * h * w, g=g)
    W, b = _randn(5, d_in, g=g), _randn(5, g=g)
    assert layer.input_size == c * h * w and layer.weight_shape == (5, d_in)
    pooled = F.avg_pool2d(X.reshape(n, *in_shape), pool).flatten(1)
    U = layer.forward(X, W, b)
    torch.testing.assert_close(U, F.linear(pooled, W, b), rtol=0, atol=1e-12)
    G = _randn(n, 5, g=g)
    A = layer.adjoint(G, W)
    assert A.shape == X.shape
    lhs = _inner(layer.forward(X, W, torch.zeros(5, dtype=D)), G)
    assert lhs == pytest.approx(_inner(X, A), rel=0, abs=1e-10)
    P = layer.patches(X)
    assert P.shape == (n, d_in)
    torch.testing.assert_close(layer.to_rows(U), P @ W.T + b, rtol=0, atol=1e-10)
    assert torch.equal(layer.from_rows(layer.to_rows(U), n), U)


# ---------------------------------------------------------------------------------------------
# 2. validation


@pytest.mark.parametrize("make,message", [
    (lambda: Conv2d((1, 7, 8), 2, 3, pool=2), "pooling by 2 needs H and W divisible by 2"),
    (lambda: Conv2d((1, 8, 9), 2, 3, pool=3), "pooling by 3 needs H and W divisible by 3"),
    (lambda: Dense(12, 4, pool=2, in_shape=(3, 4, 5)), "divisible by 2"),
    (lambda: Conv2d((1, 4, 4), 2, 5),
     r"kernel 5 with padding 0 does not fit the input \(1, 4, 4\)"),
    (lambda: Conv2d((1, 8, 8), 2, 5, pool=2), r"kernel 5 .* does not fit the input \(1, 4, 4\)"),
    (lambda: Conv2d((1, 8), 2, 3), r"input shape must be \(C, H, W\)"),
    (lambda: Conv2d((0, 8, 8), 2, 3), r"input shape must be \(C, H, W\)"),
    (lambda: Conv2d((1, 8, 8), 0, 3), "out_channels >= 1"),
    (lambda: Conv2d((1, 8, 8), 2, 3, padding=-1), "padding >= 0"),
    (lambda: Conv2d((1, 8, 8), 2, 3, pool=0), "pooling size must be >= 1"),
    (lambda: Conv2d((1, 8, 8), 2, 3, activation="nope"), "nope"),
    (lambda: Dense(10, 4, pool=2), r"pooling needs the input's \(C, H, W\) shape"),
    (lambda: Dense(10, 4, pool=2, in_shape=(1, 8, 8)), "has 16 features, not 10"),
    (lambda: Dense(0, 4), "layer sizes must be >= 1"),
    (lambda: Network((Conv2d((1, 8, 8), 2, 3), Dense(50, 3))), "72 outputs feed 50 inputs"),
    (lambda: Network((Conv2d((1, 8, 8), 2, 3), Conv2d((8, 3, 3), 2, 3), Dense(2, 3))),
     r"a convolution's output \(2, 6, 6\) feeds an input of shape \(8, 3, 3\)"),
])
def test_layer_validation(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_params_of_the_wrong_shape_are_refused():
    net = network(SMALL)
    params = net.init_params(generator=_gen(), dtype=D)
    W, b = params[0]
    bad = [(W.reshape(3, 9), b), *params[1:]]  # a dense layout for a convolution
    with pytest.raises(ValueError, match=r"layer 0: expected W \(3, 1, 3, 3\)"):
        net.forward(bad, torch.zeros(2, 64, dtype=D))
    with pytest.raises(ValueError, match=r"layer 0: expected W \(3, 1, 3, 3\)"):
        to_torch(net, bad)


@pytest.mark.parametrize("spec,message", [
    ("64-conv6k5-10", "a convolution needs an image input"),
    ("1x28x28-convX-10", "cannot read 'convX'"),
    ("1x28x28-conv6k5-pool2", "pooling must be followed by a layer"),
    ("1x28x28-conv6k5", "the output layer must be dense"),
    ("1x28x28-120-conv6k5", "a convolution cannot follow a dense layer"),
    ("1x8x8-32-conv4k3-10", "a convolution cannot follow a dense layer"),
    ("1x8x8-pool2-pool2-10", "two pooling tokens in a row"),
    ("1x8x8-conv4k3p1-pool2-pool2-10", "two pooling tokens in a row"),
    ("1x8x8-conv99999999999k3-10", "99999999999 is too large"),
    ("64-99999999999999999999-10", "99999999999999999999 is too large"),
    ((64, 2**40, 10), "1099511627776 is too large"),
    ("1x8x8-conv4k9-10", "does not fit"),
    ("1x7x7-pool2-10", "divisible by 2"),
    ("64-pool2-10", "pooling needs an image input"),
    ("relu-conv6k5-10", "the first token must be a width or CxHxW"),
    ("784-3oo-10", "architecture must look like"),
])
def test_network_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        network(spec)


# ---------------------------------------------------------------------------------------------
# 3. architecture strings


def test_lenet5_network():
    assert lenet5_spec() == LENET
    net = network(lenet5_spec())
    assert net.spec == LENET and network(net.spec).spec == net.spec
    assert network(net.spec) == net
    assert net.sizes == (784, 4704, 1600, 120, 84, 10)
    assert [type(la).__name__ for la in net.layers] == [
        "Conv2d", "Conv2d", "Dense", "Dense", "Dense"]
    assert [la.pool for la in net.layers] == [1, 2, 2, 1, 1]
    assert net.layers[0].padding == 2 and net.layers[1].padding == 0
    assert net.layers[1].in_shape == (6, 28, 28) and net.layers[1].out_shape == (16, 10, 10)
    assert net.layers[2].in_shape == (16, 10, 10) and net.layers[2].in_features == 400
    assert [la.activation for la in net.layers] == ["relu"] * 4 + ["simplex"]
    assert not net.plain and net.n_hidden == 4
    params = net.init_params(generator=_gen())
    assert [tuple(W.shape) for W, _ in params] == [la.weight_shape for la in net.layers]
    assert [tuple(W.shape) for W, _ in params] == [
        (6, 1, 5, 5), (16, 6, 5, 5), (120, 400), (84, 120), (10, 84)]
    assert [tuple(b.shape) for _, b in params] == [(6,), (16,), (120,), (84,), (10,)]
    conv = nn.Conv2d(1, 6, 5)
    assert tuple(conv.weight.shape) == tuple(params[0][0].shape)  # nn.Conv2d layout


def test_lenet5_for_cifar_shapes():
    spec = lenet5_spec((3, 32, 32))
    assert spec == "3x32x32-conv6k5-pool2-conv16k5-pool2-120-84-10"
    net = network(spec)
    assert net.layers[0].padding == 0
    assert net.sizes == (3072, 6 * 28 * 28, 16 * 10 * 10, 120, 84, 10)
    assert net.spec == spec
    assert lenet5_spec((1, 28, 28), 5).endswith("-84-5")
    with pytest.raises(ValueError, match="at least 28x28 pixels, got 27x32"):
        lenet5_spec((3, 27, 32))
    with pytest.raises(ValueError, match=r"image shape \(C, H, W\), got \(28, 28\)"):
        lenet5_spec((28, 28))


@pytest.mark.parametrize("spec", [
    SMALL,
    "1x8x8-conv2k3p1-10",
    "1x8x8-pool2-10",
    "2x6x6-conv3k3p2-pool2-conv2k2-4",
    "3x8x8-pool2-conv4k1-pool2-7-2",
])
def test_spec_round_trip(spec):
    net = network(spec)
    assert net.spec == spec
    again = network(net.spec)
    assert again == net and again.spec == spec


def test_dense_specs_still_give_the_mlp():
    for spec, kw in [("784-300-10", {}), ("64-40-10", {"activation": "tanh"}),
                     ("8-16-3", {"loss": "mse"})]:
        net = network(spec, **kw)
        assert net == mlp(spec, **kw)
        assert net.plain and net.spec == spec
        assert all(type(la) is Dense and la.pool == 1 and la.in_shape is None
                   for la in net.layers)
    assert network([784, 300, 10]) == mlp("784-300-10")


def test_activations_per_layer():
    net = network(SMALL, activations=["tanh", "sigmoid", "relu", "simplex"])
    assert [la.activation for la in net.layers] == ["tanh", "sigmoid", "relu", "simplex"]
    with pytest.raises(ValueError, match="3 activations for 4 layers"):
        network(SMALL, activations=["tanh", "relu", "simplex"])


# ---------------------------------------------------------------------------------------------
# 4. export to torch.nn


def _check_torch_copy(net: Network, params, X: torch.Tensor) -> nn.Sequential:
    model = to_torch(net, params)
    with torch.no_grad():
        torch.testing.assert_close(model(X), net.forward(params, X), rtol=0, atol=1e-10)
    convs = [m for m in model if isinstance(m, nn.Conv2d)]
    lins = [m for m in model if isinstance(m, nn.Linear)]
    pools = [m for m in model if isinstance(m, nn.AvgPool2d)]
    conv_layers = [(la, p) for la, p in zip(net.layers, params, strict=True)
                   if isinstance(la, Conv2d)]
    dense_layers = [(la, p) for la, p in zip(net.layers, params, strict=True)
                    if isinstance(la, Dense)]
    assert len(convs) == len(conv_layers) and len(lins) == len(dense_layers)
    assert [m.kernel_size for m in pools] == [la.pool for la in net.layers if la.pool > 1]
    for m, (la, (W, b)) in zip(convs, conv_layers, strict=True):
        assert m.padding == (la.padding, la.padding) and m.kernel_size == (la.kernel_size,) * 2
        assert torch.equal(m.weight.detach(), W) and torch.equal(m.bias.detach(), b)
        assert m.weight.data_ptr() != W.data_ptr()  # a copy
    for m, (_, (W, b)) in zip(lins, dense_layers, strict=True):
        assert torch.equal(m.weight.detach(), W) and torch.equal(m.bias.detach(), b)
    return model


def test_to_torch_of_a_conv_network():
    net = network(SMALL, activation="tanh")
    g = _gen(5)
    params = net.init_params(generator=g, dtype=D, scheme="normal", bias=0.1)
    X = _randn(6, 64, g=g)
    model = _check_torch_copy(net, params, X)
    assert sum(isinstance(m, nn.Tanh) for m in model) == 3
    assert model(X).shape == (6, 3)
    lenet = network(LENET)
    lp = lenet.init_params(generator=g, dtype=D)
    _check_torch_copy(lenet, lp, _randn(2, 784, g=g))


# ---------------------------------------------------------------------------------------------
# 5. saved models


def test_save_and_load_a_conv_network(tmp_path):
    net = network(SMALL, activations=["tanh", "relu", "sigmoid", "simplex"])
    g = _gen(6)
    params = net.init_params(generator=g, dtype=D, bias=0.2)
    path = save_model(tmp_path / "conv.pt", net, params, {"note": "conv"})
    net2, params2, meta = load_model(path)
    assert net2 == net and net2.spec == SMALL
    assert [la.activation for la in net2.layers] == ["tanh", "relu", "sigmoid", "simplex"]
    assert meta == {"note": "conv"}
    assert len(params2) == len(params)
    for (W, b), (W2, b2) in zip(params, params2, strict=True):
        assert W2.shape == W.shape and torch.equal(W2, W) and torch.equal(b2, b)
    X = _randn(7, 64, g=g)
    assert torch.equal(net2.predict(params2, X), net.predict(params, X))
    torch.testing.assert_close(net2.forward(params2, X), net.forward(params, X), rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------
# 6. back-propagation on a convolutional network

BLOB_ARCH = "1x8x8-conv4k3p1-pool2-conv8k3p1-pool2-4"


def blob_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """8x8 noisy images with a bright 2x2 blob somewhere in one quadrant; label = quadrant."""
    g = _gen(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    imgs = 0.3 * torch.randn(n, 1, 8, 8, generator=g, dtype=D)
    offs = torch.randint(0, 3, (n, 2), generator=g)
    for i in range(n):
        r = 4 * (int(y[i]) // 2) + int(offs[i, 0])
        c = 4 * (int(y[i]) % 2) + int(offs[i, 1])
        imgs[i, 0, r : r + 2, c : c + 2] += 2.0
    return imgs.reshape(n, 64), y


def _train(seed: int, X, y):
    net = network(BLOB_ARCH)
    res = fit(get_method("backprop", lr=1e-2), net, X, y, epochs=8, batch_size=25, seed=seed,
              progress=False)
    return net, res


def test_backprop_trains_a_conv_network():
    X, y = blob_data(300, seed=0)
    Xt, yt = blob_data(200, seed=1)
    net, res = _train(0, X, y)
    params = [(W.detach(), b.detach()) for W, b in res.state.params]
    assert [tuple(W.shape) for W, _ in params] == [(4, 1, 3, 3), (8, 4, 3, 3), (4, 32)]
    assert all(W.dtype == D for W, _ in params)
    train_acc = float((net.predict(params, X) == y).double().mean())
    test_acc = float((net.predict(params, Xt) == yt).double().mean())
    assert train_acc > 0.8 and test_acc > 0.75  # chance is 0.25
    assert res.history[-1]["train_accuracy"] == pytest.approx(train_acc)
    assert res.history[-1]["objective"] < res.history[0]["objective"]
    # deterministic for a fixed seed, different for another seed
    _, again = _train(0, X, y)
    for (W, b), (W2, b2) in zip(res.state.params, again.state.params, strict=True):
        assert torch.equal(W, W2) and torch.equal(b, b2)
    _, other = _train(1, X, y)
    assert not torch.equal(other.state.params[0][0], res.state.params[0][0])
    # the trained network exported to torch.nn computes the same function
    _check_torch_copy(net, params, Xt[:20])


# ---------------------------------------------------------------------------------------------
# 7. methods without convolutions


@pytest.mark.parametrize("key,loss", [("lifted", "ce"), ("admm", "mse"), ("pbcd", "mse")])
def test_methods_without_conv_support_refuse_conv_networks(key, loss):
    method = get_method(key)
    assert not type(method).supports_conv
    X, y = blob_data(20, seed=2)
    net = network(BLOB_ARCH, loss=loss)
    Y = F.one_hot(y, 4).to(D)
    target = y if loss == "ce" else Y
    with pytest.raises(ValueError, match=r"does not support Conv2d layers \(layer 0\).*backprop"):
        fit(method, net, X, target, epochs=1, batch_size=0, progress=False)
    with pytest.raises(ValueError, match=rf"{type(method).__name__} does not support Conv2d"):
        method.init_state(net, X, Y, generator=_gen())
    pooled = network("1x8x8-pool2-4", loss=loss)
    with pytest.raises(ValueError, match="does not support pooling layers"):
        method.init_state(pooled, X, Y, generator=_gen())
    assert get_method("backprop").check_network(net) is None


# ---------------------------------------------------------------------------------------------
# 8. the command line


def test_cli_trains_lenet5_on_mnist(tmp_path, data_dir, capsys):
    out, model = tmp_path / "r.json", tmp_path / "m.pt"
    code = main(["train", "--method", "backprop", "--arch", "lenet5", "--dataset", "mnist",
                 "--n-train", "200", "--epochs", "1", "--batch-size", "100",
                 "--data-dir", str(data_dir), "--out", str(out), "--save", str(model),
                 "--quiet"])
    assert code == 0, capsys.readouterr().err
    rec = json.loads(out.read_text())
    assert rec["arch"] == lenet5_spec() == LENET
    assert rec["method"] == "backprop" and rec["dataset"] == "mnist"
    assert rec["config"]["n_train"] == 200 and len(rec["history"]) == 1
    assert 0 <= rec["test_accuracy"] <= 1
    net, params, _ = load_model(model)
    assert net.spec == LENET and tuple(params[0][0].shape) == (6, 1, 5, 5)


def test_cli_fenchel_lenet5_takes_its_own_defaults_and_flags_win(tmp_path, data_dir, capsys):
    out = tmp_path / "r.json"
    args = ["train", "--method", "fenchel", "--arch", "lenet5", "--dataset", "mnist",
            "--n-train", "100", "--epochs", "1", "--batch-size", "100",
            "--max-inner", "5", "--data-dir", str(data_dir), "--out", str(out), "--quiet"]
    assert main(args) == 0, capsys.readouterr().err
    cfg = json.loads(out.read_text())["config"]
    assert cfg["lams"] == [5.0, 5.0, 1.0, 1.0] and cfg["loss_weight"] == 1.0
    assert cfg["gammas"] == [1e-4, 1e-2, 1.0, 1.0, 1.0]
    assert cfg["target_extrapolation"] == [300.0, 30.0, 1.0, 1.0]
    assert main([*args, "--target-extrapolation", "1,1,1,1", "--loss-weight", "2"]) == 0
    cfg = json.loads(out.read_text())["config"]
    assert cfg["target_extrapolation"] == [1.0, 1.0, 1.0, 1.0] and cfg["loss_weight"] == 2.0
    assert cfg["lams"] == [5.0, 5.0, 1.0, 1.0]


def test_cli_lenet5_on_8x8_digits_is_a_clear_error(tmp_path, capsys):
    out = tmp_path / "r.json"
    code = main(["train", "--method", "backprop", "--arch", "lenet5", "--dataset", "digits",
                 "--epochs", "1", "--out", str(out), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("liftnet: error:") and "at least 28x28" in err
    assert "Traceback" not in err and not out.exists()
