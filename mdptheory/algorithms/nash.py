r"""Preference games: Nash Mirror-Prox and its baselines, with preference-query counting (THEORY.md §5).

After Tiapkin, Calandriello, Belomestny, Moulines, Naumov, Rasul, Valko & Ménard, *Accelerating Nash
Learning from Human Feedback via Mirror Prox* (arXiv 2505.19731 v1, 2025), and the baselines of
THEORY.md §5.4: Nash-MD (Munos et al., *Nash Learning from Human Feedback*, ICML 2024, arXiv 2312.00886),
self-play MWU, regularized OMD (the INPO update, Zhang et al., arXiv 2407.00617), Magnetic Mirror Descent
(Sokota et al., ICLR 2023, arXiv 2206.05825), Euclidean extragradient and the exact proximal point method.

Setting (THEORY.md §5.1). A game has a preference tensor ``P[x, y, y'] = Pr(y ≻ y' | x)`` [X, n, n],
context weights ``rho`` [X] and a reference policy ``pi_ref`` [X, n]; policies are [X, n], kept as
log-probabilities. The *preference oracle* maps a policy π to ``P(· ≻ π | x) = Σ_y' P[x, ·, y'] π(y'|x)``
[X, n]; one call is one *preference query*. With ``num_samples = m > 0`` a query returns instead the
fraction of wins in m sampled comparisons per (x, y): each comparison draws an opponent y' ~ π(·|x) and
an outcome ~ Bernoulli(P[x, y, y']), so each outcome is marginally Bernoulli(P(y ≻ π | x)) and is drawn as
such (the win fraction is an unbiased estimate; m X n comparisons per query). The β-regularized game has the unique
symmetric equilibrium π*_β ∝ π_ref exp(P(· ≻ π*_β)/β) (§5.1).

The updates, per context, in log space (``lr = ln π_ref``, ``g(π) = P(· ≻ π)``, ``cst`` a normalizer):

* :func:`nash_mp` (§5.2), two queries per iteration, π_{k+1/2} and π_{k+1} the two proximal steps
      ln π_{k+1/2} = (ln π_k + η lr + (η/β) g(π_k)) / (1 + η) − cst,
      ln π_{k+1}   = (ln π_k + η lr + (η/β) g(π_{k+1/2})) / (1 + η) − cst;
  the theory step size is η = 2β (the default), with which KL(π*‖π_k) contracts like (1 + 2β)^(−k).
* :func:`nash_mp_approx`: each proximal step argmin_π −<π, g> + β KL(π‖π_ref) + (β/η) KL(π‖π_k) is solved
  by ``inner_steps`` stochastic natural-policy-gradient steps (mirror descent in the softmax
  parameterization: ln π ← (1 − a_t c) ln π + a_t c (T + ĝ_t / c), with c = β (1 + 1/η), T =
  (ln π_k + η lr)/(1 + η), a_t c = ``inner_lr``/(t + 1)), each from a fresh sampled query ĝ_t. With
  ``inner_lr = 1`` the inner iterate is the exact prox step applied to the average of the inner
  estimates. The inner error KL_ρ(π^exact ‖ π̂) of the worse of the two prox steps is traced. The paper's
  approximate variant is analysed there; its details are UNCONFIRMED (THEORY.md §5.3) and this is the
  testbed's version.
* :func:`nash_md` (§5.4): ln π^μ_t = (1 − η_t β) ln π_t + η_t β lr − cst, ln π_{t+1} = ln π^μ_t + η_t g(π^μ_t)
  − cst, one query; η_t = η fixed, or η_t = 2/(β(t + 2)) with ``schedule="harmonic"`` (Munos et al., Thm 1).
* :func:`self_play_mwu`: ln π_{t+1} = ln π_t + η g(π_t) − cst (unregularized), one query, with the averaged
  iterate π̄_k = (1/(k + 1)) Σ_{t≤k} π_t traced beside the last one.
* :func:`regularized_omd` (INPO-style): ln π_{t+1} = (1 − ηβ) ln π_t + ηβ lr + η g(π_t) − cst, one query.
* :func:`mmd`: ln π_{t+1} = (ln π_t + ηβ lr + η g(π_t)) / (1 + ηβ) − cst, one query.
* :func:`extragradient`: the two-step structure of Nash-MP in the Euclidean geometry,
  π_{k+1/2} = Π_δ(π_k + η F(π_k)), π_{k+1} = Π_δ(π_k + η F(π_{k+1/2})), F(π) = g(π) − β (ln π − lr)
  (the gradient of the player's regularized objective), Π_δ the Euclidean projection onto the truncated
  simplex {π ≥ δ} (through :func:`mdptheory.qexp.sparsemax`; δ = ``min_prob`` keeps ln π finite, the
  KL gradient being unbounded at the boundary); two queries.
* :func:`proximal_point`: the implicit step ln π_{k+1} = (ln π_k + η lr + (η/β) g(π_{k+1}))/(1 + η) − cst,
  solved by ``inner_steps`` fixed-point iterations started at π_k (the first two iterations are Nash-MP's
  half and full steps); every inner evaluation is a counted query, the final fixed-point residual
  max_x span(T(π) − ln π) is the traced inner error. An oracle for speed per implicit step (KL contracts by
  1/(1 + η) per step, THEORY.md §5.3 [D]).

Every function returns a :class:`NashResult` whose :class:`NashTrace` has one entry per iterate
k = 0..K (entry 0 is π_0 = π_ref unless ``pi0`` is given): the §5.6 diagnostics, computed with the exact
preferences even when the algorithm sees sampled ones, against a caller-supplied ``reference`` (π*_β,
e.g. from :func:`mdptheory.games.nash_equilibrium`), and ``n_queries[k]``, the oracle calls spent to
produce π_k. Diagnostics that an algorithm does not define are NaN.

All functions are pure. ``beta``, ``eta``, ``inner_lr``, ``min_prob``, the game's arrays, ``pi0``,
``reference`` and ``key`` may be traced, so ``jax.vmap`` over β, η, games and seeds is one compiled call; ``num_iters``,
``num_samples``, ``inner_steps``, ``schedule`` and the recording flags are static. Concrete inputs are
validated in numpy before anything is jitted (:mod:`mdptheory.validate`); traced values pass through.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from mdptheory import games, metrics
from mdptheory import validate as V
from mdptheory.errors import ParameterError, ShapeError, SupportMismatchError
from mdptheory.qexp import sparsemax
from mdptheory.types import PreferenceGame, _game_error, check_preferences

Array = jax.Array

__all__ = [
    "ALGORITHMS", "NashResult", "NashTrace", "extragradient", "mmd", "nash_md", "nash_mp", "nash_mp_approx",
    "proximal_point", "queries_per_iteration", "regularized_omd", "self_play_mwu",
]

SCHEDULES = ("constant", "harmonic")


# -----------------------------------------------------------------------------
# Results
# -----------------------------------------------------------------------------


class NashTrace(NamedTuple):
  """Per-iterate diagnostics (THEORY.md §5.6). Entry k = 0..K belongs to π_k; scalar fields are [K + 1].

  KL, span and win rates use the exact preferences; fields an algorithm does not define are NaN, and the
  ones against π* are NaN without ``reference``.
  """
  kl: Array            # [K+1]  KL_ρ(π* ‖ π_k)
  kl_half: Array       # [K+1]  KL_ρ(π* ‖ π_{k−1/2}): the point of the update k−1 → k at which the oracle was
                       #        queried (the extrapolation of Nash-MP / extragradient, the mixture π^μ of
                       #        Nash-MD); NaN at k = 0 and for single-point methods
  gap: Array           # [K+1]  Gap_β(π_k) (self-play MWU without beta: max_π' P(π' ≻ π_k) − 1/2)
  span: Array          # [K+1]  max_x ‖ln π_k(·|x) − ln π*(·|x)‖_span
  kl_ref: Array        # [K+1]  KL_ρ(π_k ‖ π_ref)
  win_rate: Array      # [K+1]  P(π_k ≻ π_ref)
  n_queries: Array     # [K+1]  preference-oracle calls spent to produce π_k (int)
  inner_error: Array   # [K+1]  approximate prox steps: max of KL_ρ(π^exact ‖ π̂) over the two steps;
                       #        proximal point: the fixed-point residual; NaN at k = 0 and elsewhere
  kl_avg: Array        # [K+1]  KL_ρ(π* ‖ π̄_k), π̄_k = mean of π_0..π_k (self-play MWU only)
  gap_avg: Array       # [K+1]  the ``gap`` of π̄_k (self-play MWU only)
  log_pi: Array | None = None       # [K+1, X, n]  ln π_k, with ``record_iterates``
  log_pi_half: Array | None = None  # [K+1, X, n]  ln π_{k−1/2} (entry 0 NaN), with ``record_iterates``


class NashResult(NamedTuple):
  """Result of K iterations of a preference-game algorithm."""
  log_pi: Array       # [X, n]  ln π_K, the last iterate
  log_pi_half: Array  # [X, n]  ln π_{K−1/2}, the last query point (= log_pi for single-point methods)
  pi_avg: Array       # [X, n]  π̄_K = (1/(K + 1)) Σ_{k=0}^K π_k
  trace: NashTrace


#: The algorithms of this module, by function name.
ALGORITHMS = ("nash_mp", "nash_mp_approx", "nash_md", "self_play_mwu", "regularized_omd", "mmd",
              "extragradient", "proximal_point")


def queries_per_iteration(algorithm: str, *, inner_steps: int = 1) -> int:
  """Preference-oracle calls per iteration: 2 (Nash-MP, extragradient), 2·inner (approximate Nash-MP),
  inner (proximal point), 1 (the rest)."""
  table = {"nash_mp": 2, "extragradient": 2, "nash_mp_approx": 2 * inner_steps, "proximal_point": inner_steps}
  if algorithm not in ALGORITHMS:
    raise ParameterError(f"unknown algorithm {algorithm!r}; choose from {ALGORITHMS}")
  return table.get(algorithm, 1)


# -----------------------------------------------------------------------------
# Oracle and diagnostics (pure, log domain)
# -----------------------------------------------------------------------------


def _payoff(P: Array, log_pi: Array) -> Array:
  """g(π)(x, y) = P(y ≻ π | x) = Σ_y' P[x, y, y'] π(y'|x).  [X, n, n], [X, n] -> [X, n]."""
  return jnp.einsum("xij,xj->xi", P, jnp.exp(log_pi))


def _query(P: Array, log_pi: Array, key: Array, num_samples: int) -> Array:
  """One preference query: the exact g(π), or the win fraction of m sampled comparisons per (x, y).

  Each comparison of y against y' ~ π(·|x) is won with probability Σ_y' π(y'|x) P[x, y, y'] = g(π)(x, y), so
  the m outcomes are drawn directly as Bernoulli(g) (the same law as sampling y' then the outcome).
  """
  g = _payoff(P, log_pi)
  if num_samples == 0:
    return g
  wins = jax.random.uniform(key, (num_samples,) + g.shape, g.dtype) < g  # [m, X, n] Bernoulli(g) outcomes
  return jnp.mean(wins, axis=0, dtype=g.dtype)


def _kl_rho(rho: Array, log_p: Array, log_q: Array) -> Array:
  """KL_ρ(p ‖ q) = Σ_x ρ(x) KL(p(·|x) ‖ q(·|x)) from log-probabilities."""
  return metrics.weighted_sum(rho, metrics.kl_log(log_p, log_q))  # a context of weight 0 does not count


def _gap(game: PreferenceGame, log_pi: Array, beta, regularized: bool) -> Array:
  """Gap_β(π) (:func:`mdptheory.games.exploitability`, §5.1); unregularized: E_x max_y P(y ≻ π|x) − 1/2."""
  if not regularized:
    return game.rho @ jnp.max(_payoff(game.P, log_pi), -1) - 0.5
  return games.exploitability(game, jnp.exp(log_pi), beta=beta)


def _shift(g: Array) -> Array:
  """g − max_y g per context (a stop-gradient constant): payoffs scaled by 1/β stay <= 0 and finite."""
  return g - jax.lax.stop_gradient(jnp.max(g, axis=-1, keepdims=True))


def _log_normalize(z: Array) -> Array:
  return jax.nn.log_softmax(z, axis=-1)


# -----------------------------------------------------------------------------
# The engine
# -----------------------------------------------------------------------------


class _Step(NamedTuple):
  log_pi: Array      # [X, n]  ln π_{k+1}
  log_half: Array    # [X, n]  the query point (NaN-filled when undefined)
  inner_error: Array  # []


def _make_step(kind: str, P, rho, lr, beta, eta, aux, *, num_samples: int, inner_steps: int, schedule: str):
  """The update ln π_k -> (ln π_{k+1}, query point, inner error) of ``kind`` as ``step(lp, k, key)``.

  ``aux`` is the one extra traced hyperparameter: ``inner_lr`` of approximate Nash-MP, ``min_prob`` of
  extragradient (unused otherwise).
  """
  dtype = P.dtype
  nan = jnp.asarray(jnp.nan, dtype)

  def q(lp, key):
    return _query(P, lp, key, num_samples)

  def prox(anchor, g):
    # argmin_π −<π, g> + β KL(π‖π_ref) + (β/η) KL(π‖anchor)  (§5.2, closed form [D]).
    # g − max_y g is a per-context shift (the prox step is unchanged) that keeps (η/β) g finite and exactly
    # rounded for β down to the float range (β = 1e-300 would otherwise give inf − inf = NaN).
    return _log_normalize((anchor + eta * lr + (eta / beta) * _shift(g)) / (1.0 + eta))

  if kind == "nash_mp":
    def step(lp, k, key):
      k1, k2 = jax.random.split(key)
      lh = prox(lp, q(lp, k1))
      return _Step(prox(lp, q(lh, k2)), lh, nan)

  elif kind == "nash_mp_approx":
    c = beta * (1.0 + 1.0 / eta)

    def approx_prox(anchor, opponent, key):
      target = (anchor + eta * lr) / (1.0 + eta)

      def inner(theta, t):
        g_hat = _query(P, opponent, jax.random.fold_in(key, t), num_samples)
        a = aux / (t + 1.0).astype(dtype)   # inner_lr / (t + 1)
        return _log_normalize((1.0 - a) * theta + a * (target + g_hat / c)), None

      theta, _ = lax.scan(inner, anchor, jnp.arange(inner_steps))
      exact = prox(anchor, _payoff(P, opponent))
      return theta, _kl_rho(rho, exact, theta)

    def step(lp, k, key):
      k1, k2 = jax.random.split(key)
      lh, e1 = approx_prox(lp, lp, k1)
      ln, e2 = approx_prox(lp, lh, k2)
      return _Step(ln, lh, jnp.maximum(e1, e2))

  elif kind == "nash_md":
    def step(lp, k, key):
      eta_t = eta if schedule == "constant" else 2.0 / (beta * (k + 2.0))
      lmu = _log_normalize((1.0 - eta_t * beta) * lp + eta_t * beta * lr)
      return _Step(_log_normalize(lmu + eta_t * q(lmu, key)), lmu, nan)

  elif kind == "self_play_mwu":
    def step(lp, k, key):
      return _Step(_log_normalize(lp + eta * q(lp, key)), jnp.full_like(lp, jnp.nan), nan)

  elif kind == "regularized_omd":
    def step(lp, k, key):
      return _Step(_log_normalize((1.0 - eta * beta) * lp + eta * beta * lr + eta * q(lp, key)),
                   jnp.full_like(lp, jnp.nan), nan)

  elif kind == "mmd":
    def step(lp, k, key):
      return _Step(_log_normalize((lp + eta * beta * lr + eta * q(lp, key)) / (1.0 + eta * beta)),
                   jnp.full_like(lp, jnp.nan), nan)

  elif kind == "extragradient":
    n = P.shape[-1]
    min_prob = aux

    def ascent(lp, g):
      return g - beta * (lp - lr)

    def project(x):
      # Euclidean projection onto {π ≥ δ, Σ π = 1}: δ + (1 − nδ) Π_Δ((x − δ)/(1 − nδ)).
      mass = 1.0 - n * min_prob
      return jnp.log(min_prob + mass * sparsemax((x - min_prob) / mass))

    def step(lp, k, key):
      k1, k2 = jax.random.split(key)
      pi = jnp.exp(lp)
      lh = project(pi + eta * ascent(lp, q(lp, k1)))
      return _Step(project(pi + eta * ascent(lh, q(lh, k2))), lh, nan)

  elif kind == "proximal_point":
    def step(lp, k, key):
      def inner(u, j):
        return prox(lp, q(u, jax.random.fold_in(key, j))), None
      u, _ = lax.scan(inner, lp, jnp.arange(inner_steps))
      residual = games.span_distance(prox(lp, _payoff(P, u)), u)
      return _Step(u, jnp.full_like(lp, jnp.nan), residual)

  else:  # pragma: no cover - guarded by the public functions
    raise ParameterError(f"unknown algorithm {kind!r}")
  return step


@functools.partial(jax.jit, static_argnames=("kind", "num_iters", "num_samples", "inner_steps", "schedule",
                                             "has_reference", "regularized_gap", "record_average",
                                             "record_iterates", "record_trace"))
def _solve(P, rho, lr, lp0, ref, beta, eta, aux, key, *, kind: str, num_iters: int, num_samples: int,
           inner_steps: int, schedule: str, has_reference: bool, regularized_gap: bool, record_average: bool,
           record_iterates: bool, record_trace: bool) -> NashResult:
  dtype = P.dtype
  beta = jnp.asarray(beta, dtype)
  eta = jnp.asarray(eta, dtype)
  aux = jnp.asarray(aux, dtype)
  nan = jnp.asarray(jnp.nan, dtype)
  step = _make_step(kind, P, rho, lr, beta, eta, aux, num_samples=num_samples, inner_steps=inner_steps,
                    schedule=schedule)
  game = PreferenceGame(P=P, rho=rho, pi_ref=jnp.exp(lr))
  g_ref = _payoff(P, lr)  # P(· ≻ π_ref), once: P(π ≻ π_ref) = E_x <π, g_ref> costs O(X n) per iterate

  def diagnostics(lp, lh, err, pi_sum, k):
    out = dict(
        kl=_kl_rho(rho, ref, lp) if has_reference else nan,
        kl_half=_kl_rho(rho, ref, lh) if has_reference else nan,
        gap=_gap(game, lp, beta, regularized_gap),
        span=games.span_distance(lp, ref) if has_reference else nan,
        kl_ref=_kl_rho(rho, lp, lr),
        win_rate=rho @ jnp.sum(jnp.exp(lp) * g_ref, axis=-1),
        inner_error=err, kl_avg=nan, gap_avg=nan)
    if record_average:
      log_avg = jnp.log(pi_sum / (k + 1.0))
      out["kl_avg"] = _kl_rho(rho, ref, log_avg) if has_reference else nan
      out["gap_avg"] = _gap(game, log_avg, beta, regularized_gap)
    if record_iterates:
      out["log_pi"], out["log_pi_half"] = lp, lh
    return out

  def body(carry, k):
    lp, _, pi_sum = carry
    s = step(lp, k, jax.random.fold_in(key, k))
    pi_sum = pi_sum + jnp.exp(s.log_pi)
    diag = diagnostics(s.log_pi, s.log_half, s.inner_error, pi_sum, k + 1) if record_trace else None
    return (s.log_pi, s.log_half, pi_sum), diag

  pi_sum0 = jnp.exp(lp0)
  (lp, log_half, pi_sum), diags = lax.scan(body, (lp0, jnp.full_like(lp0, jnp.nan), pi_sum0),
                                           jnp.arange(num_iters))
  if kind in ("self_play_mwu", "regularized_omd", "mmd", "proximal_point"):
    log_half = lp
  if record_trace:
    first = diagnostics(lp0, jnp.full_like(lp0, jnp.nan), nan, pi_sum0, 0)
    fields = {name: jnp.concatenate([jnp.asarray(first[name])[None], diags[name]]) for name in diags}
  else:
    fields = {name: jnp.full((num_iters + 1,), jnp.nan, dtype) for name in
              ("kl", "kl_half", "gap", "span", "kl_ref", "win_rate", "inner_error", "kl_avg", "gap_avg")}
  q_per = queries_per_iteration(kind, inner_steps=inner_steps)
  trace = NashTrace(n_queries=q_per * jnp.arange(num_iters + 1), **fields)
  return NashResult(log_pi=lp, log_pi_half=log_half, pi_avg=pi_sum / (num_iters + 1.0), trace=trace)


# -----------------------------------------------------------------------------
# Validation (numpy, before jit)
# -----------------------------------------------------------------------------


def _concrete(x: Any) -> bool:
  return not V.is_traced(x)


def _game_arrays(game: Any, *, need_full_support: bool) -> tuple[Array, Array, Array]:
  """(P, rho, ln π_ref) of a PreferenceGame-like object, shapes checked, values checked when concrete."""
  missing = [f for f in ("P", "rho", "pi_ref") if not hasattr(game, f)]
  if missing:
    raise ParameterError(f"game lacks the fields {missing}; pass a PreferenceGame "
                         f"(mdptheory.types.PreferenceGame.create(P, rho, pi_ref))")
  P, rho, pi_ref = game.P, game.rho, game.pi_ref
  if any(V.is_traced(a) for a in (P, rho, pi_ref)):
    P, rho, pi_ref = jnp.asarray(P), jnp.asarray(rho), jnp.asarray(pi_ref)
  else:
    P, rho, pi_ref = (V.as_real_array(n, a) for n, a in (("P", P), ("rho", rho), ("pi_ref", pi_ref)))
  if P.ndim != 3 or P.shape[1] != P.shape[2]:
    raise ShapeError(f"game.P must have shape (X, n, n) (contexts, responses, responses), got {P.shape}")
  X, n, _ = P.shape
  if rho.shape != (X,) or pi_ref.shape != (X, n):
    raise ShapeError(f"game.rho must have shape ({X},) and game.pi_ref shape ({X}, {n}) to match P {P.shape}; "
                     f"got {rho.shape} and {pi_ref.shape}")
  if isinstance(pi_ref, np.ndarray):
    # A bare PreferenceGame(...) is not validated on construction: check it here, before anything runs.
    check_preferences(P, name="game.P", in_dtype=getattr(game.P, "dtype", np.float64))
    # In the game's own precision: a float32 game's rows sum to 1 within float32 rounding only.
    _game_error(V.check_simplex, "game.rho", np.asarray(game.rho))
    _game_error(V.check_simplex, "game.pi_ref", np.asarray(game.pi_ref), index_names=("x",))
    if need_full_support and (pi_ref <= 0).any():
      x, y = (int(i) for i in np.argwhere(pi_ref <= 0)[0])
      raise SupportMismatchError(
          f"game.pi_ref[{x}, {y}] = 0: this algorithm uses ln pi_ref and needs a reference with full support "
          f"({int((pi_ref <= 0).sum())} zero entries); mix in a little uniform mass, e.g. "
          f"0.999 * pi_ref + 0.001 / n")
    dt = V.resolve_dtype(None) if not isinstance(game.P, jax.Array) else game.P.dtype
    P, rho = jnp.asarray(P, dt), jnp.asarray(rho, dt)
    with np.errstate(divide="ignore"):
      lr = jnp.asarray(np.log(pi_ref), dt)
    return P, rho, lr
  dtype = jnp.result_type(P.dtype, float)
  return P.astype(dtype), rho.astype(dtype), jnp.log(pi_ref.astype(dtype))


def _policy_log(name: str, pi: Any, X: int, n: int, dtype, *, allow_zeros: bool) -> Array:
  if V.is_traced(pi):
    if pi.shape != (X, n):
      raise ShapeError(f"{name} must have shape ({X}, {n}), got {pi.shape}")
    return jnp.log(pi.astype(dtype))
  arr = V.as_real_array(name, pi)
  if arr.shape != (X, n):
    raise ShapeError(f"{name} must have shape (X, n) = ({X}, {n}), got {arr.shape}")
  arr = V.check_stochastic(name, arr, index_names=("x",))
  if not allow_zeros and (arr <= 0).any():
    x, y = (int(i) for i in np.argwhere(arr <= 0)[0])
    raise SupportMismatchError(f"{name}[{x}, {y}] = 0: this algorithm needs an initial policy with full support "
                               f"(its log is used); mix in a little uniform mass")
  with np.errstate(divide="ignore"):
    return jnp.asarray(np.log(arr), dtype)


def _reference_log(reference: Any, X: int, n: int, dtype) -> Array | None:
  """ln π* from an Equilibrium-like object (``.log_pi``) or a probability array [X, n]."""
  if reference is None:
    return None
  log_pi = getattr(reference, "log_pi", None)
  if log_pi is not None:
    if log_pi.shape != (X, n):
      raise ShapeError(f"reference.log_pi must have shape ({X}, {n}), got {log_pi.shape}")
    if _concrete(log_pi) and not np.all(np.isfinite(np.asarray(log_pi))):
      raise SupportMismatchError("reference.log_pi has -inf/NaN entries; pi*_beta has full support, so the "
                                 "reference is not a beta-regularized equilibrium")
    return jnp.asarray(log_pi, dtype)
  return _policy_log("reference", reference, X, n, dtype, allow_zeros=False)


def _check_beta(beta: Any) -> Any:
  return V.check_positive("beta", beta, hint=" (the KL-regularization strength of the game; e.g. beta=0.1)")


def _check_eta(eta: Any, name: str = "eta") -> Any:
  return V.check_positive(name, eta, hint=" (a step size; e.g. eta=2*beta for Nash-MP)")


def _check_product_le_one(eta: Any, beta: Any, what: str) -> None:
  if _concrete(eta) and _concrete(beta) and eta * beta > 1.0:
    raise ParameterError(
        f"eta*beta = {eta}*{beta} = {eta * beta:.6g} > 1: {what} needs eta*beta <= 1 (the weight 1 - eta*beta "
        f"on ln pi_t would be negative); use eta <= {1.0 / beta:.6g}")


def _check_samples(num_samples: Any, key: Any, *, minimum: int = 0) -> tuple[int, Array]:
  num_samples = V.check_int("num_samples", num_samples, minimum=minimum)
  if num_samples > 0 and key is None:
    raise ParameterError(f"num_samples={num_samples} draws sampled comparisons and needs a key; pass "
                         f"key=jax.random.key(seed) (or num_samples=0 for exact preferences)")
  return num_samples, V.check_key(0 if key is None else key)




def _run(kind: str, game: Any, *, beta: Any, eta: Any, num_iters: Any, reference: Any, pi0: Any,
         num_samples: Any, key: Any, inner_steps: int = 1, aux: Any = 1.0, schedule: str = "constant",
         regularized_gap: bool = True, record_average: bool = False, record_iterates: bool = False,
         record_trace: bool = True, need_full_support: bool = True, allow_zero_start: bool = False,
         min_samples: int = 0) -> NashResult:
  num_iters = V.check_int("num_iters", num_iters, minimum=1)
  num_samples, key = _check_samples(num_samples, key, minimum=min_samples)
  P, rho, lr = _game_arrays(game, need_full_support=need_full_support)
  X, n = lr.shape
  dtype = P.dtype
  for pname, pval in (("beta", beta), ("eta", eta), ("inner_lr" if kind == "nash_mp_approx" else "min_prob", aux)):
    V.check_positive_in_dtype(pname, pval, dtype, hint=f" (in {kind})")
  lp0 = lr if pi0 is None else _policy_log("pi0", pi0, X, n, dtype, allow_zeros=allow_zero_start)
  ref = _reference_log(reference, X, n, dtype)
  return _solve(P, rho, lr, lp0, lp0 if ref is None else ref, 1.0 if beta is None else beta, eta, aux, key,
                kind=kind, num_iters=num_iters, num_samples=num_samples, inner_steps=inner_steps,
                schedule=schedule, has_reference=ref is not None, regularized_gap=regularized_gap,
                record_average=record_average, record_iterates=bool(record_iterates),
                record_trace=bool(record_trace))


# -----------------------------------------------------------------------------
# Public algorithms
# -----------------------------------------------------------------------------

_COMMON_ARGS = """\
    game: a :class:`~mdptheory.types.PreferenceGame` (P [X, n, n], rho [X], pi_ref [X, n]).
    num_iters: K, the number of iterations (static).
    reference: π*_β for the KL and span traces: an ``Equilibrium`` (its ``log_pi`` is used) or
      probabilities [X, n]; None leaves those traces NaN.
    pi0: the initial policy [X, n] (default π_ref).
    num_samples: 0 for exact preference probabilities; m > 0 for m sampled comparisons per (x, y) and
      query (static); needs ``key``.
    key: JAX PRNG key (or int seed) of the sampled comparisons.
    record_iterates: also return ln π_k and the query points ln π_{k−1/2} [K+1, X, n] in the trace.
    record_trace: compute the per-iterate diagnostics (False: NaN traces, only the final policies;
      for benchmarks).

"""


def _documented(fn):
  """Fills the arguments every algorithm shares into ``{common}`` of the docstring."""
  fn.__doc__ = fn.__doc__.replace("  {common}\n", _COMMON_ARGS)
  return fn


@_documented
def nash_mp(game: Any, *, beta: Any, eta: Any = None, num_iters: int, reference: Any = None, pi0: Any = None,
            num_samples: int = 0, key: Any = None, record_iterates: bool = False,
            record_trace: bool = True) -> NashResult:
  """Nash Mirror-Prox with exact proximal steps (THEORY.md §5.2; Tiapkin et al. 2025, arXiv 2505.19731).

  ln π_{k+1/2} = (ln π_k + η ln π_ref + (η/β) P(· ≻ π_k))/(1 + η) − cst and
  ln π_{k+1} = (ln π_k + η ln π_ref + (η/β) P(· ≻ π_{k+1/2}))/(1 + η) − cst: the two argmins of §5.2.
  Two preference queries per iteration. Theory (§5.3; stated for β ≤ 1/2, η ≤ 2β): KL(π*_β‖π_k) decreases
  linearly, like (1 + 2β)^(−k) = (1 + 2β)^(−N/2) after N queries, independently of n.

  Args:
    beta: β > 0, the regularization strength (may be traced).
    eta: η > 0 (may be traced); default 2β, the theory step size.
  {common}
  Returns:
    :class:`NashResult`; ``trace.kl_half[k]`` is KL(π*‖π_{k−1/2}).
  """
  beta = _check_beta(beta)
  eta = 2.0 * beta if eta is None else _check_eta(eta)
  return _run("nash_mp", game, beta=beta, eta=eta, num_iters=num_iters, reference=reference, pi0=pi0,
              num_samples=num_samples, key=key, record_iterates=record_iterates, record_trace=record_trace)


@_documented
def nash_mp_approx(game: Any, *, beta: Any, eta: Any = None, num_iters: int, inner_steps: int = 4,
                   inner_lr: Any = 1.0, num_samples: int = 16, key: Any = None, reference: Any = None,
                   pi0: Any = None, record_iterates: bool = False, record_trace: bool = True) -> NashResult:
  """Approximate Nash-MP: each proximal step by ``inner_steps`` stochastic natural-policy-gradient steps.

  The half step solves argmin_π −<π, ĝ> + β KL(π‖π_ref) + (β/η) KL(π‖π_k) with ĝ sampled estimates of
  P(· ≻ π_k), the full step the same with estimates of P(· ≻ π_{k+1/2}); inner step t (from θ_0 = ln π_k)
  is the softmax mirror-descent / natural-PG step ln π ← (1 − a_t) ln π + a_t (T + ĝ_t/c) − cst with
  a_t = ``inner_lr``/(t + 1), c = β(1 + 1/η), T = (ln π_k + η ln π_ref)/(1 + η), a fresh query per inner
  step (2·inner_steps queries per iteration). ``trace.inner_error`` is the larger of the two steps'
  KL_ρ(exact prox step ‖ approximate one). The paper's own approximate variant (arXiv 2505.19731) is
  UNCONFIRMED in its details (THEORY.md §5.3); this is the testbed's version.

  Args:
    beta: β > 0.
    eta: η > 0; default 2β.
    inner_steps: stochastic steps per proximal step (static, >= 1).
    inner_lr: s ∈ (0, 1]: a_t = s/(t + 1); s = 1 makes the inner iterate the exact prox step at the mean
      of the inner estimates.
    num_samples: comparisons per (x, y) per inner query (static; 0: exact preferences, then the inner error
      is the optimization error alone, 0 for ``inner_lr=1``).
  {common}
  Returns:
    :class:`NashResult`.
  """
  beta = _check_beta(beta)
  eta = 2.0 * beta if eta is None else _check_eta(eta)
  inner_steps = V.check_int("inner_steps", inner_steps, minimum=1)
  inner_lr = V.check_positive("inner_lr", inner_lr, hint=" (the inner step-size scale in (0, 1])")
  if _concrete(inner_lr) and inner_lr > 1.0:
    raise ParameterError(f"inner_lr={inner_lr} must be in (0, 1]: a first inner step beyond the prox "
                         f"solution (a_0 > 1) overshoots; use inner_lr=1.0")
  return _run("nash_mp_approx", game, beta=beta, eta=eta, num_iters=num_iters, reference=reference, pi0=pi0,
              num_samples=num_samples, key=key, inner_steps=inner_steps, aux=inner_lr,
              record_iterates=record_iterates, record_trace=record_trace)


@_documented
def nash_md(game: Any, *, beta: Any, eta: Any = None, schedule: str = "constant", num_iters: int,
            reference: Any = None, pi0: Any = None, num_samples: int = 0, key: Any = None,
            record_iterates: bool = False, record_trace: bool = True) -> NashResult:
  """Nash-MD (Munos et al. 2023, arXiv 2312.00886, §6; THEORY.md §5.4).

  ln π^μ_t = (1 − η_t β) ln π_t + η_t β ln π_ref − cst, ln π_{t+1} = ln π^μ_t + η_t P(· ≻ π^μ_t) − cst; one
  query per iteration (at π^μ_t, traced as ``kl_half``). Theorem 1 there: for 0 ≤ η_t β ≤ 1,
  KL(π*‖π_{t+1}) ≤ (1 − η_t β) KL(π*‖π_t) + 2 η_t²; with η_t = 2/(β(t + 2)), KL(π*‖π_T) ≤ 8/(β²(T + 1)).
  Its fixed point for a constant η is not π*_β (the KL floor is ≤ 2η/β).

  Args:
    beta: β > 0.
    eta: η > 0 with ηβ ≤ 1 for ``schedule="constant"``; must be None for ``"harmonic"``.
    schedule: ``"constant"`` (η_t = η) or ``"harmonic"`` (η_t = 2/(β(t + 2)), the paper's schedule).
  {common}
  Returns:
    :class:`NashResult`.
  """
  beta = _check_beta(beta)
  if schedule not in SCHEDULES:
    raise ParameterError(f"schedule={schedule!r}; choose from {SCHEDULES}")
  if schedule == "harmonic":
    if eta is not None:
      raise ParameterError("schedule='harmonic' sets eta_t = 2/(beta (t+2)) itself; leave eta=None "
                           "(or use schedule='constant' with eta)")
    eta = 0.0
  else:
    if eta is None:
      raise ParameterError("nash_md needs eta (with eta*beta <= 1) or schedule='harmonic'")
    eta = _check_eta(eta)
    _check_product_le_one(eta, beta, "Nash-MD's geometric mixture")
  return _run("nash_md", game, beta=beta, eta=eta, num_iters=num_iters, reference=reference, pi0=pi0,
              num_samples=num_samples, key=key, schedule=schedule, record_iterates=record_iterates,
              record_trace=record_trace)


@_documented
def self_play_mwu(game: Any, *, eta: Any, num_iters: int, beta: Any = None, reference: Any = None,
                  pi0: Any = None, num_samples: int = 0, key: Any = None, record_iterates: bool = False,
                  record_trace: bool = True) -> NashResult:
  """Unregularized self-play multiplicative weights: ln π_{t+1} = ln π_t + η P(· ≻ π_t) − cst (§5.4).

  One query per iteration. The last iterate cycles around an interior equilibrium (rock-paper-scissors);
  the average π̄_k = mean(π_0..π_k), traced as ``kl_avg``/``gap_avg`` and returned as ``pi_avg``, converges
  to the von Neumann winner at O(1/√k) for η ∝ 1/√K. π_ref is not used by the update, only by the
  diagnostics (and may have zeros).

  Args:
    eta: η > 0.
    beta: if given, ``gap`` is Gap_β; otherwise the unregularized exploitability max_π' P(π' ≻ π) − 1/2.
  {common}
  Returns:
    :class:`NashResult`.
  """
  eta = _check_eta(eta)
  if beta is not None:
    beta = _check_beta(beta)
  return _run("self_play_mwu", game, beta=beta, eta=eta, num_iters=num_iters, reference=reference, pi0=pi0,
              num_samples=num_samples, key=key, regularized_gap=beta is not None, record_average=True,
              record_iterates=record_iterates, record_trace=record_trace, need_full_support=beta is not None,
              allow_zero_start=True)


@_documented
def regularized_omd(game: Any, *, beta: Any, eta: Any, num_iters: int, reference: Any = None, pi0: Any = None,
                    num_samples: int = 0, key: Any = None, record_iterates: bool = False,
                    record_trace: bool = True) -> NashResult:
  """Regularized OMD, the INPO-style update (Zhang et al. 2024, arXiv 2407.00617; THEORY.md §5.4).

  ln π_{t+1} = (1 − ηβ) ln π_t + ηβ ln π_ref + η P(· ≻ π_t) − cst (INPO's η is 1/η here, its τ is β); one
  query. Its fixed point is π*_β; a rate theorem is UNCONFIRMED.

  Args:
    beta: β > 0.
    eta: η > 0 with ηβ ≤ 1.
  {common}
  Returns:
    :class:`NashResult`.
  """
  beta = _check_beta(beta)
  eta = _check_eta(eta)
  _check_product_le_one(eta, beta, "regularized OMD")
  return _run("regularized_omd", game, beta=beta, eta=eta, num_iters=num_iters, reference=reference, pi0=pi0,
              num_samples=num_samples, key=key, record_iterates=record_iterates, record_trace=record_trace)


@_documented
def mmd(game: Any, *, beta: Any, eta: Any, num_iters: int, reference: Any = None, pi0: Any = None,
        num_samples: int = 0, key: Any = None, record_iterates: bool = False,
        record_trace: bool = True) -> NashResult:
  """Magnetic Mirror Descent with magnet π_ref and strength β (Sokota et al. 2022, arXiv 2206.05825).

  ln π_{t+1} = (ln π_t + ηβ ln π_ref + η P(· ≻ π_t))/(1 + ηβ) − cst; one query. Fixed point π*_β; linear
  last-iterate convergence for small η (constants UNCONFIRMED, THEORY.md §5.4).

  Args:
    beta: β > 0.
    eta: η > 0.
  {common}
  Returns:
    :class:`NashResult`.
  """
  beta = _check_beta(beta)
  eta = _check_eta(eta)
  return _run("mmd", game, beta=beta, eta=eta, num_iters=num_iters, reference=reference, pi0=pi0,
              num_samples=num_samples, key=key, record_iterates=record_iterates, record_trace=record_trace)


@_documented
def extragradient(game: Any, *, beta: Any, eta: Any, num_iters: int, min_prob: Any = 1e-12, reference: Any = None,
                  pi0: Any = None, num_samples: int = 0, key: Any = None, record_iterates: bool = False,
                  record_trace: bool = True) -> NashResult:
  """Extragradient with Euclidean projection onto the simplex (THEORY.md §5.4).

  π_{k+1/2} = Π_δ(π_k + η F(π_k)), π_{k+1} = Π_δ(π_k + η F(π_{k+1/2})), F(π) = P(· ≻ π) − β(ln π − ln π_ref),
  with Π_δ the Euclidean projection onto {π ≥ δ, Σ π = 1}: δ + (1 − nδ) Π_Δ((x − δ)/(1 − nδ)), Π_Δ =
  :func:`mdptheory.qexp.sparsemax`. Two queries. The fixed point is π*_β when min π*_β ≥ δ. F is not
  Lipschitz near the boundary (β/δ on the truncated simplex), so there is no useful theory step size:
  tune η.

  Args:
    beta: β > 0.
    eta: η > 0, the Euclidean step size.
    min_prob: δ ∈ (0, 1/n), the floor of every probability (ln π must stay finite: F contains −β ln π).
  {common}
  Returns:
    :class:`NashResult`.
  """
  beta = _check_beta(beta)
  eta = _check_eta(eta)
  min_prob = V.check_positive("min_prob", min_prob, hint=" (the probability floor of the truncated simplex)")
  n = np.shape(getattr(game, "pi_ref", np.zeros((1, 1))))[-1]
  if _concrete(min_prob) and min_prob * n >= 1.0:
    raise ParameterError(f"min_prob={min_prob} leaves no mass to move on n={n} responses (n*min_prob >= 1); "
                         f"use min_prob < 1/n, e.g. 1e-12")
  return _run("extragradient", game, beta=beta, eta=eta, num_iters=num_iters, reference=reference, pi0=pi0,
              num_samples=num_samples, key=key, aux=min_prob, record_iterates=record_iterates,
              record_trace=record_trace)


@_documented
def proximal_point(game: Any, *, beta: Any, eta: Any = None, num_iters: int, inner_steps: int = 30,
                   reference: Any = None, pi0: Any = None, num_samples: int = 0, key: Any = None,
                   record_iterates: bool = False, record_trace: bool = True) -> NashResult:
  """The exact (implicit) proximal point method, an oracle (THEORY.md §5.3).

  π_{k+1} = argmin_π P(π_{k+1} ≻ π) + β KL(π‖π_ref) + (β/η) KL(π‖π_k), i.e. the fixed point of
  T(u) = (ln π_k + η ln π_ref + (η/β) P(· ≻ u))/(1 + η) − cst, found by ``inner_steps`` iterations of T from
  π_k (the first two are Nash-MP's half and full steps). Each evaluation of T is a counted query
  (``inner_steps`` per iteration); ``trace.inner_error`` is the final residual max_x span(T(u) − u).
  KL(π*‖π_k) contracts by 1/(1 + η) per implicit step ([D]; as the paper's lemma UNCONFIRMED).

  Args:
    beta: β > 0.
    eta: η > 0; default 2β. The inner iteration contracts in the span of logits, with factor
      η/(2β(1 + η)) = 1/(1 + 2β) at η = 2β: T's logits are η/(β(1 + η))-Lipschitz from ℓ1 to span (the
      entries of P − 1/2 lie in [−1/2, 1/2]), softmax is 1/2-Lipschitz from span to ℓ1 (‖p − q‖_1 ≤
      2 tanh(span/4)) [D]. Small β needs many inner steps: check ``trace.inner_error``.
    inner_steps: fixed-point iterations per step (static, >= 1).
  {common}
  Returns:
    :class:`NashResult`.
  """
  beta = _check_beta(beta)
  eta = 2.0 * beta if eta is None else _check_eta(eta)
  inner_steps = V.check_int("inner_steps", inner_steps, minimum=1)
  return _run("proximal_point", game, beta=beta, eta=eta, num_iters=num_iters, reference=reference, pi0=pi0,
              num_samples=num_samples, key=key, inner_steps=inner_steps, record_iterates=record_iterates,
              record_trace=record_trace)
