"""What the benchmark scripts share: their default outputs are the published results."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from liftnet.data import DataError

PUBLISHED = "(default: %(default)s, the published results that benchmarks/README.md cites)"


def refuse_subset_over_published(p: argparse.ArgumentParser, args: argparse.Namespace,
                                 out: str = "out") -> None:
    """A run on a subset (``--n-train`` / ``--n-test``) must name its own output: the default
    path holds the published results, which such a run would replace."""
    subset = [f"--{name.replace('_', '-')}" for name in ("n_train", "n_test")
              if getattr(args, name, None) is not None]
    if subset and getattr(args, out) == p.get_default(out):
        flag = "--" + out.replace("_", "-")
        verb = "runs" if len(subset) == 1 else "run"
        p.error(f"{' and '.join(subset)} {verb} on a subset: name {flag} (its default, "
                f"{p.get_default(out)}, holds the published results)")


def run_checked(p: argparse.ArgumentParser, args: argparse.Namespace,
                run: Callable[[argparse.Namespace, argparse.ArgumentParser], Any],
                out: str | None = "out") -> Any:
    """``run(args, p)``, with a bad value (ValueError, missing or damaged data) reported as
    a one-line usage error instead of a traceback; a subset run must name ``out`` (above)."""
    if out is not None:
        refuse_subset_over_published(p, args, out)
    try:
        return run(args, p)
    except (ValueError, DataError) as exc:
        p.error(str(exc))
