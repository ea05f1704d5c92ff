#!/usr/bin/env python3
"""Set up liftnet in ``.venv/`` and run the main job or the test suite.

    python3 dev.py main    # set up, then train on the bundled default data set (digits)
    python3 dev.py test    # set up, then lint with ruff and run the test suite

Needs only Python 3.10+ and pip.  PyTorch 2.13.0 is installed when the virtual environment
has no torch yet (its CPU build is what these machines hold); the package metadata itself
keeps a range, so an existing torch is left alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
TORCH_PIN = "torch==2.13.0"


def run(*cmd: str | Path) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT)


def has_module(name: str) -> bool:
    code = f"import importlib.util,sys; sys.exit(importlib.util.find_spec('{name}') is None)"
    return subprocess.run([str(PY), "-c", code], cwd=ROOT).returncode == 0


def setup() -> None:
    if not PY.exists():
        print(f"creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = (PY, "-m", "pip", "install", "--disable-pip-version-check", "-q")
    if not has_module("torch"):
        run(*pip, TORCH_PIN)
    run(*pip, "-e", ".[test,bench]")


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] not in ("main", "test"):
        print(__doc__)
        return 2
    setup()
    if argv[1] == "main":
        run(BIN / "liftnet", "train", *argv[2:])
    else:
        run(PY, "-m", "ruff", "check", "src", "tests", "benchmarks", "examples", "dev.py")
        env = dict(os.environ)
        env.setdefault("LIFTNET_DATA", str((ROOT / ".." / "shared" / "data").resolve()))
        print("+ pytest", " ".join(argv[2:]), flush=True)
        code = subprocess.run([str(PY), "-m", "pytest", *argv[2:]], cwd=ROOT, env=env).returncode
        return code
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except subprocess.CalledProcessError as exc:
        sys.exit(exc.returncode or 1)
