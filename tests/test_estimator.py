"""liftnet.estimator: the scikit-learn estimator contract (sklearn's own checks) for every
trainable method, nested method parameters, and agreement with liftnet.fit."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils.estimator_checks import estimator_checks_generator

from liftnet import fit, get_method
from liftnet.estimator import LiftedClassifier, LiftedRegressor
from liftnet.graph import lenet5_spec, mlp, network
from liftnet.methods.fenchel import LENET5_DEFAULTS

ESTIMATORS = [
    LiftedClassifier("fenchel"),
    LiftedClassifier("lifted", epochs=5),
    LiftedClassifier("bregman"),
    LiftedClassifier("backprop"),
    LiftedClassifier("pbcd"),
    LiftedClassifier("admm", epochs=10),
    LiftedRegressor("fenchel"),
    LiftedRegressor(get_method("backprop", optimizer="adam", lr=1e-2), epochs=50),
    LiftedClassifier("fenchel", early_stopping=True, n_iter_no_change=2),
]
# Not run: scikit-learn's array-API check needs SCIPY_ARRAY_API=1 set before scipy is first
# imported (it changes scipy for the whole session) and liftnet does not claim array-API inputs.
NOT_RUN = {"check_array_api_input"}


def _name(check) -> str:
    return getattr(check, "func", check).__name__


CHECKS = [(est, check) for est_ in ESTIMATORS for est, check in estimator_checks_generator(est_)
          if _name(check) not in NOT_RUN]


@pytest.mark.parametrize("estimator, check", CHECKS,
                         ids=[f"{e}-{_name(c)}" for e, c in CHECKS])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    return train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)


def test_classifier_equals_liftnet_fit_and_learns_digits(digits):
    """The estimator is liftnet.fit with the method's defaults: the same weights, seed for seed,
    and a real fit (digits test accuracy above 0.9)."""
    X, Xt, y, yt = digits
    clf = LiftedClassifier("fenchel", hidden_layer_sizes=(64,), epochs=5, batch_size=100,
                           random_state=3).fit(X, y)
    net = network([64, 64, 10], loss="ce")
    ref = fit(get_method("fenchel"), net, torch.tensor(X, dtype=torch.float32),
              torch.as_tensor(y), epochs=5, batch_size=100, seed=3, progress=False)
    for (W, b), (W1, b1) in zip(clf.params_, ref.state.params, strict=True):
        assert torch.equal(W, W1) and torch.equal(b, b1)
    assert clf.score(Xt, yt) > 0.9
    assert len(clf.history_) == clf.n_iter_ == 5
    proba = clf.predict_proba(Xt)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(1)], clf.predict(Xt))
    with torch.no_grad():  # the exported torch.nn module computes the same logits
        logits = clf.to_torch().double()(torch.tensor(Xt)).numpy()
    np.testing.assert_allclose(logits, clf.decision_function(Xt), rtol=1e-6, atol=1e-6)


def test_lifted_probabilities_are_the_outputs_projected_onto_the_simplex(digits):
    """review 23: a lifted network's output layer is fitted to points of the simplex, so its
    outputs span about [0, 1]; their softmax was nearly uniform (a 95 %-accurate model at
    0.19 confidence).  predict_proba is the method's own rule (method_.probabilities)."""
    from sklearn.metrics import brier_score_loss

    from liftnet.solvers import project_simplex

    X, Xt, y, yt = digits
    clf = LiftedClassifier("lifted", hidden_layer_sizes=(64,), epochs=5,
                           random_state=0).fit(X, y)
    proba = clf.predict_proba(Xt)
    outputs = torch.as_tensor(clf.decision_function(Xt))
    np.testing.assert_allclose(proba, project_simplex(outputs).numpy(), atol=1e-12)
    assert (proba >= 0).all()
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-12)
    softmax = torch.softmax(outputs, 1).numpy()
    hit = proba[np.arange(len(yt)), np.searchsorted(clf.classes_, yt)]
    assert hit.mean() > 2 * softmax[np.arange(len(yt)), yt].mean()  # confident where right
    onehot = np.eye(10)[yt]
    assert brier_score_loss(onehot.ravel(), proba.ravel()) < brier_score_loss(
        onehot.ravel(), softmax.ravel())
    assert clf.score(Xt, yt) > 0.9


def test_warm_start_continues_from_the_last_weights(digits):
    """warm_start=True: a second fit starts from the first one's weights (liftnet.fit with
    params=...); without it, or with another network, from the method's initialisation."""
    X, _, y, _ = digits
    clf = LiftedClassifier("lifted", hidden_layer_sizes=(32,), epochs=2, random_state=1,
                           warm_start=True).fit(X, y)
    first = [(W.clone(), b.clone()) for W, b in clf.params_]
    clf.fit(X, y)
    net = network([64, 32, 10], loss="ce")
    Xt = torch.tensor(X, dtype=torch.float32)
    ref = fit(get_method("lifted"), net, Xt, torch.as_tensor(y), epochs=2, seed=1,
              params=first, progress=False)
    for (W, b), (W1, b1) in zip(clf.params_, ref.state.params, strict=True):
        assert torch.equal(W, W1) and torch.equal(b, b1)
    cold = LiftedClassifier("lifted", hidden_layer_sizes=(32,), epochs=2, random_state=1)
    cold.fit(X, y).fit(X, y)  # no warm start: the second fit repeats the first
    for (W, b), (W1, b1) in zip(cold.params_, first, strict=True):
        assert torch.equal(W, W1) and torch.equal(b, b1)
    with pytest.warns(UserWarning, match="the network changed"):  # a fresh start, said so
        clf.set_params(hidden_layer_sizes=(16,)).fit(X, y)
    assert clf.params_[0][0].shape == (16, 64)
    with pytest.raises(ValueError, match=r"warm_start needs y of the same classes .* y has "
                       r"\[5, 6"):
        clf.fit(X, y + 5)  # the old output units would answer for other classes
    with pytest.raises(ValueError, match=r"random_state must be an integer in \[0, 2\*\*32\)"):
        LiftedClassifier("lifted", epochs=1, random_state=-1).fit(X, y)


def test_string_labels_and_a_squared_loss_method(digits):
    """Labels need not be 0..k-1; a method without cross-entropy (ADMM) trains on one-hot
    targets and has no predict_proba."""
    X, Xt, y, yt = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                      "nine"])
    clf = LiftedClassifier("admm", hidden_layer_sizes=(64,), epochs=30).fit(X, names[y])
    assert set(clf.predict(Xt)) <= set(names)
    assert clf.loss_ == "mse" and not hasattr(clf, "predict_proba")
    assert clf.score(Xt, names[yt]) > 0.7


def test_nested_method_parameters_replace_the_method_and_grid_search(digits):
    X, _, y, _ = digits
    method = get_method("fenchel", lam=1.0)
    clf = LiftedClassifier(method)
    assert clf.get_params()["method__lam"] == 1.0
    clf.set_params(method__lam=2.0, epochs=1)
    assert clf.get_params()["method__lam"] == 2.0 and clf.epochs == 1
    assert clf.method_params == {"lam": 2.0} and clf.method is method
    assert method.lam == 1.0  # the caller's (frozen) method object is not changed
    for bad, match in (({"method__lamb": 1.0}, "method__lamb: not a hyperparameter"),
                       ({"method__lam": -1.0}, "lam"),  # the method's own validation
                       ({"epochz": 3}, "invalid parameter 'epochz'")):
        with pytest.raises(ValueError, match=match):
            clf.set_params(epochs=5, **bad)
        assert clf.epochs == 1 and clf.method_params == {"lam": 2.0}  # nothing changed
    search = GridSearchCV(LiftedClassifier("fenchel", hidden_layer_sizes=(32,), epochs=2),
                          {"method__lam": [0.5, 2.0]}, cv=2).fit(X[:400], y[:400])
    assert search.best_params_["method__lam"] in (0.5, 2.0)
    assert search.best_estimator_.method_.lam == search.best_params_["method__lam"]


def test_a_scalar_hyperparameter_with_the_list_that_replaces_it_is_refused():
    clf = LiftedClassifier("fenchel", hidden_layer_sizes=(8,))
    for both, names in (({"method__lam": 2.0, "method__lams": "1"}, "method__lam and method__lams"),
                        ({"method__gamma_out": 5.0, "method__gammas": "1,1"},
                         "method__gamma_out and method__gammas")):
        with pytest.raises(ValueError, match=f"{names} both given"):
            clf.set_params(**both)
        assert clf.method_params is None  # nothing changed
    own = LiftedClassifier(get_method("fenchel", lams="5"), method_params={"lam": 2.0})
    with pytest.raises(ValueError, match="method__lam would be ignored: the method's lams"):
        own._method()
    assert own.set_params(method__lams=None)._method().layer_lams(mlp("4-3-2")) == [2.0]
    # LeNet-5's per-layer defaults give way to a scalar given alone, as on the command line
    lenet = LiftedClassifier("fenchel", hidden_layer_sizes="lenet5", method_params={"lam": 3.0})
    assert lenet._method().layer_lams(lenet5_net()) == [3.0] * 4


def lenet5_net():
    return network(lenet5_spec((1, 28, 28), 10), loss="ce")


def test_nested_parameters_do_not_depend_on_the_order_of_the_calls():
    """method__lam before or after hidden_layer_sizes="lenet5": the same LeNet-5 defaults with
    the same override; back to a dense network, the LeNet-5 defaults go, the override stays."""
    a = LiftedClassifier("fenchel").set_params(method__lam=2.0)
    a.set_params(hidden_layer_sizes="lenet5")
    b = LiftedClassifier("fenchel").set_params(hidden_layer_sizes="lenet5")
    b.set_params(method__lam=2.0)
    lenet = {k: v for k, v in LENET5_DEFAULTS.items() if k != "lams"}  # lam replaces lams
    assert a._method() == b._method() == get_method("fenchel", **lenet, lam=2.0)
    assert a._method().layer_lams(lenet5_net()) == [2.0] * 4
    b.set_params(hidden_layer_sizes=(50,))
    assert b._method() == get_method("fenchel", lam=2.0)
    c = LiftedClassifier("fenchel", hidden_layer_sizes="lenet5",
                         method_params={"gamma": 3.0, "gamma_out": 7.0})
    assert c._method().layer_gammas(lenet5_net()) == [3.0, 3.0, 3.0, 3.0, 7.0]
    assert c.set_params(method__gamma=5.0)._method().layer_gammas(lenet5_net())[:4] == [5.0] * 4


def test_pipeline_and_cross_validation(digits):
    X, _, y, _ = digits
    pipe = make_pipeline(MinMaxScaler(), LiftedClassifier("lifted", hidden_layer_sizes=(32,),
                                                          epochs=5))
    scores = cross_val_score(pipe, X[:600], y[:600], cv=3)
    assert scores.shape == (3,) and scores.min() > 0.8


def test_convolutional_network_from_tokens_and_lenet5_needs_the_image_shape(digits):
    X, Xt, y, yt = digits
    clf = LiftedClassifier("fenchel", hidden_layer_sizes="conv4k3p1-pool2-32",
                           image_shape=(1, 8, 8), epochs=3, batch_size=100).fit(X, y)
    assert clf.net_.spec.startswith("1x8x8-conv4k3p1-pool2-32-10")
    assert clf.score(Xt, yt) > 0.85
    with pytest.raises(ValueError, match="needs image_shape"):
        LiftedClassifier(hidden_layer_sizes="lenet5").fit(X, y)
    with pytest.raises(ValueError, match="the network takes 784 input features"):
        LiftedClassifier(hidden_layer_sizes="conv4k3-16", image_shape=(1, 28, 28)).fit(X, y)
    with pytest.raises(ValueError, match="does not support Conv2d"):
        LiftedClassifier("lifted", hidden_layer_sizes="conv4k3-16",
                         image_shape=(1, 8, 8)).fit(X, y)
    with pytest.raises(ValueError, match="LeNet-5 needs images of at least 28x28 pixels, got 8x8"):
        LiftedClassifier("fenchel", hidden_layer_sizes="lenet5", image_shape=(1, 8, 8)).fit(X, y)
    with pytest.raises(ValueError, match="the network takes 784 input features"):
        LiftedClassifier("fenchel", hidden_layer_sizes="lenet5",
                         image_shape=(1, 28, 28)).fit(X, y)  # the digits have 64
    for bad in ((8, 8), 64, (1, 8, -8), (1, 8.0, 8)):
        with pytest.raises(ValueError, match="image_shape must be \\(C, H, W\\)"):
            LiftedClassifier(hidden_layer_sizes="conv4k3-16", image_shape=bad).fit(X, y)


def test_regressor_keeps_the_targets_shape():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 4))
    Y = np.stack([np.maximum(X @ [1.0, -1.0, 0.5, 0.0], 0), X[:, 0] * 0.5], 1)
    reg = LiftedRegressor("fenchel", hidden_layer_sizes=(32,), epochs=30, batch_size=0)
    assert reg.fit(X, Y).predict(X).shape == (300, 2)
    assert reg.score(X, Y) > 0.9
    assert reg.fit(X, Y[:, 0]).predict(X[:7]).shape == (7,)


def test_bad_settings_get_clear_errors(digits):
    X, _, y, _ = digits
    with pytest.raises(ValueError, match="unknown method 'fenchl'"):
        LiftedClassifier("fenchl").fit(X, y)
    with pytest.raises(ValueError, match="method must be a method key or a liftnet Method"):
        LiftedClassifier(3).fit(X, y)
    with pytest.raises(ValueError, match="dtype must be one of float32, float64"):
        LiftedClassifier(dtype="float16").fit(X, y)
    with pytest.raises(ValueError, match="at least 2 classes"):
        LiftedClassifier().fit(X[:5], np.zeros(5))
    with pytest.raises(ValueError, match="epochs must be an integer"):
        LiftedClassifier(epochs=1.5).fit(X, y)
    with pytest.raises(ValueError, match="device 'bogus': unknown device"):
        LiftedClassifier(device="bogus").fit(X, y)
    with pytest.raises(ValueError, match="hidden_layer_sizes must be widths"):
        LiftedClassifier(hidden_layer_sizes=2.5).fit(X, y)
    clf = LiftedClassifier(hidden_layer_sizes=np.int64(8), epochs=1).fit(X, y)
    assert clf.net_.sizes == (64, 8, 10)


def test_early_stopping_keeps_the_best_validation_epoch(digits):
    """early_stopping=True (scikit-learn's MLP semantics): liftnet.fit on a stratified,
    seeded split with patience n_iter_no_change; the estimator keeps the best epoch's
    weights and reports every epoch's validation score."""
    X, Xt, y, yt = digits
    clf = LiftedClassifier("backprop", hidden_layer_sizes=(32,), epochs=200, batch_size=50,
                           random_state=2, early_stopping=True, validation_fraction=0.2,
                           n_iter_no_change=3, method_params={"lr": 3e-2}).fit(X, y)
    train, val = train_test_split(np.arange(len(y)), test_size=0.2, random_state=2, stratify=y)
    train, val = np.sort(train), np.sort(val)
    Xf = torch.tensor(X, dtype=torch.float32)
    yf = torch.as_tensor(y)
    ref = fit(get_method("backprop", lr=3e-2), network([64, 32, 10], loss="ce"), Xf[train],
              yf[train], epochs=200, batch_size=50, seed=2, X_val=Xf[val], y_val=yf[val],
              patience=3, progress=False)
    assert ref.stopped_early and clf.n_iter_ == len(ref.history) < 200
    assert clf.best_epoch_ == ref.best_epoch == clf.n_iter_ - 3
    for (W, b), (W1, b1) in zip(clf.params_, ref.best_params, strict=True):
        assert torch.equal(W, W1) and torch.equal(b, b1)
    assert clf.validation_scores_ == [e["val_accuracy"] for e in ref.history]
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert clf.score(X[val], y[val]) == pytest.approx(clf.best_validation_score_, abs=1e-12)
    assert clf.score(Xt, yt) > 0.9
    clf.set_params(early_stopping=False, epochs=2).fit(X, y)  # no stale validation scores
    assert clf.validation_scores_ is None and clf.best_epoch_ is None and clf.n_iter_ == 2
    reg = LiftedRegressor("backprop", hidden_layer_sizes=(16,), epochs=300, batch_size=50,
                          early_stopping=True, n_iter_no_change=2,
                          method_params={"lr": 1e-2}).fit(X, X[:, 10])
    assert reg.best_validation_score_ == max(reg.validation_scores_)
    # a regressor's validation score is R^2 (scale-free, as scikit-learn's), the best epoch's
    _, rval = train_test_split(np.arange(len(y)), test_size=0.1, random_state=0)
    assert reg.score(X[rval], X[rval, 10]) == pytest.approx(reg.best_validation_score_,
                                                            abs=1e-5)
    assert 0.5 < reg.best_validation_score_ < 1
    # tol: a gain must beat the best by more than tol (scikit-learn's rule), as fit's min_delta
    loose = LiftedRegressor("backprop", hidden_layer_sizes=(16,), epochs=300, batch_size=50,
                            early_stopping=True, n_iter_no_change=2, tol=0.05,
                            method_params={"lr": 1e-2}).fit(X, X[:, 10])
    assert loose.n_iter_ < reg.n_iter_
    assert loose.validation_scores_ == reg.validation_scores_[:loose.n_iter_]
    gains = [v for k, v in enumerate(loose.validation_scores_)
             if v > max(loose.validation_scores_[:k], default=-np.inf) + 0.05]
    assert loose.validation_scores_.index(gains[-1]) + 1 + 2 == loose.n_iter_
    for bad, message in (({"validation_fraction": 1.0}, r"validation_fraction must be in \(0, 1\)"),
                         ({"tol": -1e-3}, "tol must be a finite number >= 0"),
                         ({"tol": float("inf")}, "tol must be a finite number >= 0"),
                         ({"validation_fraction": "0.1"}, "validation_fraction must be in"),
                         ({"n_iter_no_change": 0}, "n_iter_no_change must be an integer >= 1"),
                         ({"validation_fraction": 0.99}, "early_stopping: cannot hold out")):
        with pytest.raises(ValueError, match=message):
            LiftedClassifier(early_stopping=True, epochs=2, **bad).fit(X[:5], y[:5])
    with pytest.raises(ValueError, match="n_iter_no_change must be an integer >= 1"):
        LiftedClassifier(n_iter_no_change=-5, epochs=1).fit(X, y)  # checked by every fit
    # too few samples per class to stratify: a plain split
    tiny = LiftedClassifier(early_stopping=True, validation_fraction=0.001, epochs=2).fit(X, y)
    assert len(tiny.validation_scores_) == tiny.n_iter_


def test_lenet5_takes_the_clis_fenchel_defaults():
    rng = np.random.default_rng(1)
    X, y = rng.random((40, 784)), np.arange(40) % 3
    clf = LiftedClassifier("fenchel", hidden_layer_sizes="lenet5", image_shape=(1, 28, 28),
                           epochs=1, batch_size=20).fit(X, y)
    assert clf.net_.spec == "1x28x28-conv6k5p2-pool2-conv16k5-pool2-120-84-3"
    assert clf.method_ == get_method("fenchel", **LENET5_DEFAULTS)
    assert clf.predict(X).shape == (40,)
    own = get_method("fenchel", lam=2.0)  # a method object is used as given
    assert LiftedClassifier(own, hidden_layer_sizes="lenet5")._method() is own


def test_partial_fit_is_one_epoch_of_fit_from_the_last_state(digits):
    """partial_fit: a first call is fit(epochs=1); each next call one more epoch from the last
    state (Adam's moments included), its batch order seeded by random_state + the model's
    epochs so far; history_ and n_iter_ grow by one epoch per call."""
    X, Xt, y, yt = digits
    method = get_method("backprop", lr=3e-2)
    clf = LiftedClassifier(method, hidden_layer_sizes=(32,), batch_size=100, random_state=4)
    clf.partial_fit(X[:600], y[:600], classes=np.arange(10))
    clf.partial_fit(X[600:], y[600:])
    net = network([64, 32, 10], loss="ce")
    Xf, yf = torch.tensor(X, dtype=torch.float32), torch.as_tensor(y)
    first = fit(method, net, Xf[:600], yf[:600], epochs=1, batch_size=100, seed=4,
                progress=False)
    second = fit(method, net, Xf[600:], yf[600:], epochs=1, batch_size=100, seed=5,
                 state=first.state, progress=False)
    for (W, b), (W1, b1) in zip(clf.params_, second.state.params, strict=True):
        assert torch.equal(W, W1) and torch.equal(b, b1)
    assert clf.n_iter_ == 2 and [e["epoch"] for e in clf.history_] == [1, 2]
    for _ in range(8):
        clf.partial_fit(X, y)
    assert clf.n_iter_ == 10 and clf.score(Xt, yt) > 0.9
    # after fit, partial_fit goes on from the fitted weights (a new state around them)
    fitted = LiftedClassifier("fenchel", hidden_layer_sizes=(16,), epochs=2).fit(X, y)
    before = [(W.clone(), b.clone()) for W, b in fitted.params_]
    fitted.partial_fit(X[:200], y[:200])
    assert fitted.n_iter_ == 3 and not torch.equal(fitted.params_[0][0], before[0][0])
    ref = fit(get_method("fenchel"), network([64, 16, 10], loss="ce"), Xf[:200], yf[:200],
              epochs=1, batch_size=500, seed=0, params=before, progress=False)
    torch.testing.assert_close(fitted.params_, ref.state.params)


def test_partial_fit_refuses_what_it_cannot_continue(digits):
    X, _, y, _ = digits
    with pytest.raises(ValueError, match=r"partial_fit needs classes=\.\.\. .* on its first"):
        LiftedClassifier("fenchel").partial_fit(X, y)
    with pytest.raises(ValueError, match="classes must hold at least 2 classes"):
        LiftedClassifier("fenchel").partial_fit(X[y == 1], y[y == 1], classes=[1])
    clf = LiftedClassifier("fenchel", hidden_layer_sizes=(8,)).partial_fit(
        X[y < 5], y[y < 5], classes=np.arange(10))  # y need not hold every class
    with pytest.raises(ValueError, match=r"y has labels outside classes .*: \[10\]"):
        clf.partial_fit(X[:3], np.array([1, 2, 10]))
    with pytest.raises(ValueError, match=r"classes=\[0, 1\] differ from the fitted model's"):
        clf.partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match="features"):  # scikit-learn's n_features_in_ check
        clf.partial_fit(X[:, :10], y)
    with pytest.raises(ValueError, match="the method or its hyperparameters changed since: "
                                         "call fit"):
        clf.set_params(method__lam=3.0).partial_fit(X, y)
    with pytest.raises(ValueError, match=r"the network \(its layers, activations or loss\) "
                                         "changed since"):
        clf.set_params(method__lam=1.0, hidden_layer_sizes=(9,)).partial_fit(X, y)
    with pytest.raises(ValueError, match="the network .* changed since"):  # not in the spec
        clf.set_params(hidden_layer_sizes=(8,), activation="leaky_relu").partial_fit(X, y)
    assert clf.n_iter_ == 1  # nothing was trained by the refused calls
    clf.set_params(activation="relu", device="cpu:0").partial_fit(X, y)  # the same device
    with pytest.raises(ValueError, match="the device or dtype changed since"):
        clf.set_params(dtype="float64").partial_fit(X, y)
    clf.set_params(dtype="float32")
    reg = LiftedRegressor("fenchel", hidden_layer_sizes=(8,)).partial_fit(X, X[:, :2])
    with pytest.raises(ValueError, match=r"fitted to targets given as a 2-D array of 2 "):
        reg.partial_fit(X, X[:, 0])
    one = LiftedRegressor("fenchel", hidden_layer_sizes=(8,)).partial_fit(X, X[:, :1])
    with pytest.raises(ValueError, match=r"y has shape \(\d+,\); the model was fitted to "
                                         r"targets given as a 2-D array of 1 column"):
        one.partial_fit(X, X[:, 0])
    with pytest.raises(ValueError, match=r"given as a 1-D array \(n_samples,\)"):
        LiftedRegressor("fenchel").partial_fit(X, X[:, 0]).partial_fit(X, X[:, :1])
    reg.partial_fit(X[:100], X[:100, :2])
    assert reg.predict(X[:5]).shape == (5, 2) and reg.n_iter_ == 2


def test_partial_fit_of_a_regressor_learns_over_calls():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 4))
    y = np.sin(X @ rng.standard_normal(4))
    reg = LiftedRegressor("backprop", hidden_layer_sizes=(32,), batch_size=50,
                          method_params={"lr": 3e-2})
    scores = []
    for k in range(40):
        part = slice(100 * (k % 4), 100 * (k % 4) + 100)
        reg.partial_fit(X[part], y[part])
        scores.append(reg.score(X, y))
    assert reg.predict(X[:3]).shape == (3,)
    assert scores[-1] > 0.8 and scores[-1] > scores[0] + 0.3


@pytest.mark.parametrize("key", ["fenchel", "lifted", "pbcd", "admm"])
def test_partial_fit_starts_new_lifted_variables_on_each_chunk(digits, key):
    """Each partial_fit call brings new samples: a full-data-set method starts new lifted
    variables on them even when the chunk has as many rows as the last one (the methods
    alone would continue the last chunk's, which belong to other samples)."""
    X, _, y, _ = digits
    A, yA, B, yB = X[:300], y[:300], X[300:600], y[300:600]

    def second(chunk, labels):
        clf = LiftedClassifier(key, hidden_layer_sizes=(16,), random_state=0)
        clf.partial_fit(A, yA, classes=np.arange(10))
        state = copy.deepcopy(clf._state)
        clf.partial_fit(chunk, labels)
        return clf, state

    same, state = second(B, yB)
    net = network([64, 16, 10], loss=same.loss_)
    ref = fit(same.method_, net, torch.tensor(B, dtype=torch.float32), torch.as_tensor(yB),
              epochs=1, batch_size=same.method_.default_batch_size, seed=1, state=state,
              new_data=True, progress=False)
    torch.testing.assert_close(same.params_, ref.state.params, rtol=0, atol=0)
    # fit tells the chunks apart by the state's data fingerprint too
    told = fit(same.method_, net, torch.tensor(B, dtype=torch.float32), torch.as_tensor(yB),
               epochs=1, batch_size=same.method_.default_batch_size, seed=1, state=state,
               progress=False)
    torch.testing.assert_close(same.params_, told.state.params, rtol=0, atol=0)
    unmarked = copy.deepcopy(state)
    # no fingerprint and no batch signature (an older state): the last chunk's variables
    unmarked.data_id, unmarked.batch_sig, unmarked.batch_key = None, None, None
    stale = fit(same.method_, net, torch.tensor(B, dtype=torch.float32), torch.as_tensor(yB),
                epochs=1, batch_size=same.method_.default_batch_size, seed=1,
                state=unmarked, progress=False)
    assert max(float((W - W1).abs().max()) for (W, _), (W1, _) in
               zip(stale.state.params, same.params_, strict=True)) > 1e-6
    # a chunk one row shorter (new variables in any case) is trained the same way
    short, state = second(B[:-1], yB[:-1])
    ref = fit(short.method_, net, torch.tensor(B[:-1], dtype=torch.float32),
              torch.as_tensor(yB[:-1]), epochs=1, batch_size=same.method_.default_batch_size,
              seed=1, state=state, new_data=True, progress=False)
    torch.testing.assert_close(short.params_, ref.state.params, rtol=0, atol=0)


def test_a_failed_partial_fit_or_fit_leaves_the_model_as_it_was(digits):
    """A call that fails (divergence, bad labels) keeps the fitted model, its classes and
    history; params_ is not changed in place by later calls; the error names the model's
    epoch, not the call's."""
    X, Xt, y, yt = digits
    t = X[:, 10]
    reg = LiftedRegressor("backprop", hidden_layer_sizes=(16,), batch_size=100,
                          method_params={"lr": 0.05, "optimizer": "sgd"})
    reg.partial_fit(X[:500], t[:500]).partial_fit(X[500:1000], t[500:1000])
    kept = reg.params_
    before = [(W.clone(), b.clone()) for W, b in kept]
    score, history = reg.score(X, t), list(reg.history_)
    with pytest.raises(FloatingPointError, match=r"in partial_fit \(the model's epoch 3\)"):
        reg.partial_fit(X[:500], t[:500] * 1e15)  # an outlier chunk: diverges
    assert reg.params_ is kept and reg.n_iter_ == 2 and reg.history_ == history
    for (W, b), (W0, b0) in zip(kept, before, strict=True):
        assert torch.equal(W, W0) and torch.equal(b, b0)
    assert reg.score(X, t) == score
    reg.partial_fit(X[:500], t[:500])  # goes on from the kept model
    assert reg.n_iter_ == 3 and np.isfinite(reg.score(X, t))
    for (W, b), (W0, b0) in zip(kept, before, strict=True):  # not changed in place
        assert torch.equal(W, W0) and torch.equal(b, b0)
    # a failed first call fixes no classes; a failed refit keeps the old classes and model
    new = LiftedClassifier("fenchel", hidden_layer_sizes=(8,))
    with pytest.raises(ValueError, match="labels outside classes"):
        new.partial_fit(X, y, classes=np.arange(9))
    assert not hasattr(new, "classes_") and not hasattr(new, "n_features_in_")
    new.partial_fit(X, y, classes=np.arange(10))
    assert new.classes_.tolist() == list(range(10))
    fitted = LiftedClassifier("fenchel", hidden_layer_sizes=(8,), epochs=2).fit(X, y)
    score = fitted.score(Xt, yt)
    with pytest.raises(ValueError, match="validation_fraction"):
        fitted.set_params(early_stopping=True, validation_fraction=1.5).fit(X[:, :5], y + 1)
    assert fitted.classes_.tolist() == list(range(10)) and fitted.n_features_in_ == 64
    assert fitted.set_params(early_stopping=False).score(Xt, yt) == score


def test_partial_fit_after_fit_goes_on_with_fits_method_state(digits):
    """After fit, partial_fit continues fit's final method state (Adam's moments); after
    early stopping restored an earlier epoch, and after pickling, a new state around the
    weights (a pickle keeps the weights, not the training state).  The batch order is seeded
    by random_state + the model's epochs so far (2 here), not fit's first epoch's again."""
    X, _, y, _ = digits
    method = get_method("backprop", lr=3e-2)
    clf = LiftedClassifier(method, hidden_layer_sizes=(16,), epochs=2, batch_size=100)
    clf.fit(X, y)
    state = copy.deepcopy(clf._state)
    params = [(W.clone(), b.clone()) for W, b in clf.params_]
    clone = pickle.loads(pickle.dumps(clf))
    assert not hasattr(clone, "_state")
    clf.partial_fit(X, y)
    net = network([64, 16, 10], loss="ce")
    Xf, yf = torch.tensor(X, dtype=torch.float32), torch.as_tensor(y)
    ref = fit(method, net, Xf, yf, epochs=1, batch_size=100, seed=2, state=state,
              new_data=True, progress=False)
    torch.testing.assert_close(clf.params_, ref.state.params, rtol=0, atol=0)
    clone.partial_fit(X, y)
    fresh = fit(method, net, Xf, yf, epochs=1, batch_size=100, seed=2, params=params,
                progress=False)
    torch.testing.assert_close(clone.params_, fresh.state.params, rtol=0, atol=0)
    assert not torch.equal(clone.params_[0][0], clf.params_[0][0])


def test_get_params_round_trips_through_set_params():
    """set_params(**get_params(deep=True)) works when the method has per-layer values (which
    get_params reports beside their scalar), and leaves the method as it was."""
    for est in (LiftedClassifier("fenchel", hidden_layer_sizes="lenet5", image_shape=(1, 28, 28)),
                LiftedClassifier(get_method("fenchel", lams=(2.0, 1.0))),
                LiftedClassifier("fenchel", method_params={"gammas": (1.0, 2.0)})):
        method = est._method()
        est.set_params(**est.get_params(deep=True))
        assert est._method() == method
    est = LiftedClassifier("fenchel").set_params(  # compared with the method set by the call
        method=get_method("fenchel", lam=3.0), method__lam=1.0, method__lams=None)
    assert est._method().lam == 1.0
    with pytest.raises(ValueError, match="method__lam and method__lams both given"):
        LiftedClassifier(get_method("fenchel", lams=(2.0, 1.0))).set_params(
            method__lam=3.0, method__lams=(2.0, 1.0))



def test_a_later_scalar_replaces_an_earlier_per_layer_list():
    """After a get/set round trip method_params holds LeNet-5's lists; a later method__lam
    (method__gamma, method__gamma_out) then means what it means on a new estimator."""
    def lenet():
        return LiftedClassifier("fenchel", hidden_layer_sizes="lenet5", image_shape=(1, 28, 28))

    for later in ({"method__lam": 2.0}, {"method__gamma": 3.0}, {"method__gamma_out": 50.0},
                  {"method__lam": 2.0, "method__gamma": 3.0, "method__gamma_out": 50.0}):
        est = lenet()
        est.set_params(**est.get_params(deep=True))
        est.set_params(**later)
        assert est._method() == lenet().set_params(**later)._method(), later
    est = lenet().set_params(method__gamma=3.0)
    assert est._method().gammas == (3.0, 3.0, 3.0, 3.0, 1.0)
    est = LiftedClassifier("fenchel").set_params(method__lams=(5.0, 1.0), method__gammas=(1, 2, 3))
    est.set_params(method__lam=2.0, method__gamma_out=9.0)
    method = est._method()
    assert method.lams is None and method.lam == 2.0 and method.gammas == (1.0, 2.0, 9.0)
    est.set_params(method__lams=(4.0, 4.0))  # and a later list replaces the scalar's value
    assert est._method().lams == (4.0, 4.0)
    with pytest.raises(ValueError, match="method__lam would be ignored"):  # a method object's
        LiftedClassifier(get_method("fenchel", lams=(2.0, 1.0))).set_params(method__lam=3.0)


def test_lifted_gamma_acts_between_partial_fit_calls_not_within_a_full_batch_fit(digits):
    """As documented: each partial_fit call is a new batch, so the lifted network's proximal
    gamma pulls a call's weights towards the previous call's; a full-batch fit ignores it."""
    X, _, y, _ = digits
    moves = {}
    for gamma in (0.0, 1e3):
        clf = LiftedClassifier("lifted", method_params={"gamma": gamma}, hidden_layer_sizes=(16,),
                               batch_size=0)
        clf.partial_fit(X[:600], y[:600], classes=np.arange(10))
        before = [W.clone() for W, _ in clf.params_]
        clf.partial_fit(X[600:], y[600:])
        moves[gamma] = sum(float((W - W0).norm()) for (W, _), W0 in
                           zip(clf.params_, before, strict=True))
    assert moves[1e3] < 0.1 * moves[0.0]
    fits = [LiftedClassifier("lifted", method_params={"gamma": g}, hidden_layer_sizes=(16,),
                             batch_size=0, epochs=3).fit(X, y).params_ for g in (0.0, 1e3)]
    torch.testing.assert_close(fits[0], fits[1], rtol=0, atol=0)


def test_image_shape_is_checked_with_dense_hidden_layers_too(digits):
    X, _, y, _ = digits
    with pytest.raises(ValueError, match=r"image_shape \(3, 32, 32\) holds 3072 values per "
                                         "image, the data has 64 features"):
        LiftedClassifier("fenchel", hidden_layer_sizes=(8,), image_shape=(3, 32, 32)).fit(X, y)
    with pytest.raises(ValueError, match="image_shape must be"):
        LiftedClassifier("fenchel", hidden_layer_sizes=(8,), image_shape="abc").fit(X, y)
    LiftedClassifier("fenchel", hidden_layer_sizes=(8,), image_shape=(1, 8, 8), epochs=1).fit(X, y)


def test_method_params_scalar_with_a_lifted_method_object(digits):
    """Lifted has a lams() method, not a per-layer hyperparameter: method__lam applies."""
    X, _, y, _ = digits
    clf = LiftedClassifier(get_method("lifted"), method_params={"lam": 2.0},
                           hidden_layer_sizes=(8,), epochs=1).fit(X, y)
    assert clf.method_.lam == 2.0
    assert clf.set_params(method__lam=3.0)._method().lam == 3.0


def test_fitted_weights_do_not_track_gradients(digits):
    # review 23: back-propagation's params_ were autograd leaves (with their .grad), so
    # params_[0][0].numpy() failed for "backprop" and worked for every other method
    X, _, y, _ = digits
    clf = LiftedClassifier("backprop", hidden_layer_sizes=(16,), epochs=2, batch_size=100,
                           random_state=0, warm_start=True).fit(X, y)
    for W, b in clf.params_:
        assert not W.requires_grad and not b.requires_grad and W.grad is None
        W.numpy()
    clf.partial_fit(X[:50], y[:50])
    assert not clf.params_[0][0].requires_grad
    clf.fit(X, y)  # a warm start from these weights
    assert not clf.params_[0][0].requires_grad


# Review 33 (mutation audit of estimator.py): early stopping with partial_fit, scores,
# warm_start, random_state, set_params, interruption, input checks.

def test_method_params_must_be_a_dict():
    from liftnet.estimator import LiftedClassifier

    X = np.random.RandomState(0).rand(30, 4)
    y = np.arange(30) % 2
    with pytest.raises(ValueError, match="method_params must be a dict"):
        LiftedClassifier("fenchel", method_params=[("lam", 2.0)], epochs=1).fit(X, y)


def _regression(n=300, seed=0):
    rs = np.random.RandomState(seed)
    X = rs.rand(n, 5)
    Y = np.column_stack([np.sin(3 * X[:, 0]) + X[:, 1], 10 * (X[:, 2] - X[:, 3] ** 2)])
    return X, Y


def test_a_multi_output_regressors_validation_score_is_variance_weighted_r2():
    """validation_scores_ of a regressor with several outputs is scikit-learn's
    variance-weighted R^2 of the held-out rows (squared error and variance summed over the
    outputs), so that the best score is the score of the kept weights on those rows."""
    from sklearn.metrics import r2_score
    from sklearn.model_selection import train_test_split

    from liftnet.estimator import LiftedRegressor

    X, Y = _regression()
    reg = LiftedRegressor("backprop", hidden_layer_sizes=(16,), epochs=40, batch_size=50,
                          dtype="float64", early_stopping=True, n_iter_no_change=40,
                          random_state=3, method_params={"lr": 1e-2}).fit(X, Y)
    _, val = train_test_split(np.arange(len(Y)), test_size=0.1, random_state=3)
    want = r2_score(Y[val], reg.predict(X[val]), multioutput="variance_weighted")
    assert reg.best_validation_score_ == pytest.approx(want, abs=1e-9)
    assert reg.validation_scores_[reg.best_epoch_ - 1] == reg.best_validation_score_


def test_set_params_with_method_params_and_a_nested_parameter_keeps_both():
    """set_params(method_params=..., method__<name>=...) in one call: the nested parameter goes
    on top of the method_params given in that very call (not the estimator's earlier ones)."""
    from liftnet.estimator import LiftedClassifier

    clf = LiftedClassifier("fenchel", method_params={"rho": 0.5})
    clf.set_params(method_params={"lam": 2.0}, method__loss_weight=5.0)
    assert clf.method_params == {"lam": 2.0, "loss_weight": 5.0}
    params = clf.get_params()
    assert params["method__lam"] == 2.0 and params["method__loss_weight"] == 5.0
    assert params["method__rho"] == 0.0


def _blobs(n=60, seed=0):
    rs = np.random.RandomState(seed)
    X = rs.rand(n, 4)
    return X, (X[:, 0] + X[:, 1] > 1).astype(int)


def test_a_numpy_integer_random_state_is_the_same_seed_as_the_int():
    from liftnet.estimator import LiftedClassifier

    X, y = _blobs()
    a = LiftedClassifier("backprop", hidden_layer_sizes=(6,), epochs=2, batch_size=20,
                         random_state=7).fit(X, y)
    b = LiftedClassifier("backprop", hidden_layer_sizes=(6,), epochs=2, batch_size=20,
                         random_state=np.int64(7)).fit(X, y)
    for (W, bb), (W1, b1) in zip(a.params_, b.params_, strict=True):
        assert torch.equal(W, W1) and torch.equal(bb, b1)


@pytest.mark.parametrize("seed, ok", [(2**32 - 1, True), (2**32, False), (2**40, False),
                                      (-1, False)])
def test_random_state_must_be_below_2_to_the_32(seed, ok):
    from liftnet.estimator import LiftedClassifier

    X, y = _blobs()
    clf = LiftedClassifier("fenchel", hidden_layer_sizes=(4,), epochs=1, random_state=seed)
    if ok:
        clf.fit(X, y)
    else:
        with pytest.raises(ValueError, match=r"random_state must be an integer in \[0, 2\*\*32\)"):
            clf.fit(X, y)


def test_tol_zero_is_allowed():
    """tol=0 (any improvement counts) is valid, as in scikit-learn."""
    from liftnet.estimator import LiftedClassifier

    X, y = _blobs()
    clf = LiftedClassifier("fenchel", hidden_layer_sizes=(4,), epochs=3, early_stopping=True,
                           n_iter_no_change=1, tol=0.0).fit(X, y)
    assert len(clf.validation_scores_) == clf.n_iter_


def test_an_interrupted_fit_leaves_the_model_as_it_was(monkeypatch):
    """Ctrl-C (KeyboardInterrupt, not an Exception) during a fit keeps the fitted model,
    its n_features_in_ and classes_, as the docstring of _kept_on_failure promises."""
    import liftnet.estimator as est

    X, y = _blobs()
    clf = est.LiftedClassifier("fenchel", hidden_layer_sizes=(4,), epochs=1).fit(X, y)
    before = [(W.clone(), b.clone()) for W, b in clf.params_]

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(est, "fit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        clf.fit(np.hstack([X, X]), np.where(y == 1, "b", "a"))
    assert clf.n_features_in_ == 4 and clf.classes_.tolist() == [0, 1]
    assert all(torch.equal(W, W1) for (W, _), (W1, _) in zip(clf.params_, before, strict=True))
    with pytest.raises(KeyboardInterrupt):
        clf.partial_fit(X, y)
    assert clf.n_iter_ == 1 and len(clf.history_) == 1


def test_hidden_layer_sizes_true_is_refused():
    from liftnet.estimator import LiftedClassifier

    X, y = _blobs()
    with pytest.raises(ValueError, match="hidden_layer_sizes must be widths"):
        LiftedClassifier(hidden_layer_sizes=True, epochs=1).fit(X, y)


@pytest.mark.parametrize("tokens", ["8-", "-8", "-8-"])
def test_architecture_tokens_with_stray_dashes(tokens):
    """Tokens between the input and the output: dashes at their ends join nothing."""
    from liftnet.estimator import LiftedClassifier

    X, y = _blobs()
    clf = LiftedClassifier(hidden_layer_sizes=tokens, epochs=1).fit(X, y)
    assert clf.net_.sizes == (4, 8, 2)


@pytest.mark.parametrize("hidden", [(6,), "conv2k3-6"])
def test_an_image_shape_with_a_zero_is_refused(hidden):
    from liftnet.estimator import LiftedClassifier

    X, y = _blobs()
    with pytest.raises(ValueError, match=r"image_shape must be \(C, H, W\), three positive"):
        LiftedClassifier(hidden_layer_sizes=hidden, image_shape=(1, 0, 4), epochs=1).fit(X, y)


def test_warm_start_does_not_carry_weights_across_a_change_of_loss():
    """warm_start reuses the last weights only for the same network: a switch from a
    cross-entropy method to a squared-loss one (same widths, other loss) starts anew."""
    from liftnet.estimator import LiftedClassifier

    X, y = _blobs()
    clf = LiftedClassifier("fenchel", hidden_layer_sizes=(6,), epochs=2, warm_start=True,
                           random_state=0).fit(X, y)
    assert clf.loss_ == "ce"
    with pytest.warns(UserWarning, match=r"warm_start: the network changed .*ce -> .*mse\); "
                                         "this fit starts from the method's initialisation"):
        clf.set_params(method="pbcd").fit(X, y)
    with pytest.warns(UserWarning, match="warm_start: the network changed"):  # other widths
        LiftedClassifier("fenchel", hidden_layer_sizes=(6,), epochs=1, warm_start=True).fit(
            X, y).set_params(hidden_layer_sizes=(7,)).fit(X, y)
    fresh = LiftedClassifier("pbcd", hidden_layer_sizes=(6,), epochs=2,
                             random_state=0).fit(X, y)
    assert clf.loss_ == fresh.loss_ == "mse"
    for (W, b), (W1, b1) in zip(clf.params_, fresh.params_, strict=True):
        assert torch.equal(W, W1) and torch.equal(b, b1)


def test_early_stopping_on_constant_targets_does_not_divide_by_zero():
    """Held-out targets without variance (R^2 undefined): the score falls back to
    1 - val_loss, no ZeroDivisionError."""
    from liftnet.estimator import LiftedRegressor

    X, _ = _regression(n=60)
    reg = LiftedRegressor("backprop", hidden_layer_sizes=(4,), epochs=3, batch_size=20,
                          early_stopping=True, n_iter_no_change=5,
                          method_params={"lr": 1e-2}).fit(X, np.full(60, 2.0))
    assert len(reg.validation_scores_) == reg.n_iter_ == 3
    assert all(np.isfinite(reg.validation_scores_))


def test_partial_fit_after_early_stopping_whose_best_epoch_is_the_last_keeps_the_state():
    """When the best validation epoch is the last one, fit's weights are its last state's:
    partial_fit goes on with that method state (Adam's moments), unlike a model that lost
    its state (an unpickled copy), which starts a new one around the weights."""
    import pickle

    from liftnet.estimator import LiftedRegressor

    X, Y = _regression(n=200)
    reg = LiftedRegressor("backprop", hidden_layer_sizes=(8,), epochs=3, batch_size=50,
                          dtype="float64", early_stopping=True, n_iter_no_change=5,
                          random_state=0, method_params={"lr": 1e-2}).fit(X, Y[:, 0])
    assert reg.best_epoch_ == reg.n_iter_ == 3
    copy_ = pickle.loads(pickle.dumps(reg))
    reg.partial_fit(X[:100], Y[:100, 0])
    copy_.partial_fit(X[:100], Y[:100, 0])
    assert not torch.equal(reg.params_[0][0], copy_.params_[0][0])


def test_partial_fit_after_early_stopping_goes_on_from_the_kept_best_weights():
    """Early stopping kept an earlier epoch's weights: partial_fit trains on from those (a new
    method state around them, as for an unpickled copy), not from the last epoch's state."""
    import pickle

    from liftnet.estimator import LiftedRegressor

    X, Y = _regression(n=200)
    reg = LiftedRegressor("backprop", hidden_layer_sizes=(8,), epochs=300, batch_size=20,
                          dtype="float64", early_stopping=True, n_iter_no_change=2,
                          random_state=0, method_params={"lr": 5e-2}).fit(X, Y[:, 0])
    assert reg.best_epoch_ < reg.n_iter_ < 300
    copy_ = pickle.loads(pickle.dumps(reg))
    reg.partial_fit(X[:100], Y[:100, 0])
    copy_.partial_fit(X[:100], Y[:100, 0])
    for (W, b), (W1, b1) in zip(reg.params_, copy_.params_, strict=True):
        assert torch.equal(W, W1) and torch.equal(b, b1)


@pytest.mark.parametrize("value", ["no", 1, None])
def test_early_stopping_must_be_a_bool(value):
    from liftnet.estimator import LiftedClassifier

    X, y = _blobs()
    with pytest.raises(ValueError, match="early_stopping must be True or False"):
        LiftedClassifier(hidden_layer_sizes=(4,), epochs=1, early_stopping=value).fit(X, y)


def test_partial_fit_classes_in_any_order():
    """classes=... of a first partial_fit may come in any order: classes_ is sorted and
    the labels map to their own output units (as with classes in order)."""
    from liftnet.estimator import LiftedClassifier

    X, y = _blobs(n=80)
    labels = np.where(y == 1, "yes", "no")
    a = LiftedClassifier("fenchel", hidden_layer_sizes=(4,), random_state=0).partial_fit(
        X, labels, classes=["yes", "no"])
    b = LiftedClassifier("fenchel", hidden_layer_sizes=(4,), random_state=0).partial_fit(
        X, labels, classes=["no", "yes"])
    assert a.classes_.tolist() == ["no", "yes"]
    assert np.array_equal(a.predict(X), b.predict(X))
    for (W, bb), (W1, b1) in zip(a.params_, b.params_, strict=True):
        assert torch.equal(W, W1) and torch.equal(bb, b1)


def test_binary_decision_function_is_positive_for_the_second_class():
    from liftnet.estimator import LiftedClassifier

    X, y = _blobs(n=80)
    clf = LiftedClassifier("fenchel", hidden_layer_sizes=(4,), epochs=3).fit(X, y)
    d = clf.decision_function(X)
    assert d.shape == (80,)
    assert np.array_equal(clf.classes_[(d > 0).astype(int)], clf.predict(X))


def test_hidden_layer_sizes_as_a_numpy_array():
    """Widths given as a numpy array, as scikit-learn's MLP takes them (an element-wise
    ``== "lenet5"`` made this a numpy truth-value error)."""
    X, y = _blobs()
    clf = LiftedClassifier("fenchel", hidden_layer_sizes=np.array([5, 4]), epochs=1).fit(X, y)
    assert clf.net_.sizes == (4, 5, 4, 2)


@pytest.mark.parametrize("epochs", [0, -1, True, 2.5, "3"])
def test_epochs_must_be_a_positive_integer(epochs, digits):
    """epochs=0 would return an untrained model as fitted (scikit-learn's MLP refuses
    max_iter=0 too); None means the method's default."""
    X, _, y, _ = digits
    with pytest.raises(ValueError, match="epochs must be an integer >= 1 or None"):
        LiftedClassifier("lifted", epochs=epochs).fit(X[:50], y[:50])
    assert LiftedClassifier("lifted", epochs=None, hidden_layer_sizes=(8,)).fit(
        X[:50], y[:50]).n_iter_ == get_method("lifted").default_epochs


def test_augment_and_schedule_reach_fit_and_partial_fit():
    from sklearn.base import clone

    from liftnet import RandomShift

    X, y = load_digits(return_X_y=True)
    X = X[:400] / 16.0
    y = y[:400]
    kw = dict(hidden_layer_sizes=(20,), epochs=2, batch_size=200, random_state=0)
    aug = RandomShift((8, 8), epochs=1)
    shifted = LiftedClassifier("fenchel", augment=aug, schedule={2: {"tol": 1e-3}}, **kw)
    shifted.fit(X, y)
    plain = LiftedClassifier("fenchel", **kw).fit(X, y)
    assert not np.array_equal(shifted.params_[0][0].numpy(), plain.params_[0][0].numpy())
    # the same run as liftnet.fit with the same arguments
    net = mlp([64, 20, 10], loss="ce")
    direct = fit(get_method("fenchel"), net, torch.as_tensor(X, dtype=torch.float32),
                 torch.as_tensor(y), epochs=2, batch_size=200, seed=0, progress=False,
                 augment=aug, schedule={2: {"tol": 1e-3}})
    np.testing.assert_array_equal(shifted.params_[0][0].numpy(),
                                  direct.state.params[0][0].numpy())
    assert clone(shifted).get_params()["augment"] == aug
    with pytest.raises(ValueError, match="'nope' is not a hyperparameter of method fenchel"):
        LiftedClassifier("fenchel", schedule={2: {"nope": 1.0}}, **kw).fit(X, y)
    with pytest.raises(ValueError, match="'nope' is not a hyperparameter of method fenchel"):
        LiftedClassifier("fenchel", schedule={2: {"nope": 1.0}}, **kw).partial_fit(
            X, y, classes=np.arange(10))
    with pytest.raises(ValueError, match="augment must be callable"):
        LiftedClassifier("fenchel", augment="shift", **kw).partial_fit(
            X, y, classes=np.arange(10))
    with pytest.raises(ValueError, match="batch_size must be an integer"):
        LiftedClassifier("fenchel", augment=aug, **{**kw, "batch_size": "100"}).partial_fit(
            X, y, classes=np.arange(10))
    # a chunk no larger than the batch size is the full data set, which augment refuses
    with pytest.raises(ValueError, match=r"one of at least the 150 samples given\) .* give a "
                                         r"smaller batch size"):
        LiftedClassifier("fenchel", augment=aug, **kw).partial_fit(
            X[:150], y[:150], classes=np.arange(10))


class _Recorder:
    """Returns the batch unchanged; records the calls (one per batch) of each epoch."""

    def __init__(self, first=1, last=None):
        self.first, self.last, self.calls = first, last, []

    def applies(self, epoch):
        return epoch >= self.first and (self.last is None or epoch <= self.last)

    def __call__(self, X, generator):
        self.calls.append(len(X))
        return X.clone()


def test_partial_fit_counts_its_calls_as_the_epochs_of_augment_and_schedule():
    """partial_fit: each call is the model's next epoch, for ``augment`` (its ``applies``
    asked with that epoch) and ``schedule`` (the method of that epoch): two calls train what
    fit(epochs=1) and then one epoch of the scheduled method from the same state train."""
    X, y = load_digits(return_X_y=True)
    X, y = X[:400] / 16.0, y[:400]
    kw = dict(hidden_layer_sizes=(20,), batch_size=200, random_state=0)
    rec = _Recorder(first=2)
    sched = {2: {"gamma": 0.5, "gamma_out": 5.0}}
    clf = LiftedClassifier("fenchel", augment=rec, schedule=sched, **kw)
    clf.partial_fit(X, y, classes=np.arange(10))
    assert rec.calls == []  # epoch 1: the augmentation does not apply
    clf.partial_fit(X, y)
    assert rec.calls == [200, 200]  # epoch 2: it does, on both batches
    # the same as partial_fit with the second epoch's method given outright
    ref = LiftedClassifier("fenchel", **kw)
    ref.partial_fit(X, y, classes=np.arange(10))
    ref.set_params(method__gamma=0.5, method__gamma_out=5.0)
    with pytest.raises(ValueError, match="changed since"):  # partial_fit refuses a change...
        ref.partial_fit(X, y)
    plain = LiftedClassifier("fenchel", **kw)
    plain.partial_fit(X, y, classes=np.arange(10))
    plain.partial_fit(X, y)
    state = ref._state  # ...so continue its state with fit and the second epoch's seed
    direct = fit(get_method("fenchel", gamma=0.5, gamma_out=5.0), mlp([64, 20, 10], loss="ce"),
                 torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y), epochs=1,
                 batch_size=200, seed=1, progress=False, state=state, new_data=True)
    np.testing.assert_array_equal(clf.params_[0][0].numpy(),
                                  direct.state.params[0][0].numpy())
    assert not np.array_equal(clf.params_[0][0].numpy(), plain.params_[0][0].numpy())
