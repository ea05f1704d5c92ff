"""The ``liftnet`` command line.

    liftnet train --method lifted --arch 784-300-10 --loss ce --dataset mnist --epochs 30 \\
        --batch-size 0 --seed 0 --data-dir ../shared/data --out run.json --save model.pt
    liftnet evaluate --model model.pt --data-dir ../shared/data --out scores.json
    liftnet export --model model.pt --out model.pt2      # runs with torch alone

With no arguments, ``liftnet`` trains the default method on the bundled ``digits`` data set.
Method hyperparameters (``--lam``, ``--rho``, ...) are generated from the methods' dataclass
fields, so a new method's settings appear here without touching this file; ``--plugin MODULE``
imports a module that registers activations or methods of one's own before the options are
built (``docs/extending.md``).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import math
import os
import sys
import typing
import warnings
from typing import Any

import torch

from . import data as datamod
from . import distributed
from .allocator import reuse_freed_memory
from .augment import (
    RandomShift,
    add_schedule_entry,
    parse_schedule_entry,
    scheduled_methods,
)
from .convex.solve import CVXPY_MISSING
from .graph import lenet5_spec, network
from .methods import METHODS, Lifted, get_method, lifted_predict
from .methods.fenchel import lenet5_hyperparameters, shadowed
from .metrics import LINEAR_SHARE_DEFINITION, evaluate, linear_share
from .results import STDOUT, check_writable, load_model, save_model, versions, write_json
from .training import fit, resolve_device
from .transfer import export_program


def _field_type(cls: type, f: dataclasses.Field) -> type:
    """The command-line type of a hyperparameter: float, int, bool or str, from its annotation
    (``float | None`` -> float; string annotations resolved in the class's module)."""
    try:
        hint = typing.get_type_hints(cls).get(f.name, f.type)
    except Exception:  # an annotation that cannot be resolved: read its text
        hint = f.type
    if isinstance(hint, str):
        base = hint.replace("Optional[", "").split("|")[0].strip(" ]")
        return {"float": float, "int": int, "bool": bool}.get(base, str)
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    return args[0] if args[0] in (float, int, bool) else str


def _method_fields() -> dict[str, tuple[type | None, list[str]]]:
    """Every hyperparameter name across methods -> (type, methods that have it); the type is
    None where methods give the name different types (e.g. a plugin's float ``bias`` beside
    ADMM's bool): the flag then takes text, converted for the chosen method."""
    fields: dict[str, tuple[type | None, list[str]]] = {}
    for key, cls in METHODS.items():
        for f in dataclasses.fields(cls):
            typ = _field_type(cls, f)
            known, owners = fields.setdefault(f.name, (typ, []))
            if known is not typ:
                fields[f.name] = (None, owners)
            owners.append(f"{key} (default {f.default})")
    return fields


def _convert(value: Any, typ: type, flag: str, method: str) -> Any:
    """A flag's text converted to the type the chosen method's field has."""
    if not isinstance(value, str) or typ is str:
        return value
    try:
        return _bool(value) if typ is bool else typ(value)
    except (ValueError, argparse.ArgumentTypeError):
        raise ValueError(f"{flag}: method {method} expects {typ.__name__}, got {value!r}"
                         ) from None


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _dataset_key(name: str) -> tuple[str, bool]:
    """The data set as records and saved models name it (a data file by its absolute path,
    so that `evaluate` finds it from any folder), and whether it is a file."""
    if datamod.is_array_file(name):
        return os.path.abspath(os.path.expanduser(name)), True
    return name, False


def _dataset(text: str) -> str:
    """--dataset: a built-in data set's name or a .npz file of the user's arrays."""
    if datamod.is_array_file(text) or text in datamod.DATASETS:
        return text
    name = text.strip().lower().replace("_", "-")  # as load_dataset reads MNIST, fashion_mnist
    if name in datamod.DATASETS:
        return name
    raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from "
                                     f"{', '.join(datamod.DATASETS)}, or give a .npz file)")


def _val_size(text: str) -> int | float:
    """--val-size: an integer count or a share in (0, 1) (checked by load_dataset)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a count (e.g. 5000) or a share (e.g. 0.1), got {text!r}") from None
    if value >= 1.0 and "." in text:  # 1.0: a share of everything, or a mistyped count?
        raise argparse.ArgumentTypeError(
            f"a share must lie in (0, 1), got {text}; write a count without a decimal point")
    if value >= 1.0 and value.is_integer():  # 5e3: a count written as a float
        return int(value)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(
            f"expected a count (an integer >= 1) or a share in (0, 1), got {text}")
    return value


def build_parser(help_method: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; ``help_method`` (a registered method, from ``--method NAME
    --help``) limits the hyperparameter options to that method's, with its defaults."""
    cls = METHODS.get(help_method) if help_method is not None else None
    parser = argparse.ArgumentParser(
        prog="liftnet", description="Train neural networks without back-propagation."
    )
    sub = parser.add_subparsers(dest="command")
    t = sub.add_parser("train", help="train a network and write its results (the default)")
    t.add_argument("--method", default="lifted", choices=sorted(METHODS))
    t.add_argument("--arch", default="auto",
                   help="widths joined by '-', e.g. 784-300-10; 'auto' = <inputs>-300-<classes>;"
                        " 'lenet5'; convolutions: 1x28x28-conv6k5p2-pool2-conv16k5-pool2-120-84-10"
                        " (input CxHxW, conv<C>k<k>[p<pad>], pool<p>, dense widths)")
    t.add_argument("--activation", default="relu", help="activation of every hidden layer")
    t.add_argument("--loss", default=None, choices=("ce", "mse"),
                   help="ce (default where the method supports it) or mse (the default of "
                        "admm, pbcd and convex: class labels become one-hot targets)")
    t.add_argument("--dataset", default="digits", type=_dataset, metavar="NAME|FILE.npz",
                   help=f"{', '.join(datamod.DATASETS)}, or a .npz file of your own arrays "
                        "(X_train, y_train, X_test, y_test: see README)")
    t.add_argument("--data-dir", default=None,
                   help="folder holding <dataset>/ files (default: $LIFTNET_DATA, else a cache)")
    t.add_argument("--download", action="store_true", help="download missing data files")
    t.add_argument("--n-train", type=int, default=None, help="seeded subset of the training set")
    t.add_argument("--val-size", type=_val_size, default=None, metavar="N|SHARE",
                   help="hold out a seeded validation set from the training set: a count "
                        "(e.g. 5000) or a share (e.g. 0.1); its accuracy is reported every "
                        "epoch, with the best epoch, so settings can be chosen without the "
                        "test set")
    t.add_argument("--patience", type=int, default=None, metavar="N",
                   help="early stopping (needs --val-size): stop after N epochs without a "
                        "better validation accuracy; the model saved and scored is then the "
                        "best validation epoch's")
    t.add_argument("--min-delta", type=float, default=0.0, metavar="D",
                   help="with --patience: only a validation accuracy above the best by more "
                        "than D (a share, e.g. 0.001; for regression the validation loss "
                        "below it by more than D) counts as better (default 0)")
    t.add_argument("--standardize", action="store_true", help="standardise the features")
    t.add_argument("--epochs", type=int, default=None, help="default: the method's" + (
        f" ({help_method}: {cls.default_epochs})" if cls is not None else ""))
    t.add_argument("--batch-size", type=int, default=None,
                   help="0 = the full data set; default: the method's" + (
                       f" ({help_method}: {cls.default_batch_size})" if cls is not None else ""))
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--shift", type=int, default=None, metavar="N",
                   help="data augmentation (beyond the papers): every training image moved by "
                        "a random number of pixels, up to N in each direction, zero fill, a "
                        "new shift per image and batch; image data sets, with batches")
    t.add_argument("--shift-epochs", type=int, default=None, metavar="E",
                   help="with --shift: shift the images of the first E epochs only (default: "
                        "every epoch)")
    t.add_argument("--schedule", action="append", default=[], metavar="EPOCH:NAME=VALUE",
                   help="from epoch EPOCH on, the method's hyperparameter NAME is VALUE "
                        "(repeatable), e.g. 3:target_extrapolation=600,60,1,1")
    t.add_argument("--init-from", default=None, metavar="FILE",
                   help="start from the weights of a saved liftnet model (--save), e.g. lifted "
                        "weights as initialisation of back-propagation (paper 004 Table 1)")
    t.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ..., mps")
    t.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    t.add_argument("--lifted-rule", action="store_true",
                   help="also report test accuracy under the lifted prediction rule (12) of paper "
                        "004 (--method lifted)")
    t.add_argument("--out", default=None, help="write the JSON results here (- for the "
                   "standard output; the summary line then goes to stderr)")
    t.add_argument("--save", default=None, help="save the trained model (torch file) here")
    t.add_argument("--checkpoint", default=None, metavar="FILE",
                   help="save the training state here after every epoch (atomically)")
    t.add_argument("--resume", action="store_true",
                   help="continue from --checkpoint if it exists (same settings and data); "
                        "the result equals an uninterrupted run (a checkpoint is a pickle: "
                        "resume only your own)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    e = sub.add_parser("evaluate", help="score a saved model (train --save) on a data set")
    e.add_argument("--model", required=True, metavar="FILE", help="a model written by --save")
    e.add_argument("--dataset", default=None, type=_dataset, metavar="NAME|FILE.npz",
                   help="default: the data set the model was trained on")
    e.add_argument("--split", default="test", choices=("test", "train", "val"),
                   help="val: the validation set held out in the training run (--val-size)")
    e.add_argument("--data-dir", default=None,
                   help="folder holding <dataset>/ files (default: $LIFTNET_DATA, else a cache)")
    e.add_argument("--download", action="store_true", help="download missing data files")
    e.add_argument("--standardize", default=None, action=argparse.BooleanOptionalAction,
                   help="standardise the features (default: as in the model's training run)")
    e.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ..., mps")
    e.add_argument("--dtype", default=None, choices=("float32", "float64"),
                   help="default: the model's training dtype")
    e.add_argument("--out", default=None, help="write the JSON scores here (- for the "
                   "standard output)")
    x = sub.add_parser("export", help="write a saved model as a torch.export program (.pt2) "
                                      "that runs with torch alone")
    x.add_argument("--model", required=True, metavar="FILE", help="a model written by --save")
    x.add_argument("--out", required=True, help="the .pt2 file to write")
    for command in (t, e, x):
        command.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                             help="import this module or .py file first (repeatable): it may "
                                  "register activations and methods (liftnet.register_activation,"
                                  " liftnet.register_method; docs/extending.md)")
    group = t.add_argument_group("method hyperparameters (default: the method's)"
                                 if cls is None else f"hyperparameters of method {help_method}")
    for name, (typ, owners) in sorted(_method_fields().items()):
        flag = f"--{name.replace('_', '-')}"
        if cls is not None:  # --method NAME --help: NAME's options only, NAME's defaults
            owners = [o for o in owners if o.split(" ")[0] == help_method]
            if not owners:
                continue
        try:
            group.add_argument(flag, dest=f"hp_{name}", default=None, metavar=name.upper(),
                               type=_bool if typ is bool else (typ or str),
                               help="of " + ", ".join(owners))
        except argparse.ArgumentError:  # e.g. a registered method with a field named "seed"
            raise ValueError(
                f"the hyperparameter {name!r} of {', '.join(o.split(' ')[0] for o in owners)} "
                f"clashes with the option {flag} of liftnet train; rename the field") from None
    return parser


def _hyperparameters(args: argparse.Namespace) -> dict[str, Any]:
    cls = METHODS[args.method]
    own = {f.name: f for f in dataclasses.fields(cls)}
    hp: dict[str, Any] = {}
    for key, value in vars(args).items():
        if key.startswith("hp_") and value is not None:
            name = key[3:]
            flag = f"--{name.replace('_', '-')}"
            if name not in own:
                raise ValueError(f"{flag} is not a hyperparameter of method {args.method}")
            hp[name] = _convert(value, _field_type(cls, own[name]), flag, args.method)
    for scalar, per_layer in shadowed(hp):  # the list would win and the scalar be ignored
        raise ValueError(f"--{scalar.replace('_', '-')} and --{per_layer} both given: "
                         f"--{per_layer} sets every layer's value; give one of them")
    return hp


def _device(text: str) -> torch.device:
    """The --device as a torch.device, with a clear error for what torch cannot train on."""
    return resolve_device(text, "--device")


def _check_outputs(args: argparse.Namespace) -> None:
    """--out and --save: writable file paths, checked before any training."""
    given = {flag: getattr(args, flag[2:]) for flag in ("--out", "--save", "--checkpoint")}
    for flag, path in given.items():
        if path is not None:
            _check_output(path, flag, stdout_ok=flag == "--out")
    named = [(flag, path) for flag, path in given.items() if path not in (None, STDOUT)]
    for i, (flag, path) in enumerate(named):
        for other, other_path in named[i + 1:]:
            if _same_file(path, other_path):
                raise ValueError(f"{flag} and {other} name the same file ({path}); one would "
                                 "overwrite the other")
    _refuse_plugin_files(args, named)
    if args.init_from is not None:
        for flag, path in named:
            if _same_file(path, args.init_from):
                raise ValueError(f"{flag} names the --init-from model ({path}); writing it "
                                 "would destroy the starting weights")
    data, data_file = _dataset_key(args.dataset)
    if data_file:
        for flag, path in named:
            if _same_file(path, data):
                raise ValueError(f"{flag} names the --dataset file ({path}); writing it "
                                 "would destroy the data")
    if args.resume and args.checkpoint is None:
        raise ValueError("--resume needs --checkpoint FILE")
    if args.patience is not None:
        if args.patience < 1:
            raise ValueError(f"--patience must be >= 1, got {args.patience}")
        if args.val_size is None:
            raise ValueError("--patience (early stopping) needs a validation set: add "
                             "--val-size N|SHARE")
    if not 0.0 <= args.min_delta < math.inf:
        raise ValueError(f"--min-delta must be a finite number >= 0, got {args.min_delta}")
    if args.min_delta and args.patience is None:
        raise ValueError("--min-delta applies to early stopping: give --patience too")
    if args.lifted_rule and args.method != "lifted":
        raise ValueError("--lifted-rule applies to --method lifted only")
    for flag, value, least in (("--epochs", args.epochs, 1), ("--seed", args.seed, 0)):
        if value is not None and value < least:
            raise ValueError(f"{flag} must be >= {least}, got {value}")
        if value is not None and value >= 2**63:
            raise ValueError(f"{flag} must be below 2**63, got {value}")


def _validation_summary(history: list[dict[str, Any]], held_out: bool,
                        chosen: dict[str, Any]) -> dict[str, Any]:
    """``val_accuracy`` of the ``chosen`` epoch (the last, or the best one that early
    stopping restored) and ``best_val`` (the first epoch of the highest validation accuracy,
    with its test accuracy), for a run with a validation set; for a regression ``val_loss``
    and the epoch of the lowest validation loss, with its test loss."""
    if not held_out:
        return {}
    losses = [e for e in history if e.get("val_loss") is not None]
    if losses:  # a regression: the lowest validation loss
        best = min(losses, key=lambda e: e["val_loss"])  # first of the ties
        return {"val_loss": chosen.get("val_loss"),
                "best_val": {"epoch": best["epoch"], "val_loss": best["val_loss"],
                             "test_loss": best.get("test_loss")}}
    scored = [e for e in history if e.get("val_accuracy") is not None]
    best = max(scored, key=lambda e: e["val_accuracy"], default=None)  # first of the ties
    return {"val_accuracy": chosen.get("val_accuracy"),
            "best_val": None if best is None else {
                "epoch": best["epoch"], "val_accuracy": best["val_accuracy"],
                "test_accuracy": best.get("test_accuracy")}}


def _schedule(args: argparse.Namespace, method: Any) -> dict[int, dict[str, Any]] | None:
    """--schedule EPOCH:NAME=VALUE items as fit's ``schedule``, each VALUE converted to the
    type of the method's field, checked before the data are read (fit checks the scheduled
    methods against the network before training)."""
    schedule: dict[int, dict[str, Any]] = {}
    own = {f.name: f for f in dataclasses.fields(method)}
    for item in args.schedule:
        flag = f"--schedule {item!r}"
        try:
            epoch, name, value = parse_schedule_entry(item)
        except ValueError as exc:
            raise ValueError(f"{flag}: {exc}") from None
        if name in own:
            value = _convert(value, _field_type(type(method), own[name]), flag, method.key)
        try:
            add_schedule_entry(schedule, epoch, name, value)
        except ValueError as exc:
            raise ValueError(f"--schedule {exc}") from None
    if not schedule:
        return None
    scheduled_methods(method, schedule)
    return schedule


def _check_schedule(args: argparse.Namespace, method: Any, schedule: dict | None, epochs: int,
                    full: bool) -> None:
    """The command line's checks of the method's flags, for the scheduled values too."""
    for epoch, m in scheduled_methods(method, schedule).items():
        if getattr(m, "extrapolation", 0.0) > 0 and not full:
            raise ValueError(f"--schedule {epoch}:extrapolation applies to the full data set "
                             "(--batch-size 0), not to batches; with batches see "
                             "target_extrapolation")
        for name in method.batch_only if full else ():
            if name in schedule[epoch]:
                _warn(f"--schedule {epoch}:{name} acts between mini-batches only; "
                      f"{args.method} on the full data set ignores it")
        if epoch > epochs:
            _warn(f"--schedule {epoch}:... is beyond --epochs {epochs}: it " + (
                "never acts (under torchrun a run cannot be resumed)"
                if distributed.world_size_from_env() > 1 else
                "acts only if the run is resumed for more epochs"))


def _warn(text: str) -> None:
    """``liftnet: warning: text`` on stderr, once: under a launcher (torchrun) by the first
    process only, as the report and the files."""
    if (os.environ.get("RANK", "0").strip() or "0") == "0":
        print(f"liftnet: warning: {text}", file=sys.stderr)


def _augment(args: argparse.Namespace, ds: Any, full: bool) -> RandomShift | None:
    """--shift / --shift-epochs as fit's ``augment``."""
    if args.shift is None:
        if args.shift_epochs is not None:
            raise ValueError("--shift-epochs applies to --shift N: give --shift too")
        return None
    if ds.image_shape is None:
        raise ValueError(f"--shift moves images; {args.dataset} is not an image data set")
    if args.standardize:
        raise ValueError("--shift moves the images' pixels with zero fill, the background of "
                         "raw images; standardised features have another zero and scale per "
                         "pixel: give one of --shift and --standardize")
    if full:
        raise ValueError("--shift applies to batches: with the full data set (--batch-size 0, "
                         "or one at least the training set's size) the lifted variables "
                         "belong to fixed samples")
    if args.shift_epochs is not None and args.shift_epochs < 1:
        raise ValueError(f"--shift-epochs must be >= 1, got {args.shift_epochs}")
    try:
        return RandomShift(tuple(ds.image_shape), args.shift, args.shift_epochs)
    except ValueError as exc:
        raise ValueError(f"--shift {args.shift}: {exc}".replace("max_shift", "the shift")
                         ) from None


def run_train(args: argparse.Namespace) -> dict[str, Any]:
    """Train as the arguments say; returns the results record (also written to --out)."""
    _check_outputs(args)
    device = _device(args.device)
    world = distributed.world_size_from_env()
    if world > 1 and device.type == "cuda":  # under torchrun: this process's GPU, from the
        device = distributed.local_gpu(device)  # start (the data go there)
    dtype = getattr(torch, args.dtype)
    hp = _hyperparameters(args)
    if args.method == "fenchel" and args.arch == "lenet5":
        # LeNet-5's own defaults (Appendix C plus target extrapolation); flags still win,
        # --lam / --gamma / --gamma-out over the per-layer defaults they would be shadowed by
        hp = lenet5_hyperparameters(hp)
    method = get_method(args.method, **hp)
    schedule = _schedule(args, method)
    if args.loss is None:  # as the estimator: cross-entropy where the method has it
        args.loss = "ce" if "ce" in method.losses else "mse"
    dataset, data_file = _dataset_key(args.dataset)
    ds = datamod.load_dataset(
        dataset, data_dir=args.data_dir, n_train=args.n_train, seed=args.seed,
        standardize=args.standardize, download=args.download, dtype=dtype,
        val_size=args.val_size,
    ).to(device=device, dtype=dtype)
    data_hash = datamod.file_sha256(dataset) if data_file else None  # before any training
    if ds.n_classes == 0 and args.loss == "ce":
        Y = ds.y_train.reshape(len(ds.y_train), -1)
        one_hot = Y.shape[1] > 1 and bool(((Y == 0) | (Y == 1)).all() and (Y.sum(1) == 1).all())
        raise ValueError(f"{args.dataset} holds float targets, a regression: train it with "
                         "--loss mse, or save the labels as integers for classification" + (
                             " (its targets are one-hot rows: save y.argmax(1))" if one_hot
                             else ""))
    if args.lifted_rule and ds.n_classes == 0:
        raise ValueError(f"--lifted-rule scores a classification accuracy; {args.dataset} "
                         "holds float targets, a regression")
    n_out = ds.n_classes if ds.n_classes > 0 else ds.y_train.reshape(len(ds.y_train), -1).shape[1]
    if args.arch == "auto":
        spec = f"{ds.n_features}-300-{n_out}"
    elif args.arch == "lenet5":
        if ds.image_shape is None or len(ds.image_shape) != 3:
            raise ValueError(f"--arch lenet5 needs an image data set; {args.dataset} is not one")
        if min(ds.image_shape[1:]) < 28:  # lenet5_spec says it too, without the file's name
            raise ValueError(f"--arch lenet5 needs images of at least 28x28 pixels; {args.dataset}"
                             f" has {ds.image_shape[1]}x{ds.image_shape[2]}")
        spec = lenet5_spec(tuple(ds.image_shape), n_out)
    else:
        spec = args.arch
    net = network(spec, activation=args.activation, loss=args.loss)
    arch_shape = getattr(net.layers[0], "in_shape", None)
    if net.sizes[0] != ds.n_features or net.sizes[-1] != n_out:
        # an architecture that starts with an image shape: the data set's, in the same form
        start = "x".join(map(str, ds.image_shape)) if (
            arch_shape is not None and ds.image_shape is not None) else ds.n_features
        raise ValueError(
            f"--arch {args.arch}: {args.dataset} has {ds.n_features} inputs and {n_out} "
            f"outputs, so the architecture must start with {start} and end with {n_out}"
        )
    if arch_shape is not None and ds.image_shape is not None and (
            tuple(arch_shape) != tuple(ds.image_shape)):
        shape = "x".join(map(str, ds.image_shape))
        raise ValueError(f"--arch {args.arch}: {args.dataset} images are {shape}; start the "
                         f"architecture with {shape} (the same pixel count in another shape "
                         "would scramble the images)")
    init_params = None
    if args.init_from:
        saved, init_params, saved_meta = load_model(args.init_from)
        saved_config = _saved_run(saved_meta)[1]  # a model saved from Python: not known
        was = bool(saved_config.get("standardize", False))
        if "standardize" in saved_config and was != bool(args.standardize):
            _warn(f"--init-from {args.init_from} was trained on "
                  f"{'standardised' if was else 'unstandardised'} inputs, this run's are "
                  f"{'standardised' if args.standardize else 'not'}: its first layer starts "
                  "on inputs of another scale")
        if saved.spec != net.spec or [la.activation for la in saved.layers[:-1]] != [
                la.activation for la in net.layers[:-1]]:
            raise ValueError(
                f"--init-from {args.init_from}: the saved model is {saved.spec} with hidden "
                f"activations {[la.activation for la in saved.layers[:-1]]}, but this run trains "
                f"{net.spec} with {args.activation}"
            )
    epochs = method.default_epochs if args.epochs is None else args.epochs
    batch_size = method.default_batch_size if args.batch_size is None else args.batch_size
    full = batch_size == 0 or batch_size >= len(ds.X_train)  # as fit decides it
    _check_schedule(args, method, schedule, epochs, full)
    augment = _augment(args, ds, full)
    idle = [name for name in method.batch_only if full and name in hp]
    for name in idle:  # accepted (a record may be rerun with batches) but said
        _warn(f"--{name.replace('_', '-')} acts between mini-batches only; "
              f"{args.method} on the full data set ignores it")
    if getattr(method, "extrapolation", 0.0) > 0 and not full:  # acts on the full set only
        raise ValueError(f"--extrapolation applies to the full data set (--batch-size 0), not "
                         f"to batches of {batch_size}; with batches see "
                         "--target-extrapolation")
    torch.manual_seed(args.seed)
    resume = args.resume and os.path.isfile(args.checkpoint)
    if args.resume and not resume:
        print(f"liftnet: no checkpoint at {args.checkpoint} yet: training from the start",
              file=sys.stderr)
    if world > 1:  # under torchrun: this process trains on its shard of the training set
        if args.checkpoint is not None:
            raise ValueError("--checkpoint is not supported under torchrun (one process per "
                             "shard); train without it")
        if len(ds.X_train) < world:  # every process alike: each says it, none waits
            raise ValueError(f"{len(ds.X_train)} training samples for {world} processes: each "
                             "process trains on its shard and needs at least one sample (fewer "
                             "processes, or a larger --n-train)")
        device = distributed.init_from_env(device)
        ds = ds.to(device=device, dtype=dtype)
        rank = torch.distributed.get_rank()
        res = distributed.fit_distributed(
            method, net, ds.X_train[rank::world], ds.y_train[rank::world], epochs=epochs,
            batch_size=batch_size, seed=args.seed, X_test=ds.X_test, y_test=ds.y_test,
            params=init_params, progress=not args.quiet and rank == 0,
            X_val=ds.X_val, y_val=ds.y_val, patience=args.patience,
            min_delta=args.min_delta, augment=augment, schedule=schedule,
        )
    else:
        res = fit(
            method, net, ds.X_train, ds.y_train, epochs=epochs, batch_size=batch_size,
            seed=args.seed, X_test=ds.X_test, y_test=ds.y_test, progress=not args.quiet,
            params=init_params, checkpoint=args.checkpoint, resume=resume,
            X_val=ds.X_val, y_val=ds.y_val, patience=args.patience,
            min_delta=args.min_delta, augment=augment, schedule=schedule,
        )
    wall = res.wall_seconds  # with a resumed checkpoint: every epoch's training time
    # early stopping hands back the best validation epoch's weights; otherwise the last ones
    restore = args.patience is not None and res.best_params is not None
    params = res.best_params if restore else res.state.params
    last = (res.history[res.best_epoch - 1] if restore else
            res.history[-1] if res.history else {})
    record: dict[str, Any] = {
        "method": method.key,
        "arch": net.spec,
        "dataset": dataset,
        "config": {
            **method.hyperparameters(),
            "activation": args.activation, "loss": args.loss, "epochs": epochs,
            "batch_size": batch_size, "seed": args.seed, "n_train": len(ds.X_train),
            "n_val": 0 if ds.X_val is None else len(ds.X_val),
            "n_test": len(ds.X_test), "standardize": args.standardize,
            "device": str(device), "dtype": args.dtype, "init_from": args.init_from,
            "processes": world, "checkpoint": args.checkpoint, "resumed": resume,
            "shift": args.shift, "shift_epochs": args.shift_epochs,
            "schedule": None if schedule is None else {
                str(e): changes for e, changes in sorted(schedule.items())},
            **({"data_sha256": data_hash} if data_file else {}),
            "versions": versions(),
        },
        "train_accuracy": last.get("train_accuracy"),
        **_validation_summary(res.history, ds.X_val is not None, last),
        "test_accuracy": last.get("test_accuracy"),
        **({"test_loss": last["test_loss"]} if last.get("test_loss") is not None else {}),
        "wall_seconds": wall,
        "history": res.history,
        # one figure per hidden layer, on the test set (paper 001, Table 3)
        "linear_share": linear_share(net, params, ds.X_test),
        "linear_share_definition": LINEAR_SHARE_DEFINITION + " (test set)",
    }
    if args.patience is not None:
        record["early_stopping"] = {
            "patience": args.patience, "min_delta": args.min_delta,
            "stopped_early": res.stopped_early,
            "epochs_run": len(res.history), "restored_epoch": res.best_epoch}
    if args.lifted_rule and ds.n_classes > 0 and isinstance(method, Lifted):
        out, _ = lifted_predict(net, params, ds.X_test, penalty=method.penalty,
                                lams=method.lams(net))
        record["test_accuracy_lifted_rule"] = float(
            (out.argmax(1) == ds.y_test).double().mean()
        )
    if world > 1 and torch.distributed.get_rank() != 0:
        return record  # the first process writes the files
    if args.save:
        meta = {"method": method.key, "dataset": dataset, "config": record["config"]}
        if ds.input_mean is not None:  # what export puts in front of the network
            meta["input_mean"], meta["input_std"] = ds.input_mean.tolist(), ds.input_std.tolist()
        save_model(args.save, net, params, meta)
    if args.out:
        write_json(args.out, record)
    return record


def _refuse_plugin_files(args: argparse.Namespace, named: list[tuple[str, str]]) -> None:
    """ValueError when an output names a --plugin's .py file (its source would be lost)."""
    for spec in getattr(args, "plugin", None) or []:
        for flag, path in named:
            if _same_file(path, spec):
                raise ValueError(f"{flag} names the --plugin file ({spec}); writing it would "
                                 "destroy the plugin's source")


def _check_output(path: str, flag: str, stdout_ok: bool) -> None:
    """check_writable, and ``-`` (the standard output) for a JSON record only: a model, a
    checkpoint or a program is a binary file and needs a name."""
    if path == STDOUT:
        if not stdout_ok:
            raise ValueError(f"{flag} -: the standard output takes only the JSON results "
                             "(--out -); give a file name")
        return
    check_writable(path, flag)


def _same_file(a: str, b: str) -> bool:
    """Whether two paths name one file (symbolic links resolved; b may not exist yet)."""
    return os.path.realpath(a) == os.path.realpath(b)


def _saved_run(meta: Any) -> tuple[str | None, dict[str, Any]]:
    """The data set and the training run's config a saved model's meta records (a model saved
    from Python may hold any JSON there: what is not a training record is ignored)."""
    meta = meta if isinstance(meta, dict) else {}
    dataset = meta.get("dataset") if isinstance(meta.get("dataset"), str) else None
    config = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    return dataset, config


def _config_int(config: dict[str, Any], key: str, model: str) -> int | None:
    value = config.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{model}: the saved training config's {key} must be a non-negative "
                         f"integer, got {value!r}")
    return value


def run_evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Score a saved model with the feed-forward rule on a split of a data set, preprocessed
    as in its training run (same seed, training subset and standardisation statistics);
    returns the record (--out)."""
    if args.out is not None and args.out != STDOUT:
        check_writable(args.out, "--out")
        if _same_file(args.out, args.model):
            raise ValueError(f"--out names the model file ({args.model}); the scores would "
                             "overwrite it")
        _refuse_plugin_files(args, [("--out", args.out)])
    device = _device(args.device)
    net, params, meta = load_model(args.model)
    trained_on, config = _saved_run(meta)
    dataset = args.dataset or trained_on
    if dataset is None:
        raise ValueError(f"--dataset is needed: {args.model} does not say which data set it "
                         "was trained on")
    dataset, data_file = _dataset_key(dataset)
    if args.dataset is None and data_file and not os.path.exists(dataset):
        raise ValueError(f"{args.model} was trained on {dataset}, which is not there any more; "
                         "give its new place with --dataset PATH (a file of the same content "
                         "is scored as the training run's data)")
    if args.out not in (None, STDOUT) and data_file and _same_file(args.out, dataset):
        raise ValueError(f"--out names the data file ({dataset}); the scores would overwrite it")
    trained_file = trained_on is not None and datamod.is_array_file(trained_on)
    same_data = dataset == trained_on or (
        data_file and trained_file and _same_file(dataset, _dataset_key(trained_on)[0]))
    recorded = config.get("data_sha256")
    # the file's sha256 against the run's record, computed once (a large file is read whole)
    same_bytes = None if not (data_file and isinstance(recorded, str) and os.path.isfile(
        dataset)) else datamod.file_sha256(dataset) == recorded
    if not same_data and trained_file and same_bytes:
        # a copy or a moved file: the same bytes are the same data set (its subset, validation
        # set and standardisation are the run's)
        same_data = True
    changed = same_data and same_bytes is False
    if changed:
        print(f"liftnet: warning: {dataset} changed since {args.model} was trained on it; it "
              "is scored as another data set (without the run's training subset, validation "
              "set or standardisation)", file=sys.stderr)
        same_data = False
    if args.split == "val" and not same_data:
        raise ValueError(f"--split val: the validation set is part of the training run's data "
                         f"set ({trained_on}); there is none for --dataset {dataset}"
                         + (" (the file changed since training)" if changed else ""))
    was_standardized = bool(config.get("standardize", False))
    standardize = args.standardize
    if standardize is None:
        standardize = was_standardized and same_data
        if was_standardized and not same_data:
            print(f"liftnet: warning: {args.model} was trained on standardised {trained_on} "
                  f"inputs; {dataset} is scored as it is (--standardize standardises it with "
                  "its own training statistics)", file=sys.stderr)
    seed = _config_int(config, "seed", args.model) if same_data else None
    n_train = _config_int(config, "n_train", args.model) if same_data else None
    n_val = (_config_int(config, "n_val", args.model) or 0) if same_data else 0
    if args.split == "val" and n_val == 0:
        raise ValueError(f"--split val: {args.model} was not trained with a validation set on "
                         f"{dataset} (train --val-size)")
    if n_val and n_train is not None:  # the run's subset held the validation set too
        n_train += n_val
    dtype_name = args.dtype or config.get("dtype")
    if dtype_name not in ("float32", "float64"):  # a model saved from Python: its own dtype
        dtype_name = "float64" if params[0][0].dtype == torch.float64 else "float32"
    dtype = getattr(torch, dtype_name)
    ds = datamod.load_dataset(
        dataset, data_dir=args.data_dir, download=args.download, dtype=dtype,
        standardize=standardize, seed=seed or 0,
        # the training run's subset (its statistics standardised the features; its seed drew
        # the subset and, for ``synthetic``, the data set itself)
        n_train=n_train, val_size=n_val or None,
    ).to(device=device, dtype=dtype)
    X, y = {"test": (ds.X_test, ds.y_test), "train": (ds.X_train, ds.y_train),
            "val": (ds.X_val, ds.y_val)}[args.split]
    if X.shape[1] != net.sizes[0]:
        raise ValueError(f"{args.model} is {net.spec}, which takes {net.sizes[0]} inputs; "
                         f"{dataset} has {X.shape[1]} features")
    params = [(W.to(device=device, dtype=dtype), b.to(device=device, dtype=dtype))
              for W, b in params]
    key = meta.get("method") if isinstance(meta, dict) else None
    # the cross-entropy of the class probabilities as the method trains them (lifted: the
    # simplex projection, whose softmax would be nearly uniform); the softmax otherwise
    probabilities = None
    if isinstance(key, str) and key in METHODS:
        try:
            probabilities = METHODS[key]().probabilities
        except (TypeError, ValueError):  # a registered method without usable defaults
            probabilities = None
    record = {"model": os.path.abspath(args.model), "method": key, "arch": net.spec,
              "loss_function": net.loss, "dataset": dataset, "split": args.split,
              "standardize": standardize, "dtype": dtype_name, "versions": versions(),
              **evaluate(net, params, X, y, probabilities=probabilities)}
    if args.out:
        write_json(args.out, record)
    return record


def run_export(args: argparse.Namespace) -> dict[str, Any]:
    """Write a saved model as a ``torch.export`` program; returns a short record."""
    _check_output(args.out, "--out", stdout_ok=False)
    if _same_file(args.out, args.model):
        raise ValueError(f"--out names the model file ({args.model}); the export would "
                         "overwrite it")
    _refuse_plugin_files(args, [("--out", args.out)])
    net, params, meta = load_model(args.model)
    trained_on = _saved_run(meta)[0]
    if trained_on is not None and datamod.is_array_file(trained_on) and _same_file(
            args.out, _dataset_key(trained_on)[0]):
        raise ValueError(f"--out names the model's data file ({trained_on}); the export would "
                         "overwrite it")
    config = _saved_run(meta)[1]  # a model saved from Python may hold any JSON as its meta
    stats = (meta.get("input_mean"), meta.get("input_std")) if isinstance(meta, dict) else (
        None, None)
    if stats[0] is None and config.get("standardize"):
        print(f"liftnet: warning: {args.model} was trained on standardised inputs and holds no "
              "statistics (saved by an older liftnet): the program expects inputs standardised "
              "as in its training run", file=sys.stderr)
    mean = std = None
    if stats[0] is not None:
        try:
            mean, std = (torch.tensor(v, dtype=torch.float64) for v in stats)
        except (TypeError, ValueError, RuntimeError):
            mean = None
        if mean is None or mean.shape != (net.sizes[0],) or std.shape != (net.sizes[0],):
            raise ValueError(f"{args.model}: damaged model file (its input statistics)")
    export_program(net, params, args.out, input_mean=mean, input_std=std)
    return {"model": str(args.model), "out": str(args.out), "arch": net.spec,
            "inputs": net.sizes[0], "dtype": str(params[0][0].dtype),
            "standardizes_inputs": mean is not None}


def _report_train(record: dict[str, Any]) -> str | None:
    if record["config"]["processes"] > 1 and os.environ.get("RANK", "0") != "0":
        return None  # the first process reports
    acc = record["train_accuracy"], record["test_accuracy"]
    line = f"{record['method']} {record['arch']} on {record['dataset']}: "
    if acc[0] is not None:
        line += f"train accuracy {acc[0]:.4f}, "
        best = record.get("best_val")
        if record.get("val_accuracy") is not None and best is not None:
            line += (f"validation accuracy {record['val_accuracy']:.4f} (best "
                     f"{best['val_accuracy']:.4f} after epoch {best['epoch']}), ")
        line += f"test accuracy {acc[1]:.4f}"
    else:  # a regression: mean squared errors (summed over the outputs)
        best = record.get("best_val")
        parts = []
        if record.get("val_loss") is not None and best is not None:
            parts.append(f"validation loss {record['val_loss']:.4g} (best "
                         f"{best['val_loss']:.4g} after epoch {best['epoch']})")
        if record.get("test_loss") is not None:
            parts.append(f"test loss {record['test_loss']:.4g}")
        line += ", ".join(parts) or "no held-out scores"
    if "test_accuracy_lifted_rule" in record:
        line += f", test accuracy (lifted rule) {record['test_accuracy_lifted_rule']:.4f}"
    stop = record.get("early_stopping")
    if stop is not None and stop["restored_epoch"] is not None:
        line += (f"; {'stopped early after' if stop['stopped_early'] else 'ran'} "
                 f"{stop['epochs_run']} epochs, the model is epoch {stop['restored_epoch']}'s")
    return line + f" ({record['wall_seconds']:.1f} s)"


def _report_evaluate(record: dict[str, Any]) -> str:
    line = f"{record['model']} ({record['arch']}) on {record['dataset']} {record['split']}: "
    if "accuracy" in record:
        line += f"accuracy {record['accuracy']:.4f}, "
    return line + f"loss {record['loss']:.4g} ({record['n']} samples)"


def _report_export(record: dict[str, Any]) -> str:
    return (f"wrote {record['out']}: {record['arch']} as a torch.export program"
            + (" (standardising its inputs as in training)" if record.get("standardizes_inputs")
               else "") + "; run it with "
            f"torch.export.load(path).module()(x), x of shape (N, {record['inputs']}) and "
            f"dtype {record['dtype']}")


def _commands() -> dict[str, tuple[Any, Any]]:
    """Each subcommand's (run, report) pair, looked up when called."""
    return {"train": (run_train, _report_train), "evaluate": (run_evaluate, _report_evaluate),
            "export": (run_export, _report_export)}


def _out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocator's failure (CPU or GPU), not a defect to report."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc)
    return "can't allocate memory" in text or "out of memory" in text.lower()


def load_plugins(argv: list[str]) -> list[str]:
    """Import every ``--plugin MODULE`` (a module name, or a path to a .py file) of ``argv``
    before the parser is built, so that the activations and methods they register are offered
    by it; returns the plugins' names.  A plugin that cannot be imported is a ValueError."""
    specs = []
    for i, arg in enumerate(argv):
        if arg == "--":  # what follows is not an option
            break
        flag, eq, value = arg.partition("=")
        # argparse's abbreviations too, where they name --plugin only ("--p" is ambiguous:
        # argparse then says so, and nothing is imported)
        if flag == "--plugin" or (len(flag) > 2 and "--plugin".startswith(flag)
                                  and _options_starting(argv[0], flag) == ["--plugin"]):
            if eq:
                specs.append(value)
            elif i + 1 < len(argv):
                specs.append(argv[i + 1])
    for spec in specs:
        try:
            if spec.endswith(".py") or os.sep in spec:
                path = os.path.abspath(spec)
                if not os.path.isfile(path):
                    raise FileNotFoundError(f"no such file {spec!r}")
                name = "liftnet_plugin_" + os.path.splitext(os.path.basename(path))[0]
                loaded = sys.modules.get(name)
                if loaded is not None and getattr(loaded, "__file__", None) == path:
                    continue  # imported already (given twice, or a second main() call)
                module_spec = importlib.util.spec_from_file_location(name, path)
                module = importlib.util.module_from_spec(module_spec)
                sys.modules[name] = module  # dataclasses look their module up here
                try:
                    module_spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[name]
                    raise
            else:
                _import_from_here(spec)
        except Exception as exc:  # the user's code: any error, reported with its type
            raise ValueError(f"--plugin {spec}: {type(exc).__name__}: {exc}") from None
    return specs


def _options_starting(command: str, prefix: str) -> list[str]:
    """The options of ``command`` (before any plugin adds its own) that begin with
    ``prefix``."""
    sub = next((a.choices for a in build_parser()._actions
                if isinstance(a, argparse._SubParsersAction)), {}).get(command)
    return sorted(o for o in (sub._option_string_actions if sub else ()) if o.startswith(prefix))


def _import_from_here(spec: str) -> None:
    """Import the module ``spec``; one the path lacks is also looked for in the current folder,
    as ``python -m liftnet`` does (the ``liftnet`` program's path does not hold it)."""
    try:
        importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        here = os.getcwd()
        if exc.name != spec.split(".")[0] or any(
                os.path.abspath(p or os.curdir) == here for p in sys.path):
            raise
        sys.path.insert(0, here)
        try:
            importlib.import_module(spec)
        except BaseException:
            sys.path.remove(here)
            raise


def _help_method(argv: list[str]) -> str | None:
    """NAME of ``train ... --method NAME ... --help`` (the help then lists NAME's options)."""
    if not argv or argv[0] != "train" or not {"-h", "--help"} & set(argv):
        return None
    name = None
    for i, arg in enumerate(argv):
        if arg == "--method" and i + 1 < len(argv):
            name = argv[i + 1]
        elif arg.startswith("--method="):
            name = arg.split("=", 1)[1]
    return name if name in METHODS else None


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A Python warning as the program's own warnings print: one line on stderr, without the
    source line that raised it."""
    print(f"liftnet: warning: {message}", file=sys.stderr if file is None else file)


def main(argv: list[str] | None = None) -> int:
    """The ``liftnet`` program.  Run as a program (``argv`` None: the command line's own
    arguments) it first has glibc keep large freed blocks for reuse (liftnet.allocator); a call
    from Python with an explicit ``argv`` leaves the process's allocator alone."""
    if argv is None:
        reuse_freed_memory()  # liftnet.allocator: large freed blocks reused, not page-faulted in
        warnings.showwarning = _show_warning  # one "liftnet: warning:" line, as its own
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["train", *argv]
    try:
        load_plugins(argv)
        parser = build_parser(_help_method(argv))
    except ValueError as exc:
        print(f"liftnet: error: {exc}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    run, report = _commands()[args.command]
    try:
        record = run(args)
    except KeyboardInterrupt:  # Ctrl-C: one line, no traceback; the shell's 128 + SIGINT
        checkpoint = getattr(args, "checkpoint", None)
        resumable = checkpoint is not None and os.path.isfile(checkpoint)
        print("liftnet: interrupted" + (
            f"; rerun with --resume to continue from the last checkpoint ({checkpoint})"
            if resumable else ""), file=sys.stderr)
        return 130
    except (ValueError, OSError, FloatingPointError, datamod.DataError) as exc:
        print(f"liftnet: error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:  # an optional dependency (cvxpy for --method convex)
        if exc.msg != CVXPY_MISSING:
            raise
        print(f"liftnet: error: {exc}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as exc:
        if not _out_of_memory(exc):
            raise
        detail = str(exc).split("\n")[0]
        print(f"liftnet: error: out of memory ({detail}); use a smaller --batch-size or a "
              "narrower network, or a machine with more memory", file=sys.stderr)
        return 2
    finally:  # the process group a torchrun launch joined
        if "WORLD_SIZE" in os.environ and torch.distributed.is_available() \
                and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    line = report(record)
    if line is not None:  # on stderr when stdout holds the JSON record (--out -)
        print(line, file=sys.stderr if getattr(args, "out", None) == STDOUT else sys.stdout)
    return 0
