"""ADMM of Taylor et al. (2016) on MNIST 784-300-10 with squared loss: the three multiplier
rules side by side (paper 003 Figure 1 reports Taylor et al. at 0.834 test accuracy).

* ``augmented``: the multiplier accumulates and enters every block it couples (liftnet's default);
* ``bregman``: it accumulates but enters the output update only (Algorithm 1 as printed);
* ``assign``: lam = beta (z_L - W_L a_{L-1}) every iteration (the public reimplementation).

    python benchmarks/admm_multiplier.py --data-dir ../shared/data --epochs 100

Prints, per rule, the test accuracy and the augmented Lagrangian every ``--every`` iterations,
and writes the histories to ``--out``.
"""

from __future__ import annotations

import argparse

from _common import PUBLISHED, refuse_subset_over_published, usage_errors
from liftnet import fit, get_method, mlp
from liftnet.allocator import reuse_freed_memory
from liftnet.data import load_dataset
from liftnet.results import write_json

PAPER = 0.834  # paper 003 Figure 1, Taylor et al.


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # run as a script: liftnet.allocator, large blocks reused
        reuse_freed_memory()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--download", action="store_true",
                   help="download missing data files (sha256-checked)")
    p.add_argument("--epochs", type=int, default=100, help="ADMM iterations (full batch)")
    p.add_argument("--rules", default="augmented,bregman,assign")
    p.add_argument("--bias", default="true", choices=("true", "false"))
    p.add_argument("--beta", type=float, default=5.0)
    p.add_argument("--gamma", type=float, default=5.0)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--n-train", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--every", type=int, default=10)
    p.add_argument("--out", default="benchmarks/results/admm_multiplier.json", help=PUBLISHED)
    args = p.parse_args(argv)
    refuse_subset_over_published(p, args)
    return _run(args, p)


def _run(args: argparse.Namespace, p: argparse.ArgumentParser) -> int:
    with usage_errors(p):
        rules = {rule: get_method("admm", multiplier=rule, bias=args.bias == "true",
                                  beta=args.beta, gamma=args.gamma, warmup=args.warmup)
                 for rule in args.rules.split(",")}
        ds = load_dataset("mnist", data_dir=args.data_dir,
                          download=args.download, n_train=args.n_train, seed=args.seed)
    runs = []
    for rule, method in rules.items():

        def show(entry, state, rule=rule):
            if entry["epoch"] % args.every == 0 or entry["epoch"] == 1:
                print(f"  {rule:9s} it {entry['epoch']:4d}  test {entry['test_accuracy']:.4f}  "
                      f"train {entry['train_accuracy']:.4f}  "
                      f"lagrangian {entry['objective']:.5f}  ({entry['seconds']:.2f} s)",
                      flush=True)

        res = fit(method, mlp("784-300-10", loss="mse"), ds.X_train, ds.y_train,
                  epochs=args.epochs, seed=args.seed, X_test=ds.X_test, y_test=ds.y_test,
                  progress=False, callback=show)
        best = max(h["test_accuracy"] for h in res.history)
        last = res.history[-1]["test_accuracy"]
        print(f"{rule}: final test {last:.4f}, best {best:.4f} (paper, Taylor et al.: {PAPER})")
        runs.append({"rule": rule, "hyperparameters": method.hyperparameters(),
                     "final_test_accuracy": last, "best_test_accuracy": best,
                     "history": res.history})
    write_json(args.out, {"paper_test_accuracy": PAPER, "config": vars(args), "runs": runs})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
