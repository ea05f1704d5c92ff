"""The contract shared by every training method.

A method is a dataclass of hyperparameters (validated when it is made) with three verbs:

* ``init_state(net, X, Y, generator=...)`` -> a state record holding every iterate;
* ``step(net, state, X, Y, new_batch=...)`` -> the state after one update on the batch ``(X, Y)``
  (for lifted methods: one block-coordinate sweep; ``new_batch`` says the lifted activation
  variables must be re-initialised by a forward pass because ``X`` is a batch they have not seen;
  ``False`` keeps them only where X holds the samples of the last step, see ``record_batch``);
* ``objective(net, state, X, Y)`` -> the value of the method's training objective on that batch.

``fit`` in :mod:`liftnet.training` drives them, and so do the CLI, the estimator, the
benchmarks and the contract tests, without knowing any method's insides.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import re
import typing
import weakref
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..graph import Network, Params
from ..solvers import GramStats


@dataclass
class MethodState:
    """Iterates common to all methods: the network parameters and a step counter."""

    params: Params
    step: int = 0
    #: sums over samples go through ``reducer.sum`` (None: this process's samples only;
    #: :mod:`liftnet.distributed` sets an all-reduce for methods that support it)
    reducer: Any = None
    #: the samples the lifted variables belong to in full-data-set training
    #: (:func:`liftnet.checkpoint.data_record`; "batches" after mini-batch training; None
    #: unknown, e.g. a state of an older liftnet): ``fit`` continues them on these data only
    data_id: Any = None
    #: :func:`batch_signature` of the samples of the last step (the batch the lifted variables
    #: belong to; None: not stepped, or a state of an older liftnet), and the
    #: :class:`DataKey` of that tensor (the same tensor again needs no new signature)
    batch_sig: tuple | None = None
    batch_key: Any = None


@dataclass(frozen=True)
class Method(ABC):
    """Base class of training methods; subclasses are frozen dataclasses of hyperparameters."""

    key: ClassVar[str] = ""
    supports_conv: ClassVar[bool] = False
    losses: ClassVar[tuple[str, ...]] = ("ce", "mse")
    #: activations the method can train on hidden layers (None: any registered activation;
    #: a method whose list depends on what is registered overrides ``supported_activations``)
    hidden_activations: ClassVar[tuple[str, ...] | None] = None
    #: default batch size of the method; 0 means the full data set (the lifted papers' setting)
    default_batch_size: ClassVar[int] = 0
    #: default number of epochs (passes over the training set)
    default_epochs: ClassVar[int] = 10
    #: every step exactly minimises its blocks, so in full-batch training the objective never
    #: increases from one step to the next (checked by the contract tests)
    monotone: ClassVar[bool] = False
    #: the method's algorithm is defined on the full data set only (``fit`` refuses batches)
    full_batch_only: ClassVar[bool] = False
    #: hyperparameters that act between batches only (none in full-batch training: the CLI
    #: warns when one is given for a full-data-set run)
    batch_only: ClassVar[tuple[str, ...]] = ()
    #: every sum over samples goes through ``state.reducer`` (data-parallel training by
    #: :func:`liftnet.distributed.fit_distributed`)
    supports_distributed: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass's own ``__post_init__`` (its validation) runs after
        :func:`plain_numbers_`, so that it sees, and the method keeps, plain Python numbers."""
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("__post_init__")
        if own is None or getattr(own, "_plain_numbers", False):
            return

        @functools.wraps(own)
        def __post_init__(self: Method) -> None:
            plain_numbers_(self)
            own(self)

        __post_init__._plain_numbers = True  # type: ignore[attr-defined]
        cls.__post_init__ = __post_init__  # type: ignore[attr-defined]

    def __post_init__(self) -> None:
        plain_numbers_(self)

    @classmethod
    def state_type(cls) -> type[MethodState]:
        """The state class of the method: the return annotation of its ``init_state`` (a
        :class:`MethodState` subclass), else :class:`MethodState`."""
        return _state_type(cls)

    def check_state(self, state: Any) -> None:
        """Raise ``ValueError`` unless ``state`` is a state of this method (e.g. a state from
        another method's run, whose fields the method's steps would miss)."""
        want = self.state_type()
        if not isinstance(state, want):
            raise ValueError(f"state is a {type(state).__name__}, method {self.key} needs a "
                             f"{want.__name__}")

    def check_network(self, net: Network) -> None:
        """Capabilities checked in one place, with errors that name the class."""
        name = type(self).__name__
        if not self.supports_conv:
            for l, layer in enumerate(net.layers):
                if not layer.plain:
                    kind = "Conv2d" if type(layer).__name__ == "Conv2d" else "pooling"
                    raise ValueError(
                        f"{name} does not support {kind} layers (layer {l}); methods for "
                        "convolutional networks: "
                        + ", ".join(k for k, m in _registry().items() if m.supports_conv)
                    )
        if net.loss not in self.losses:
            raise ValueError(f"{name} does not support loss {net.loss!r} (supports: "
                             f"{', '.join(self.losses)})")
        acts = self.supported_activations()
        for l, layer in enumerate(net.layers[:-1]):
            if acts is not None and layer.activation not in acts:
                raise ValueError(
                    f"{name} does not support activation {layer.activation!r} on hidden layer "
                    f"{l + 1} (supports {', '.join(acts)})"
                )

    @classmethod
    def supported_activations(cls) -> tuple[str, ...] | None:
        """The registered activations the method trains on hidden layers, now (None: any);
        by default ``hidden_activations``."""
        return cls.hidden_activations

    def hyperparameters(self) -> dict[str, Any]:
        """Every hyperparameter of the method, for results files and ``get_params``."""
        return dataclasses.asdict(self)

    @abstractmethod
    def init_state(
        self,
        net: Network,
        X: Tensor,
        Y: Tensor,
        *,
        generator: torch.Generator | None = None,
        params: Params | None = None,
    ) -> MethodState:
        """Initial iterates for training ``net`` on inputs X (N, d_0) and targets Y (N, d_out),
        starting from the weights ``params`` when given (e.g. a saved model: lifted weights as
        initialisation) and from the method's random initialisation otherwise."""

    @abstractmethod
    def step(
        self, net: Network, state: MethodState, X: Tensor, Y: Tensor, *, new_batch: bool = True
    ) -> MethodState:
        """One update on the batch ``(X, Y)``; returns the new state."""

    @abstractmethod
    def objective(self, net: Network, state: MethodState, X: Tensor, Y: Tensor) -> float:
        """The method's training objective at ``state`` on the batch ``(X, Y)``."""

    def probabilities(self, outputs: Tensor) -> Tensor:
        """Class probabilities (N, k) from a ``ce`` network's outputs (N, k), as the method
        trains them: the softmax (its cross-entropy) unless a method's output layer means
        something else."""
        return torch.softmax(outputs, 1)


@functools.cache
def _state_type(cls: type[Method]) -> type[MethodState]:
    try:  # (postponed annotations are resolved in the method's module)
        hint = typing.get_type_hints(cls.init_state).get("return")
    except Exception:  # an unresolvable annotation: no check beyond MethodState
        hint = None
    if isinstance(hint, type) and issubclass(hint, MethodState):
        return hint
    return MethodState


def _field_kind(annotation: Any) -> str | None:
    """"float" or "int" for a field annotated with that number type alone (e.g. ``float``,
    ``float | None``), else None."""
    text = annotation if isinstance(annotation, str) else getattr(
        annotation, "__name__", str(annotation))
    words = set(re.findall(r"\w+", text))
    if "float" in words and "int" not in words:
        return "float"
    if "int" in words and "float" not in words:
        return "int"
    return None


def plain_number(value: Any, kind: str | None = None) -> Any:
    """``value`` as a plain Python number when it is a real number of another type (NumPy
    scalars: ``np.float32(0.5)`` -> 0.5, ``np.int64(2)`` -> 2), as a float where ``kind`` is
    ``"float"`` (``10**20`` -> 1e20: torch cannot use larger Python ints); anything else
    (booleans, strings, ints too large for a float) unchanged, for the checks to refuse."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return value
    try:
        if kind == "float":
            return value if type(value) is float else float(value)
        if isinstance(value, numbers.Integral):
            return value if type(value) is int else int(value)
        return value if type(value) is float else float(value)
    except (OverflowError, TypeError, ValueError):
        return value


def plain_numbers_(method: Method) -> None:
    """Replace every number among the hyperparameters of ``method`` by a plain Python
    float or int (:func:`plain_number`), so that equality, ``repr`` and JSON records see
    plain numbers.  Runs before every method's ``__post_init__`` (see :class:`Method`)."""
    for f in dataclasses.fields(method):
        value = getattr(method, f.name)
        new = plain_number(value, _field_kind(f.type))
        if new is not value:
            object.__setattr__(method, f.name, new)


def _registry() -> dict[str, type[Method]]:
    from . import METHODS  # late import: the registry imports this module

    return METHODS


def sum_samples(state: MethodState, t: Tensor) -> Tensor:
    """A sum over samples computed on this process's samples, summed over every process when
    the state has a reducer (distributed training)."""
    return t if state.reducer is None else state.reducer.sum(t)


def count_samples(state: MethodState, X: Tensor) -> int:
    """Rows of X, summed over every process in distributed training."""
    return int(sum_value(state, float(X.shape[0]), X.device))


def sum_value(state: MethodState, value: float, device: torch.device) -> float:
    """A number summed over this process's samples (e.g. an objective's data term), summed
    over every process in distributed training (in float64)."""
    if state.reducer is None:
        return value
    return float(state.reducer.sum(torch.tensor(value, dtype=torch.float64, device=device)))


def sum_stats(state: MethodState, stats: GramStats, *, xx_summed: bool = False,
              n: int | None = None) -> GramStats:
    """Least-squares statistics of this process's samples (:func:`~liftnet.solvers.gram_stats`)
    summed over every process in distributed training: the statistics of the union.
    ``xx_summed``: ``stats.xx`` is already the sum (a cached Gram matrix of the inputs);
    ``n``: the union's sample count where already known (else summed too)."""
    if state.reducer is None:
        return stats
    xx = stats.xx if xx_summed else state.reducer.sum(stats.xx)
    if n is None:
        n = int(sum_value(state, float(stats.n), stats.xt.device))
    return GramStats(xx, state.reducer.sum(stats.xt), n)


def start_params(
    net: Network,
    X: Tensor,
    params: Params | None,
    *,
    generator: torch.Generator | None,
    scheme: str,
    bias: float = 0.0,
    std: float | None = None,
) -> Params:
    """Copies of ``params`` (checked against ``net``) on X's device and dtype, or, when None,
    a random initialisation by ``net.init_params``."""
    if params is None:
        return net.init_params(generator=generator, scheme=scheme, bias=bias, std=std,
                               dtype=X.dtype, device=X.device)
    net.check_params(params)
    out: Params = []
    for l, (W, b) in enumerate(params):
        W = W.detach().to(device=X.device, dtype=X.dtype).clone()
        b = b.detach().to(device=X.device, dtype=X.dtype).clone()
        if not (torch.isfinite(W).all() and torch.isfinite(b).all()):
            raise ValueError(f"initial parameters of layer {l} contain NaN or infinite values")
        out.append((W, b))
    return out


#: largest magnitude of a hyperparameter: beyond it float32 arithmetic overflows
HYPERPARAMETER_MAX = 1e30


#: smallest non-zero magnitude of a positive hyperparameter (a multiplier of 1e-300 makes the
#: block solvers' matrices zero in float32 and fails deep inside them)
HYPERPARAMETER_MIN = 1.0 / HYPERPARAMETER_MAX


def _check_magnitude(name: str, value: float) -> None:
    if abs(value) > HYPERPARAMETER_MAX:
        raise ValueError(f"{name} must be at most {HYPERPARAMETER_MAX:g} in magnitude (float32 "
                         f"arithmetic overflows beyond), got {value}")


def _as_float(name: str, value: Any, want: str) -> float:
    """``value`` (a real number, booleans refused) as a float, with errors naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a finite number{want}, got {value!r}")
    try:
        return float(value)
    except OverflowError:  # an int beyond float range (too long to print in full)
        raise ValueError(f"{name} must be at most {HYPERPARAMETER_MAX:g} in magnitude (float32 "
                         f"arithmetic overflows beyond), got an integer of about "
                         f"10**{int(int(value).bit_length() * math.log10(2))}") from None
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number{want}, got {value!r}") from None


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    """Raise ``ValueError(f"{name} must be > 0, got {value}")`` (or >= 0) for anything but a
    finite real number in range (NaN, inf, strings and booleans included; NumPy scalars are
    numbers), or one beyond :data:`HYPERPARAMETER_MAX` or non-zero below
    :data:`HYPERPARAMETER_MIN`.  Returns the value as a float."""
    want = ">= 0" if allow_zero else "> 0"
    x = _as_float(name, value, " " + want)
    bad = x < 0 if allow_zero else x <= 0
    if bad or not math.isfinite(x):
        raise ValueError(f"{name} must be a finite number {want}, got {value!r}")
    if 0 < x < HYPERPARAMETER_MIN:
        zero = "0 or " if allow_zero else ""
        raise ValueError(f"{name} must be {zero}at least {HYPERPARAMETER_MIN:g} (float32 "
                         f"arithmetic underflows below), got {value!r}")
    _check_magnitude(name, x)
    return x


def check_tol(name: str, value: float) -> float:
    """Raise ``ValueError`` unless ``value`` is a relative tolerance, 0 < value < 1; returns
    it as a float."""
    x = check_positive(name, value)
    if x >= 1:
        raise ValueError(f"{name} must be < 1 (a relative tolerance), got {value!r}")
    return x


def check_finite(name: str, value: float) -> float:
    """Raise ``ValueError`` unless ``value`` is a finite real number (booleans refused);
    returns it as a float."""
    x = _as_float(name, value, "")
    if not math.isfinite(x):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    _check_magnitude(name, x)
    return x


def _gone() -> None:
    return None


class DataKey:
    """Identifies one tensor object and its contents (storage, shape, dtype, device, in-place
    version), so that quantities cached from the inputs (Gram matrices) are dropped when the
    data change.  It holds a weak reference: a key never matches another tensor, not even one
    that reuses the memory of a freed batch at the same address (a new mini-batch in a loop
    that frees the last), and a pickled key matches nothing."""

    __slots__ = ("_ref", "_meta")

    def __init__(self, X: Tensor) -> None:
        self._ref = weakref.ref(X)
        self._meta = (X.data_ptr(), tuple(X.shape), X.dtype, str(X.device), X._version)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DataKey):
            return NotImplemented
        alive = self._ref()
        return alive is not None and alive is other._ref() and self._meta == other._meta

    def __hash__(self) -> int:
        return hash(self._meta)

    def __deepcopy__(self, memo: dict) -> DataKey:  # immutable: a copied state keeps its cache
        return self

    def __getstate__(self) -> dict:
        return {"meta": self._meta}

    def __setstate__(self, state: dict) -> None:
        self._ref, self._meta = _gone, state["meta"]


def batch_signature(X: Tensor) -> tuple:
    """What tells a batch from another of the same shape: shape, dtype, device and two float64
    sums of X, by chunks of rows (no float64 copy of a full data set): plain, and with row i
    weighted by the fractional part of i times the golden ratio (weights spread over [0, 1), so
    that a swap of two rows anywhere changes the sum by about the difference of their sums).
    Content, not identity: ``X[50:100]`` twice is the same batch."""
    flat = X.reshape(X.shape[0], -1)
    step = max(1, (1 << 22) // max(1, flat.shape[1]))
    rows = torch.cat([flat[i : i + step].sum(dim=1, dtype=torch.float64)
                      for i in range(0, flat.shape[0], step)])
    weights = torch.arange(X.shape[0], dtype=torch.float64, device=X.device).mul_(
        0.6180339887498949).frac_()
    return (tuple(X.shape), X.dtype, str(X.device), float(rows.sum()), float(rows @ weights))


def record_batch(state: MethodState, X: Tensor, new_batch: bool = True) -> bool:
    """Record in ``state`` that its lifted variables are now those of X (every ``step``), so
    that ``objective`` does not pair them with other samples of the same size.  Returns
    whether the step must re-initialise them: ``new_batch``, or X is not the batch they hold
    (a caller's ``new_batch=False`` with other samples, even of the same row count)."""
    key = data_key(X)
    if getattr(state, "batch_key", None) == key:  # full-data-set training: computed once
        return new_batch
    old, sig = getattr(state, "batch_sig", None), batch_signature(X)
    state.batch_key, state.batch_sig = key, sig
    return new_batch or not _same_batch(old, sig)


def holds_batch(state: MethodState, X: Tensor) -> bool:
    """Whether the state's lifted variables may belong to X: X is the tensor of its last step,
    or has the same signature (to rounding: another thread count sums in another order), or
    the state has none and only the row count can be compared (the caller does that)."""
    sig = getattr(state, "batch_sig", None)
    if sig is None or getattr(state, "batch_key", None) == data_key(X):
        return True
    return _same_batch(sig, batch_signature(X))


def _same_batch(old: tuple | None, new: tuple) -> bool:
    """Two batch signatures that may be one batch (no old one: nothing to compare)."""
    return old is None or (old[:3] == new[:3] and all(
        math.isclose(a, b, rel_tol=1e-11, abs_tol=1e-300)
        for a, b in zip(old[3:], new[3:], strict=True)))


#: the error of an objective asked for other samples than its state's lifted variables hold
OTHER_BATCH = ("the state's lifted variables belong to other samples (those of its last step); "
               "step on this batch first")


def data_key(X: Tensor) -> DataKey:
    """The :class:`DataKey` of X."""
    return DataKey(X)


def rebind_data_keys_(state: MethodState, X: Tensor) -> None:
    """Point every :class:`DataKey` of ``state`` (in its fields, and in tuples, lists and
    dicts there) at X: for a state restored from a checkpoint of a full-data-set run on the
    same data X, whose caches (Gram matrices, the last optimum) then stay valid.  A pickled
    key matches nothing, so without this the caches would be rebuilt, which changes what
    some methods do next (e.g. ``convex``'s parameters)."""
    def rebind(value: Any) -> Any:
        if isinstance(value, DataKey):
            return data_key(X)
        if isinstance(value, tuple):
            return tuple(rebind(v) for v in value)
        if isinstance(value, list) and any(isinstance(v, (DataKey, tuple, list, dict))
                                           for v in value):
            return [rebind(v) for v in value]
        if isinstance(value, dict):
            return {k: rebind(v) for k, v in value.items()}
        return value

    for f in dataclasses.fields(state):
        setattr(state, f.name, rebind(getattr(state, f.name)))


INIT_SCHEMES = ("xavier", "normal", "variance_scaling")


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def check_int(name: str, value: int, minimum: int) -> int:
    """Raise ``ValueError`` unless ``value`` is an integer >= ``minimum`` (NumPy integers
    included, booleans refused); returns it as an int."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)
