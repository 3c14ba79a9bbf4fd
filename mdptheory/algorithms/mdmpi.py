r"""Approximate regularized dynamic programming: MD-MPI, DA-MPI, CVI and the classical baselines.

Setting (THEORY.md §2.1–2.3; Vieillard, Kozuno, Scherrer, Pietquin, Munos & Geist,
*Leverage the Average*, NeurIPS 2020). The regularized greedy step and evaluation
operator are

    G^{λ,τ}_μ(q)        = argmax_π <π, q> − λ KL(π‖μ) + τ H(π)            ∝ μ^β exp(q/(λ + τ)),
    T^{λ,τ}_{π|μ} q     = r + γ P (<π, q> − λ KL(π‖μ) + τ H(π)),          β = λ/(λ + τ),

and MD-MPI(λ, τ, m), from π_0 uniform and q_0 (default 0), iterates

    π_{k+1} = G^{λ,τ}_{π_k}(q_k),     q_{k+1} = (T^{λ,τ}_{π_{k+1}|π_k})^m q_k + ε_{k+1}.

m = 1 is MD-VI, m = ∞ (``m=None``) is MD-PI (exact regularized evaluation);
λ = τ = 0 is AVI (m = 1) / API (m = ∞) with the hard greedy step. The error
ε_{k+1} enters the last application of the operator: the error model of
:mod:`mdptheory.noise` is called with the next-state value v that this last
backup r + γ P v averages, so the generative model N1 is exactly the sampled
backup r + γ v(s'). With ``clip = c`` the new iterate is clipped to [−c, c]
(the hypothesis ‖q_k‖_∞ ≤ v_max of Theorem 1) and the clipping is folded into
the recorded ε.

Every algorithm here returns an :class:`ADPResult` whose :class:`ADPTrace`
follows one indexing convention: trace entry ``i = 0..K−1`` belongs to the
update k = i + 1, the one that produced q_k. It records

* the policy π_k used in that update (π_k = G(q_{k−1})): its exact error
  against ``reference``, its entropy, and its change from π_{k−1};
* the new iterate q_k and the error ε_k of that update, with the running error
  statistics over ε_1..ε_k (mean, discounted sum, exponential moving average).

So ``err_sup[i]`` is ‖q*_τ − q^τ_{π_{i+1}}‖_∞; Theorem 1 (π_k, ε_{1..k}) uses
k = i + 1 and Theorem 2 / the AVI bound (π_{k+1}, ε_{1..k}) use k = i
(see :mod:`mdptheory.bounds`).

All functions are pure: ``lam``, ``tau``, ``gamma`` (through
``mdp._replace(gamma=...)``), ``clip``, ``key``, ``q0``, the MDP arrays and the
reference may be traced, so ``jax.vmap`` over λ, τ, γ, seeds and batches of
MDPs works, and so does ``jax.jit`` around a closure. ``num_iters``, ``m``,
``noise`` and the recording flags are static (Python values): each public
function validates its concrete inputs (see :mod:`mdptheory.validate`) and then
calls a jitted core, so repeated calls with the same error-model object,
shapes and flags compile once. Inside the core λ and τ are always traced, so
the hard (λ = τ = 0) and soft greedy steps, and DA-MPI's τ = 0 and τ > 0
forms, are both computed and selected with ``jnp.where``.

The generic engine :func:`run_adp` (a ``lax.scan`` over a user step function)
computes the trace for any algorithm that produces (q_k, π_k, π_{k−1}, ε_k) per
update; other algorithm modules (e.g. Munchausen VI) reuse it.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mdptheory import linalg
from mdptheory import metrics
from mdptheory import operators as ops
from mdptheory import validate as V
from mdptheory.errors import ParameterError, ShapeError
from mdptheory.noise import Noise
from mdptheory.regularizers import _max_shift
from mdptheory.regularizers import none as hard_greedy
from mdptheory.solvers import Optimum
from mdptheory.types import MDP

Array = jax.Array

__all__ = [
    "ADPResult", "ADPTrace", "Update", "advantage_learning", "api", "avi", "cvi", "da_mpi",
    "evaluate_entropy", "md_greedy", "md_mpi", "noisy_backup", "resolvent_q", "run_adp",
    "speedy_q_learning",
]


# -----------------------------------------------------------------------------
# Results
# -----------------------------------------------------------------------------


class ADPTrace(NamedTuple):
  """Per-update diagnostics (THEORY.md §2.9). Entry i = 0..K−1 is the update k = i + 1.

  Scalar fields are [K]. Fields that were not requested are None: the errors
  need ``reference``; ``eps`` needs ``record_eps``; ``q`` and ``log_pi`` need
  ``record_iterates``; ``cw_*`` need ``componentwise`` (and ``reference``).
  """
  err_sup: Array | None        # [K]  ‖q_ref − q^τ_{π_k}‖_∞, π_k the policy of update k, evaluated exactly
                               #      (entropy-regularized with the algorithm's τ when τ > 0)
  err_l1: Array | None         # [K]  ‖q_ref − q^τ_{π_k}‖_1 / ‖q_ref‖_1
  q_sup: Array                 # [K]  ‖q_k‖_∞
  eps_sup: Array               # [K]  ‖ε_k‖_∞ (clipping folded in)
  avg_eps_sup: Array           # [K]  ‖(1/k) Σ_{j=1}^k ε_j‖_∞
  disc_eps_sum: Array          # [K]  Σ_{j=1}^k γ^{k−j} ‖ε_j‖_∞
  ema_eps_sup: Array           # [K]  ‖E^β_k‖_∞, E^β_k = β E^β_{k−1} + (1 − β) ε_k, E^β_0 = 0
  kl_max: Array                # [K]  max_s KL(π_k ‖ π_{k−1})   (+inf if a hard policy switches action)
  entropy_mean: Array          # [K]  mean_s H(π_k)
  policy_change: Array         # [K]  max_s ‖π_k − π_{k−1}‖_1
  action_gap_mean: Array       # [K]  mean_s (max_a q_k − second max_a q_k)
  eps: Array | None = None     # [K, S, A]  ε_k
  q: Array | None = None       # [K, S, A]  q_k
  log_pi: Array | None = None  # [K, S, A]  log π_k
  cw_gap: Array | None = None  # [K, S, A]  q_ref − q^τ_{π_k} (component-wise lhs of Theorem 1)
  cw_a1e: Array | None = None  # [K, S, A]  |A^1_k E_k|, A^1_k = (I − γP_{π_ref})^{-1} − (I − γP_{π_k})^{-1},
                               #            E_k = −Σ_{j≤k} ε_j (SA-dimensional resolvents)


class ADPResult(NamedTuple):
  """Result of an approximate DP run of K updates."""
  q: Array         # [S, A]  q_K, the last iterate
  log_pi: Array    # [S, A]  log π_{K+1} = log G(q_K), the policy after the last update
  trace: ADPTrace  # per-update diagnostics, entries k = 1..K
  eps_sum: Array   # [S, A]  Σ_{j=1}^K ε_j (so E_K = −eps_sum)
  ema: Array       # [S, A]  E^β_K
  aux: Any = None  # algorithm-specific final state: DA-MPI {"h": h_K}; SQL {"q_prev": q_{K−1}}


class Update(NamedTuple):
  """What one step of an algorithm reports to :func:`run_adp`."""
  q: Array            # [S, A]  q_k, the new iterate
  log_pi: Array       # [S, A]  log π_k, the policy used to compute q_k
  log_pi_prev: Array  # [S, A]  log π_{k−1}
  eps: Array          # [S, A]  ε_k, the error in q_k (clipping folded in)


# -----------------------------------------------------------------------------
# Building blocks
# -----------------------------------------------------------------------------


def md_greedy(log_pi, q, *, lam, tau) -> tuple[Array, Array]:
  r"""The MD greedy step in log space and its value (THEORY.md §2.2) [P].

      ln π_{k+1} = log_softmax(β ln π_k + q_k/(λ + τ)),
      v(s)       = max_π <π, q> − λ KL(π‖π_k) + τ H(π) = (λ + τ) lse(β ln π_k + q_k/(λ + τ)).

  This is the bundle :func:`mdptheory.regularizers.kl_entropy` computed from
  ln π_k directly, so probabilities below the float range keep their logs. For
  λ = τ = 0 it is the hard greedy step of :func:`mdptheory.regularizers.none`
  (one-hot first maximizer, v = max_a q). With traced λ, τ both branches are
  computed and selected with ``jnp.where``.

  Args:
    log_pi: [S, A] ln π_k (−inf off the support).
    q: [S, A] q_k.
    lam: KL weight λ >= 0.
    tau: entropy weight τ >= 0.
  Returns:
    (ln π_{k+1} [S, A], v [S]).
  """
  temp = lam + tau
  hard = _static_flag(temp, lambda t: t == 0)
  hard_reg = hard_greedy()

  def soft():
    safe_temp = jnp.where(temp > 0, temp, 1.0)
    beta = jnp.where(temp > 0, lam / safe_temp, 0.0)
    finite = jnp.isfinite(log_pi)
    # β ln π_k with β · ln 0 = −inf for β > 0 and 0 for β = 0 (no 0 · inf = NaN).
    prior = jnp.where(finite, beta * jnp.where(finite, log_pi, 0.0), jnp.where(beta > 0, -jnp.inf, 0.0))
    # Shifted by max_a q (over the prior's support) before dividing: no overflow of q/(λ + τ) for small λ + τ.
    shift = _max_shift(q, jnp.isfinite(prior))
    logits = jnp.where(jnp.isfinite(prior), prior + (q - shift) / safe_temp, -jnp.inf)  # no −inf + inf
    return jax.nn.log_softmax(logits, axis=-1), shift[..., 0] + safe_temp * jax.nn.logsumexp(logits, axis=-1)

  if hard is True:
    return hard_reg.log_argmax(q), hard_reg.smax(q)
  if hard is False:
    return soft()
  lp_soft, v_soft = soft()
  return (jnp.where(temp == 0, hard_reg.log_argmax(q), lp_soft),
          jnp.where(temp == 0, hard_reg.smax(q), v_soft))


def _reg_term(log_pi_new, log_pi_old, *, lam, tau) -> Array:
  """−λ KL(π_{k+1}‖π_k) + τ H(π_{k+1}) per state, with 0 · KL = 0 when λ = 0.  -> [S]."""
  kl_term = jnp.where(lam > 0, lam * metrics.kl_log(log_pi_new, log_pi_old), 0.0)
  return -kl_term + tau * metrics.entropy_log(log_pi_new)


def noisy_backup(mdp: MDP, v, *, noise: Noise | None, key, k, clip=None) -> tuple[Array, Array]:
  """q = clip(r + γ P v + ε) and the error actually made, ε = q − (r + γ P v) (THEORY.md §1.3, §2.5).

  ``noise(key, k, mdp, v)`` is the error model (None: no error); ``v [S]`` is the
  next-state value the backup averages, so the generative model N1 samples
  r + γ v(s'). Clipping to [−clip, clip] is folded into the returned ε.

  Returns:
    (q [S, A], eps [S, A]).
  """
  v = ops.materialize(mdp.P, v)  # computed in this step: keep it out of a sparse kernel's gather
  exact = ops.q_from_v(mdp, v)
  q = exact if noise is None else exact + noise(key, k, mdp, v).astype(exact.dtype)
  if clip is not None:
    q = jnp.clip(q, -clip, clip)
  return q, q - exact


def evaluate_entropy(mdp: MDP, pi, tau) -> Array:
  r"""Entropy-regularized action values q^τ_π, the fixed point of r + γP(<π, q> + τH(π))  [S, A] (THEORY.md §1.1).

  v = (I − γ P_π)^{-1}(<π, r> + τ H(π)), q = r + γ P v; τ = 0 is q^π. ``tau``
  may be traced or 0 (unlike :func:`mdptheory.regularizers.entropy`).
  """
  b = ops.policy_average(pi, mdp.r) + tau * metrics.entropy(pi)
  M = jnp.eye(mdp.num_states, dtype=b.dtype) - mdp.gamma * ops.policy_kernel(mdp, pi)
  return ops.q_from_v(mdp, linalg.solve(M, b))


def resolvent_q(mdp: MDP, pi, x) -> Array:
  r"""(I − γ P_π)^{-1} x on the SA-dimensional q space, P_π[(s,a),(t,b)] = P(t|s,a) π(b|t)  [S, A].

  Solved through the state space: with w = <π, y>, y = x + γ P w and
  (I − γ P^S_π) w = <π, x> (an S × S solve instead of SA × SA).
  """
  M = jnp.eye(mdp.num_states, dtype=x.dtype) - mdp.gamma * ops.policy_kernel(mdp, pi)
  w = linalg.solve(M, ops.policy_average(pi, x))
  return x + mdp.gamma * ops.expect(mdp.P, w)


# -----------------------------------------------------------------------------
# The engine
# -----------------------------------------------------------------------------


class _Stats(NamedTuple):
  eps_sum: Array   # [S, A] Σ ε_j
  disc_sum: Array  # []     Σ γ^{k−j} ‖ε_j‖_∞
  ema: Array       # [S, A] E^β_k


def run_adp(mdp: MDP, step: Callable, carry0, finalize: Callable, *, num_iters: int, key=None,
            beta=0.0, tau=0.0, reference: Optimum | None = None, componentwise: bool = False,
            record_eps: bool = False, record_iterates: bool = False, record_trace: bool = True) -> ADPResult:
  """Runs ``num_iters`` updates of ``step`` in ``lax.scan`` and records the :class:`ADPTrace`.

  ``step(carry, key_k, k) -> (carry, Update)`` performs update k + 1 (k = 0..K−1
  is the 0-based index passed to the error model) and reports q_{k+1}, the
  policy π_{k+1} it used, π_k and the error ε_{k+1}. ``finalize(carry) ->
  (q_K [S, A], log π_{K+1} [S, A], aux)`` reads the result off the last carry.
  The per-update keys are ``jax.random.split(key, num_iters)``, so two
  algorithms run with the same key see the same random draws at every update.

  Args:
    mdp: the MDP (``gamma`` may be traced).
    step: the update.
    carry0: the initial carry (a pytree).
    finalize: reads (q_K, log π_{K+1}, aux) from the final carry.
    num_iters: K >= 1.
    key: JAX PRNG key (or int seed); None means a fixed key (no error model needs it).
    beta: the EMA weight of E^β_k (THEORY.md §2.6); β = λ/(λ + τ) for MD-MPI.
    tau: the entropy weight of the evaluated problem (``err_*`` use q^τ_{π_k}).
    reference: the optimum of that problem (q*_τ for τ > 0, q* for τ = 0), or None.
    componentwise: record ``cw_gap`` and ``cw_a1e`` (Theorem 1, needs ``reference``).
    record_eps: record ε_k [K, S, A].
    record_iterates: record q_k and log π_k [K, S, A].
    record_trace: False computes no per-update diagnostics and returns ``trace=None`` (with ``reference``
      and ``componentwise`` unused): an update then costs what the algorithm's own step costs.
  """
  keys = jax.random.split(_as_key(key), num_iters)
  if not record_trace:
    reference, componentwise = None, False
  S, A = mdp.r.shape
  dt = mdp.r.dtype
  gamma = mdp.gamma
  if reference is not None:
    q_ref = reference.q
    ref_l1 = jnp.sum(jnp.abs(q_ref))
    if componentwise:
      # (I − γ P^S_{π_ref})^{-1} is loop-invariant: invert once, outside the scan.
      pi_ref = reference.pi
      inv_ref = linalg.inv(jnp.eye(S, dtype=dt) - gamma * ops.policy_kernel(mdp, pi_ref))

  def body(state, xs):
    carry, stats = state
    key_k, k = xs
    carry, up = step(carry, key_k, k)
    eps = up.eps
    kf = (k + 1).astype(dt)
    eps_sup = jnp.max(jnp.abs(eps))
    stats = _Stats(eps_sum=stats.eps_sum + eps, disc_sum=gamma * stats.disc_sum + eps_sup,
                   ema=beta * stats.ema + (1.0 - beta) * eps)
    if not record_trace:
      return (carry, stats), None
    pi = jnp.exp(up.log_pi)
    out = dict(
        q_sup=jnp.max(jnp.abs(up.q)),
        eps_sup=eps_sup,
        avg_eps_sup=jnp.max(jnp.abs(stats.eps_sum)) / kf,
        disc_eps_sum=stats.disc_sum,
        ema_eps_sup=jnp.max(jnp.abs(stats.ema)),
        kl_max=jnp.max(metrics.kl_log(up.log_pi, up.log_pi_prev)),
        entropy_mean=jnp.mean(metrics.entropy_log(up.log_pi)),
        policy_change=jnp.max(metrics.l1_distance(pi, jnp.exp(up.log_pi_prev))),
        action_gap_mean=jnp.mean(metrics.action_gap(up.q)),
    )
    if reference is not None:
      # One LU of I − γ P^S_{π_k} serves q^τ_{π_k} and, component-wise, (I − γP_{π_k})^{-1} E_k
      # (the state-space reduction of :func:`resolvent_q`). One solve per step instead of three is
      # also what stopped large vmapped component-wise runs from hanging intermittently in XLA's CPU
      # runtime (jax 0.10.2).
      M = jnp.eye(S, dtype=dt) - gamma * ops.policy_kernel(mdp, pi)
      rhs = ops.policy_average(pi, mdp.r) + tau * metrics.entropy(pi)
      if componentwise:
        e_k = -stats.eps_sum
        w = linalg.solve(M, jnp.stack([rhs, ops.policy_average(pi, e_k)], axis=-1))   # [S, 2]
        v_pi, w_pi = w[:, 0], w[:, 1]
        w_ref = inv_ref @ ops.policy_average(pi_ref, e_k)
        # A^1_k E_k = (E + γ P w_ref) − (E + γ P w_pi) = γ P (w_ref − w_pi).
        out["cw_a1e"] = jnp.abs(gamma * ops.expect(mdp.P, w_ref - w_pi))
      else:
        v_pi = linalg.solve(M, rhs)
      gap = q_ref - ops.q_from_v(mdp, v_pi)
      out["err_sup"] = jnp.max(jnp.abs(gap))
      out["err_l1"] = metrics.relative_l1(jnp.sum(jnp.abs(gap)), ref_l1)
      if componentwise:
        out["cw_gap"] = gap
    if record_eps:
      out["eps"] = eps
    if record_iterates:
      out["q"] = up.q
      out["log_pi"] = up.log_pi
    return (carry, stats), out

  stats0 = _Stats(eps_sum=jnp.zeros((S, A), dt), disc_sum=jnp.zeros((), dt), ema=jnp.zeros((S, A), dt))
  (carry, stats), out = jax.lax.scan(body, (carry0, stats0), (keys, jnp.arange(num_iters)))
  q_last, log_pi_next, aux = finalize(carry)
  if not record_trace:
    return ADPResult(q=q_last, log_pi=log_pi_next, trace=None, eps_sum=stats.eps_sum, ema=stats.ema, aux=aux)
  trace = ADPTrace(
      err_sup=out.get("err_sup"), err_l1=out.get("err_l1"), q_sup=out["q_sup"], eps_sup=out["eps_sup"],
      avg_eps_sup=out["avg_eps_sup"], disc_eps_sum=out["disc_eps_sum"], ema_eps_sup=out["ema_eps_sup"],
      kl_max=out["kl_max"], entropy_mean=out["entropy_mean"], policy_change=out["policy_change"],
      action_gap_mean=out["action_gap_mean"], eps=out.get("eps"), q=out.get("q"), log_pi=out.get("log_pi"),
      cw_gap=out.get("cw_gap"), cw_a1e=out.get("cw_a1e"))
  return ADPResult(q=q_last, log_pi=log_pi_next, trace=trace, eps_sum=stats.eps_sum, ema=stats.ema, aux=aux)


def _evaluation_then_backup(mdp, log_pi_new, log_pi_old, v_greedy, *, lam, tau, m, noise, key, k, clip):
  """q_{k+1} = (T^{λ,τ}_{π_{k+1}|π_k})^m q_k + ε_{k+1}, given the first application's next-state value.

  ``v_greedy`` [S] is <π_{k+1}, q_k> − λKL(π_{k+1}‖π_k) + τH(π_{k+1}); applications 2..m
  average <π_{k+1}, q> + g with g = −λKL + τH fixed; m = None solves for the fixed point.
  The error enters the last backup.
  """
  pi = jnp.exp(log_pi_new)
  if m == 1:
    v = v_greedy
  else:
    g = _reg_term(log_pi_new, log_pi_old, lam=lam, tau=tau)
    if m is None:
      # MD-PI: the fixed point of T^{λ,τ}_{π|μ}; its next-state value w solves (I − γP_π) w = <π, r> + g.
      M = jnp.eye(mdp.num_states, dtype=g.dtype) - mdp.gamma * ops.policy_kernel(mdp, pi)
      v = linalg.solve(M, ops.policy_average(pi, mdp.r) + g)
    else:
      v = jax.lax.fori_loop(0, m - 1, lambda _, v: ops.policy_average(pi, ops.q_from_v(mdp, v)) + g, v_greedy)
  return noisy_backup(mdp, v, noise=noise, key=key, k=k, clip=clip)


# -----------------------------------------------------------------------------
# MD-MPI and DA-MPI
# -----------------------------------------------------------------------------


_STATIC = ("m", "num_iters", "noise", "record_eps", "record_iterates", "componentwise")


def md_mpi(mdp: MDP, *, lam, tau, m: int | None = 1, num_iters: int, noise: Noise | None = None,
           key=None, q0=None, reference: Optimum | None = None, clip=None, record_eps: bool = False,
           record_iterates: bool = False, componentwise: bool = False, record_trace: bool = True) -> ADPResult:
  r"""MD-MPI(λ, τ, m) of *Leverage the Average* (THEORY.md §2.1, §2.4) [P].

      π_{k+1} = G^{λ,τ}_{π_k}(q_k) ∝ π_k^β exp(q_k/(λ + τ)),
      q_{k+1} = (T^{λ,τ}_{π_{k+1}|π_k})^m q_k + ε_{k+1},      π_0 uniform.

  The greedy step is the log-space closed form (:func:`md_greedy`); m = 1 is
  MD-VI, ``m=None`` (or ``math.inf``) is MD-PI, λ = τ = 0 is AVI/API with the
  hard greedy step. Shapes: q, π [S, A]; traces [K] (see :class:`ADPTrace` for
  the indexing: entry i is the update k = i + 1 and the policy π_k it used).

  The core is jitted with ``m``, ``num_iters``, ``noise`` and the recording
  flags static, so repeated calls with the same error-model object and shapes
  compile once; λ, τ, q0, key, reference and clip are traced.

  Args:
    mdp: the MDP (dense or sparse kernel; gamma may be traced).
    lam: KL weight λ >= 0 (may be traced).
    tau: entropy weight τ >= 0 (may be traced).
    m: number of applications of the evaluation operator, an int >= 1, or
      None / ``math.inf`` for exact evaluation.
    num_iters: K >= 1 updates.
    noise: error model ``noise(key, k, mdp, v) -> eps [S, A]`` (:mod:`mdptheory.noise`); None for exact updates.
    key: JAX PRNG key or int seed (required with ``noise``).
    q0: [S, A] initial q (default 0; Theorem 1 assumes ‖q_0‖_∞ <= v_max).
    reference: the optimum the run converges to, for the ``err_*`` traces:
      ``solvers.optimum(mdp, entropy(tau))`` for τ > 0, ``solvers.optimum(mdp)`` for τ = 0.
    clip: v_max for clipping q_{k+1} to [−v_max, v_max] (folded into ε); None: no clipping.
    record_eps: also record ε_k [K, S, A].
    record_iterates: also record q_k and log π_k [K, S, A].
    componentwise: record the component-wise Theorem 1 quantities (needs ``reference``).
    record_trace: False skips the per-update diagnostics (``trace`` is None): each update is then the
      greedy step and one backup, a single pass over P for m = 1.
  Returns:
    :class:`ADPResult`; ``aux`` is None.
  Raises:
    ParameterError: λ < 0, τ < 0, num_iters < 1, m < 1 or not an integer, clip <= 0, noise without key,
      componentwise without reference, reference or componentwise with record_trace=False.
  """
  lam, tau, m, num_iters, clip, q0 = _check_common(mdp, "md_mpi", lam, tau, m, num_iters, noise, key, q0,
                                                    reference, clip, componentwise)
  if not record_trace and (reference is not None or componentwise):
    raise ParameterError("md_mpi: reference and componentwise are measured in the trace; "
                         "drop them or pass record_trace=True")
  return _md_mpi(mdp, lam, tau, q0, _as_key(key), reference, clip, m=m, num_iters=num_iters, noise=noise,
                 record_eps=record_eps, record_iterates=record_iterates, componentwise=componentwise,
                 record_trace=bool(record_trace))


@functools.partial(jax.jit, static_argnames=_STATIC + ("record_trace",))
def _md_mpi(mdp, lam, tau, q0, key, reference, clip, *, m, num_iters, noise, record_eps, record_iterates,
            componentwise, record_trace=True):
  def step(carry, key_k, k):
    q, log_pi = carry
    log_pi_new, v = md_greedy(log_pi, q, lam=lam, tau=tau)
    q_new, eps = _evaluation_then_backup(mdp, log_pi_new, log_pi, v, lam=lam, tau=tau, m=m, noise=noise,
                                         key=key_k, k=k, clip=clip)
    return (q_new, log_pi_new), Update(q=q_new, log_pi=log_pi_new, log_pi_prev=log_pi, eps=eps)

  def finalize(carry):
    q, log_pi = carry
    return q, md_greedy(log_pi, q, lam=lam, tau=tau)[0], None

  return run_adp(mdp, step, (q0, _uniform_log_pi(mdp)), finalize, num_iters=num_iters, key=key,
                 beta=_beta(lam, tau), tau=tau, reference=reference, componentwise=componentwise,
                 record_eps=record_eps, record_iterates=record_iterates,
                 record_trace=record_trace)


def da_mpi(mdp: MDP, *, lam, tau, m: int | None = 1, num_iters: int, noise: Noise | None = None,
           key=None, q0=None, reference: Optimum | None = None, clip=None, record_eps: bool = False,
           record_iterates: bool = False, componentwise: bool = False) -> ADPResult:
  r"""DA-MPI(λ, τ, m), the dual-averaging form of MD-MPI (THEORY.md §2.3) [P, display reconstructed].

  τ = 0 (λ > 0), h the running mean of q_0..q_k:
      h_0 = q_0,   π_{k+1} = softmax((k + 1) h_k / λ),   h_{k+1} = ((k + 1) h_k + q_{k+1}) / (k + 2);
  τ > 0, h an exponential moving average (β = λ/(λ + τ)):
      h_0 = (1 − β) q_0,   π_{k+1} = softmax(h_k / τ),     h_{k+1} = β h_k + (1 − β) q_{k+1};
  and in both cases q_{k+1} = (T^{λ,τ}_{π_{k+1}|π_k})^m q_k + ε_{k+1}, whose next-state
  value <π_{k+1}, q_k> − λ KL(π_{k+1}‖π_k) + τ H(π_{k+1}) is computed explicitly from the
  DA policies. Proposition 1 [P]: its policies equal MD-MPI's for every error
  sequence (LA-1); with the same ``key`` and ``noise`` both see the same draws.
  Both forms are computed and selected with ``jnp.where(tau > 0, ...)`` (τ may be traced).
  Arguments, result and trace as :func:`md_mpi`; ``aux = {"h": h_K}``.

  Raises:
    ParameterError: as :func:`md_mpi`, and λ = τ = 0 (the DA form needs λ + τ > 0).
  """
  lam, tau, m, num_iters, clip, q0 = _check_common(mdp, "da_mpi", lam, tau, m, num_iters, noise, key, q0,
                                                    reference, clip, componentwise)
  if _static_flag(lam + tau, lambda t: t == 0) is True:
    raise ParameterError("da_mpi needs lam + tau > 0 (got lam = tau = 0); use avi() for the hard greedy step")
  return _da_mpi(mdp, lam, tau, q0, _as_key(key), reference, clip, m=m, num_iters=num_iters, noise=noise,
                 record_eps=record_eps, record_iterates=record_iterates, componentwise=componentwise)


@functools.partial(jax.jit, static_argnames=_STATIC)
def _da_mpi(mdp, lam, tau, q0, key, reference, clip, *, m, num_iters, noise, record_eps, record_iterates,
            componentwise):
  beta = _beta(lam, tau)
  ema_form = tau > 0
  safe_tau = jnp.where(ema_form, tau, 1.0)
  safe_lam = jnp.where(lam > 0, lam, 1.0)

  def logits(h, k):
    # k is the index of h_k: π_{k+1} = softmax(h_k / τ) (τ > 0) or softmax((k + 1) h_k / λ) (τ = 0).
    h = h - _max_shift(h)  # softmax is shift-invariant; shifting first avoids overflow of h/τ for small τ
    return jnp.where(ema_form, h / safe_tau, (k + 1) * h / safe_lam)

  def step(carry, key_k, k):
    q, log_pi, h = carry
    log_pi_new = jax.nn.log_softmax(logits(h, k), axis=-1)
    v = ops.policy_average(jnp.exp(log_pi_new), q) + _reg_term(log_pi_new, log_pi, lam=lam, tau=tau)
    q_new, eps = _evaluation_then_backup(mdp, log_pi_new, log_pi, v, lam=lam, tau=tau, m=m, noise=noise,
                                         key=key_k, k=k, clip=clip)
    h_new = jnp.where(ema_form, beta * h + (1.0 - beta) * q_new, ((k + 1) * h + q_new) / (k + 2))
    return (q_new, log_pi_new, h_new), Update(q=q_new, log_pi=log_pi_new, log_pi_prev=log_pi, eps=eps)

  def finalize(carry):
    q, _, h = carry
    return q, jax.nn.log_softmax(logits(h, num_iters), axis=-1), {"h": h}

  h0 = jnp.where(ema_form, (1.0 - beta) * q0, q0)
  return run_adp(mdp, step, (q0, _uniform_log_pi(mdp), h0), finalize, num_iters=num_iters, key=key,
                 beta=beta, tau=tau, reference=reference, componentwise=componentwise, record_eps=record_eps,
                 record_iterates=record_iterates)


def cvi(mdp: MDP, *, lam, tau, num_iters: int, noise: Noise | None = None, key=None, q0=None,
        reference: Optimum | None = None, record_eps: bool = False, record_iterates: bool = False) -> ADPResult:
  r"""Conservative VI (Kozuno, Uchibe & Doya 2019) as the exact reparameterization of MD-VI(λ, τ) (THEORY.md §2.8).

      Ψ_{k+1} = r + γ P m(Ψ_k) + β (Ψ_k − m(Ψ_k)) + ε_{k+1},   m(Ψ) = (λ + τ) lse(Ψ/(λ + τ)),
      π_{k+1} = softmax(Ψ_k/(λ + τ)),   Ψ_0 = q_0 − λ ln|A|,      β = λ/(λ + τ).

  Derivation [D]: with ψ_k = Σ_{j≤k} β^{k−j} q_j (so ln π_{k+1} = ψ_k/(λ + τ) + cst, §2.2),
  Ψ_k := ψ_k − β m(ψ_{k−1}) satisfies this recursion, m(Ψ_k) is MD-VI's next-state value
  (λ + τ) ln Σ_a π_k^β e^{q_k/(λ+τ)}, and ψ_{−1} = 0 (π_0 uniform) gives Ψ_0 = q_0 − λ ln|A|.
  Hence CVI's policies equal MD-VI's for every error sequence, and the error model
  sees the same next-state value (tested with LA-1). Advantage learning
  (:func:`advantage_learning`) is its limit λ + τ → 0 at fixed β [P]. m = 1 only.

  The trace's ``q_sup`` and ``action_gap_mean`` refer to Ψ_k (the gap-increased
  values), not to MD-VI's q_k; ``ADPResult.q`` is Ψ_K. λ + τ > 0 is required.
  """
  lam, tau, _, num_iters, _, q0 = _check_common(mdp, "cvi", lam, tau, 1, num_iters, noise, key, q0,
                                                 reference, None, False)
  if _static_flag(lam + tau, lambda t: t == 0) is True:
    raise ParameterError("cvi needs lam + tau > 0; its lam + tau -> 0 limit is advantage_learning(alpha=beta)")
  return _cvi(mdp, lam, tau, q0, _as_key(key), reference, None, m=1, num_iters=num_iters, noise=noise,
              record_eps=record_eps, record_iterates=record_iterates, componentwise=False)


@functools.partial(jax.jit, static_argnames=_STATIC)
def _cvi(mdp, lam, tau, q0, key, reference, clip, *, m, num_iters, noise, record_eps, record_iterates,
         componentwise):
  del clip, m, componentwise
  temp = lam + tau
  beta = _beta(lam, tau)

  def step(carry, key_k, k):
    psi, log_pi = carry
    shift = _max_shift(psi)  # max-shifted before dividing by λ + τ (no overflow for small λ + τ)
    log_pi_new = jax.nn.log_softmax((psi - shift) / temp, axis=-1)
    v = shift[..., 0] + temp * jax.nn.logsumexp((psi - shift) / temp, axis=-1)
    backup, eps = noisy_backup(mdp, v, noise=noise, key=key_k, k=k)
    psi_new = backup + beta * (psi - v[:, None])
    return (psi_new, log_pi_new), Update(q=psi_new, log_pi=log_pi_new, log_pi_prev=log_pi, eps=eps)

  def finalize(carry):
    psi, _ = carry
    return psi, jax.nn.log_softmax((psi - _max_shift(psi)) / temp, axis=-1), None

  psi0 = q0 - lam * jnp.log(mdp.num_actions)
  return run_adp(mdp, step, (psi0, _uniform_log_pi(mdp)), finalize, num_iters=num_iters, key=key, beta=beta,
                 tau=tau, reference=reference, record_eps=record_eps, record_iterates=record_iterates)


# -----------------------------------------------------------------------------
# Baselines: AVI, API, advantage learning, speedy Q-learning
# -----------------------------------------------------------------------------


def avi(mdp: MDP, *, num_iters: int, noise: Noise | None = None, key=None, q0=None,
        reference: Optimum | None = None, clip=None, record_eps: bool = False,
        record_iterates: bool = False) -> ADPResult:
  r"""Approximate value iteration: π_{k+1} = argmax q_k (first maximizer), q_{k+1} = r + γ P max_a q_k + ε_{k+1}.

  MD-MPI(0, 0, 1) (THEORY.md §2.4, §2.7); the classical baseline whose bound is
  :func:`mdptheory.bounds.avi_bound`. ``trace.kl_max`` is +inf whenever the
  greedy action changes. At exact ties of q the first maximizer is taken, so
  round-off (e.g. a batched vs an unbatched reduction) can switch the policy there.
  """
  return md_mpi(mdp, lam=0.0, tau=0.0, m=1, num_iters=num_iters, noise=noise, key=key, q0=q0,
                reference=reference, clip=clip, record_eps=record_eps, record_iterates=record_iterates)


def api(mdp: MDP, *, num_iters: int, noise: Noise | None = None, key=None, q0=None,
        reference: Optimum | None = None, clip=None, record_eps: bool = False,
        record_iterates: bool = False) -> ADPResult:
  r"""Approximate policy iteration: π_{k+1} = argmax q_k, q_{k+1} = q^{π_{k+1}} + ε_{k+1} (exact evaluation).

  MD-MPI(0, 0, ∞) (THEORY.md §2.7; Bertsekas & Tsitsiklis 1996). The error
  model sees the next-state value v^{π_{k+1}}, so N1 is the sampled backup
  r + γ v^{π_{k+1}}(s').
  """
  return md_mpi(mdp, lam=0.0, tau=0.0, m=None, num_iters=num_iters, noise=noise, key=key, q0=q0,
                reference=reference, clip=clip, record_eps=record_eps, record_iterates=record_iterates)


def advantage_learning(mdp: MDP, *, alpha, num_iters: int, noise: Noise | None = None, key=None, q0=None,
                       reference: Optimum | None = None, record_eps: bool = False,
                       record_iterates: bool = False) -> ADPResult:
  r"""Advantage learning (Baird 1999; Bellemare et al. 2016), THEORY.md §2.8.

      q_{k+1} = r + γ P max_a q_k + α (q_k − max_a q_k) + ε_{k+1},   π_{k+1} = argmax q_k.

  The error model sees v = max_a q_k. It is the limit of CVI / MD-VI(λ, τ) as
  λ, τ → 0 at fixed β = α [P]; α = 0 is AVI. Without errors max_a q_k → v* and
  the action gaps of the fixed point are those of q* times 1/(1 − α) [D].

  Args:
    alpha: the advantage weight α in [0, 1) (may be traced).
    Others: as :func:`avi`.
  """
  alpha = V.check_positive("alpha", alpha, allow_zero=True, hint="; alpha is the advantage weight in [0, 1)")
  if not V.is_traced(alpha) and alpha >= 1:
    raise ParameterError(f"alpha={alpha} must be < 1 for advantage learning (use alpha in [0, 1))")
  _, _, _, num_iters, _, q0 = _check_common(mdp, "advantage_learning", 0.0, 0.0, 1, num_iters, noise, key,
                                            q0, reference, None, False)
  return _advantage_learning(mdp, alpha, 0.0, q0, _as_key(key), reference, None, m=1, num_iters=num_iters,
                             noise=noise, record_eps=record_eps, record_iterates=record_iterates,
                             componentwise=False)


@functools.partial(jax.jit, static_argnames=_STATIC)
def _advantage_learning(mdp, alpha, tau, q0, key, reference, clip, *, m, num_iters, noise, record_eps,
                        record_iterates, componentwise):
  del tau, clip, m, componentwise
  hard = hard_greedy()

  def step(carry, key_k, k):
    q, log_pi = carry
    log_pi_new = hard.log_argmax(q)
    v = jnp.max(q, axis=-1)
    backup, eps = noisy_backup(mdp, v, noise=noise, key=key_k, k=k)
    q_new = backup + alpha * (q - v[:, None])
    return (q_new, log_pi_new), Update(q=q_new, log_pi=log_pi_new, log_pi_prev=log_pi, eps=eps)

  def finalize(carry):
    return carry[0], hard.log_argmax(carry[0]), None

  return run_adp(mdp, step, (q0, _uniform_log_pi(mdp)), finalize, num_iters=num_iters, key=key,
                 reference=reference, record_eps=record_eps, record_iterates=record_iterates)


def speedy_q_learning(mdp: MDP, *, num_iters: int, noise: Noise | None = None, key=None, q0=None,
                      reference: Optimum | None = None, record_eps: bool = False,
                      record_iterates: bool = False) -> ADPResult:
  r"""Synchronous speedy Q-learning (Azar, Munos, Ghavamzadeh & Kappen, NeurIPS 2011, Algorithm 1).

  For k = 0..K−1, with α_k = 1/(k + 1), Q_{−1} = Q_0 = q0 and one empirical Bellman
  operator T̂_k per iteration (THEORY.md §2.3, §2.8: the limit of DA-VI(λ, 0) as λ → 0):

      Q_{k+1} = Q_k + α_k (T̂_k Q_{k−1} − Q_k) + (1 − α_k) (T̂_k Q_k − T̂_k Q_{k−1}),
      T̂_k Q   = r + γ P max_b Q(·, b) + ε_k(max_b Q(·, b)).

  The error model is called twice per iteration *with the same key* — once with
  v = max Q_k, once with v = max Q_{k−1} — so the generative model N1 uses the
  same sampled next state y_k for both backups, exactly as in Azar et al.
  (T̂_k Q(s, a) = r(s, a) + γ max_b Q(y_k, b)); an additive error (N2) cancels in
  the difference term and enters as α_k ε. The recorded ε_{k+1} is the total
  error Q_{k+1} − (the same recursion with exact T). Policies: π_{k+1} = argmax Q_k.

  Relation to DA-VI [D]: as λ → 0, DA-VI(λ, 0)'s running mean h_k obeys the
  same recursion shifted by one index: h_k → SQL's Q_{k+1} when SQL starts from
  a Q_0 with T Q_0 = h_0 (e.g. Q_0 = 0 and h_0 = q_0 = r), at rate O(λ);
  tested in tests/test_mdmpi.py. ``aux = {"q_prev": Q_{K−1}}``.
  """
  _, _, _, num_iters, _, q0 = _check_common(mdp, "speedy_q_learning", 0.0, 0.0, 1, num_iters, noise, key,
                                            q0, reference, None, False)
  return _speedy_q_learning(mdp, 0.0, 0.0, q0, _as_key(key), reference, None, m=1, num_iters=num_iters,
                            noise=noise, record_eps=record_eps, record_iterates=record_iterates,
                            componentwise=False)


@functools.partial(jax.jit, static_argnames=_STATIC)
def _speedy_q_learning(mdp, lam, tau, q0, key, reference, clip, *, m, num_iters, noise, record_eps,
                       record_iterates, componentwise):
  del lam, tau, clip, m, componentwise
  hard = hard_greedy()

  def step(carry, key_k, k):
    q, q_prev, log_pi = carry
    alpha = 1.0 / (k + 1.0)
    tq, eps_now = noisy_backup(mdp, jnp.max(q, axis=-1), noise=noise, key=key_k, k=k)
    tq_prev, eps_prev = noisy_backup(mdp, jnp.max(q_prev, axis=-1), noise=noise, key=key_k, k=k)
    q_new = q + alpha * (tq_prev - q) + (1.0 - alpha) * (tq - tq_prev)
    eps = alpha * eps_prev + (1.0 - alpha) * (eps_now - eps_prev)
    log_pi_new = hard.log_argmax(q)
    return (q_new, q, log_pi_new), Update(q=q_new, log_pi=log_pi_new, log_pi_prev=log_pi, eps=eps)

  def finalize(carry):
    q, q_prev, _ = carry
    return q, hard.log_argmax(q), {"q_prev": q_prev}

  return run_adp(mdp, step, (q0, q0, _uniform_log_pi(mdp)), finalize, num_iters=num_iters, key=key,
                 reference=reference, record_eps=record_eps, record_iterates=record_iterates)


# -----------------------------------------------------------------------------
# Validation and small helpers
# -----------------------------------------------------------------------------


def _check_common(mdp, name, lam, tau, m, num_iters, noise, key, q0, reference, clip, componentwise):
  """Validates the shared arguments at the public boundary; tracers pass through."""
  if not isinstance(mdp, MDP):
    raise ParameterError(f"{name} needs an mdptheory.MDP, got {type(mdp).__name__}; build one with MDP.create")
  lam = V.check_positive("lam", lam, allow_zero=True,
                         hint=f"; lam is the KL weight of {name} (lam = tau = 0 is AVI)")
  tau = V.check_positive("tau", tau, allow_zero=True,
                         hint=f"; tau is the entropy weight of {name} (use tau = 0 for pure KL)")
  m = _check_m(m)
  num_iters = V.check_int("num_iters", num_iters, minimum=1)
  if clip is not None:
    clip = V.check_positive("clip", clip, hint="; clip is v_max, the bound |q| <= v_max enforced after each update")
  if noise is not None and key is None:
    raise ParameterError(f"{name} was given an error model but no key; pass key=jax.random.key(seed)")
  if noise is not None and not callable(noise):
    raise ParameterError(f"noise must be an error model noise(key, k, mdp, v) (see mdptheory.noise), got {noise!r}")
  S, A = mdp.r.shape[-2:]
  for pname, pval in (("lam", lam), ("tau", tau), ("clip", clip)):
    V.check_positive_in_dtype(pname, pval, mdp.r.dtype, hint=f" (in {name})")
  V.check_mdp_precision(mdp, reg_range=tau * math.log(A) if not V.is_traced(tau) else 0.0, where=name,
                        stacklevel=5)
  if q0 is None:
    q0 = jnp.zeros((S, A), mdp.r.dtype)
  else:
    if not V.is_traced(q0):
      arr = np.asarray(q0)
      if arr.shape != (S, A):
        raise ShapeError(f"q0 must have shape (S, A) = {(S, A)}, got {arr.shape}")
      if not np.all(np.isfinite(arr)):
        raise ParameterError("q0 contains NaN or inf; pass finite initial values (default 0)")
    q0 = jnp.asarray(q0, mdp.r.dtype)
  if reference is not None:
    if not isinstance(reference, Optimum):
      raise ParameterError(
          f"reference must be an mdptheory.solvers.Optimum (from solvers.optimum), got {type(reference).__name__}")
    if tuple(reference.q.shape[-2:]) != (S, A):
      raise ShapeError(f"reference.q has shape {tuple(reference.q.shape)}, but the MDP has (S, A) = {(S, A)}")
  if componentwise and reference is None:
    raise ParameterError("componentwise=True needs reference=solvers.optimum(mdp) (π* enters A^1_k)")
  return lam, tau, m, num_iters, clip, q0


def _check_m(m):
  if m is None:
    return None
  if isinstance(m, float) and math.isinf(m) and m > 0:
    return None
  if isinstance(m, (bool, np.bool_)) or not isinstance(m, (int, np.integer)):
    raise ParameterError(f"m={m!r} must be an integer >= 1 (MD-MPI's evaluation steps) or None / math.inf for MD-PI")
  if m < 1:
    raise ParameterError(f"m={m} must be >= 1 (m = 1 is MD-VI); use m=None for exact evaluation (MD-PI)")
  return int(m)


def _as_key(key):
  """A JAX key from None (seed 0), an int seed or a key; anything else is a ParameterError (validate.check_key)."""
  if key is None:
    return jax.random.key(0)
  return V.check_key(key)


def _beta(lam, tau):
  """β = λ/(λ + τ), with β = 0 for λ = τ = 0."""
  temp = lam + tau
  return jnp.where(temp > 0, lam / jnp.where(temp > 0, temp, 1.0), 0.0)


def _uniform_log_pi(mdp):
  S, A = mdp.r.shape[-2:]
  return jnp.full((S, A), -jnp.log(A), mdp.r.dtype)


def _static_flag(x, pred):
  """pred(x) as a Python bool when x is concrete, None when it is traced."""
  if V.is_traced(x):
    return None
  return bool(pred(x))

