"""The generic training loop shared by the CLI, the estimator, the benchmarks and the tests.

``fit`` knows nothing of a method's insides: it calls ``init_state`` once, then ``step`` on each
batch, records the objective and the accuracies after every epoch, and shows progress.
"""

from __future__ import annotations

import copy
import math
import numbers
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
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
from .checkpoint import (
    check_same_run,
    data_record,
    load_checkpoint,
    run_record,
    same_data,
    save_checkpoint,
)
from .data import check_seed
from .graph import Network, Params
from .methods.base import Method, MethodState, rebind_data_keys_
from .metrics import accuracy, squared_error, targets_for
from .results import check_writable


@dataclass
class FitResult:
    """What ``fit`` returns: the final state and one history entry per epoch; with a
    validation set also the best validation epoch (the first of ties) and its weights, and
    whether ``patience`` stopped the run before its last epoch."""

    state: MethodState
    history: list[dict[str, Any]] = field(default_factory=list)
    wall_seconds: float = 0.0
    best_epoch: int | None = None
    best_params: Params | None = None
    stopped_early: bool = False


@dataclass
class BestEpoch:
    """The best validation score so far (the first epoch of ties) and that epoch's weights:
    what early stopping returns and what a checkpoint keeps for it.  The score is the
    validation accuracy for class labels and minus the validation loss for regression."""

    epoch: int = 0
    score: float = -math.inf
    params: Params | None = None
    improved: int | None = None  # the last epoch that beat the best by more than min_delta

    def update(self, entry: dict[str, Any], params: Params | None,
               min_delta: float = 0.0) -> None:
        """Take ``entry`` (a history entry) and ``params`` (its weights, copied; None: not
        known) as the best if its validation score is higher; an epoch counts as an
        improvement for early stopping only if it beats the best by more than ``min_delta``
        (scikit-learn's ``tol``: the best weights are still the highest score's)."""
        value = entry.get("val_accuracy")
        if value is None and entry.get("val_loss") is not None:
            value = -entry["val_loss"]
        if value is None:
            return
        if value > self.score + min_delta:
            self.improved = int(entry["epoch"])
        if value > self.score:
            self.epoch, self.score = int(entry["epoch"]), float(value)
            self.params = None if params is None else [
                (W.detach().clone(), b.detach().clone()) for W, b in params]

    @classmethod
    def from_history(cls, history: list[dict[str, Any]], params: Params,
                     min_delta: float = 0.0) -> BestEpoch:
        """The best epoch of ``history``, with ``params`` (the weights after its last epoch)
        where that is the best one and None otherwise."""
        best = cls()
        for k, entry in enumerate(history, 1):
            best.update(entry, params if k == len(history) else None, min_delta)
        return best

    def patience_spent(self, epoch: int, patience: int | None) -> bool:
        """True when ``patience`` epochs up to ``epoch`` brought no validation score better
        than the best by more than ``min_delta`` (see :meth:`update`)."""
        last = self.epoch if self.improved is None else self.improved  # None: older pickles
        return patience is not None and self.epoch > 0 and epoch - last >= patience

    def into(self, result: FitResult) -> None:
        if self.epoch > 0:
            result.best_epoch, result.best_params = self.epoch, self.params


def check_patience(patience: int | None, X_val: Tensor | None,
                   min_delta: float = 0.0) -> None:
    """Clear errors for an early-stopping ``patience`` (and ``min_delta``) that cannot work."""
    if isinstance(min_delta, bool) or not isinstance(min_delta, numbers.Real) or not (
            0.0 <= float(min_delta) < math.inf):
        raise ValueError(f"min_delta must be a finite number >= 0 (the validation score's "
                         f"smallest improvement that resets patience), got {min_delta!r}")
    if patience is None:
        if min_delta:
            raise ValueError("min_delta applies to early stopping: give patience too")
        return
    if isinstance(patience, bool) or not isinstance(patience, numbers.Integral) or patience < 1:
        raise ValueError(f"patience must be an integer >= 1 (epochs without a better "
                         f"validation score before training stops), got {patience!r}")
    if X_val is None:
        raise ValueError("patience (early stopping) needs a validation set: give X_val and "
                         "y_val (the CLI: --val-size)")


def resolve_device(text: str | torch.device, name: str = "--device") -> torch.device:
    """A device to train on, with a clear error (naming ``name``) for what torch cannot use."""
    try:
        device = torch.device(text)
    except (RuntimeError, TypeError):
        raise ValueError(f"{name} {text!r}: unknown device; use cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"{name} {text!r}: liftnet trains on cpu, cuda or mps devices")
    if device.type in ("cpu", "mps") and device.index not in (None, 0):
        raise ValueError(f"{name} {text}: there is one {device.type} device; use "
                         f"{device.type} (or {device.type}:0)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name} {text}: CUDA is not available on this machine")
    if device.type == "cuda" and device.index is not None:
        count = torch.cuda.device_count()
        if device.index >= count:
            raise ValueError(f"{name} {text}: this machine has {count} CUDA device(s), "
                             f"cuda:0 to cuda:{count - 1}")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{name} {text}: MPS (Apple GPUs) is not available on this machine")
    return device


def check_inputs(net: Network, X: Tensor, y: Tensor, what: str = "training") -> None:
    """Clear errors for bad shapes, NaN and labels out of range (never a deep traceback)."""
    if not isinstance(X, Tensor) or not isinstance(y, Tensor):
        raise ValueError(f"{what} inputs and targets must be torch tensors")
    for name, T in (("inputs", X), ("targets", y)):
        if T.layout != torch.strided:
            raise ValueError(f"{what} {name} are a {T.layout} tensor: give a dense one "
                             "(.to_dense())")
    if y.ndim == 0:
        raise ValueError(f"{what} labels must be a 1-D (N,) tensor (or targets (N, k)), got "
                         "a 0-d tensor (one value)")
    if X.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"{what} inputs must be float32 or float64, got {X.dtype}")
    if X.ndim != 2:
        raise ValueError(f"{what} inputs must be a 2-D (N, features) tensor, got shape "
                         f"{tuple(X.shape)}")
    if X.shape[1] != net.sizes[0]:
        raise ValueError(
            f"{what} inputs have {X.shape[1]} features but the architecture {net.spec} "
            f"expects {net.sizes[0]}"
        )
    if len(X) == 0:
        raise ValueError(f"{what} set is empty")
    if len(y) != len(X):
        raise ValueError(f"{what} inputs and targets differ in length: {len(X)} vs {len(y)}")
    if not y.is_floating_point() and y.ndim != 1:
        raise ValueError(f"{what} labels must be a 1-D (N,) tensor, got shape {tuple(y.shape)}")
    if not torch.isfinite(X).all():
        raise ValueError(f"{what} inputs contain NaN or infinite values")
    low, high = torch.aminmax(X.detach())  # no |X| copy of a large training set
    big = max(-float(low), float(high))
    if big * big * X.shape[1] * len(X) > torch.finfo(X.dtype).max / 1e3:
        raise ValueError(  # the solvers' Gram matrices (sums of x^2 over rows) would overflow
            f"{what} inputs reach {big:.3g}, too large for {X.dtype} arithmetic (the solvers' "
            "sums of squares overflow); rescale them (e.g. --standardize) or use float64")
    if y.dtype in (torch.bool, torch.int8) or y.is_complex():
        raise ValueError(f"{what} labels are {y.dtype}: give class labels as int64 "
                         "(y.long()) or regression targets as floats")
    if y.dtype in (torch.int64, torch.int32, torch.int16, torch.uint8):
        k = net.sizes[-1]
        if len(y) and (k == 1 or int(y.min()) < 0 or int(y.max()) >= k):
            got = f"range [{int(y.min())}, {int(y.max())}]"
            if k == 1:  # one class: e.g. a regression model scored on a classification set
                raise ValueError(
                    f"{what} labels are integer class labels ({got}) but {net.spec} has one "
                    "output, a regression: give float targets, or a network with one output "
                    "per class")
            hint = ("; integer labels are classes (one-hot targets of the squared loss): give "
                    "float targets for a regression") if net.loss == "mse" else ""
            raise ValueError(
                f"{what} labels must lie in [0, {k - 1}] for an output of width {k}, "
                f"got {got}{hint}"
            )
    else:
        _check_float_targets(net, y, what)
        big = float(y.abs().max()) if y.numel() else 0.0  # used in the inputs' dtype
        if big * big * y.numel() > torch.finfo(X.dtype).max / 1e3:  # as for the inputs
            raise ValueError(f"{what} targets reach {big:.3g}, too large for the inputs' "
                             f"{X.dtype} arithmetic (sums of squares overflow); rescale them "
                             "or use float64")


def _check_float_targets(net: Network, y: Tensor, what: str) -> None:
    """Float targets: regression targets of shape (N,) (one output) or (N, k), k the
    network's outputs, finite."""
    if net.loss == "ce":
        raise ValueError(f"cross-entropy needs integer class labels, got float {what} "
                         "targets")
    k = net.sizes[-1]
    if not (y.ndim == 2 and y.shape[1] == k or y.ndim == 1 and k == 1):
        want = "(N,) or (N, 1)" if k == 1 else f"(N, {k})"
        raise ValueError(f"{what} targets must have shape {want} for the {k} output(s) of "
                         f"{net.spec}, got shape {tuple(y.shape)}")
    if not torch.isfinite(y).all():
        raise ValueError(f"{what} targets contain NaN or infinite values")


def check_fit_arguments(net: Network, X: Tensor, y: Tensor, X_test: Tensor | None,
                        y_test: Tensor | None, *, epochs: int, batch_size: int,
                        X_val: Tensor | None = None, y_val: Tensor | None = None) -> None:
    """The checks of :func:`fit` (and of :func:`liftnet.distributed.fit_distributed` on each
    shard): loop settings, training, validation and test data, with clear errors."""
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ValueError(f"{name} must be an integer, got {value!r}")
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    if batch_size < 0:
        raise ValueError(f"batch_size must be >= 0 (0 = full data set), got {batch_size}")
    check_inputs(net, X, y)
    for what, (Xs, ys) in (("test", (X_test, y_test)), ("validation", (X_val, y_val))):
        if (Xs is None) != (ys is None):
            short = "test" if what == "test" else "val"
            raise ValueError(f"give both X_{short} and y_{short}, or neither")
        if Xs is not None:
            check_inputs(net, Xs, ys, what)
            if Xs.dtype != X.dtype or Xs.device != X.device:
                raise ValueError(
                    f"{what} inputs ({Xs.dtype}, {Xs.device}) must match the training inputs "
                    f"({X.dtype}, {X.device})"
                )


def scores(net: Network, params: Params, X_test: Tensor | None, y_test: Tensor | None,
           X_val: Tensor | None, y_val: Tensor | None) -> dict[str, float | None]:
    """The held-out part of an epoch's history entry: ``val_accuracy`` (only when a validation
    set is given; None for regression, which gets ``val_loss`` instead: the mean over samples
    of ||output - y||^2) and ``test_accuracy`` (None without a test set or for regression,
    which gets ``test_loss``)."""
    out: dict[str, float | None] = {}
    if X_val is not None:
        out["val_accuracy"] = accuracy(net, params, X_val, y_val)
        if out["val_accuracy"] is None:
            out["val_loss"] = squared_error(net, params, X_val, y_val)
    out["test_accuracy"] = accuracy(net, params, X_test, y_test) if X_test is not None else None
    if X_test is not None and out["test_accuracy"] is None and len(X_test):
        out["test_loss"] = squared_error(net, params, X_test, y_test)
    return out


def postfix(entry: dict[str, Any]) -> dict[str, str]:
    """The progress bar's summary of an epoch's history entry."""
    out = {"obj": f"{entry['objective']:.4g}", "train": _fmt(entry["train_accuracy"])}
    if entry.get("val_loss") is not None:
        out["val_loss"] = f"{entry['val_loss']:.4g}"
    elif "val_accuracy" in entry:
        out["val"] = _fmt(entry["val_accuracy"])
    out["test"] = _fmt(entry["test_accuracy"])
    return out


def check_full_batch(method: Method, batch_size: int, n: int) -> None:
    """A method that trains on the full data set only (``full_batch_only``) with batches of
    ``batch_size`` out of ``n`` samples: ValueError."""
    if method.full_batch_only and not (batch_size == 0 or batch_size >= n):
        raise ValueError(
            f"{type(method).__name__} trains on the full data set only; use batch_size=0 "
            f"(got {batch_size} for {n} samples)"
        )



def detached(*tensors: Any) -> tuple[Any, ...]:
    """The arguments, tensors that require grad detached (training never differentiates
    through the data, and the solvers' ``out=`` kernels refuse such tensors); the same
    objects otherwise, for the caches' keys."""
    return tuple(t.detach() if isinstance(t, Tensor) and t.requires_grad else t
                 for t in tensors)

def fit(
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
    state: MethodState | None = None,
    params: Params | None = None,
    progress: bool = True,
    callback: Callable[[dict[str, Any], MethodState], None] | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    patience: int | None = None,
    min_delta: float = 0.0,
    new_data: bool = False,
    augment: Callable[[Tensor, torch.Generator], Tensor] | None = None,
    schedule: dict[int, dict[str, Any]] | None = None,
) -> FitResult:
    """Train ``net`` with ``method`` on (X, y).

    Args:
        method: a training method (hyperparameters only).
        net: the network description.
        X: inputs (N, d_0) on the device and in the dtype to train in.
        y: int64 class labels (N,) or float regression targets (N, d_out).
        epochs: passes over the training set.
        batch_size: samples per batch; 0 (or >= N) is the full data set, in which case the
            lifted variables persist across epochs (the papers' full-batch setting); None
            (default) the method's ``default_batch_size``, as on the command line and in the
            estimators (0 for ``lifted``, ``admm``, ``pbcd``, ``convex``; 500 for ``fenchel``,
            100 for ``bregman`` and ``backprop``).
        seed: seeds the initialisation and the batch order.
        X_test, y_test: optional test set, evaluated after every epoch.
        X_val, y_val: optional validation set (e.g. ``load_dataset(..., val_size=...)``),
            evaluated after every epoch: the history entries then hold ``val_accuracy``
            (and ``val_loss`` for regression).
        state: resume from a copy of this state (the given one stays as it was) instead of
            ``method.init_state``; its weights must be finite and in X's dtype and device.  In
            full-data-set training its lifted variables continue when they belong to these data
            (the same samples in the same order, recognised by a fingerprint), else they start
            anew; see ``new_data``.
        params: start from these weights (``(W, b)`` pairs, e.g. a saved model's) instead of the
            method's random initialisation; ignored when ``state`` is given.
        progress: show a progress bar on stderr.
        callback: called after every epoch with the history entry and the state.
        checkpoint: write the training state here after every epoch (atomically; a pickled
            state, see :func:`liftnet.checkpoint.load_checkpoint`).
        resume: continue from ``checkpoint`` (its state, history and batch order) up to
            ``epochs`` in all: the result equals an uninterrupted run.  The method, network,
            batch size, seed and data must be those of the checkpoint's run.
        patience: early stopping: stop once this many epochs in a row brought no better
            validation accuracy (validation loss for regression; needs X_val, y_val).
            ``best_epoch`` and ``best_params`` of the result (kept with every validation set)
            are then the weights to use.
        min_delta: with ``patience``: an epoch resets the patience only if its validation
            score beats the best by more than this (accuracy as a share, e.g. 0.001; for
            regression the validation loss); the best weights are still the best score's.
        new_data: with ``state``: X, y are other samples than the ones the state was trained
            on (e.g. the next chunk of a stream), so the first full-data-set step starts new
            lifted variables instead of continuing the state's (batches always do).  Other
            data are also recognised without it, except by a state of an older liftnet.
        augment: transforms every training batch, ``augment(X_batch, generator)`` -> a tensor
            of the same shape (e.g. :class:`liftnet.augment.RandomShift`), with a CPU
            ``torch.Generator`` of its own seeded by ``seed`` (the batch order and the
            initialisation stay those of a run without it); an ``epochs`` attribute that is
            not None limits it to the first that many epochs.  A checkpoint records its
            ``repr``, or for a function or an object whose ``repr`` holds a memory address its
            module and name (:func:`liftnet.augment.augment_record`).  Batches only (not the
            full data set, whose lifted variables belong to fixed samples); the epoch's
            objective is the augmented batches', its accuracies the plain data's.
        schedule: hyperparameters changed during training, ``{epoch: {name: value}}``: from
            that epoch (1, 2, ...) on, the method is ``method`` with every entry up to it
            applied (e.g. ``{3: {"target_extrapolation": "600,60,1,1"}}``); checked before
            training (:func:`liftnet.augment.scheduled_methods`).
    """
    if not isinstance(method, Method):
        hint = " (an instance: call it)" if isinstance(method, type) else ""
        raise ValueError(f"method must be a training method such as get_method('fenchel') or "
                         f"Fenchel(), got {method!r}{hint}")
    if not isinstance(net, Network):
        raise ValueError(f"net must be a Network (e.g. network('784-300-10')), got {net!r}")
    check_seed(seed)
    if batch_size is None:
        batch_size = method.default_batch_size
    X, y, X_test, y_test, X_val, y_val = detached(X, y, X_test, y_test, X_val, y_val)
    check_fit_arguments(net, X, y, X_test, y_test, epochs=epochs, batch_size=batch_size,
                        X_val=X_val, y_val=y_val)
    seed, epochs, batch_size = int(seed), int(epochs), int(batch_size)  # e.g. numpy integers
    check_patience(patience, X_val, min_delta)
    min_delta = float(min_delta)
    if resume and checkpoint is None:
        raise ValueError("resume needs the checkpoint to resume from")
    if resume and state is not None:
        raise ValueError("resume continues the checkpoint's state; do not give state too")
    if new_data and resume:
        raise ValueError("new_data applies to a given state (trained on other samples); "
                         "resume continues the checkpoint's own data")
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be callable (entry, state), got {callback!r}")
    if checkpoint is not None:  # before training, not after the first epoch
        check_writable(checkpoint, "checkpoint")
    method.check_network(net)
    n = X.shape[0]
    full = batch_size == 0 or batch_size >= n
    check_full_batch(method, batch_size, n)
    scheduled = scheduled_methods(method, schedule, net)
    check_augment(augment, X, full)
    bs = n if full else batch_size
    Y = targets_for(net, y, X.dtype)
    gen = torch.Generator().manual_seed(seed)
    aug_gen = torch.Generator().manual_seed(seed ^ AUGMENT_SEED)  # its own draws
    start = time.perf_counter()
    # the samples the lifted variables will belong to (full data set), taken once
    data_id = data_record(X, y) if full else "batches"
    run = run_record(method, net, X, y, batch_size, seed, params,
                     scored={"test": (X_test, y_test), "val": (X_val, y_val)},
                     data=data_id if full else None) if checkpoint is not None else None
    if run is not None:  # compared on resume like the rest of the record
        run["augment"] = augment_record(augment)
        run["schedule"] = schedule_record(schedule, scheduled)
    done: list[dict[str, Any]] = []
    best = BestEpoch()
    earlier = 0.0  # seconds of the epochs a resumed checkpoint holds
    if resume:
        saved = load_checkpoint(checkpoint, X.device)
        check_same_run(checkpoint, saved.get("run"), run)
        state, done = saved["state"], list(saved["history"])
        if X_val is not None:
            best = saved.get("best")
            replay = BestEpoch.from_history(done, state.params, min_delta)
            if not isinstance(best, BestEpoch):  # an older liftnet's checkpoint
                best = replay
                if patience is not None and best.epoch > 0 and best.params is None:
                    raise ValueError(
                        f"cannot resume from {checkpoint} with early stopping: it was written "
                        "by an older liftnet that did not keep the best validation epoch's "
                        f"weights (epoch {best.epoch}); resume without patience")
            # the last improvement by more than min_delta, from the history: right for this
            # min_delta and for checkpoints of liftnets before min_delta (no ``improved``)
            best.improved = replay.improved
        gen.set_state(saved["generator"].cpu())  # the batch order's generator lives on the CPU
        if saved.get("augment_generator") is not None:
            aug_gen.set_state(saved["augment_generator"].cpu())
        earlier = float(saved.get("seconds", 0.0))
        if len(done) > epochs:
            raise ValueError(f"cannot resume from {checkpoint}: it holds {len(done)} epochs, "
                             f"more than the {epochs} asked for")
        if full:  # the caches of a full-data-set run belong to these very data
            rebind_data_keys_(state, X)
    elif state is None:
        state = method.init_state(net, X, Y, generator=gen, params=params)
    else:
        state = given_state(method, net, state, X)
    # a given state's lifted variables start anew on other samples
    if full and not resume and state.data_id is not None:
        if not same_data(state.data_id, data_id):
            new_data = True
        elif not new_data:  # its caches (Gram matrices, the last optimum) belong to X too
            rebind_data_keys_(state, X)
    result = FitResult(state=state, history=done)
    n_batches = 1 if full else math.ceil(n / bs)
    first = len(done) + 1
    bar = _progress((epochs - len(done)) * n_batches, f"{method.key} {net.spec}", progress)
    try:
        for epoch in range(len(done) + 1, epochs + 1):
            if best.patience_spent(epoch - 1, patience):
                result.stopped_early = True
                break
            t0 = time.perf_counter()
            m = method_of_epoch(method, scheduled, epoch)
            shift = augment_of_epoch(augment, epoch)
            order = None if full else torch.randperm(n, generator=gen).to(X.device)
            objectives = []
            for i in range(n_batches):
                if full:
                    Xb, Yb = X, Y
                    # the lifted variables persist across epochs; a method re-initialises them
                    # itself when it has none for this data (e.g. a state from other weights)
                    new_batch = state.step == 0 or (new_data and epoch == first and i == 0)
                else:
                    idx = order[i * bs : (i + 1) * bs]
                    Xb, Yb = X[idx], Y[idx]
                    new_batch = True
                    if shift is not None:
                        Xb = augmented(shift, Xb, aug_gen)
                state = m.step(net, state, Xb, Yb, new_batch=new_batch)
                state.data_id = data_id
                objectives.append(m.objective(net, state, Xb, Yb))
                if bar is not None:
                    bar.update(1)
            seconds = time.perf_counter() - t0
            entry: dict[str, Any] = {
                "epoch": epoch,
                "seconds": seconds,
                "objective": float(sum(objectives) / len(objectives)),
                "train_accuracy": accuracy(net, state.params, X, y),
                **scores(net, state.params, X_test, y_test, X_val, y_val),
            }
            if not math.isfinite(entry["objective"]):
                raise FloatingPointError(
                    f"{method.key}: the objective became {entry['objective']} at epoch {epoch}; "
                    "check the data scale and the method's hyperparameters"
                )
            result.history.append(entry)
            best.update(entry, state.params, min_delta)
            if bar is not None:
                bar.set_postfix(postfix(entry))
            if checkpoint is not None:
                save_checkpoint(checkpoint, {
                    "run": run, "state": state, "generator": gen.get_state(),
                    "augment_generator": aug_gen.get_state(),
                    "history": result.history, "best": best if X_val is not None else None,
                    "seconds": earlier + time.perf_counter() - start})
            if callback is not None:
                callback(entry, state)
    finally:
        if bar is not None:
            bar.close()
    result.state = state
    result.wall_seconds = earlier + time.perf_counter() - start
    best.into(result)
    return result


def given_state(method: Method, net: Network, state: Any, X: Tensor) -> MethodState:
    """A copy of the ``state`` given to :func:`fit` (the caller's stays as it was: two fits
    from one state are two continuations of it), checked against the method, the network and
    X's dtype and device, without the all-reduce of a distributed run (this process trains
    alone)."""
    if not isinstance(state, MethodState):
        raise ValueError(f"state must be a MethodState (from an earlier fit), got "
                         f"{type(state).__name__}")
    method.check_state(state)
    net.check_params(state.params)
    W = state.params[0][0]
    if W.dtype != X.dtype or W.device != X.device:
        raise ValueError(f"the state's weights are {W.dtype} on {W.device}, the inputs "
                         f"{X.dtype} on {X.device}: give the data in the state's dtype and "
                         "device (or start from its weights with params=)")
    for l, (W, b) in enumerate(state.params):
        if not (torch.isfinite(W).all() and torch.isfinite(b).all()):
            raise ValueError(f"the state's weights of layer {l} contain NaN or infinite values")
    reducer, state.reducer = state.reducer, None
    try:  # X itself (e.g. held by a cache of its pre-activations) is not copied
        return copy.deepcopy(state, {id(X): X})
    finally:
        state.reducer = reducer


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _progress(total: int, desc: str, enabled: bool):
    if not enabled or total == 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="batch", leave=True, dynamic_ncols=True)
