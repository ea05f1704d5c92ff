"""The command line: JSON contract, saved models, clear errors."""

from __future__ import annotations

import json
import os
import re
import stat

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
    ("mps", "MPS (Apple GPUs) is not available"),
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
