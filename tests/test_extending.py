"""Extension points (docs/extending.md): activations and methods of one's own, registered from
Python or by ``liftnet --plugin``; the two examples in ``examples/`` are the ones tested."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from liftnet import (
    METHODS,
    Backprop,
    fit,
    get_method,
    register_activation,
    register_method,
    to_torch,
)
from liftnet.activations import ACTIVATIONS, ReLU, get_activation
from liftnet.cli import load_plugins, main
from liftnet.divergences import fenchel_gap, with_conjugate
from liftnet.graph import network
from liftnet.metrics import linear_share, targets_for

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ELU_FILE = str(EXAMPLES / "elu_activation.py")
FEATURES_FILE = str(EXAMPLES / "random_features_method.py")


@pytest.fixture
def elu(registries):
    load_plugins(["--plugin", ELU_FILE])
    return get_activation("elu")


def test_elu_example_is_a_fenchel_young_pair(elu):
    """The gap Phi(v) + Phi*(u) - u v of the example: >= 0, 0 exactly at v = sigma(u), its
    u-gradient sigma(u) - v (autograd), sigma^{-1}(sigma(u)) = u."""
    assert "elu" in with_conjugate()
    u = torch.linspace(-6, 6, 121, dtype=torch.float64)
    v = torch.linspace(-0.999, 5, 97, dtype=torch.float64)
    U, V = torch.meshgrid(u, v, indexing="ij")
    gap = fenchel_gap("elu", V, U)
    assert gap.min() >= 0
    on_graph = fenchel_gap("elu", elu.map(u), u)
    assert on_graph.abs().max() < 1e-12
    assert gap[(V - elu.map(U)).abs() > 1e-3].min() > 0
    uu = u.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(fenchel_gap("elu", torch.full_like(u, 0.3), uu).sum(), uu)
    torch.testing.assert_close(g, elu.map(u) - 0.3)
    torch.testing.assert_close(elu.inverse(elu.map(u[u > -5])), u[u > -5])
    assert torch.isinf(elu.potential(torch.tensor([-1.5], dtype=torch.float64))).all()


def test_elu_x_step_matches_scipy(elu):
    """Fenchel's mirror X-step on a one-sided range (-1, inf) against L-BFGS-B."""
    g = torch.Generator().manual_seed(0)
    X = torch.rand(10, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (10,), generator=g)
    net = network("5-4-3", activation="elu", loss="ce")
    Y = targets_for(net, y, X.dtype)
    method = get_method("fenchel", lam=1.5, loss_weight=2.0, tol=1e-10, max_inner=20000)
    state = method.init_state(net, X, Y, generator=g)
    acts, pre = net.forward_all(state.params, X)
    state.acts = [elu.map(pre[0] + 0.5 * torch.randn(pre[0].shape, generator=g,
                                                     dtype=X.dtype))]
    state.inner = {"x": [], "w": []}
    (W0, b0), (W1, b1) = [(W.numpy(), b.numpy()) for W, b in state.params]
    U_prev = X.numpy() @ W0.T + b0
    shape = state.acts[0].shape

    def f(z):
        Z = torch.from_numpy(z.reshape(shape))
        own = 2 * 1.5 * float((elu.potential(Z) - torch.from_numpy(U_prev) * Z).sum())
        U = z.reshape(shape) @ W1.T + b1
        m = U.max(1, keepdims=True)
        ce = (m[:, 0] + np.log(np.exp(U - m).sum(1)) - (U * Y.numpy()).sum(1)).sum()
        return own + 2.0 * ce

    ref = minimize(f, state.acts[0].numpy().ravel(), method="L-BFGS-B",
                   bounds=[(-1 + 1e-12, None)] * state.acts[0].numel(),
                   options={"ftol": 1e-15, "gtol": 1e-11, "maxiter": 20000, "maxfun": 100000})
    Z = method._x_step(net, state, X, Y, 1).numpy()
    assert f(Z.ravel()) <= ref.fun + 1e-8 * max(1.0, abs(ref.fun))
    np.testing.assert_allclose(Z, ref.x.reshape(shape), atol=1e-5)
    assert Z.min() > -1


def test_registered_activation_trains_with_fenchel_and_backprop_and_exports(elu, small_data):
    Xtr, ytr, Xte, yte = small_data
    net = network("8-12-3", activation="elu", loss="ce")
    res = fit(get_method("fenchel", gamma=1.0, gamma_out=1.0, loss_weight=1.0), net, Xtr, ytr,
              epochs=6, batch_size=0, X_test=Xte, y_test=yte, progress=False)
    objectives = [h["objective"] for h in res.history]
    assert all(b <= a + 1e-9 * abs(a) for a, b in zip(objectives, objectives[1:], strict=False))
    assert res.history[-1]["test_accuracy"] >= 0.8  # the majority class: 0.6
    with torch.no_grad():
        torch.testing.assert_close(to_torch(net, res.state.params)(Xte),
                                   net.forward(res.state.params, Xte))
    res = fit(get_method("backprop"), net, Xtr, ytr, epochs=2, progress=False)
    assert np.isfinite(res.history[-1]["objective"])


def test_register_activation_errors(registries):
    with pytest.raises(ValueError, match="already registered"):
        register_activation(ReLU())
    register_activation(ReLU(), replace=True)
    with pytest.raises(ValueError, match="needs an Activation instance"):
        register_activation(torch.nn.ReLU())

    @dataclass(frozen=True)
    class Bad(ReLU):
        name: ClassVar[str] = "my-relu"

    with pytest.raises(ValueError, match="without '-' or ','"):
        register_activation(Bad())

    @dataclass(frozen=True)
    class Odd(ReLU):
        name: ClassVar[str] = "odd"
        fenchel_x_step: ClassVar[str | None] = "newton"

    with pytest.raises(ValueError, match="fenchel_x_step must be"):
        register_activation(Odd())

    @dataclass(frozen=True)
    class Steep(ReLU):  # claims more strong convexity than its Lipschitz constant allows
        name: ClassVar[str] = "steep"

        def min_curvature(self) -> float:
            return 50.0

    with pytest.raises(ValueError, match=r"0 <= min_curvature\(\) <= curvature\(\)"):
        register_activation(Steep())

    @dataclass(frozen=True)
    class NoStep(ReLU):
        name: ClassVar[str] = "nostep"
        fenchel_x_step: ClassVar[str | None] = None

    register_activation(NoStep())
    X, y = torch.rand(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    with pytest.raises(ValueError, match="Fenchel does not support activation 'nostep'"):
        fit(get_method("fenchel"), network("4-3-3", activation="nostep"), X, y, epochs=1,
            progress=False)


def _features_method():
    load_plugins(["--plugin", FEATURES_FILE])
    return METHODS["random_features"]


def test_random_features_example_is_ridge_on_the_random_features(registries, small_data):
    """The registered example method: hidden layers untouched, the output layer the ridge
    solution on the hidden features (numpy least squares on the augmented system)."""
    _features_method()
    Xtr, ytr, _, _ = small_data
    X64 = Xtr.double()
    net = network("8-30-3", loss="ce")
    method = get_method("random_features", alpha=0.5)
    res = fit(method, net, X64, ytr, epochs=1, progress=False, seed=3)
    start = method.init_state(net, X64, targets_for(net, ytr, X64.dtype),
                              generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(res.state.params[0], start.params[0])  # not trained
    H = torch.relu(X64 @ res.state.params[0][0].T + res.state.params[0][1]).numpy()
    Y = targets_for(net, ytr, X64.dtype).numpy()
    n, d = H.shape
    # [H 1; sqrt(alpha) I 0] [W^T; b] = [Y; 0]: the ridge problem with a free intercept
    A = np.block([[H, np.ones((n, 1))], [np.sqrt(0.5) * np.eye(d), np.zeros((d, 1))]])
    sol = np.linalg.lstsq(A, np.vstack([Y, np.zeros((d, Y.shape[1]))]), rcond=None)[0]
    W, b = res.state.params[1]
    np.testing.assert_allclose(W.numpy(), sol[:d].T, atol=1e-8)
    np.testing.assert_allclose(b.numpy(), sol[d], atol=1e-8)


def test_random_features_init_std_sets_the_hidden_weights_scale(registries, small_data):
    _features_method()
    Xtr, ytr, _, _ = small_data
    net = network("8-400-3", loss="ce")
    for std in (1e-3, 10.0):
        state = get_method("random_features", init_std=std).init_state(
            net, Xtr, targets_for(net, ytr, Xtr.dtype), generator=torch.Generator().manual_seed(0))
        assert float(state.params[0][0].std()) == pytest.approx(std, rel=0.05)
    with pytest.raises(ValueError, match="init_std"):
        get_method("random_features", init_std=-1.0)


def test_registered_method_in_the_cli_and_the_estimator(registries, tmp_path, capsys):
    out = tmp_path / "run.json"
    code = main(["train", "--plugin", FEATURES_FILE, "--method", "random_features",
                 "--arch", "64-200-10", "--alpha", "0.1", "--quiet", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    record = json.loads(out.read_text())
    assert record["method"] == "random_features"
    assert record["config"]["alpha"] == 0.1
    assert record["test_accuracy"] > 0.8
    from liftnet.estimator import LiftedClassifier

    X, y = np.random.default_rng(0).random((60, 5)), np.arange(60) % 3
    clf = LiftedClassifier("random_features", hidden_layer_sizes=(20,)).fit(X, y)
    assert clf.predict(X).shape == (60,)


def test_register_method_errors(registries):
    with pytest.raises(ValueError, match="dataclass subclass of liftnet.Method"):
        register_method(int)

    @dataclass(frozen=True)
    class Again(Backprop):
        key: ClassVar[str] = "backprop"

    with pytest.raises(ValueError, match="'backprop' is already registered"):
        register_method(Again)
    register_method(Backprop)  # the same class again: a no-op

    @dataclass(frozen=True)
    class Dashed(Backprop):
        key: ClassVar[str] = "my-sgd"

    with pytest.raises(ValueError, match="a Python identifier"):
        register_method(Dashed)


def test_plugin_errors_are_clear(registries, tmp_path, capsys):
    assert main(["train", "--plugin", "no_such_liftnet_plugin", "--quiet"]) == 2
    assert "--plugin no_such_liftnet_plugin: ModuleNotFoundError" in capsys.readouterr().err
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('plugin failed on purpose')\n")
    assert main(["train", f"--plugin={broken}", "--quiet"]) == 2
    assert "RuntimeError: plugin failed on purpose" in capsys.readouterr().err
    assert main(["train", "--plugin", str(tmp_path / "missing.py"), "--quiet"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_a_plugin_module_in_the_current_folder_is_found(registries, tmp_path, monkeypatch):
    """The ``liftnet`` program's path lacks the current folder (``python -m`` has it): a
    module named there is still imported; a missing one is still a clear error."""
    import sys

    (tmp_path / "liftnet_test_here_plugin.py").write_text("LOADED = True\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "liftnet_test_here_plugin", raising=False)
    load_plugins(["--plugin", "liftnet_test_here_plugin"])
    assert sys.modules["liftnet_test_here_plugin"].LOADED
    with pytest.raises(ValueError, match="ModuleNotFoundError"):
        load_plugins(["--plugin", "liftnet_test_absent_plugin"])
    assert sys.path.count(str(tmp_path)) == 1


def test_saved_model_with_a_plugin_activation(registries, tmp_path, capsys):
    model = tmp_path / "elu.pt"
    args = ["--plugin", ELU_FILE]
    assert main(["train", *args, "--activation", "elu", "--method", "fenchel", "--arch",
                 "64-20-10", "--epochs", "1", "--quiet", "--save", str(model)]) == 0
    assert main(["evaluate", *args, "--model", str(model)]) == 0
    assert "accuracy" in capsys.readouterr().out
    del ACTIVATIONS["elu"]  # a later session without the plugin
    assert main(["evaluate", "--model", str(model)]) == 2
    assert "'elu', which is not registered here" in capsys.readouterr().err


def test_plugin_given_twice_abbreviated_or_after_double_dash(registries, tmp_path, capsys):
    """A plugin is imported once however often it is named (the method example registers
    without replace=True); ``--plug`` is argparse's abbreviation of --plugin; nothing after
    ``--`` is imported."""
    args = ["train", "--method", "random_features", "--arch", "64-50-10", "--quiet"]
    assert main([*args, "--plugin", FEATURES_FILE, f"--plugin={FEATURES_FILE}"]) == 0
    assert main([*args, "--plug", FEATURES_FILE]) == 0  # a second main() in this process
    for name in [m for m in sys.modules if m.startswith("liftnet_plugin_")]:
        del sys.modules[name]  # review 26: "--pl" (argparse's too) was taken and not imported
    del METHODS["random_features"]
    assert main([*args, "--pl", FEATURES_FILE]) == 0, capsys.readouterr().err
    copy = tmp_path / "plugin_copy.py"  # an output naming a plugin's source is refused
    copy.write_text("SOURCE = 'a plugin that registers nothing'\n")
    for command in ([*args, "--plugin", str(copy), "--out", str(copy)],
                    ["export", "--plugin", str(copy), "--model", str(tmp_path / "m.pt"),
                     "--out", str(copy)]):
        assert main(command) == 2
        assert "names the --plugin file" in capsys.readouterr().err
        assert copy.read_text() == "SOURCE = 'a plugin that registers nothing'\n"
    marker = tmp_path / "marker.py"
    marker.write_text("raise RuntimeError('imported')\n")
    assert load_plugins(["train", "--", "--plugin", str(marker)]) == []


def test_registered_method_flags_get_their_types_and_clashes_are_clear(registries, capsys):
    """Field types from the annotations whatever their spelling (no ``from __future__``
    import in the plugin, ``Optional``); a field named like a train option is a clear error."""
    from typing import Optional

    @dataclass(frozen=True)
    class Typed(Backprop):
        ridge_weight: Optional[float] = None  # noqa: UP045 (the spelling under test)
        passes: int = 1
        key: ClassVar[str] = "typed_backprop"

    register_method(Typed)
    out = main(["train", "--method", "typed_backprop", "--ridge-weight", "0.1", "--passes",
                "2", "--arch", "64-10", "--epochs", "1", "--quiet"])
    assert out == 0, capsys.readouterr().err
    import dataclasses as dc

    from liftnet.cli import _field_type

    types = {f.name: _field_type(Typed, f) for f in dc.fields(Typed)}
    assert types["ridge_weight"] is float and types["passes"] is int

    @dataclass(frozen=True)
    class Clash(Backprop):
        seed: int = 0
        key: ClassVar[str] = "clash"

    @dataclass(frozen=True)
    class FloatBias(Backprop):  # review 26: ADMM's bool --bias decided this float's type
        bias: float = 0.0
        key: ClassVar[str] = "float_bias"

    register_method(FloatBias)
    base = ["train", "--arch", "64-10", "--epochs", "1", "--quiet"]
    assert main([*base, "--method", "float_bias", "--bias", "0.5"]) == 0, \
        capsys.readouterr().err
    assert main([*base, "--method", "float_bias", "--bias", "yes"]) == 2
    assert "--bias: method float_bias expects float, got 'yes'" in capsys.readouterr().err
    assert main([*base, "--method", "admm", "--loss", "mse", "--bias", "0.5"]) == 2
    assert "--bias: method admm expects bool, got '0.5'" in capsys.readouterr().err

    register_method(Clash)
    assert main(["train", "--quiet"]) == 2
    assert "'seed' of clash clashes with the option --seed" in capsys.readouterr().err


def test_register_activation_checks_what_its_fenchel_x_step_needs(registries):
    from liftnet.activations import Activation, Sigmoid

    @dataclass(frozen=True)
    class NoCurvature(ReLU):
        name: ClassVar[str] = "nocurv"

    NoCurvature.curvature = Activation.curvature  # as if ReLU had not defined it
    with pytest.raises(ValueError, match="'nocurv' declares fenchel_x_step='euclidean' but "
                                         "does not define curvature"):
        register_activation(NoCurvature())

    @dataclass(frozen=True)
    class NoConjugate(Sigmoid):
        name: ClassVar[str] = "noconj"

    NoConjugate.conjugate = Activation.conjugate
    with pytest.raises(ValueError, match="does not define conjugate"):
        register_activation(NoConjugate())

    @dataclass(frozen=True)
    class NoSlope(Sigmoid):
        name: ClassVar[str] = "noslope"
        slope: ClassVar[float | None] = None

    with pytest.raises(ValueError, match="its slope"):
        register_activation(NoSlope())


@dataclass(frozen=True)
class _ReLU6(ReLU):
    """min(max(u, 0), 6): the projection onto the box [0, 6]."""

    name: ClassVar[str] = "relu6"
    domain: ClassVar[tuple[float | None, float | None]] = (0.0, 6.0)
    box: ClassVar[tuple[float | None, float | None] | None] = (0.0, 6.0)
    fenchel_x_step: ClassVar[str | None] = None

    def map(self, u):
        return u.clamp(0.0, 6.0)

    def torch_module(self):
        return torch.nn.ReLU6()


def test_lifted_trains_a_registered_box_activation(registries, small_data):
    """The lifted network (paper 004) takes any registered projection onto a box: a copy of
    ReLU under another name trains exactly as ReLU, ReLU6's lifted variables stay in [0, 6],
    the objective never increases and the export computes the same network."""
    Xtr, ytr, Xte, yte = small_data

    @dataclass(frozen=True)
    class MyReLU(ReLU):
        name: ClassVar[str] = "myrelu"

    register_activation(MyReLU())
    register_activation(_ReLU6())
    runs = {a: fit(get_method("lifted"), network("8-12-3", activation=a, loss="ce"), Xtr, ytr,
                   epochs=4, progress=False) for a in ("relu", "myrelu")}
    for (W, b), (W2, b2) in zip(runs["relu"].state.params, runs["myrelu"].state.params,
                                strict=True):
        assert torch.equal(W, W2) and torch.equal(b, b2)
    net = network("8-12-3", activation="relu6", loss="ce")
    X6 = Xtr * 3  # larger inputs, so that the upper end of the box is active
    res = fit(get_method("lifted"), net, X6, ytr, epochs=6, X_test=Xte * 3, y_test=yte,
              progress=False)
    objectives = [h["objective"] for h in res.history]
    assert all(b <= a + 1e-9 * abs(a) for a, b in zip(objectives, objectives[1:], strict=False))
    acts = res.state.acts[0]
    assert acts.min() >= 0 and acts.max() <= 6 and (acts == 6).any()
    U = X6 @ res.state.params[0][0].T + res.state.params[0][1]
    assert linear_share(net, res.state.params, X6)[0] == pytest.approx(
        float(((U > 0) & (U < 6)).double().mean()), abs=1e-15)
    assert res.history[-1]["test_accuracy"] >= 0.7  # the majority class: 0.6; ReLU: 0.725
    with torch.no_grad():
        torch.testing.assert_close(to_torch(net, res.state.params)(X6),
                                   net.forward(res.state.params, X6))


def test_box_activations_must_project_onto_their_box(registries):
    @dataclass(frozen=True)
    class NotAProjection(ReLU):  # ReLU's map with a box [0, 1]
        name: ClassVar[str] = "notproj"
        box: ClassVar[tuple[float | None, float | None] | None] = (0.0, 1.0)

    with pytest.raises(ValueError, match="'notproj' declares box=.0.0, 1.0. but its map is not "
                                         "the projection onto that box"):
        register_activation(NotAProjection())

    @dataclass(frozen=True)
    class Reversed(ReLU):
        name: ClassVar[str] = "reversed"
        box: ClassVar[tuple[float | None, float | None] | None] = (1.0, 0.0)

    with pytest.raises(ValueError, match="box must be .lower, upper. with lower < upper"):
        register_activation(Reversed())

    @dataclass(frozen=True)
    class Infinite(ReLU):  # review 24: an inf bound was called "not the projection"
        name: ClassVar[str] = "infinite"
        box: ClassVar[tuple[float | None, float | None] | None] = (0.0, math.inf)

    with pytest.raises(ValueError, match=r"box bounds must be finite numbers; use None for no "
                                         r"bound, got \(0.0, inf\)"):
        register_activation(Infinite())
    @dataclass(frozen=True)
    class Capped(ReLU):  # min(max(u, 0), 25) declaring ReLU's box: wrong beyond the grid of -20..20
        name: ClassVar[str] = "capped"

        def map(self, u):
            return u.clamp(0.0, 25.0)

    @dataclass(frozen=True)
    class Wide(ReLU):  # ReLU declaring [0, 1e6]: wrong by a margin relative to the bound
        name: ClassVar[str] = "wide"
        box: ClassVar[tuple[float | None, float | None] | None] = (0.0, 1e6)

    for cls in (Capped, Wide):
        with pytest.raises(ValueError, match="but its map is not the projection"):
            register_activation(cls())
    assert not {"notproj", "reversed", "capped", "wide"} & set(ACTIVATIONS)
    X, y = torch.rand(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    with pytest.raises(ValueError, match="Lifted does not support activation 'tanh' on hidden "
                                         "layer 1 .supports relu, hardtanh, piecewise_sigmoid, "
                                         "identity"):
        fit(get_method("lifted"), network("4-3-3", activation="tanh"), X, y, epochs=1,
            progress=False)


def test_bregman_trains_a_registered_proximal_activation(elu, small_data):
    """Lifted Bregman training (paper 001) takes a registered activation with Phi*, sigma^{-1}
    and slope <= 1: its prox of mu Phi (bisection) against scipy on ELU's potential written
    out here, the full-batch objective never increasing, and the export."""
    from liftnet.proximal import prox_activations, prox_phi

    assert "elu" in prox_activations()

    def phi(x):  # ELU's potential: x^2/2 above 0, (1 + x) log(1 + x) - x on (-1, 0]
        return 0.5 * x * x if x > 0 else (1 + x) * np.log1p(x) - x

    from scipy.optimize import minimize_scalar
    for mu in (0.01, 1.0, 30.0):
        v = np.array([-40.0, -3.0, -0.5, 0.0, 0.3, 2.0, 25.0])
        got = prox_phi("elu", torch.tensor(v, dtype=torch.float64), mu).numpy()
        for vi, gi in zip(v, got, strict=True):
            ref = minimize_scalar(lambda x, vi=vi, mu=mu: mu * phi(x) + 0.5 * (x - vi) ** 2,
                                  bounds=(-1 + 1e-15, abs(vi) + 2), method="bounded",
                                  options={"xatol": 1e-13}).x
            assert gi >= -1 and abs(gi - ref) < 1e-7  # -1 + 1e-17 is -1 in float64
    Xtr, ytr, Xte, yte = small_data
    net = network("8-12-3", activation="elu", loss="ce")
    res = fit(get_method("bregman"), net, Xtr, ytr, epochs=5, batch_size=0, X_test=Xte,
              y_test=yte, progress=False)
    objectives = [h["objective"] for h in res.history]
    assert all(b <= a + 1e-9 * abs(a) for a, b in zip(objectives, objectives[1:], strict=False))
    assert res.history[-1]["test_accuracy"] >= 0.8  # the majority class: 0.6
    assert res.state.acts[0].min() > -1
    with torch.no_grad():
        torch.testing.assert_close(to_torch(net, res.state.params)(Xte),
                                   net.forward(res.state.params, Xte))


def test_bregman_refuses_activations_that_are_not_proximal(registries):
    from liftnet.activations import Sigmoid, Tanh

    @dataclass(frozen=True)
    class Steep(Sigmoid):  # slope 2 > 1: Psi = Phi - x^2/2 would not be convex
        name: ClassVar[str] = "steep"
        slope: ClassVar[float | None] = 2.0

    register_activation(Steep())

    @dataclass(frozen=True)
    class Understated(Tanh):  # tanh with a declared slope 0.5 < 1 = sup tanh'
        name: ClassVar[str] = "understated"
        slope: ClassVar[float | None] = 0.5

    register_activation(Understated())
    X, y = torch.rand(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    with pytest.raises(ValueError, match="'understated': its slope 0.5 is below sup sigma'"):
        fit(get_method("bregman"), network("4-3-3", activation="understated"), X * 10, y,
            epochs=1, progress=False)
    for name in ("steep", "sign"):
        with pytest.raises(ValueError, match=f"Bregman does not support activation '{name}' "
                                             "on hidden layer 1 .supports relu, leaky_relu"):
            fit(get_method("bregman"), network("4-3-3", activation=name), X, y, epochs=1,
                progress=False)


def test_from_torch_reads_registered_activations_by_their_outputs(registries):
    """to_torch -> from_torch round-trips a registered activation, also one whose module is a
    built-in torch class with other settings (Hardtanh(-2, 2)) or keeps its setting outside
    extra_repr; a module of the same class computing something else is not taken for it."""
    from liftnet import from_torch
    from liftnet.activations import HardTanh

    class Scaled(torch.nn.Module):
        def __init__(self, c):
            super().__init__()
            self.c = c

        def forward(self, u):
            return self.c * torch.tanh(u)

    @dataclass(frozen=True)
    class Wide(HardTanh):
        name: ClassVar[str] = "hardtanh2"
        domain: ClassVar[tuple[float | None, float | None]] = (-2.0, 2.0)
        box: ClassVar[tuple[float | None, float | None] | None] = (-2.0, 2.0)

        def map(self, u):
            return u.clamp(-2.0, 2.0)

        def torch_module(self):
            return torch.nn.Hardtanh(-2.0, 2.0)

    @dataclass(frozen=True)
    class Tanh2(Wide):
        name: ClassVar[str] = "tanh2"

        def torch_module(self):
            return Scaled(2.0)

    register_activation(Wide())
    ACTIVATIONS["tanh2"] = Tanh2()  # only its torch module matters here
    for name in ("hardtanh2", "tanh2"):
        net = network("3-4-2", activation=name, loss="ce")
        params = net.init_params(generator=torch.Generator().manual_seed(0))
        net2, params2 = from_torch(to_torch(net, params))
        assert net2 == net
        assert all(torch.equal(W, W2) for (W, _), (W2, _) in zip(params, params2, strict=True))
    with pytest.raises(ValueError, match="no registered activation"):
        from_torch(torch.nn.Sequential(torch.nn.Linear(3, 4), Scaled(5.0), torch.nn.Linear(4, 2)))
    with pytest.raises(ValueError, match=r"bounds \(-3.0, 3.0\) has no registered"):
        from_torch(torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Hardtanh(-3.0, 3.0),
                                       torch.nn.Linear(4, 2)))
