"""The command line: JSON contract, saved models, clear errors."""

from __future__ import annotations

import json

import pytest
import torch

from liftnet import load_model, save_model, to_torch
from liftnet.cli import main


def test_train_writes_the_results_contract(tmp_path, capsys):
    out, model = tmp_path / "run.json", tmp_path / "model.pt"
    code = main(["train", "--method", "lifted", "--dataset", "digits", "--arch", "64-40-10",
                 "--epochs", "3", "--seed", "1", "--quiet", "--lam", "2", "--out", str(out),
                 "--save", str(model), "--lifted-rule"])
    assert code == 0
    rec = json.loads(out.read_text())
    assert {"method", "arch", "dataset", "config", "train_accuracy", "test_accuracy",
            "wall_seconds", "history"} <= set(rec)
    assert rec["method"] == "lifted" and rec["arch"] == "64-40-10" and rec["dataset"] == "digits"
    cfg = rec["config"]
    assert cfg["lam"] == 2.0 and cfg["seed"] == 1 and cfg["epochs"] == 3
    assert {"torch", "liftnet", "python"} <= set(cfg["versions"])
    assert [h["epoch"] for h in rec["history"]] == [1, 2, 3]
    assert rec["test_accuracy"] > 0.5 and 0 <= rec["test_accuracy_lifted_rule"] <= 1
    assert "test accuracy" in capsys.readouterr().out
    net, params, meta = load_model(model)
    assert net.spec == "64-40-10" and meta["method"] == "lifted"
    X = torch.rand(3, 64)
    with torch.no_grad():
        torch.testing.assert_close(to_torch(net, params)(X), net.forward(params, X))


@pytest.mark.parametrize("argv,message", [
    (["--arch", "784-300-10"], "must start with 64"),
    (["--lam", "-1"], "lam must be a finite number > 0, got -1.0"),
    (["--method", "backprop", "--lam", "1"], "--lam is not a hyperparameter of method backprop"),
    (["--epochs", "-2"], "epochs must be >= 0"),
    (["--n-train", "0"], "n_train"),
])
def test_bad_input_gets_a_clear_error(argv, message, capsys):
    assert main(["train", "--quiet", "--epochs", "1", *argv]) == 2
    assert message in capsys.readouterr().err


def test_missing_data_names_the_directory_and_files(tmp_path, capsys):
    assert main(["train", "--dataset", "mnist", "--data-dir", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "train-images-idx3-ubyte" in err


def test_failed_write_leaves_existing_results_untouched(tmp_path, monkeypatch):
    out = tmp_path / "run.json"
    out.write_text('{"keep": true}')

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("liftnet.results.os.replace", crash)  # fail after the temp file is written
    with pytest.raises(OSError, match="disk full"):
        main(["train", "--quiet", "--epochs", "1", "--out", str(out)])
    assert json.loads(out.read_text()) == {"keep": True}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temp file left behind


def test_damaged_model_file_gets_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a readable liftnet model"):
        load_model(bad)
    from liftnet import mlp

    net = mlp("3-2")
    path = save_model(tmp_path / "ok.pt", net, net.init_params())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError):
        load_model(path)
