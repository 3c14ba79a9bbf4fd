r"""Regularised preference games: payoffs, the β-regularised Nash equilibrium, exploitability.

Setting (THEORY.md §5.1; Tiapkin et al. 2025, *Nash Mirror Prox*, arXiv 2505.19731 v1;
Munos et al. 2024, *Nash Learning from Human Feedback*, arXiv 2312.00886). Contexts
x ~ ρ, responses y ∈ {0..n-1}, preferences ``P[x, i, j]`` = P(i ≻ j | x) with
P(i ≻ j | x) + P(j ≻ i | x) = 1, policies ``pi [X, n]``:

* P(y ≻ π | x) = Σ_y' π(y'|x) P(y ≻ y' | x)                        (:func:`payoff`)
* P(π ≻ π') = E_x Σ_{y,y'} π(y|x) π'(y'|x) P(y ≻ y' | x)           (:func:`preference`)
* J_β(π, π') = P(π ≻ π') − β KL_ρ(π‖π_ref) + β KL_ρ(π'‖π_ref),
  a constant-sum game: J_β(π', π) = 1 − J_β(π, π')                 (:func:`objective`)

The game is strongly convex–concave; its unique (symmetric) Nash equilibrium π*_β
is the fixed point [D]

    π*_β(y|x) ∝ π_ref(y|x) exp(P(y ≻ π*_β | x) / β),     KL_ρ(π*_β‖π_ref) ≤ 1/(2β)

(the bound: KL = 1/(2β) − E_x ln Z_x with ln Z_x ≥ 0 by Jensen, because
⟨π, P(·≻π)⟩ = 1/2). The exploitability of π (THEORY.md §5.1; the paper's exact
normalisation is UNCONFIRMED, this is the derived form) is

    Gap_β(π) = max_π' J_β(π', π) − 1/2
             = E_x[β ln Σ_y π_ref(y|x) e^{P(y≻π|x)/β}] + β KL_ρ(π‖π_ref) − 1/2
             = β KL_ρ(π ‖ BR_β(π)),      BR_β(π) ∝ π_ref e^{P(·≻π)/β},

where the last line uses ⟨π, P(·≻π)⟩ = 1/2 per context. It is ≥ 0, and 0 iff π = π*_β;
the two-sided duality gap max_π' J_β(π', π) − min_π'' J_β(π, π'') is 2 Gap_β.
:func:`exploitability` evaluates the KL form (non-negative up to rounding, no
cancellation of O(1) terms); the tests check it against the logsumexp form and a
direct maximisation over π'.

π*_β is computed by Nash Mirror Prox with η = 2β (THEORY.md §5.2, 5.5), whose KL to the
equilibrium contracts by 1/(1 + 2β) per iteration, run until the fixed-point residual

    max_{x, y: π_ref(y|x) > 0} |ln π(y|x) − (ln π_ref(y|x) + P(y≻π|x)/β − ln Z_x)|

is at most ``tol`` (1e-12 by default, reachable in float64 for β ≳ 5e-3). THEORY.md §5.5
notes that a damped fixed-point iteration π ← (1−α)π + α BR_β(π) fails for small β, which is
why the proximal scheme is used. :func:`nash_equilibrium` is the jittable, vmappable core
(over games and β); :func:`solve_nash_equilibrium` validates its inputs and raises when
the residual cannot be certified.

All functions follow their inputs' dtype; validation happens only in the public
wrappers, in numpy, before any jit.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mdptheory import metrics
from mdptheory import validate as V
from mdptheory.errors import DTypeError, ParameterError, ShapeError
from mdptheory.types import PreferenceGame, _game_error, check_preferences

Array = jax.Array

__all__ = [
    "Equilibrium", "best_response_log", "duality_gap", "exploitability", "exploitability_lse",
    "fixed_point_residual", "kl", "kl_log", "kl_per_context", "nash_equilibrium", "nash_mp_step",
    "objective", "payoff", "preference", "require_certified", "solve_nash_equilibrium",
    "span_distance", "win_rate",
]

#: Default iteration cap of :func:`nash_equilibrium`. Nash-MP needs about
#: ln(KL_0 / tol²) / ln(1 + 2β) iterations (≈ 1.6e3 at β = 0.01, ≈ 1.6e4 at β = 1e-3).
DEFAULT_MAX_ITERS = 100_000


# -----------------------------------------------------------------------------
# Payoffs and divergences
# -----------------------------------------------------------------------------


def payoff(game: PreferenceGame, pi: Array) -> Array:
  """P(y ≻ π | x) = Σ_y' π(y'|x) P(y ≻ y' | x).  [X, n] -> [X, n].  THEORY.md §5.1."""
  return jnp.einsum("xij,xj->xi", game.P, pi)


def preference(game: PreferenceGame, pi: Array, pi2: Array) -> Array:
  """P(π ≻ π') = E_{x~ρ} Σ_{y,y'} π(y|x) π'(y'|x) P(y ≻ y' | x).  -> [].  THEORY.md §5.1."""
  return jnp.einsum("x,xi,xij,xj->", game.rho, pi, game.P, pi2)


def kl_per_context(pi: Array, pi2: Array) -> Array:
  """KL(π(·|x)‖π'(·|x)) per context, 0 ln 0 = 0.  [X, n] -> [X].

  Concrete inputs with π > 0 = π' somewhere raise :class:`~mdptheory.errors.SupportMismatchError`;
  traced ones (inside jit/vmap) give +inf there.
  """
  V.check_support(pi, pi2, name="pi", ref_name="pi2", index_names=("x", "y"))
  return metrics.kl(pi, pi2)


def kl(game: PreferenceGame, pi: Array, pi2: Array) -> Array:
  """KL_ρ(π‖π') = E_{x~ρ} KL(π(·|x)‖π'(·|x)).  -> [].  THEORY.md §5.1.

  Concrete inputs with π > 0 = π' somewhere raise :class:`~mdptheory.errors.SupportMismatchError`;
  traced ones (inside jit/vmap) give +inf.
  """
  V.check_support(pi, pi2, name="pi", ref_name="pi2", index_names=("x", "y"))
  return metrics.weighted_sum(game.rho, metrics.kl(pi, pi2))  # a context of weight 0 does not count


def kl_log(game: PreferenceGame, log_pi: Array, log_pi2: Array) -> Array:
  """KL_ρ(π‖π') from log-probabilities (−inf off the support); exact where exp underflows.  -> [].

  Support mismatches raise for concrete inputs, as in :func:`kl`.
  """
  V.check_support(log_pi, log_pi2, name="pi", ref_name="pi2", index_names=("x", "y"), log=True)
  return metrics.weighted_sum(game.rho, metrics.kl_log(log_pi, log_pi2))


def objective(game: PreferenceGame, pi: Array, pi2: Array, *, beta: Any) -> Array:
  """J_β(π, π') = P(π ≻ π') − β KL_ρ(π‖π_ref) + β KL_ρ(π'‖π_ref).  -> [].  THEORY.md §5.1."""
  return (preference(game, pi, pi2) - beta * kl(game, pi, game.pi_ref)
          + beta * kl(game, pi2, game.pi_ref))


def win_rate(game: PreferenceGame, pi: Array) -> Array:
  """P(π ≻ π_ref), the win rate of π against the reference policy.  -> []."""
  return preference(game, pi, game.pi_ref)


def span_distance(log_pi: Array, log_pi2: Array) -> Array:
  """max_x ‖ln π(·|x) − ln π'(·|x)‖_span, with ‖f‖_span = max f − min f.  [X, n] -> [].

  THEORY.md §5.1 (the span seminorm of log-probabilities, in which Nash-MP converges
  uniformly). Entries where both logs are −inf (a common zero) are ignored; a zero in
  only one of them gives +inf.
  """
  both_off = jnp.isneginf(log_pi) & jnp.isneginf(log_pi2)
  d = jnp.where(both_off, 0.0, log_pi - jnp.where(both_off, 0.0, log_pi2))
  d = jnp.where(jnp.isnan(d), jnp.inf, d)
  hi = jnp.max(jnp.where(both_off, -jnp.inf, d), axis=-1)
  lo = jnp.min(jnp.where(both_off, jnp.inf, d), axis=-1)
  return jnp.max(hi - lo)


# -----------------------------------------------------------------------------
# Best response and exploitability
# -----------------------------------------------------------------------------


def _shifted(g: Array) -> Array:
  """g − max_y g per context: a softmax of g/β is unchanged, and g/β stays finite for β down to 1e-300."""
  return g - jax.lax.stop_gradient(jnp.max(g, axis=-1, keepdims=True))


def _log_ref(game: PreferenceGame) -> Array:
  return jnp.log(game.pi_ref)  # −inf off the support of π_ref


def best_response_log(game: PreferenceGame, pi: Array, *, beta: Any) -> Array:
  """ln BR_β(π) = log_softmax(ln π_ref + P(·≻π)/β), the maximiser of J_β(·, π).  [X, n] -> [X, n].

  argmax_π' ⟨P(·≻π), π'⟩ − β KL(π'‖π_ref) per context (Gibbs variational principle).
  """
  return jax.nn.log_softmax(_log_ref(game) + _shifted(payoff(game, pi)) / beta, axis=-1)


def exploitability(game: PreferenceGame, pi: Array, *, beta: Any) -> Array:
  """Gap_β(π) = max_π' J_β(π', π) − 1/2 = β KL_ρ(π ‖ BR_β(π)) ≥ 0.  -> [].

  THEORY.md §5.1 (derived form; the paper's exact normalisation is UNCONFIRMED). The KL
  form equals the logsumexp form :func:`exploitability_lse` because ⟨π, P(·≻π)⟩ = 1/2;
  it avoids cancelling O(1) terms near the equilibrium, where Gap_β = 0.

  Args:
    game: the preference game.
    pi: [X, n] policy.
    beta: regularisation strength β > 0 (may be traced).
  """
  return beta * kl_log(game, jnp.log(pi), best_response_log(game, pi, beta=beta))


def exploitability_lse(game: PreferenceGame, pi: Array, *, beta: Any) -> Array:
  """Gap_β(π) = E_x[β ln Σ_y π_ref e^{P(y≻π|x)/β}] + β KL_ρ(π‖π_ref) − 1/2.  -> [].

  The logsumexp form of THEORY.md §5.1 (max-shifted), valid for any π; its rounding
  error is ~1e-16 of the O(1) terms it cancels. Prefer :func:`exploitability`.
  """
  g = payoff(game, pi)
  m = jax.lax.stop_gradient(jnp.max(g, axis=-1))
  # β lse(ln π_ref + g/β) = m + β lse(ln π_ref + (g − m)/β): g/β is never formed (β down to 1e-300).
  soft = m + beta * jax.nn.logsumexp(_log_ref(game) + (g - m[..., None]) / beta, axis=-1)
  return jnp.dot(game.rho, soft) + beta * kl(game, pi, game.pi_ref) - 0.5


def duality_gap(game: PreferenceGame, pi: Array, *, beta: Any) -> Array:
  """max_π' J_β(π', π) − min_π'' J_β(π, π'') = 2 Gap_β(π) (constant-sum game).  -> []."""
  return 2.0 * exploitability(game, pi, beta=beta)


def fixed_point_residual(game: PreferenceGame, log_pi: Array, *, beta: Any) -> Array:
  """max_{x, y ∈ supp π_ref} |ln π − ln BR_β(π)|, the §5.1 fixed-point residual.  [X, n] -> [].

  Zero iff π = π*_β. +inf when π has a zero inside the support of π_ref.
  """
  log_br = best_response_log(game, jnp.exp(log_pi), beta=beta)
  on = game.pi_ref > 0
  diff = jnp.abs(jnp.where(on, log_pi, 0.0) - jnp.where(on, log_br, 0.0))
  diff = jnp.where(jnp.isnan(diff), jnp.inf, diff)
  return jnp.max(diff)


# -----------------------------------------------------------------------------
# The β-regularised Nash equilibrium
# -----------------------------------------------------------------------------


def nash_mp_step(game: PreferenceGame, log_pi: Array, g: Array, *, beta: Any, eta: Any
                 ) -> tuple[Array, Array]:
  """One exact Nash Mirror-Prox iteration (THEORY.md §5.2, closed forms [D]).

      ln π_{k+1/2} = (ln π_k + η ln π_ref + (η/β) P(·≻π_k)) / (1 + η) − cst,
      ln π_{k+1}   = (ln π_k + η ln π_ref + (η/β) P(·≻π_{k+1/2})) / (1 + η) − cst,

  each the argmin of P(π_k' ≻ π) + β KL_ρ(π‖π_ref) + (β/η) KL_ρ(π‖π_k) over π.

  Args:
    game: the preference game.
    log_pi: [X, n] ln π_k.
    g: [X, n] P(·≻π_k), carried from the previous step (one payoff per half step).
    beta, eta: β > 0, η > 0 (may be traced).

  Returns:
    (ln π_{k+1}, P(·≻π_{k+1})).
  """
  log_ref = _log_ref(game)
  def half(g_):
    return jax.nn.log_softmax((log_pi + eta * log_ref + (eta / beta) * _shifted(g_)) / (1.0 + eta), axis=-1)
  log_half = half(g)
  log_next = half(payoff(game, jnp.exp(log_half)))
  return log_next, payoff(game, jnp.exp(log_next))


class Equilibrium(NamedTuple):
  """The β-regularised Nash equilibrium π*_β with its certificate."""
  pi: Array          # [X, n]  π*_β
  log_pi: Array      # [X, n]  ln π*_β (−inf off the support of π_ref)
  residual: Array    # []      fixed-point residual of §5.1 reached (see fixed_point_residual)
  iterations: Array  # []      Nash-MP iterations run (int32)
  certified: Array   # []      bool, residual <= tol


def nash_equilibrium(game: PreferenceGame, *, beta: Any, tol: Any = 1e-12,
                     max_iters: Any = DEFAULT_MAX_ITERS) -> Equilibrium:
  """π*_β by Nash Mirror Prox with η = 2β from π_ref, until the §5.1 residual is <= tol.

  THEORY.md §5.5: the iterate contracts in KL by 1/(1 + 2β) per iteration (§5.3). The loop
  stops at residual <= tol, at ``max_iters``, or when the residual has made no new minimum
  for ⌈10/ln(1 + 2β)⌉ + 10 iterations (the round-off floor of the dtype, ≈ 3e-14/β in
  float64, so 1e-12 is out of reach below β ≈ 0.005); ``certified`` says whether ``tol``
  was reached. Pure and jittable (a ``lax.while_loop``); ``beta``, ``tol`` and
  ``max_iters`` may be traced, and ``jax.vmap`` over games and/or β works (the batch runs
  until its slowest member stops). Use :func:`solve_nash_equilibrium` for a validated,
  certified answer.

  Args:
    game: the preference game (no validation here).
    beta: β > 0.
    tol: certification threshold on the fixed-point residual.
    max_iters: iteration cap.
  """
  dt = game.P.dtype
  beta = jnp.asarray(beta, dt)
  tol = jnp.asarray(tol, dt)
  eta = 2.0 * beta
  log_pi0 = jax.nn.log_softmax(_log_ref(game), axis=-1)
  g0 = payoff(game, jnp.exp(log_pi0))
  on = game.pi_ref > 0

  def residual(log_pi, g):
    log_br = jax.nn.log_softmax(_log_ref(game) + _shifted(g) / beta, axis=-1)
    diff = jnp.abs(jnp.where(on, log_pi, 0.0) - jnp.where(on, log_br, 0.0))
    return jnp.max(jnp.where(jnp.isnan(diff), jnp.inf, diff))

  # Round-off floor: the residual contracts by ~1/(1 + 2β) per iteration, so a window of
  # `patience` iterations (an e^10 decrease in theory) without a new minimum means it has
  # reached the floor of the dtype (~3e-14/β in float64) and cannot be certified.
  patience = jnp.ceil(10.0 / jnp.log1p(eta)).astype(jnp.int32) + 10

  def cond(c):
    _, _, k, res, _, k_best = c
    return (res > tol) & (k < max_iters) & (k - k_best <= patience)

  def body(c):
    log_pi, g, k, _, best, k_best = c
    log_pi, g = nash_mp_step(game, log_pi, g, beta=beta, eta=eta)
    res = residual(log_pi, g)
    improved = res < best
    return (log_pi, g, k + 1, res, jnp.where(improved, res, best), jnp.where(improved, k + 1, k_best))

  res0 = residual(log_pi0, g0)
  zero = jnp.asarray(0, jnp.int32)
  init = (log_pi0, g0, zero, res0, res0, zero)
  log_pi, _, k, res, _, _ = jax.lax.while_loop(cond, body, init)
  return Equilibrium(pi=jnp.exp(log_pi), log_pi=log_pi, residual=res, iterations=k,
                     certified=res <= tol)


def require_certified(eq: Equilibrium, *, tol: float = 1e-12) -> Equilibrium:
  """Returns ``eq`` if every residual is <= tol; otherwise raises ParameterError naming the worst.

  Works on a single :class:`Equilibrium` or a vmapped batch of them.
  """
  res = np.atleast_1d(np.asarray(eq.residual, dtype=np.float64))
  iters = np.atleast_1d(np.asarray(eq.iterations))
  bad = ~(res <= tol)
  if bad.any():
    i = int(np.argmax(np.where(np.isnan(res), np.inf, res)))
    idx = tuple(int(j) for j in np.unravel_index(i, np.shape(eq.residual)))
    where = f" (batch index {idx})" if np.ndim(eq.residual) else ""
    raise ParameterError(
        f"the beta-regularised Nash equilibrium could not be certified: fixed-point residual "
        f"{res.flat[i]:.3g} > tol={tol:g} after {int(iters.flat[i])} Nash-MP iterations{where} "
        f"({int(bad.sum())} of {res.size} not certified); raise max_iters, compute in float64 "
        f"(jax_enable_x64), or loosen tol")
  return eq


_nash_equilibrium_jit = jax.jit(nash_equilibrium)


def solve_nash_equilibrium(game: PreferenceGame, *, beta: Any, tol: float = 1e-12,
                           max_iters: int = DEFAULT_MAX_ITERS) -> Equilibrium:
  """The certified β-regularised Nash equilibrium of one game (validated; raises if uncertified).

  Args:
    game: a :class:`PreferenceGame` (from :meth:`PreferenceGame.create`), unbatched.
    beta: β > 0, a Python or numpy scalar.
    tol: residual to certify (1e-12 needs float64).
    max_iters: Nash-MP iteration cap.

  Raises:
    ParameterError: β <= 0, tol <= 0, max_iters < 1, or the residual was not reached.
    DTypeError: the game's dtype cannot resolve ``tol`` (e.g. float32 with tol=1e-12).
    ShapeError: a batched or malformed game.
    InvalidGameError: an invalid preference tensor, ``rho`` or ``pi_ref`` (a game built without
      :meth:`PreferenceGame.create`).
  """
  if not isinstance(game, PreferenceGame):
    raise ParameterError(
        f"game must be a PreferenceGame, got {type(game).__name__}; build one with PreferenceGame.create(P)")
  if game.P.ndim != 3 or game.pi_ref.shape != game.P.shape[:2] or game.rho.shape != game.P.shape[:1]:
    raise ShapeError(
        f"solve_nash_equilibrium takes one game with P [X, n, n], rho [X], pi_ref [X, n]; got shapes "
        f"{game.P.shape}, {game.rho.shape}, {game.pi_ref.shape} (for a batch, jax.vmap nash_equilibrium "
        f"and call require_certified)")
  beta = V.check_positive("beta", beta, hint=", e.g. beta=0.1")
  tol = V.check_positive("tol", tol, hint=", e.g. tol=1e-12")
  max_iters = V.check_int("max_iters", max_iters, minimum=1)
  dt = np.dtype(game.P.dtype)
  if not any(V.is_traced(a) for a in game):  # a bare PreferenceGame(...) is not validated on construction
    check_preferences(np.asarray(game.P, np.float64), name="game.P", in_dtype=dt)
    _game_error(V.check_simplex, "game.rho", np.asarray(game.rho))
    _game_error(V.check_simplex, "game.pi_ref", np.asarray(game.pi_ref), index_names=("x",))
  # The residual is a difference of log-probabilities of size ~1/β; rounding puts a floor of
  # at least a few eps·(1 + 1/β) under it (in practice ~100 eps/β). Refuse the hopeless case
  # up front; a floor just above tol is caught by the stall test of nash_equilibrium.
  floor = 4 * float(np.finfo(dt).eps) * (1.0 + 1.0 / beta)
  if tol < floor:
    raise DTypeError(
        f"tol={tol:g} is below what {dt} can certify at beta={beta:g} (residual floor ~{floor:.1g}); "
        f"build the game in float64 (jax_enable_x64 and PreferenceGame.create(..., dtype=float64)) "
        f"or pass tol >= {floor:.1g}")
  eq = _nash_equilibrium_jit(game, beta=beta, tol=tol, max_iters=max_iters)
  return require_certified(eq, tol=tol)
