"""Data sets of the user's own arrays: ``load_dataset("file.npz")`` and ``--dataset FILE.npz``.
Every malformed file is a DataError that names the problem."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from liftnet.cli import main
from liftnet.data import DataError, load_dataset, load_npz


def _arrays(n=120, m=40, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((d, k))
    X, Xt = rng.standard_normal((n, d)), rng.standard_normal((m, d))
    return {"X_train": X, "y_train": (X @ W).argmax(1), "X_test": Xt,
            "y_test": (Xt @ W).argmax(1)}


def _save(tmp_path, name="own.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_features_and_labels_are_loaded_as_given(tmp_path):
    arrays = _arrays()
    ds = load_dataset(str(_save(tmp_path, **arrays)), dtype=torch.float64, val_size=20,
                      n_train=100, seed=3)
    assert ds.n_classes == 3 and ds.image_shape is None and ds.n_features == 6
    assert len(ds.X_train) == 80 and len(ds.X_val) == 20 and len(ds.X_test) == 40
    torch.testing.assert_close(ds.X_test, torch.from_numpy(arrays["X_test"]))
    assert torch.equal(ds.y_test, torch.from_numpy(arrays["y_test"]).long())
    # the training subset and the validation set are rows of X_train with their labels
    rows = {tuple(r): int(c) for r, c in zip(arrays["X_train"].round(12), arrays["y_train"],
                                             strict=True)}
    for X, y in ((ds.X_train, ds.y_train), (ds.X_val, ds.y_val)):
        assert all(rows[tuple(r)] == int(c) for r, c in zip(X.numpy().round(12), y,
                                                             strict=True))
    std = load_dataset(str(tmp_path / "own.npz"), standardize=True, dtype=torch.float64)
    torch.testing.assert_close(std.X_train.mean(0), torch.zeros(6, dtype=torch.float64),
                               atol=1e-12, rtol=0)


def test_a_path_object_names_the_file_and_other_types_are_named(tmp_path):
    path = _save(tmp_path, **_arrays())
    torch.testing.assert_close(load_dataset(path).X_train, load_dataset(str(path)).X_train)
    with pytest.raises(DataError, match="named by a string or a path, got 3"):
        load_dataset(3)


@pytest.mark.parametrize("key, value, dtype, name", [
    ("X_train", 1e39, torch.float32, "torch.float32"),
    ("X_test", 7e4, torch.float16, "torch.float16"),
    ("y_train", 1e5, torch.float16, "torch.float16"),
])
def test_values_beyond_the_chosen_dtype_are_named_not_blamed_on_the_file(tmp_path, key, value,
                                                                         dtype, name):
    """Values the file holds correctly but the requested dtype cannot represent: the error
    names the dtype and its range (not "NaN or infinite values" in the file)."""
    arrays = _arrays()
    arrays["y_train"], arrays["y_test"] = (arrays[k].astype(float) for k in ("y_train",
                                                                               "y_test"))
    arrays[key] = arrays[key].copy()
    arrays[key][1] = value
    with pytest.raises(DataError, match=rf"{key} holds values up to .* beyond the range of "
                                        rf"{name} \(at most .*\); rescale them"):
        load_dataset(_save(tmp_path, **arrays), dtype=dtype)
    assert load_dataset(_save(tmp_path, **arrays), dtype=torch.float64).n_classes == 0


def test_images_are_flattened_and_uint8_pixels_scaled(tmp_path):
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, (30, 2, 5, 4), dtype=np.uint8)
    grey = rng.random((10, 5, 4))
    ds = load_dataset(str(_save(tmp_path, X_train=imgs, y_train=np.arange(30) % 2,
                                X_test=imgs[:10], y_test=np.arange(10) % 2)))
    assert ds.image_shape == (2, 5, 4) and ds.n_features == 40
    torch.testing.assert_close(ds.X_train[3], torch.from_numpy(imgs[3].reshape(-1) / 255.0)
                               .float())
    ds = load_dataset(str(_save(tmp_path, "grey.npz", X_train=grey, y_train=np.arange(10) % 2,
                                X_test=grey, y_test=np.arange(10) % 2)))
    assert ds.image_shape == (1, 5, 4)
    torch.testing.assert_close(ds.X_train, torch.from_numpy(grey.reshape(10, -1)).float())
    with pytest.raises(DataError, match=r"X_test holds values up to \S+e\+(299|300), beyond "
                       "the range of torch.float32"):
        load_dataset(str(_save(tmp_path, "wide.npz", X_train=grey, y_train=np.arange(10) % 2,
                               X_test=grey * 1e300, y_test=np.arange(10) % 2)))
    # one split as uint8 pixels, the other as numbers: they would end up on scales 255 apart
    for X_test in (imgs[:10].astype(np.float32), imgs[:10].astype(np.uint16)):
        with pytest.raises(DataError, match="X_train is uint8 and X_test"):
            load_dataset(str(_save(tmp_path, "mixed.npz", X_train=imgs,
                                   y_train=np.arange(30) % 2, X_test=X_test,
                                   y_test=np.arange(10) % 2)))


def test_float_targets_make_a_regression_set(tmp_path):
    a = _arrays()
    ds = load_dataset(str(_save(tmp_path, X_train=a["X_train"], y_train=a["X_train"][:, 0],
                                X_test=a["X_test"], y_test=a["X_test"][:, 0])))
    assert ds.n_classes == 0 and ds.y_train.shape == (120, 1) and ds.y_train.is_floating_point()
    two = load_dataset(str(_save(tmp_path, "two.npz", X_train=a["X_train"],
                                 y_train=a["X_train"][:, :2], X_test=a["X_test"],
                                 y_test=a["X_test"][:, :2])))
    assert two.y_test.shape == (40, 2)


def _bad(case):
    a = _arrays()
    nan = a["X_train"].copy()
    nan[3, 1] = np.nan
    return {
        "missing": ({k: v for k, v in a.items() if k != "y_test"},
                    r"missing array\(s\) y_test; a data file holds X_train, y_train, X_test, "
                    r"y_test \(found: X_train, y_train, X_test\)"),
        "lengths": ({**a, "y_train": a["y_train"][:-1]},
                    r"y_train must hold one label or target row per sample of X_train \(120\)"),
        "nan": ({**a, "X_train": nan}, "X_train contains NaN or infinite values"),
        "negative": ({**a, "y_test": a["y_test"] - 1}, "labels must be 0, 1, ..., k-1; "
                                                       "y_test holds -1"),
        "features": ({**a, "X_test": a["X_test"][:, :4]}, "X_train has 6 features per sample, "
                                                         "X_test 4"),
        "strings": ({**a, "y_train": a["y_train"].astype(str)}, "must be numeric arrays"),
        "mixed": ({**a, "y_test": a["y_test"].astype(float)}, "must both be class labels"),
        "one class": ({**a, "y_train": 0 * a["y_train"], "y_test": 0 * a["y_test"]},
                      "single class"),
        "1-d inputs": ({**a, "X_train": a["X_train"][:, 0]}, r"X_train must be \(N, d\)"),
        "objects": ({**a, "X_train": np.array([{"a": 1}] * 120, dtype=object)},
                    "not a readable .npz data file"),
        "huge label": ({**a, "y_train": a["y_train"] + 10**7},
                       r"k <= 100000 .* y_train holds 1000000\d"),
        "image shapes": ({**a, "X_train": a["X_train"].reshape(120, 2, 3),
                          "X_test": a["X_test"].reshape(40, 3, 2)},
                         r"train images are \(1, 2, 3\), test images \(1, 3, 2\)"),
        "images and features": ({**a, "X_train": a["X_train"].reshape(120, 2, 3)},
                                "both be images or both features"),
        "nan target": ({**a, "y_train": np.where(np.arange(120) == 5, np.nan, 1.0),
                        "y_test": np.ones(40)}, "y_train contains NaN or infinite values"),
        "target columns": ({**a, "y_train": np.ones((120, 2)), "y_test": np.ones((40, 3))},
                           "y_train has 2 target columns, y_test 3"),
        "no target columns": ({**a, "y_train": np.ones((120, 0)), "y_test": np.ones((40, 0))},
                              r"y_train must hold one label or target row .* got shape "
                              r"\(120, 0\)"),
    }[case]


@pytest.mark.parametrize("case", ["missing", "lengths", "nan", "negative", "features",
                                  "strings", "mixed", "one class", "1-d inputs", "objects",
                                  "huge label", "image shapes", "images and features",
                                  "nan target", "target columns", "no target columns"])
def test_malformed_files_are_clear_errors(tmp_path, case):
    arrays, message = _bad(case)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message):
        load_dataset(str(path))


def test_standardising_values_near_the_float32_limit_stays_finite(tmp_path):
    """The statistics are taken in float64: a float32 mean of values near 3e38 overflowed and
    left -inf columns that fit later blamed on the file."""
    X = np.array([[3e38, 1.0], [2e38, 2.0], [1e38, 3.0], [3e38, 4.0]], dtype=np.float32)
    path = tmp_path / "big.npz"
    np.savez(path, X_train=X, y_train=np.array([0, 1, 0, 1]), X_test=X[:2],
             y_test=np.array([0, 1]))
    ds = load_dataset(str(path), standardize=True)
    expected = (X.astype(np.float64) - X.astype(np.float64).mean(0)) / X.astype(
        np.float64).std(0)
    np.testing.assert_allclose(ds.X_train.numpy(), expected, rtol=1e-6)
    small = np.array([[0.0, 1.0], [1.0, 2.0], [0.0, 3.0], [1.0, 4.0]], dtype=np.float32)
    np.savez(path, X_train=small, y_train=np.array([0, 1, 0, 1]),
             X_test=np.array([[3e38, 1.0]], dtype=np.float32), y_test=np.array([0]))
    with pytest.raises(DataError, match="standardised X_test values overflow"):
        load_dataset(str(path), standardize=True)


def test_label_count_and_columns(tmp_path):
    """k = the largest label + 1, every class 0..k-1 must occur in y_train (an output the
    training never fits would score a test-only class, or 1-based labels, as silently wrong);
    (N, 1) integer labels are (N,) labels."""
    a = _arrays()
    assert load_dataset(str(_save(tmp_path, "ok.npz", **a))).n_classes == 3
    with pytest.raises(DataError, match=r"classes 3, 4 of 0\.\.4 never occur in y_train; "
                                        r"labels must be 0\.\.k-1 with every class"):
        load_dataset(str(_save(tmp_path, **{**a, "y_test": np.where(
            np.arange(40) == 7, 4, a["y_test"])})))  # label 4 in the test set only
    with pytest.raises(DataError, match=r"class 0 of 0\.\.3 never occurs in y_train.*counted "
                                        "from 1"):
        load_dataset(str(_save(tmp_path, "one.npz", **{**a, "y_train": a["y_train"] + 1,
                                                         "y_test": a["y_test"] + 1})))
    with pytest.raises(DataError, match=r"classes 3, 4, 5 of 0\.\.5 never occur in y_train"):
        load_dataset(str(_save(tmp_path, "shift.npz", **{**a, "y_test": a["y_test"] + 3})))
    col = load_dataset(str(_save(tmp_path, "col.npz", **{**a, "y_train": a["y_train"][:, None]})))
    assert col.y_train.shape == (120,) and torch.equal(col.y_train,
                                                      torch.from_numpy(a["y_train"]).long())


def test_unreadable_or_absent_files(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(DataError, match="not a readable .npz data file"):
        load_dataset(str(junk))
    import zipfile

    raw = tmp_path / "raw.npz"  # a zip whose members are not .npy arrays
    with zipfile.ZipFile(raw, "w") as zf:
        for key in ("X_train", "y_train", "X_test", "y_test"):
            zf.writestr(key, b"0123")
    with pytest.raises(DataError, match="X_train, y_train, X_test, y_test not stored as numpy "
                                        "arrays"):
        load_dataset(str(raw))
    empty = _save(tmp_path, "nofeatures.npz", **{**_arrays(), "X_train": np.zeros((120, 0))})
    with pytest.raises(DataError, match=r"N, d >= 1, got shape \(120, 0\)"):
        load_dataset(str(empty))
    npy = tmp_path / "plain.npz"  # a .npy file under another name
    with open(npy, "wb") as fh:
        np.save(fh, np.zeros(3))
    with pytest.raises(DataError, match="not a readable .npz data file .* not a zip archive"):
        load_dataset(str(npy))
    with pytest.raises(DataError, match="no data file at"):
        load_dataset(str(tmp_path / "absent.npz"))
    with pytest.raises(DataError, match="or a .npz file of your own arrays"):
        load_dataset("mnist_")


def test_cli_trains_and_evaluates_on_a_file(tmp_path, capsys, monkeypatch):
    path = _save(tmp_path, **_arrays(n=300, m=100))
    out, model = tmp_path / "run.json", tmp_path / "model.pt"
    assert main(["train", "--method", "fenchel", "--dataset", str(path), "--epochs", "5",
                 "--batch-size", "50", "--quiet", "--out", str(out), "--save", str(model)]) == 0
    rec = json.loads(out.read_text())
    assert rec["arch"] == "6-300-3" and rec["dataset"] == str(path)
    assert rec["test_accuracy"] > 0.8  # a linear teacher: chance is about 1/3
    scores = tmp_path / "scores.json"
    assert main(["evaluate", "--model", str(model), "--out", str(scores)]) == 0
    assert json.loads(scores.read_text())["accuracy"] == pytest.approx(rec["test_accuracy"],
                                                                       abs=1e-12)
    before = path.read_bytes()
    monkeypatch.setenv("HOME", str(tmp_path))  # "~/own.npz" names the data file too
    assert main(["train", "--dataset", "~/own.npz", "--epochs", "1", "--save", str(path)]) == 2
    assert "--save names the --dataset file" in capsys.readouterr().err
    assert main(["train", "--dataset", str(path), "--epochs", "1", "--out", str(path)]) == 2
    assert "--out names the --dataset file" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(model), "--out", str(path)]) == 2
    assert "--out names the data file" in capsys.readouterr().err
    assert main(["export", "--model", str(model), "--out", str(path)]) == 2
    assert "--out names the model's data file" in capsys.readouterr().err
    assert path.read_bytes() == before
    assert main(["train", "--dataset", str(tmp_path / "absent.npz"), "--epochs", "1"]) == 2
    assert "no data file at" in capsys.readouterr().err
    from liftnet.cli import _dataset

    assert _dataset("MNIST") == "mnist" and _dataset("Fashion_MNIST") == "fashion-mnist"
    with pytest.raises(SystemExit):
        main(["train", "--dataset", "mnst"])
    assert "choose from digits, mnist" in capsys.readouterr().err


def test_cli_regression_reports_losses_and_stops_on_the_validation_loss(tmp_path, capsys):
    """A file with float targets: the record gives the validation and test losses (mean over
    samples of ||output - y||^2) of the kept epoch, the best validation epoch and its test
    loss; `evaluate` scores the saved model to the same test loss."""
    rng = np.random.default_rng(2)
    X, Xt = rng.standard_normal((300, 5)), rng.standard_normal((80, 5))
    def f(A):
        return np.stack([np.maximum(A[:, 0] + A[:, 1], 0), 0.5 * A[:, 2]], 1)
    path = _save(tmp_path, X_train=X, y_train=f(X), X_test=Xt, y_test=f(Xt))
    out, model = tmp_path / "run.json", tmp_path / "model.pt"
    assert main(["train", "--loss", "mse", "--dataset", str(path), "--lifted-rule",
                 "--quiet", "--out", str(out)]) == 2
    assert "--lifted-rule scores a classification accuracy" in capsys.readouterr().err
    assert not out.exists()
    assert main(["train", "--method", "fenchel", "--loss", "mse", "--dataset", str(path),
                 "--epochs", "60", "--batch-size", "50", "--val-size", "0.2", "--patience",
                 "3", "--quiet", "--out", str(out), "--save", str(model)]) == 0
    rec = json.loads(out.read_text())
    losses = [e["val_loss"] for e in rec["history"]]
    best = losses.index(min(losses)) + 1
    assert rec["early_stopping"]["restored_epoch"] == best == rec["best_val"]["epoch"]
    assert rec["val_loss"] == min(losses) == rec["best_val"]["val_loss"]
    assert rec["test_loss"] == rec["history"][best - 1]["test_loss"] == rec["best_val"][
        "test_loss"]
    assert rec["test_loss"] < 0.1 * float((f(Xt) ** 2).sum(1).mean())  # it learned
    assert f"test loss {rec['test_loss']:.4g}" in capsys.readouterr().out
    scores = tmp_path / "scores.json"
    assert main(["evaluate", "--model", str(model), "--out", str(scores)]) == 0
    assert json.loads(scores.read_text())["loss"] == pytest.approx(rec["test_loss"], rel=1e-9)


def test_evaluate_finds_the_file_from_another_folder_and_notices_a_change(tmp_path,
                                                                          monkeypatch, capsys):
    """A run on a relative path records the absolute one: `evaluate` scores the same file
    (with the run's validation set) from any folder; a file changed since then is scored as
    another data set, with a warning, and has no validation set."""
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    arrays = _arrays(n=200, m=60)
    _save(work, "own.npz", **arrays)
    monkeypatch.chdir(work)
    assert main(["train", "--method", "fenchel", "--dataset", "own.npz", "--epochs", "2",
                 "--batch-size", "50", "--val-size", "40", "--quiet", "--out", "run.json",
                 "--save", "model.pt"]) == 0
    rec = json.loads((work / "run.json").read_text())
    assert rec["dataset"] == str(work / "own.npz") and len(rec["config"]["data_sha256"]) == 64
    np.savez(elsewhere / "own.npz", **_arrays(n=200, m=60, seed=5))  # a decoy of that name
    monkeypatch.chdir(elsewhere)
    assert main(["evaluate", "--model", str(work / "model.pt"), "--split", "val",
                 "--out", "val.json"]) == 0
    got = json.loads((elsewhere / "val.json").read_text())
    assert got["n"] == 40 and got["accuracy"] == pytest.approx(rec["val_accuracy"], abs=1e-12)
    np.savez(work / "own.npz", **{**arrays, "X_test": arrays["X_test"] + 1.0})  # changed
    assert main(["evaluate", "--model", str(work / "model.pt"), "--split", "val"]) == 2
    err = capsys.readouterr().err
    assert "changed since" in err and "the validation set is part of the training run" in err


def test_float_targets_with_cross_entropy_is_a_clear_error(tmp_path, capsys):
    a = _arrays()
    path = _save(tmp_path, **{**a, "y_train": a["y_train"].astype(float),
                              "y_test": a["y_test"].astype(float)})
    assert main(["train", "--dataset", str(path), "--epochs", "1", "--quiet"]) == 2
    assert "holds float targets, a regression: train it with --loss mse, or save the labels " \
           "as integers" in capsys.readouterr().err


def test_real_mnist_saved_as_a_file_loads_as_the_built_in_set(tmp_path):
    """A slice of the real MNIST files written as uint8 images in a .npz loads to the very
    floats and labels of the built-in loader (pixels / 255), with its image shape."""
    import os
    from pathlib import Path

    from liftnet import data

    root = Path(os.environ.get("LIFTNET_DATA")
                or Path(__file__).resolve().parents[2] / "shared" / "data")
    files = {k: root / "mnist" / f for k, f in data._IDX_FILES.items()}
    assert all(p.is_file() for p in files.values()), f"the real-data test needs {root}/mnist"
    raw = {k: data.read_idx(p) for k, p in files.items()}
    builtin = load_dataset("mnist", data_dir=root)
    path = _save(tmp_path, "mnist.npz", X_train=raw["train_images"][:500],
                 y_train=raw["train_labels"][:500], X_test=raw["test_images"][:200],
                 y_test=raw["test_labels"][:200])
    ds = load_dataset(str(path))
    assert ds.image_shape == (1, 28, 28) and ds.n_classes == 10
    assert torch.equal(ds.X_train, builtin.X_train[:500])
    assert torch.equal(ds.X_test, builtin.X_test[:200])
    assert torch.equal(ds.y_train, builtin.y_train[:500])


def test_evaluate_scores_a_moved_copy_of_the_data_file_as_the_runs_data(tmp_path, capsys):
    """The same bytes at another path are the training run's data set (its subset,
    validation set and standardisation), as the record's sha256 says; a file that is not
    there any more without --dataset is an error that says how to point at the new place."""
    path = _save(tmp_path, "own.npz", **_arrays())
    model = tmp_path / "model.pt"
    assert main(["train", "--dataset", str(path), "--epochs", "2", "--n-train", "60",
                 "--val-size", "10", "--standardize", "--seed", "2", "--quiet",
                 "--save", str(model)]) == 0
    scores = {}
    for split in ("train", "val", "test"):
        out = tmp_path / f"{split}.json"
        assert main(["evaluate", "--model", str(model), "--split", split, "--out",
                     str(out)]) == 0
        scores[split] = json.loads(out.read_text())
    moved = tmp_path / "elsewhere" / "moved.npz"
    moved.parent.mkdir()
    path.rename(moved)
    capsys.readouterr()
    assert main(["evaluate", "--model", str(model)]) == 2
    assert "which is not there any more; give its new place with --dataset" in \
        capsys.readouterr().err
    for split in ("train", "val", "test"):
        out = tmp_path / f"moved_{split}.json"
        assert main(["evaluate", "--model", str(model), "--dataset", str(moved), "--split",
                     split, "--out", str(out)]) == 0
        got = json.loads(out.read_text())
        assert (got["n"], got["accuracy"], got["loss"]) == (
            scores[split]["n"], scores[split]["accuracy"], scores[split]["loss"])
    assert scores["train"]["n"] == 50 and "warning" not in capsys.readouterr().err


def test_arrays_beyond_the_four_are_named_as_not_read(tmp_path):
    path = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    np.savez(path, X_train=rng.normal(size=(6, 3)), y_train=np.array([0, 1] * 3),
             X_test=rng.normal(size=(4, 3)), y_test=np.array([0, 1] * 2),
             X_val=rng.normal(size=(2, 3)), y_val=np.array([0, 1]))
    with pytest.warns(UserWarning, match="X_val, y_val not read .*--val-size"):
        ds = load_npz(path)
    assert ds.X_train.shape == (6, 3)


def test_one_hot_float_targets_get_a_hint(tmp_path, capsys):
    arrays = _arrays()
    for split in ("train", "test"):
        arrays[f"y_{split}"] = np.eye(3)[arrays[f"y_{split}"]]  # one-hot rows, as floats
    path = _save(tmp_path, **arrays)
    assert main(["train", "--dataset", str(path), "--loss", "ce", "--epochs", "1",
                 "--quiet"]) == 2
    assert "its targets are one-hot rows: save y.argmax(1)" in capsys.readouterr().err
    arrays["y_train"] = arrays["y_train"] * 0.5  # floats that are no one-hot rows: no hint
    assert main(["train", "--dataset", str(_save(tmp_path, "half.npz", **arrays)), "--loss",
                 "ce", "--epochs", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "holds float targets, a regression" in err and "one-hot" not in err


def test_the_program_prints_a_warning_as_one_line_of_its_own(tmp_path, capsys, monkeypatch):
    """Run as a program (argv None), a Python warning (here: arrays not read) is one
    'liftnet: warning:' line, without the source line that raised it."""
    import warnings

    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # restored after
    monkeypatch.setattr("liftnet.cli.reuse_freed_memory", lambda: None)
    path = _save(tmp_path, **_arrays(), X_val=np.zeros((2, 6)))
    monkeypatch.setattr("sys.argv", ["liftnet", "train", "--dataset", str(path), "--epochs",
                                     "1", "--quiet"])
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert main() == 0
    err = capsys.readouterr().err
    assert f"liftnet: warning: {path}: X_val not read" in err
    assert "UserWarning" not in err and "warnings.warn" not in err
