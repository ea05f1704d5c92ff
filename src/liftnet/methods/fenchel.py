"""Fenchel lifted networks (Gu, Askari, El Ghaoui, AISTATS 2020; paper 003).

Training problem (9)/(13), batch-first, **summed** over the N samples of the batch as in the
authors' code (so that the published weights keep their meaning)::

    E = c * loss(Y, U_L) + sum_{l=0}^{L-1} 2 lam_l B_l(X_{l+1}, U_l)
        + sum_l rho_l ||W_l||^2 + sum_l gamma_l ||(W_l, b_l) - (W_l, b_l)^0||^2,
    U_l = layer_l(X_l; W_l, b_l)  (dense X_l W_l^T + b_l, or convolution / pooling (10)-(11)),
    X_0 = X,  X_l in dom F_l (ReLU: X_l >= 0),

with B the Fenchel-Young gap of Theorem 1 (:mod:`liftnet.divergences`; ReLU: (5)), loss the
summed cross-entropy of the softmax (``ce``) or the squared error (``mse``), and (W, b)^0 the
weights at the start of the step (Algorithm 2, line 3; in full-batch mode with gamma = 0 this is
Algorithm 1).  ``objective`` reports E / N without the proximal terms.

One lambda.  Appendix A: for positively homogeneous activations (ReLU) the scaling
X_l -> sqrt(lam_{l-1}) X_l, W_l -> sqrt(lam_l / lam_{l-1}) W_l, b_l -> sqrt(lam_l) b_l turns any
per-layer lam_l into one lambda with per-layer rho and gamma (:func:`one_lambda`), so for these
activations ``lam`` is the only multiplier a user needs; ``lams`` sets them per layer for the
paper's settings (and for activations that are not positively homogeneous, e.g. the sigmoid).

Block-coordinate descent, one sweep per alternation (Algorithm 2, K = ``alternations``):

* X-steps, backward from the last hidden layer, (14)-(16): for X_l (the input of layer l)
  ``argmin_{Z in dom F} 2 lam_{l-1} (F(Z) - <U_{l-1}, Z>) + phi_l(layer_l(Z))`` with phi_l the
  next link's term (2 lam_l B(X_{l+1}, .) or c * loss(Y, .)): strongly convex.  For ReLU,
  leaky ReLU, the identity, hard tanh and the piecewise-linear sigmoid (sigma^{-1} Lipschitz,
  ``fenchel_x_step = "euclidean"``) solved by accelerated projected gradient onto dom F
  (:func:`~liftnet.solvers.apg`) to a relative projected-gradient residual ``tol`` with step
  1 / (2 lam_{l-1} sup F'' + curv * ||layer_l||^2); for the sigmoid and tanh, whose F has no
  Lipschitz gradient on dom F (sigma^{-1} is unbounded at the ends of the range), by Bregman
  proximal gradient with F itself as the distance (:func:`~liftnet.solvers.bregman_gradient`:
  X <- sigma((2 lam U + L sigma^{-1}(X) - grad) / (2 lam + L)), L = slope * curv *
  ||layer_l||^2), which needs sigma only and keeps X inside the range.
* W-steps (17)-(20), independent across layers: ``argmin phi_l(layer_l(X_l; W, b)) +
  rho_l ||W||^2 + gamma_l ||(W, b) - (W, b)^0||^2``, a regression through a convex function of
  the outputs, solved by majorisation-minimisation with the shared matrix
  ``curv * A^T A + 2 (gamma + rho) I`` (A the design rows: samples, or im2col patches of a
  convolution; a convolution's steps run as ``conv2d`` on the images, ``Conv2d.design``)
  (:func:`~liftnet.solvers.mm_regression`; in sample space,
  :func:`~liftnet.solvers.mm_regression_dual`, when a batch has fewer rows than the layer has
  inputs) to a relative step ``tol``.

Every block returns a point no worse than its start, so with K = 1 E never increases in
full-batch training.  The values behind that check are evaluated in float64 whatever the
data's dtype: a W-step of LeNet's first convolution (392,000 outputs per batch) improves its
objective by about 1e-8 of its size, below a float32 sum's resolution, and a float32 check
threw every such step away (the first convolution then never trained).  Prediction: the
plain feed-forward pass (section 4.3).

Beyond the paper, ``extrapolation`` > 0 accelerates Algorithm 1 (full data set): every sweep
starts from x_k + beta_k (x_k - x_{k-1}), x = all weights and activations, with Nesterov's
beta_k capped at ``extrapolation``, and a sweep that ends above E(x_k) is replaced by a plain
sweep from x_k (restart), so E still never increases.  On MNIST 784-300-10 with the squared loss
it reached after 20 sweeps what Algorithm 1 had after 40 or more (``benchmarks/README.md``).
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor

from ..activations import ACTIVATIONS, get_activation
from ..divergences import conjugate
from ..graph import Network, Params
from ..solvers import apg, bregman_gradient
from ..solvers.majorize import RowDesign, augmented_gram, mm_precision, mm_regression
from ..solvers.majorize_dual import dual_applies, mm_regression_dual, sample_precision
from ..sums import sum64
from .base import (
    INIT_SCHEMES,
    Method,
    MethodState,
    check_choice,
    check_finite,
    check_int,
    check_positive,
    check_tol,
    count_samples,
    data_key,
    holds_batch,
    record_batch,
    start_params,
    sum_samples,
    sum_value,
)

X_MOMENTUM = ("fista", "strong")  # the X-steps' momentum (Fenchel.x_momentum)


def fenchel_activations() -> tuple[str, ...]:
    """The registered activations Fenchel trains on hidden layers: those that declare an
    X-step (``Activation.fenchel_x_step``: "euclidean", accelerated projected gradient, for
    ReLU, leaky ReLU, the identity, hard tanh and the piecewise-linear sigmoid; "mirror",
    Bregman proximal gradient, for the sigmoid and tanh) and a ``slope``."""
    return tuple(name for name, act in ACTIVATIONS.items()
                 if act.fenchel_x_step is not None and act.slope is not None)


# LeNet-5 (section 5.2): Appendix C's settings, and liftnet's defaults for it (the CLI's
# ``--arch lenet5``): the same plus target extrapolation on the two convolutions, which makes
# them train (benchmarks/README.md: 0.9820 -> 0.9869 after 5 epochs on MNIST).
LENET5_APPENDIX_C = {"lams": "5,5,1,1", "gammas": "1e-4,1e-2,1,1,1", "loss_weight": 1.0}
LENET5_DEFAULTS = {**LENET5_APPENDIX_C, "target_extrapolation": "300,30,1,1"}


# scalar hyperparameters that a per-layer list replaces when both are set
SHADOWED_BY = (("lam", "lams"), ("gamma", "gammas"), ("gamma_out", "gammas"))


def shadowed(overrides: dict) -> list[tuple[str, str]]:
    """The (scalar, list) pairs both set (not None) in ``overrides`` that disagree (the list
    holds another value where the scalar applies): the list would win and the scalar be
    ignored, which callers refuse with a message in their own words."""
    return [(s, p) for s, p in SHADOWED_BY
            if overrides.get(s) is not None and overrides.get(p) is not None
            and not _agrees(s, overrides[s], overrides[p])]


_ENTRIES = {"lam": slice(None), "gamma": slice(0, -1), "gamma_out": slice(-1, None)}


def _agrees(scalar: str, value: object, per_layer: object) -> bool:
    """Whether the entries of ``per_layer`` that ``scalar`` sets all equal ``value``."""
    try:
        entries = _floats(scalar, per_layer)[_ENTRIES[scalar]]
        return all(e == float(value) for e in entries)
    except (TypeError, ValueError):
        return False


def scalars_over_lists(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` on top, where a scalar given in ``overrides`` also wins over
    a per-layer list of ``base`` that would shadow it: ``lam`` replaces ``lams`` (every hidden
    link), ``gamma`` the hidden entries of ``gammas`` and ``gamma_out`` its last entry (unless
    ``lams`` / ``gammas`` are in ``overrides`` too); and a list in ``overrides`` replaces the
    scalars of ``base`` that it shadows."""
    hp = dict(base)
    for scalar, per_layer in SHADOWED_BY:
        if overrides.get(per_layer) is not None and scalar not in overrides:
            hp.pop(scalar, None)
    if overrides.get("lam") is not None and "lams" not in overrides:
        hp.pop("lams", None)
    if hp.get("gammas") is not None and "gammas" not in overrides:
        gammas = list(_floats("gammas", hp["gammas"]))
        for name, entries in _ENTRIES.items():
            value = overrides.get(name)
            if name != "lam" and isinstance(value, numbers.Real) and not isinstance(value, bool):
                gammas[entries] = [float(value)] * len(gammas[entries])
        hp["gammas"] = tuple(gammas)
    return {**hp, **overrides}


def lenet5_hyperparameters(overrides: dict | None = None,
                           base: dict | None = None) -> dict:
    """``base`` (default :data:`LENET5_DEFAULTS`) with ``overrides`` on top, the scalars of
    ``overrides`` over its per-layer lists (:func:`scalars_over_lists`)."""
    return scalars_over_lists(LENET5_DEFAULTS if base is None else base, dict(overrides or {}))


def _floats(name: str, value: object) -> tuple[float, ...] | None:
    """None, or a tuple of finite floats from a tuple/list, a string "1,5,0.1" or one number
    (a network with one hidden layer)."""
    if value is None:
        return None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = (value,)
    if isinstance(value, str):
        parts = value.split(",")
        if value.strip() and any(not v.strip() for v in parts):
            raise ValueError(f"{name} has an empty entry in {value!r}: write one number per "
                             "layer, separated by single commas")
        try:
            value = tuple(float(v) for v in parts if v.strip())
        except ValueError:
            raise ValueError(f"{name} must be numbers separated by commas, got {value!r}") from None
    if not isinstance(value, (tuple, list)) or not value:
        raise ValueError(f"{name} must be a non-empty list of numbers, got {value!r}")
    for v in value:
        check_positive(f"every entry of {name}", v, allow_zero=True)
    return tuple(float(v) for v in value)


@dataclass
class FenchelState(MethodState):
    """Weights and the lifted activations X_1..X_L of the current batch."""

    acts: list[Tensor] = field(default_factory=list)
    cache: dict = field(default_factory=dict)  # layer 0's MM matrix for the cached inputs
    inner: dict = field(default_factory=dict)  # iterations of the last step's solvers
    # layer l -> (W, b, input, U): a pre-activation already computed for those very tensors
    pre: dict = field(default_factory=dict)
    # extrapolation (full data set): the previous iterate, its objective, Nesterov's t
    previous: tuple | None = None
    value: float | None = None
    value_of: str | None = None  # repr of the method whose objective ``value`` is
    momentum_t: float = 1.0
    restarts: int = 0


@dataclass(frozen=True)
class Fenchel(Method):
    """Fenchel lifted network trained by block-coordinate descent (Algorithms 1 and 2).

    Args:
        lam: the multiplier lambda of every activation constraint (one lambda, Appendix A).
        lams: per-layer multipliers lam_0..lam_{L-1} (overrides ``lam``), e.g. ``"5,5,1,1"``.
        loss_weight: weight c of the output loss (authors' 784-300-10 code: 10).
        gamma: proximal weight towards the previous weights, hidden layers (authors: 10).
        gamma_out: proximal weight of the output layer (authors: 100).
        gammas: per-layer proximal weights gamma_0..gamma_L (overrides gamma, gamma_out).
        bias_gammas: per-layer proximal weights of the biases (default: those of the weights).
        rho: weight decay rho ||W||^2 of the hidden layers (Appendix C: 0 when batched).
        rho_out: weight decay of the output layer.
        rhos: per-layer weight decays rho_0..rho_L (overrides rho, rho_out).
        alternations: K, BCD sweeps per batch (Appendix C: 1).
        extrapolation: largest momentum beta of the extrapolated sweeps on the full data set
            (0: Algorithm 1 as published; see :meth:`step`).  Each sweep then starts from
            x_k + beta_k (x_k - x_{k-1}) (weights and activations, the activations projected on
            dom F) with Nesterov's beta_k = min(extrapolation, (t_k - 1) / t_{k+1}), and is
            redone from x_k (t reset) whenever it ends above E(x_k): E never increases.
            Ignored when every step gets a new batch (Algorithm 2).
        target_extrapolation: per-hidden-layer factors kappa_0..kappa_{L-1} (beyond the paper;
            default: all 1, Algorithm 2 as published), e.g. ``"300,30,1,1"`` for LeNet-5.  In
            Algorithm 2 the W-step of layer l fits the target X0 + kappa_l (X_{l+1} - X0),
            projected on dom F, instead of X_{l+1}, X0 the batch's feed-forward activations
            (line 5): the X-steps give the direction, kappa_l the length of the move.  The
            X-steps shift the activations of early layers very little (the label signal
            fades through the backward X-steps), so their W-steps hardly move; a factor > 1
            makes convolutions train (benchmarks/README.md, LeNet-5).  Applied in the sweeps
            that start from a feed-forward pass: the first sweep of every step of Algorithm 2
            (with K > 1 the later sweeps of a batch fit X_{l+1} itself), only the first sweep
            of Algorithm 1 (the later full-data sweeps keep their descent guarantee).
        tol: relative tolerance of every block solver (module docstring).
        max_inner: iteration cap of every block solver.
        x_momentum: momentum of the accelerated projected gradient of the X-steps with a
            Euclidean step: ``"fista"`` (FISTA's (t_k - 1) / t_{k+1} with restarts, the
            published figures' setting) or ``"strong"`` (beyond the paper: the constant
            momentum of Nesterov's scheme for strongly convex problems, from the modulus
            2 lam inf F'' of the X-step, e.g. 2 lam for ReLU; the same subproblem to the same
            tolerance, often in fewer steps: LeNet-5's largest X-step, that of the first
            convolution's output, 40 instead of 60; not always, so not the default).
        init: weight initialisation (authors: xavier).
        bias_init: initial biases (authors: 0.1).
    """

    lam: float = 1.0
    lams: str | None = None
    loss_weight: float = 10.0
    gamma: float = 10.0
    gamma_out: float = 100.0
    gammas: str | None = None
    bias_gammas: str | None = None
    rho: float = 0.0
    rho_out: float = 0.0
    rhos: str | None = None
    alternations: int = 1
    extrapolation: float = 0.0
    target_extrapolation: str | None = None
    tol: float = 1e-4
    max_inner: int = 100
    x_momentum: str = "fista"
    init: str = "xavier"
    bias_init: float = 0.1

    key: ClassVar[str] = "fenchel"
    supports_conv: ClassVar[bool] = True
    monotone: ClassVar[bool] = True
    supports_distributed: ClassVar[bool] = True
    default_batch_size: ClassVar[int] = 500
    default_epochs: ClassVar[int] = 10

    def __post_init__(self) -> None:
        check_positive("lam", self.lam)
        object.__setattr__(self, "lams", _floats("lams", self.lams))
        for name in ("gammas", "bias_gammas", "rhos", "target_extrapolation"):
            object.__setattr__(self, name, _floats(name, getattr(self, name)))
        for name in ("lams", "target_extrapolation"):
            value = getattr(self, name)
            if value is not None and min(value) <= 0:
                raise ValueError(f"every entry of {name} must be > 0, got {value}")
        check_positive("loss_weight", self.loss_weight)
        for name in ("gamma", "gamma_out", "rho", "rho_out"):
            check_positive(name, getattr(self, name), allow_zero=True)
        check_int("alternations", self.alternations, 1)
        check_positive("extrapolation", self.extrapolation, allow_zero=True)
        if isinstance(self.extrapolation, (int, float)) and self.extrapolation >= 1:
            raise ValueError(f"extrapolation must be < 1, got {self.extrapolation}")
        check_tol("tol", self.tol)
        check_int("max_inner", self.max_inner, 1)
        check_choice("x_momentum", self.x_momentum, X_MOMENTUM)
        check_choice("init", self.init, INIT_SCHEMES)
        check_finite("bias_init", self.bias_init)

    @classmethod
    def supported_activations(cls) -> tuple[str, ...]:
        """The activations that declare an X-step (:func:`fenchel_activations`)."""
        return fenchel_activations()

    def check_network(self, net: Network) -> None:
        """The base checks, and every per-layer list (lams, gammas, ...) against the depth."""
        super().check_network(net)
        for per_layer in (self.layer_lams, self.layer_target_extrapolation, self.layer_gammas,
                          self.layer_bias_gammas, self.layer_rhos):
            per_layer(net)

    # ------------------------------------------------------------------ per-layer weights
    def layer_lams(self, net: Network) -> list[float]:
        """lam_0..lam_{L-1}, one per hidden link."""
        if self.lams is None:
            return [self.lam] * net.n_hidden
        if len(self.lams) != net.n_hidden:
            raise ValueError(f"lams has {len(self.lams)} entries, the network {net.n_hidden} "
                             "hidden layers")
        return list(self.lams)

    def layer_target_extrapolation(self, net: Network) -> list[float]:
        """kappa_0..kappa_{L-1}, one per hidden layer's W-step target (1: as published)."""
        if self.target_extrapolation is None:
            return [1.0] * net.n_hidden
        if len(self.target_extrapolation) != net.n_hidden:
            raise ValueError(f"target_extrapolation has {len(self.target_extrapolation)} "
                             f"entries, the network {net.n_hidden} hidden layers")
        return list(self.target_extrapolation)

    def _per_layer(self, net: Network, name: str, default: list[float]) -> list[float]:
        value = getattr(self, name)
        if value is None:
            return default
        if len(value) != len(net.layers):
            raise ValueError(f"{name} has {len(value)} entries, the network "
                             f"{len(net.layers)} layers")
        return list(value)

    def layer_gammas(self, net: Network) -> list[float]:
        """Proximal weights of the weights, gamma_0..gamma_L."""
        return self._per_layer(net, "gammas", [self.gamma] * net.n_hidden + [self.gamma_out])

    def layer_bias_gammas(self, net: Network) -> list[float]:
        """Proximal weights of the biases (default: those of the weights)."""
        return self._per_layer(net, "bias_gammas", self.layer_gammas(net))

    def layer_rhos(self, net: Network) -> list[float]:
        """Weight decays rho_0..rho_L."""
        return self._per_layer(net, "rhos", [self.rho] * net.n_hidden + [self.rho_out])

    # ------------------------------------------------------------------ state
    def init_state(
        self,
        net: Network,
        X: Tensor,
        Y: Tensor,
        *,
        generator: torch.Generator | None = None,
        params: Params | None = None,
    ) -> FenchelState:
        self.check_network(net)
        self.layer_lams(net), self.layer_bias_gammas(net), self.layer_rhos(net)  # lengths
        params = start_params(net, X, params, generator=generator, scheme=self.init,
                              bias=self.bias_init)
        return FenchelState(params=params)

    # ------------------------------------------------------------------ the links' terms
    def _out_term(self, net: Network, Y: Tensor):
        """(value, gradient, curvature) of phi(U) = c * loss(Y, U), U the output (N, k)."""
        c = self.loss_weight
        if net.loss == "ce":
            def value(U: Tensor) -> float:
                U = U.double()
                return c * float((torch.logsumexp(U, 1) - (U * Y.double()).sum(1)).sum())

            def grad(U: Tensor) -> Tensor:
                return torch.softmax(U, 1).sub_(Y).mul_(c)

            return value, grad, c / 2.0  # Boehning: softmax Hessian <= I / 2

        def value_mse(U: Tensor) -> float:
            return c * float(torch.linalg.vector_norm(U.double() - Y.double())) ** 2

        def grad_mse(U: Tensor) -> Tensor:
            return (U - Y).mul_(2.0 * c)

        return value_mse, grad_mse, 2.0 * c

    @staticmethod
    def _link_term(name: str, lam: float, T: Tensor):
        """(value, gradient, curvature) of phi(U) = 2 lam (F*(U) - <U, T>), i.e. 2 lam B(T, U)
        up to the constant 2 lam F(T): gradient 2 lam (sigma(U) - T) (dB/du of Theorem 1)."""
        act = get_activation(name)

        def value(U: Tensor) -> float:  # in float64, by chunks of rows (liftnet.sums)
            return 2.0 * lam * sum64(lambda u, t: conjugate(name, u) - u * t, U, T)

        def grad(U: Tensor) -> Tensor:
            G = act.map(U)  # U itself for the identity: then out of place
            G = G.sub_(T) if G is not U else G - T
            return G.mul_(2.0 * lam)

        return value, grad, 2.0 * lam * act.slope  # grad is 2 lam slope-Lipschitz

    # ------------------------------------------------------------------ objective
    def objective(self, net: Network, state: FenchelState, X: Tensor, Y: Tensor) -> float:
        """E / N of the module docstring (without the proximal terms; in distributed training
        N and the sums over samples are those of every process)."""
        n = X.shape[0]
        acts = state.acts
        if not acts or acts[0].shape[0] != n or not holds_batch(state, X):
            acts, _ = net.forward_all(state.params, X)
        lams, rhos = self.layer_lams(net), self.layer_rhos(net)
        xs = [X, *acts]
        data, reg = 0.0, 0.0
        for l, (layer, (W, b)) in enumerate(zip(net.layers, state.params, strict=True)):
            U = layer.forward(xs[l], W, b)
            if l == len(net.layers) - 1:
                data += self._out_term(net, Y)[0](U)
            else:
                name = layer.activation  # the gap F(V) + F*(U) - <U, V> (Theorem 1)
                potential = get_activation(name).potential
                data += 2.0 * lams[l] * sum64(
                    lambda u, v, name=name, potential=potential: (
                        potential(v) + conjugate(name, u) - u * v), U, xs[l + 1])
            reg += rhos[l] * float(torch.linalg.vector_norm(W)) ** 2
        data = sum_value(state, data, X.device)  # distributed: every process's samples
        return (data + reg) / count_samples(state, X)

    # ------------------------------------------------------------------ one step
    def step(
        self, net: Network, state: FenchelState, X: Tensor, Y: Tensor, *, new_batch: bool = True
    ) -> FenchelState:
        # records X; other samples than the last step's are a new batch, whatever the caller says
        new_batch = record_batch(state, X, new_batch)
        if new_batch or not state.acts or state.acts[0].shape[0] != X.shape[0]:
            # Algorithm 2, line 5: X re-initialised by the feed-forward rule
            state.acts, pre = net.forward_all(state.params, X)
            state.pre = {}
            for l, U in enumerate(pre):
                state.pre[l] = (*state.params[l], X if l == 0 else state.acts[l - 1], U)
            state.previous, state.value, state.momentum_t = None, None, 1.0
            self._sweeps(net, state, X, Y, feed_forward=list(state.acts))
        elif self.extrapolation == 0.0:
            self._sweeps(net, state, X, Y)  # Algorithm 1
            # (a schedule may turn the extrapolation on again: it starts anew from here)
            state.previous, state.value, state.momentum_t = None, None, 1.0
        else:
            self._extrapolated_sweeps(net, state, X, Y)
        state.pre = {}  # reused within the step only (and no batch kept alive after it)
        state.step += 1
        return state

    def _sweeps(self, net: Network, state: FenchelState, X: Tensor, Y: Tensor,
                feed_forward: list[Tensor] | None = None) -> None:
        """K block-coordinate sweeps from the state's point (Algorithms 1 and 2).
        ``feed_forward``: the batch's feed-forward activations (Algorithm 2), the origin of
        the W-step targets' ``target_extrapolation``."""
        prev = [(W.clone(), b.clone()) for W, b in state.params]  # Algorithm 2, line 3
        kappas = self.layer_target_extrapolation(net)
        state.inner = {"x": [], "w": []}
        for k in range(self.alternations):
            # lines 7-10: X_L, ..., X_1 backward, (15)/(16) then (14)
            for l in range(net.n_hidden, 0, -1):
                state.acts[l - 1] = self._x_step(net, state, X, Y, l)
            # lines 11-14: every (W_l, b_l), (19)/(20); extrapolated targets only in the sweep
            # that starts from the feed-forward pass (k = 0): in later sweeps X - X0 would
            # contain the first sweep's own weight change, and kappa would repeat it
            for l in range(len(net.layers)):
                target = None
                if (feed_forward is not None and k == 0 and l < net.n_hidden
                        and kappas[l] != 1.0):
                    X0 = feed_forward[l]  # X0 + kappa (X_{l+1} - X0), projected on dom F
                    target = self._project(net.layers[l].activation,
                                           X0 + kappas[l] * (state.acts[l] - X0))
                state.params[l] = self._w_step(net, state, X, Y, l, prev[l], target)

    def _extrapolated_sweeps(self, net: Network, state: FenchelState, X: Tensor,
                             Y: Tensor) -> None:
        """Sweeps from the extrapolated point with a restart (``extrapolation``)."""
        current = _copy_parts((state.params, state.acts))
        # a schedule may have changed the hyperparameters, and with them the objective: the
        # restart test compares values of this method's objective
        if state.value is None or getattr(state, "value_of", None) != repr(self):
            state.value = self.objective(net, state, X, Y)
        t = state.momentum_t
        t_next = (1.0 + (1.0 + 4.0 * t * t) ** 0.5) / 2.0
        beta = min(self.extrapolation, (t - 1.0) / t_next)
        if state.previous is not None and beta > 0:
            (params, acts), (old_params, old_acts) = current, state.previous
            state.params = [(W + beta * (W - W0), b + beta * (b - b0))
                            for (W, b), (W0, b0) in zip(params, old_params, strict=True)]
            state.acts = [self._project(layer.activation, A + beta * (A - A0))
                          for layer, A, A0 in zip(net.layers, acts, old_acts, strict=False)]
        self._sweeps(net, state, X, Y)
        value = self.objective(net, state, X, Y)
        if value > state.value:  # restart: a plain sweep from x_k, which cannot increase E
            state.params, state.acts = _copy_parts(current)
            self._sweeps(net, state, X, Y)
            value = self.objective(net, state, X, Y)
            state.restarts += 1
            t_next = 1.0
        state.previous, state.value, state.momentum_t = current, value, t_next
        state.value_of = repr(self)

    @staticmethod
    def _pre_activation(net: Network, state: FenchelState, l: int, x_in: Tensor) -> Tensor:
        """layer_l(x_in; W_l, b_l), reused when the feed-forward pass or an X-step computed
        it for the same tensors (the first sweep of a batch: two 500 x 785 x 300 products)."""
        W, b = state.params[l]
        hit = state.pre.get(l)
        if hit is not None and hit[0] is W and hit[1] is b and hit[2] is x_in:
            return hit[3]
        U = net.layers[l].forward(x_in, W, b)
        state.pre[l] = (W, b, x_in, U)
        return U

    @staticmethod
    def _project(name: str, Z: Tensor) -> Tensor:
        """Projection on dom F of the activation (ReLU: Z >= 0, sigmoid: 0 <= Z <= 1)."""
        lower, upper = get_activation(name).domain
        return Z if lower is None and upper is None else Z.clamp(lower, upper)

    def _next_term(self, net: Network, state: FenchelState, Y: Tensor, l: int,
                   target: Tensor | None = None):
        """The term of link l as a function of U_l (N, out_features), towards ``target``
        instead of X_{l+1} where given."""
        layer = net.layers[l]
        if l == len(net.layers) - 1:
            return self._out_term(net, Y)
        T = state.acts[l] if target is None else target
        return self._link_term(layer.activation, self.layer_lams(net)[l], T)

    def _x_step(self, net: Network, state: FenchelState, X: Tensor, Y: Tensor, l: int) -> Tensor:
        """X_l <- argmin_Z 2 lam_{l-1} (F(Z) - <U_{l-1}, Z>) + phi_l(layer_l(Z))  (14)-(16)."""
        below, layer = net.layers[l - 1], net.layers[l]
        name = below.activation
        act = get_activation(name)
        lam = self.layer_lams(net)[l - 1]
        x_below = X if l == 1 else state.acts[l - 2]
        U_prev = self._pre_activation(net, state, l - 1, x_below)
        W, b = state.params[l]
        value_next, grad_next, curv = self._next_term(net, state, Y, l)

        def f(Z: Tensor) -> float:
            own = sum64(lambda z, u: act.potential(z) - u * z, Z, U_prev)
            return 2.0 * lam * own + value_next(layer.forward(Z, W, b))

        def grad(Z: Tensor) -> Tensor:
            g = layer.adjoint(grad_next(layer.forward(Z, W, b)), W)
            return g.add_(act.inverse(Z), alpha=2.0 * lam).sub_(U_prev, alpha=2.0 * lam)

        def project(Z: Tensor) -> Tensor:
            return self._project(name, Z)

        smooth = curv * _op_norm_sq(layer, W, X.dtype)  # of phi_l(layer_l(Z)), Euclidean
        Z0 = state.acts[l - 1]
        if act.fenchel_x_step == "mirror":  # Bregman proximal gradient, F as the distance
            memo: list = [None, None]  # the last (Z, layer_l(Z)): value and gradient share it

            def forward(Z: Tensor) -> Tensor:
                if memo[0] is not Z:
                    memo[:] = [Z, layer.forward(Z, W, b)]
                return memo[1]

            def grad_next_of(Z: Tensor) -> Tensor:
                return layer.adjoint(grad_next(forward(Z)), W)

            lower, upper = act.domain
            eps = 4.0 * torch.finfo(Z0.dtype).eps  # F' is infinite on the ends of the range
            V0 = act.inverse(Z0.clamp(None if lower is None else lower + eps,
                                      None if upper is None else upper - eps))
            res = bregman_gradient(grad_next_of, act.map, U_prev, V0, 2.0 * lam,
                                   max(act.slope * smooth, 1e-12),
                                   value_g=lambda Z: value_next(forward(Z)),
                                   conjugate=act.conjugate, tol=self.tol,
                                   max_iter=self.max_inner)
        else:  # step 1 / (2 lam sup F'' + smooth)
            # strongly convex with modulus 2 lam inf F'' (ReLU: 2 lam)
            mu = 2.0 * lam * act.min_curvature() if self.x_momentum == "strong" else 0.0
            res = apg(grad, project, Z0, 2.0 * lam * act.curvature() + smooth, tol=self.tol,
                      max_iter=self.max_inner, strong_convexity=mu)
        state.inner["x"].append(res.iterations)
        return res.x if f(res.x) <= f(Z0) else Z0

    def _w_step(self, net: Network, state: FenchelState, X: Tensor, Y: Tensor, l: int,
                prev: tuple[Tensor, Tensor], target: Tensor | None = None
                ) -> tuple[Tensor, Tensor]:
        """(W_l, b_l) <- argmin phi_l(layer_l(X_l; W, b)) + rho_l ||W||^2
        + gamma_l ||(W, b) - (W, b)^0||^2  (17)-(20); phi_l towards ``target`` where given
        (``target_extrapolation``)."""
        layer = net.layers[l]
        W, b = state.params[l]
        x_in = X if l == 0 else state.acts[l - 1]
        # the link's term and the outputs in the layer's own layout (design(x_in).apply)
        value, grad, curv = self._next_term(net, state, Y, l, target=target)
        g, gb = self.layer_gammas(net)[l], self.layer_bias_gammas(net)[l]
        r = self.layer_rhos(net)[l]
        design = layer.design(x_in)
        P = design.rows
        shape = W.shape
        W_rows, W0_rows = W.reshape(shape[0], -1), prev[0].reshape(shape[0], -1)
        # the sample-space form needs every row (not in distributed training) and the rows'
        # layout (a dense layer's)
        dual = (state.reducer is None and isinstance(design, RowDesign)
                and dual_applies(P.shape[0], P.shape[1], g, gb, r))
        key = (data_key(X), curv, g, gb, r, state.reducer)  # reduced Gram: other key
        if l == 0 and state.cache.get("key") == key:
            precision, dual = state.cache["precision"], state.cache["dual"]
        else:
            precision = None
            if dual:
                try:
                    precision = sample_precision(P, curv, gb)
                except ValueError:  # numerically singular (e.g. a proximal weight of 1e-20
                    dual = False  # beside the curvature): the primal form, with its ridge
            if not dual:
                precision = mm_precision(
                    sum_samples(state, augmented_gram(P, signed=design.signed)), curv, g, gb, r)
            if l == 0:  # the inputs do not change within a batch (all epochs in full batch)
                state.cache = {"key": key, "precision": precision, "dual": dual}
        U_start = self._pre_activation(net, state, l, x_in)
        common = dict(W0=W0_rows, b0=prev[1], g_w=g, g_b=gb, rho=r, tol=self.tol,
                      max_iter=self.max_inner, U=U_start)
        if dual:  # fewer rows than inputs (a batch into a wide layer): sample space
            res = mm_regression_dual(P, grad, value, W_rows, b, precision, curv, **common)
        else:
            reduce = None if state.reducer is None else state.reducer.sum
            res = mm_regression(design, grad, value, W_rows, b, precision, **common,
                                reduce=reduce)
            if res.rejected and P.dtype != torch.float64:
                # no step was kept: the Gram matrix of float32 rows is exact to about 1e-7 of
                # its entries, which loses the small eigenvalues of an ill-conditioned one
                # (e.g. a regression's output layer, targets in the thousands: cond ~ 1e8);
                # solved again with the Gram matrix in float64
                precision = mm_precision(sum_samples(state, augmented_gram(P.double())),
                                         curv, g, gb, r)
                if l == 0:
                    state.cache = {"key": key, "precision": precision, "dual": False}
                res = mm_regression(design, grad, value, W_rows, b, precision, **common,
                                    reduce=reduce)
        state.inner["w"].append(res.iterations)
        return res.W.reshape(shape), res.b


def _copy_parts(parts) -> tuple[list[tuple[Tensor, Tensor]], list[Tensor]]:
    """Copies of (params, acts): the iterate kept for the extrapolation and its restart."""
    params, acts = parts
    return [(W.clone(), b.clone()) for W, b in params], [A.clone() for A in acts]


def _op_norm_sq(layer, W: Tensor, dtype: torch.dtype) -> float:
    """||layer's linear map||_2^2: exact for a dense layer (times the pooling's 1/p^2); for a
    convolution an estimate, 30 power iterations on one image inflated by 5 % (a step wants
    an upper bound and power iteration approaches from below), run on W / ||W|| so that a
    tiny or zero kernel gives a tiny or zero bound, not an underflow to 0 / 0.  The estimate
    is 2-5 % above the exact norm for LeNet-5's convolutions, but not a certified bound: on
    small images whose top singular values lie close together 30 iterations can fall short
    (review 38: 1.8 % below the norm on one of 100 kernels of a 12 x 12 network).  A step up
    to that much too long still converges in practice, and ``_x_step`` keeps its result only
    when it does not increase the objective.  (The circular-convolution bound, the largest
    spectral norm of the kernel's DFT on the padded grid, is certified but 10-50 % loose on
    such images, which would slow every X-step.)"""
    if layer.plain:
        return float(torch.linalg.matrix_norm(W.double(), ord=2)) ** 2
    if type(layer).__name__ == "Dense":
        return float(torch.linalg.matrix_norm(W.double(), ord=2)) ** 2 / layer.pool**2
    scale = float(torch.linalg.vector_norm(W.double()))
    if scale == 0.0:
        return 0.0
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(1, layer.input_size, generator=gen, dtype=torch.float64).to(W.device)
    Wd = W.double() / scale
    zero = torch.zeros(W.shape[0], dtype=torch.float64, device=W.device)
    est = 0.0
    for _ in range(30):
        v = v / torch.linalg.vector_norm(v)
        v = layer.adjoint(layer.forward(v, Wd, zero), Wd)
        est = float(torch.linalg.vector_norm(v))
        if est == 0.0:  # v in the map's null space (not for a nonzero kernel in practice)
            break
    return 1.05 * est * scale**2


# ---------------------------------------------------------------------- Appendix A
def _scales(net: Network, lams: list[float]) -> list[tuple[float, float, float]]:
    """Per layer l: (scale of its input X_l, of W_l, of b_l) of Appendix A's change of variables
    X_l -> sqrt(lam_{l-1}) X_l, W_l -> sqrt(lam_l / lam_{l-1}) W_l, b_l -> sqrt(lam_l) b_l, with
    lam_{-1} = 1 (the data) and lam_L = 1 (the output loss is not a constraint)."""
    full = [1.0, *lams, 1.0]  # full[l] = lam_{l-1}
    return [(full[l] ** 0.5, (full[l + 1] / full[l]) ** 0.5, full[l + 1] ** 0.5)
            for l in range(len(net.layers))]


def one_lambda(method: Fenchel, net: Network) -> Fenchel:
    """The single-lambda problem equivalent to ``method``'s per-layer multipliers (Appendix A).

    For positively homogeneous activations (ReLU, leaky ReLU, identity) B(t v, t u) =
    t^2 B(v, u), so the change of variables of :func:`scale_variables` turns
    sum_l 2 lam_l B(X_{l+1}, U_l) into sum_l 2 B(Xbar_{l+1}, Ubar_l): every multiplier becomes
    1, and the per-layer multipliers move into the weight decays and proximal weights,
    rhobar_l = rho_l lam_{l-1} / lam_l, gammabar_l = gamma_l lam_{l-1} / lam_l for the weights
    and gamma_l / lam_l for the biases (lam_{-1} = lam_L = 1).  The returned method trains the
    scaled variables; its iterates are the scaled iterates of ``method`` (checked by the tests).
    """
    for l, layer in enumerate(net.layers[:-1]):
        if layer.activation not in ("relu", "leaky_relu", "identity"):
            raise ValueError(f"one_lambda needs positively homogeneous activations; hidden layer "
                             f"{l + 1} has {layer.activation!r}")
    lams = method.layer_lams(net)
    full = [1.0, *lams, 1.0]
    g, gb, r = method.layer_gammas(net), method.layer_bias_gammas(net), method.layer_rhos(net)
    n = len(net.layers)
    return dataclasses.replace(
        method, lam=1.0, lams=None,
        gammas=tuple(g[l] * full[l] / full[l + 1] for l in range(n)),
        bias_gammas=tuple(gb[l] / full[l + 1] for l in range(n)),
        rhos=tuple(r[l] * full[l] / full[l + 1] for l in range(n)),
    )


def scale_variables(net: Network, lams: list[float], params: Params, acts: list[Tensor], *,
                    inverse: bool = False) -> tuple[Params, list[Tensor]]:
    """Appendix A's change of variables (``inverse=True``: back to the original variables)."""
    out_p, out_a = [], []
    for l, ((sx, sw, sb), (W, b)) in enumerate(zip(_scales(net, lams), params, strict=True)):
        p = -1.0 if inverse else 1.0
        out_p.append((W * sw**p, b * sb**p))
        if l > 0:
            out_a.append(acts[l - 1] * sx**p)
    return out_p, out_a
