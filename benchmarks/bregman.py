"""Paper 001 (lifted Bregman training), Tables 1-3: back-propagation, the standard lifted network
(paper 004) and the Bregman lifted network on 784-64-64-64-10 ReLU, MNIST and Fashion-MNIST.

    python benchmarks/bregman.py --data-dir ../shared/data

For every data set and model, in one run: train and test accuracy (feed-forward rule), the
linear-activation share of every hidden layer on the test set (Table 3; definition below) and the
training seconds per epoch; the ratio of Bregman's to back-propagation's seconds per epoch
(same architecture, batch size and batches).  Writes ``--out`` (JSON) and prints each figure
beside the poster's.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from _common import PUBLISHED, refuse_subset_over_published, usage_errors
from fenchel_mnist import run_model
from liftnet import get_method
from liftnet.allocator import reuse_freed_memory
from liftnet.data import load_dataset
from liftnet.graph import network
from liftnet.metrics import LINEAR_SHARE_DEFINITION, linear_share
from liftnet.results import write_json

ARCH = "784-64-64-64-10"
# model -> (method key, hyperparameters, batch size (0 = full data set), epochs)
MODELS: dict[str, tuple[str, dict[str, Any], int, int]] = {
    "Back-prop": ("backprop", {"optimizer": "adam", "lr": 1e-3}, 100, 20),
    # the poster's "standard lifted network": paper 004's quadratic penalty (11) as written
    "Standard lifted": ("lifted", {"penalty": "squared"}, 0, 40),
    # liftnet's default lifted model (shifted penalty, issue 2), for comparison
    "Lifted (shifted)": ("lifted", {}, 0, 40),
    "Bregman lifted": ("bregman", {}, 100, 20),
}
# the poster's Tables 1-2 (train, test) and Table 3 (Fashion-MNIST, % per hidden layer)
POSTER = {
    "mnist": {"Back-prop": (0.998, 0.977), "Standard lifted": (0.852, 0.863),
              "Bregman lifted": (0.993, 0.967)},
    "fashion-mnist": {"Back-prop": (0.956, 0.880), "Standard lifted": (0.814, 0.800),
                      "Bregman lifted": (0.935, 0.857)},
}
POSTER_LINEAR = {"Back-prop": (0.380, 0.396, 0.384), "Standard lifted": (0.999, 0.999, 0.999),
                 "Bregman lifted": (0.506, 0.125, 0.254)}
ACCEPTANCE = {"mnist": 0.967, "fashion-mnist": 0.857}


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # run as a script: liftnet.allocator, large blocks reused
        reuse_freed_memory()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--download", action="store_true",
                   help="download missing data files (sha256-checked)")
    p.add_argument("--datasets", default="mnist,fashion-mnist")
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated subset")
    p.add_argument("--epochs", type=int, default=None, help="override every model's epochs")
    p.add_argument("--n-train", type=int, default=None, help="seeded training subset (tests)")
    p.add_argument("--n-test", type=int, default=None, help="first n test images (tests)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="MODEL:NAME=VALUE",
                   help="override a hyperparameter, e.g. 'Bregman lifted:tau=1'")
    p.add_argument("--out", default="benchmarks/results/bregman.json", help=PUBLISHED)
    args = p.parse_args(argv)
    refuse_subset_over_published(p, args)
    return _run(args, p)


def _run(args: argparse.Namespace, p: argparse.ArgumentParser) -> int:
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        p.error(f"unknown models {unknown}; choose from {', '.join(MODELS)}")
    overrides: dict[str, dict[str, Any]] = {m: {} for m in MODELS}
    for item in args.set:
        model, _, assignment = item.partition(":")
        name, _, value = assignment.partition("=")
        if model not in MODELS or not name or not value:
            p.error(f"--set {item!r}: expected MODEL:NAME=VALUE with MODEL in {list(MODELS)}")
        overrides[model][name] = _value(value)

    if args.epochs is not None and args.epochs < 1:
        p.error(f"--epochs must be >= 1, got {args.epochs}")
    with usage_errors(p):  # every model's hyperparameters and every data set before training
        net = network(ARCH, activation="relu", loss="ce")
        methods = {name: get_method(MODELS[name][0], **{**MODELS[name][1], **overrides[name]})
                   for name in models}
        for method in methods.values():
            method.check_network(net)
        data = {dsname: load_dataset(dsname, data_dir=args.data_dir,
                                     download=args.download, n_train=args.n_train,
                                     seed=args.seed)
                for dsname in [d.strip() for d in args.datasets.split(",") if d.strip()]}
    record: dict[str, Any] = {"arch": ARCH, "seed": args.seed,
                              "linear_share_definition": LINEAR_SHARE_DEFINITION + " (test set)",
                              "datasets": {}}
    for dsname, ds in data.items():
        if args.n_test is not None:
            ds.X_test, ds.y_test = ds.X_test[: args.n_test], ds.y_test[: args.n_test]
        net = network(ARCH, activation="relu", loss="ce")
        print(f"{dsname}: {len(ds.X_train)} training and {len(ds.X_test)} test images, {ARCH}",
              flush=True)
        results: dict[str, Any] = {}
        for name in models:
            key, _, batch_size, epochs = MODELS[name]
            epochs = args.epochs if args.epochs is not None else epochs
            method = methods[name]
            print(f"  {name} ({key}, batch size {batch_size or 'full'}, {epochs} epochs)",
                  flush=True)
            n_batches = 1 if batch_size == 0 else -(-len(ds.X_train) // batch_size)
            t0 = time.perf_counter()
            r = run_model(method, net, ds, batch_size=batch_size, epochs=epochs, seed=args.seed,
                          eval_every=n_batches, log=lambda s: print(s, flush=True))
            state = r.pop("state")
            r.update(method=key, hyperparameters=method.hyperparameters(),
                     wall_seconds=time.perf_counter() - t0,
                     seconds_per_epoch=sum(r["epoch_seconds"]) / max(len(r["epoch_seconds"]), 1),
                     linear_share=linear_share(net, state.params, ds.X_test),
                     poster_train_test=POSTER.get(dsname, {}).get(name),
                     # Table 3 is Fashion-MNIST's: no poster figure beside MNIST's shares
                     poster_linear_share=(POSTER_LINEAR.get(name)
                                          if dsname == "fashion-mnist" else None))
            results[name] = r
        entry: dict[str, Any] = {"models": results, "n_train": len(ds.X_train),
                                 "n_test": len(ds.X_test)}
        if "Bregman lifted" in results and "Back-prop" in results:
            entry["epoch_ratio_bregman_over_backprop"] = (
                results["Bregman lifted"]["seconds_per_epoch"]
                / results["Back-prop"]["seconds_per_epoch"])
        record["datasets"][dsname] = entry
        _report(dsname, entry)
    write_json(args.out, record)
    print(f"wrote {args.out}")
    return 0


def _pct(shares) -> str:
    return " / ".join("-" if s is None else f"{100 * s:.1f}%" for s in shares)


def _report(dsname: str, entry: dict[str, Any]) -> None:
    print(f"\n{dsname}: model            train   test   (poster train / test)   "
          "linear share per hidden layer (poster, Table 3 on Fashion-MNIST)   s/epoch")
    for name, r in entry["models"].items():
        poster = r["poster_train_test"]
        pt = f"{poster[0]:.3f} / {poster[1]:.3f}" if poster else "-"
        print(f"  {name:18s} {r['train_accuracy']:.4f} {r['final_test_accuracy']:.4f} "
              f"({pt})   {_pct(r['linear_share'])} ({_pct(r['poster_linear_share'] or [])})   "
              f"{r['seconds_per_epoch']:.2f}")
    if "epoch_ratio_bregman_over_backprop" in entry:
        print(f"  seconds per epoch, Bregman / back-prop: "
              f"{entry['epoch_ratio_bregman_over_backprop']:.2f} (target <= 5)")
    if dsname in ACCEPTANCE and "Bregman lifted" in entry["models"]:
        acc = entry["models"]["Bregman lifted"]["final_test_accuracy"]
        print(f"  Bregman test accuracy {acc:.4f} (target >= {ACCEPTANCE[dsname]})")


if __name__ == "__main__":
    raise SystemExit(main())
