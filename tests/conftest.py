"""Shared fixtures: small synthetic data, so the suite runs in minutes on 2 cores."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

DATA_DIR = Path(
    os.environ.get("LIFTNET_DATA", Path(__file__).parents[1] / ".." / "shared" / "data")
)


def teacher_data(n: int = 240, d: int = 8, k: int = 3, seed: int = 0, dtype=torch.float64):
    """Inputs N(0, I) and labels of a random ReLU teacher 8-16-3 (balanced enough to learn)."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=dtype)
    W1 = torch.randn(16, d, generator=g, dtype=dtype) / d**0.5
    W2 = torch.randn(k, 16, generator=g, dtype=dtype) / 4
    y = (torch.relu(X @ W1.T) @ W2.T).argmax(1)
    return X, y


@pytest.fixture
def small_data():
    X, y = teacher_data()
    return X[:200], y[:200], X[200:], y[200:]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA_DIR


@pytest.fixture
def registries():
    """Registries restored after the test (registration is global), and the plugin modules
    forgotten (a plugin already imported is not imported again)."""
    from liftnet import METHODS
    from liftnet.activations import ACTIVATIONS

    acts, methods = dict(ACTIVATIONS), dict(METHODS)
    yield
    ACTIVATIONS.clear()
    ACTIVATIONS.update(acts)
    METHODS.clear()
    METHODS.update(methods)
    for name in [m for m in sys.modules if m.startswith("liftnet_plugin_")]:
        del sys.modules[name]
