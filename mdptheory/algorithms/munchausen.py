r"""Munchausen value iteration M-VI(α, τ) (THEORY.md §3; Vieillard, Pietquin & Geist, NeurIPS 2020).

The abstract scheme of §3.2, with π_{k+1} = softmax(q_k/τ) and errors ε_{k+1} [S, A]:

    q_{k+1} = r + α τ ln π_{k+1} + γ P <π_{k+1}, q_k − τ ln π_{k+1}> + ε_{k+1}
            = r + α (q_k − τ lse(q_k/τ)) + γ P τ lse(q_k/τ) + ε_{k+1}          (log-sum-exp form, [D]).

It is computed in the log-sum-exp form: τ ln π_{k+1} = q_k − τ lse(q_k/τ) with the lse shifted by max_a q_k, never
τ·log(softmax(q_k/τ)), so nothing under- or overflows for τ down to 1e-6 (THEORY.md §1.4).

Equivalence (§3.3, [C][D][N]): with λ = ατ, τ' = (1 − α)τ and q'_k = q_k − ατ ln π_k (π_0 uniform), the pair
(π_k, q'_k) is exactly the MD-VI(λ, τ') sequence of THEORY.md §2.1 driven by the same errors; the policies are
softmax(q_k/τ) exactly, so M-VI's greedy step is exact. Without errors π_k → π*_{τ'} and q'_k → q*_{τ'}, hence the
fixed point and the action-gap increase of §3.5:

    q_∞ = q*_{τ'} + α/(1 − α) (q*_{τ'} − τ' lse(q*_{τ'}/τ')),   max_a q_∞ − q_∞ = (max_a q*_{τ'} − q*_{τ'}) / (1 − α).

Clipping (§3.1, the reference code [C]): with ``clip_min = l0`` the Munchausen bonus uses clip(τ ln π_{k+1}, l0, 0);
the soft bootstrap τ lse(q_k/τ) is never clipped. The equivalence with MD-VI then holds only while
τ ln π_{k+1}(a|s) >= l0 everywhere (§3.4); the ``clip_fraction`` trace says when it stops holding.

Errors follow :mod:`mdptheory.noise`: update k (0-based) adds ``noise(keys[k], k, mdp, v)``, with
``keys = jax.random.split(key, K)`` (the convention of :func:`mdptheory.algorithms.mdmpi.run_adp`) and the soft
next-state value v = τ lse(q_k/τ) [S], the value the exact backup averages (N1 samples one s' per (s, a) of exactly
that value). Since v is also MD-VI's regularized next-state value <π_{k+1}, q'_k> − λ KL(π_{k+1}‖π_k) + τ' H(π_{k+1}),
M-VI and MD-VI run with the same key see the same errors, whatever the error model.

Shapes: q, π [S, A]; traces [K] (:class:`MVITrace`).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from mdptheory import metrics
from mdptheory import operators as ops
from mdptheory import regularizers as R
from mdptheory import solvers
from mdptheory import validate as V
from mdptheory.errors import ParameterError, ShapeError
from mdptheory.noise import Noise
from mdptheory.types import MDP

Array = jax.Array


class MVITrace(NamedTuple):
  """Per-update diagnostics of :func:`mvi` (THEORY.md §3.6). Entry i = 0..K−1 is the update k = i + 1.

  That update used π_k = softmax(q_{k−1}/τ) and produced q_k (the convention of
  :class:`mdptheory.algorithms.mdmpi.ADPTrace`, whose field names these follow). The errors are measured
  against the reference q_ref = q*_{τ'}, τ' = (1 − α)τ (q* when τ' = 0), by exact evaluation of π_k with
  entropy(τ'): q^{τ'}_π = r + γ P (I − γ P_π)^{-1}(<π, r> + τ' H(π)).
  """
  err_sup: Array | None         # [K]  ‖q_ref − q^{τ'}_{π_k}‖_∞      (None with track_error=False)
  err_l1: Array | None          # [K]  ‖q_ref − q^{τ'}_{π_k}‖_1 / ‖q_ref‖_1 (Vieillard et al. 2020; None as err_sup)
  q_sup: Array                  # [K]  ‖q_k‖_∞
  eps_sup: Array                # [K]  ‖ε_k‖_∞
  avg_eps_sup: Array            # [K]  ‖(1/k) Σ_{j=1}^k ε_j‖_∞ (the error term of the α = 1 bound, §3.4)
  clip_fraction: Array          # [K]  fraction of (s, a) where the clip binds in update k: τ ln π_k < l0 (0 unclipped)
  policy_change: Array          # [K]  max_s ‖π_k(·|s) − π_{k−1}(·|s)‖_1 (π_0 uniform)
  action_gap_mean: Array        # [K]  mean_s (max_a q_k − second max_a q_k)
  eps: Array | None = None      # [K, S, A]  ε_k                    (record_eps=True)
  q: Array | None = None        # [K, S, A]  q_k                    (record_iterates=True)
  log_pi: Array | None = None   # [K, S, A]  ln π_k, in log space   (record_iterates=True)


class MVIResult(NamedTuple):
  """Result of :func:`mvi`: the last iterate, the policy after it, the hidden MD-VI iterate, the trace."""
  q: Array          # [S, A]  q_K
  log_pi: Array     # [S, A]  ln π_{K+1} = log_softmax(q_K/τ), the policy after the last update
                    #         (equal to MD-VI's log π_{K+1}, :class:`~mdptheory.algorithms.mdmpi.ADPResult`)
  q_prime: Array    # [S, A]  q'_K = q_K − ατ ln π_K, the MD-VI(ατ, (1 − α)τ) iterate (§3.3)
  q_ref: Array | None  # [S, A]  the reference the errors are measured against (q*_{τ'} by default; None
                       #         with track_error=False)
  trace: MVITrace | None  # per-update diagnostics, entries k = 1..K (None with record_trace=False)


# -- parameter maps (§3.3) --------------------------------------------------------------------------

def mvi_to_mdvi(alpha, tau) -> tuple[Any, Any]:
  r"""The MD-VI parameters of M-VI(α, τ): (λ, τ') = (ατ, (1 − α)τ) (THEORY.md §3.3, §0.3 note 5).

  KL weight λ = ατ and entropy weight τ' = (1 − α)τ, hence β = λ/(λ + τ') = α and λ + τ' = τ (a common slip is to
  swap them).

  Args:
    alpha: Munchausen scaling α ∈ [0, 1] (may be traced).
    tau: temperature τ > 0 (may be traced).

  Returns:
    (lam, tau_prime), scalars.
  """
  alpha, tau = _check_alpha(alpha), _check_tau(tau)
  return alpha * tau, (1.0 - alpha) * tau


def mdvi_to_mvi(lam, tau_prime) -> tuple[Any, Any]:
  r"""The inverse map: MD-VI(λ, τ') is M-VI(α, τ) with α = λ/(λ + τ'), τ = λ + τ' (THEORY.md §3.3).

  Args:
    lam: KL weight λ >= 0 (may be traced).
    tau_prime: entropy weight τ' >= 0, with λ + τ' > 0 (may be traced).

  Returns:
    (alpha, tau), scalars.
  """
  lam = V.check_positive("lam", lam, allow_zero=True)
  tau_prime = V.check_positive("tau_prime", tau_prime, allow_zero=True)
  if not V.is_traced(lam) and not V.is_traced(tau_prime) and lam + tau_prime == 0:
    raise ParameterError("lam + tau_prime must be > 0: M-VI needs a temperature tau = lam + tau_prime > 0")
  tau = lam + tau_prime
  return lam / tau, tau


def munchausen_q_prime(q: Array, logpi: Array, alpha, tau) -> Array:
  r"""q' = q − ατ ln π, the MD-VI iterate hidden in M-VI (THEORY.md §3.3).  [..., A] -> [..., A].

  With π_k = softmax(q_{k−1}/τ) (π_0 uniform), q'_k = q_k − ατ ln π_k is the MD-VI(ατ, (1 − α)τ) iterate.
  Pass ln π in log space (e.g. ``MVIResult.trace.log_pi``), not log(softmax(·)), for small τ.

  Args:
    q: [..., A] M-VI iterate q_k.
    logpi: [..., A] ln π_k.
    alpha: α ∈ [0, 1].
    tau: τ > 0.
  """
  alpha, tau = _check_alpha(alpha), _check_tau(tau)
  logpi = jnp.asarray(logpi)
  # α = 0 gives q' = q even where ln π = −inf (no 0 · inf = NaN).
  return jnp.asarray(q) - jnp.where(alpha * tau == 0, 0.0, alpha * tau * logpi)


# -- M-VI ----------------------------------------------------------------------------------------------

def mvi(mdp: MDP, *, alpha, tau, num_iters: int, noise: Noise | None = None, key: Any = None,
        q0: Any = None, clip_min: Any = None, reference: Any = None, record_eps: bool = False,
        record_iterates: bool = False, track_error: bool = True, record_trace: bool = True) -> MVIResult:
  r"""Munchausen VI, M-VI(α, τ), in the log-sum-exp form of THEORY.md §3.2.

      π_{k+1} = softmax(q_k/τ),   τ ln π_{k+1} = q_k − τ lse(q_k/τ),
      q_{k+1} = r + α clip(τ ln π_{k+1}, l0, 0) + γ P τ lse(q_k/τ) + ε_{k+1},

  with no clip when ``clip_min`` is None (l0 = −∞). Equivalent to MD-VI(ατ, (1 − α)τ) through
  q'_k = q_k − ατ ln π_k (§3.3) while the clip does not bind; α = 0 is soft VI, α = 1 is MD-VI(τ, 0) and τ → 0 is
  Advantage Learning q_{k+1} = r + γ P max q_k + α (q_k − max_a q_k) (§3.2).

  Hyperparameters α, τ, ``clip_min``, the key and ``mdp.gamma`` may be traced (``jax.vmap`` over α, τ or seeds);
  concrete values are validated here. ``num_iters``, ``noise`` and the recording flags are static.

  Args:
    mdp: the MDP (dense or sparse kernel).
    alpha: Munchausen scaling α ∈ [0, 1].
    tau: temperature τ > 0 of the softmax policy; the effective entropy weight is τ' = (1 − α)τ and the KL weight
      λ = ατ.
    num_iters: K >= 1 updates.
    noise: error model ``noise(key, k, mdp, v) -> ε [S, A]`` (:mod:`mdptheory.noise`), called with the soft value
      v = τ lse(q_k/τ) [S] that the exact backup averages (it equals MD-VI's regularized next-state value, so
      the same key gives M-VI and :func:`~mdptheory.algorithms.mdmpi.md_mpi` the same errors, N1 included);
      None for exact updates.
    key: JAX PRNG key or int seed, required with ``noise``; update k (0-based) uses
      ``jax.random.split(key, num_iters)[k]`` (the convention of :func:`~mdptheory.algorithms.mdmpi.run_adp`).
    q0: [S, A] initial q_0 (default 0); π_1 = softmax(q_0/τ), and the matching MD-VI start is
      q'_0 = q_0 + ατ ln|A| (π_0 uniform).
    clip_min: l0 <= 0, the lower clip of the Munchausen bonus τ ln π (M-DQN uses −1); None: no clipping.
    reference: the optimum the errors are measured against, a :class:`~mdptheory.solvers.Optimum` or its
      q [S, A]; default q*_{τ'} computed exactly (policy iteration with entropy(τ'), or the hard max when α = 1
      is concrete). Under ``jax.vmap`` with α reaching 1 (τ' = 0 traced) pass it explicitly.
    record_eps: also record ε_k [K, S, A] in the trace.
    record_iterates: also record q_k and ln π_k [K, S, A] in the trace.
    track_error: measure ``err_sup`` and ``err_l1`` (an exact evaluation of π_k, an S×S solve, per update, and
      the reference optimum). False skips both: an update then costs one pass over P, as a soft VI step does,
      and the trace's ``err_sup``, ``err_l1`` and the result's ``q_ref`` are None.
    record_trace: False records no per-update diagnostics at all (``trace`` is None; implies
      ``track_error=False``): the loop is the update alone.

  Returns:
    :class:`MVIResult`.

  Raises:
    ParameterError: α outside [0, 1], τ <= 0, l0 > 0, num_iters < 1, noise without a key, a bad key.
    ShapeError: q0 or reference not [S, A].
  """
  if not isinstance(mdp, MDP):
    raise ParameterError(f"mvi needs an mdptheory.MDP, got {type(mdp).__name__}; build one with MDP.create")
  alpha = _check_alpha(alpha)
  tau = _check_tau(tau)
  num_iters = V.check_int("num_iters", num_iters)
  use_clip = clip_min is not None
  clip_min = _check_clip_min(clip_min) if use_clip else 0.0
  noise, key = _check_noise_key(noise, key)
  S, A = mdp.num_states, mdp.num_actions
  V.check_positive_in_dtype("tau", tau, mdp.dtype, hint=" (in mvi)")
  V.check_mdp_precision(mdp, reg_range=tau * math.log(A) if not V.is_traced(tau) else 0.0, where="mvi")
  q0 = _check_sa("q0", q0, S, A, mdp.dtype)
  if not track_error or not record_trace:
    q_ref = None
  elif reference is None:
    hard = (not V.is_traced(alpha)) and alpha == 1.0
    q_ref = _entropy_optimum_q(mdp, (1.0 - jnp.asarray(alpha, mdp.dtype)) * tau, hard=hard)
  else:
    q_ref = _check_sa("reference", getattr(reference, "q", reference), S, A, mdp.dtype)
  return _mvi(mdp, alpha, tau, clip_min, q0, q_ref, key, num_iters=num_iters, noise=noise, use_clip=use_clip,
              record_eps=bool(record_eps), record_iterates=bool(record_iterates),
              record_trace=bool(record_trace))


@functools.partial(jax.jit, static_argnames=("hard",))
def _entropy_optimum_q(mdp: MDP, tau_prime, *, hard: bool) -> Array:
  """q*_{τ'} by policy iteration with entropy(τ') (q* when ``hard``).  -> [S, A]."""
  return solvers.optimum(mdp, None if hard else R.entropy(tau_prime)).q


@functools.partial(jax.jit, static_argnames=("num_iters", "noise", "use_clip", "record_eps", "record_iterates",
                                             "record_trace"))
def _mvi(mdp, alpha, tau, clip_min, q0, q_ref, key, *, num_iters, noise, use_clip, record_eps, record_iterates,
         record_trace=True):
  dt = mdp.dtype
  alpha = jnp.asarray(alpha, dt)
  tau = jnp.asarray(tau, dt)
  S, A = mdp.num_states, mdp.num_actions
  track_error = q_ref is not None
  ref_l1 = jnp.sum(jnp.abs(q_ref)) if track_error else None
  keys = None if noise is None else jax.random.split(key, num_iters)

  def soft(q):
    """(τ lse(q/τ) [S], τ ln softmax(q/τ) [S, A], ln softmax(q/τ) [S, A]), shifted by max_a q.

    ln π is normalized in log space (z − lse z), not (τ ln π)/τ: when τ lse is below the rounding of q
    (τ = 1e-8, q ~ 1), (q − v)/τ would carry errors of eps·|q|/τ and π would not sum to 1.
    """
    m = jnp.max(q, axis=-1)
    z = (q - m[:, None]) / tau
    lse = jax.nn.logsumexp(z, axis=-1)
    v = m + tau * lse
    return v, q - v[:, None], z - lse[:, None]

  def step(carry, k):
    q_prev, tlogp_prev, log_pi_prev, eps_sum = carry  # q_{k−1}, τ ln π_{k−1}, ln π_{k−1}, Σ ε  (k 0-based)
    v, tlogp, log_pi = soft(q_prev)                # τ lse(q_{k−1}/τ) [S], τ ln π_k, ln π_k [S, A]
    if use_clip:
      bonus = jnp.clip(tlogp, clip_min, 0.0)
      clip_fraction = jnp.mean((tlogp < clip_min).astype(dt))
    else:
      bonus = tlogp
      clip_fraction = jnp.zeros((), dt)
    eps = jnp.zeros((S, A), dt) if noise is None else jnp.asarray(noise(keys[k], k, mdp, v), dt)
    q = mdp.r + alpha * bonus + mdp.gamma * ops.expect(mdp.P, ops.materialize(mdp.P, v)) + eps
    eps_sum = eps_sum + eps
    if not record_trace:
      return (q, tlogp, log_pi, eps_sum), None
    # Exact evaluation of π_k with τ' = (1 − α)τ: Ω(π) = τ' Σ π ln π = (1 − α) Σ π (τ ln π), from τ ln π directly.
    pi = jnp.exp(log_pi)
    omega = (1.0 - alpha) * jnp.sum(jnp.where(pi > 0, pi * tlogp, 0.0), axis=-1)
    top2 = lax.top_k(q, 2)[0] if A > 1 else jnp.concatenate([q, q], axis=-1)
    out = dict(
        q_sup=jnp.max(jnp.abs(q)),
        eps_sup=jnp.max(jnp.abs(eps)),
        avg_eps_sup=jnp.max(jnp.abs(eps_sum)) / (k + 1).astype(dt),
        clip_fraction=clip_fraction,
        policy_change=jnp.max(jnp.sum(jnp.abs(pi - jnp.exp(log_pi_prev)), axis=-1)),
        action_gap_mean=jnp.mean(top2[:, 0] - top2[:, 1]),
    )
    if track_error:
      gap = jnp.abs(q_ref - _evaluate_with_penalty(mdp, pi, omega))
      out.update(err_sup=jnp.max(gap), err_l1=metrics.relative_l1(jnp.sum(gap), ref_l1))
    if record_eps:
      out["eps"] = eps
    if record_iterates:
      out.update(q=q, log_pi=log_pi)
    return (q, tlogp, log_pi, eps_sum), out

  log_pi0 = jnp.full((S, A), -math.log(A), dt)  # π_0 uniform
  (q, tlogp_last, _, _), out = lax.scan(step, (q0, log_pi0 * tau, log_pi0, jnp.zeros((S, A), dt)),
                                        jnp.arange(num_iters))
  log_pi_next = soft(q)[2]
  return MVIResult(q=q, log_pi=log_pi_next, q_prime=q - alpha * tlogp_last, q_ref=q_ref,
                   trace=MVITrace(**{"err_sup": None, "err_l1": None, **out}) if record_trace else None)


# -- helpers -------------------------------------------------------------------------------------------

def _evaluate_with_penalty(mdp: MDP, pi: Array, omega_pi: Array) -> Array:
  """q_{π,Ω} = r + γ P v with v = (I − γ P_π)^{-1}(<π, r> − Ω(π)), given Ω(π) [S].  -> [S, A]."""
  reg = R.Regularizer(omega=lambda _: omega_pi, smax=None, argmax=None, log_argmax=None, name="fixed")
  return ops.evaluate(mdp, pi, reg).q


def _check_alpha(alpha):
  alpha = V.check_real_scalar("alpha", alpha)
  if not V.is_traced(alpha) and not 0.0 <= alpha <= 1.0:
    raise ParameterError(f"alpha={alpha} must be in [0, 1] (the Munchausen scaling; M-DQN uses alpha=0.9)")
  return alpha


def _check_tau(tau):
  return V.check_positive("tau", tau, hint="; tau is the softmax temperature of M-VI (M-DQN uses tau=0.03)")


def _check_clip_min(clip_min):
  l0 = V.check_real_scalar("clip_min", clip_min)
  if not V.is_traced(l0) and l0 > 0:
    raise ParameterError(f"clip_min={l0} must be <= 0: the bonus tau*ln(pi) is clipped to [clip_min, 0] "
                         f"(M-DQN uses clip_min=-1); pass None for no clipping")
  return l0


def _check_noise_key(noise, key):
  """(noise or None, a PRNG key or None); a noise model needs a key."""
  if noise is None:
    return None, None  # exact updates: the key is not used
  if not callable(noise):
    raise ParameterError(f"noise={noise!r} is not an error model; pass e.g. mdptheory.noise.gaussian(0.5) or None")
  if key is None:
    raise ParameterError("a noise model needs key=... (an int seed or jax.random.key(seed))")
  return noise, V.check_key(key)




def _check_sa(name: str, x: Any, S: int, A: int, dtype) -> Array:
  """An [S, A] array (zeros when None); concrete values are checked for shape and finiteness."""
  if x is None:
    return jnp.zeros((S, A), dtype)
  if V.is_traced(x):
    if x.shape != (S, A):
      raise ShapeError(f"{name} must have shape (S, A) = {(S, A)}, got {x.shape}")
    return x.astype(dtype)
  arr = V.as_real_array(name, x)
  if arr.shape != (S, A):
    raise ShapeError(f"{name} must have shape (S, A) = {(S, A)}, got {arr.shape}")
  V.check_finite(name, arr)
  return jnp.asarray(arr, dtype)
