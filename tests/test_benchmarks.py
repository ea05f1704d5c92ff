"""The benchmark scripts' paths on small data (the full runs are in benchmarks/README.md)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from liftnet import data
from test_data import write_cifar

BENCH = Path(__file__).parents[1] / "benchmarks"


def _load(name: str):
    sys.path.insert(0, str(BENCH))  # speed.py imports fenchel_mnist
    try:
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


def test_figure4_runs_on_a_synthetic_cifar_layout(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_CIFAR_ROWS", 12)
    write_cifar(tmp_path / "cifar10" / "cifar-10-batches-py", 12)
    out = tmp_path / "out"
    fig = _load("fenchel_mnist")
    assert fig.main(["--figure", "4", "--data-dir", str(tmp_path), "--epochs", "1",
                     "--out-dir", str(out)]) == 0
    rec = json.loads((out / "fenchel_fig4.json").read_text())
    assert rec["arch"] == "3x32x32-conv6k5-pool2-conv16k5-pool2-120-84-10"
    assert set(rec["models"]) == {"SGD", "Adam", "Fenchel", fig.EXTRAPOLATED}
    assert rec["models"][fig.EXTRAPOLATED]["hyperparameters"]["target_extrapolation"] == [
        300.0, 30.0, 1.0, 1.0]
    for r in rec["models"].values():
        assert r["batches"] == 1 and len(r["curve"]) == 2 and 0 <= r["final_test_accuracy"] <= 1
    assert rec["models"]["Fenchel"]["paper"] == 0.606
    assert (out / "fenchel_fig4.png").stat().st_size > 1000


def test_figure2_and_speed_on_a_mnist_slice(tmp_path, data_dir):
    if not (data_dir / "mnist").is_dir():
        pytest.fail(f"MNIST not found under {data_dir} (set LIFTNET_DATA)")
    fig = _load("fenchel_mnist")
    assert fig.main(["--figure", "2", "--data-dir", str(data_dir), "--n-train", "1000",
                     "--n-test", "300", "--epochs", "1", "--models", "Adam,Fenchel",
                     "--set", "Fenchel:max_inner=20", "--out-dir", str(tmp_path)]) == 0
    rec = json.loads((tmp_path / "fenchel_fig2.json").read_text())
    assert rec["models"]["Fenchel"]["hyperparameters"]["max_inner"] == 20
    assert rec["models"]["Fenchel"]["batches"] == 2  # 1000 images in batches of 500
    speed = _load("speed")
    out = tmp_path / "speed.json"
    assert speed.main(["--data-dir", str(data_dir), "--n-train", "1000", "--epochs", "1",
                       "--target", "0.5", "--eval-every", "1", "--out", str(out),
                       "--set", "target_extrapolation=2", "--set", "max_inner=20"]) == 0
    s = json.loads(out.read_text())
    hp = s["runs"]["fenchel"]["hyperparameters"]
    assert hp["target_extrapolation"] == [2.0] and hp["max_inner"] == 20
    for key in ("epoch_seconds_fenchel", "epoch_seconds_adam", "fenchel_epoch_gflop",
                "matmul_gflops_machine"):
        assert s[key] > 0
    assert "time_to_50_fenchel" in s and "time_to_50_adam" in s


def test_bregman_tables_on_mnist_and_fashion_slices(tmp_path, data_dir):
    for name in ("mnist", "fashion-mnist"):
        if not (data_dir / name).is_dir():
            pytest.fail(f"{name} not found under {data_dir} (set LIFTNET_DATA)")
    bench = _load("bregman")
    out = tmp_path / "bregman.json"
    assert bench.main(["--data-dir", str(data_dir), "--n-train", "300", "--n-test", "200",
                       "--epochs", "1", "--set", "Bregman lifted:x_steps=3",
                       "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert set(rec["datasets"]) == {"mnist", "fashion-mnist"}
    for entry in rec["datasets"].values():
        models = entry["models"]
        assert set(models) == {"Back-prop", "Standard lifted", "Lifted (shifted)",
                               "Bregman lifted"}
        assert models["Bregman lifted"]["hyperparameters"]["x_steps"] == 3
        for r in models.values():
            assert len(r["linear_share"]) == 3 and all(0 <= s <= 1 for s in r["linear_share"])
            assert 0 <= r["final_test_accuracy"] <= 1 and r["seconds_per_epoch"] > 0
        assert entry["epoch_ratio_bregman_over_backprop"] > 0
    assert rec["datasets"]["fashion-mnist"]["models"]["Bregman lifted"]["poster_linear_share"] \
        == [0.506, 0.125, 0.254]
