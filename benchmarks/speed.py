"""Speed of Fenchel lifted training against Adam back-propagation (issue 4, item 7).

    python benchmarks/speed.py --data-dir ../shared/data --out benchmarks/results/speed.json

In one run, on the same machine, data and batches (784-300-10, cross-entropy, batches of 500):
the seconds per epoch of Fenchel (Algorithm 2) and of Adam (lr 1e-3), and the training seconds
each needs to reach ``--target`` (0.97) test accuracy (evaluations every ``--eval-every``
batches, not timed; null if not reached within ``--epochs``).  Also the floating-point work of
one Fenchel batch (matrix products and convolutions counted by torch's FlopCounterMode, plus
the factorisations of the W-steps' shared matrices, m^3 each: m the batch size for a W-step in
sample space, else the layer's inputs + 1) and the rate achieved,
against this machine's float32 matrix-multiply rate measured here.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from _common import PUBLISHED, refuse_subset_over_published, usage_errors
from fenchel_mnist import _sync, parse_value, run_model
from liftnet import get_method
from liftnet.allocator import reuse_freed_memory
from liftnet.data import load_dataset
from liftnet.graph import network
from liftnet.metrics import targets_for
from liftnet.results import write_json
from liftnet.solvers import dual_applies
from liftnet.training import resolve_device


def matmul_rate(n: int = 2048, reps: int = 10, device: str | torch.device = "cpu") -> float:
    """float32 GEMM rate of ``device`` in GFLOP/s (best of ``reps``)."""
    device = torch.device(device)
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    best = float("inf")
    for _ in range(reps):
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def factorisation_flops(method, net, batch_size: int) -> float:
    """Work of the per-batch factorisations that FlopCounterMode does not see: a Cholesky
    factorisation and inverse, m^3, per layer, m = the batch size for a W-step solved in sample
    space (fewer rows than inputs), else the layer's inputs + 1."""
    total = 0.0
    gammas, bias_gammas, rhos = (method.layer_gammas(net), method.layer_bias_gammas(net),
                                 method.layer_rhos(net))
    for l, layer in enumerate(net.layers):
        d = layer.in_features
        dual = dual_applies(batch_size, d, gammas[l], bias_gammas[l], rhos[l])
        total += float(batch_size if dual else d + 1) ** 3
    return total


def fenchel_batch_flops(method, net, ds, state, batch_size: int, batches: int = 5) -> float:
    """Floating-point operations of one Fenchel step, averaged over ``batches`` further steps
    from the trained ``state`` (the iteration counts of the block solvers vary along training)."""
    total = 0.0
    batches = max(1, min(batches, len(ds.X_train) // batch_size))  # whole batches only
    for i in range(batches):
        X = ds.X_train[i * batch_size : (i + 1) * batch_size]
        Y = targets_for(net, ds.y_train[i * batch_size : (i + 1) * batch_size], X.dtype)
        with FlopCounterMode(display=False) as counter:
            method.step(net, state, X, Y, new_batch=True)
        total += float(counter.get_total_flops()) + factorisation_flops(method, net, batch_size)
    return total / batches


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # run as a script: liftnet.allocator, large blocks reused
        reuse_freed_memory()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--download", action="store_true",
                   help="download missing data files (sha256-checked)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--target", type=float, default=0.97)
    p.add_argument("--eval-every", type=int, default=10)
    p.add_argument("--n-train", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/speed.json", help=PUBLISHED)
    p.add_argument("--device", default="cpu", help="cpu or cuda: both methods train there")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="a Fenchel hyperparameter other than its default (repeatable)")
    args = p.parse_args(argv)
    refuse_subset_over_published(p, args)
    return _run(args, p)


def _run(args: argparse.Namespace, p: argparse.ArgumentParser) -> int:
    fenchel_hp: dict[str, object] = {}
    for item in args.set:
        name, eq, value = item.partition("=")
        if not eq or not name:
            p.error(f"--set {item!r}: write NAME=VALUE, e.g. tol=1e-3")
        fenchel_hp[name] = parse_value(value)
    if args.epochs < 1 or args.batch_size < 1 or args.eval_every < 1:
        p.error("--epochs, --batch-size and --eval-every must be >= 1")
    if not 0 < args.target <= 1:
        p.error(f"--target is a test accuracy in (0, 1], got {args.target}")
    with usage_errors(p):  # every check before any work
        device = resolve_device(args.device)
        specs = (("fenchel", get_method("fenchel", **fenchel_hp)),
                 ("adam", get_method("backprop", optimizer="adam", lr=1e-3)))
        ds = load_dataset("mnist", data_dir=args.data_dir,
                          download=args.download, n_train=args.n_train, seed=args.seed)
    ds = ds.to(device=device)
    net = network("784-300-10", loss="ce")
    rate = matmul_rate(device=device)
    print(f"float32 matrix multiply on {device}: {rate:.1f} GFLOP/s", flush=True)
    runs, states, methods = {}, {}, {}
    for name, method in specs:
        methods[name] = method
        print(f"{name}: {method.hyperparameters()}", flush=True)
        full = run_model(method, net, ds, batch_size=args.batch_size, epochs=args.epochs,
                         seed=args.seed, eval_every=args.eval_every,
                         log=lambda s: print(s, flush=True))
        states[name] = full.pop("state")
        reach = next((c[2] for c in full["curve"] if c[1] >= args.target), None)
        runs[name] = {"epoch_seconds": full["epoch_seconds"], "time_to_target": reach,
                      "final_test_accuracy": full["final_test_accuracy"],
                      "curve": full["curve"], "hyperparameters": method.hyperparameters()}
    fen, adam = runs["fenchel"], runs["adam"]
    ep_f = sum(fen["epoch_seconds"]) / len(fen["epoch_seconds"])
    ep_a = sum(adam["epoch_seconds"]) / len(adam["epoch_seconds"])
    flops = fenchel_batch_flops(methods["fenchel"], net, ds, states["fenchel"], args.batch_size)
    n_batches = -(-len(ds.X_train) // args.batch_size)
    epoch_flops = flops * n_batches
    record = {
        "epoch_seconds_fenchel": ep_f,
        "epoch_seconds_adam": ep_a,
        "time_to_target_fenchel": fen["time_to_target"],
        "time_to_target_adam": adam["time_to_target"],
        "epoch_ratio_fenchel_over_adam": ep_f / ep_a,
        "time_to_target_ratio": (fen["time_to_target"] / adam["time_to_target"]
                                 if fen["time_to_target"] is not None and adam["time_to_target"]
                                 else None),
        "fenchel_epoch_gflop": epoch_flops / 1e9,
        "fenchel_gflops_achieved": epoch_flops / ep_f / 1e9,
        "matmul_gflops_machine": rate,
        "target": args.target, "batch_size": args.batch_size, "n_train": len(ds.X_train),
        "device": str(device),
        "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                        else platform.processor() or platform.machine()),
        "threads": torch.get_num_threads(),
        "runs": runs,
    }
    if args.target == 0.97:  # the field names
        record["time_to_97_fenchel"] = fen["time_to_target"]
        record["time_to_97_adam"] = adam["time_to_target"]
    t = f"{args.target:g}"
    print(f"\nepoch: Fenchel {ep_f:.2f} s, Adam {ep_a:.2f} s (ratio {ep_f / ep_a:.1f}x)")
    print(f"time to {t} test accuracy: Fenchel {fen['time_to_target']}, Adam "
          f"{adam['time_to_target']} (s; ratio {record['time_to_target_ratio']})")
    print(f"Fenchel epoch: {epoch_flops / 1e9:.1f} GFLOP, {record['fenchel_gflops_achieved']:.1f}"
          f" GFLOP/s achieved vs {rate:.1f} GFLOP/s matrix multiply "
          f"({100 * record['fenchel_gflops_achieved'] / rate:.0f}%)")
    write_json(args.out, record)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
