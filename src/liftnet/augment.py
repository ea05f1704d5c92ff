"""Augmentation of training batches (beyond the papers) and hyperparameter schedules.

:class:`RandomShift` translates every training image of a batch by a random number of pixels
(zero fill), a new shift per image and batch, as in the classic training of LeNet-5 on
distorted digits.  :func:`fit <liftnet.training.fit>` applies it to the batches of the first
``epochs`` epochs (``augment=``) with a generator of its own, so the batch order and the
initialisation of a seed stay those of a run without it.  :func:`scheduled_methods` checks a
``schedule`` of hyperparameters (``{3: {"target_extrapolation": "600,60,1,1"}}``: from
epoch 3 on) and gives the method of every epoch.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .graph import Network
from .methods.base import Method
from .methods.fenchel import Fenchel, scalars_over_lists

# hyperparameters that act only when training starts (the initialisation, the optimizer's
# kind, the convex heuristic's first parameters): a schedule that changed them later would
# change nothing
START_ONLY = frozenset({"init", "bias_init", "init_std", "optimizer", "start", "perturbation",
                        "random_std"})
# mixed into fit's seed for the augmentation's generator: draws of its own, not the batch
# order's
AUGMENT_SEED = 0x5DEECE66D


def _positive_int(name: str, value: Any, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1{' or None' if allow_none else ''}, "
                         f"got {value!r}")
    return int(value)


@dataclasses.dataclass(frozen=True)
class RandomShift:
    """Random translations of the training images (data augmentation, beyond the papers).

    Every image of a batch moves by (dy, dx), each drawn uniformly from -max_shift ..
    max_shift pixels, and the uncovered border is zero: the background of raw MNIST-like
    images, not of standardised features (whose zero is each pixel's mean; the command line
    refuses ``--shift`` with ``--standardize``).  The shifts are drawn on the CPU generator
    given, so they are the same on every device.

    Args:
        image_shape: ``(channels, height, width)`` of one flattened row, or ``(height,
            width)`` for one channel (``Dataset.image_shape``).
        max_shift: the largest shift in pixels, in each direction.
        epochs: augment the batches of the first ``epochs`` epochs only; later epochs see the
            images as they are (None: every epoch).
    """

    image_shape: tuple[int, ...]
    max_shift: int = 1
    epochs: int | None = None

    def __post_init__(self) -> None:
        shape = self.image_shape
        if not isinstance(shape, (tuple, list)) or len(shape) not in (2, 3) or any(
                isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1
                for v in shape):
            raise ValueError(f"image_shape must be (channels, height, width) or (height, "
                             f"width) of positive integers, got {shape!r}")
        shape = tuple(int(v) for v in shape)
        object.__setattr__(self, "image_shape", shape if len(shape) == 3 else (1, *shape))
        shift = _positive_int("max_shift", self.max_shift)
        if shift >= min(self.image_shape[1:]):
            raise ValueError(f"max_shift {shift} must be below the image's height and width "
                             f"{self.image_shape[1:]}")
        object.__setattr__(self, "max_shift", shift)
        object.__setattr__(self, "epochs", _positive_int("epochs", self.epochs, True))

    @property
    def features(self) -> int:
        c, h, w = self.image_shape
        return c * h * w

    def applies(self, epoch: int) -> bool:
        """Whether the batches of ``epoch`` (1, 2, ...) are augmented."""
        return self.epochs is None or epoch <= self.epochs

    def __call__(self, X: Tensor, generator: torch.Generator) -> Tensor:
        """The rows of ``X`` (N, C * H * W), each image shifted at random; ``generator`` (on
        the CPU) draws the shifts."""
        c, h, w = self.image_shape
        if X.ndim != 2 or X.shape[1] != self.features:
            raise ValueError(f"RandomShift of images {self.image_shape} needs rows of "
                             f"{self.features} features, got an array of shape "
                             f"{tuple(X.shape)}")
        n, s = X.shape[0], self.max_shift
        # channels last: one gather takes every image's window (no device synchronisation)
        padded = F.pad(X.reshape(n, c, h, w), (s, s, s, s)).permute(0, 2, 3, 1)
        # the top-left corner of each image's window in the padded image: s - (dy, dx)
        corner = torch.randint(0, 2 * s + 1, (n, 2), generator=generator)
        rows = (corner[:, :1] + torch.arange(h)).to(X.device)  # (n, h)
        cols = (corner[:, 1:] + torch.arange(w)).to(X.device)  # (n, w)
        image = torch.arange(n, device=X.device)[:, None, None]
        out = padded[image, rows[:, :, None], cols[:, None, :]]  # (n, h, w, c)
        return out.permute(0, 3, 1, 2).reshape(n, -1)


def scheduled_methods(method: Method, schedule: Any, net: Network | None = None
                      ) -> dict[int, Method]:
    """The method of every epoch where ``schedule`` (``{epoch: {name: value}}``, epochs from
    1) changes it: the hyperparameters of an entry hold from its epoch on, on top of the
    entries before it.  Every entry is checked here, before any training: unknown names,
    values the method refuses, epochs below 1 and hyperparameters that act only at the start
    are a ValueError naming the entry.  Epochs beyond a run's last are allowed (they act when
    a checkpoint of the run is resumed for more epochs).  For Fenchel a scalar replaces the
    per-layer list that would shadow it (``lam`` over ``lams``, as on the command line).
    With ``net``, every scheduled method is checked against it (per-layer lists' lengths,
    activations) before any epoch trains."""
    if schedule is None:
        return {}
    if not isinstance(schedule, dict):
        raise ValueError(f"schedule must be a dict {{epoch: {{name: value}}}}, got "
                         f"{type(schedule).__name__}")
    names = {f.name for f in dataclasses.fields(method)}
    out: dict[int, Method] = {}
    current = method
    def order(e: Any) -> int:  # entries that are no epoch first, to be refused
        ok = isinstance(e, numbers.Integral) and not isinstance(e, bool)
        return int(e) if ok else -1

    for epoch in sorted(schedule, key=order):
        changes = schedule[epoch]
        if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 1:
            raise ValueError(f"schedule: epoch {epoch!r} must be an integer >= 1 (the first "
                             "epoch is 1)")
        if not isinstance(changes, dict) or not changes:
            raise ValueError(f"schedule: epoch {epoch} needs a dict {{name: value}} of the "
                             f"hyperparameters to change, got {changes!r}")
        for name in changes:
            if name not in names:
                raise ValueError(f"schedule: epoch {epoch}: {name!r} is not a hyperparameter "
                                 f"of method {method.key}")
            if name in START_ONLY:
                raise ValueError(f"schedule: epoch {epoch}: {name!r} acts only when training "
                                 "starts; a schedule cannot change it")
        try:
            if isinstance(current, Fenchel):  # lam over lams, gamma over gammas, as the CLI
                current = type(current)(**scalars_over_lists(current.hyperparameters(), changes))
            else:
                current = dataclasses.replace(current, **changes)
            if net is not None:
                current.check_network(net)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"schedule: epoch {epoch}: {exc}") from None
        out[int(epoch)] = current
    return out


def parse_schedule_entry(text: str) -> tuple[int, str, str]:
    """``"EPOCH:NAME=VALUE"`` (a ``--schedule`` item) as (epoch, name, value text): the name
    with '-' read as '_', the epoch ASCII digits; ValueError naming the expected form."""
    epoch, colon, rest = text.partition(":")
    name, eq, value = rest.partition("=")
    name, epoch = name.strip().replace("-", "_"), epoch.strip()
    if not colon or not eq or not name or not (epoch.isascii() and epoch.isdigit()):
        raise ValueError("write EPOCH:NAME=VALUE, e.g. 3:target_extrapolation=600,60,1,1")
    return int(epoch), name, value


def add_schedule_entry(schedule: dict[int, dict[str, Any]], epoch: int, name: str,
                       value: Any) -> None:
    """``schedule[epoch][name] = value``; ValueError when that entry is set already."""
    entry = schedule.setdefault(epoch, {})
    if name in entry:
        raise ValueError(f"sets {name} for epoch {epoch} twice; give it once")
    entry[name] = value


def schedule_record(schedule: Any, scheduled: dict[int, Method]) -> str | None:
    """What a checkpoint records of a schedule (checked by :func:`scheduled_methods`): every
    entry's names with the values the method holds (``"600,60,1,1"`` and ``(600, 60, 1, 1)``
    record alike); None for no schedule or an empty one."""
    if not scheduled:
        return None
    return repr({e: {name: getattr(scheduled[e], name) for name in sorted(schedule[e])}
                 for e in sorted(scheduled)})


def augment_record(augment: Any) -> str | None:
    """What a checkpoint records of an augmentation, the same in every process: its ``repr``
    where that holds no memory address (RandomShift: its parameters), else the module and
    name of the function or class (their parameters not compared)."""
    if augment is None:
        return None
    text = repr(augment)
    if " at 0x" not in text:  # no memory address in it (which changes between processes)
        return text
    named = augment if hasattr(augment, "__qualname__") else type(augment)
    return f"{getattr(named, '__module__', '?')}.{named.__qualname__}"


def check_augment(augment: Any, X: Tensor, full: bool) -> None:
    """ValueError unless ``augment`` is None or a callable that :func:`fit
    <liftnet.training.fit>` can apply to batches of ``X``."""
    if augment is None:
        return
    if not callable(augment):
        raise ValueError(f"augment must be callable (X_batch, generator) -> X_batch, e.g. "
                         f"RandomShift(image_shape), got {augment!r}")
    if full:
        raise ValueError(f"augment applies to batches: with the full data set (batch size 0, "
                         f"or one of at least the {X.shape[0]} samples given) the lifted "
                         "variables belong to fixed samples; give a smaller batch size")
    epochs = getattr(augment, "epochs", None)
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(
            epochs, numbers.Integral) or epochs < 1):
        raise ValueError(f"augment {augment!r} has epochs={epochs!r}: the number of first "
                         "epochs it applies to must be an integer >= 1 (None: every epoch)")
    features = getattr(augment, "features", None)
    if features is not None and X.ndim == 2 and X.shape[1] != features:
        raise ValueError(f"augment {augment!r} transforms rows of {features} features, the "
                         f"inputs have {X.shape[1]}")


def augmented(augment: Any, X: Tensor, generator: torch.Generator) -> Tensor:
    """``augment(X, generator)``, checked: a tensor of X's shape, dtype and device."""
    out = augment(X, generator)
    if not isinstance(out, Tensor) or out.shape != X.shape or out.dtype != X.dtype or (
            out.device != X.device):
        got = (f"{tuple(out.shape)} {out.dtype} on {out.device}" if isinstance(out, Tensor)
               else type(out).__name__)
        raise ValueError(f"augment {augment!r} returned {got} for a batch of "
                         f"{tuple(X.shape)} {X.dtype} on {X.device}: it must return the "
                         "batch's shape, dtype and device")
    return out


def augment_applies(augment: Any, epoch: int) -> bool:
    """Whether ``augment`` transforms the batches of ``epoch``: its ``applies(epoch)``, else
    ``epoch <= augment.epochs`` where that attribute is not None, else always."""
    applies = getattr(augment, "applies", None)
    if callable(applies):
        return bool(applies(epoch))
    last = getattr(augment, "epochs", None)
    return last is None or epoch <= last


def augment_of_epoch(augment: Any, epoch: int) -> Any:
    """``augment`` where it transforms the batches of ``epoch`` (:func:`augment_applies`),
    else None (no augmentation, or not in this epoch)."""
    return augment if augment is not None and augment_applies(augment, epoch) else None


def method_of_epoch(method: Method, scheduled: dict[int, Method], epoch: int) -> Method:
    """The method of ``epoch``: the last scheduled one at or before it, else ``method``."""
    due = [e for e in scheduled if e <= epoch]
    return scheduled[max(due)] if due else method
