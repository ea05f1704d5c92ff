"""Moving weights between liftnet and ``torch.nn`` (a copy, never a transpose)."""

from __future__ import annotations

import copy
import numbers
import os
from pathlib import Path

import torch
from torch import nn

from .activations import ACTIVATIONS, get_activation
from .graph import Dense, Network, Params
from .layers import Conv2d
from .results import atomic_save
from .training import check_inputs


class Standardize(nn.Module):
    """x -> (x - mean) / std, feature by feature: the standardisation a network was trained
    behind (``--standardize``), as the first module of :func:`to_torch`'s network."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.detach().clone())
        self.register_buffer("std", std.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def to_torch(net: Network, params: Params, *, input_mean: torch.Tensor | None = None,
             input_std: torch.Tensor | None = None) -> nn.Sequential:
    """An ``nn.Sequential`` of ``nn.Linear`` / ``nn.Conv2d`` and activation modules with
    ``params`` copied in; it takes flat inputs ``(N, d_0)`` like every liftnet network.
    ``input_mean`` and ``input_std`` (``(d_0,)``, a standardised training run's statistics,
    ``Dataset.input_mean`` / ``input_std``) put a :class:`Standardize` module first, so that
    the network takes the raw inputs.

    A convolution is wrapped as ``Unflatten -> [AvgPool2d] -> Conv2d -> Flatten`` and a pooled
    dense layer as ``Unflatten -> AvgPool2d -> Flatten -> Linear``, so activations stay flat.
    The output layer carries no activation: its output is the logits (``ce``, to be fed to
    ``nn.CrossEntropyLoss``) or the prediction (``mse``), as in the feed-forward rule.
    """
    net.check_params(params)
    modules: list[nn.Module] = []
    if (input_mean is None) != (input_std is None):
        raise ValueError("to_torch: give both input_mean and input_std, or neither")
    if input_mean is not None:
        W = params[0][0]
        stats = [torch.as_tensor(v, dtype=W.dtype, device=W.device).reshape(-1)
                 for v in (input_mean, input_std)]
        d = net.layers[0].input_size
        if any(len(v) != d for v in stats):
            raise ValueError(f"to_torch: input_mean and input_std must have the network's {d} "
                             f"inputs, got {len(stats[0])} and {len(stats[1])}")
        if not all(bool(torch.isfinite(v).all()) for v in stats) or not bool(
                (stats[1] > 0).all()):
            raise ValueError("to_torch: input_mean must be finite and input_std finite and > 0")
        modules.append(Standardize(*stats))
    for l, (layer, (W, b)) in enumerate(zip(net.layers, params, strict=True)):
        if layer.pool > 1 or isinstance(layer, Conv2d):
            modules.append(nn.Unflatten(1, layer.in_shape))
        if layer.pool > 1:
            modules.append(nn.AvgPool2d(layer.pool))
        if isinstance(layer, Conv2d):
            lin: nn.Module = nn.Conv2d(layer.in_shape[0], layer.out_channels, layer.kernel_size,
                                       padding=layer.padding, dtype=W.dtype, device=W.device)
        else:
            if layer.pool > 1:
                modules.append(nn.Flatten())
            lin = nn.Linear(layer.in_features, layer.out_features, dtype=W.dtype,
                            device=W.device)
        with torch.no_grad():
            lin.weight.copy_(W)
            lin.bias.copy_(b)
        modules.append(lin)
        if isinstance(layer, Conv2d):
            modules.append(nn.Flatten())
        if l < len(net.layers) - 1:
            modules.append(get_activation(layer.activation).torch_module())
    return nn.Sequential(*modules)


def export_program(net: Network, params: Params, path: str | os.PathLike, *,
                   input_mean: torch.Tensor | None = None,
                   input_std: torch.Tensor | None = None) -> Path:
    """Write the feed-forward network as a ``torch.export`` program (a ``.pt2`` file):
    ``torch.export.load(path).module()`` runs it on flat inputs ``(N, d_0)`` for any batch size,
    in the weights' dtype (float64 inputs for a ``--dtype float64`` model), with torch alone (no
    liftnet, no Python class of ours); with ``input_mean`` / ``input_std`` (see
    :func:`to_torch`) on raw inputs, standardised inside the program.  Serialised in memory,
    then written atomically: torch's zip writer never sees a file that fails (a full disk is
    an OSError naming the file)."""
    model = to_torch(net, params, input_mean=input_mean, input_std=input_std).eval()
    W = params[0][0]
    example = torch.zeros(2, net.layers[0].input_size, dtype=W.dtype, device=W.device)
    try:
        program = torch.export.export(model, (example,),
                                      dynamic_shapes=({0: torch.export.Dim("batch")},))
    except Exception as exc:  # torch.export reports an untraceable module in many types
        detail = str(exc).strip().split("\n")[0]
        raise ValueError(f"torch.export cannot export {net.spec}: {detail}") from exc
    return atomic_save(path, lambda fh: torch.export.save(program, fh))


_MODULE_NAMES = {
    nn.ReLU: "relu",
    nn.Sigmoid: "sigmoid",
    nn.Tanh: "tanh",
    nn.Identity: "identity",
}


def from_torch(model: nn.Sequential, *, loss: str = "ce") -> tuple[Network, Params]:
    """The network description and parameters of an ``nn.Sequential`` of Linear/activation
    modules (the inverse of :func:`to_torch` for dense networks: an activation module is read
    as the registered activation whose ``torch_module()`` it equals, same class and settings);
    parameters are detached copies."""
    if isinstance(model, nn.Linear):
        model = nn.Sequential(model)
    if not isinstance(model, nn.Sequential):
        raise ValueError(f"from_torch reads an nn.Sequential of Linear layers and activations, "
                         f"got {type(model).__name__}")
    flat = []
    stack = list(model)[::-1]
    while stack:  # nested Sequentials read as one sequence
        module = stack.pop()
        if isinstance(module, nn.Sequential):
            stack.extend(list(module)[::-1])
        else:
            flat.append(module)
    layers: list[Dense] = []
    params: Params = []
    pending: nn.Linear | None = None
    for module in flat:
        if isinstance(module, nn.Linear):
            if pending is not None:
                layers.append(Dense(pending.in_features, pending.out_features, "identity"))
                params.append(_copy(pending))
            pending = module
        elif pending is not None:
            name = _activation_name(module)
            layers.append(Dense(pending.in_features, pending.out_features, name))
            params.append(_copy(pending))
            pending = None
        else:
            raise ValueError(
                f"cannot import {type(module).__name__}: from_torch reads Linear layers and "
                "activations only (it does not follow a Linear)"
            )
    if pending is None:
        raise ValueError("the last module must be nn.Linear (the output layer, no activation)")
    out_act = "simplex" if loss == "ce" else "identity"
    layers.append(Dense(pending.in_features, pending.out_features, out_act))
    params.append(_copy(pending))
    return Network(tuple(layers), loss), params


def _activation_name(module: nn.Module) -> str:
    """The registered activation whose ``torch_module()`` is ``module``: the same class, and
    the same outputs on a probe (so settings kept outside ``extra_repr`` count too)."""
    for cls, name in _MODULE_NAMES.items():
        if type(module) is cls:
            return name
    # wide enough for settings that act far out (nn.Softplus's threshold, up to 40)
    probe = torch.linspace(-40.0, 40.0, 801, dtype=torch.float64)
    for name, act in ACTIVATIONS.items():
        try:
            ref = act.torch_module()
        except NotImplementedError:
            continue
        if type(ref) is not type(module):
            continue
        with torch.no_grad():
            try:
                same = torch.allclose(ref.double()(probe), copy.deepcopy(module).double()(probe),
                                      rtol=1e-12, atol=1e-12, equal_nan=True)
            except Exception:  # a module that takes no 1-D float64 input: not comparable
                same = False
        if same:
            return name
    if isinstance(module, nn.LeakyReLU):
        raise ValueError(f"nn.LeakyReLU with negative_slope {module.negative_slope} has no "
                         "registered liftnet activation")
    if isinstance(module, nn.Hardtanh):
        raise ValueError(f"nn.Hardtanh with bounds {(module.min_val, module.max_val)} has no "
                         "registered activation")
    if isinstance(module, nn.Softplus):
        raise ValueError("only nn.Softplus(beta=1, threshold=20) maps to 'softplus'")
    raise ValueError(f"cannot import activation module {module!r}: no registered activation "
                     "has it as its torch module")


def _copy(lin: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    b = lin.bias if lin.bias is not None else torch.zeros(lin.out_features, dtype=lin.weight.dtype)
    return lin.weight.detach().clone(), b.detach().clone()


def calibrate_output(
    net: Network, params: Params, X: torch.Tensor, y: torch.Tensor, *, iters: int = 60
) -> tuple[Params, float]:
    """Scale the output layer for a softmax cross-entropy network; argmax is unchanged.

    The lifted network's output layer is fitted to points of the simplex by least squares, so
    its logits span about [0, 1] and a softmax of them is nearly uniform: a poor starting point
    for cross-entropy training.  This returns ``params`` with (W_L, b_L) multiplied by the
    temperature ``tau = argmin_{tau > 0} mean_i CE(y_i, tau * f(x_i))`` (a convex problem in
    tau, solved by bisection on its derivative over log tau in [1e-3, 1e4]), and ``tau``.
    """
    if net.loss != "ce":
        raise ValueError("calibrate_output applies to cross-entropy networks")
    if isinstance(iters, bool) or not isinstance(iters, numbers.Integral) or iters < 1:
        raise ValueError(f"iters must be a positive integer, got {iters!r}")
    net.check_params(params)
    check_inputs(net, X, y, "calibration")
    if X.dtype != params[0][0].dtype:
        raise ValueError(f"calibration inputs are {X.dtype} but the weights {params[0][0].dtype}")
    logits = net.outputs(params, X).double()
    if not torch.isfinite(logits).all():
        raise ValueError("the network's outputs on the calibration inputs contain NaN or "
                         "infinite values: no temperature fits them (check the weights)")
    y = y.long()

    def slope(tau: float) -> float:  # d/dtau mean CE = mean(sum_k p_k z_k - z_y)
        p = torch.softmax(tau * logits, dim=1)
        return float(((p * logits).sum(1) - logits.gather(1, y[:, None]).squeeze(1)).mean())

    lo, hi = -3.0, 4.0  # log10 tau
    if slope(10**hi) < 0:
        tau = 10**hi
    elif slope(10**lo) > 0:
        tau = 10**lo
    else:
        for _ in range(iters):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if slope(10**mid) < 0 else (lo, mid)
        tau = 10 ** (0.5 * (lo + hi))
    W, b = params[-1]
    return [*params[:-1], (W * tau, b * tau)], tau
