"""Data-parallel training on ``torch.distributed``.

Every process holds a shard of the samples.  In a lifted model the activation variables of a
sample belong to that sample, so the X-steps run on each shard without any communication; the
W-steps need sums over all samples, and for a ridge W-step these are its sufficient statistics
(``[X, 1]^T [X, 1]`` and ``[X, 1]^T T``, :func:`liftnet.solvers.gram_stats`), which the
processes all-reduce: a ``(d_in + 1) x (d_in + 1)`` and a ``(d_in + 1) x d_out`` exchange per
layer and sweep (the first only once for the inputs while they stay the same), not one per
sample (``lifted``, and likewise the least-squares W-steps of ``admm`` and ``pbcd``,
whose other blocks are per sample too).  A W-step solved by majorisation (``fenchel``,
``bregman``) sums its Gram matrix once and its ``d_out x (d_in + 1)`` gradient once per MM
iteration, in the primal form (the sample-space form needs every row).  The result is the
single-process sweep on the union of the shards (up to the order of floating-point sums and
the X-step solvers' stopping tests, which each shard applies to its own samples).

A method takes part through its state's ``reducer`` (:class:`LocalReduce` by default): every
sum over samples that a method needs (statistics, sample counts, objective terms) goes through
``state.reducer.sum``, and methods that do so declare ``supports_distributed = True``.  This
module only shards, all-reduces and loops; it knows no method's insides.

Launch one process per device, e.g. ``torchrun --nproc_per_node 2 -m liftnet train --method
lifted ...`` (the CLI shards the data by rank), or from Python::

    torch.distributed.init_process_group("gloo")          # "nccl" on GPUs
    rank, world = dist.get_rank(), dist.get_world_size()
    result = fit_distributed(get_method("lifted"), net, X[rank::world], y[rank::world],
                             epochs=40)
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from .augment import (
    AUGMENT_SEED,
    augment_of_epoch,
    augment_record,
    augmented,
    check_augment,
    method_of_epoch,
    schedule_record,
    scheduled_methods,
)
from .checkpoint import data_record
from .data import check_seed
from .graph import Network, Params
from .methods import METHODS, Method, MethodState
from .methods.base import start_params
from .metrics import accuracy, targets_for
from .training import (
    BestEpoch,
    FitResult,
    _progress,
    check_fit_arguments,
    check_full_batch,
    check_patience,
    detached,
    postfix,
    scores,
)

__all__ = ["AllReduce", "LocalReduce", "fit_distributed", "init_from_env", "local_gpu",
           "world_size_from_env"]


def world_size_from_env() -> int:
    """The number of processes a launcher such as torchrun started (``WORLD_SIZE``; 1 if
    none)."""
    value = os.environ.get("WORLD_SIZE", "1").strip() or "1"
    if not value.isdecimal() or int(value) < 1:
        raise ValueError(f"WORLD_SIZE must be a positive integer, got {value!r}")
    return int(value)


def local_gpu(device: torch.device) -> torch.device:
    """The GPU of this process under a launcher: ``cuda:LOCAL_RANK``, or ``cuda:0`` where each
    process sees one GPU (a launcher that binds one GPU per process).  A ``device`` that
    names another index is a ValueError."""
    local = os.environ.get("LOCAL_RANK", "0").strip() or "0"
    if not local.isdecimal():
        raise ValueError(f"LOCAL_RANK must be a non-negative integer, got {local!r}")
    visible = torch.cuda.device_count()
    index = 0 if visible == 1 else int(local)
    if device.index is not None and device.index != index:
        raise ValueError(f"under a launcher this process (LOCAL_RANK {local}, {visible} visible "
                         f"GPUs) trains on cuda:{index}, not {device}: pass --device cuda "
                         "without an index")
    if index >= visible:
        raise ValueError(f"LOCAL_RANK is {local} but this process sees {visible} GPUs")
    return torch.device("cuda", index)


def init_from_env(device: torch.device) -> torch.device:
    """Join the process group a launcher (torchrun) describes in the environment: gloo on CPU,
    NCCL on CUDA with one GPU per process (:func:`local_gpu`).  Returns this process's
    device."""
    if not dist.is_available():
        raise ValueError("this torch build has no torch.distributed")
    if device.type == "cuda":
        device = local_gpu(device)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


@dataclass(frozen=True)
class LocalReduce:
    """The single-process reducer: a sum over samples is the local sum."""

    def sum(self, t: Tensor) -> Tensor:
        return t


@dataclass(frozen=True)
class AllReduce:
    """Sums over the samples of every process of ``group`` (all-reduce, out of place)."""

    group: Any = None

    def sum(self, t: Tensor) -> Tensor:
        out = t.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM, group=self.group)
        return out


def _check_locally(method: Method, net: Network, X: Tensor, y: Tensor, X_test: Tensor | None,
                   y_test: Tensor | None, epochs: int, batch_size: int, seed: int,
                   X_val: Tensor | None = None, y_val: Tensor | None = None) -> None:
    """The checks of :func:`liftnet.fit`, on this process's shard (ValueError on failure)."""
    if not getattr(method, "supports_distributed", False):
        able = ", ".join(k for k, m in METHODS.items() if getattr(m, "supports_distributed",
                                                                   False))
        raise ValueError(f"{type(method).__name__} does not support distributed training "
                         f"(methods that do: {able})")
    check_seed(seed)
    check_fit_arguments(net, X, y, X_test, y_test, epochs=epochs, batch_size=batch_size,
                        X_val=X_val, y_val=y_val)
    method.check_network(net)


def _augmented_together(augment: Any, X: Tensor, generator: torch.Generator, *,
                        group: Any) -> Tensor:
    """:func:`liftnet.augment.augmented` on this process's share of a batch, and one scalar
    all-reduce (next to the step's many) by which every process learns whether the others'
    augmentation worked: an augmentation that fails on some processes only (a wrong shape for
    one share's size, an exception of the user's callable) is an error on every process
    instead of leaving the others waiting in the W-step's all-reduce."""
    try:
        out, problem = augmented(augment, X, generator), None
    except Exception as exc:  # any error of the user's callable, raised on every process
        out = None  # liftnet's own check names the augmentation already
        problem = str(exc) if isinstance(exc, ValueError) else (
            f"augment {augment!r} raised {type(exc).__name__}: {exc}")
    failed = torch.tensor(0.0 if problem is None else 1.0, dtype=torch.float64,
                          device=X.device)
    dist.all_reduce(failed, group=group)
    if float(failed) > 0:
        world = dist.get_world_size(group)
        reports: list[Any] = [None] * world
        dist.all_gather_object(reports, problem, group=group)
        if problem is not None:
            raise ValueError(problem)
        r, text = next((r, t) for r, t in enumerate(reports) if t is not None)
        raise ValueError(f"process {r} of {world}: {text}")
    return out


def fit_distributed(
    method: Method,
    net: Network,
    X: Tensor,
    y: Tensor,
    *,
    epochs: int,
    batch_size: int | None = None,
    seed: int = 0,
    X_test: Tensor | None = None,
    y_test: Tensor | None = None,
    X_val: Tensor | None = None,
    y_val: Tensor | None = None,
    params: Params | None = None,
    group: Any = None,
    progress: bool | None = None,
    callback: Callable[[dict[str, Any], MethodState], None] | None = None,
    patience: int | None = None,
    min_delta: float = 0.0,
    augment: Callable[[Tensor, torch.Generator], Tensor] | None = None,
    schedule: dict[int, dict[str, Any]] | None = None,
) -> FitResult:
    """Train ``net`` with ``method`` on the union of every process's shard ``(X, y)``.

    Call it on every process of ``group`` (default: the world) with the same method, network
    and settings.  The weights are initialised on every process from ``seed`` and broadcast
    from the group's first process; each process then keeps identical weights.

    Args:
        method: a method with ``supports_distributed`` (e.g. ``lifted``).
        net: the network description.
        X, y: this process's shard of the samples (inputs (n, d_0), labels or targets).
        epochs: passes over the data.
        batch_size: the global batch size (0: the full data set, the lifted papers'
            setting; None: the method's ``default_batch_size``): an epoch has
            ceil(N / batch_size) batches, N the samples of all processes, and each process
            splits its shard into that many nearly equal parts,
            one per batch (so batches hold about N / ceil(N / batch_size) samples; every
            shard needs at least as many samples as there are batches).
        seed: seeds the initialisation and, with the rank, each shard's batch order.
        X_test, y_test: an optional test set (whole, on every process), evaluated after
            every epoch.
        X_val, y_val: an optional validation set (whole, on every process), evaluated after
            every epoch (``val_accuracy`` in the history).
        params: start from these weights instead of the method's initialisation.
        group: the process group (None: the default group).
        progress: progress bar (default: on the group's first process only).
        callback: called after every epoch with the (global) history entry and the state.
        patience: early stopping, as in :func:`liftnet.fit`: every process stops together,
            once one process's validation scores say so; each returns the best epoch (and
            weights) of its own validation scores, the same on all with one validation set.
        min_delta: with ``patience``, the smallest improvement that counts, as in
            :func:`liftnet.fit`.
        augment: transforms every training batch of this process, as in
            :func:`liftnet.fit` (batches only); each process draws from its own generator,
            seeded from ``seed`` and the rank apart from the batch order's.
        schedule: hyperparameters changed during training, ``{epoch: {name: value}}``, as in
            :func:`liftnet.fit`; every process must give the same.

    Returns:
        FitResult whose history holds the global objective and training accuracy.
    """
    if not dist.is_available() or not dist.is_initialized():
        raise ValueError("fit_distributed needs torch.distributed initialised: call "
                         "torch.distributed.init_process_group first (e.g. under torchrun)")
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    X, y, X_test, y_test, X_val, y_val = detached(X, y, X_test, y_test, X_val, y_val)
    if batch_size is None:
        batch_size = getattr(method, "default_batch_size", 0)
    # Every check first, then one collective that tells every process what the others found:
    # an error on one process is raised on all (none is left waiting in a collective), and
    # processes called with different settings are refused before they train.
    try:
        _check_locally(method, net, X, y, X_test, y_test, epochs, batch_size, seed,
                       X_val, y_val)
        check_patience(patience, X_val, min_delta)
        scheduled = scheduled_methods(method, schedule, net)
        check_augment(augment, X, full=False)  # the full data set: refused below, on all
        if params is not None:  # checked here, so that every process gets the error
            start_params(net, X, params, generator=None, scheme="xavier")
        if callback is not None and not callable(callback):
            raise ValueError(f"callback must be callable (entry, state), got {callback!r}")
        problem = None
    except ValueError as exc:
        problem = str(exc)
    if problem is None:  # numpy integers are integers (checked): plain ints from here on
        # (+ 0.0: -0.0 and 0.0 are the same min_delta, and must compare equal below)
        epochs, batch_size, min_delta = int(epochs), int(batch_size), float(min_delta) + 0.0
        seed = int(seed)
    # class labels or regression targets (checked: then of the network's width)
    targets = None if problem is not None else "targets" if y.is_floating_point() else "labels"
    settings = (epochs, batch_size, seed, repr(method), repr(net),
                str(getattr(X, "dtype", None)), targets, X_test is not None, X_val is not None,
                patience, repr(min_delta), augment_record(augment),
                None if problem is not None else schedule_record(schedule, scheduled))
    count = len(X) if isinstance(X, Tensor) else 0
    reports: list[Any] = [None] * world
    dist.all_gather_object(reports, (problem, settings, count), group=group)
    for r, (text, _, _) in enumerate(reports):
        if text is not None:
            raise ValueError(text if r == rank else f"process {r} of {world}: {text}")
    if any(other != settings for _, other, _ in reports):
        raise ValueError("the processes disagree on epochs, batch size, seed, network, method, "
                         "dtype, labels or targets, test or validation set, patience, "
                         "min_delta, augmentation or schedule: every process must call "
                         "fit_distributed with the same settings")
    n_local = len(X)
    n = sum(count for _, _, count in reports)
    full = batch_size == 0 or batch_size >= n
    check_full_batch(method, batch_size, n)  # the same n on every process: the same error
    check_augment(augment, X, full)  # likewise
    n_batches = 1 if full else math.ceil(n / batch_size)
    smallest = min(count for _, _, count in reports)
    if smallest < n_batches:
        raise ValueError(f"a batch size of {batch_size} makes {n_batches} batches per epoch; "
                         f"every process needs at least that many samples (the smallest shard "
                         f"has {smallest})")
    reducer = AllReduce(group)
    Y = targets_for(net, y, X.dtype)
    init_gen = torch.Generator().manual_seed(seed)
    # per-rank batch order; modulo 2**64 (the generator's range) for seeds up to 2**63
    order_gen = torch.Generator().manual_seed((seed * 65537 + rank) % 2**64)
    aug_gen = torch.Generator().manual_seed(((seed ^ AUGMENT_SEED) * 65537 + rank) % 2**64)
    start = time.perf_counter()
    state = method.init_state(net, X, Y, generator=init_gen, params=params)
    source = dist.get_global_rank(group, 0) if group is not None else 0
    for W, b in state.params:  # one starting point for every process
        dist.broadcast(W, src=source, group=group)
        dist.broadcast(b, src=source, group=group)
    state.reducer = reducer
    result = FitResult(state=state)
    best = BestEpoch()
    show = (rank == 0) if progress is None else progress
    bar = _progress(epochs * n_batches, f"{method.key} {net.spec} x{world}", show)
    try:
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            m = method_of_epoch(method, scheduled, epoch)
            shift = augment_of_epoch(augment, epoch)
            chunks = ([None] if full else
                      torch.tensor_split(torch.randperm(n_local, generator=order_gen),
                                         n_batches))
            total = 0.0
            for idx in chunks:
                if idx is None:
                    Xb, Yb, new_batch = X, Y, state.step == 0
                else:
                    idx = idx.to(X.device)
                    Xb, Yb, new_batch = X[idx], Y[idx], True
                    if shift is not None:
                        Xb = _augmented_together(shift, Xb, aug_gen, group=group)
                state = m.step(net, state, Xb, Yb, new_batch=new_batch)
                total += m.objective(net, state, Xb, Yb)  # global: the reducer's sums
                if bar is not None:
                    bar.update(1)
            share = accuracy(net, state.params, X, y)  # None for regression
            correct = float(reducer.sum(torch.tensor(
                0.0 if share is None else share * n_local, dtype=torch.float64,
                device=X.device)))
            entry: dict[str, Any] = {
                "epoch": epoch,
                "seconds": time.perf_counter() - t0,
                "objective": total / len(chunks),
                "train_accuracy": None if share is None else correct / n,
                **scores(net, state.params, X_test, y_test, X_val, y_val),
                "processes": world,
            }
            if not math.isfinite(entry["objective"]):
                raise FloatingPointError(
                    f"{method.key}: the objective became {entry['objective']} at epoch {epoch}"
                    "; check the data scale and the method's hyperparameters")
            result.history.append(entry)
            best.update(entry, state.params, min_delta)
            if bar is not None:
                bar.set_postfix(postfix(entry))
            if callback is not None:
                callback(entry, state)
            # one decision for all: processes given different validation sets stop together
            spent = best.patience_spent(epoch, patience)
            if patience is not None and reducer.sum(torch.tensor(
                    float(spent), dtype=torch.float64, device=X.device)) > 0:
                result.stopped_early = epoch < epochs
                break
    finally:
        if bar is not None:
            bar.close()
    state.reducer = None  # a process group is not part of the result
    # the lifted variables belong to this process's shard (liftnet.fit continues them there)
    state.data_id = data_record(X, y) if full else "batches"
    result.state = state
    best.into(result)
    result.wall_seconds = time.perf_counter() - start
    return result
