"""The shared training loop: clear errors for bad input, history, resuming."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from liftnet import Backprop, Lifted, fit, mlp
from liftnet.metrics import accuracy


@pytest.fixture
def net():
    return mlp("4-5-3")


def _data(n=12, d=4, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, d, generator=g, dtype=dtype), torch.arange(n) % 3


@pytest.mark.parametrize("mutate,message", [
    (lambda X, y: (X[:, :3], y), "3 features but the architecture 4-5-3 expects 4"),
    (lambda X, y: (X, y[:5]), "differ in length"),
    (lambda X, y: (X.clone().index_fill_(0, torch.tensor([2]), float("nan")), y), "NaN"),
    (lambda X, y: (X, y + 3), r"labels must lie in \[0, 2\]"),
    (lambda X, y: (X, y[:, None]), "labels must be a 1-D"),
    (lambda X, y: (X.long(), y), "float32 or float64"),
    (lambda X, y: (X.half(), y), "float32 or float64, got torch.float16"),
    (lambda X, y: (X[:0], y[:0]), "empty"),
    (lambda X, y: (X[None], y), "2-D"),
    (lambda X, y: (X * 1e20, y), r"inputs reach \d.*e\+20, too large for torch.float32"),
    (lambda X, y: (X, y == 1), "labels are torch.bool: give class labels as int64"),
    (lambda X, y: (X, y.to(torch.int8) - 1), "labels are torch.int8"),
    (lambda X, y: (X, y[0]), "labels must be a 1-D .* got a 0-d tensor"),
    (lambda X, y: (X.to_sparse(), y), "inputs are a torch.sparse_coo tensor: give a dense"),
])
def test_bad_training_data_gets_a_clear_error(net, mutate, message):
    X, y = mutate(*_data())
    with pytest.raises(ValueError, match=message):
        fit(Lifted(), net, X, y, epochs=1, progress=False)


def test_integer_labels_for_a_regression_network_name_the_mismatch():
    X, y = _data()
    with pytest.raises(ValueError, match=r"integer class labels \(range \[0, 2\]\) but 4-5-1 "
                                         "has one output, a regression: give float targets"):
        fit(Lifted(), mlp("4-5-1", loss="mse"), X, y, epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"integer class labels \(range \[0, 0\]\) but 4-5-1 "):
        fit(Lifted(), mlp("4-5-1", loss="mse"), X, y * 0, epochs=1, progress=False)  # in range
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\].*give float targets"):
        fit(Lifted(), mlp("4-5-2", loss="mse"), X, y, epochs=1, progress=False)
    fit(Lifted(), mlp("4-5-1", loss="mse"), X, y.double()[:, None], epochs=1, progress=False)


def test_bad_test_data_and_loop_arguments(net):
    X, y = _data()
    with pytest.raises(ValueError, match="both X_test and y_test"):
        fit(Lifted(), net, X, y, epochs=1, X_test=X, progress=False)
    with pytest.raises(ValueError, match="must match the training inputs"):
        fit(Lifted(), net, X, y, epochs=1, X_test=X.double(), y_test=y, progress=False)
    with pytest.raises(ValueError, match="epochs must be >= 0"):
        fit(Lifted(), net, X, y, epochs=-1, progress=False)
    with pytest.raises(ValueError, match="epochs must be an integer, got '3'"):
        fit(Lifted(), net, X, y, epochs="3", progress=False)
    with pytest.raises(ValueError, match="batch_size must be an integer"):
        fit(Lifted(), net, X, y, epochs=1, batch_size=2.5, progress=False)
    with pytest.raises(ValueError, match="state must be a MethodState"):
        fit(Lifted(), net, X, y, epochs=1, state=object(), progress=False)
    with pytest.raises(ValueError, match=r"method must be a training method .* call it"):
        fit(Lifted, net, X, y, epochs=1, progress=False)
    with pytest.raises(ValueError, match="method must be a training method"):
        fit("lifted", net, X, y, epochs=1, progress=False)
    with pytest.raises(ValueError, match="net must be a Network"):
        fit(Lifted(), "4-8-3", X, y, epochs=1, progress=False)
    for seed in (1.5, "1", -1, 2**64, True):
        with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*63\)"):
            fit(Lifted(), net, X, y, epochs=1, seed=seed, progress=False)
    # numpy integers (a grid search's np.arange) are integers: the same run as Python ints
    a = fit(Lifted(), net, X, y, epochs=np.int64(2), batch_size=np.int32(6), seed=np.int64(1),
            progress=False)
    b = fit(Lifted(), net, X, y, epochs=2, batch_size=6, seed=1, progress=False)
    assert len(a.history) == 2 and torch.equal(a.state.params[0][0], b.state.params[0][0])
    with pytest.raises(ValueError, match=r"layer 0: expected a \(W, b\) pair"):
        fit(Lifted(), net, X, y, epochs=1, params=[(1.0, 2.0), (3.0, 4.0)], progress=False)


def test_regression_targets_beyond_the_inputs_dtype_are_refused():
    X, _ = _data()
    for big in (1e39, 1e20):  # float64 targets, float32 inputs: inf (or overflowing sums)
        Y = torch.full((12, 1), big, dtype=torch.float64)
        with pytest.raises(ValueError, match="targets reach .* too large for the inputs' "
                                             "torch.float32"):
            fit(Lifted(), mlp("4-5-1", loss="mse"), X, Y, epochs=1, progress=False)
    fit(Lifted(), mlp("4-5-1", loss="mse"), X.double(), torch.full((12, 1), 1e20,
        dtype=torch.float64), epochs=1, progress=False)  # fine in float64


def test_regression_targets_and_float64(net):
    X, _ = _data(dtype=torch.float64)
    Y = torch.randn(12, 3, dtype=torch.float64)
    res = fit(Lifted(), mlp("4-5-3", loss="mse"), X, Y, epochs=2, progress=False)
    assert res.state.params[0][0].dtype == torch.float64
    assert res.history[-1]["train_accuracy"] is None
    with pytest.raises(ValueError, match="cross-entropy needs integer class labels"):
        fit(Lifted(), net, X, Y, epochs=1, progress=False)


def test_resuming_from_a_state_continues_training(net):
    X, y = _data()
    first = fit(Backprop(lr=0.1), net, X, y, epochs=2, batch_size=4, progress=False)
    steps = first.state.step
    more = fit(Backprop(lr=0.1), net, X, y, epochs=1, batch_size=4, state=first.state,
               progress=False)
    assert more.state.step == steps + 3


def test_objective_refuses_a_batch_the_state_does_not_hold(net):
    X, y = _data()
    method = Lifted()
    res = fit(method, net, X, y, epochs=1, progress=False)
    from liftnet.metrics import targets_for

    with pytest.raises(ValueError, match="hold 12 samples, the batch 5"):
        method.objective(net, res.state, X[:5], targets_for(net, y[:5], X.dtype))


def test_a_validation_set_is_scored_every_epoch_and_checked(net):
    """fit(X_val=...): every history entry holds the validation accuracy of that epoch's
    weights; no validation set, no key; bad validation data get the test set's clear errors."""
    X, y = _data(n=30)
    Xv, yv = _data(n=9)
    Xv = Xv + 0.5  # other samples than the training set's first nine
    scored = []
    res = fit(Lifted(), net, X, y, epochs=3, batch_size=10, X_val=Xv, y_val=yv, X_test=X,
              y_test=y, progress=False,
              callback=lambda e, s: scored.append(accuracy(net, s.params, Xv, yv)))
    assert [e["val_accuracy"] for e in res.history] == scored
    assert res.history[-1]["test_accuracy"] == accuracy(net, res.state.params, X, y)
    plain = fit(Lifted(), net, X, y, epochs=3, batch_size=10, progress=False)
    assert all("val_accuracy" not in e for e in plain.history)
    torch.testing.assert_close(plain.state.params, res.state.params)  # scoring trains nothing
    with pytest.raises(ValueError, match="both X_val and y_val"):
        fit(Lifted(), net, X, y, epochs=1, X_val=Xv, progress=False)
    with pytest.raises(ValueError, match="validation inputs .* must match the training inputs"):
        fit(Lifted(), net, X, y, epochs=1, X_val=Xv.double(), y_val=yv, progress=False)
    with pytest.raises(ValueError, match=r"validation labels must lie in \[0, 2\]"):
        fit(Lifted(), net, X, y, epochs=1, X_val=Xv, y_val=yv + 3, progress=False)


def test_early_stopping_stops_after_patience_and_keeps_the_best_weights(net):
    """fit(patience=3): training stops once 3 epochs in a row bring no better validation
    accuracy (a tie is no gain; a later gain restarts the count), and ``best_params`` are the
    weights after the best epoch, those of a run of that many epochs."""
    X, y = _data(n=30)
    Xv, yv = _data(n=9)
    Xv = Xv + 0.5
    res = fit(Lifted(), net, X, y, epochs=30, batch_size=10, X_val=Xv, y_val=yv,
              progress=False, patience=3)
    vals = [e["val_accuracy"] for e in res.history]
    best = vals.index(max(vals)) + 1
    assert res.stopped_early and res.best_epoch == best and len(vals) == best + 3
    # the rule replayed on the scores: the first epoch 3 epochs past the running best
    top, top_at, stop = -1.0, 0, None
    for k, v in enumerate(vals, 1):
        top, top_at = (v, k) if v > top else (top, top_at)
        if stop is None and k - top_at >= 3:
            stop = k
    assert stop == len(vals)
    assert vals[1] < vals[0] < max(vals)  # here a dip and a later gain: the count restarts
    short = fit(Lifted(), net, X, y, epochs=best, batch_size=10, progress=False)
    torch.testing.assert_close(res.best_params, short.state.params)
    assert accuracy(net, res.best_params, Xv, yv) == max(vals)
    # without patience the run goes on; the best epoch is still reported
    whole = fit(Lifted(), net, X, y, epochs=best + 5, batch_size=10, X_val=Xv, y_val=yv,
                progress=False)
    assert len(whole.history) == best + 5 and not whole.stopped_early
    assert whole.best_epoch == best
    torch.testing.assert_close(whole.best_params, short.state.params)
    assert fit(Lifted(), net, X, y, epochs=2, progress=False).best_params is None
    # patience running out with the last epoch: all epochs ran, nothing was cut short
    exact = fit(Lifted(), net, X, y, epochs=best + 3, batch_size=10, X_val=Xv, y_val=yv,
                progress=False, patience=np.int64(3))
    assert len(exact.history) == best + 3 and not exact.stopped_early


def _replay(scores, patience, min_delta):
    """The epoch where early stopping with ``min_delta`` stops (scikit-learn's ``tol`` rule:
    a gain counts only above best + min_delta; the best score moves with every gain)."""
    best, improved = -math.inf, 0
    for k, v in enumerate(scores, 1):
        if k - 1 - improved >= patience and k > 1:
            return k - 1
        if v > best + min_delta:
            improved = k
        best = max(best, v)
    return len(scores) if len(scores) - improved >= patience else None


def test_min_delta_counts_only_gains_above_it_and_keeps_the_best_weights():
    """fit(patience, min_delta): gains of at most min_delta do not reset the patience, so the
    run stops earlier on a slowly falling validation loss, while best_epoch and best_params
    are still those of the lowest loss."""
    g = torch.Generator().manual_seed(1)
    X = torch.randn(60, 4, generator=g, dtype=torch.float64)
    Y = torch.sin(X @ torch.randn(4, 2, generator=g, dtype=torch.float64))
    net = mlp("4-8-2", loss="mse")
    args = {"epochs": 80, "batch_size": 20, "X_val": X[:20] + 0.05, "y_val": Y[:20],
            "progress": False, "patience": 3}
    plain = fit(Backprop(lr=0.02), net, X, Y, **args)
    losses = [e["val_loss"] for e in plain.history]
    gains = sorted(a - b for a, b in zip(losses, losses[1:], strict=False) if a > b)
    delta = gains[len(gains) // 2]  # a typical gain
    res = fit(Backprop(lr=0.02), net, X, Y, min_delta=delta, **args)
    cut = [e["val_loss"] for e in res.history]
    assert cut == losses[:len(cut)]  # the same run, cut earlier
    assert len(cut) < len(losses) and res.stopped_early
    assert len(cut) == _replay([-v for v in losses], 3, delta)
    best = cut.index(min(cut)) + 1
    assert res.best_epoch == best
    short = fit(Backprop(lr=0.02), net, X, Y, epochs=best, batch_size=20, progress=False)
    torch.testing.assert_close(res.best_params, short.state.params)
    assert _replay([-v for v in losses], 3, 0.0) == len(losses)  # min_delta 0: plain rule


@pytest.mark.parametrize("kwargs, message", [
    ({"patience": 2, "min_delta": -0.1}, "min_delta must be a finite number >= 0"),
    ({"patience": 2, "min_delta": float("nan")}, "min_delta must be a finite number >= 0"),
    ({"patience": 2, "min_delta": "0.1"}, "min_delta must be a finite number >= 0"),
    ({"min_delta": 0.01}, "min_delta applies to early stopping: give patience too"),
    ({"patience": 0}, "patience must be an integer >= 1"),
    ({"patience": 2.5}, "patience must be an integer >= 1"),
    ({"patience": True}, "patience must be an integer >= 1"),
    ({"patience": 2, "X_val": None, "y_val": None}, "needs a validation set"),
])
def test_bad_patience_is_a_clear_error(net, kwargs, message):
    X, y = _data(n=30)
    args = {"X_val": X[:6], "y_val": y[:6], **kwargs}
    with pytest.raises(ValueError, match=message):
        fit(Lifted(), net, X, y, epochs=2, progress=False, **args)


def test_early_stopping_of_a_regression_watches_the_validation_loss():
    """Regression: every epoch records ``val_loss`` (mean ||output - y||^2 on the validation
    set), and patience counts the epochs without a lower one."""
    g = torch.Generator().manual_seed(1)
    X = torch.randn(40, 4, generator=g, dtype=torch.float64)
    Y = torch.sin(X @ torch.randn(4, 2, generator=g, dtype=torch.float64))
    Xv = torch.randn(10, 4, generator=g, dtype=torch.float64)
    Yv = torch.sin(Xv @ torch.randn(4, 2, generator=g, dtype=torch.float64))  # another map
    net = mlp("4-8-2", loss="mse")
    res = fit(Backprop(lr=0.05), net, X, Y, epochs=60, batch_size=10, X_val=Xv, y_val=Yv,
              patience=2, progress=False)
    losses = [e["val_loss"] for e in res.history]
    best = losses.index(min(losses)) + 1
    assert res.stopped_early and res.best_epoch == best and len(losses) == best + 2
    assert all(e["val_accuracy"] is None for e in res.history)
    out = net.outputs(res.best_params, Xv)
    assert float(((out - Yv) ** 2).sum(1).mean()) == pytest.approx(min(losses), rel=1e-12)


def test_float_targets_must_have_one_column_per_output():
    X, _ = _data()
    net = mlp("4-5-2", loss="mse")
    g = torch.Generator().manual_seed(1)
    Y = torch.randn(12, 2, generator=g)
    for bad in (Y[:, :, None], Y[:, 0], torch.randn(12, 3, generator=g)):
        with pytest.raises(ValueError, match=r"training targets must have shape \(N, 2\) for "
                                             r"the 2 output\(s\) of 4-5-2, got shape"):
            fit(Lifted(), net, X, bad, epochs=1, progress=False)
    for what, short in (("validation", "val"), ("test", "test")):
        with pytest.raises(ValueError, match=f"{what} targets must have shape"):
            fit(Lifted(), net, X, Y, epochs=1, progress=False,
                **{f"X_{short}": X, f"y_{short}": Y[:, :, None]})
    one = mlp("4-5-1", loss="mse")
    for good in (Y[:, 0], Y[:, :1]):
        assert len(fit(Lifted(), one, X, good, epochs=1, progress=False).history) == 1
    with pytest.raises(ValueError, match=r"shape \(N,\) or \(N, 1\) .* got shape \(12, 1, 1\)"):
        fit(Lifted(), one, X, Y[:, :1, None], epochs=1, progress=False)


def test_a_bad_checkpoint_path_or_callback_is_refused_before_training(net, tmp_path,
                                                                      monkeypatch):
    X, y = _data()
    method = Lifted()

    def no_training(*args, **kwargs):
        raise AssertionError("trained before the arguments were checked")

    monkeypatch.setattr(type(method), "step", no_training)
    (tmp_path / "file").write_text("x")
    for path, message in ((tmp_path, "is a directory"), (tmp_path / "file" / "ck", "is a file"),
                          ("", "empty file name")):
        with pytest.raises(ValueError, match=f"checkpoint.*{message}"):
            fit(method, net, X, y, epochs=1, checkpoint=path, progress=False)
    with pytest.raises(ValueError, match="callback must be callable"):
        fit(method, net, X, y, epochs=1, callback="print", progress=False)


def test_the_batch_size_defaults_to_the_methods_own(net):
    """fit without batch_size trains in the method's default batches, as the command line and
    the estimators do (backprop: 100, so 3 steps on 250 samples; lifted: the full data set)."""
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(250, 4, generator=g), torch.arange(250) % 3
    assert Backprop.default_batch_size == 100 and Lifted.default_batch_size == 0
    assert fit(Backprop(), net, X, y, epochs=1, progress=False).state.step == 3
    assert fit(Lifted(), net, X, y, epochs=1, progress=False).state.data_id != "batches"
    assert fit(Backprop(), net, X, y, epochs=1, batch_size=0, progress=False).state.step == 1


def test_the_epoch_objective_is_the_mean_over_its_batches(net, monkeypatch):
    """The history's objective of a mini-batch epoch is the mean of the batches' objectives
    (each after its step), not the last batch's."""
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(50, 4, generator=g), torch.arange(50) % 3
    method = Backprop(lr=0.1)
    seen = []
    real = type(method).objective

    def spy(self, *args, **kwargs):
        value = real(self, *args, **kwargs)
        seen.append(value)
        return value

    monkeypatch.setattr(type(method), "objective", spy)
    res = fit(method, net, X, y, epochs=2, batch_size=20, progress=False)
    assert len(seen) == 6 and len(set(seen)) > 1
    for epoch, entry in enumerate(res.history):
        assert entry["objective"] == pytest.approx(sum(seen[3 * epoch: 3 * epoch + 3]) / 3,
                                                   rel=1e-12)
