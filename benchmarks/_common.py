"""What the benchmark scripts share: one-line errors for bad arguments, and their default
outputs, which are the published results."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from liftnet.data import DataError

PUBLISHED = "(default: %(default)s, the published results that benchmarks/README.md cites)"


@contextmanager
def usage_errors(p: argparse.ArgumentParser) -> Iterator[None]:
    """Around a script's checks and set-up (hyperparameters, data, networks), before any
    training: a bad value (ValueError, missing or damaged data) is a one-line usage error.
    Training itself runs outside, so that a failure there keeps its traceback."""
    try:
        yield
    except (ValueError, DataError) as exc:
        p.error(str(exc))


def refuse_subset_over_published(p: argparse.ArgumentParser, args: argparse.Namespace,
                                 out: str = "out") -> None:
    """A run on a subset (``--n-train`` / ``--n-test``) must name its own output: the default
    path holds the published results, which such a run would replace."""
    subset = [f"--{name.replace('_', '-')}" for name in ("n_train", "n_test")
              if getattr(args, name, None) is not None]
    if subset and Path(getattr(args, out)).resolve() == Path(p.get_default(out)).resolve():
        flag = "--" + out.replace("_", "-")
        verb = "runs" if len(subset) == 1 else "run"
        p.error(f"{' and '.join(subset)} {verb} on a subset: name {flag} (its default, "
                f"{p.get_default(out)}, holds the published results)")


def save_png(fig, path: str | Path, dpi: int) -> None:
    """Write a matplotlib figure as PNG atomically (a temporary file renamed, like the JSON
    records), so that an interrupted run never leaves a cut image."""
    import io

    from liftnet.results import atomic_write

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    data = buffer.getvalue()
    atomic_write(path, lambda fh: fh.write(data))
