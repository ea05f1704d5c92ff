"""The contract shared by every method (STYLE.md habit 12), table-driven over the registry."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch

from liftnet import METHODS, fit, get_method, mlp, to_torch
from liftnet.methods import Method, MethodState
from liftnet.methods.base import batch_signature, holds_batch
from liftnet.metrics import targets_for

# Settings that keep each method quick on the small fixture; the defaults are for real data.
FAST = {
    "lifted": {"lam": 1.0},
    "backprop": {"lr": 1e-2},
    "admm": {"warmup": 2, "beta": 1.0, "gamma": 10.0},
    "pbcd": {"alpha": 1.0},
    "fenchel": {"gamma": 1.0, "gamma_out": 1.0, "loss_weight": 1.0},
    "bregman": {"tau": 1.0},
    "convex": {},
}
# Hyperparameter values each method must refuse with a ValueError naming the value.
INVALID = {
    "lifted": [{"lam": 0.0}, {"lam": -1.0}, {"rho": -1e-3}, {"gamma": -1.0}, {"sweeps": 0},
               {"tol": 0.0}, {"init": "zeros"}, {"lam": float("nan")}, {"lam_out": 0.0},
               {"penalty": "cubic"}, {"tol": 1.0}, {"lam": 1e39}, {"lam": 1e-300}],
    "backprop": [{"lr": 0.0}, {"optimizer": "lbfgs"}, {"reduction": "max"},
                 {"weight_decay": -1.0}, {"init": "zeros"}, {"lr": 1e39}, {"lr": 1e-40}],
    "admm": [{"beta": 0.0}, {"gamma": -5.0}, {"warmup": -1}, {"multiplier": "sum"},
             {"bias": "yes"}, {"init": "zeros"}, {"beta": float("inf")}, {"rho": -1.0},
             {"rho": float("nan")}],
    "pbcd": [{"gamma": 0.0}, {"rho": -1.0}, {"alpha": -5.0}, {"init_std": 0.0},
             {"bias_init": float("nan")}, {"alpha": "5"}, {"rho": 1e300},
             {"bias_init": -1e39}],
    "fenchel": [{"lam": 0.0}, {"lams": "1,-2"}, {"lams": "1,x"}, {"gammas": "nan"},
                {"loss_weight": 0.0}, {"gamma": -1.0}, {"rho_out": -1.0}, {"alternations": 0},
                {"tol": 0.0}, {"max_inner": 0}, {"init": "zeros"}, {"bias_init": float("inf")},
                {"extrapolation": 1.0}, {"extrapolation": -0.1},
                {"target_extrapolation": "1,0"}, {"target_extrapolation": "nan"},
                {"gamma": 1e300}, {"lams": "1e39"}, {"tol": 2.0}, {"gamma": 1e-35},
                {"lams": "1,1e-300"}, {"x_momentum": "nesterov"}],
    "bregman": [{"tau": 0.0}, {"x_steps": 0}, {"w_steps": 0}, {"alternations": 0},
                {"rho": -1.0}, {"loss_weight": float("nan")}, {"tol": 0.0}, {"init": "zeros"},
                {"tol": 10.0}, {"rho": 1e300}],
    "convex": [{"start": "true"}, {"lam": 0.0}, {"relu_blocks": "row"},
               {"product_blocks": "entry"}, {"solver": "MOSEK"}, {"tol": 0.0},
               {"perturbation": -1.0}, {"random_std": float("nan")}, {"init": "zeros"},
               {"tol": 1.0}],
}
BATCH = {"lifted": [0, 50], "backprop": [50], "admm": [0], "pbcd": [0, 50], "fenchel": [0, 50],
         "bregman": [0, 50], "convex": [0]}
CASES = [(key, bs) for key in METHODS for bs in BATCH[key]]
# (method, batch size, loss) for every loss the method supports
LOSS_CASES = [(key, bs, loss) for key, bs in CASES for loss in METHODS[key].losses]


def test_every_method_is_covered():
    assert set(METHODS) == set(FAST) == set(INVALID) == set(BATCH)


# Network and number of training samples of the contract tests where the default fixture
# ("8-12-3" on all 200 samples) is too large: the convex heuristic solves a conic problem per step
# whose semidefinite cone grows with the number of samples (benchmarks/convex_heuristic.md).
SETUP = {"convex": ("8-4-3", 20)}
# Optional dependency (module, extra) a method needs to train; its contract tests skip without.
NEEDS = {"convex": ("cvxpy", "convex")}


def _setup(key, small_data):
    """The architecture and the data ``(Xtr, ytr, Xte, yte)`` of the contract tests of ``key``;
    skips when the method's optional dependency is missing."""
    if key in NEEDS:
        module, extra = NEEDS[key]
        pytest.importorskip(module, reason=f"{key} needs {module}: pip install liftnet[{extra}]")
    arch, n = SETUP.get(key, ("8-12-3", None))
    Xtr, ytr, Xte, yte = small_data
    return arch, (Xtr[:n], ytr[:n], Xte, yte)


def _fit(key, small_data, *, seed=0, epochs=3, batch_size=0, loss=None):
    arch, (Xtr, ytr, Xte, yte) = _setup(key, small_data)
    loss = METHODS[key].losses[0] if loss is None else loss
    net = mlp(arch, loss=loss)
    method = get_method(key, **FAST[key])
    res = fit(method, net, Xtr, ytr, epochs=epochs, batch_size=batch_size, seed=seed,
              X_test=Xte, y_test=yte, progress=False)
    return net, res


@pytest.mark.parametrize("key,batch_size", CASES)
def test_deterministic_with_seed(key, batch_size, small_data):
    _, a = _fit(key, small_data, seed=3, batch_size=batch_size)
    _, b = _fit(key, small_data, seed=3, batch_size=batch_size)
    _, c = _fit(key, small_data, seed=4, batch_size=batch_size)
    for (Wa, ba), (Wb, bb) in zip(a.state.params, b.state.params, strict=True):
        assert torch.equal(Wa.detach(), Wb.detach()) and torch.equal(ba.detach(), bb.detach())
    assert not torch.equal(a.state.params[0][0].detach(), c.state.params[0][0].detach())


@pytest.mark.parametrize("key,batch_size,loss", LOSS_CASES)
def test_shapes_history_and_export(key, batch_size, loss, small_data):
    net, res = _fit(key, small_data, batch_size=batch_size, loss=loss)
    net.check_params(res.state.params)
    assert [h["epoch"] for h in res.history] == [1, 2, 3]
    for h in res.history:
        assert set(h) >= {"epoch", "seconds", "objective", "train_accuracy", "test_accuracy"}
        assert 0.0 <= h["test_accuracy"] <= 1.0
    X = small_data[2]
    model = to_torch(net, res.state.params)
    with torch.no_grad():
        torch.testing.assert_close(model(X), net.forward(res.state.params, X).detach())


@pytest.mark.parametrize("key,batch_size", CASES)
def test_learns_the_teacher(key, batch_size, small_data):
    _, res = _fit(key, small_data, epochs=15, batch_size=batch_size)
    ytr = _setup(key, small_data)[1][1]
    majority = float(torch.bincount(ytr).max()) / len(ytr)  # 0.585 here (0.5 for convex)
    assert res.history[-1]["train_accuracy"] > majority + 0.15


# extra settings under which monotone methods must still never increase their objective
MONOTONE_EXTRA = {"lifted": {}, "pbcd": {"alpha": 0.0},
                  "fenchel": {"gamma": 0.0, "gamma_out": 0.0, "rho": 1e-3, "rho_out": 1e-3},
                  "bregman": {"tau": 100.0, "rho": 0.0, "loss_weight": 5.0, "alternations": 2}}


@pytest.mark.parametrize("key", [k for k in METHODS if METHODS[k].monotone])
@pytest.mark.parametrize("arch", ["8-12-3", "8-10-10-10-3"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("extra", [False, True])
def test_objective_never_increases_in_full_batch(key, arch, dtype, extra, small_data):
    Xtr, ytr = small_data[0].to(dtype), small_data[1]
    net = mlp(arch, loss=METHODS[key].losses[0])
    method = get_method(key, **{**FAST[key], **(MONOTONE_EXTRA[key] if extra else {})})
    res = fit(method, net, Xtr, ytr, epochs=12, batch_size=0, progress=False)
    objectives = [h["objective"] for h in res.history]
    rel = 1e-9 if dtype == torch.float64 else 1e-5
    for before, after in zip(objectives, objectives[1:], strict=False):
        assert after <= before * (1 + rel) + 1e-12, objectives


@pytest.mark.parametrize("key", list(METHODS))
def test_starts_from_given_weights(key, small_data):
    Xtr, ytr, _, _ = small_data
    net = mlp("8-12-3", loss=METHODS[key].losses[0])
    method = get_method(key, **FAST[key])
    given = net.init_params(generator=torch.Generator().manual_seed(9), bias=0.05,
                            dtype=Xtr.dtype)
    res = fit(method, net, Xtr, ytr, epochs=0, params=given, progress=False)
    for (W, b), (W0, b0) in zip(res.state.params, given, strict=True):
        assert torch.equal(W.detach(), W0) and torch.equal(b.detach(), b0)
        assert W is not W0  # copied: training never writes into the caller's tensors
    with pytest.raises(ValueError, match="expected W"):
        fit(method, net, Xtr, ytr, epochs=1, params=given[:1] + [(given[0][0], given[1][1])],
            progress=False)


@pytest.mark.parametrize("key", [k for k in METHODS if METHODS[k].full_batch_only])
def test_full_batch_methods_refuse_batches(key, small_data):
    Xtr, ytr, _, _ = small_data
    net = mlp("8-12-3", loss=METHODS[key].losses[0])
    with pytest.raises(ValueError, match="full data set only"):
        fit(get_method(key), net, Xtr, ytr, epochs=1, batch_size=50, progress=False)


@pytest.mark.parametrize("key", list(METHODS))
def test_unsupported_losses_and_activations_are_named(key, small_data):
    Xtr, ytr, _, _ = small_data
    cls = METHODS[key]
    for loss in ("ce", "mse"):
        if loss not in cls.losses:
            with pytest.raises(ValueError, match=f"does not support loss '{loss}'"):
                fit(get_method(key), mlp("8-12-3", loss=loss), Xtr, ytr, epochs=1,
                    progress=False)
    acts = cls.supported_activations()
    if acts is not None and "tanh" not in acts:
        with pytest.raises(ValueError, match="does not support activation 'tanh'"):
            fit(get_method(key), mlp("8-12-3", activation="tanh", loss=cls.losses[0]), Xtr,
                ytr, epochs=1, progress=False)


@pytest.mark.parametrize("key", list(METHODS))
def test_invalid_hyperparameters_raise(key):
    for bad in INVALID[key]:
        with pytest.raises(ValueError) as info:
            get_method(key, **bad)
        name = next(iter(bad))
        assert name in str(info.value), f"{bad}: {info.value}"


def test_unknown_hyperparameter_is_named():
    with pytest.raises(ValueError, match="foo: not a hyperparameter of method 'lifted'"):
        get_method("lifted", foo=1)


@pytest.mark.parametrize("key", [["lifted"], None, 3])
def test_method_key_that_is_not_a_string_is_named(key):
    with pytest.raises(TypeError, match="method key must be a string"):
        get_method(key)


@pytest.mark.parametrize("key", list(METHODS))
def test_method_is_a_frozen_dataclass_with_defaults(key):
    method = get_method(key)
    assert isinstance(method, Method)
    assert method.key == key
    assert isinstance(method.hyperparameters(), dict)
    with pytest.raises(AttributeError):
        method.lr = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("key", list(METHODS))
def test_resuming_on_other_data_of_the_same_size_uses_that_data(key, small_data):
    # caches of the inputs (Gram matrices, pseudo-inverses) must follow the data: resuming on
    # X2 gives what the same state gives with its caches dropped
    arch, (Xtr, ytr, _, _) = _setup(key, small_data)
    net = mlp(arch, loss=METHODS[key].losses[0])
    method = get_method(key, **FAST[key])
    X2 = torch.flip(Xtr, dims=[0]) * 0.5
    first = fit(method, net, Xtr, ytr, epochs=2, progress=False)
    cleared = copy.deepcopy(first.state)
    for f in dataclasses.fields(cleared):
        if f.name.endswith("_key"):
            setattr(cleared, f.name, None)
    resumed = fit(method, net, X2, ytr, epochs=2, state=first.state, progress=False)
    again = fit(method, net, X2, ytr, epochs=2, state=cleared, progress=False)
    for (W, b), (W2, b2) in zip(resumed.state.params, again.state.params, strict=True):
        torch.testing.assert_close(W.detach(), W2.detach())
        torch.testing.assert_close(b.detach(), b2.detach())


@pytest.mark.parametrize("key", [k for k in METHODS if 0 in BATCH[k]])
def test_a_given_state_continues_its_lifted_variables_on_its_own_data_only(key, small_data):
    # full data set: a state's lifted variables belong to its samples; on other samples of
    # the same shape fit starts new ones as if told new_data=True, on the same samples (another
    # tensor, equal values) it continues them
    arch, (Xtr, ytr, _, _) = _setup(key, small_data)
    net = mlp(arch, loss=METHODS[key].losses[0])
    method = get_method(key, **FAST[key])
    first = fit(method, net, Xtr, ytr, epochs=2, batch_size=0, progress=False)
    assert first.state.data_id is not None

    def again(X, **kwargs):
        res = fit(method, net, X, ytr, epochs=1, batch_size=0, state=copy.deepcopy(first.state),
                  progress=False, **kwargs)
        return torch.cat([torch.cat([W.reshape(-1), b]) for W, b in res.state.params])

    X2 = torch.flip(Xtr, dims=[0])  # the same rows in another order: other samples per row
    torch.testing.assert_close(again(X2), again(X2, new_data=True), rtol=0, atol=0)
    same, told_new = again(Xtr.clone()), again(Xtr, new_data=True)
    if key in ("lifted", "pbcd", "admm", "fenchel", "bregman"):  # lifted variables kept
        assert not torch.equal(same, told_new)
        old = copy.deepcopy(first.state)
        # a state of an older liftnet: no fingerprint and no batch signature, continued as
        # before (with a signature, the step itself sees other samples and starts afresh)
        old.data_id, old.batch_sig, old.batch_key = None, None, None
        res = fit(method, net, X2, ytr, epochs=1, batch_size=0, state=old, progress=False)
        assert not torch.equal(torch.cat([torch.cat([W.reshape(-1), b])
                                          for W, b in res.state.params]), again(X2))
    batched = fit(method, net, Xtr, ytr, epochs=1, batch_size=50, progress=False) if (
        0 not in BATCH[key] or 50 in BATCH[key]) else None
    if batched is not None:
        assert batched.state.data_id == "batches"


@pytest.mark.parametrize("key", list(METHODS))
def test_continuing_a_given_state_equals_the_uninterrupted_run(key, small_data):
    """fit(state=s) trains a copy of s (two fits from one state are two continuations; s and
    the earlier result stay as they were), and on the same samples it continues exactly: with
    the state itself, a pickled copy of it, or a copy of the data (its caches are re-attached
    to the data, as a resume does; convex rebuilt its parameters from them)."""
    import pickle

    arch, (Xtr, ytr, _, _) = _setup(key, small_data)
    net = mlp(arch, loss=METHODS[key].losses[0])
    method = get_method(key, **FAST[key])
    bs = BATCH[key][0]
    whole = fit(method, net, Xtr, ytr, epochs=4, batch_size=bs, progress=False)
    half = fit(method, net, Xtr, ytr, epochs=2, batch_size=bs, progress=False)
    before = copy.deepcopy(half.state.params)
    step = half.state.step

    def more(state, X):
        res = fit(method, net, X, ytr, epochs=2, batch_size=bs, state=state, progress=False)
        return [e["objective"] for e in res.history], res.state.params

    runs = [more(half.state, Xtr), more(half.state, Xtr),
            more(pickle.loads(pickle.dumps(half.state)), Xtr), more(half.state, Xtr.clone())]
    assert half.state.step == step
    for (W, b), (W0, b0) in zip(half.state.params, before, strict=True):
        assert torch.equal(W, W0) and torch.equal(b, b0)
    if bs != 0:  # batches: the continuation draws its own batch order from the seed
        assert runs[0][0] == runs[1][0]
        return
    expected = [e["objective"] for e in whole.history[2:]]
    for objectives, params in runs:
        assert objectives == pytest.approx(expected, rel=1e-9, abs=1e-12)
        for (W, b), (W2, b2) in zip(params, whole.state.params, strict=True):
            torch.testing.assert_close(W, W2, rtol=1e-9, atol=1e-9)
            torch.testing.assert_close(b, b2, rtol=1e-9, atol=1e-9)


def test_a_given_state_is_checked_against_the_data():
    X = torch.randn(12, 4, dtype=torch.float64)
    y = torch.arange(12) % 3
    net, method = mlp("4-5-3"), get_method("lifted")
    state = fit(method, net, X.float(), y, epochs=1, progress=False).state
    with pytest.raises(ValueError, match="the state's weights are torch.float32 on cpu, the "
                                         "inputs torch.float64"):
        fit(method, net, X, y, epochs=1, state=state, progress=False)
    state.params[1] = (state.params[1][0] * float("nan"), state.params[1][1])
    with pytest.raises(ValueError, match="weights of layer 1 contain NaN"):
        fit(method, net, X.float(), y, epochs=1, state=state, progress=False)


def test_a_distributed_state_trains_alone_in_a_single_process(small_data):
    """A state from fit_distributed's callback still holds the all-reduce of its process
    group; a later single-process fit must not call it (no group: an error from deep inside
    torch.distributed; inside a job: sums over the other processes)."""

    class Reducer:
        def sum(self, t):
            raise AssertionError("the distributed all-reduce was called")

    _, (Xtr, ytr, _, _) = _setup("lifted", small_data)
    net, method = mlp("8-12-3"), get_method("lifted", **FAST["lifted"])
    state = fit(method, net, Xtr, ytr, epochs=1, progress=False).state
    state.reducer = Reducer()
    res = fit(method, net, Xtr, ytr, epochs=1, state=state, progress=False)
    assert res.state.reducer is None and isinstance(state.reducer, Reducer)


def test_data_key_matches_the_same_tensor_only():
    """The input caches (Gram matrices) are keyed by data_key: same object and contents only.
    Two views of the same memory stand for a new batch at a freed batch's address (same
    pointer, shape, dtype and version), which an address-based key took for the old one."""
    import pickle

    from liftnet.methods.base import data_key

    base = torch.rand(10, 3)
    a, b = base[:5], base[:5]
    assert a.data_ptr() == b.data_ptr() and a._version == b._version
    assert data_key(a) == data_key(a)
    assert data_key(a) != data_key(b)
    key = data_key(a)
    a.add_(1.0)  # in place: the contents changed
    assert key != data_key(a)
    key = data_key(base)
    assert pickle.loads(pickle.dumps(key)) != data_key(base)  # a restored key matches nothing
    assert copy.deepcopy(key) == key


def test_backprop_refuses_an_activation_without_gradient():
    X, y = torch.randn(6, 4), torch.tensor([0, 1, 0, 1, 0, 1])
    net = mlp("4-3-2", activation="sign")
    with pytest.raises(ValueError, match="through activation 'sign' on hidden layer 1"):
        get_method("backprop").init_state(net, X, targets_for(net, y, X.dtype))


@pytest.mark.parametrize("key", list(METHODS))
def test_numpy_scalars_are_numbers_kept_as_plain_python_numbers(key):
    # a grid search over np.arange / np.float32 values: the method equals the one made from
    # plain numbers and keeps plain float / int (equality, repr and JSON records)
    cls = METHODS[key]
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    numbers_ = {name: v for name, v in defaults.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)}
    assert numbers_
    for name, value in numbers_.items():
        given = np.int64(value) if isinstance(value, int) else np.float32(value)
        method = get_method(key, **{name: given})
        stored = getattr(method, name)
        assert type(stored) is type(value), (name, type(stored))
        assert method == get_method(key, **{name: type(value)(given)})
        json.dumps(method.hyperparameters())


def test_huge_python_ints_are_floats_checked_against_the_cap(small_data):
    method = get_method("lifted", rho=10**20)
    assert method.rho == 1e20 and type(method.rho) is float
    Xtr, ytr, _, _ = small_data
    res = fit(method, mlp("8-12-3"), Xtr, ytr, epochs=1, progress=False)  # no OverflowError
    assert len(res.history) == 1
    for big in (10**31, 10**400, -(10**400)):
        with pytest.raises(ValueError, match=r"rho must be .*(at most 1e\+30|>= 0)"):
            get_method("lifted", rho=big)


@pytest.mark.parametrize("key", list(METHODS))
def test_a_state_of_another_method_is_refused(key, small_data):
    arch, (Xtr, ytr, _, _) = _setup(key, small_data)
    net = mlp(arch, loss=METHODS[key].losses[0])
    method = get_method(key, **FAST[key])
    state = method.init_state(net, Xtr, targets_for(net, ytr, Xtr.dtype))
    assert type(state) is method.state_type()
    other = "lifted" if key == "backprop" else "backprop"
    foreign = get_method(other).init_state(net, Xtr, targets_for(net, ytr, Xtr.dtype))
    want = (f"state is a {type(foreign).__name__}, method {key} needs a "
            f"{type(state).__name__}")
    with pytest.raises(ValueError, match=want):
        fit(method, net, Xtr, ytr, epochs=1, state=foreign, progress=False)


@pytest.mark.parametrize("key", list(METHODS))
def test_data_that_requires_grad_trains_as_without(key, small_data):
    arch, (Xtr, ytr, _, _) = _setup(key, small_data)
    loss = METHODS[key].losses[0]
    net = mlp(arch, loss=loss)
    y = ytr if loss == "ce" else targets_for(net, ytr, Xtr.dtype)
    method = get_method(key, **FAST[key])
    plain = fit(method, net, Xtr, y, epochs=1, progress=False)
    graded = fit(method, net, Xtr.clone().requires_grad_(), y.clone().requires_grad_()
                 if y.is_floating_point() else y, epochs=1, progress=False)
    for (W, b), (W2, b2) in zip(plain.state.params, graded.state.params, strict=True):
        torch.testing.assert_close(W.detach(), W2.detach())
        torch.testing.assert_close(b.detach(), b2.detach())


def _stepped_on_rows_0_to_50(key, small_data):
    """(net, method, state after one step on rows 0-49, X, Y) for the batch-identity tests."""
    arch, (Xtr, ytr, _, _) = _setup(key, small_data)
    net = mlp(arch, loss=METHODS[key].losses[0])
    Y = targets_for(net, ytr, Xtr.dtype)
    method = get_method(key, **FAST[key])
    state = method.init_state(net, Xtr, Y, generator=torch.Generator().manual_seed(0))
    return net, method, method.step(net, state, Xtr[:50], Y[:50]), Xtr, Y


@pytest.mark.parametrize("key", [k for k in METHODS if k not in ("backprop", "convex")])
def test_objective_does_not_pair_lifted_variables_with_another_batch(key, small_data):
    """After a step on batch A, the objective on another batch B of the same size does not
    evaluate A's lifted variables with B's samples (a row count cannot tell them apart):
    Fenchel and Bregman score B at its feed-forward activations, as a state that has not
    stepped would; the methods whose objective needs the lifted variables refuse.  On A, also
    as a fresh slice of the same rows, it is the value with A's lifted variables."""
    net, method, state, Xtr, Y = _stepped_on_rows_0_to_50(key, small_data)
    fresh = type(state)(params=state.params)  # the same weights, no lifted variables
    on_a = method.objective(net, state, Xtr[:50], Y[:50])
    assert on_a != pytest.approx(method.objective(net, fresh, Xtr[:50], Y[:50]), rel=1e-6)
    if key in ("fenchel", "bregman"):
        assert method.objective(net, state, Xtr[50:100], Y[50:100]) == pytest.approx(
            method.objective(net, fresh, Xtr[50:100], Y[50:100]), rel=1e-12)
    else:
        with pytest.raises(ValueError, match="belong to other samples"):
            method.objective(net, state, Xtr[50:100], Y[50:100])
    # the same rows in another order are another batch too
    perm = torch.arange(49, -1, -1)
    if key in ("fenchel", "bregman"):
        assert method.objective(net, state, Xtr[:50][perm], Y[:50][perm]) == pytest.approx(
            method.objective(net, fresh, Xtr[:50][perm], Y[:50][perm]), rel=1e-12)
    else:
        with pytest.raises(ValueError, match="belong to other samples"):
            method.objective(net, state, Xtr[:50][perm], Y[:50][perm])


@pytest.mark.parametrize("key", [k for k in METHODS if k not in ("backprop", "convex")])
def test_step_with_new_batch_false_on_other_samples_starts_them_afresh(key, small_data):
    """``new_batch=False`` keeps the lifted variables only for the samples they belong to: a
    step on batch B after a step on batch A of the same size (or on A's rows in another order)
    equals a step with ``new_batch=True`` from a copy of the same state, where a row count
    alone would have paired A's variables with B's samples; on a fresh slice of A's rows it
    keeps them (a plain further sweep, not a restart)."""
    net, method, state, Xtr, Y = _stepped_on_rows_0_to_50(key, small_data)
    perm = torch.arange(49, -1, -1)
    for XB, YB in [(Xtr[50:100], Y[50:100]), (Xtr[:50][perm], Y[:50][perm])]:
        want = method.step(net, copy.deepcopy(state), XB, YB, new_batch=True)
        got = method.step(net, copy.deepcopy(state), XB, YB, new_batch=False)
        for (W, b), (W2, b2) in zip(got.params, want.params, strict=True):
            torch.testing.assert_close(W, W2, rtol=0, atol=0)
            torch.testing.assert_close(b, b2, rtol=0, atol=0)
    kept = method.step(net, copy.deepcopy(state), Xtr[:50].clone(), Y[:50], new_batch=False)
    restarted = method.step(net, copy.deepcopy(state), Xtr[:50].clone(), Y[:50])
    assert any(not torch.equal(W, W2) for (W, _), (W2, _) in
               zip(kept.params, restarted.params, strict=True))


def test_batch_signature_sums_by_chunks_and_tells_batches_apart():
    """The signature's sums, by chunks of rows (two here), equal the float64 sums of the whole
    array; a copy has the same signature, two swapped rows another one."""
    X = torch.rand(5000, 1000, generator=torch.Generator().manual_seed(0))
    sig = batch_signature(X)
    rows = X.double().sum(1)
    assert sig[:3] == ((5000, 1000), torch.float32, "cpu")
    assert sig[3] == pytest.approx(float(rows.sum()), rel=1e-12)
    weights = torch.tensor([(i * 0.6180339887498949) % 1.0 for i in range(5000)],
                           dtype=torch.float64)
    assert sig[4] == pytest.approx(float(rows @ weights), rel=1e-12)
    assert batch_signature(X.clone()) == sig
    for i, j in [(0, 1), (4998, 4999), (17, 3333)]:
        order = torch.arange(5000)
        order[i], order[j] = j, i
        state = MethodState(params=[], batch_sig=sig)
        assert not holds_batch(state, X[order])
    assert holds_batch(MethodState(params=[], batch_sig=sig), X.clone())


@pytest.mark.parametrize("key", list(METHODS))
def test_batch_only_names_hyperparameters_of_the_method(key):
    """``batch_only`` lists fields of the method (the CLI warns about them by name)."""
    names = {f.name for f in dataclasses.fields(METHODS[key])}
    assert set(METHODS[key].batch_only) <= names
    assert METHODS["lifted"].batch_only == ("gamma",)
