"""Augmentation of training batches (RandomShift) and hyperparameter schedules in fit and
on the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from liftnet import Backprop, fit, get_method, mlp
from liftnet.augment import RandomShift, augment_record, scheduled_methods
from liftnet.cli import main
from liftnet.methods.fenchel import LENET5_DEFAULTS


def _shifted_numpy(img: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """img (C, H, W) moved down by dy and right by dx pixels, zero fill (a reference written
    apart from RandomShift's padding and slicing)."""
    c, h, w = img.shape
    out = np.zeros_like(img)
    for i in range(h):
        for j in range(w):
            si, sj = i - dy, j - dx
            if 0 <= si < h and 0 <= sj < w:
                out[:, i, j] = img[:, si, sj]
    return out


@pytest.mark.parametrize("shape, shift", [((1, 6, 5), 1), ((2, 7, 7), 2)])
def test_random_shift_moves_every_image_by_at_most_max_shift_with_zero_fill(shape, shift):
    g = torch.Generator().manual_seed(0)
    X = torch.rand(400, int(np.prod(shape)), generator=g) + 0.5  # no zero pixel inside
    aug = RandomShift(shape, max_shift=shift)
    out = aug(X, torch.Generator().manual_seed(1))
    assert out.shape == X.shape and out.dtype == X.dtype
    seen = set()
    for x, o in zip(X.numpy(), out.numpy(), strict=True):
        matches = [(dy, dx) for dy in range(-shift, shift + 1) for dx in range(-shift, shift + 1)
                   if np.array_equal(_shifted_numpy(x.reshape(shape), dy, dx), o.reshape(shape))]
        assert len(matches) == 1  # exactly one translation within the range gives the image
        seen.add(matches[0])
    assert len(seen) == (2 * shift + 1) ** 2  # every shift is drawn (400 images)
    # the same generator state draws the same shifts; another one other shifts
    again = aug(X, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)
    assert not torch.equal(out, aug(X, torch.Generator().manual_seed(2)))


def test_random_shift_checks_its_arguments_and_inputs():
    assert RandomShift((8, 8)).image_shape == (1, 8, 8)
    for kwargs, message in [
        (dict(image_shape=(8,)), "image_shape"),
        (dict(image_shape=(1, 0, 8)), "image_shape"),
        (dict(image_shape="1x8x8"), "image_shape"),
        (dict(image_shape=(8, 8), max_shift=0), "max_shift"),
        (dict(image_shape=(8, 8), max_shift=1.5), "max_shift"),
        (dict(image_shape=(8, 8), max_shift=8), "below the image"),
        (dict(image_shape=(8, 8), epochs=0), "epochs"),
        (dict(image_shape=(8, 8), epochs=True), "epochs"),
    ]:
        with pytest.raises(ValueError, match=message):
            RandomShift(**kwargs)
    with pytest.raises(ValueError, match="needs rows of 64 features, got an array of shape"):
        RandomShift((8, 8))(torch.rand(3, 63), torch.Generator())
    aug = RandomShift((8, 8), epochs=2)
    assert [aug.applies(e) for e in (1, 2, 3)] == [True, True, False]


def _data(n=60, d=16, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, d, generator=g), torch.randint(0, k, (n,), generator=g)


class _Spy:
    """An augmentation that records the epochs it is called in and changes nothing."""

    def __init__(self, epochs=None):
        self.epochs, self.calls = epochs, 0

    def __call__(self, X, generator):
        self.calls += 1
        return X.clone()


def test_fit_with_an_identity_augmentation_is_the_plain_run():
    # the augmentation's generator is its own: the batch order and the initialisation of the
    # seed are those of the run without it
    X, y = _data()
    net = mlp([16, 8, 3], loss="ce")
    method = get_method("fenchel")
    plain = fit(method, net, X, y, epochs=2, batch_size=20, seed=3, progress=False)
    spy = _Spy(epochs=1)
    spied = fit(method, net, X, y, epochs=2, batch_size=20, seed=3, progress=False, augment=spy)
    assert spy.calls == 3  # 3 batches of the first epoch only
    for (W, b), (W2, b2) in zip(plain.state.params, spied.state.params, strict=True):
        assert torch.equal(W, W2) and torch.equal(b, b2)


def test_fit_trains_on_the_shifted_batches():
    X, y = _data(d=16)
    net = mlp([16, 8, 3], loss="ce")
    method = get_method("fenchel")
    plain = fit(method, net, X, y, epochs=2, batch_size=20, seed=3, progress=False)
    shifted = fit(method, net, X, y, epochs=2, batch_size=20, seed=3, progress=False,
                  augment=RandomShift((4, 4)))
    assert not torch.equal(plain.state.params[0][0], shifted.state.params[0][0])


def test_fit_refuses_an_augmentation_it_cannot_apply():
    X, y = _data()
    net = mlp([16, 8, 3], loss="ce")
    for kwargs, message in [
        (dict(augment="shift", batch_size=20), "augment must be callable"),
        (dict(augment=RandomShift((4, 4)), batch_size=0), "applies to batches"),
        (dict(augment=RandomShift((5, 5)), batch_size=20), "rows of 25 features, the inputs "
                                                            "have 16"),
    ]:
        with pytest.raises(ValueError, match=message):
            fit(get_method("fenchel"), net, X, y, epochs=1, progress=False, **kwargs)


def test_fit_names_an_augmentation_that_returns_another_shape():
    X, y = _data()
    with pytest.raises(ValueError, match=r"returned \(20, 15\) torch.float32 on cpu for a "
                                         r"batch of \(20, 16\)"):
        fit(get_method("fenchel"), mlp([16, 8, 3], loss="ce"), X, y, epochs=1, batch_size=20,
            progress=False, augment=lambda Xb, g: Xb[:, :15])


def test_a_schedule_changes_the_hyperparameters_from_its_epoch_on():
    X, y = _data()
    net = mlp([16, 8, 3], loss="ce")
    run = dict(epochs=2, batch_size=20, seed=1, progress=False)
    slow = fit(Backprop(lr=1e-3), net, X, y, **run)
    fast = fit(Backprop(lr=0.3), net, X, y, **run)
    # from epoch 1 on: the run of the other learning rate
    whole = fit(Backprop(lr=1e-3), net, X, y, schedule={1: {"lr": 0.3}}, **run)
    torch.testing.assert_close(whole.state.params[0][0], fast.state.params[0][0],
                               rtol=0, atol=0)
    # from epoch 2 on: the first epoch is the slow run's, the second another
    late = fit(Backprop(lr=1e-3), net, X, y, schedule={2: {"lr": 0.3}}, **run)
    assert late.history[0]["objective"] == slow.history[0]["objective"]
    assert late.history[1]["objective"] != slow.history[1]["objective"]
    assert late.state.optimizer.param_groups[0]["lr"] == 0.3


def test_start_only_hyperparameters_of_every_method_are_refused():
    for key, name in [("pbcd", "init_std"), ("convex", "start"), ("convex", "random_std"),
                      ("lifted", "init"), ("backprop", "bias_init")]:
        with pytest.raises(ValueError, match=f"'{name}' acts only when training starts"):
            scheduled_methods(get_method(key), {2: {name: getattr(get_method(key), name)}})


def test_a_schedule_is_checked_against_the_network_before_any_epoch(tmp_path):
    X, y = _data()
    ck = tmp_path / "ck.pt"
    with pytest.raises(ValueError, match="schedule: epoch 2: lams has 2 entries"):
        fit(get_method("fenchel"), mlp([16, 8, 3], loss="ce"), X, y, epochs=2, batch_size=20,
            progress=False, checkpoint=ck, schedule={2: {"lams": "1,2"}})
    assert not ck.exists()  # no epoch trained


def test_a_fenchel_schedule_applies_scalars_over_the_per_layer_lists():
    base = get_method("fenchel", **LENET5_DEFAULTS)
    methods = scheduled_methods(base, {4: {"lam": 2.0}, 3: {"target_extrapolation":
                                                              "600,60,1,1"}})
    assert sorted(methods) == [3, 4]
    assert methods[3].target_extrapolation == (600.0, 60.0, 1.0, 1.0)
    assert methods[3].lams == base.lams
    assert methods[4].lam == 2.0 and methods[4].lams is None  # lam replaces the lams list
    assert methods[4].target_extrapolation == (600.0, 60.0, 1.0, 1.0)  # epoch 3's kept


@pytest.mark.parametrize("schedule, message", [
    ([(2, {"lr": 1.0})], "must be a dict"),
    ({0: {"lr": 1.0}}, "epoch 0 must be an integer >= 1"),
    ({"2": {"lr": 1.0}}, "epoch '2' must be an integer"),
    ({2: {}}, "needs a dict"),
    ({2: {"nope": 1.0}}, "'nope' is not a hyperparameter of method backprop"),
    ({2: {"lr": -1.0}}, "epoch 2: lr must be"),
    ({2: {"optimizer": "sgd"}}, "acts only when training starts"),
    ({2: {"init": "normal"}}, "acts only when training starts"),
])
def test_a_bad_schedule_is_refused_before_training(schedule, message):
    X, y = _data()
    with pytest.raises(ValueError, match=message):
        fit(Backprop(), mlp([16, 8, 3], loss="ce"), X, y, epochs=2, batch_size=20,
            progress=False, schedule=schedule)


def test_resuming_with_augmentation_and_schedule_equals_the_uninterrupted_run(tmp_path):
    X, y = _data()
    net = mlp([16, 8, 3], loss="ce")
    kw = dict(batch_size=20, seed=2, progress=False, augment=RandomShift((4, 4), epochs=2),
              schedule={3: {"target_extrapolation": "3"}})
    method = get_method("fenchel")
    whole = fit(method, net, X, y, epochs=3, **kw)
    ck = tmp_path / "ck.pt"
    fit(method, net, X, y, epochs=2, checkpoint=ck, **kw)
    resumed = fit(method, net, X, y, epochs=3, checkpoint=ck, resume=True, **kw)
    for (W, b), (W2, b2) in zip(whole.state.params, resumed.state.params, strict=True):
        assert torch.equal(W, W2) and torch.equal(b, b2)
    for other, message in [
        (dict(kw, augment=RandomShift((4, 4), epochs=1)), "its augmentation"),
        (dict(kw, schedule={3: {"target_extrapolation": "2"}}), "its schedule"),
    ]:
        with pytest.raises(ValueError, match=message):
            fit(method, net, X, y, epochs=3, checkpoint=ck, resume=True, **other)


def _keep(X, generator):
    return X.clone()


class _Keep:
    def __call__(self, X, generator):
        return X.clone()


def test_a_custom_augmentation_is_recorded_without_its_memory_address(tmp_path):
    assert augment_record(_keep) == f"{__name__}._keep"
    assert augment_record(_Keep()) == f"{__name__}._Keep"
    assert augment_record(RandomShift((4, 4))) == repr(RandomShift((4, 4)))
    assert augment_record(None) is None
    # so a checkpoint of a run with another instance of it resumes
    X, y = _data()
    net = mlp([16, 8, 3], loss="ce")
    ck = tmp_path / "ck.pt"
    kw = dict(batch_size=20, seed=1, progress=False, checkpoint=ck)
    fit(get_method("fenchel"), net, X, y, epochs=1, augment=_Keep(), **kw)
    resumed = fit(get_method("fenchel"), net, X, y, epochs=2, augment=_Keep(), resume=True, **kw)
    assert len(resumed.history) == 2
    with pytest.raises(ValueError, match="its augmentation"):
        fit(get_method("fenchel"), net, X, y, epochs=3, augment=_keep, resume=True, **kw)


def test_an_augmentation_with_a_bad_epochs_attribute_is_named():
    X, y = _data()
    bad = _Keep()
    bad.epochs = "3"
    with pytest.raises(ValueError, match="has epochs='3'"):
        fit(get_method("fenchel"), mlp([16, 8, 3], loss="ce"), X, y, epochs=1, batch_size=20,
            progress=False, augment=bad)


def test_cli_shift_and_schedule_are_recorded(tmp_path):
    out = tmp_path / "run.json"
    assert main(["train", "--method", "fenchel", "--dataset", "digits", "--arch", "64-20-10",
                 "--epochs", "2", "--batch-size", "200", "--quiet", "--shift", "1",
                 "--shift-epochs", "1", "--schedule", "2:target-extrapolation=3",
                 "--schedule", "2:tol=1e-3", "--out", str(out)]) == 0
    cfg = json.loads(out.read_text())["config"]
    assert cfg["shift"] == 1 and cfg["shift_epochs"] == 1
    assert cfg["schedule"] == {"2": {"target_extrapolation": "3", "tol": 1e-3}}
    assert main(["train", "--method", "fenchel", "--dataset", "digits", "--arch", "64-20-10",
                 "--epochs", "1", "--quiet", "--out", str(out)]) == 0
    cfg = json.loads(out.read_text())["config"]
    assert cfg["shift"] is None and cfg["schedule"] is None


def test_cli_warns_of_a_schedule_beyond_the_last_epoch(capsys):
    assert main(["train", "--method", "fenchel", "--dataset", "digits", "--arch", "64-20-10",
                 "--epochs", "1", "--quiet", "--schedule", "3:tol=1e-3"]) == 0
    assert "--schedule 3:... is beyond --epochs 1" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--shift", "0"], "--shift 0: the shift must be an integer >= 1"),
    (["--shift", "8"], "--shift 8: the shift 8 must be below the image"),
    (["--shift-epochs", "2"], "--shift-epochs applies to --shift N"),
    (["--shift", "1", "--shift-epochs", "0"], "--shift-epochs must be >= 1, got 0"),
    (["--shift", "1", "--standardize"], "give one of --shift and --standardize"),
    (["--shift", "1", "--batch-size", "5000"], "or one at least the training set's size"),
    (["--schedule", "2:tol=1e-3", "--schedule", "2:tol=0.5"], "sets tol for epoch 2 twice"),
    (["--schedule", "\u00b2:tol=1e-3"], "write EPOCH:NAME=VALUE"),
    (["--schedule", "2:extrapolation=0.5"], "2:extrapolation applies to the full data set"),
    (["--schedule", "2:target-extrapolation=1,2"], "target_extrapolation has 2 entries"),
    (["--shift", "1", "--batch-size", "0"], "--shift applies to batches"),
    (["--schedule", "2-tol=1e-3"], "write EPOCH:NAME=VALUE"),
    (["--schedule", "x:tol=1e-3"], "write EPOCH:NAME=VALUE"),
    (["--schedule", "2:tol=abc"], "method fenchel expects float, got 'abc'"),
    (["--schedule", "2:tool=1e-3"], "'tool' is not a hyperparameter of method fenchel"),
    (["--schedule", "0:tol=1e-3"], "epoch 0 must be an integer >= 1"),
])
def test_cli_refuses_bad_shift_and_schedule_flags(extra, message, capsys):
    assert main(["train", "--method", "fenchel", "--dataset", "digits", "--arch", "64-20-10",
                 "--epochs", "2", "--quiet", *extra]) == 2
    assert message in capsys.readouterr().err


def test_cli_shift_needs_images(tmp_path, capsys):
    path = tmp_path / "d.npz"
    g = np.random.default_rng(0)
    np.savez(path, X_train=g.random((20, 5)), y_train=g.integers(0, 2, 20),
             X_test=g.random((6, 5)), y_test=g.integers(0, 2, 6))
    assert main(["train", "--method", "fenchel", "--dataset", str(path), "--epochs", "1",
                 "--batch-size", "10", "--quiet", "--shift", "1"]) == 2
    assert "is not an image data set" in capsys.readouterr().err
