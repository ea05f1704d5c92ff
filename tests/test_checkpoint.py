"""Checkpoints of liftnet.fit: a run stopped after some epochs and resumed from its checkpoint
ends where the uninterrupted run ends, for every method; bad checkpoints are clear errors."""

from __future__ import annotations

import math
import re

import pytest
import torch

from liftnet import fit, get_method
from liftnet.checkpoint import repr_differences
from liftnet.graph import network


def _data():
    g = torch.Generator().manual_seed(0)
    X = torch.rand(120, 8, generator=g, dtype=torch.float64)
    return X, (X @ torch.randn(8, 3, generator=g, dtype=torch.float64)).argmax(1)


CASES = [("lifted", "ce", 0, {}), ("lifted", "mse", 40, {}), ("fenchel", "ce", 40, {}),
         ("fenchel", "mse", 0, {"extrapolation": 0.9}), ("bregman", "ce", 40, {}),
         ("backprop", "ce", 40, {}), ("admm", "mse", 0, {"warmup": 1}),
         ("pbcd", "mse", 0, {}), ("pbcd", "mse", 40, {})]


def test_resuming_the_convex_heuristic_keeps_its_parameters(tmp_path):
    """A full-data-set state's caches (here the convex heuristic's last optimum, the next
    solve's parameters) survive the checkpoint: the resumed solves are the uninterrupted ones."""
    pytest.importorskip("cvxpy", reason="the convex method needs the optional extra")
    g = torch.Generator().manual_seed(0)
    X = torch.randn(8, 2, generator=g, dtype=torch.float64)
    net = network("2-2-1", loss="mse")
    teacher = [(torch.randn(2, 2, generator=g, dtype=torch.float64),
                torch.randn(2, generator=g, dtype=torch.float64)),
               (torch.randn(1, 2, generator=g, dtype=torch.float64),
                torch.randn(1, generator=g, dtype=torch.float64))]
    y = net.forward(teacher, X).detach()
    method = get_method("convex")
    whole = fit(method, net, X, y, epochs=3, seed=1, progress=False)
    ck = tmp_path / "run.ckpt"
    fit(method, net, X, y, epochs=1, seed=1, progress=False, checkpoint=ck)
    resumed = fit(method, net, X, y, epochs=3, seed=1, progress=False, checkpoint=ck,
                  resume=True)
    for (W, b), (W1, b1) in zip(resumed.state.params, whole.state.params, strict=True):
        torch.testing.assert_close(W, W1, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(b, b1, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("key, loss, batch_size, hp", CASES)
def test_resuming_equals_the_uninterrupted_run(key, loss, batch_size, hp, tmp_path):
    X, y = _data()
    net, method = network("8-6-3", loss=loss), get_method(key, **hp)
    whole = fit(method, net, X, y, epochs=4, batch_size=batch_size, seed=1, progress=False)
    ck = tmp_path / "run.ckpt"
    fit(method, net, X, y, epochs=2, batch_size=batch_size, seed=1, progress=False,
        checkpoint=ck)
    resumed = fit(method, net, X, y, epochs=4, batch_size=batch_size, seed=1, progress=False,
                  checkpoint=ck, resume=True)
    for (W, b), (W1, b1) in zip(resumed.state.params, whole.state.params, strict=True):
        torch.testing.assert_close(W, W1, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(b, b1, rtol=1e-12, atol=1e-12)
    assert [e["epoch"] for e in resumed.history] == [1, 2, 3, 4]
    for e, e1 in zip(resumed.history, whole.history, strict=True):
        assert e["objective"] == pytest.approx(e1["objective"], rel=1e-12)
        assert e["train_accuracy"] == e1["train_accuracy"]
    # the checkpoint now holds the fourth epoch: resuming to 4 trains nothing more
    again = fit(method, net, X, y, epochs=4, batch_size=batch_size, seed=1, progress=False,
                checkpoint=ck, resume=True)
    assert len(again.history) == 4
    torch.testing.assert_close(again.state.params[0][0], whole.state.params[0][0])


def test_repr_differences_names_the_fields_that_differ():
    """Nested fields by path, values as the reprs print them; None for unlike objects."""
    old = "Net(layers=(A(x=1, s='a,b'), A(x=2, s='c')), loss='ce')"
    assert repr_differences(old, "Net(layers=(A(x=1, s='a,c'), A(x=2, s='c')), loss='mse')") \
        == "layers[0].s 'a,b' (this run: 'a,c'); loss 'ce' (this run: 'mse')"
    assert repr_differences("M(t=(1.0, 2.0))", "M(t=(1.0, 3.0))") == \
        "t[1] 2.0 (this run: 3.0)"
    assert repr_differences("M(t=None)", "M(t=(1.0, 2.0))") == "t None (this run: (1.0, 2.0))"
    assert repr_differences("M(a=1)", "N(a=1)") is None
    assert repr_differences("M(a=1)", "M(a=1, b=2)") is None
    many = repr_differences("M(a=1, b=1, c=1, d=1, e=1, f=1)", "M(a=2, b=2, c=2, d=2, e=2, f=2)")
    assert many.endswith("d 1 (this run: 2); 2 more")


@pytest.mark.parametrize("change, message", [
    ({"seed": 2}, "its seed (1) differs from this run's (2)"),
    ({"batch_size": 30}, "its batch size (40) differs"),
    ({"method": get_method("lifted", lam=3.0)},
     "its hyperparameters differ from this run's: lam 1.0 (this run: 3.0)"),
    ({"method": get_method("fenchel")}, "its method (lifted) differs from this run's (fenchel)"),
    ({"net": network("8-5-3", loss="ce")}, "its network differs from this run's: "
     "layers[0].out_features 6 (this run: 5); layers[1].in_features 6 (this run: 5)"),
    ({"net": network("8-6-6-3", loss="ce")},
     "its network differs from this run's: layers 2 entries (this run: 3)"),
    ({"X": "other"}, "written for other training inputs"),
    ({"X": "rows"}, "written for other training inputs (same shape, other values or order)"),
    ({"X": "columns"}, "written for other training inputs"),
    ({"y": "swap"}, "written for other training targets"),
    ({"X": "float32"}, "its training inputs were [120, 8] torch.float64, this run's are "
                       "[120, 8] torch.float32"),
    ({"params": "other"}, "its run started from other weights"),
    ({"epochs": 1}, "it holds 2 epochs, more than the 1 asked for"),
])
def test_resuming_another_run_is_a_clear_error(change, message, tmp_path):
    X, y = _data()
    ck = tmp_path / "run.ckpt"
    args = {"method": get_method("lifted"), "net": network("8-6-3", loss="ce"), "X": X, "y": y,
            "epochs": 2, "batch_size": 40, "seed": 1}
    fit(args["method"], args["net"], X, y, epochs=2, batch_size=40, seed=1, progress=False,
        checkpoint=ck)
    args.update(change)
    args["X"] = {"other": X + 0.5, "rows": X[torch.tensor([1, 0, *range(2, 120)])],
                 "columns": X[:, torch.tensor([1, 0, *range(2, 8)])],
                 "float32": X.float()}.get(args["X"], args["X"]) if isinstance(
                     args["X"], str) else args["X"]
    if isinstance(args["y"], str):  # two labels swapped: the same sum and counts
        yy = y.clone()
        i1, i2 = int((y == 1).nonzero()[0]), int((y == 2).nonzero()[0])
        yy[i1], yy[i2] = 2, 1
        args["y"] = yy
    params = None
    if change.get("params") == "other":
        params = [(W + 0.1, b) for W, b in get_method("lifted").init_state(
            args["net"], X, None, generator=torch.Generator().manual_seed(0)).params]
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        fit(args["method"], args["net"], args["X"], args["y"], epochs=args["epochs"],
            batch_size=args["batch_size"], seed=args["seed"], progress=False, checkpoint=ck,
            resume=True, params=params)


@pytest.mark.parametrize("change, message", [
    ("no test set", "scored inputs [40, 8] torch.float64 as its test set, this run gives none"),
    ("other test inputs", "as its test set"),
    ("other test labels", "as its test set"),
    ("validation set added", "scored none as its validation set"),
])
def test_resuming_with_other_scored_sets_is_a_clear_error(change, message, tmp_path):
    """The history's earlier epochs hold scores on the checkpoint run's test and validation
    sets: a resumed run that scores other sets would mix them, so it is refused."""
    X, y = _data()
    Xt, yt = X[:40] + 0.01, y[:40]
    net, method = network("8-6-3", loss="ce"), get_method("lifted")
    ck = tmp_path / "run.ckpt"
    first = fit(method, net, X, y, epochs=1, batch_size=40, seed=1, progress=False,
                X_test=Xt, y_test=yt, checkpoint=ck)
    same = fit(method, net, X, y, epochs=2, batch_size=40, seed=1, progress=False,
               X_test=Xt.clone(), y_test=yt.clone(), checkpoint=ck, resume=True)
    assert same.history[0] == first.history[0] and len(same.history) == 2
    other = {"no test set": {"X_test": None, "y_test": None},
             "other test inputs": {"X_test": Xt + 0.5, "y_test": yt},
             "other test labels": {"X_test": Xt, "y_test": (yt + 1) % 3},
             "validation set added": {"X_test": Xt, "y_test": yt,
                                      "X_val": X[40:60], "y_val": y[40:60]}}[change]
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        fit(method, net, X, y, epochs=3, batch_size=40, seed=1, progress=False,
            checkpoint=ck, resume=True, **other)


def test_early_stopping_resumes_where_it_would_have_stopped(tmp_path):
    """The checkpoint keeps the best validation epoch and its weights: a run interrupted
    before its best epoch and resumed with patience stops where the uninterrupted run stops
    and returns the same best weights; one resumed after its stop trains nothing more."""
    from liftnet import mlp

    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(30, 4, generator=g), torch.arange(30) % 3
    Xv, yv = torch.randn(9, 4, generator=torch.Generator().manual_seed(0)) + 0.5, \
        torch.arange(9) % 3
    net, method = mlp("4-5-3"), get_method("lifted")
    args = {"batch_size": 10, "seed": 0, "progress": False, "X_val": Xv, "y_val": yv}
    whole = fit(method, net, X, y, epochs=30, patience=3, **args)
    assert whole.stopped_early and whole.best_epoch > 3
    ck = tmp_path / "run.ckpt"
    fit(method, net, X, y, epochs=whole.best_epoch - 2, checkpoint=ck, **args)
    resumed = fit(method, net, X, y, epochs=30, patience=3, checkpoint=ck, resume=True, **args)
    assert resumed.stopped_early and resumed.best_epoch == whole.best_epoch
    assert len(resumed.history) == len(whole.history)
    torch.testing.assert_close(resumed.best_params, whole.best_params, rtol=1e-6, atol=1e-7)
    again = fit(method, net, X, y, epochs=30, patience=3, checkpoint=ck, resume=True, **args)
    assert len(again.history) == len(whole.history) and again.stopped_early
    torch.testing.assert_close(again.best_params, whole.best_params, rtol=1e-6, atol=1e-7)
    # a checkpoint of an older liftnet, without "best": the best epoch comes from its history;
    # its weights only where that is the checkpoint's last epoch
    payload = torch.load(ck, weights_only=False)
    del payload["best"]
    torch.save(payload, ck)
    with pytest.raises(ValueError, match="with early stopping: it was written by an older "
                                         "liftnet that did not keep the best validation epoch"):
        fit(method, net, X, y, epochs=30, patience=3, checkpoint=ck, resume=True, **args)
    more = fit(method, net, X, y, epochs=len(whole.history) + 1, checkpoint=ck, resume=True,
               **args)  # without patience it resumes
    assert len(more.history) == len(whole.history) + 1
    assert more.best_epoch == whole.best_epoch and more.best_params is None
    ck2 = tmp_path / "best_last.ckpt"
    fit(method, net, X, y, epochs=whole.best_epoch, checkpoint=ck2, **args)
    payload = torch.load(ck2, weights_only=False)
    del payload["best"]
    torch.save(payload, ck2)
    late = fit(method, net, X, y, epochs=30, patience=3, checkpoint=ck2, resume=True, **args)
    assert late.best_epoch == whole.best_epoch and len(late.history) == len(whole.history)
    torch.testing.assert_close(late.best_params, whole.best_params, rtol=1e-6, atol=1e-7)


def test_bad_checkpoint_files_are_clear_errors(tmp_path):
    X, y = _data()
    net, method = network("8-6-3", loss="ce"), get_method("lifted")
    with pytest.raises(ValueError, match="resume needs the checkpoint"):
        fit(method, net, X, y, epochs=1, resume=True, progress=False)
    state = method.init_state(net, X, None, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="do not give state too"):
        fit(method, net, X, y, epochs=1, checkpoint=tmp_path / "c", resume=True, state=state,
            progress=False)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        fit(method, net, X, y, epochs=1, checkpoint=tmp_path / "none", resume=True,
            progress=False)
    (tmp_path / "junk").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a readable liftnet checkpoint"):
        fit(method, net, X, y, epochs=1, checkpoint=tmp_path / "junk", resume=True,
            progress=False)
    torch.save({"format": "other"}, tmp_path / "other")
    with pytest.raises(ValueError, match="not a liftnet checkpoint"):
        fit(method, net, X, y, epochs=1, checkpoint=tmp_path / "other", resume=True,
            progress=False)


def test_a_failing_epoch_leaves_the_last_checkpoint_whole(tmp_path, monkeypatch):
    """The checkpoint is replaced atomically after each epoch: a crash in epoch 3 leaves
    epoch 2's checkpoint, from which the run resumes."""
    X, y = _data()
    net, method = network("8-6-3", loss="ce"), get_method("lifted")
    ck = tmp_path / "run.ckpt"
    calls = {"n": 0}
    real = type(method).step

    def flaky(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3 * 3:  # the last batch of epoch 3 (3 batches of 40)
            raise RuntimeError("power cut")
        return real(self, *a, **k)

    monkeypatch.setattr(type(method), "step", flaky)
    with pytest.raises(RuntimeError, match="power cut"):
        fit(method, net, X, y, epochs=4, batch_size=40, seed=1, progress=False, checkpoint=ck)
    monkeypatch.setattr(type(method), "step", real)
    resumed = fit(method, net, X, y, epochs=4, batch_size=40, seed=1, progress=False,
                  checkpoint=ck, resume=True)
    whole = fit(method, net, X, y, epochs=4, batch_size=40, seed=1, progress=False)
    assert [e["epoch"] for e in resumed.history] == [1, 2, 3, 4]
    torch.testing.assert_close(resumed.state.params[0][0], whole.state.params[0][0])


def test_cli_resumes_a_stopped_run(tmp_path, capsys):
    import json

    from liftnet.cli import main

    common = ["train", "--dataset", "digits", "--arch", "64-20-10", "--batch-size", "200",
              "--seed", "3", "--quiet"]
    ck, a, b = tmp_path / "run.ckpt", tmp_path / "a.json", tmp_path / "b.json"
    assert main([*common, "--epochs", "4", "--out", str(a)]) == 0
    assert main([*common, "--epochs", "2", "--checkpoint", str(ck), "--resume"]) == 0
    assert "training from the start" in capsys.readouterr().err
    assert main([*common, "--epochs", "4", "--checkpoint", str(ck), "--resume",
                 "--out", str(b)]) == 0
    whole, resumed = json.loads(a.read_text()), json.loads(b.read_text())
    assert resumed["config"]["resumed"] and not whole["config"]["resumed"]
    assert resumed["test_accuracy"] == whole["test_accuracy"]
    assert [e["objective"] for e in resumed["history"]] == pytest.approx(
        [e["objective"] for e in whole["history"]], rel=1e-9)


@pytest.mark.parametrize("argv, message", [
    (["--resume"], "--resume needs --checkpoint FILE"),
    (["--checkpoint", "{tmp}/x.json", "--out", "{tmp}/x.json"],
     "--out and --checkpoint name the same file"),
    (["--checkpoint", "{tmp}/m.pt", "--init-from", "{tmp}/m.pt"],
     "--checkpoint names the --init-from model"),
    (["--out", "{tmp}/link.pt", "--init-from", "{tmp}/m.pt"],
     "--out names the --init-from model"),
])
def test_cli_checkpoint_errors_are_clear(argv, message, tmp_path, capsys):
    from liftnet.cli import main

    assert main(["train", "--epochs", "1", "--quiet", "--save", str(tmp_path / "m.pt")]) == 0
    (tmp_path / "link.pt").symlink_to(tmp_path / "m.pt")
    before = (tmp_path / "m.pt").read_bytes()
    code = main(["train", "--epochs", "1", "--quiet", *[a.format(tmp=tmp_path) for a in argv]])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert (tmp_path / "m.pt").read_bytes() == before


@pytest.mark.parametrize("older", [False, True])
def test_resuming_with_min_delta_replays_the_history(older, tmp_path):
    """A checkpoint written without min_delta (or by a liftnet before min_delta: its best
    epoch has no ``improved``) resumed with min_delta stops where a run with that min_delta
    from the start stops: the last improvement by more than min_delta comes from the
    history."""
    from liftnet import mlp
    from liftnet.methods.backprop import Backprop

    g = torch.Generator().manual_seed(1)
    X = torch.randn(60, 4, generator=g, dtype=torch.float64)
    Y = torch.sin(X @ torch.randn(4, 2, generator=g, dtype=torch.float64))
    net = mlp("4-8-2", loss="mse")
    args = {"batch_size": 20, "X_val": X[:20] + 0.05, "y_val": Y[:20], "progress": False,
            "patience": 3}
    plain = fit(Backprop(lr=0.02), net, X, Y, epochs=80, **args)
    losses = [e["val_loss"] for e in plain.history]
    gains = sorted(a - b for a, b in zip(losses, losses[1:], strict=False) if a > b)
    delta = gains[len(gains) // 2]
    whole = fit(Backprop(lr=0.02), net, X, Y, epochs=80, min_delta=delta, **args)
    assert whole.stopped_early and len(whole.history) < len(plain.history)
    for k in range(3, len(whole.history)):
        ck = tmp_path / f"run{k}.ckpt"
        fit(Backprop(lr=0.02), net, X, Y, epochs=k, checkpoint=ck, **args)
        payload = torch.load(ck, weights_only=False)
        if older:
            del payload["best"].__dict__["improved"]
        torch.save(payload, ck)
        resumed = fit(Backprop(lr=0.02), net, X, Y, epochs=80, checkpoint=ck, resume=True,
                      min_delta=delta, **args)
        assert len(resumed.history) == len(whole.history), k
        assert resumed.best_epoch == whole.best_epoch


def test_new_data_with_resume_is_a_clear_error(tmp_path):
    X, y = _data()
    net, method = network([8, 4, 3]), get_method("lifted")
    ck = tmp_path / "run.ckpt"
    fit(method, net, X, y, epochs=1, checkpoint=ck, progress=False)
    with pytest.raises(ValueError, match="new_data applies to a given state"):
        fit(method, net, X, y, epochs=2, checkpoint=ck, resume=True, new_data=True,
            progress=False)


def _damage_state_weights(saved, change):
    W, b = saved["state"].params[0]
    saved["state"].params[0] = change(W, b)


DAMAGES = [
    (lambda c: c.pop("state"), "(no state)"),
    (lambda c: c.pop("history"), "(no history)"),
    (lambda c: c.pop("generator"), "(no generator)"),
    (lambda c: c.update(history=None), "its history is a NoneType, not a list"),
    (lambda c: c.update(history=["a"]), "its history's entry 1 is not epoch 1's record"),
    (lambda c: c["history"][0].update(objective="x"), "epoch 1 has objective = 'x'"),
    (lambda c: c.update(generator=torch.zeros(3, dtype=torch.uint8)),
     "its batch-order generator state is unusable"),
    (lambda c: c.update(generator=torch.zeros(5056)), "generator state is unusable"),
    (lambda c: c.update(state="state"), "its state is a str, not a method state"),
    (lambda c: c.update(seconds="abc"), "its training time is 'abc'"),
    (lambda c: _damage_state_weights(c, lambda W, b: (W[:, :5], b)),
     "its state's weights: layer 0 has W (6, 5) and b (6,), its network W (6, 8)"),
    (lambda c: _damage_state_weights(c, lambda W, b: (W, b[:2])),
     "its state's weights: layer 0 has W (6, 8) and b (2,)"),
    (lambda c: _damage_state_weights(c, lambda W, b: (W * float("nan"), b)),
     "its state's weights: layer 0 holds NaN or infinite values"),
    (lambda c: _damage_state_weights(c, lambda W, b: W), "layer 0 is not a (W, b) pair"),
]


@pytest.mark.parametrize("damage, message", DAMAGES)
def test_a_damaged_checkpoint_body_is_a_clear_error(damage, message, tmp_path):
    """A checkpoint of the right format and run whose body is damaged gave KeyError,
    TypeError or RuntimeError tracebacks (or trained on from NaN weights) on resume."""
    X, y = _data()
    net, method = network("8-6-3", loss="ce"), get_method("lifted")
    ck = tmp_path / "run.ckpt"
    fit(method, net, X, y, epochs=1, batch_size=40, seed=1, progress=False, checkpoint=ck)
    saved = torch.load(ck, weights_only=False)
    damage(saved)
    torch.save(saved, ck)
    with pytest.raises(ValueError, match=f"{ck} is a damaged checkpoint .*"
                                         f"{re.escape(message)}"):
        fit(method, net, X, y, epochs=2, batch_size=40, seed=1, progress=False,
            checkpoint=ck, resume=True)


def test_checkpoints_are_checked_whole_before_loading(tmp_path):
    """A flipped bit in a stored tensor resumed silently from altered weights (torch.load
    checks no CRC); a checkpoint cut short said "[Errno 22] Invalid argument"."""
    import zipfile

    X, y = _data()
    net, method = network("8-6-3", loss="ce"), get_method("lifted")
    ck = tmp_path / "run.ckpt"
    fit(method, net, X, y, epochs=1, seed=1, progress=False, checkpoint=ck)
    whole = ck.read_bytes()
    with zipfile.ZipFile(ck) as archive:  # the first tensor's first byte
        info = min((i for i in archive.infolist() if "/data/" in i.filename and i.file_size),
                   key=lambda i: i.header_offset)
    start = info.header_offset + 30 + int.from_bytes(
        whole[info.header_offset + 26:info.header_offset + 28], "little") + int.from_bytes(
        whole[info.header_offset + 28:info.header_offset + 30], "little")
    flipped = bytearray(whole)
    flipped[start] ^= 0x01
    ck.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match=r"run\.ckpt is corrupt or truncated \(.*CRC"):
        fit(method, net, X, y, epochs=2, seed=1, progress=False, checkpoint=ck, resume=True)
    for cut in (len(whole) // 3, len(whole) // 2, len(whole) - 100):
        ck.write_bytes(whole[:cut])
        with pytest.raises(ValueError, match=r"run\.ckpt is truncated or corrupt"):
            fit(method, net, X, y, epochs=2, seed=1, progress=False, checkpoint=ck,
                resume=True)
    assert ck.read_bytes() == whole[:len(whole) - 100]  # a refused file is left as it is


def test_an_unpicklable_state_is_told_apart_from_a_failed_write(tmp_path, monkeypatch):
    from liftnet.checkpoint import save_checkpoint

    with pytest.raises(ValueError, match="cannot checkpoint this training state"):
        save_checkpoint(tmp_path / "c.pt", {"state": lambda: None})
    assert not any(tmp_path.iterdir())

    def full(fd, *args, **kwargs):  # every write to the temporary file: ENOSPC
        import errno
        import os

        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("liftnet.results.os.fsync", full)
    with pytest.raises(OSError, match=r"cannot write .*c\.pt: No space left on device"):
        save_checkpoint(tmp_path / "c.pt", {"state": [torch.zeros(4)]})
    assert not any(tmp_path.iterdir())


def test_data_fingerprints_see_small_changes_at_any_size():
    """A resume on other data is refused at the size of MNIST too: two rows swapped, two
    labels swapped, five entries of the first row changed (the position-weighted projection
    of older liftnets let the first rows hardly count, and its tolerance grew with the data);
    the same data in other memory, or summed on another chunking, is accepted."""
    from liftnet import checkpoint

    g = torch.Generator().manual_seed(0)
    X = torch.rand(60000, 10, generator=g)
    y = torch.randint(0, 3, (60000,), generator=g)
    record = checkpoint.data_record(X, y)
    assert checkpoint.same_data(record, checkpoint.data_record(X.clone(), y.clone()))
    swapped = torch.arange(60000)
    swapped[[0, 1]] = swapped[[1, 0]]
    blanked = X.clone()
    blanked[0, :5] = 0.0
    yy = y.clone()
    i, j = int((y == 0).nonzero()[0]), int((y == 2).nonzero()[0])
    yy[i], yy[j] = 2, 0
    for X2, y2 in ((X[swapped], y[swapped]), (blanked, y), (X, yy), (X - X.mean(), y)):
        assert not checkpoint.same_data(record, checkpoint.data_record(X2, y2))
    # regression targets compare on their own scale, not the inputs'
    t = 1e-6 * torch.randn(60000, 1, generator=g, dtype=torch.float64)
    assert not checkpoint.same_data(checkpoint.data_record(X, t), checkpoint.data_record(X, -t))
    # an older liftnet's record (sum, squared norm, position-weighted projection) still resumes
    old = record[:4] + record[4:7] + record[9:12]
    assert checkpoint.same_data(old, checkpoint.data_record(X, y))
    assert not checkpoint.same_data(old, checkpoint.data_record(X + 0.5, y))
    # fit hands its data record to run_record instead of fingerprinting X twice: the same
    args = (get_method("lifted"), network("10-4-3", loss="ce"), X, y, 0, 1, None)
    assert checkpoint.run_record(*args, data=record) == checkpoint.run_record(*args)
    # a chunking of the float64 sums other than the fingerprint's own: rounding only
    monkey = pytest.MonkeyPatch()
    monkey.setattr(checkpoint, "_FINGERPRINT_ROWS", 5000)
    try:
        assert checkpoint.same_data(record, checkpoint.data_record(X, y))
    finally:
        monkey.undo()


# Review 33 (mutation audit of checkpoint.py): damaged bodies, older checkpoints, the pinned
# fingerprint, its tolerances.

_NOT_IMPORTABLE = lambda: None  # noqa: E731  pickle looks it up by name: PicklingError


def test_a_state_that_raises_picklingerror_is_a_cannot_checkpoint_error(tmp_path):
    """pickle.PicklingError (an object pickle cannot find under its name), not only the
    AttributeError of a local lambda, is told apart as 'cannot checkpoint'; nothing written."""
    from liftnet.checkpoint import save_checkpoint

    with pytest.raises(ValueError, match="cannot checkpoint this training state"):
        save_checkpoint(tmp_path / "c.pt", {"state": _NOT_IMPORTABLE})
    assert not any(tmp_path.iterdir())


def test_a_checkpoint_without_its_run_record_is_a_clear_error(tmp_path):
    X, y = _data()
    net, method = network("8-6-3", loss="ce"), get_method("lifted")
    ck = tmp_path / "run.ckpt"
    fit(method, net, X, y, epochs=1, batch_size=40, seed=1, progress=False, checkpoint=ck)
    for damage, message in ((lambda c: c.pop("run"), "(no run)"),
                            (lambda c: c.update(run=None), "(no run record)")):
        saved = torch.load(ck, weights_only=False)
        damage(saved)
        torch.save(saved, tmp_path / "bad.ckpt")
        with pytest.raises(ValueError, match=re.escape(f"is a damaged checkpoint {message}")):
            fit(method, net, X, y, epochs=2, batch_size=40, seed=1, progress=False,
                checkpoint=tmp_path / "bad.ckpt", resume=True)


def test_an_older_records_rule_still_sees_a_changed_entry():
    """A record of an older liftnet (sum, squared norm, position-weighted projection) is
    compared at its own rule's 1e-6 relative tolerance: one entry changed by 1e-4 is other data."""
    from liftnet import checkpoint

    g = torch.Generator().manual_seed(0)
    X = torch.randn(120, 8, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (120,), generator=g)
    record = checkpoint.data_record(X, y)
    old = record[:4] + record[4:7] + record[9:12]
    assert checkpoint.same_data(old, checkpoint.data_record(X.clone(), y.clone()))
    X2 = X.clone()
    X2[60, 3] += 1e-4
    assert not checkpoint.same_data(old, checkpoint.data_record(X2, y))


# data_record of a fixed (X, y), as written by liftnet on 2026-11-29: checkpoints already on
# disk hold these numbers, so a change of the fingerprint refuses to resume every one of them
PINNED_RECORD = [[6, 4], "torch.float64", [6], "torch.int64", 22.285714285714285,
                 44.163265306122454, 19.112334471467374, -0.7695454471117024,
                 -0.3520614806004797, 6.0, 10.000000000000002, 2.2495268603195995,
                 2.198009442250861, 4.457356339953608]


def test_the_data_fingerprint_is_pinned():
    from liftnet import checkpoint

    X = (torch.arange(24, dtype=torch.float64).reshape(6, 4) - 5) / 7
    y = torch.tensor([0, 1, 2, 1, 0, 2])
    record = checkpoint.data_record(X, y)
    assert record[:4] == PINNED_RECORD[:4]
    assert len(record) == len(PINNED_RECORD)
    for got, want in zip(record[4:], PINNED_RECORD[4:], strict=True):
        assert math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-12), (got, want)
    # and such a pinned record (an older checkpoint's) is accepted for the same data
    assert checkpoint.same_data(PINNED_RECORD, record)
    # the 3-number record of liftnets before 2026-11-29 too
    old = PINNED_RECORD[:4] + PINNED_RECORD[4:7] + PINNED_RECORD[9:12]
    assert checkpoint.same_data(old, record)


def _checkpoint(tmp_path, **kw):
    X, y = _data()
    net, method = network("8-6-3", loss="ce"), get_method("lifted")
    ck = tmp_path / "run.ckpt"
    fit(method, net, X, y, epochs=1, batch_size=40, seed=1, progress=False, checkpoint=ck, **kw)
    return X, y, net, method, ck


def _set_weights(c, which, change):
    params = c["state"].params if which == "state" else c["best"].params
    params[0] = change(*params[0])


MORE_DAMAGES = {
    "run None": (lambda c: c.update(run=None), "(no run record)"),
    "step -1": (lambda c: setattr(c["state"], "step", -1), "step counter is -1"),
    "step True": (lambda c: setattr(c["state"], "step", True), "step counter is True"),
    "best NaN": (lambda c: _set_weights(c, "best", lambda W, b: (W * math.nan, b)),
                 "its best validation epoch's weights: layer 0 holds NaN"),
    "epoch True": (lambda c: c["history"][0].update(epoch=True), "entry 1 is not epoch 1's"),
    "epoch 2": (lambda c: c["history"][0].update(epoch=2), "entry 1 is not epoch 1's"),
    "objective True": (lambda c: c["history"][0].update(objective=True), "objective = True"),
    "val_loss str": (lambda c: c["history"][0].update(val_loss="x"), "val_loss = 'x'"),
    "seconds inf": (lambda c: c.update(seconds=math.inf), "its training time is inf"),
    "seconds -1": (lambda c: c.update(seconds=-1.0), "its training time is -1.0"),
    "no layers": (lambda c: setattr(c["state"], "params", []), "expected a list of (W, b)"),
    "a layer missing": (lambda c: c["state"].params.pop(), "1 layers, its network has 2"),
    "int weights": (lambda c: _set_weights(c, "state", lambda W, b: (W.long(), b)),
                    "layer 0 is not a (W, b) pair of floating-point tensors"),
    "b NaN": (lambda c: _set_weights(c, "state", lambda W, b: (W, b * math.nan)),
              "layer 0 holds NaN or infinite values"),
    "W 1-D (no run shapes)": (lambda c: (c["run"].pop("param_shapes"), _set_weights(
        c, "state", lambda W, b: (W[:, 0], b))), "layer 0 has W (6,) and b (6,)"),
    "W inf": (lambda c: _set_weights(
        c, "state", lambda W, b: (W.index_fill(0, torch.tensor([0]), math.inf), b)),
        "layer 0 holds NaN or infinite values"),
    "augment_generator str": (lambda c: c.update(augment_generator="x"),
                              "its augmentation generator state is unusable"),
    "augment_generator short": (lambda c: c.update(augment_generator=torch.zeros(
        3, dtype=torch.uint8)), "its augmentation generator state is unusable"),
}


@pytest.mark.parametrize("name", list(MORE_DAMAGES))
def test_more_damaged_checkpoint_bodies_are_clear_errors(name, tmp_path):
    damage, message = MORE_DAMAGES[name]
    X, y, net, method, ck = _checkpoint(tmp_path, X_val=_data()[0][:20], y_val=_data()[1][:20])
    saved = torch.load(ck, weights_only=False)
    damage(saved)
    torch.save(saved, ck)
    with pytest.raises(ValueError, match=f"is a damaged checkpoint .*{re.escape(message)}"):
        fit(method, net, X, y, epochs=2, batch_size=40, seed=1, progress=False,
            checkpoint=ck, resume=True, X_val=X[:20], y_val=y[:20])


OLDER = {
    "no seconds": lambda c: c.pop("seconds"),
    "no param_shapes": lambda c: c["run"].pop("param_shapes"),
    "no scored sets": lambda c: (c["run"].pop("test"), c["run"].pop("val")),
    "no augmentation": lambda c: (c.pop("augment_generator"), c["run"].pop("augment"),
                                  c["run"].pop("schedule")),
}


@pytest.mark.parametrize("name", list(OLDER))
def test_checkpoints_of_older_liftnets_still_resume(name, tmp_path):
    """What older liftnets did not write (the training time, the weight shapes, the scored
    sets) is not required: such a checkpoint resumes to the uninterrupted run's weights."""
    X, y, net, method, ck = _checkpoint(tmp_path)
    saved = torch.load(ck, weights_only=False)
    OLDER[name](saved)
    torch.save(saved, ck)
    resumed = fit(method, net, X, y, epochs=2, batch_size=40, seed=1, progress=False,
                  checkpoint=ck, resume=True)
    whole = fit(method, net, X, y, epochs=2, batch_size=40, seed=1, progress=False)
    torch.testing.assert_close(resumed.state.params, whole.state.params)


def test_resuming_from_other_starting_biases_is_refused(tmp_path):
    X, y = _data()
    net, method = network("8-6-3", loss="ce"), get_method("lifted")
    start = method.init_state(net, X, None, generator=torch.Generator().manual_seed(0)).params
    ck = tmp_path / "run.ckpt"
    fit(method, net, X, y, epochs=1, batch_size=40, seed=1, progress=False, checkpoint=ck,
        params=start)
    other = [(W, b + 0.1) for W, b in start]  # the same weights, other biases
    with pytest.raises(ValueError, match="its run started from other weights"):
        fit(method, net, X, y, epochs=2, batch_size=40, seed=1, progress=False,
            checkpoint=ck, resume=True, params=other)


def test_regression_targets_are_fingerprinted_in_float64():
    """Targets that differ below float32's resolution are other data (fit trains on float64
    targets as they are when X is float64)."""
    from liftnet import checkpoint

    g = torch.Generator().manual_seed(0)
    X = torch.randn(100, 3, generator=g, dtype=torch.float64)
    t = torch.randn(100, 1, generator=g, dtype=torch.float64)
    t[5] = 1.0
    t2 = t.clone()
    t2[5] = 1.0 + 3e-8  # the same float32 number
    assert t.float().equal(t2.float())
    assert not checkpoint.same_data(checkpoint.data_record(X, t), checkpoint.data_record(X, t2))


def test_same_data_compares_the_labels_shape_and_dtype():
    from liftnet import checkpoint

    g = torch.Generator().manual_seed(0)
    X = torch.randn(50, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (50,), generator=g)
    t = torch.randn(50, generator=g, dtype=torch.float64)
    record = checkpoint.data_record(X, y)
    assert checkpoint.same_data(record, checkpoint.data_record(X, y.clone()))
    assert not checkpoint.same_data(record, checkpoint.data_record(X, y.int()))
    assert not checkpoint.same_data(checkpoint.data_record(X, t),
                                    checkpoint.data_record(X, t[:, None]))


def test_a_small_change_in_the_first_row_is_other_data():
    """The random-weight projections see a change of 1e-5 in one entry of the first row of
    positive data (whose sum is large, and which the position-weighted projection hardly
    weighs) at the 1e-9 tolerance."""
    from liftnet import checkpoint

    X, y = _data()
    X2 = X.clone()
    X2[0, 3] += 1e-5
    record = checkpoint.data_record(X, y)
    assert checkpoint.same_data(record, checkpoint.data_record(X.clone(), y))
    assert not checkpoint.same_data(record, checkpoint.data_record(X2, y))


def test_standardised_data_in_another_memory_layout_is_the_same_data():
    """Sums near zero (standardised data) differ by rounding only when the same data lie in
    another memory layout: compared relative to the norm, they are the same data."""
    from liftnet import checkpoint

    g = torch.Generator().manual_seed(0)
    X = torch.randn(20000, 10, generator=g, dtype=torch.float64)
    X = (X - X.mean(0)) / X.std(0)
    y = torch.randint(0, 3, (20000,), generator=g)
    assert checkpoint.same_data(checkpoint.data_record(X, y),
                                checkpoint.data_record(X.t().contiguous().t(), y))


def test_the_tolerance_is_relative_to_the_norm_not_the_squared_norm():
    """A change of 1e-5 in one entry of zero-mean data of norm ~126 is far above 1e-9 of the
    norm (it moves the sum by 1e-5): other data."""
    from liftnet import checkpoint

    g = torch.Generator().manual_seed(0)
    X = torch.randn(2000, 8, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (2000,), generator=g)
    X[0, 3] = 0.1
    X2 = X.clone()
    X2[0, 3] += 1e-5
    assert not checkpoint.same_data(checkpoint.data_record(X, y), checkpoint.data_record(X2, y))
