"""The command line: JSON contract, saved models, clear errors."""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch

from liftnet import METHODS, Backprop, load_model, register_method, save_model, to_torch
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
    assert rec["test_accuracy"] > 0.5
    assert "test accuracy" in capsys.readouterr().out
    net, params, meta = load_model(model)
    assert net.spec == "64-40-10" and meta["method"] == "lifted"
    X = torch.rand(3, 64)
    with torch.no_grad():
        torch.testing.assert_close(to_torch(net, params)(X), net.forward(params, X))
    # the record's figures are those of the saved weights on the run's test set (as the CLI
    # loads it: digits, --seed 1, float32)
    from liftnet import get_method
    from liftnet.data import load_dataset
    from liftnet.methods import lifted_predict
    from liftnet.metrics import linear_share

    ds = load_dataset("digits", seed=1, dtype=torch.float32)
    assert rec["config"]["n_test"] == len(ds.X_test) == len(ds.y_test)
    assert rec["linear_share"] == linear_share(net, params, ds.X_test)
    # and its definition, independently: the share of (unit, test sample) pairs whose ReLU
    # pre-activation is > 0; pairs within rounding of 0 may go either way
    W, b = (t.double().numpy() for t in params[0])
    u = ds.X_test.double().numpy() @ W.T + b
    assert len(rec["linear_share"]) == 1 and 0 < rec["linear_share"][0] < 1
    ambiguous = int((abs(u) <= 1e-5 * (1 + abs(u).max())).sum())
    assert abs(rec["linear_share"][0] * u.size - int((u > 0).sum())) <= ambiguous + 1e-9
    # the lifted prediction rule (12) with the method's penalty and link weights
    method = get_method("lifted", lam=2.0)
    out_lifted, _ = lifted_predict(net, params, ds.X_test, penalty=method.penalty,
                                   lams=method.lams(net))
    lifted_acc = float((out_lifted.argmax(1) == ds.y_test).double().mean())
    assert rec["test_accuracy_lifted_rule"] == pytest.approx(lifted_acc, abs=1e-12)
    assert rec["test_accuracy_lifted_rule"] > 0.5  # ten classes: chance is 0.1


@pytest.mark.parametrize("argv,message", [
    (["--arch", "784-300-10"], "must start with 64"),
    (["--arch", "2x8x8-conv2k3-10", "--method", "fenchel"],
     "must start with 1x8x8 and end with 10"),  # an image architecture: the image's shape
    (["--lam", "-1"], "lam must be a finite number > 0, got -1.0"),
    (["--method", "backprop", "--lam", "1"], "--lam is not a hyperparameter of method backprop"),
    (["--epochs", "-2"], "--epochs must be >= 1"),
    (["--n-train", "0"], "n_train"),
    (["--method", "admm", "--loss", "ce"], "ADMM does not support loss 'ce'"),
    (["--method", "admm", "--loss", "mse", "--batch-size", "100"], "full data set only"),
    (["--method", "pbcd", "--loss", "mse", "--multiplier", "bregman"],
     "--multiplier is not a hyperparameter of method pbcd"),
    (["--init-from", "/nonexistent/model.pt"], "no saved model at /nonexistent/model.pt"),
    (["--device", "foo"], "--device 'foo': unknown device"),
    (["--device", "meta"], "liftnet trains on cpu, cuda or mps"),
    (["--epochs", "0"], "--epochs must be >= 1"),
    (["--seed", "-1"], "--seed must be >= 0"),
    (["--seed", str(2**64)], "--seed must be below 2**63"),
    (["--arch", "64--10"], "architecture must look like '784-300-10'"),
    (["--arch", "1x8x8-pool16-10", "--method", "fenchel"],
     "average pooling by 16 needs H and W divisible by 16, got input shape (1, 8, 8)"),
    (["--lam", "1e39"], "lam must be at most 1e+30"),
    (["--tol", "10"], "tol must be < 1 (a relative tolerance), got 10.0"),
    (["--method", "backprop", "--lr", "1e39"], "lr must be at most 1e+30"),
    (["--method", "backprop", "--lifted-rule"], "--lifted-rule applies to --method lifted only"),
    (["--out", ""], "--out: empty file name"),
    (["--arch", "2x4x8-conv4k3-10", "--method", "fenchel"],
     "digits images are 1x8x8; start the architecture with 1x8x8"),
    (["--method", "fenchel", "--lam", "2", "--lams", "1"], "--lam and --lams both given"),
    (["--method", "fenchel", "--gamma-out", "2", "--gammas", "1,1"],
     "--gamma-out and --gammas both given"),
])
def test_bad_input_gets_a_clear_error(argv, message, capsys):
    assert main(["train", "--quiet", "--epochs", "1", *argv]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("device, message", [
    ("cuda", "CUDA is not available"), ("cuda:3", "this machine has 2 CUDA device(s)"),
    ("mps", "MPS (Apple GPUs) is not available"), ("cpu:1", "there is one cpu device"),
])
@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_a_device_this_machine_lacks_is_a_clear_error(device, message, command, monkeypatch,
                                                      capsys, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: device != "cuda")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    extra = ["--model", str(tmp_path / "m.pt")] if command == "evaluate" else ["--epochs", "1"]
    assert main([command, "--device", device, *extra]) == 2
    assert message in capsys.readouterr().err


def test_out_dash_writes_the_json_record_alone_to_stdout(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a file named '-' would land here
    model = tmp_path / "m.pt"
    assert main(["train", "--quiet", "--epochs", "1", "--out", "-", "--save", str(model)]) == 0
    out, err = capsys.readouterr()
    record = json.loads(out)  # nothing but the record on stdout
    assert record["test_accuracy"] is not None and "test accuracy" in err
    assert main(["evaluate", "--model", "m.pt", "--out", "-"]) == 0
    out, err = capsys.readouterr()
    scores = json.loads(out)
    assert os.path.isabs(scores["model"]) and os.path.samefile(scores["model"], model)
    assert "accuracy" in err
    assert not (tmp_path / "-").exists()


@pytest.mark.parametrize("argv, flag", [
    (["train", "--epochs", "1", "--save", "-"], "--save -"),
    (["train", "--epochs", "1", "--checkpoint", "-"], "--checkpoint -"),
])
def test_a_binary_output_on_stdout_is_a_clear_error(argv, flag, capsys):
    assert main([*argv, "--quiet"]) == 2
    assert f"{flag}: the standard output takes only the JSON results" in capsys.readouterr().err


def test_export_to_stdout_is_a_clear_error(tmp_path, capsys):
    model = tmp_path / "m.pt"
    assert main(["train", "--quiet", "--epochs", "1", "--save", str(model)]) == 0
    capsys.readouterr()
    assert main(["export", "--model", str(model), "--out", "-"]) == 2
    assert "--out -: the standard output takes only" in capsys.readouterr().err


def test_missing_data_names_the_directory_and_files(tmp_path, capsys):
    assert main(["train", "--dataset", "mnist", "--data-dir", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "train-images-idx3-ubyte" in err


def test_output_paths_are_checked_before_training(tmp_path, capsys, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("trained before checking the output paths")

    monkeypatch.setattr("liftnet.cli.fit", no_training)
    base = ["train", "--quiet", "--epochs", "1"]
    assert main([*base, "--out", str(tmp_path)]) == 2
    assert f"--out {tmp_path} is a directory" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main([*base, "--save", str(blocker / "model.pt")]) == 2
    assert f"{blocker} is a file, not a directory" in capsys.readouterr().err
    same = tmp_path / "same.pt"
    assert main([*base, "--out", str(same), "--save", str(same)]) == 2
    assert "--out and --save name the same file" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_long_output_name_is_written(tmp_path):
    from liftnet.results import write_json

    long = tmp_path / ("a" * 245 + ".json")  # a valid name; the temp file's must be too
    write_json(long, {"ok": 1})
    assert json.loads(long.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == [long.name]


def test_output_through_a_symlink_updates_its_target(tmp_path):
    from liftnet.results import write_json

    store = tmp_path / "store"
    store.mkdir()
    (store / "run.json").write_text('{"old": 1}')
    link = tmp_path / "run.json"
    link.symlink_to(store / "run.json")
    assert write_json(link, {"new": 2}) == link
    assert link.is_symlink() and json.loads((store / "run.json").read_text()) == {"new": 2}
    dangling = tmp_path / "later.json"
    dangling.symlink_to(store / "later.json")
    write_json(dangling, {"ok": 1})
    assert dangling.is_symlink() and json.loads((store / "later.json").read_text()) == {"ok": 1}
    assert sorted(p.name for p in store.iterdir()) == ["later.json", "run.json"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need a POSIX system")
def test_output_to_a_named_pipe_is_written_into_the_pipe(tmp_path):
    """A target that is not a regular file (a pipe, /dev/stdout) is written in place: renaming
    a temporary file over it would replace the node (it once replaced /dev/null)."""
    import threading

    from liftnet.results import write_json

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    write_json(fifo, {"through": "pipe"})
    reader.join(timeout=30)
    assert json.loads(got[0]) == {"through": "pipe"}
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["pipe"]  # no temporary file left


def test_failed_write_leaves_existing_results_untouched(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run.json"
    out.write_text('{"keep": true}')

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("liftnet.results.os.replace", crash)  # fail after the temp file is written
    assert main(["train", "--quiet", "--epochs", "1", "--out", str(out)]) == 2
    assert f"cannot write {out}: disk full" in capsys.readouterr().err
    assert json.loads(out.read_text()) == {"keep": True}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temp file left behind


def test_model_meta_must_be_json(tmp_path):
    from liftnet import mlp

    net = mlp("3-2")
    params = net.init_params(generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="meta must be JSON-serialisable"):
        save_model(tmp_path / "m.pt", net, params, {"when": object()})
    assert not any(tmp_path.iterdir())


def test_non_finite_weights_are_not_saved_nor_loaded(tmp_path):
    from liftnet import mlp

    net = mlp("3-2-2")
    good = net.init_params(generator=torch.Generator().manual_seed(0))
    path = save_model(tmp_path / "m.pt", net, good)
    before = path.read_bytes()
    bad = [(W.clone(), b.clone()) for W, b in good]
    bad[1][1][0] = float("nan")
    with pytest.raises(ValueError, match="layer 1's biases contain NaN or infinite"):
        save_model(path, net, bad)
    assert path.read_bytes() == before  # the earlier checkpoint is intact
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]
    payload = torch.load(path, weights_only=True)
    payload["weights"][0][0, 0] = float("inf")  # a file damaged elsewhere
    torch.save(payload, path)
    with pytest.raises(ValueError, match="damaged liftnet model: layer 0's weights contain"):
        load_model(path)


def test_damaged_model_file_gets_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a readable liftnet model"):
        load_model(bad)
    bad.write_text("hello\n")  # torch's unpickler says only KeyError: '104'
    with pytest.raises(ValueError, match="not a file written by liftnet's save_model"):
        load_model(bad)
    bad.write_bytes(b"")
    with pytest.raises(ValueError, match="readable liftnet model: the file is empty or cut"):
        load_model(bad)
    bad.write_text('{"format": "liftnet-model/1"}')  # JSON, not a torch file
    with pytest.raises(ValueError, match="not a readable liftnet model") as info:
        load_model(bad)
    assert "weights_only" not in str(info.value)  # no advice to unpickle arbitrary code
    from liftnet import mlp

    net = mlp("3-2")
    path = save_model(tmp_path / "ok.pt", net, net.init_params())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"ok\.pt is truncated or corrupt") as info:
        load_model(path)
    assert "weights_only" not in str(info.value)


def test_init_from_a_saved_lifted_model(tmp_path, capsys):
    model = tmp_path / "lifted.pt"
    assert main(["train", "--method", "lifted", "--arch", "64-40-10", "--epochs", "2",
                 "--quiet", "--save", str(model)]) == 0
    net, params, _ = load_model(model)
    from liftnet.data import load_dataset

    ds = load_dataset("digits")
    lifted_acc = float((net.predict(params, ds.X_test) == ds.y_test).double().mean())
    # back-propagation with a vanishing learning rate keeps the lifted weights' accuracy
    out = tmp_path / "bp.json"
    assert main(["train", "--method", "backprop", "--arch", "64-40-10", "--epochs", "1",
                 "--lr", "1e-12", "--optimizer", "sgd", "--quiet", "--init-from", str(model),
                 "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["config"]["init_from"] == str(model)
    assert rec["test_accuracy"] == pytest.approx(lifted_acc)
    assert main(["train", "--method", "backprop", "--arch", "64-30-10", "--quiet",
                 "--init-from", str(model)]) == 2
    assert "the saved model is 64-40-10" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["admm", "pbcd"])
def test_splitting_baselines_run_from_the_cli(method, tmp_path):
    out = tmp_path / "run.json"
    assert main(["train", "--method", method, "--loss", "mse", "--arch", "64-40-10",
                 "--epochs", "12", "--batch-size", "0", "--quiet", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["method"] == method and rec["config"]["batch_size"] == 0
    assert len(rec["history"]) == 12
    assert rec["test_accuracy"] > 0.3  # 10 classes: chance is 0.1


def test_out_of_memory_is_a_clear_error_and_other_failures_are_not_hidden(tmp_path, monkeypatch,
                                                                         capsys):
    import liftnet.cli as cli

    out = tmp_path / "run.json"
    for exc in (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to "
                             "allocate 2880000000 bytes"), MemoryError()):
        def boom(args, exc=exc):
            raise exc

        monkeypatch.setattr(cli, "run_train", boom)
        assert main(["train", "--quiet", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert "liftnet: error: out of memory" in err and "--batch-size" in err
        assert "Traceback" not in err and not out.exists()

    def defect(args):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(cli, "run_train", defect)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        main(["train", "--quiet", "--out", str(out)])


def test_lenet5_flags_win_over_its_per_layer_defaults(tmp_path, data_dir):
    """--arch lenet5 starts from LENET5_DEFAULTS (per-layer lams and gammas); --lam, --gamma and
    --gamma-out given on the command line replace the entries they stand for."""
    out = tmp_path / "r.json"
    assert main(["train", "--method", "fenchel", "--arch", "lenet5", "--dataset", "mnist",
                 "--data-dir", str(data_dir), "--n-train", "40", "--epochs", "1",
                 "--batch-size", "40", "--max-inner", "2", "--lam", "2", "--gamma", "3",
                 "--gamma-out", "7", "--quiet", "--out", str(out)]) == 0
    config = json.loads(out.read_text())["config"]
    assert config["lam"] == 2.0 and config["lams"] is None
    assert config["gammas"] == [3.0, 3.0, 3.0, 3.0, 7.0]
    assert config["target_extrapolation"] == [300.0, 30.0, 1.0, 1.0]  # the rest stays



def test_validation_set_is_reported_and_evaluated_as_in_training(tmp_path, capsys):
    """--val-size: the record holds every epoch's validation accuracy, the last one, the best
    epoch with its test accuracy; --split val of `evaluate` scores the same held-out samples
    (with --n-train and --standardize), and a model trained without one is refused."""
    out, model = tmp_path / "run.json", tmp_path / "model.pt"
    assert main(["train", "--method", "backprop", "--dataset", "digits", "--arch", "64-20-10",
                 "--n-train", "600", "--val-size", "0.25", "--standardize", "--epochs", "4",
                 "--quiet", "--out", str(out), "--save", str(model)]) == 0
    rec = json.loads(out.read_text())
    assert rec["config"]["n_train"] == 450 and rec["config"]["n_val"] == 150
    vals = [h["val_accuracy"] for h in rec["history"]]
    assert rec["val_accuracy"] == vals[-1]
    best = rec["best_val"]
    assert best["val_accuracy"] == max(vals) and best["epoch"] == vals.index(max(vals)) + 1
    assert best["test_accuracy"] == rec["history"][best["epoch"] - 1]["test_accuracy"]
    assert "validation accuracy" in capsys.readouterr().out
    for split, expected in (("val", rec["val_accuracy"]), ("train", rec["train_accuracy"]),
                            ("test", rec["test_accuracy"])):
        scores = tmp_path / f"{split}.json"
        assert main(["evaluate", "--model", str(model), "--split", split,
                     "--out", str(scores)]) == 0
        got = json.loads(scores.read_text())
        assert got["accuracy"] == pytest.approx(expected, abs=1e-12), split
        assert got["n"] == {"val": 150, "train": 450, "test": 360}[split]
    plain = tmp_path / "plain.pt"
    assert main(["train", "--method", "backprop", "--dataset", "digits", "--arch", "64-20-10",
                 "--epochs", "1", "--quiet", "--save", str(plain)]) == 0
    assert "val_accuracy" not in json.dumps(load_model(plain)[2])
    assert main(["evaluate", "--model", str(plain), "--split", "val"]) != 0
    assert "was not trained with a validation set" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(model), "--split", "val", "--dataset",
                 "synthetic"]) == 2
    assert "the validation set is part of the training run's data set (digits)" in (
        capsys.readouterr().err)
    for bad, message in (("1.5", r"a share must lie in \(0, 1\), got 1.5"),
                         ("1.0", "write a count without a decimal point"),
                         ("x", "expected a count"),
                         ("0.0", r"or a share in \(0, 1\)"),
                         ("2000", "holds out 2000 of the 1437 training samples"),
                         ("2e3", "holds out 2000 of the 1437 training samples")):  # a count
        if bad in ("2000", "2e3"):  # load_dataset's check
            assert main(["train", "--dataset", "digits", "--epochs", "1", "--quiet",
                         "--val-size", bad]) == 2
        else:  # argparse's
            with pytest.raises(SystemExit):
                main(["train", "--dataset", "digits", "--epochs", "1", "--quiet",
                      "--val-size", bad])
        assert re.search(message, capsys.readouterr().err), bad


def test_early_stopping_saves_and_reports_the_best_validation_epoch(tmp_path, capsys):
    """--patience N: the run stops N epochs after its best validation accuracy; the record's
    accuracies, the saved model and `evaluate` are that epoch's; bad uses are refused."""
    out, model = tmp_path / "run.json", tmp_path / "model.pt"
    common = ["train", "--method", "lifted", "--dataset", "digits", "--arch", "64-30-10",
              "--val-size", "0.2", "--batch-size", "100", "--quiet"]
    assert main([*common, "--patience", "2", "--epochs", "40", "--lifted-rule",
                 "--out", str(out), "--save", str(model)]) == 0
    rec = json.loads(out.read_text())
    vals = [h["val_accuracy"] for h in rec["history"]]
    best = vals.index(max(vals)) + 1
    stop = rec["early_stopping"]
    assert stop == {"patience": 2, "min_delta": 0.0, "stopped_early": True,
                    "epochs_run": best + 2, "restored_epoch": best}
    assert len(vals) == best + 2 < 40
    chosen = rec["history"][best - 1]
    assert (rec["val_accuracy"], rec["test_accuracy"], rec["train_accuracy"]) == (
        chosen["val_accuracy"], chosen["test_accuracy"], chosen["train_accuracy"])
    assert f"stopped early after {best + 2} epochs, the model is epoch {best}'s" in (
        capsys.readouterr().out)
    # every figure of the record is the saved (best epoch's) weights'
    from liftnet import get_method
    from liftnet.data import load_dataset
    from liftnet.methods import lifted_predict
    from liftnet.metrics import linear_share

    net, params, _ = load_model(model)
    ds = load_dataset("digits", seed=0, dtype=torch.float32, val_size=0.2)
    assert rec["linear_share"] == linear_share(net, params, ds.X_test)
    method = get_method("lifted")
    out_lifted, _ = lifted_predict(net, params, ds.X_test, penalty=method.penalty,
                                   lams=method.lams(net))
    assert rec["test_accuracy_lifted_rule"] == pytest.approx(
        float((out_lifted.argmax(1) == ds.y_test).double().mean()), abs=1e-12)
    scores = tmp_path / "scores.json"
    for split, expected in (("val", chosen["val_accuracy"]), ("test", chosen["test_accuracy"])):
        assert main(["evaluate", "--model", str(model), "--split", split,
                     "--out", str(scores)]) == 0
        assert json.loads(scores.read_text())["accuracy"] == pytest.approx(expected, abs=1e-12)
    # the same run without --patience trains on and keeps its last weights
    assert main([*common, "--epochs", str(best + 2), "--out", str(out)]) == 0
    plain = json.loads(out.read_text())
    assert "early_stopping" not in plain
    assert plain["test_accuracy"] == rec["history"][-1]["test_accuracy"]
    # --min-delta: a gain must beat the best by more than D; 1.0 (all of the accuracy)
    # leaves only the first epoch as a gain, so the run stops after 1 + patience epochs
    assert main([*common, "--patience", "2", "--min-delta", "1", "--epochs", "40",
                 "--out", str(out)]) == 0
    stop = json.loads(out.read_text())["early_stopping"]
    assert stop["min_delta"] == 1.0 and stop["epochs_run"] == 3 and stop["stopped_early"]
    for args, message in ((["--patience", "0"], "--patience must be >= 1, got 0"),
                          (["--patience", "3"], "--patience (early stopping) needs a "
                                                "validation set: add --val-size"),
                          (["--min-delta", "0.01"], "--min-delta applies to early stopping"),
                          (["--patience", "2", "--min-delta", "-1"],
                           "--min-delta must be a finite number >= 0, got -1.0"),
                          (["--patience", "2", "--min-delta", "nan"],
                           "--min-delta must be a finite number >= 0, got nan")):
        argv = [a for a in common if a not in ("--val-size", "0.2")] if "3" in args else common
        assert main([*argv, "--epochs", "2", *args]) == 2
        assert message in capsys.readouterr().err


def _main_with_file_limit(argv, cwd, limit_bytes):
    """``liftnet.cli.main(argv)`` in a fresh interpreter whose files may not grow past
    ``limit_bytes`` (``ulimit -f``: writes fail with EFBIG, "File too large", as on a full
    disk); its exit code and stderr."""
    import subprocess
    import sys

    code = ("import resource, sys; "
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit_bytes}, "
            "resource.getrlimit(resource.RLIMIT_FSIZE)[1])); "
            f"from liftnet.cli import main; sys.exit(main({argv!r}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=cwd, timeout=300)
    return done.returncode, done.stderr


@pytest.mark.parametrize("flag, limit", [("--save", 2048), ("--checkpoint", 16384)])
def test_a_full_disk_is_a_write_error_and_keeps_the_old_file(flag, limit, tmp_path):
    """torch's zip writer turned the OSError of a full disk into a RuntimeError (a traceback
    for --save; "cannot checkpoint this training state" for --checkpoint): now serialised in
    memory first, the write failure names the file."""
    old = tmp_path / "old.pt"
    old.write_bytes(b"the previous file")
    code, err = _main_with_file_limit(
        ["train", "--arch", "64-20-10", "--epochs", "1", "--quiet", flag, "old.pt"],
        tmp_path, limit)  # the model (8 kB) and the checkpoint (> 100 kB) are larger
    assert code == 2, err[-2000:]
    assert err.strip() == "liftnet: error: cannot write old.pt: File too large"
    assert old.read_bytes() == b"the previous file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.pt"]  # no temporary file left


@pytest.mark.parametrize("argv", [
    ["--method", "fenchel", "--extrapolation", "0.9"],  # fenchel's default: batches of 500
    ["--method", "fenchel", "--extrapolation", "0.5", "--batch-size", "100"],
])
def test_extrapolation_with_batches_is_refused(argv, capsys):
    assert main(["train", "--epochs", "1", "--quiet", *argv]) == 2
    err = capsys.readouterr().err
    assert ("liftnet: error: --extrapolation applies to the full data set (--batch-size 0)"
            in err and "see --target-extrapolation" in err)


def test_extrapolation_on_the_full_data_set_is_accepted(tmp_path):
    out = tmp_path / "run.json"
    for batch_size in ("0", "5000"):  # 5000 >= the training set: the full data set too
        assert main(["train", "--method", "fenchel", "--extrapolation", "0.5", "--arch",
                     "64-10-10", "--n-train", "100", "--epochs", "1", "--batch-size",
                     batch_size, "--quiet", "--out", str(out)]) == 0
        assert json.loads(out.read_text())["config"]["extrapolation"] == 0.5


@pytest.mark.parametrize("argv, given", [
    (["train", "--epochs", "1", "--quiet", "--out", "{tmp}/results/"], "--out {tmp}/results/"),
    (["train", "--epochs", "1", "--quiet", "--save", "{tmp}/models/"], "--save {tmp}/models/"),
    (["train", "--epochs", "1", "--quiet", "--checkpoint", "{tmp}/ckdir/"],
     "--checkpoint {tmp}/ckdir/"),
    (["evaluate", "--model", "{tmp}/m.pt", "--out", "{tmp}/results/"], "--out {tmp}/results/"),
    (["export", "--model", "{tmp}/m.pt", "--out", "{tmp}/results/"], "--out {tmp}/results/"),
])
def test_an_output_path_ending_in_a_slash_names_a_directory(argv, given, tmp_path, capsys):
    from liftnet import mlp

    net = mlp("64-5-10")
    save_model(tmp_path / "m.pt", net, net.init_params(), {"dataset": "digits"})
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err == (f"liftnet: error: {given.format(tmp=tmp_path)} names a directory; give a "
                   "file name\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]  # no file "results" made


def test_ctrl_c_during_training_is_one_line(tmp_path, monkeypatch, capsys):
    import liftnet.cli as cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    def run(argv):
        try:
            return main(argv)
        except KeyboardInterrupt:  # not to stop the test session
            pytest.fail("Ctrl-C escaped liftnet's main with a traceback")

    monkeypatch.setattr(cli, "fit", interrupted)
    argv = ["train", "--arch", "64-5-10", "--epochs", "1", "--quiet"]
    assert run(argv) == 130
    assert capsys.readouterr().err == "liftnet: interrupted\n"
    ck = tmp_path / "run.ckpt"
    ck.write_bytes(b"an earlier epoch's checkpoint")
    assert run([*argv, "--checkpoint", str(ck)]) == 130
    assert capsys.readouterr().err == ("liftnet: interrupted; rerun with --resume to continue "
                                       f"from the last checkpoint ({ck})\n")


def test_written_files_are_ordinary_files_and_strict_json(tmp_path, monkeypatch):
    """Results, models and exported programs get the permissions of an ordinary new file
    (mkstemp's 0600 would hide them from other users), NaN and infinities become null (strict
    JSON), and an interrupted write leaves only the old file (no temporary behind)."""
    from liftnet import mlp
    from liftnet.results import atomic_write, write_json
    from liftnet.transfer import export_program

    old = os.umask(0o022)
    try:
        net = mlp("4-3-2")
        params = net.init_params(generator=torch.Generator().manual_seed(0))
        for path in (write_json(tmp_path / "r.json", {"a": float("nan"), "b": [float("inf")]}),
                     save_model(tmp_path / "m.pt", net, params),
                     export_program(net, params, tmp_path / "m.pt2")):
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o644, path
    finally:
        os.umask(old)
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": None, "b": [None]}

    def interrupted(fh):
        fh.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "r.json", interrupted)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt", "m.pt2", "r.json"]
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": None, "b": [None]}


# Review 34 (mutation audit of cli.py): flag parsing, output files named twice, options that
# must reach the data loader, defaults, evaluate on other data, error lines.

@pytest.mark.parametrize("text, value", [
    ("yes", True), ("on", True), ("TRUE", True), ("1", True),
    ("no", False), ("off", False), ("False", False), ("0", False),
])
def test_bool_flag_spellings_reach_the_method(text, value, tmp_path, capsys):
    """--bias (ADMM's bool) takes 1/true/yes/on and 0/false/no/off in any
    case, and the value reaches the method (argparse's type=bool would make 'false' True)."""
    out = tmp_path / "r.json"
    assert main(["train", "--method", "admm", "--loss", "mse", "--arch", "64-10-10",
                 "--epochs", "1", "--quiet", "--bias", text, "--out", str(out)]) == 0, \
        capsys.readouterr().err
    assert json.loads(out.read_text())["config"]["bias"] is value


def test_flag_types_from_annotations_that_cannot_be_resolved(registries, tmp_path, capsys):
    """a registered method whose annotations get_type_hints cannot resolve (a name
    only known to a type checker) still gets float and bool flags from the annotations' text:
    'float | None' is a float, 'bool' a bool."""
    @dataclass(frozen=True)
    class Unresolved(Backprop):
        shrink: float | None = None
        damped: bool = False
        helper: NameOnlyATypeCheckerKnows | None = None  # noqa: F821
        key: ClassVar[str] = "unresolved_backprop"

    register_method(Unresolved)
    out = tmp_path / "r.json"
    assert main(["train", "--method", "unresolved_backprop", "--arch", "64-10-10",
                 "--epochs", "1", "--quiet", "--shrink", "0.5", "--damped", "yes",
                 "--out", str(out)]) == 0, capsys.readouterr().err
    config = json.loads(out.read_text())["config"]
    assert config["shrink"] == 0.5 and isinstance(config["shrink"], float)
    assert config["damped"] is True
    assert main(["train", "--method", "unresolved_backprop", "--arch", "64-10-10",
                 "--epochs", "1", "--quiet", "--damped", "off", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["config"]["damped"] is False


@pytest.mark.parametrize("text, value", [("1e0", 1), ("1", 1), ("5e3", 5000), ("2E1", 20),
                                         ("0.25", 0.25), ("1e-1", 0.1)])
def test_val_size_counts_written_as_floats_are_counts(text, value):
    """a count written in float notation (1e0, 5e3) is that integer count; a share
    stays a float."""
    from liftnet.cli import build_parser

    got = build_parser().parse_args(["train", "--val-size", text]).val_size
    assert got == value and type(got) is type(value)


def _npz(path, regression=False, n=120, d=64, k=10, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    X = rng.random((n, d)).astype("float32")
    y = rng.random(n).astype("float32") if regression else rng.integers(0, k, n)
    np.savez(path, X_train=X[:100], y_train=y[:100], X_test=X[100:], y_test=y[100:])
    return path


@pytest.mark.parametrize("second", ["./same.pt", "{tmp}/same.pt", "link.pt"])
def test_out_and_save_naming_one_file_in_two_spellings_is_refused(second, tmp_path,
                                                                  monkeypatch, capsys):
    """the same-file check resolves paths (relative/absolute, symbolic links), not text."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "link.pt").symlink_to(tmp_path / "same.pt")
    assert main(["train", "--arch", "64-5-10", "--epochs", "1", "--quiet", "--out", "same.pt",
                 "--save", second.format(tmp=tmp_path)]) == 2
    assert "--out and --save name the same file" in capsys.readouterr().err
    assert not (tmp_path / "same.pt").exists()


def test_save_naming_the_init_from_model_in_another_spelling_is_refused(tmp_path, monkeypatch,
                                                                         capsys):
    """--save ./m.pt with --init-from m.pt would destroy the starting weights."""
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--arch", "64-5-10", "--epochs", "1", "--quiet", "--save",
                 "m.pt"]) == 0
    before = (tmp_path / "m.pt").read_bytes()
    assert main(["train", "--arch", "64-5-10", "--epochs", "1", "--quiet", "--init-from",
                 "m.pt", "--save", "./m.pt"]) == 2
    assert "--save names the --init-from model" in capsys.readouterr().err
    assert (tmp_path / "m.pt").read_bytes() == before


@pytest.mark.parametrize("flag", ["--out", "--save", "--checkpoint"])
def test_an_output_naming_the_dataset_file_is_refused(flag, tmp_path, capsys):
    """an output that names the --dataset .npz file would destroy the data."""
    data = _npz(tmp_path / "data.npz")
    before = data.read_bytes()
    assert main(["train", "--dataset", str(data), "--arch", "64-5-10", "--epochs", "1",
                 "--quiet", flag, str(data)]) == 2
    assert f"{flag} names the --dataset file" in capsys.readouterr().err
    assert data.read_bytes() == before


def test_infinite_min_delta_is_refused(capsys):
    """--min-delta must be finite (inf would make no epoch a gain)."""
    assert main(["train", "--arch", "64-5-10", "--epochs", "2", "--quiet", "--val-size", "0.2",
                 "--patience", "1", "--min-delta", "inf"]) == 2
    assert "--min-delta must be a finite number >= 0, got inf" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--seed"])  # (--epochs 2**63 under the mutant trains ~forever)
def test_two_to_the_63_is_refused(flag, capsys):
    """the bound is exclusive: 2**63 itself does not fit a signed 64-bit seed/count."""
    argv = ["train", "--arch", "64-5-10", "--quiet", "--epochs", "1", flag, str(2**63)]
    assert main(argv) == 2
    assert f"{flag} must be below 2**63, got {2**63}" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_download_and_data_dir_reach_load_dataset(command, tmp_path, monkeypatch):
    """--download and --data-dir are passed to load_dataset by both
    commands (digits ignores them, so the call itself is checked)."""
    import liftnet.cli as cli
    from liftnet import mlp, save_model

    calls = []
    real = cli.datamod.load_dataset

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(cli.datamod, "load_dataset", spy)
    if command == "train":
        argv = ["train", "--arch", "64-5-10", "--epochs", "1", "--quiet"]
    else:
        net = mlp("64-5-10")
        save_model(tmp_path / "m.pt", net, net.init_params(), {"dataset": "digits"})
        argv = ["evaluate", "--model", str(tmp_path / "m.pt")]
    assert main([*argv, "--download", "--data-dir", str(tmp_path)]) == 0
    assert calls[-1]["download"] is True and calls[-1]["data_dir"] == str(tmp_path)
    assert main(argv) == 0
    assert calls[-1]["download"] is False and calls[-1]["data_dir"] is None


def test_evaluate_reads_the_data_from_data_dir(tmp_path, capsys):
    """evaluate --data-dir EMPTY for an MNIST model names that folder (it must not fall
    back to $LIFTNET_DATA)."""
    from liftnet import mlp, save_model

    net = mlp("784-5-10")
    save_model(tmp_path / "m.pt", net, net.init_params(), {"dataset": "mnist"})
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["evaluate", "--model", str(tmp_path / "m.pt"), "--data-dir", str(empty)]) == 2
    assert str(empty) in capsys.readouterr().err


def test_lifted_rule_on_a_regression_is_refused(tmp_path, capsys):
    """--lifted-rule scores an accuracy; on float targets it is an error, not a no-op."""
    data = _npz(tmp_path / "reg.npz", regression=True)
    assert main(["train", "--dataset", str(data), "--loss", "mse", "--arch", "64-5-1",
                 "--epochs", "1", "--quiet", "--lifted-rule"]) == 2
    assert "--lifted-rule scores a classification accuracy" in capsys.readouterr().err


def test_auto_arch_is_inputs_300_classes(tmp_path):
    """--arch auto (the default) is <inputs>-300-<classes> (--help)."""
    out = tmp_path / "r.json"
    assert main(["train", "--epochs", "1", "--quiet", "--n-train", "100",
                 "--out", str(out)]) == 0
    assert json.loads(out.read_text())["arch"] == "64-300-10"


@pytest.mark.parametrize("arch", ["64-40-11", "64-40-9"])
def test_an_architecture_with_the_wrong_output_width_is_refused(arch, capsys):
    """digits has 10 classes: 64-40-11 (an output no label uses) and 64-40-9 are
    refused before training, naming both ends."""
    assert main(["train", "--arch", arch, "--epochs", "1", "--quiet"]) == 2
    assert "must start with 64 and end with 10" in capsys.readouterr().err


def test_init_from_a_model_of_other_hidden_activations_is_refused(tmp_path, capsys):
    """the same widths with other hidden activations are another network."""
    model = tmp_path / "relu.pt"
    assert main(["train", "--arch", "64-5-10", "--epochs", "1", "--quiet",
                 "--save", str(model)]) == 0
    assert main(["train", "--method", "backprop", "--activation", "tanh", "--arch", "64-5-10",
                 "--epochs", "1", "--quiet", "--init-from", str(model)]) == 2
    assert "hidden activations ['relu']" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["lifted", "backprop", "fenchel"])
def test_epochs_and_batch_size_default_to_the_methods(method, tmp_path):
    """without --epochs/--batch-size the method's defaults are used and recorded."""
    from liftnet.methods import METHODS

    out = tmp_path / "r.json"
    assert main(["train", "--method", method, "--arch", "64-5-10", "--n-train", "100",
                 "--quiet", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    cls = METHODS[method]
    assert rec["config"]["epochs"] == cls.default_epochs == len(rec["history"])
    assert rec["config"]["batch_size"] == cls.default_batch_size


def test_progress_bar_unless_quiet(capsys):
    """without --quiet a progress bar is drawn on stderr; --quiet draws none."""
    argv = ["train", "--arch", "64-5-10", "--epochs", "1"]
    assert main(argv) == 0
    assert "lifted 64-5-10" in capsys.readouterr().err
    assert main([*argv, "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_float64_run_is_recorded_and_evaluated_in_float64(tmp_path):
    """--dtype float64 is recorded in the config, and evaluate scores in float64."""
    out, model, scores = tmp_path / "r.json", tmp_path / "m.pt", tmp_path / "s.json"
    assert main(["train", "--dtype", "float64", "--arch", "64-5-10", "--epochs", "1",
                 "--quiet", "--out", str(out), "--save", str(model)]) == 0
    assert json.loads(out.read_text())["config"]["dtype"] == "float64"
    assert main(["evaluate", "--model", str(model), "--out", str(scores)]) == 0
    assert json.loads(scores.read_text())["dtype"] == "float64"


def _saved(tmp_path, name, meta, spec="64-5-10", dtype=torch.float32):
    from liftnet import mlp, save_model

    net = mlp(spec)
    params = [(W.to(dtype), b.to(dtype)) for W, b in
              net.init_params(generator=torch.Generator().manual_seed(0))]
    return save_model(tmp_path / name, net, params, meta)


def test_evaluate_ignores_a_config_that_is_not_a_mapping(tmp_path, capsys):
    """a model saved from Python may hold any JSON in meta['config']: a list is ignored."""
    model = _saved(tmp_path, "m.pt", {"dataset": "digits", "config": [1, 2]})
    assert main(["evaluate", "--model", str(model)]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("seed", [True, -1])
def test_evaluate_refuses_a_saved_seed_that_is_not_a_count(seed, tmp_path, capsys):
    """the saved config's seed must be a non-negative integer (not a bool)."""
    model = _saved(tmp_path, "m.pt", {"dataset": "digits", "config": {"seed": seed}})
    assert main(["evaluate", "--model", str(model)]) == 2
    assert "the saved training config's seed must be a non-negative integer" in (
        capsys.readouterr().err)


@pytest.mark.parametrize("command, message", [
    ("evaluate", "--out names the data file"), ("export", "--out names the model's data file")])
def test_out_naming_the_models_data_file_is_refused(command, message, tmp_path, capsys):
    """evaluate / export --out DATA.npz (the file the model was trained on) would overwrite
    the data with the scores or the program: refused, the file unchanged."""
    data = _npz(tmp_path / "data.npz")
    before = data.read_bytes()
    model = _saved(tmp_path, "m.pt", {"dataset": str(data)})
    assert main([command, "--model", str(model), "--out", str(data)]) == 2
    assert message in capsys.readouterr().err
    assert data.read_bytes() == before


def test_evaluate_on_another_data_set_is_not_standardised_by_default(tmp_path, capsys):
    """a model trained on standardised synthetic data, scored on digits, is scored on
    digits as they are (record standardize false) with a warning."""
    model = _saved(tmp_path, "m.pt", {"dataset": "synthetic", "config": {"standardize": True}})
    scores = tmp_path / "s.json"
    assert main(["evaluate", "--model", str(model), "--dataset", "digits",
                 "--out", str(scores)]) == 0
    assert json.loads(scores.read_text())["standardize"] is False
    assert "warning" in capsys.readouterr().err


def test_evaluate_on_another_data_set_uses_none_of_the_runs_seed_or_subset(tmp_path):
    """the run's seed and training subset belong to its own data set: another one
    (synthetic, drawn by its seed) is loaded as load_dataset's default (seed 0, all of it)."""
    from liftnet import load_model
    from liftnet.data import load_dataset
    from liftnet.metrics import evaluate

    model = _saved(tmp_path, "m.pt", {"dataset": "digits",
                                      "config": {"seed": 5, "n_train": 300}}, spec="20-5-4")
    net, params, _ = load_model(model)
    ds = load_dataset("synthetic")
    for split, X, y in (("train", ds.X_train, ds.y_train), ("test", ds.X_test, ds.y_test)):
        scores = tmp_path / f"{split}.json"
        assert main(["evaluate", "--model", str(model), "--dataset", "synthetic", "--split",
                     split, "--out", str(scores)]) == 0
        rec = json.loads(scores.read_text())
        expected = evaluate(net, params, X, y)
        assert rec["n"] == len(X)
        assert rec["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-12)
        assert rec["loss"] == pytest.approx(expected["loss"], rel=1e-6)


def test_evaluate_a_python_saved_float64_model_in_float64(tmp_path):
    """no dtype in the meta: the weights' own dtype is used."""
    model = _saved(tmp_path, "m.pt", {"dataset": "digits"}, dtype=torch.float64)
    scores = tmp_path / "s.json"
    assert main(["evaluate", "--model", str(model), "--out", str(scores)]) == 0
    assert json.loads(scores.read_text())["dtype"] == "float64"


def test_evaluate_record_names_the_method(tmp_path):
    """the scores record carries the saved model's method."""
    model = _saved(tmp_path, "m.pt", {"dataset": "digits", "method": "fenchel"})
    scores = tmp_path / "s.json"
    assert main(["evaluate", "--model", str(model), "--out", str(scores)]) == 0
    assert json.loads(scores.read_text())["method"] == "fenchel"


def test_export_reports_a_float64_models_dtype(tmp_path, capsys):
    """the export line names the dtype the program takes."""
    model = _saved(tmp_path, "m.pt", {"dataset": "digits"}, dtype=torch.float64)
    assert main(["export", "--model", str(model), "--out", str(tmp_path / "m.pt2")]) == 0
    assert "dtype torch.float64" in capsys.readouterr().out


def test_train_report_lines(tmp_path, capsys):
    """the printed summaries: the lifted rule's accuracy; 'ran N epochs' when
    early stopping did not stop; evaluate's sample count."""
    assert main(["train", "--arch", "64-5-10", "--epochs", "1", "--quiet",
                 "--lifted-rule"]) == 0
    assert "test accuracy (lifted rule) " in capsys.readouterr().out
    assert main(["train", "--arch", "64-5-10", "--epochs", "2", "--quiet", "--val-size", "0.2",
                 "--patience", "5"]) == 0
    out = capsys.readouterr().out
    assert "; ran 2 epochs, the model is epoch" in out and "stopped early" not in out
    model = _saved(tmp_path, "m.pt", {"dataset": "digits"})
    assert main(["evaluate", "--model", str(model)]) == 0
    assert "(360 samples)" in capsys.readouterr().out


def test_options_without_the_train_command_train(tmp_path):
    """`liftnet --epochs 1 ...` is `liftnet train --epochs 1 ...`."""
    out = tmp_path / "r.json"
    assert main(["--arch", "64-5-10", "--epochs", "1", "--quiet", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["arch"] == "64-5-10"


def test_help_lists_the_commands(capsys):
    """`liftnet --help` is the program's help, naming the three commands."""
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "{train,evaluate,export}" in capsys.readouterr().out


def test_a_diverging_run_is_a_one_line_error(capsys):
    """a FloatingPointError (the objective became nan) is an error line, exit 2."""
    assert main(["train", "--method", "backprop", "--optimizer", "sgd", "--lr", "1e20",
                 "--arch", "64-50-10", "--epochs", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "liftnet: error: backprop: the objective became nan" in err
    assert "Traceback" not in err


def test_a_failed_plugin_file_can_be_fixed_and_loaded_again(registries, tmp_path, capsys):
    """a plugin that failed to import is forgotten, so that a later main() in the same
    process imports the fixed file."""
    plugin = tmp_path / "later_fixed.py"
    plugin.write_text("raise RuntimeError('not yet')\n")
    argv = ["train", "--plugin", str(plugin), "--quiet", "--arch", "64-5-10", "--epochs", "1"]
    assert main(argv) == 2
    assert "RuntimeError: not yet" in capsys.readouterr().err
    plugin.write_text(
        "from dataclasses import dataclass\nfrom typing import ClassVar\n"
        "from liftnet import Backprop, register_method\n"
        "@dataclass(frozen=True)\nclass Later(Backprop):\n"
        "    key: ClassVar[str] = 'later_fixed'\n"
        "register_method(Later)\n")
    assert main([*argv, "--method", "later_fixed"]) == 0, capsys.readouterr().err


def test_evaluate_out_naming_a_plugin_file_is_refused(registries, tmp_path, capsys):
    """like train and export, evaluate refuses an --out that names a --plugin's source."""
    copy = tmp_path / "plugin_copy.py"
    copy.write_text("SOURCE = 1\n")
    model = _saved(tmp_path, "m.pt", {"dataset": "digits"})
    assert main(["evaluate", "--plugin", str(copy), "--model", str(model),
                 "--out", str(copy)]) == 2
    assert "names the --plugin file" in capsys.readouterr().err
    assert copy.read_text() == "SOURCE = 1\n"


def test_out_naming_a_plugin_file_in_another_spelling_is_refused(registries, tmp_path,
                                                                  monkeypatch, capsys):
    """the plugin check resolves paths too (./p.py and p.py are one file)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p_copy.py").write_text("SOURCE = 1\n")
    assert main(["train", "--plugin", "p_copy.py", "--out", "./p_copy.py", "--quiet",
                 "--arch", "64-5-10", "--epochs", "1"]) == 2
    assert "names the --plugin file" in capsys.readouterr().err
    assert (tmp_path / "p_copy.py").read_text() == "SOURCE = 1\n"


def test_validation_split_of_a_data_file_through_a_symlink(tmp_path, capsys):
    """the data file named through a symbolic link is the run's data set: --split val
    works and scores the run's validation accuracy."""
    data = _npz(tmp_path / "data.npz", n=300)
    (tmp_path / "link.npz").symlink_to(data)
    out, model, scores = tmp_path / "r.json", tmp_path / "m.pt", tmp_path / "s.json"
    assert main(["train", "--dataset", str(data), "--arch", "64-5-10", "--epochs", "1",
                 "--val-size", "20", "--quiet", "--out", str(out), "--save", str(model)]) == 0
    assert main(["evaluate", "--model", str(model), "--dataset", str(tmp_path / "link.npz"),
                 "--split", "val", "--out", str(scores)]) == 0, capsys.readouterr().err
    assert json.loads(scores.read_text())["accuracy"] == pytest.approx(
        json.loads(out.read_text())["val_accuracy"], abs=1e-12)


def test_seed_defaults_to_zero(tmp_path):
    """without --seed the run is --seed 0's (README, --help), recorded as 0."""
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    argv = ["train", "--arch", "64-5-10", "--epochs", "1", "--quiet", "--n-train", "300"]
    assert main([*argv, "--out", str(a)]) == 0
    assert main([*argv, "--seed", "0", "--out", str(b)]) == 0
    ra, rb = json.loads(a.read_text()), json.loads(b.read_text())
    assert ra["config"]["seed"] == 0
    assert ra["test_accuracy"] == rb["test_accuracy"]
    assert ra["history"][0]["objective"] == rb["history"][0]["objective"]


def test_best_val_is_the_first_of_tied_epochs(tmp_path):
    """best_val is the FIRST epoch of the highest validation accuracy (README): with a
    vanishing learning rate every epoch ties."""
    out = tmp_path / "r.json"
    assert main(["train", "--method", "backprop", "--optimizer", "sgd", "--lr", "1e-12",
                 "--arch", "64-5-10", "--epochs", "3", "--val-size", "0.2", "--quiet",
                 "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    vals = [h["val_accuracy"] for h in rec["history"]]
    assert len(set(vals)) == 1  # the premise: a tie
    assert rec["best_val"]["epoch"] == 1


def test_missing_cvxpy_is_an_error_line_and_other_import_errors_propagate(monkeypatch,
                                                                           capsys):
    """the ImportError of the optional cvxpy is one error line (exit 2); any other
    ImportError is a defect and propagates as itself."""
    import liftnet.cli as cli
    from liftnet.convex.solve import CVXPY_MISSING

    def missing(args):
        raise ImportError(CVXPY_MISSING)

    monkeypatch.setattr(cli, "run_train", missing)
    assert main(["train", "--quiet"]) == 2
    assert capsys.readouterr().err == f"liftnet: error: {CVXPY_MISSING}\n"

    def broken(args):
        raise ImportError("cannot import name 'x' from 'y'")

    monkeypatch.setattr(cli, "run_train", broken)
    with pytest.raises(ImportError, match="cannot import name"):
        main(["train", "--quiet"])


def test_regression_best_val_is_the_first_of_tied_epochs(tmp_path):
    """for a regression best_val is the FIRST epoch of the lowest validation loss."""
    data = _npz(tmp_path / "reg.npz", regression=True, n=200)
    out = tmp_path / "r.json"
    assert main(["train", "--dataset", str(data), "--loss", "mse", "--method", "backprop",
                 "--optimizer", "sgd", "--lr", "1e-30", "--arch", "64-5-1", "--epochs", "3",
                 "--val-size", "20", "--quiet", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert len({h["val_loss"] for h in rec["history"]}) == 1  # the premise: a tie
    assert rec["best_val"]["epoch"] == 1


def test_an_ambiguous_abbreviation_of_plugin_is_argparses_error(capsys):
    """``--p`` could be --patience, --penalty, --plugin, ...: argparse's "ambiguous option",
    and nothing imported; an abbreviation that names --plugin only is still --plugin."""
    with pytest.raises(SystemExit):
        main(["train", "--p", "3", "--epochs", "1", "--quiet"])
    err = capsys.readouterr().err
    assert "ambiguous option: --p" in err and "--plugin 3" not in err
    assert main(["train", "--plu", "no_such_module_x", "--epochs", "1", "--quiet"]) == 2
    assert "--plugin no_such_module_x: ModuleNotFoundError" in capsys.readouterr().err


@pytest.mark.parametrize("method,loss", [("admm", "mse"), ("pbcd", "mse"), ("lifted", "ce")])
def test_the_default_loss_is_the_methods(method, loss, tmp_path, capsys):
    """Without --loss, cross-entropy where the method supports it and the squared loss on
    one-hot targets otherwise (as the estimator chooses), instead of refusing the default."""
    out = tmp_path / "run.json"
    assert main(["train", "--quiet", "--method", method, "--epochs", "1", "--n-train", "300",
                 "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["config"]["loss"] == loss  # and still a classification, scored by accuracy
    assert 0.0 <= rec["test_accuracy"] <= 1.0 and rec["arch"].endswith("-10")
    assert main(["train", "--quiet", "--method", "admm", "--loss", "ce", "--epochs", "1"]) == 2
    assert "ADMM does not support loss 'ce' (supports: mse)" in capsys.readouterr().err


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_an_output_folder_that_refuses_files_is_an_error_before_training(capsys):
    """/proc passes os.access for root, but no file can be made there: refused at once (the
    run's results would otherwise be lost after training)."""
    assert main(["train", "--quiet", "--epochs", "1", "--out", "/proc/liftnet.json"]) == 2
    err = capsys.readouterr().err
    assert "cannot create a file in /proc" in err and "accuracy" not in err


def test_help_with_a_method_lists_that_methods_options_and_defaults(capsys):
    """`train --method NAME --help` lists NAME's hyperparameters with NAME's defaults and its
    default epochs and batch size; plain `train --help` lists every method's."""
    with pytest.raises(SystemExit) as stop:
        main(["train", "--method", "pbcd", "--help"])
    assert stop.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "hyperparameters of method pbcd:" in out
    assert "--alpha ALPHA of pbcd (default 5.0)" in out
    assert "--lam " not in out and "lifted (default" not in out
    pbcd = METHODS["pbcd"]
    assert f"(pbcd: {pbcd.default_epochs})" in out
    assert f"(pbcd: {pbcd.default_batch_size})" in out
    with pytest.raises(SystemExit):
        main(["train", "--method=fenchel", "-h"])
    out = " ".join(capsys.readouterr().out.split())
    assert "hyperparameters of method fenchel:" in out and "--target-extrapolation" in out
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "method hyperparameters (default: the method's):" in out
    assert "--lam LAM of" in out and "--alpha ALPHA of pbcd" in out


def test_init_from_a_model_of_other_input_scaling_warns(tmp_path, capsys):
    """A model trained on standardised inputs as the start of a run on raw inputs (or the
    reverse) starts its first layer on inputs of another scale: a warning, not an error (it
    may be meant); the same scaling, or a model saved from Python without a record, none."""
    std, raw = tmp_path / "std.pt", tmp_path / "raw.pt"
    for path, flags in ((std, ["--standardize"]), (raw, [])):
        assert main(["train", "--quiet", "--epochs", "1", "--save", str(path), *flags]) == 0
    capsys.readouterr()
    for start, flags, warned in ((std, [], True), (raw, ["--standardize"], True),
                                 (std, ["--standardize"], False), (raw, [], False)):
        assert main(["train", "--quiet", "--method", "backprop", "--epochs", "1",
                     "--init-from", str(start), *flags]) == 0
        err = capsys.readouterr().err
        assert ("inputs of another scale" in err) is warned, (start, flags)
    net, params, _ = load_model(std)
    save_model(tmp_path / "plain.pt", net, params)
    assert main(["train", "--quiet", "--method", "backprop", "--epochs", "1", "--init-from",
                 str(tmp_path / "plain.pt"), "--standardize"]) == 0
    assert "another scale" not in capsys.readouterr().err


def test_a_batch_only_hyperparameter_on_the_full_data_set_is_named_as_ignored(capsys):
    """lifted's gamma (a proximal term between mini-batches) does nothing in full-batch
    training: the run goes on, with a warning; with batches, or not given, no warning."""
    for argv, warned in ((["--gamma", "1e6"], True), (["--gamma", "1e6", "--batch-size", "100"],
                                                      False), ([], False)):
        assert main(["train", "--quiet", "--epochs", "1", *argv]) == 0
        err = capsys.readouterr().err
        assert ("--gamma acts between mini-batches only; lifted on the full data set ignores "
                "it" in err) is warned, argv


def test_fewer_training_samples_than_processes_is_named_before_any_process_group(
        monkeypatch, capsys):
    """Under torchrun (WORLD_SIZE set) a training set smaller than the number of processes
    leaves a shard empty: one clear error on every process, before the process group (which
    the processes would otherwise wait in)."""
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert main(["train", "--quiet", "--epochs", "1", "--n-train", "2"]) == 2
    assert "2 training samples for 3 processes: each process trains on its shard" in \
        capsys.readouterr().err
