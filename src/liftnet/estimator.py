"""scikit-learn estimators over every liftnet method: :class:`LiftedClassifier` and
:class:`LiftedRegressor`.

They wrap :func:`liftnet.fit` without knowing any method's insides (the verbs of
:mod:`liftnet.methods.base`), so they work with pipelines, ``cross_val_score`` and
``GridSearchCV``::

    from liftnet.estimator import LiftedClassifier
    clf = LiftedClassifier("fenchel", hidden_layer_sizes=(300,), epochs=10).fit(X, y)
    clf.score(X_test, y_test)
    GridSearchCV(clf, {"method__lam": [0.5, 1, 2]})      # the method's hyperparameters, nested

``method`` is a registry key (``"fenchel"``, ``"lifted"``, ``"bregman"``, ``"backprop"``, ...) or
a method object (``get_method("fenchel", lam=2)``).  Methods are frozen dataclasses, so
``set_params(method__lam=2)`` replaces the method object by a validated copy instead of
changing it in place (a method object shared by two estimators stays as it was).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import numbers
import warnings
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .augment import augment_of_epoch, check_augment, method_of_epoch, scheduled_methods
from .graph import Network, Params, lenet5_spec, network
from .methods import Method, get_method
from .methods.fenchel import SHADOWED_BY, lenet5_hyperparameters, scalars_over_lists, shadowed
from .training import fit, resolve_device
from .transfer import to_torch

__all__ = ["LiftedClassifier", "LiftedRegressor"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _card(device: torch.device) -> tuple[str, int]:
    """A device with its index (``cuda`` is the current card, ``cpu`` is ``cpu:0``)."""
    if device.index is not None:
        return device.type, device.index
    return device.type, torch.cuda.current_device() if device.type == "cuda" else 0


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # e.g. arrays
        return False


def _is_lenet5(hidden: Any) -> bool:
    """``hidden_layer_sizes == "lenet5"``, also for a numpy array of widths (whose ``==`` is
    element-wise)."""
    return isinstance(hidden, str) and hidden == "lenet5"


def _plain(params: Params) -> Params:
    """The weights without autograd (back-propagation's state keeps them as leaves that
    require gradients): tensors like every other method's, whose ``.numpy()`` works."""
    return [(W.detach(), b.detach()) for W, b in params]


class _ThisEpoch:
    """An augmentation that partial_fit has found to apply to the model's epoch, applied by
    fit's one epoch as it is (fit would ask it about its own epoch 1)."""

    def __init__(self, augment: Any) -> None:
        self.augment = augment

    def __call__(self, X: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.augment(X, generator)

    def __repr__(self) -> str:  # error messages name the user's augmentation
        return repr(self.augment)


class _LiftedEstimator(BaseEstimator):
    """What the classifier and the regressor share (parameters: see :class:`LiftedClassifier`)."""

    def __init__(
        self,
        method: str | Method = "fenchel",
        *,
        method_params: dict[str, Any] | None = None,
        hidden_layer_sizes: int | tuple[int, ...] | str = (100,),
        activation: str = "relu",
        image_shape: tuple[int, int, int] | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
        random_state: int | np.random.RandomState | None = 0,
        dtype: str = "float32",
        device: str = "cpu",
        verbose: bool = False,
        warm_start: bool = False,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        augment: Any = None,
        schedule: dict[int, dict[str, Any]] | None = None,
    ) -> None:
        self.method = method
        self.method_params = method_params
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.image_shape = image_shape
        self.epochs = epochs
        self.batch_size = batch_size
        self.random_state = random_state
        self.dtype = dtype
        self.device = device
        self.verbose = verbose
        self.warm_start = warm_start
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.augment = augment
        self.schedule = schedule

    # -------------------------------------------------------------- nested method parameters
    def _method(self) -> Method:
        """The method to train with: ``method`` (a key: with its defaults, LeNet-5's for
        ``"fenchel"`` with ``hidden_layer_sizes="lenet5"``) with ``method_params`` applied."""
        if self.method_params is not None and not isinstance(self.method_params, dict):
            raise ValueError(f"method_params must be a dict of the method's hyperparameters, "
                             f"got {type(self.method_params).__name__}")
        overrides = dict(self.method_params or {})
        for scalar, per_layer in shadowed(overrides):
            raise ValueError(f"method__{scalar} and method__{per_layer} both given: "
                             f"{per_layer} sets every layer's value; give one of them")
        if isinstance(self.method, Method):
            known = {f.name for f in dataclasses.fields(self.method)}
            unknown = sorted(set(overrides) - known)
            if unknown:
                raise ValueError(f"{', '.join('method__' + k for k in unknown)}: not a "
                                 f"hyperparameter of method {self.method.key!r}")
            for scalar, per_layer in SHADOWED_BY:
                if (overrides.get(scalar) is not None and per_layer not in overrides
                        and per_layer in known  # (a hyperparameter, not e.g. Lifted.lams())
                        and getattr(self.method, per_layer) is not None):
                    raise ValueError(f"method__{scalar} would be ignored: the method's "
                                     f"{per_layer} sets every layer's value; set "
                                     f"method__{per_layer} instead")
            return dataclasses.replace(self.method, **overrides) if overrides else self.method
        if isinstance(self.method, str):
            lenet = self.method == "fenchel" and _is_lenet5(self.hidden_layer_sizes)
            try:
                return get_method(self.method, **(lenet5_hyperparameters(overrides) if lenet
                                                  else overrides))
            except ValueError as exc:
                raise ValueError(str(exc).replace("not a hyperparameter", "not a hyperparameter "
                                                  "(method__<name>)", 1)) from None
        raise ValueError(f"method must be a method key or a liftnet Method, got "
                         f"{type(self.method).__name__}")

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        params = super().get_params(deep=False)
        if deep:
            try:
                method = self._method()
            except ValueError:  # an invalid method is reported by fit, not here
                return params
            params.update({f"method__{k}": v for k, v in method.hyperparameters().items()})
        return params

    def set_params(self, **params: Any) -> _LiftedEstimator:
        """scikit-learn's set_params; ``method__<name>`` goes into ``method_params`` (so it
        holds whether ``method`` is set before or after it), checked before anything is
        changed.  A scalar replaces what an earlier call's per-layer list set for it:
        ``method__lam`` the ``lams`` of ``method_params``, ``method__gamma`` /
        ``method__gamma_out`` the hidden / last entries of its ``gammas``; a per-layer list
        replaces the scalars it shadows."""
        nested = {k.removeprefix("method__"): params.pop(k)
                  for k in list(params) if k.startswith("method__")}
        own = self.get_params(deep=False)
        unknown = sorted(set(params) - set(own))
        if unknown:
            raise ValueError(f"invalid parameter {unknown[0]!r} for estimator "
                             f"{type(self).__name__}; valid parameters: {', '.join(own)} and "
                             "method__<hyperparameter>")
        if nested:
            reported = type(self)(**{**own, **params}).get_params(deep=True)  # after the call
            for scalar, per_layer in SHADOWED_BY:  # get_params reports both of such a pair:
                if (scalar in nested and per_layer in nested  # keep the round trip working
                        and _same(nested[scalar], reported.get(f"method__{scalar}"))):
                    del nested[scalar]
            # a later call's scalar replaces an earlier call's per-layer list (lam over lams,
            # gamma / gamma_out over their entries of gammas), as over LeNet-5's defaults, and
            # a later list the scalars it shadows
            merged = scalars_over_lists(params.get("method_params", self.method_params) or {},
                                        nested)
            type(self)(**{**own, **params, "method_params": merged})._method()  # validated
            params["method_params"] = merged
        super().set_params(**params)
        return self

    # -------------------------------------------------------------- fitting
    @contextlib.contextmanager
    def _kept_on_failure(self):
        """A fit or partial_fit that fails (bad input, divergence, interruption) leaves the
        estimator as it was: its fitted model, classes_ and n_features_in_."""
        saved = dict(self.__dict__)
        try:
            yield
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise

    def __getstate__(self) -> dict[str, Any]:
        """Pickles (and copies) keep the fitted weights, not the method's training state
        (for full-data-set methods as large as the data): partial_fit after loading starts a
        new method state around the weights."""
        state = dict(super().__getstate__())  # (Python 3.11: object's is __dict__ itself)
        state.pop("_state", None)
        return state

    def _network(self, n_features: int, n_out: int, loss: str) -> Network:
        hidden = self.hidden_layer_sizes
        if _is_lenet5(hidden):
            if self.image_shape is None:
                raise ValueError("hidden_layer_sizes='lenet5' needs image_shape=(C, H, W)")
            spec = lenet5_spec(self._image_shape(), n_out)
            return self._checked(network(spec, loss=loss, activation=self.activation), n_features)
        if isinstance(hidden, numbers.Integral) and not isinstance(hidden, bool):
            hidden = (int(hidden),)
        if isinstance(hidden, str):  # tokens: "conv6k5p2-pool2-120"
            head = ("x".join(str(s) for s in self._image_shape())
                    if self.image_shape is not None else str(n_features))
            spec = "-".join(t for t in (head, hidden.strip("-"), str(n_out)) if t)
        else:
            try:
                sizes = tuple(hidden)
            except TypeError:
                raise ValueError(f"hidden_layer_sizes must be widths like (100,), architecture "
                                 f"tokens or 'lenet5', got {hidden!r}") from None
            spec = [n_features, *sizes, n_out]
            if self.image_shape is not None:  # dense layers take the flattened images
                c, h, w = self._image_shape()
                if c * h * w != n_features:
                    raise ValueError(f"image_shape {self.image_shape} holds {c * h * w} "
                                     f"values per image, the data has {n_features} features")
        return self._checked(network(spec, loss=loss, activation=self.activation), n_features)

    def _image_shape(self) -> tuple[int, int, int]:
        shape = self.image_shape
        try:
            dims = tuple(shape)
        except TypeError:
            dims = ()
        if len(dims) != 3 or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool)
                                     and s >= 1 for s in dims):
            raise ValueError(f"image_shape must be (C, H, W), three positive integers, "
                             f"got {shape!r}")
        return tuple(int(s) for s in dims)

    def _checked(self, net: Network, n_features: int) -> Network:
        if net.layers[0].input_size != n_features:
            raise ValueError(f"the network takes {net.layers[0].input_size} input features "
                             f"(image_shape {self.image_shape}), the data has {n_features}")
        return net

    def _setup(self, X: np.ndarray, y: torch.Tensor, n_out: int, loss: str):
        """(method, device, network, X and y as tensors there, seed): what a fit needs."""
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {self.dtype!r}")
        method = self._method()
        device = resolve_device(self.device, "device")
        net = self._network(X.shape[1], n_out, loss)
        method.check_network(net)
        Xt = torch.tensor(X, dtype=_DTYPES[self.dtype], device=device)
        if y.is_floating_point():
            y = y.to(Xt.dtype)
        if isinstance(self.random_state, int | np.integer) and not isinstance(
                self.random_state, bool) and not 0 <= self.random_state < 2**32:
            raise ValueError(f"random_state must be an integer in [0, 2**32), a "
                             f"RandomState or None, got {self.random_state!r}")
        seed = int(check_random_state(self.random_state).randint(2**31 - 1)) if not isinstance(
            self.random_state, int | np.integer) else int(self.random_state)
        return method, device, net, Xt, y.to(device), seed

    def _fit(self, X: np.ndarray, y: torch.Tensor, n_out: int, loss: str) -> None:
        method, device, net, Xt, y, seed = self._setup(X, y, n_out, loss)
        start = None
        if self.warm_start and hasattr(self, "params_") and self.net_.spec == net.spec \
                and self.net_.loss == net.loss:  # scikit-learn's warm start: the last weights
            start = [(W.to(device=device, dtype=Xt.dtype), b.to(device=device, dtype=Xt.dtype))
                     for W, b in self.params_]
        elif self.warm_start and hasattr(self, "params_"):
            warnings.warn(f"warm_start: the network changed ({self.net_.spec}, {self.net_.loss} "
                          f"-> {net.spec}, {net.loss}); this fit starts from the method's "
                          "initialisation, not from the last weights", UserWarning, stacklevel=3)
        self._check_early_stopping()
        held: dict[str, Any] = {}
        scale = 1.0  # a regressor's validation score is R^2: 1 - val_loss / scale
        if self.early_stopping:
            train, val = self._validation_split(y, seed)
            if y.is_floating_point():  # the targets' variance (summed over the outputs)
                y_val = y[val].double()
                scale = float(((y_val - y_val.mean(0)) ** 2).sum(1).mean()) or 1.0
            held = {"X_val": Xt[val], "y_val": y[val], "patience": int(self.n_iter_no_change),
                    "min_delta": float(self.tol) * scale}
            Xt, y = Xt[train], y[train]
        result = fit(
            method, net, Xt, y,
            epochs=method.default_epochs if self.epochs is None else self.epochs,
            batch_size=method.default_batch_size if self.batch_size is None else self.batch_size,
            seed=seed, progress=bool(self.verbose), params=start, augment=self.augment,
            schedule=self.schedule, **held,
        )
        self.method_, self.net_, self.loss_, self.device_ = method, net, loss, device
        self.params_ = _plain(result.state.params)
        self.history_ = result.history
        self.n_iter_ = len(result.history)
        self._state = result.state  # where partial_fit goes on
        if self.early_stopping:  # scikit-learn's MLP: the best validation epoch's weights
            self.validation_scores_ = [
                e["val_accuracy"] if e["val_accuracy"] is not None
                else 1.0 - e["val_loss"] / scale for e in result.history]
            self.best_epoch_ = result.best_epoch
            self.best_validation_score_ = max(self.validation_scores_, default=None)
            if result.best_params is not None and result.best_epoch != self.n_iter_:
                self.params_ = _plain(result.best_params)
                self._state = None  # partial_fit: a new method state around these weights
        else:  # as scikit-learn's MLP: no validation scores without early stopping
            self.validation_scores_ = self.best_validation_score_ = self.best_epoch_ = None

    def _partial_fit(self, X: np.ndarray, y: torch.Tensor, n_out: int, loss: str) -> None:
        """One epoch over (X, y) from the fitted model's state (or a new model's): the
        model's next epoch, which ``augment`` and ``schedule`` count as fit does."""
        method, device, net, Xt, y, seed = self._setup(X, y, n_out, loss)
        batch_size = method.default_batch_size if self.batch_size is None else self.batch_size
        scheduled = scheduled_methods(method, self.schedule, net)  # checked on every call
        if self.augment is not None:  # here too in an epoch it does not apply to
            check_augment(self.augment, Xt, full=False)  # (fit checks the batch size)
        state, start = None, None
        if hasattr(self, "params_"):
            changed = [name for name, old, new in (
                ("the method or its hyperparameters", self.method_, method),
                ("the network (its layers, activations or loss)", self.net_, net),
                ("the device or dtype", (_card(self.device_), self.params_[0][0].dtype),
                 (_card(device), Xt.dtype))) if old != new]
            if changed:
                raise ValueError(f"partial_fit continues the fitted model, but "
                                 f"{' and '.join(changed)} changed since: call fit to start anew")
            state = getattr(self, "_state", None)
            if state is None:  # early stopping's best weights (or a loaded model): a new
                start = self.params_  # method state around them
            # else fit trains a copy of the state: a failed call leaves the model as it was
        epoch = getattr(self, "n_iter_", 0) + 1  # the model's epoch, also after fit's
        # decided here for the model's epoch; fit's one epoch then applies it as it is
        applies = augment_of_epoch(self.augment, epoch)
        augment = None if applies is None else _ThisEpoch(applies)
        try:
            result = fit(
                method_of_epoch(method, scheduled, epoch), net, Xt, y, epochs=1,
                batch_size=batch_size, seed=(seed + epoch - 1) % 2**63,  # not fit's again
                progress=bool(self.verbose), params=start, state=state, new_data=True,
                augment=augment)
        except FloatingPointError as exc:  # fit counts its own epochs: name the model's
            raise FloatingPointError(str(exc).replace(
                " at epoch 1;", f" in partial_fit (the model's epoch {epoch});", 1)) from None
        entries = [dict(e, epoch=epoch) for e in result.history]
        self.method_, self.net_, self.loss_, self.device_ = method, net, loss, device
        self.params_ = _plain(result.state.params)
        self.history_ = [*getattr(self, "history_", []), *entries]
        self.n_iter_ = len(self.history_)
        self.validation_scores_ = self.best_validation_score_ = self.best_epoch_ = None
        self._state = result.state

    def _check_early_stopping(self) -> None:
        """Clear errors for bad early-stopping parameters and epochs (checked by every fit)."""
        epochs = self.epochs
        if epochs is not None and (isinstance(epochs, bool) or not isinstance(
                epochs, numbers.Integral) or epochs < 1):  # as MLP's max_iter: 0 fits nothing
            raise ValueError(f"epochs must be an integer >= 1 or None (the method's default), "
                             f"got {epochs!r}")
        if not isinstance(self.early_stopping, bool | np.bool_):
            raise ValueError(f"early_stopping must be True or False, got "
                             f"{self.early_stopping!r}")
        fraction = self.validation_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not (
                0 < fraction < 1):
            raise ValueError(f"validation_fraction must be in (0, 1), got {fraction!r}")
        patience = self.n_iter_no_change
        if isinstance(patience, bool) or not isinstance(patience, numbers.Integral) or \
                patience < 1:
            raise ValueError(f"n_iter_no_change must be an integer >= 1, got {patience!r}")
        tol = self.tol
        if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not (
                0 <= tol < math.inf):
            raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")

    def _validation_split(self, y: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Training and validation rows for ``early_stopping``: a seeded split of
        ``validation_fraction`` of the samples, stratified by class for classifiers where
        every class has enough samples for it."""
        from sklearn.model_selection import train_test_split

        fraction = self.validation_fraction
        labels = None if y.is_floating_point() else y.cpu().numpy()
        rows = np.arange(len(y))
        try:
            try:
                train, val = train_test_split(rows, test_size=fraction, random_state=seed,
                                              stratify=labels)
            except ValueError:  # too few samples per class to stratify: a plain split
                train, val = train_test_split(rows, test_size=fraction, random_state=seed)
        except ValueError as exc:
            raise ValueError(f"early_stopping: cannot hold out validation_fraction={fraction} "
                             f"of the {len(y)} samples: {exc}") from None
        return (torch.as_tensor(np.sort(train), device=y.device),
                torch.as_tensor(np.sort(val), device=y.device))

    def _outputs(self, X: Any) -> torch.Tensor:
        check_is_fitted(self, "params_")
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        # in float64: a row's prediction must not depend on the other rows (float32 products
        # round differently with the number of rows)
        Xt = torch.tensor(X, dtype=torch.float64, device=self.device_)
        params = [(W.double(), b.double()) for W, b in self.params_]
        return self.net_.outputs(params, Xt)

    def to_torch(self) -> torch.nn.Module:
        """The fitted network as an ordinary ``torch.nn`` module (logits for classifiers)."""
        check_is_fitted(self, "params_")
        return to_torch(self.net_, self.params_)


class LiftedClassifier(ClassifierMixin, _LiftedEstimator):
    """A classifier trained by a liftnet method (default: Fenchel lifted networks).

    Args:
        method: a method key (``liftnet.METHODS``) or a method object; its hyperparameters are
            nested parameters ``method__<name>``.  With ``"fenchel"`` and ``hidden_layer_sizes=
            "lenet5"`` the LeNet-5 defaults of the CLI apply.
        method_params: hyperparameters applied on top of ``method`` (where
            ``set_params(method__<name>=...)`` puts them), e.g. ``{"lam": 2.0}``.
        hidden_layer_sizes: hidden widths ``(300,)``; or architecture tokens between the input
            and the output, e.g. ``"conv6k5p2-pool2-conv16k5-pool2-120-84"`` with
            ``image_shape``; or ``"lenet5"``.
        activation: hidden activation (``relu``, ``leaky_relu``, ...; the method must train it).
        image_shape: ``(C, H, W)`` of one flattened input, for convolutional networks.
        epochs, batch_size: passes over the data and samples per batch (``0``: the full data set);
            ``None``: the method's defaults.
        random_state: seeds the initialisation and the batch order (an int, a RandomState, or
            ``None`` for a fresh seed).
        dtype, device: where and how to compute (``"float32"``/``"float64"``, ``"cpu"``/``"cuda"``).
        verbose: show a progress bar.
        warm_start: start a new ``fit`` from the weights of the last one (when the network is
            the same), as scikit-learn's ``MLPClassifier``; otherwise from the method's
            initialisation.
        early_stopping, validation_fraction, n_iter_no_change, tol: early stopping, named as
            in scikit-learn's MLP: hold out ``validation_fraction`` of the samples
            (stratified where every class allows it, seeded by ``random_state``), stop after
            ``n_iter_no_change`` epochs without a validation score above the best by more
            than ``tol``, and keep the best epoch's weights.  The score is the accuracy, or
            for :class:`LiftedRegressor` the validation R^2 (scikit-learn's variance-weighted
            R^2 for several outputs: 1 - squared error / the targets' variance, both summed
            over the outputs), so ``tol`` does not depend on the targets' scale.  ``tol``
            applies to early stopping only (the epochs are otherwise ``epochs``, not a
            convergence test).
        augment, schedule: as in :func:`liftnet.fit` (e.g. ``augment=liftnet.RandomShift((1,
            28, 28), epochs=4)``, ``schedule={3: {"target_extrapolation": "600,60,1,1"}}``);
            ``partial_fit`` counts its calls as the model's epochs (after ``fit``, the next
            call is the epoch after fit's last).

    Fitted attributes: ``classes_``, ``n_features_in_``, ``method_``, ``net_``, ``params_``
    (``(W, b)`` pairs, ``nn.Linear`` layout), ``history_`` (per epoch), ``n_iter_``; with
    ``early_stopping`` also ``validation_scores_`` (per epoch), ``best_validation_score_``
    and ``best_epoch_``.
    """

    def _resolved_loss(self) -> str:
        method = self._method()
        return "ce" if "ce" in method.losses else "mse"

    def fit(self, X: Any, y: Any) -> LiftedClassifier:
        """Train on X (n_samples, n_features) and class labels y (n_samples,)."""
        with self._kept_on_failure():
            X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
            check_classification_targets(y)
            classes, codes = np.unique(y, return_inverse=True)
            if self.warm_start and hasattr(self, "params_") and not np.array_equal(
                    classes, self.classes_):  # the old output units belong to the old classes
                raise ValueError(f"warm_start needs y of the same classes as the previous fit: "
                                 f"it had {self.classes_.tolist()}, y has {classes.tolist()}")
            if len(classes) < 2:
                raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes "
                                 f"in the data, got 1 class ({classes[0]!r})")
            # squared loss on one-hot targets for the methods without cross-entropy (ADMM,
            # PBCD)
            self._fit(X, torch.as_tensor(codes, dtype=torch.int64), len(classes),
                      self._resolved_loss())
            self.classes_ = classes
        return self

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> LiftedClassifier:
        """One epoch over (X, y), from where the last ``fit`` or ``partial_fit`` left the model
        (its method state too, e.g. Adam's moments for ``"backprop"``, except after early
        stopping restored an earlier epoch's weights or after unpickling: then a new method
        state around the weights); a first call starts a new model.  Each call's samples are
        new data, a new batch of the method's mini-batch algorithm: the lifted variables of
        full-data-set methods start anew on them, and proximal terms towards the previous
        weights act between calls (``"lifted"``'s ``gamma`` too, which a full-batch ``fit``
        ignores).
        ``classes``: every class of the whole data, required on the first call (as in
        scikit-learn).  ``early_stopping`` applies to ``fit`` only.  ``augment`` and
        ``schedule`` take each call as the model's next epoch (after ``fit``, the one after
        its last).  A failed call leaves the model as it was."""
        with self._kept_on_failure():
            first = not hasattr(self, "params_")
            X, y = validate_data(self, X, y, dtype=[np.float64, np.float32], reset=first)
            check_classification_targets(y)
            if first:
                if classes is None:
                    raise ValueError("partial_fit needs classes=... (every class of the whole "
                                     "data) on its first call")
                known = np.unique(np.asarray(classes))
                if len(known) < 2:
                    raise ValueError(f"classes must hold at least 2 classes, got "
                                     f"{known.tolist()}")
            else:
                known = self.classes_
                if classes is not None and not np.array_equal(np.unique(np.asarray(classes)),
                                                              known):
                    raise ValueError(f"classes={np.unique(np.asarray(classes)).tolist()} differ "
                                     f"from the fitted model's {known.tolist()}")
            unknown = np.setdiff1d(y, known)
            if unknown.size:
                raise ValueError(f"y has labels outside classes {known.tolist()}: "
                                 f"{unknown[:5].tolist()}")
            codes = np.searchsorted(known, y)
            self._partial_fit(X, torch.as_tensor(codes, dtype=torch.int64), len(known),
                              self._resolved_loss())
            self.classes_ = known
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Class labels of X."""
        out = self._outputs(X)
        return self.classes_[out.argmax(1).cpu().numpy()]

    @available_if(lambda self: self._resolved_loss() == "ce")
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities of X, columns in the order of ``classes_``: as the method
        trains them (``method_.probabilities``): the softmax of the output layer, for
        ``lifted`` its projection onto the simplex (exact zeros possible)."""
        out = self._outputs(X).double()  # first: NotFittedError before a fit
        return self.method_.probabilities(out).cpu().numpy()

    def decision_function(self, X: Any) -> np.ndarray:
        """The output layer's values (logits for cross-entropy), one column per class (for two
        classes, the second minus the first, as scikit-learn expects)."""
        out = self._outputs(X).double().cpu().numpy()
        return out[:, 1] - out[:, 0] if out.shape[1] == 2 else out


class LiftedRegressor(RegressorMixin, _LiftedEstimator):
    """A regressor (squared loss) trained by a liftnet method; parameters as
    :class:`LiftedClassifier`.  ``y`` is (n_samples,) or (n_samples, n_targets)."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def fit(self, X: Any, y: Any) -> LiftedRegressor:
        """Train on X (n_samples, n_features) and targets y."""
        with self._kept_on_failure():
            X, y = validate_data(self, X, y, dtype=[np.float64, np.float32], y_numeric=True,
                                 multi_output=True)
            y = np.asarray(y, dtype=np.float64)
            Y = y.reshape(len(y), -1)
            self._fit(X, torch.tensor(Y), Y.shape[1], "mse")
            self._y_1d = y.ndim == 1
        return self

    def partial_fit(self, X: Any, y: Any) -> LiftedRegressor:
        """One epoch over (X, y), from where the last ``fit`` or ``partial_fit`` left the model;
        a first call starts a new one (see :meth:`LiftedClassifier.partial_fit`)."""
        with self._kept_on_failure():
            first = not hasattr(self, "params_")
            X, y = validate_data(self, X, y, dtype=[np.float64, np.float32], y_numeric=True,
                                 multi_output=True, reset=first)
            y = np.asarray(y, dtype=np.float64)
            Y = y.reshape(len(y), -1)
            if not first and ((y.ndim == 1) != self._y_1d
                              or Y.shape[1] != self.net_.sizes[-1]):
                fitted = ("a 1-D array (n_samples,)" if self._y_1d else
                          f"a 2-D array of {self.net_.sizes[-1]} column(s)")
                raise ValueError(f"y has shape {y.shape}; the model was fitted to targets "
                                 f"given as {fitted}")
            self._partial_fit(X, torch.tensor(Y), Y.shape[1], "mse")
            self._y_1d = y.ndim == 1
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predicted targets of X, shaped like the training targets."""
        out = self._outputs(X).double().cpu().numpy()
        return out[:, 0] if self._y_1d else out
