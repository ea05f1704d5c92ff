"""Reference points for the lifted network alone (paper 004 Table 1, "Our Model").

Two closed-form classifiers on MNIST, fitted by liftnet's ridge solver to one-hot labels:
a linear least-squares classifier on the pixels, and random ReLU features (the untrained first
layer of a Xavier-initialised 784-H-10 network) with a ridge output layer.  A lifted network
whose hidden units collapse into the linear regime scores like the first; one that learns
nothing in its hidden layer scores like the second.

    python benchmarks/linear_baselines.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse

import torch

from _common import PUBLISHED, usage_errors
from liftnet import mlp
from liftnet.allocator import reuse_freed_memory
from liftnet.data import load_dataset, one_hot
from liftnet.results import write_json
from liftnet.solvers import ridge


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # run as a script: liftnet.allocator, large blocks reused
        reuse_freed_memory()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--download", action="store_true",
                   help="download missing data files (sha256-checked)")
    p.add_argument("--hidden", type=int, default=300)
    p.add_argument("--alpha", type=float, default=1.0, help="ridge penalty (1/2 convention)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/linear_baselines.json", help=PUBLISHED)
    args = p.parse_args(argv)
    return _run(args, p)


def _run(args: argparse.Namespace, p: argparse.ArgumentParser) -> int:
    with usage_errors(p):
        ds = load_dataset("mnist", data_dir=args.data_dir, download=args.download)
        net = mlp(f"784-{args.hidden}-10")
    Y = one_hot(ds.y_train, 10, ds.X_train.dtype)

    def score(F, Ft):
        W, b = ridge(F, Y, args.alpha)
        return float(((Ft @ W.T + b).argmax(1) == ds.y_test).double().mean())

    linear = score(ds.X_train, ds.X_test)
    W0, b0 = net.init_params(generator=torch.Generator().manual_seed(args.seed))[0]
    features = score(torch.relu(ds.X_train @ W0.T + b0), torch.relu(ds.X_test @ W0.T + b0))
    print(f"linear least squares on pixels: test {linear:.4f}")
    print(f"random {args.hidden} ReLU features + ridge: test {features:.4f}")
    write_json(args.out, {"linear_test_accuracy": linear, "random_features_test_accuracy":
                          features, "config": vars(args)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
