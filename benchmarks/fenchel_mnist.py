"""Paper 003 (Fenchel lifted networks), Figures 1-4: every model of a figure in one run, on the
same data and (for batched models) the same batches, test accuracy against batches seen.

    python benchmarks/fenchel_mnist.py --figure 2 --data-dir ../shared/data

* Figure 1: 784-300-10, squared loss, full data set: Taylor et al. ADMM, Lau et al. proximal
  BCD, Askari et al. lifted network, back-propagation (SGD), Fenchel (Algorithm 1).
* Figure 2: 784-300-10, cross-entropy, batches of 500, 10 epochs: SGD (lr 1e-2), Adam (lr 1e-3)
  and Fenchel (Algorithm 2) on the same batches.
* Figure 3: LeNet-5 on MNIST, cross-entropy, 20 epochs, the same three.
* Figure 4: LeNet-5 on CIFAR-10, 80 epochs (runs where the CIFAR-10 files exist).

Writes ``fenchel_fig<N>.json`` (curves, final accuracies, seconds, hyperparameters, the paper's
figures) and ``fenchel_fig<N>.png`` (accuracy against batches, like the paper's figures) into
``--out-dir``, and prints each model's final test accuracy beside the paper's.

``--combine A.json B.json ...`` trains nothing: it joins the models of result files of this
script for the same figure, data, seed and data-set sizes (e.g. ``--models`` subsets run on two
cores at once; the batch order and each model's initialisation depend on the seed only, so the
curves are those one run would give) into one ``fenchel_fig<N>.json`` and ``.png``, and records
the source files.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from _common import PUBLISHED, refuse_subset_over_published, save_png, usage_errors
from liftnet import get_method
from liftnet.allocator import reuse_freed_memory
from liftnet.augment import (
    AUGMENT_SEED,
    RandomShift,
    add_schedule_entry,
    augment_of_epoch,
    augmented,
    check_augment,
    method_of_epoch,
    parse_schedule_entry,
    scheduled_methods,
)
from liftnet.data import load_dataset
from liftnet.graph import lenet5_spec, network
from liftnet.methods.fenchel import LENET5_APPENDIX_C, LENET5_DEFAULTS, lenet5_hyperparameters
from liftnet.metrics import accuracy, targets_for
from liftnet.results import write_json
from liftnet.training import resolve_device

FIG1_FENCHEL = {"lam": 1.0, "loss_weight": 1.0, "rho": 1e-2, "rho_out": 10.0, "gamma": 0.0,
                "gamma_out": 0.0, "max_inner": 10}
# LeNet-5: Appendix C (lambda 5, 5, 1, 1, proximal weights 1e-4, 1e-2, 1, 1, 1, loss weight 1);
# "+ target extrapolation" is liftnet's default for it (beyond the paper)
EXTRAPOLATED = "Fenchel + target extrapolation"

# model -> (method key, hyperparameters, batch size (0 = full data set), epochs)
FIGURES: dict[int, dict[str, Any]] = {
    1: {
        "dataset": "mnist", "arch": "784-300-10", "loss": "mse",
        "models": {
            "Taylor et al. (admm)": ("admm", {}, 0, 400),
            "Lau et al. (pbcd)": ("pbcd", {}, 0, 100),
            "Askari et al. (lifted)": ("lifted", {}, 0, 40),
            "neural network (sgd)": ("backprop", {"optimizer": "sgd", "lr": 0.1}, 100, 20),
            # Appendix C, non-batched 784-300-10: weight decays 1e-2 and 10, no proximal term;
            # lambda 1 (Appendix C's 0.1, i.e. 0.05 in our 2B scaling, was slower on a held-out
            # split of the training set); 10 solver iterations per block and sweep
            "Fenchel": ("fenchel", FIG1_FENCHEL, 0, 100),
        },
        "paper": {"Taylor et al. (admm)": 0.834, "Lau et al. (pbcd)": 0.914,
                  "Askari et al. (lifted)": 0.863, "neural network (sgd)": 0.957,
                  "Fenchel": 0.961},
    },
    2: {
        "dataset": "mnist", "arch": "784-300-10", "loss": "ce",
        "models": {
            "SGD": ("backprop", {"optimizer": "sgd", "lr": 1e-2}, 500, 10),
            "Adam": ("backprop", {"optimizer": "adam", "lr": 1e-3}, 500, 10),
            "Fenchel": ("fenchel", {}, 500, 10),
        },
        "paper": {"SGD": 0.943, "Adam": 0.976, "Fenchel": 0.976},
    },
    3: {
        "dataset": "mnist", "arch": "lenet5", "loss": "ce",
        "models": {
            "SGD": ("backprop", {"optimizer": "sgd", "lr": 1e-2}, 500, 20),
            "Adam": ("backprop", {"optimizer": "adam", "lr": 1e-3}, 500, 20),
            "Fenchel": ("fenchel", LENET5_APPENDIX_C, 500, 20),
            EXTRAPOLATED: ("fenchel", LENET5_DEFAULTS, 500, 20),
        },
        "paper": {"SGD": 0.986, "Adam": 0.989, "Fenchel": 0.990},
    },
    4: {
        "dataset": "cifar10", "arch": "lenet5", "loss": "ce",
        "models": {
            "SGD": ("backprop", {"optimizer": "sgd", "lr": 1e-2}, 500, 80),
            "Adam": ("backprop", {"optimizer": "adam", "lr": 1e-3}, 500, 80),
            "Fenchel": ("fenchel", LENET5_APPENDIX_C, 500, 80),
            EXTRAPOLATED: ("fenchel", LENET5_DEFAULTS, 500, 80),
        },
        "paper": {"SGD": 0.565, "Adam": 0.625, "Fenchel": 0.606},
    },
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_model(method, net, ds, *, batch_size: int, epochs: int, seed: int, eval_every: int,
              log, stop_at: float | None = None, augment: RandomShift | None = None,
              schedule: dict[int, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Train from the method's initialisation with seed ``seed``; the batch order depends on
    the seed only, so every batched model of a figure sees the same batches.  ``curve`` holds
    (batches seen, test accuracy, training seconds so far); evaluations are not timed.  With
    ``stop_at``, training stops at the first evaluation reaching that test accuracy.
    ``augment`` and ``schedule`` as in :func:`liftnet.fit` (the shifts drawn by a generator
    of their own, seeded as there, so the batches and shifts are the same for every model)."""
    X, y, Xt, yt = ds.X_train, ds.y_train, ds.X_test, ds.y_test
    Y = targets_for(net, y, X.dtype)
    n = len(X)
    full = batch_size == 0 or batch_size >= n
    bs = n if full else batch_size
    n_batches = 1 if full else math.ceil(n / bs)
    init_gen, order_gen = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
    aug_gen = torch.Generator().manual_seed(seed ^ AUGMENT_SEED)
    scheduled = scheduled_methods(method, schedule)
    check_augment(augment, X, full)
    torch.manual_seed(seed)
    state = method.init_state(net, X, Y, generator=init_gen)
    curve: list[tuple[int, float, float]] = [(0, accuracy(net, state.params, Xt, yt), 0.0)]
    seconds, seen, epoch_seconds, done = 0.0, 0, [], False
    for epoch in range(1, epochs + 1):
        t_epoch = seconds
        m = method_of_epoch(method, scheduled, epoch)
        shift = augment_of_epoch(augment, epoch)
        order = None if full else torch.randperm(n, generator=order_gen)
        for i in range(n_batches):
            if full:
                Xb, Yb, new = X, Y, state.step == 0
            else:
                idx = order[i * bs : (i + 1) * bs]
                Xb, Yb, new = X[idx], Y[idx], True
            _sync(X.device)  # CUDA runs asynchronously: time the work, not its launch
            t0 = time.perf_counter()
            if shift is not None:  # timed: part of a training step
                Xb = augmented(shift, Xb, aug_gen)
            state = m.step(net, state, Xb, Yb, new_batch=new)
            _sync(X.device)
            seconds += time.perf_counter() - t0
            seen += 1
            if seen % eval_every == 0 or (epoch == epochs and i == n_batches - 1):
                curve.append((seen, accuracy(net, state.params, Xt, yt), seconds))
                if stop_at is not None and curve[-1][1] >= stop_at:
                    done = True
                    break
        if not done or i == n_batches - 1:
            epoch_seconds.append(seconds - t_epoch)
        log(f"    epoch {epoch:3d}: test {curve[-1][1]:.4f}  ({seconds:.1f} s training so far)")
        if done:
            break
    return {
        "curve": curve,
        "final_test_accuracy": curve[-1][1],
        "best_test_accuracy": max(c[1] for c in curve),
        "train_accuracy": accuracy(net, state.params, X, y),
        "train_seconds": seconds,
        "epoch_seconds": epoch_seconds,
        "batches": seen,
        "batch_size": batch_size,
        "epochs": epochs,
        "state": state,  # popped by the callers before saving
    }


def plot(path: Path, fig: int, results: dict[str, Any], title: str, n_train: int) -> None:
    """Test accuracy against batches; in Figure 1 against passes over the data set (a sweep
    of a full-data-set method, an epoch of a batched one), so that they share one axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f, ax = plt.subplots(figsize=(6, 4))
    for name, r in results.items():
        xs, ys, _ = zip(*r["curve"], strict=True)
        bs = r.get("batch_size") or 0
        per_pass = math.ceil(n_train / bs) if fig == 1 and 0 < bs < n_train else 1
        ax.plot([x / per_pass for x in xs], ys, label=f"{name} ({r['final_test_accuracy']:.3f})")
    ax.set_xlabel("passes over the data set (full-data sweeps, epochs)" if fig == 1
                  else "batches")
    ax.set_ylabel("test accuracy")
    lo = min(min(c[1] for c in r["curve"][1:] or r["curve"]) for r in results.values())
    ax.set_ylim(max(0.0, min(lo, 0.8)), 1.0)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    f.tight_layout()
    save_png(f, path, dpi=120)
    plt.close(f)


# what result files must share to be drawn in one figure
COMBINE_KEYS = ("figure", "arch", "dataset", "loss", "n_train", "n_test", "seed", "shift",
                "shift_epochs")


def combine(paths: list[str], figure: int) -> dict[str, Any]:
    """One figure's record from result files of this script (module docstring); a clear
    error when they disagree on :data:`COMBINE_KEYS` or hold the same model twice."""
    record: dict[str, Any] | None = None
    models: dict[str, Any] = {}
    for path in paths:
        try:
            rec = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise SystemExit(f"--combine: cannot read {path}: {exc}") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("models"), dict):
            raise SystemExit(f"--combine: {path} is not a result file of this script")
        if rec.get("figure") != figure:
            raise SystemExit(f"--combine: {path} is figure {rec.get('figure')}, not {figure}")
        if record is None:
            record = {k: rec.get(k) for k in (*COMBINE_KEYS, "device")}
        for key in COMBINE_KEYS:
            if rec.get(key) != record[key]:
                raise SystemExit(f"--combine: {path} has {key} {rec.get(key)!r}, the first "
                                 f"file {record[key]!r}")
        for name, r in rec["models"].items():
            if name in models:
                raise SystemExit(f"--combine: model {name!r} is in more than one file")
            models[name] = {**r, "source": str(path), "device": rec.get("device")}
        if rec.get("device") != record["device"]:  # times of other machines: say so
            record["device"] = "mixed (see each model's device)"
    assert record is not None
    return {**record, "models": models, "combined_from": [str(p) for p in paths]}


def report(record: dict[str, Any], title: str, out_dir: str, *, final: bool = True) -> None:
    """Write the JSON and the PNG; when ``final``, print the final accuracies beside the
    paper's first (otherwise: a partial record, written after each model of a run)."""
    results = record["models"]
    if final:
        print(f"\nFigure {record['figure']} ({record['arch']}, {record['loss']}, "
              f"{record['n_train']} training images): final test accuracy, ours vs paper")
        for name, r in results.items():
            print(f"  {name:30s} {r['final_test_accuracy']:.4f}  (best "
                  f"{r['best_test_accuracy']:.4f}, {r['train_seconds']:.0f} s)   paper "
                  f"{r['paper'] or '- (beyond the paper)'}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"fenchel_fig{record['figure']}.json"
    write_json(path, record)
    plot(path.with_suffix(".png"), record["figure"], results, title, record["n_train"])
    print(f"wrote {path} and .png" + ("" if final else " (models so far)"), flush=True)


def parse_value(value: str) -> Any:
    """A ``--set`` value: true / false, an int, a float, else the string (e.g. a list
    "300,30,1,1")."""
    if value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    try:
        return float(value) if "." in value or "e" in value else int(value)
    except ValueError:
        return value


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # run as a script: liftnet.allocator, large blocks reused
        reuse_freed_memory()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--figure", type=int, choices=sorted(FIGURES), required=True)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--download", action="store_true",
                   help="download missing data files (sha256-checked)")
    p.add_argument("--models", default=None, help="comma-separated subset of the figure's models")
    p.add_argument("--epochs", type=int, default=None, help="override every model's epochs")
    p.add_argument("--epochs-of", action="append", default=[], metavar="MODEL=N",
                   help="override one model's epochs, e.g. 'Fenchel=40' (repeatable)")
    p.add_argument("--n-train", type=int, default=None, help="seeded training subset (tests)")
    p.add_argument("--n-test", type=int, default=None, help="first n test images (tests)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-every", type=int, default=10, help="batches between evaluations")
    p.add_argument("--out-dir", default="benchmarks/results", help=PUBLISHED)
    p.add_argument("--device", default="cpu", help="cpu, cuda, ...")
    p.add_argument("--set", action="append", default=[], metavar="MODEL:NAME=VALUE",
                   help="override a hyperparameter, e.g. 'Fenchel:lam=2' (repeatable)")
    p.add_argument("--shift", type=int, default=None, metavar="N",
                   help="random shifts of the training images by up to N pixels (zero fill) "
                        "for every batched model of the run (beyond the paper)")
    p.add_argument("--shift-epochs", type=int, default=None, metavar="E",
                   help="with --shift: the first E epochs only (default: every epoch)")
    p.add_argument("--schedule", action="append", default=[],
                   metavar="MODEL:EPOCH:NAME=VALUE",
                   help="from epoch EPOCH on, the model's hyperparameter NAME is VALUE, e.g. "
                        "'Fenchel + target extrapolation:3:target_extrapolation=600,60,1,1' "
                        "(repeatable)")
    p.add_argument("--combine", nargs="+", default=None, metavar="FILE",
                   help="join result files of this figure into one (trains nothing)")
    args = p.parse_args(argv)
    refuse_subset_over_published(p, args, "out_dir")
    return _run(args, p)


def plan(args: argparse.Namespace) -> list[tuple[str, str, Any, int, int, dict | None]]:
    """(name, method key, method, batch size, epochs, schedule) of every chosen model, with
    every ``--models``, ``--set``, ``--epochs-of`` and ``--schedule`` checked before any data
    are read."""
    spec = FIGURES[args.figure]
    known = ", ".join(spec["models"])
    chosen = list(spec["models"]) if args.models is None else args.models.split(",")
    for name in chosen:
        if name not in spec["models"]:
            raise ValueError(f"--models: unknown model {name!r}; figure {args.figure} has {known}")
    overrides: dict[str, dict[str, Any]] = {}
    for item in args.set:
        model, colon, assign = item.partition(":")
        name, eq, value = assign.partition("=")
        if not colon or not eq or not name:
            raise ValueError(f"--set {item!r}: write MODEL:NAME=VALUE, e.g. 'Fenchel:lam=2'")
        if model not in spec["models"]:
            raise ValueError(f"--set {item!r}: unknown model {model!r}; figure {args.figure} "
                             f"has {known}")
        overrides.setdefault(model, {})[name] = parse_value(value)
    epochs_of: dict[str, int] = {}
    for item in args.epochs_of:
        model, eq, count = item.rpartition("=")
        if model not in spec["models"]:
            raise ValueError(f"--epochs-of {item!r}: write MODEL=N with a model of figure "
                             f"{args.figure} ({known})")
        try:
            epochs_of[model] = int(count)
        except ValueError:
            raise ValueError(f"--epochs-of {item!r}: N must be a whole number") from None
    schedules: dict[str, dict[int, dict[str, Any]]] = {}
    for item in args.schedule:
        model, colon, rest = item.partition(":")
        try:
            if not colon:
                raise ValueError("no model")
            epoch, name, value = parse_schedule_entry(rest)
        except ValueError:
            raise ValueError(f"--schedule {item!r}: write MODEL:EPOCH:NAME=VALUE, e.g. "
                             "'Fenchel:3:lam=2'") from None
        if model not in spec["models"]:
            raise ValueError(f"--schedule {item!r}: unknown model {model!r}; figure "
                             f"{args.figure} has {known}")
        try:
            add_schedule_entry(schedules.setdefault(model, {}), epoch, name, parse_value(value))
        except ValueError as exc:
            raise ValueError(f"--schedule of {model} {exc}") from None
    if args.shift_epochs is not None and args.shift is None:
        raise ValueError("--shift-epochs applies to --shift N: give --shift too")
    if args.shift is not None and args.shift < 1:
        raise ValueError(f"--shift must be >= 1, got {args.shift}")
    if args.shift_epochs is not None and args.shift_epochs < 1:
        raise ValueError(f"--shift-epochs must be >= 1, got {args.shift_epochs}")
    out = []
    for name in chosen:
        key, hp, batch_size, epochs = spec["models"][name]
        given = overrides.get(name, {})
        # scalars given (lam, gamma, gamma_out) win over per-layer defaults, as on the CLI
        method = get_method(key, **(lenet5_hyperparameters(given, base=hp)
                                    if key == "fenchel" and ("lams" in hp or "gammas" in hp)
                                    else {**hp, **given}))
        epochs = epochs_of.get(name, args.epochs if args.epochs is not None else epochs)
        if epochs < 1:
            raise ValueError(f"{name}: epochs must be >= 1, got {epochs}")
        schedule = schedules.get(name)
        scheduled_methods(method, schedule)  # every entry checked before any training
        out.append((name, key, method, batch_size, epochs, schedule))
    for model in schedules:
        if model not in chosen:
            raise ValueError(f"--schedule: model {model!r} is not among --models")
    return out


def _run(args: argparse.Namespace, p: argparse.ArgumentParser) -> int:
    spec = FIGURES[args.figure]
    if args.combine:
        with usage_errors(p):
            record = combine(args.combine, args.figure)
        title = f"Figure {args.figure}: {record['arch']}, {record['loss']}, {record['dataset']}"
        report(record, title, args.out_dir)
        return 0
    with usage_errors(p):  # every check, the data and the network before any training
        if args.eval_every < 1:
            raise ValueError(f"--eval-every must be >= 1, got {args.eval_every}")
        models = plan(args)
        device = resolve_device(args.device)
        ds = load_dataset(spec["dataset"], data_dir=args.data_dir,
                          download=args.download, n_train=args.n_train,
                          seed=args.seed)
        arch = spec["arch"]
        if arch == "lenet5":
            arch = lenet5_spec(tuple(ds.image_shape), ds.n_classes)
        net = network(arch, loss=spec["loss"])
        for _, _, method, _, _, schedule in models:
            method.check_network(net)
            scheduled_methods(method, schedule, net)
        augment = None
        if args.shift is not None:
            if ds.image_shape is None:
                raise ValueError(f"--shift moves images; {spec['dataset']} has none")
            augment = RandomShift(tuple(ds.image_shape), args.shift, args.shift_epochs)
            full = [name for name, _, _, bs, _, _ in models if bs == 0 or bs >= len(ds.X_train)]
            if full:
                raise ValueError(f"--shift applies to batched models; {', '.join(full)} "
                                 "train on the full data set")
    if args.n_test is not None:
        ds.X_test, ds.y_test = ds.X_test[: args.n_test], ds.y_test[: args.n_test]
    ds = ds.to(device=device)
    results: dict[str, Any] = {}
    record = {"figure": args.figure, "arch": net.spec, "dataset": spec["dataset"],
              "loss": spec["loss"], "n_train": len(ds.X_train), "n_test": len(ds.X_test),
              "seed": args.seed, "device": args.device, "shift": args.shift,
              "shift_epochs": args.shift_epochs}
    title = f"Figure {args.figure}: {net.spec}, {spec['loss']}, {spec['dataset']}"
    print(title, flush=True)
    for name, key, method, batch_size, epochs, schedule in models:
        print(f"  {name}: {key} {method.hyperparameters()}, batch {batch_size or 'full'}, "
              f"{epochs} epochs" + (f", schedule {schedule}" if schedule else "") + (
                  f", shifts up to {args.shift} pixels" if augment is not None else ""),
              flush=True)
        r = run_model(method, net, ds, batch_size=batch_size, epochs=epochs, seed=args.seed,
                      eval_every=args.eval_every, log=lambda s: print(s, flush=True),
                      augment=augment, schedule=schedule)
        r.pop("state")
        r.update(method=key, hyperparameters=method.hyperparameters(),
                 paper=spec["paper"].get(name),
                 schedule={str(e): c for e, c in (schedule or {}).items()})
        results[name] = r
        # after every model, so that a long run stopped later keeps what it finished
        report({**record, "models": results}, title, args.out_dir, final=name == models[-1][0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
