"""Lifted weights as initialisation of standard networks, on MNIST: Table 1 of paper 004
(default) or of its earlier version, paper 000 (``--paper 000``).

For each architecture (hidden widths) and seed, the lifted network is trained by liftnet alone
(column "Our Model", init ``model``); then standard networks of the same architecture are trained
by mini-batch gradient descent (batch 100, 17 epochs, constant learning rate) from Normal
(sigma^2 = 0.1), Xavier, variance-scaling and lifted initial weights, biases 0.1 except for the
lifted case, on the same batches.  The paper's learning rates (1e-5, 1e-6) were used with
TensorFlow 1's cross-entropy summed over the batch, so ``--reduction sum`` is the default.

Paper 000 (Negiar, Askari, Pedregosa, El Ghaoui, OPTML 2017) reports error rates of its lifted
model ("Our Model"), of standard networks from random initial weights ("NN [random]"; the
distribution is not stated: liftnet runs Normal and Xavier) and from the lifted weights
("NN [init]"), trained 20 epochs by RMSprop in batches of 256 (about 5,000 batches), for
784-300-10, 784-1000-10, 784-300-100-10, 784-500-150-10 and the deep 784-500-300-150-100-10,
where every random start ended in a bad local minimum (0.83 error).  ``--paper 000`` takes
those settings (RMSprop's learning rate is not stated: TensorFlow's default 1e-3, the loss
averaged over the batch) and prints the paper's accuracies (1 - error) beside ours.

    python benchmarks/lifted_init.py --archs 300,400-200-100-50 --lrs 1e-5,1e-6 \\
        --inits xavier,lifted --data-dir ../shared/data --out benchmarks/results/lifted_init.json
    python benchmarks/lifted_init.py --paper 000 --data-dir ../shared/data \\
        --out benchmarks/results/lifted_init_paper000.json
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch

from _common import PUBLISHED, refuse_subset_over_published, save_png, usage_errors
from liftnet import Backprop, Lifted, fit, mlp
from liftnet.allocator import reuse_freed_memory
from liftnet.data import load_dataset
from liftnet.methods.backprop import OPTIMIZERS
from liftnet.methods.lifted import PENALTIES
from liftnet.results import versions, write_json
from liftnet.transfer import calibrate_output

# Paper 004 Table 1: (arch, lr) -> {init: (mean, std)}; "model" is the lifted network alone.
PAPER = {
    ("300", 1e-5): {"model": .898, "normal": .915, "xavier": .923, "variance_scaling": .924,
                    "lifted": .962},
    ("300-100", 1e-5): {"model": .875, "normal": .919, "xavier": .932,
                        "variance_scaling": .931, "lifted": .969},
    ("500-150", 1e-5): {"model": .865, "normal": .927, "xavier": .936,
                        "variance_scaling": .935, "lifted": .970},
    ("500-200-100", 1e-5): {"model": .853, "normal": .927, "xavier": .939,
                            "variance_scaling": .935, "lifted": .958},
    ("400-200-100-50", 1e-5): {"model": .770, "normal": .919, "xavier": .938,
                               "variance_scaling": .936, "lifted": .919},
    ("300", 1e-6): {"model": .898, "normal": .800, "xavier": .836, "variance_scaling": .844,
                    "lifted": .875},
    ("300-100", 1e-6): {"model": .875, "normal": .792, "xavier": .838,
                        "variance_scaling": .842, "lifted": .899},
    ("500-150", 1e-6): {"model": .865, "normal": .824, "xavier": .850,
                        "variance_scaling": .858, "lifted": .890},
    ("500-200-100", 1e-6): {"model": .853, "normal": .821, "xavier": .857,
                            "variance_scaling": .848, "lifted": .926},
    ("400-200-100-50", 1e-6): {"model": .770, "normal": .751, "xavier": .838,
                               "variance_scaling": .815, "lifted": .959},
}
ARCHS = ["300", "300-100", "500-150", "500-200-100", "400-200-100-50"]
INITS = ["model", "normal", "xavier", "variance_scaling", "lifted"]

# Paper 000 Table 1: arch -> (error of Our Model, NN [random], NN [init]), each (mean, std).
PAPER_000_ERRORS = {
    "300": ((0.102, 0.001), (0.022, 0.001), (0.0210, 0.0017)),
    "1000": ((0.096, 0.004), (0.019, 0.001), (0.0182, 0.0007)),
    "300-100": ((0.139, 0.003), (0.071, 0.015), (0.0224, 0.0005)),
    "500-150": ((0.128, 0.002), (0.080, 0.025), (0.0218, 0.0005)),
    "500-300-150-100": ((0.148, 0.002), (0.83, 0.07), (0.0223, 0.0005)),
}
# The settings of each table: architectures, learning rates, inits, optimiser, epochs, batch
# size, reduction of the loss over a batch.
SETTINGS = {
    "004": dict(archs=ARCHS, lrs="1e-5,1e-6", inits=INITS, optimizer="sgd", epochs=17,
                batch_size=100, reduction="sum"),
    "000": dict(archs=list(PAPER_000_ERRORS), lrs="1e-3", inits=["model", "normal", "xavier",
                                                                 "lifted"],
                optimizer="rmsprop", epochs=20, batch_size=256, reduction="mean"),
}


def paper_accuracy(paper: str | None, arch: str, lr: float, init: str) -> float | None:
    """The table's test accuracy for a cell (paper 000: 1 - its error; its NN [random] beside
    every random initialisation, as the paper does not say which it drew); None for no table
    (``paper`` None: a data set the papers' tables are not about, see :func:`table_of`)."""
    if paper is None:
        return None
    if paper == "004":
        return PAPER.get((arch, lr), {}).get(init)
    errors = PAPER_000_ERRORS.get(arch)
    if errors is None or init == "lifted_calibrated":
        return None
    column = {"model": 0, "lifted": 2}.get(init, 1)
    return round(1.0 - errors[column][0], 4)
def table_of(paper: str, dataset: str) -> str | None:
    """The paper whose figures go beside ours: both tables are MNIST's."""
    return paper if dataset == "mnist" else None


# Not in the paper: the lifted weights with the output layer scaled to the temperature that
# minimises the training cross-entropy (liftnet.transfer.calibrate_output; argmax unchanged).
EXTRA_INITS = ["lifted_calibrated"]


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # run as a script: liftnet.allocator, large blocks reused
        reuse_freed_memory()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--paper", default="004", choices=tuple(SETTINGS),
                   help="which Table 1: paper 004 (default) or paper 000; sets the defaults of "
                        "the options below")
    p.add_argument("--archs", default=None, help="hidden widths, comma separated")
    p.add_argument("--lrs", default=None)
    p.add_argument("--inits", default=None)
    p.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 (paper: 5)")
    p.add_argument("--optimizer", default=None, choices=OPTIMIZERS,
                   help="004: sgd, 000: rmsprop")
    p.add_argument("--epochs", type=int, default=None,
                   help="gradient-descent epochs (004: 17, 000: 20)")
    p.add_argument("--batch-size", type=int, default=None, help="004: 100, 000: 256")
    p.add_argument("--reduction", default=None, choices=("sum", "mean"),
                   help="004: sum, 000: mean")
    p.add_argument("--penalty", default=None, choices=PENALTIES,
                   help="the lifted network's hidden divergence (default: the method's, "
                        "shifted; paper 000's model (5) is 'squared')")
    p.add_argument("--lifted-epochs", type=int, default=None,
                   help="BCD epochs of the lifted network (default: the method's)")
    p.add_argument("--lam", type=float, default=None, help="lifted lambda (default: method's)")
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--download", action="store_true",
                   help="download missing data files (sha256-checked)")
    p.add_argument("--n-train", type=int, default=None)
    p.add_argument("--out", default="benchmarks/results/lifted_init.json", help=PUBLISHED)
    p.add_argument("--combine", nargs="+", metavar="FILE", default=None,
                   help="join the results files of runs of the same table on other "
                        "architectures (e.g. run in parallel) into --out, and print the table")
    args = p.parse_args(argv)
    refuse_subset_over_published(p, args)
    return _run(args, p)


def _run(args: argparse.Namespace, p: argparse.ArgumentParser) -> int:
    if args.combine:
        with usage_errors(p):
            return combine(args.combine, Path(args.out))
    for key, value in SETTINGS[args.paper].items():
        if getattr(args, key) is None:
            setattr(args, key, ",".join(value) if isinstance(value, list) else value)

    archs = [a for a in args.archs.split(",") if a]
    try:
        lrs = [float(v) for v in args.lrs.split(",") if v]
    except ValueError:
        p.error(f"--lrs {args.lrs!r}: write learning rates separated by commas, e.g. 0.01,0.1")
    if not lrs or not all(0 < lr < math.inf for lr in lrs):
        p.error(f"--lrs {args.lrs!r}: every learning rate must be a finite number > 0")
    for flag, value in (("--seeds", args.seeds), ("--epochs", args.epochs),
                        ("--batch-size", args.batch_size), ("--lifted-epochs", args.lifted_epochs)):
        if value is not None and value < 1:
            p.error(f"{flag} must be >= 1, got {value}")
    inits = [i for i in args.inits.split(",") if i]
    bad = set(inits) - set(INITS) - set(EXTRA_INITS)
    if bad:
        p.error(f"unknown inits {sorted(bad)}; choose from {INITS + EXTRA_INITS}")
    if len(set(archs)) != len(archs):
        p.error(f"--archs names an architecture twice: {args.archs}")
    with usage_errors(p):  # every check, the data and the networks before any training
        lifted = Lifted(**({} if args.lam is None else {"lam": args.lam}),
                        **({} if args.penalty is None else {"penalty": args.penalty}))
        ds = load_dataset(args.dataset, data_dir=args.data_dir,
                          download=args.download, n_train=args.n_train)
        k = ds.n_classes
        nets = {arch: mlp(f"{ds.n_features}-{arch}-{k}", loss="ce") for arch in archs}
    lifted_epochs = lifted.default_epochs if args.lifted_epochs is None else args.lifted_epochs
    table = table_of(args.paper, args.dataset)
    cells: list[dict] = []
    t_start = time.perf_counter()
    for arch, net in nets.items():
        for seed in range(args.seeds):
            lifted_params = calibrated = None
            if {"lifted", "lifted_calibrated", "model"} & set(inits):
                t0 = time.perf_counter()
                res = fit(lifted, net, ds.X_train, ds.y_train, epochs=lifted_epochs,
                          batch_size=0, seed=seed, X_test=ds.X_test, y_test=ds.y_test,
                          progress=False)
                lifted_params = res.state.params
                acc = res.history[-1]["test_accuracy"]
                _log(f"{arch} seed {seed}: lifted model test {acc:.4f} "
                     f"({time.perf_counter() - t0:.0f} s)")
                if "model" in inits:
                    for lr in lrs:
                        cells.append(_cell(table, arch, lr, "model", seed, acc))
                if "lifted_calibrated" in inits:
                    calibrated, tau = calibrate_output(net, lifted_params, ds.X_train, ds.y_train)
                    _log(f"{arch} seed {seed}: output temperature {tau:.3g}")
            for lr in lrs:
                for init in inits:
                    if init == "model":
                        continue
                    start = {"lifted": lifted_params, "lifted_calibrated": calibrated}.get(init)
                    bp = Backprop(optimizer=args.optimizer, lr=lr, reduction=args.reduction,
                                  init="xavier" if start is not None else init, bias_init=0.1)
                    if start is None:  # the weights fit would draw from the seed, drawn here
                        # so that fit's generator gives every initialisation the same batches
                        start = net.init_params(generator=torch.Generator().manual_seed(seed),
                                                scheme=init, bias=0.1,
                                                dtype=ds.X_train.dtype)
                    state = bp.state_from_params(start)
                    t0 = time.perf_counter()
                    res = fit(bp, net, ds.X_train, ds.y_train, epochs=args.epochs,
                              batch_size=args.batch_size, seed=seed, X_test=ds.X_test,
                              y_test=ds.y_test, state=state, progress=False)
                    acc = res.history[-1]["test_accuracy"]
                    _log(f"{arch} lr {lr:g} {init:>16} seed {seed}: test {acc:.4f} "
                         f"({time.perf_counter() - t0:.0f} s)")
                    cells.append(_cell(table, arch, lr, init, seed, acc,
                                       curve=[h["test_accuracy"] for h in res.history]))
        # after every architecture: a run stopped later keeps what it finished
        record = {
            "benchmark": f"paper {args.paper} Table 1 (lifted initialisation)",
            "config": {**vars(args), "lifted": lifted.hyperparameters(),
                       "lifted_epochs": lifted_epochs, "versions": versions()},
            "wall_seconds": time.perf_counter() - t_start,
            "complete": arch == archs[-1],
            "results": cells,
        }
        write_json(args.out, record)
    _print_table(table, cells, archs, lrs, inits)
    _log(f"wrote {Path(args.out)}")
    _plot(Path(args.out))
    return 0


def combine(files: list[str], out: Path) -> int:
    """One results file from runs of the same table (the same settings but the architectures,
    in the order given); refuses runs whose settings differ."""
    import json

    recs = [json.loads(Path(f).read_text()) for f in files]
    for rec in recs:  # files written before --paper existed are paper 004's
        rec["config"].setdefault("paper", "004")
    same = ("paper", "lrs", "inits", "seeds", "optimizer", "epochs", "batch_size", "reduction",
            "dataset", "n_train", "lifted", "lifted_epochs")
    for f, rec in zip(files[1:], recs[1:], strict=True):
        diff = [k for k in same if rec["config"].get(k) != recs[0]["config"].get(k)]
        if diff:
            raise SystemExit(f"{f}: settings differ from {files[0]} in {', '.join(diff)}")
    seen: dict[str, str] = {}
    for f, rec in zip(files, recs, strict=True):
        for arch in dict.fromkeys(c["arch"] for c in rec["results"]):
            if arch in seen:
                raise SystemExit(f"{f}: architecture {arch} is also in {seen[arch]}; combine "
                                 "runs of other architectures")
            seen[arch] = f
    cells = [c for rec in recs for c in rec["results"]]
    config = {**recs[0]["config"], "archs": ",".join(dict.fromkeys(c["arch"] for c in cells)),
              "combined_from": list(files)}
    write_json(out, {"benchmark": recs[0]["benchmark"], "config": config,
                     "wall_seconds": sum(r["wall_seconds"] for r in recs),
                     "complete": all(r.get("complete", True) for r in recs), "results": cells})
    _print_table(table_of(config["paper"], config.get("dataset", "mnist")), cells,
                 config["archs"].split(","),
                 [float(v) for v in config["lrs"].split(",")], config["inits"].split(","))
    _log(f"wrote {out}")
    _plot(out)
    return 0


def _plot(out: Path) -> None:
    try:
        _log(f"wrote {plot_curves(out)}")
    except ImportError:
        _log("matplotlib not installed (pip install liftnet[bench]): no figure")


def plot_curves(json_path: Path) -> Path:
    """Test accuracy per epoch of every initialisation, one panel per architecture (seed 0),
    as paper 000's Figure 1; written beside the results file as ``.png``."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rec = json.loads(json_path.read_text())
    cells = [c for c in rec["results"] if c["seed"] == 0]
    archs = list(dict.fromkeys(c["arch"] for c in cells))
    lrs = list(dict.fromkeys(c["lr"] for c in cells))
    fig, axes = plt.subplots(len(lrs), len(archs), figsize=(3.2 * len(archs), 2.8 * len(lrs)),
                             squeeze=False)
    for i, lr in enumerate(lrs):
        for j, arch in enumerate(archs):
            ax = axes[i][j]
            for c in cells:
                if c["arch"] != arch or c["lr"] != lr:
                    continue
                if "test_accuracy_per_epoch" in c:
                    curve = c["test_accuracy_per_epoch"]
                    ax.plot(range(1, len(curve) + 1), curve, label=f"{c['init']} "
                            f"({curve[-1]:.3f})")
                else:  # the lifted network itself: one figure
                    ax.axhline(c["test_accuracy"], color="grey", ls="--",
                               label=f"{c['init']} ({c['test_accuracy']:.3f})")
            ax.set_title(f"784-{arch}-10, lr {lr:g}", fontsize=9)
            ax.set_xlabel("epochs")
            ax.set_ylabel("test accuracy")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    png = json_path.with_suffix(".png")
    save_png(fig, png, dpi=110)
    plt.close(fig)
    return png


def _cell(table, arch, lr, init, seed, acc, curve=None) -> dict:
    paper = paper_accuracy(table, arch, lr, init)
    cell = {"arch": arch, "lr": lr, "init": init, "seed": seed, "test_accuracy": acc,
            "paper": paper}
    if curve is not None:
        cell["test_accuracy_per_epoch"] = curve
    return cell


def _print_table(table, cells, archs, lrs, inits) -> None:
    for lr in lrs:
        print(f"\nlearning rate {lr:g}: ours (paper)")
        print(f"{'arch':>16} " + " ".join(f"{i:>18}" for i in inits))
        for arch in archs:
            row = []
            for init in inits:
                accs = [c["test_accuracy"] for c in cells
                        if c["arch"] == arch and c["lr"] == lr and c["init"] == init]
                paper = paper_accuracy(table, arch, lr, init)
                if not accs:
                    row.append(f"{'-':>18}")
                    continue
                mean = statistics.fmean(accs)
                sd = f"±{statistics.stdev(accs):.3f}" if len(accs) > 1 else ""
                ptxt = f"({paper:.3f})" if paper is not None else ""
                row.append(f"{mean:.3f}{sd} {ptxt}".rjust(18))
            print(f"{arch:>16} " + " ".join(row))


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


if __name__ == "__main__":
    torch.set_num_threads(max(1, torch.get_num_threads()))
    raise SystemExit(main())
