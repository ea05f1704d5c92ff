"""Training checkpoints: the whole state of :func:`liftnet.fit` after an epoch, written
atomically, and the record of the run it belongs to, so that a resumed run is refused unless
it is the same run (method, network, batch size, seed, starting weights, data)."""

from __future__ import annotations

import math
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .graph import Network, Params
from .methods.base import Method, MethodState
from .results import atomic_save, load_torch_file

CHECKPOINT_FORMAT = "liftnet-checkpoint/1"


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write a training checkpoint (:func:`liftnet.fit`'s ``checkpoint``) atomically: the file
    holds the previous checkpoint or this one, never a mix.  The state is serialised in memory
    first, so that a state that cannot be pickled (ValueError "cannot checkpoint") and a file
    that cannot be written (OSError "cannot write FILE: ...") are told apart."""
    def serialise(fh) -> None:
        try:
            torch.save({"format": CHECKPOINT_FORMAT, **payload}, fh)
        except (TypeError, AttributeError, RuntimeError, pickle.PicklingError) as exc:
            # a state that cannot be pickled (a lambda, a lock, an open file)
            raise ValueError(f"cannot checkpoint this training state: {exc}") from None

    return atomic_save(path, serialise)


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu"
                    ) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, tensors on ``device``.  It holds
    a pickled method state: load only checkpoints you wrote (as with any pickle)."""
    path = Path(path)
    payload = load_torch_file(path, "liftnet checkpoint", "liftnet's save_checkpoint",
                              missing="checkpoint", weights_only=False, map_location=device)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a liftnet checkpoint (format {CHECKPOINT_FORMAT!r} "
                         "expected)")
    problem = _damage(payload)
    if problem is not None:
        raise ValueError(f"{path} is a damaged checkpoint ({problem})")
    return payload


#: the numbers of a history entry (:func:`liftnet.fit`), each a real number or None
_HISTORY_NUMBERS = ("seconds", "objective", "train_accuracy", "test_accuracy", "val_accuracy",
                    "test_loss", "val_loss")


def _damage(payload: dict[str, Any]) -> str | None:
    """What is wrong with a checkpoint's body (its keys, their types, the state's weights:
    finite, of the shapes its run record names), in words; None when nothing is."""
    missing = [key for key in ("run", "state", "generator", "history") if key not in payload]
    if missing:
        return f"no {', '.join(missing)}"
    run = payload["run"]
    if not isinstance(run, dict):
        return "no run record"
    state = payload["state"]
    if not isinstance(state, MethodState):
        return f"its state is a {type(state).__name__}, not a method state"
    if isinstance(state.step, bool) or not isinstance(state.step, int) or state.step < 0:
        return f"its state's step counter is {state.step!r}"
    problem = _params_damage(state.params, run.get("param_shapes"))
    if problem is not None:
        return f"its state's weights: {problem}"
    best_params = getattr(payload.get("best"), "params", None)
    if best_params is not None:
        problem = _params_damage(best_params, run.get("param_shapes"))
        if problem is not None:
            return f"its best validation epoch's weights: {problem}"
    for key, what in (("generator", "batch-order"), ("augment_generator", "augmentation")):
        generator = payload.get(key)
        if generator is None and key == "augment_generator":  # older checkpoints lack it
            continue
        try:
            torch.Generator().set_state(generator.cpu())
        except (AttributeError, TypeError, RuntimeError, ValueError) as exc:
            return f"its {what} generator state is unusable: {str(exc).splitlines()[0]}"
    history = payload["history"]
    if not isinstance(history, list):
        return f"its history is a {type(history).__name__}, not a list"
    for k, entry in enumerate(history, 1):
        if not isinstance(entry, dict) or entry.get("epoch") != k or isinstance(
                entry.get("epoch"), bool):
            return f"its history's entry {k} is not epoch {k}'s record"
        for key in _HISTORY_NUMBERS:
            value = entry.get(key)
            if value is not None and (isinstance(value, bool)
                                      or not isinstance(value, (int, float))):
                return f"its history's epoch {k} has {key} = {value!r}, not a number"
    seconds = payload.get("seconds", 0.0)
    if (isinstance(seconds, bool) or not isinstance(seconds, (int, float))
            or not 0.0 <= seconds < math.inf):
        return f"its training time is {seconds!r}, not a number of seconds"
    return None


def _params_damage(params: Any, shapes: Any) -> str | None:
    """What is wrong with saved (W, b) pairs: not pairs of real floating-point tensors, not
    finite, or (``shapes``: the run record's weight shapes; None in older checkpoints) of other
    shapes, where each bias has its weight's output width in any case."""
    if not isinstance(params, (list, tuple)) or not params:
        return f"expected a list of (W, b) pairs, got {type(params).__name__}"
    if isinstance(shapes, list) and len(shapes) != len(params):
        return f"{len(params)} layers, its network has {len(shapes)}"
    for l, pair in enumerate(params):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(
                isinstance(t, Tensor) and t.is_floating_point() for t in pair)):
            return f"layer {l} is not a (W, b) pair of floating-point tensors"
        W, b = pair
        want = tuple(shapes[l]) if isinstance(shapes, list) else None
        if (want is not None and tuple(W.shape) != want) or W.ndim < 2 or tuple(
                b.shape) != (W.shape[0],):
            return (f"layer {l} has W {tuple(W.shape)} and b {tuple(b.shape)}"
                    + ("" if want is None else f", its network W {want} and b ({want[0]},)"))
        if not (bool(torch.isfinite(W).all()) and bool(torch.isfinite(b).all())):
            return f"layer {l} holds NaN or infinite values"
    return None


def run_record(method: Method, net: Network, X: Tensor, y: Tensor, batch_size: int,
                seed: int, params: Params | None, *,
                scored: dict[str, tuple[Tensor | None, Tensor | None]] | None = None,
                data: list | None = None) -> dict[str, Any]:
    """What a checkpoint's run must share with the run that resumes it: settings, starting
    weights and data (by shape, dtype, sums and random projections that rows or columns in
    another order change; ``data``: the :func:`data_record` of (X, y) when already taken),
    and the sets its history scores (``scored``, e.g. ``{"test": (X_test, y_test), "val":
    (X_val, y_val)}``; None where absent)."""
    sets = {key: None if Xs is None else data_record(Xs, ys)
            for key, (Xs, ys) in (scored or {}).items()}
    data = data_record(X, y) if data is None else data
    x_prints, y_prints = _halves(data[4:])
    return {**sets, "method": method.key, "hyperparameters": repr(method), "network": repr(net),
            "param_shapes": [list(layer.weight_shape) for layer in net.layers],
            "batch_size": batch_size, "seed": seed,
            "start": None if params is None else _fingerprint(torch.cat(
                [torch.cat([W.reshape(-1), b.reshape(-1)]) for W, b in params])[None]),
            "inputs": [*data[:2], *x_prints], "targets": [*data[2:4], *y_prints]}


def data_record(X: Tensor, y: Tensor) -> list:
    """Shapes, dtypes and fingerprints of a set's inputs and labels (or targets)."""
    return [list(X.shape), str(X.dtype), list(y.shape), str(y.dtype), *_fingerprint(X),
            *_fingerprint(y.reshape(len(y), -1).to(torch.float64))]


def same_data(a: Any, b: list) -> bool:
    """Whether ``a`` is the :func:`data_record` ``b`` (up to the rounding of the sums)."""
    if not isinstance(a, list) or a[:4] != b[:4] or len(a) < 4:
        return False
    x_old, y_old = _halves(a[4:])
    x_new, y_new = _halves(b[4:])
    return _close(x_old, x_new) and _close(y_old, y_new)


def _halves(values: list) -> tuple[list, list]:
    half = len(values) // 2
    return values[:half], values[half:]


_FINGERPRINT_SEED = 20261127
_FINGERPRINT_ROWS = 8192


def _fingerprint(T: Tensor) -> list[float]:
    """Sum, squared norm, a position-weighted random projection (the fingerprint of liftnets
    before 2026-11-29, kept so that their checkpoints still resume) and two projections with a
    random weight per row and per column (unit norm in expectation), in float64, a few rows at
    a time (no copy of T).  The random weights make every row count alike: a change of one
    entry by delta moves them by about delta / sqrt(numel), far above the rounding of float64
    sums at any size, while the position weights let the first rows hardly count."""
    g = torch.Generator().manual_seed(_FINGERPRINT_SEED)
    n, d = T.shape[0], T.shape[1]
    r = torch.randn(d, generator=g, dtype=torch.float64).to(T.device)
    R = (torch.randn(d, 2, generator=g, dtype=torch.float64) / math.sqrt(max(d, 1))).to(T.device)
    proj, rand = 0.0, torch.zeros(2, dtype=torch.float64, device=T.device)
    for i in range(0, n, _FINGERPRINT_ROWS):
        rows = T[i : i + _FINGERPRINT_ROWS].to(torch.float64)
        w = torch.arange(i + 1, i + 1 + len(rows), dtype=torch.float64, device=T.device)
        proj += float(((rows @ r) * w).sum()) / max(n, 1)
        v = torch.randn(len(rows), 2, generator=g, dtype=torch.float64) / math.sqrt(max(n, 1))
        rand += ((rows @ R) * v.to(T.device)).sum(0)
    return [float(T.sum(dtype=torch.float64)),
            float(torch.linalg.vector_norm(T, dtype=torch.float64)) ** 2, proj,
            *(float(v) for v in rand)]


_KEYWORD = re.compile(r"([A-Za-z_]\w*)=(.*)", re.DOTALL)


def _call_items(text: str) -> tuple[str, list[str]] | None:
    """``"Name(a=1, b=(2, 3))"`` as ``("Name", ["a=1", "b=(2, 3)"])`` (a tuple's name is
    ""); None for what is not a call or a tuple (a number, a string)."""
    if not text.endswith(")") or "(" not in text or text[0] in "'\"":
        return None
    head, body = text[:text.index("(")], text[text.index("(") + 1:-1]
    items, depth, quote, start = [], 0, None, 0
    for i, ch in enumerate(body):
        if quote is not None:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(body[start:i].strip())
            start = i + 1
    if body[start:].strip():
        items.append(body[start:].strip())
    return head, items


def repr_differences(old: str, new: str, where: str = "", limit: int = 4) -> str | None:
    """The fields in which two dataclass reprs (a method's hyperparameters, a network) differ,
    as "lam 1.0 (this run: 3.0); ..." with nested fields by path (``layers[0].out_features``);
    None when the two are not the same kind of object (the caller prints them whole)."""
    a, b = _call_items(old), _call_items(new)
    if a is not None and b is not None and a[0] == b[0] == "" and len(a[1]) != len(b[1]) \
            and where and len(old) + len(new) > 160:  # long tuples (layers): their lengths
        return f"{where} {len(a[1])} entries (this run: {len(b[1])})"
    if a is None or b is None or a[0] != b[0] or len(a[1]) != len(b[1]):
        return None
    found = []
    for i, (x, y) in enumerate(zip(a[1], b[1], strict=True)):
        if x == y:
            continue
        kx, ky = _KEYWORD.fullmatch(x), _KEYWORD.fullmatch(y)
        if kx and ky and kx[1] == ky[1]:
            name, x, y = f"{where}.{kx[1]}" if where else kx[1], kx[2], ky[2]
        else:
            name = f"{where}[{i}]"
        found.append(repr_differences(x, y, name, limit) or f"{name} {x} (this run: {y})")
    if len(found) > limit:
        found = [*found[:limit], f"{len(found) - limit} more"]
    return "; ".join(found) or None


def check_same_run(path: Any, saved: Any, run: dict[str, Any]) -> None:
    """ValueError naming what differs unless ``saved`` (a checkpoint's :func:`run_record`) is
    the record of this ``run``."""
    if not isinstance(saved, dict):
        raise ValueError(f"{path} is a damaged checkpoint (no run record)")
    for key, what in (("method", "method"), ("hyperparameters", "hyperparameters"),
                      ("network", "network"), ("batch_size", "batch size"), ("seed", "seed")):
        if saved.get(key) != run[key]:
            verb = "differ" if what == "hyperparameters" else "differs"
            old, new = saved.get(key), run[key]
            fields = repr_differences(old, new) if isinstance(old, str) and isinstance(
                new, str) and saved.get("method") == run["method"] else None
            detail = f"({old}) {verb} from this run's ({new})" if fields is None else (
                f"{verb} from this run's: {fields}")
            raise ValueError(f"cannot resume from {path}: its {what} {detail}")
    for key, what in (("augment", "augmentation"), ("schedule", "schedule")):
        if saved.get(key) != run.get(key):  # None (absent) in runs without them
            raise ValueError(f"cannot resume from {path}: its {what} ({saved.get(key)}) "
                             f"differs from this run's ({run.get(key)})")
    if (saved.get("start") is None) != (run["start"] is None) or (
            run["start"] is not None and not _close(saved["start"], run["start"])):
        raise ValueError(f"cannot resume from {path}: its run started from other weights "
                         "(--init-from / params differ)")
    for key, what in (("inputs", "training inputs"), ("targets", "training targets")):
        old, new = saved.get(key), run[key]
        if not isinstance(old, list) or old[:2] != new[:2]:
            raise ValueError(f"cannot resume from {path}: its {what} were "
                             f"{_describe(old)}, this run's are {_describe(new)} (the data "
                             "set, --n-train and --val-size decide them)")
        if not _close(old[2:], new[2:]):
            raise ValueError(f"cannot resume from {path}: it was written for other {what} "
                             "(same shape, other values or order)")
    for key, what in (("test", "test set"), ("val", "validation set")):
        if key not in saved or key not in run:  # checkpoints of older versions lack them
            continue
        old, new = saved[key], run[key]
        if (old is None) != (new is None) or (new is not None and not same_data(old, new)):
            raise ValueError(
                f"cannot resume from {path}: its run scored {_describe_set(old)} as its {what}, "
                f"this run gives {_describe_set(new)}; the history's earlier epochs would "
                "then be scores on another set")


def _close(a: list[float], b: list[float]) -> bool:
    """One tensor's fingerprints equal up to the rounding of float64 sums taken in another
    order (e.g. on another device), relative to that tensor's norm (sums near zero, e.g. of
    standardised data, compare sensibly).  A record of an older liftnet (three values) is
    compared with the rule it was written for, on the values both kinds have."""
    if len(a) == 3 and len(b) == 5:  # an older checkpoint's record against this run's
        b = b[:3]
    if len(a) != len(b) or not a:
        return False
    if len(a) == 3:  # an older liftnet's rule
        scale = 1.0 + math.sqrt(abs(b[1]))
        return all(abs(x - z) <= 1e-6 * max(abs(x), abs(z), scale) for x, z in zip(a, b,
                                                                                strict=True))
    scale = math.sqrt(max(abs(a[1]), abs(b[1])))  # the norm
    return all(abs(x - z) <= 1e-9 * max(abs(x), abs(z), scale) for x, z in zip(a, b,
                                                                            strict=True))


def _describe_set(record: Any) -> str:
    if record is None:
        return "none"
    return (f"inputs {record[0]} {record[1]}" if isinstance(record, list) and len(record) >= 2
            else "?")


def _describe(record: Any) -> str:
    return f"{record[0]} {record[1]}" if isinstance(record, list) and len(record) >= 2 else "?"
