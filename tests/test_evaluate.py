"""Scoring and exporting saved models: metrics.evaluate, transfer.export_program and the
``liftnet evaluate`` / ``liftnet export`` commands."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zipfile

import pytest
import torch
import torch.nn.functional as F

from liftnet import save_model, to_torch
from liftnet.cli import main
from liftnet.graph import network
from liftnet.methods.base import start_params
from liftnet.metrics import evaluate
from liftnet.transfer import export_program


def _model(spec="6-5-3", loss="ce", seed=0):
    net = network(spec, loss=loss)
    params = start_params(net, torch.zeros(2, net.sizes[0]), None,
                          generator=torch.Generator().manual_seed(seed), scheme="xavier",
                          bias=0.1)
    return net, params


def test_evaluate_against_torch_and_counts():
    net, params = _model()
    g = torch.Generator().manual_seed(1)
    X, y = torch.randn(40, 6, generator=g), torch.randint(0, 3, (40,), generator=g)
    rec = evaluate(net, params, X, y)
    logits = to_torch(net, params)(X).detach()
    assert rec["n"] == 40
    assert rec["loss"] == pytest.approx(float(F.cross_entropy(logits.double(), y)), rel=1e-6)
    assert rec["accuracy"] == pytest.approx(float((logits.argmax(1) == y).double().mean()))
    confusion = torch.tensor(rec["confusion"])
    assert confusion.sum() == 40 and confusion.diagonal().sum() == round(40 * rec["accuracy"])
    for true, pred in zip(y.tolist(), logits.argmax(1).tolist(), strict=True):
        assert confusion[true, pred] >= 1
    assert confusion.sum(1).tolist() == torch.bincount(y, minlength=3).tolist()


def test_evaluate_squared_loss_with_labels_and_with_targets():
    net, params = _model(loss="mse")
    X = torch.randn(10, 6, generator=torch.Generator().manual_seed(2))
    out = net.forward(params, X).detach()
    y = torch.arange(10) % 3
    rec = evaluate(net, params, X, y)
    assert rec["loss"] == pytest.approx(float(((out - F.one_hot(y, 3)) ** 2).sum(1).mean()),
                                        rel=1e-6)
    T = torch.randn(10, 3)
    rec = evaluate(net, params, X, T)  # regression: no accuracy, no confusion matrix
    assert set(rec) == {"n", "loss"}
    assert rec["loss"] == pytest.approx(float(((out - T) ** 2).sum(1).mean()), rel=1e-6)


@pytest.mark.parametrize("X, y, message", [
    (torch.zeros(3, 6), torch.tensor([0, 1, 3]), r"labels must lie in \[0, 2\]"),
    (torch.zeros(3, 6), torch.tensor([0, 1]), "differ in length: 3 vs 2"),
    (torch.full((3, 6), float("nan")), torch.tensor([0, 1, 2]), "contain NaN"),
    (torch.zeros(3, 5), torch.tensor([0, 1, 2]), "have 5 features but the architecture"),
    (torch.zeros(3, 6, dtype=torch.float64), torch.tensor([0, 1, 2]),
     "must match the weights"),
    (torch.zeros(0, 6), torch.zeros(0, dtype=torch.int64), "set is empty"),
])
def test_evaluate_bad_input_is_a_clear_error(X, y, message):
    net, params = _model()
    with pytest.raises(ValueError, match=message):
        evaluate(net, params, X, y)


@pytest.mark.parametrize("spec", ["6-5-3", "1x4x4-conv2k3p1-pool2-5-3"])
def test_export_program_runs_with_torch_alone(spec, tmp_path):
    net, params = _model(spec=spec, seed=3)
    path = export_program(net, params, tmp_path / "model.pt2")
    X = torch.randn(7, net.sizes[0], generator=torch.Generator().manual_seed(4))
    torch.save(X, tmp_path / "x.pt")
    # a fresh interpreter in which liftnet cannot be imported
    code = ("import sys; sys.modules['liftnet'] = None; import torch; "
            f"m = torch.export.load({str(path)!r}).module(); "
            f"x = torch.load({str(tmp_path / 'x.pt')!r}); "
            f"torch.save((m(x), m(x[:1])), {str(tmp_path / 'y.pt')!r})")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out, first = torch.load(tmp_path / "y.pt")
    expected = net.forward(params, X).detach()
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(first, expected[:1])  # any batch size, one row too


def test_cli_evaluate_reproduces_the_training_run(tmp_path, capsys):
    """The scores of a saved model on the data it was trained on, preprocessed the same way
    (standardised with the statistics of the run's seeded training subset)."""
    run, model, scores = tmp_path / "run.json", tmp_path / "m.pt", tmp_path / "scores.json"
    assert main(["train", "--dataset", "digits", "--arch", "64-30-10", "--epochs", "2",
                 "--standardize", "--n-train", "600", "--seed", "2", "--quiet",
                 "--out", str(run), "--save", str(model)]) == 0
    assert main(["evaluate", "--model", str(model), "--out", str(scores)]) == 0
    assert "accuracy" in capsys.readouterr().out
    trained, rec = json.loads(run.read_text()), json.loads(scores.read_text())
    assert rec["dataset"] == "digits" and rec["split"] == "test" and rec["standardize"]
    assert rec["accuracy"] == pytest.approx(trained["test_accuracy"], abs=1e-12)
    assert rec["n"] == trained["config"]["n_test"]
    assert main(["evaluate", "--model", str(model), "--split", "train", "--out",
                 str(scores)]) == 0
    rec = json.loads(scores.read_text())
    assert rec["accuracy"] == pytest.approx(trained["train_accuracy"], abs=1e-12)
    assert rec["n"] == 600
    # without the standardisation the model sees other inputs
    assert main(["evaluate", "--model", str(model), "--no-standardize", "--out",
                 str(scores)]) == 0
    assert json.loads(scores.read_text())["accuracy"] < trained["test_accuracy"]


@pytest.mark.parametrize("train_args", [
    ["--dataset", "digits", "--arch", "64-30-10", "--n-train", "300", "--seed", "5"],
    ["--dataset", "synthetic", "--arch", "auto", "--seed", "3"],  # the seed draws the data
    ["--dataset", "digits", "--arch", "64-30-10", "--dtype", "float64", "--seed", "1"],
])
def test_cli_evaluate_reuses_the_runs_seed_and_subset_without_standardisation(train_args,
                                                                              tmp_path):
    run, model, scores = tmp_path / "run.json", tmp_path / "m.pt", tmp_path / "s.json"
    assert main(["train", *train_args, "--epochs", "2", "--quiet", "--out", str(run),
                 "--save", str(model)]) == 0
    trained = json.loads(run.read_text())
    for split, key in (("test", "test_accuracy"), ("train", "train_accuracy")):
        assert main(["evaluate", "--model", str(model), "--split", split, "--out",
                     str(scores)]) == 0
        rec = json.loads(scores.read_text())
        assert rec["accuracy"] == pytest.approx(trained[key], abs=1e-12)
        assert rec["dtype"] == trained["config"]["dtype"]
    assert rec["n"] == trained["config"]["n_train"]


def test_cli_evaluate_warns_when_the_training_standardisation_is_not_applied(tmp_path,
                                                                              capsys):
    model = tmp_path / "m.pt"
    assert main(["train", "--dataset", "digits", "--arch", "64-20-10", "--epochs", "1",
                 "--standardize", "--quiet", "--save", str(model)]) == 0
    net, params = _model(spec="64-20-10")
    meta = json.loads(json.dumps({"dataset": "digits", "config": {"standardize": True}}))
    save_model(tmp_path / "other.pt", net, params, {**meta, "dataset": "synthetic"})
    assert main(["evaluate", "--model", str(tmp_path / "other.pt"), "--dataset", "digits"]) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "trained on standardised synthetic inputs" in err


def test_cli_export_writes_a_program(tmp_path, capsys):
    net, params = _model(spec="64-8-10")
    save_model(tmp_path / "m.pt", net, params, {"method": "lifted", "dataset": "digits"})
    assert main(["export", "--model", str(tmp_path / "m.pt"), "--out",
                 str(tmp_path / "m.pt2")]) == 0
    assert "x of shape (N, 64) and dtype torch.float32" in capsys.readouterr().out
    X = torch.rand(3, 64)
    torch.testing.assert_close(torch.export.load(tmp_path / "m.pt2").module()(X),
                               net.forward(params, X).detach())


def test_export_of_a_standardised_run_takes_raw_inputs(tmp_path, capsys):
    """A --standardize run's saved model holds its statistics, and the exported program
    standardises raw inputs with them: it scores the raw test set as evaluate does, and a
    model saved without them (an older liftnet) exports with a warning."""
    from liftnet.data import load_dataset
    from liftnet.results import load_model
    from liftnet.transfer import Standardize

    model = tmp_path / "std.pt"
    assert main(["train", "--quiet", "--standardize", "--n-train", "800", "--seed", "3",
                 "--epochs", "2", "--save", str(model)]) == 0
    net, params, meta = load_model(model)
    ds = load_dataset("digits", n_train=800, seed=3, standardize=True)
    torch.testing.assert_close(torch.tensor(meta["input_mean"], dtype=torch.float64),
                               ds.input_mean, rtol=0, atol=0)
    assert main(["export", "--model", str(model), "--out", str(tmp_path / "std.pt2")]) == 0
    assert "(standardising its inputs as in training)" in capsys.readouterr().out
    program = torch.export.load(tmp_path / "std.pt2").module()
    raw = load_dataset("digits").X_test
    got = program(raw)
    torch.testing.assert_close(got, net.forward(params, ds.X_test).detach(), rtol=1e-5,
                               atol=1e-5)
    assert main(["evaluate", "--model", str(model), "--out", str(tmp_path / "ev.json")]) == 0
    acc = json.loads((tmp_path / "ev.json").read_text())["accuracy"]
    assert float((got.argmax(1) == ds.y_test).double().mean()) == pytest.approx(acc, abs=1e-12)
    seq = to_torch(net, params, input_mean=ds.input_mean, input_std=ds.input_std)
    assert isinstance(seq[0], Standardize)
    torch.testing.assert_close(seq(raw), got, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="give both input_mean and input_std"):
        to_torch(net, params, input_mean=ds.input_mean)
    with pytest.raises(ValueError, match="must have the network's 64 inputs, got 3 and 3"):
        to_torch(net, params, input_mean=torch.zeros(3), input_std=torch.ones(3))
    with pytest.raises(ValueError, match="input_std finite and > 0"):
        to_torch(net, params, input_mean=ds.input_mean, input_std=torch.zeros(64))
    old = {k: v for k, v in meta.items() if k not in ("input_mean", "input_std")}
    save_model(tmp_path / "old.pt", net, params, old)
    capsys.readouterr()
    assert main(["export", "--model", str(tmp_path / "old.pt"), "--out",
                 str(tmp_path / "old.pt2")]) == 0
    assert "holds no statistics" in capsys.readouterr().err
    save_model(tmp_path / "list.pt", net, params, ["not", "a", "record"])  # from Python
    assert main(["export", "--model", str(tmp_path / "list.pt"), "--out",
                 str(tmp_path / "list.pt2")]) == 0
    save_model(tmp_path / "bad.pt", net, params, {**meta, "input_std": ["x"] * 64})
    assert main(["export", "--model", str(tmp_path / "bad.pt"), "--out",
                 str(tmp_path / "bad.pt2")]) == 2
    assert "damaged model file (its input statistics)" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "--model", "{tmp}/none.pt"], "no saved model at"),
    (["evaluate", "--model", "{tmp}/m.pt"], "--dataset is needed"),
    (["evaluate", "--model", "{tmp}/m.pt", "--dataset", "digits"],
     "takes 6 inputs; digits has 64 features"),
    (["evaluate", "--model", "{tmp}/junk.pt", "--dataset", "digits"],
     "is not a readable liftnet model"),
    (["export", "--model", "{tmp}/m.pt", "--out", "{tmp}/m.pt"], "would overwrite"),
    (["export", "--model", "{tmp}/link.pt", "--out", "{tmp}/m.pt"], "would overwrite"),
    (["evaluate", "--model", "{tmp}/m.pt", "--dataset", "digits", "--out", "{tmp}/m.pt"],
     "would overwrite"),
    (["evaluate", "--model", "{tmp}/m.pt", "--dataset", "digits", "--out", "{tmp}/link.pt"],
     "would overwrite"),
    (["evaluate", "--model", "{tmp}/list_meta.pt", "--dataset", "digits"],
     "takes 6 inputs"),  # a meta that is not a training record is ignored
    (["evaluate", "--model", "{tmp}/bad_seed.pt"], "config's seed must be a non-negative"),
    (["evaluate", "--model", "{tmp}/number_dataset.pt"], "--dataset is needed"),
    (["export", "--model", "{tmp}/m.pt", "--out", "{tmp}/no/such/dir/x.pt2"],
     ""),  # created: a missing parent directory is made, like --out of train
])
def test_cli_evaluate_and_export_errors_are_clear(argv, message, tmp_path, capsys):
    net, params = _model()
    save_model(tmp_path / "m.pt", net, params)  # no meta: which data set is unknown
    (tmp_path / "link.pt").symlink_to(tmp_path / "m.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    save_model(tmp_path / "list_meta.pt", net, params, [1, 2])
    save_model(tmp_path / "bad_seed.pt", net, params,
               {"dataset": "digits", "config": {"seed": "x", "n_train": 5}})
    save_model(tmp_path / "number_dataset.pt", net, params, {"dataset": 5})
    code = main([a.format(tmp=tmp_path) for a in argv])
    err = capsys.readouterr().err
    if message:
        assert code == 2 and message in err and "Traceback" not in err
    else:
        assert code == 0 and (tmp_path / "no/such/dir/x.pt2").is_file()
    assert (tmp_path / "m.pt").read_bytes()[:2] == b"PK"  # the model is never overwritten


def _export_with_file_limit(model, out, cwd, limit_bytes=None):
    """``liftnet export`` in a fresh interpreter (torch's zip writer aborted the process),
    files limited to ``limit_bytes`` (``ulimit -f``: "File too large", as on a full disk)."""
    limit = ("import resource; resource.setrlimit(resource.RLIMIT_FSIZE, "
             f"({limit_bytes}, resource.getrlimit(resource.RLIMIT_FSIZE)[1])); "
             if limit_bytes is not None else "")
    code = (f"{limit}import sys; from liftnet.cli import main; "
            f"sys.exit(main(['export', '--model', {str(model)!r}, '--out', {str(out)!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=cwd, timeout=300)
    return done.returncode, done.stderr


def test_cli_export_to_a_full_disk_is_one_clear_error(tmp_path):
    """The export's write failed with the right message, then torch's zip writer, destroyed
    after the OSError, aborted the process (exit 134) or raised its own RuntimeError."""
    net, params = _model()
    model = tmp_path / "models" / "m.pt"
    save_model(model, net, params)
    (tmp_path / "old.pt2").write_bytes(b"the previous export")
    code, err = _export_with_file_limit(model, "old.pt2", tmp_path, limit_bytes=4096)
    assert code == 2, err[-2000:]  # the program of a 6-5-3 network takes about 12 kB
    assert err.strip() == "liftnet: error: cannot write old.pt2: File too large"
    assert (tmp_path / "old.pt2").read_bytes() == b"the previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models", "old.pt2"]  # no temp file
    if os.path.exists("/dev/full"):  # ENOSPC on every write, written in place
        code, err = _export_with_file_limit(model, "/dev/full", tmp_path)
        assert code == 2, err[-2000:]
        assert err.strip() == "liftnet: error: cannot write /dev/full: No space left on device"


def _flip_a_weight_byte(path):
    """Flip one bit of the first tensor stored in the zip archive torch.save wrote at
    ``path`` (its header and directory left as they were)."""
    with zipfile.ZipFile(path) as archive:
        info = min((i for i in archive.infolist() if "/data/" in i.filename and i.file_size),
                   key=lambda i: i.header_offset)
    data = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:
                                                    info.header_offset + 30])
    data[info.header_offset + 30 + name_len + extra_len] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("argv", [
    ["evaluate", "--model", "{model}", "--dataset", "digits"],
    ["export", "--model", "{model}", "--out", "{tmp}/m.pt2"],
    ["train", "--arch", "64-5-10", "--epochs", "1", "--quiet", "--init-from", "{model}"],
])
def test_cli_refuses_a_model_whose_bytes_changed(argv, tmp_path, capsys):
    """torch checks no CRC: a flipped bit in a weight loaded as an altered weight."""
    net, params = _model(spec="64-5-10")
    model = tmp_path / "m.pt"
    save_model(model, net, params, {"dataset": "digits"})
    _flip_a_weight_byte(model)
    assert main([a.format(model=model, tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"liftnet: error: {model} is corrupt or truncated (") and (
        "CRC" in err and err.count("\n") == 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]
    model.write_bytes(model.read_bytes()[:-300])  # cut short: torch said "[Errno 22] ..."
    assert main([a.format(model=model, tmp=tmp_path) for a in argv]) == 2
    assert f"liftnet: error: {model} is truncated or corrupt" in capsys.readouterr().err


def test_public_metrics_refuse_labels_that_would_broadcast():
    # review 23: (N, 1) labels and a single label broadcast against N predictions gave a
    # wrong accuracy; a short target matrix a wrong squared error
    from liftnet.graph import network
    from liftnet.metrics import accuracy, squared_error, targets_for

    g = torch.Generator().manual_seed(0)
    X = torch.randn(30, 5, generator=g)
    y = torch.randint(0, 3, (30,), generator=g)
    net = network("5-4-3")
    p = net.init_params(generator=g)
    assert 0 <= accuracy(net, p, X, y) <= 1
    with pytest.raises(ValueError, match=r"1-D tensor \(N,\), got shape \(30, 1\)"):
        accuracy(net, p, X, y[:, None])
    with pytest.raises(ValueError, match="differ in length: 30 rows against"):
        accuracy(net, p, X, y[:1])
    reg = network("5-4-2", loss="mse")
    T = torch.randn(30, 2, generator=g)
    with pytest.raises(ValueError, match="differ in length"):
        squared_error(reg, reg.init_params(generator=g), X, T[:1])
    with pytest.raises(ValueError, match=r"targets must be \(N,\) or \(N, outputs\)"):
        targets_for(reg, T[:, :, None], torch.float32)
    # (N,) float targets for a network of 2 outputs would broadcast (N, 2) - (N, 1)
    with pytest.raises(ValueError, match="targets have 1 column"):
        squared_error(reg, reg.init_params(generator=g), X, T[:, 0])
    assert accuracy(net, p, X[:0], y[:0]) is None  # no samples: no accuracy (not NaN)


def test_evaluate_scores_a_lifted_model_by_its_own_probabilities(tmp_path):
    """lifted trains its outputs onto the simplex: evaluate's cross-entropy is that of their
    projection (clipped at float64's epsilon, as scikit-learn's log_loss), the estimator's
    predict_proba, not of a softmax of values in [0, 1] (about 1.7 at 0.9 accuracy); other
    methods keep the softmax."""
    from liftnet.data import load_dataset
    from liftnet.results import load_model
    from liftnet.solvers import project_simplex

    ds = load_dataset("digits")
    for method, project in (("lifted", True), ("fenchel", False)):
        model, out = tmp_path / f"{method}.pt", tmp_path / f"{method}.json"
        assert main(["train", "--quiet", "--method", method, "--epochs", "3",
                     "--save", str(model)]) == 0
        assert main(["evaluate", "--model", str(model), "--out", str(out)]) == 0
        net, params, _ = load_model(model)
        logits = net.outputs(params, ds.X_test).double()
        p = project_simplex(logits) if project else torch.softmax(logits, 1)
        want = float(-p[torch.arange(len(p)), ds.y_test].clamp_min(2.220446049250313e-16)
                     .log().mean())
        rec = json.loads(out.read_text())
        assert rec["loss"] == pytest.approx(want, rel=1e-9)
        if project:
            assert rec["accuracy"] > 0.9 and rec["loss"] < 1.0
