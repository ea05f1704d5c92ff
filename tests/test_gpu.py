"""Every method trains on a CUDA device to the same iterates as on the CPU (float64).

These run where a GPU is present (the project's lent GPU machine); CI machines have none, so
there they skip with that reason.  The CPU-only methods (a cvxpy solve) are listed in CPU_ONLY.
"""

from __future__ import annotations

import pytest
import torch

from conftest import teacher_data
from liftnet import METHODS, fit, get_method, mlp, to_torch

CUDA = torch.cuda.is_available()
CPU_ONLY = {"convex"}  # solved by cvxpy on the CPU
BATCH = {"admm": 0}  # full-batch-only methods
FAST = {"backprop": {"lr": 1e-2}, "fenchel": {"gamma": 1.0, "gamma_out": 1.0}}
KEYS = [k for k in METHODS if k not in CPU_ONLY]

pytestmark = pytest.mark.skipif(not CUDA, reason="needs a CUDA device")


def _train(key: str, device: str):
    X, y = teacher_data(n=300)
    X, y = X.to(device), y.to(device)
    net = mlp("8-12-3", loss=METHODS[key].losses[0])
    method = get_method(key, **FAST.get(key, {}))
    res = fit(method, net, X[:240], y[:240], epochs=2, batch_size=BATCH.get(key, 60), seed=0,
              X_test=X[240:], y_test=y[240:], progress=False)
    return net, res


@pytest.mark.parametrize("key", KEYS)
def test_gpu_matches_cpu(key):
    net, cpu = _train(key, "cpu")
    _, gpu = _train(key, "cuda")
    for (Wc, bc), (Wg, bg) in zip(cpu.state.params, gpu.state.params, strict=True):
        assert Wg.device.type == "cuda"
        torch.testing.assert_close(Wg.cpu(), Wc, rtol=1e-6, atol=1e-8)
        torch.testing.assert_close(bg.cpu(), bc, rtol=1e-6, atol=1e-8)
    assert gpu.history[-1]["test_accuracy"] == pytest.approx(cpu.history[-1]["test_accuracy"])
    model = to_torch(net, gpu.state.params)
    X = teacher_data(n=20, seed=5)[0].cuda()
    with torch.no_grad():
        torch.testing.assert_close(model(X), net.forward(gpu.state.params, X))


def test_bregman_mnist_shape_on_gpu():
    """The default 784-64-64-64-10 Bregman step runs on the GPU in float32."""
    net = mlp("784-64-64-64-10")
    g = torch.Generator().manual_seed(0)
    X = torch.rand(100, 784, generator=g).cuda()
    y = torch.randint(0, 10, (100,), generator=g).cuda()
    res = fit(get_method("bregman"), net, X, y, epochs=1, batch_size=50, progress=False)
    assert all(W.is_cuda and torch.isfinite(W).all() for W, _ in res.state.params)
