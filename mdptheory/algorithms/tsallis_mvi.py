r"""Tsallis-KL mirror descent VI and Munchausen VI with Tsallis entropy, MVI(q) (THEORY.md §4).

After Zhu, Chen, Schlegel & White, *General Munchausen RL with Tsallis KL divergence* (NeurIPS 2023,
arXiv 2301.11476). Only secondary sources of that paper could be read: the MVI(q) details below are the
testbed's specification (THEORY.md §4.4), not confirmed against the paper.

Conventions (THEORY.md §4.1, the "2 − q dual" convention of :mod:`mdptheory.qexp`), q >= 1:

    ln_q x = (x^(q−1) − 1)/(q − 1),   exp_q x = [1 + (q − 1) x]_+^(1/(q−1)),
    Ω_q(π) = (1 − Σ_a π_a^q)/(q(q − 1)) = −<π, ln_q π>/q,
    D̃_q(π‖μ) = (Σ_a π_a^q μ_a^(1−q) − 1)/(q(q − 1)) = <π, ln_q(π/μ)>/q.

**Normalisation: both carry the factor 1/q** (so that the Tsallis greedy policy is exactly exp_q(Q/τ − ψ));
papers without it (S_q = qΩ_q, reportedly the Tsallis-MVI paper) have temperature qτ where we have τ, and
λq where we have λ. q = 1 is the Shannon case (entropy and KL) in every function here.

Three objects:

* :func:`tsallis_kl_greedy` — the exact Tsallis-KL greedy step (§4.3),
  argmax_π <π, Q> − λ D̃_q(π‖μ) + τ' Ω_q(π) = [(q − 1)(Q − ν)/(λ μ^(1−q) + τ')]_+^(1/(q−1)) on supp μ, which
  for τ' = 0 is μ ⊙ exp_q((Q − ν')/λ); the normalizer is found by bisection to machine precision.
* :func:`tsallis_kl_mdvi` — the exact Tsallis-KL MD-VI recursion (the Tsallis analogue of MD-VI(λ, τ'), §4.3).
  Its zeros are absorbing: support(π_{k+1}) ⊆ support(π_k).
* :func:`mvi_q` — MVI(q) (§4.4): π_{k+1} = exp_q(q_k/τ − ψ_q(q_k/τ)) and a Munchausen bonus in one of three
  variants (plus the plain-log bonus of TS-8). For q ≠ 1 it is **not** Tsallis-KL MD-VI (pseudo-additivity of
  ln_q; claim TS-5).

Errors follow :mod:`mdptheory.noise` as in :mod:`mdptheory.algorithms.munchausen`: update k (0-based) adds
``noise(keys[k], k, mdp, v)`` with ``keys = jax.random.split(key, K)`` and v [S] the next-state value of the
exact backup. Trace entry i = 0..K−1 is the update k = i + 1, which used π_k and produced q_k.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from mdptheory import metrics
from mdptheory import operators as ops
from mdptheory import qexp
from mdptheory import solvers
from mdptheory import validate as V
from mdptheory.algorithms.munchausen import (_check_alpha, _check_clip_min, _check_sa, _entropy_optimum_q,
                                             _evaluate_with_penalty)
from mdptheory.errors import ParameterError, ShapeError
from mdptheory.noise import Noise
from mdptheory.qexp import _as_float, _check_q
from mdptheory.types import MDP

Array = jax.Array

BONUSES = ("support", "gap", "policy_gap", "log")

# Bisection steps for the Tsallis-KL normalizer, on top of the mantissa bits (the bracket may be wide).
_EXTRA_BISECTIONS = 40
_NEWTON_STEPS = 2


# -- results ------------------------------------------------------------------------------------------

class TsallisKLTrace(NamedTuple):
  """Per-update diagnostics of :func:`tsallis_kl_mdvi` (THEORY.md §4.5). Entry i is the update k = i + 1.

  Errors are against q_ref = q*_{τ'Ω_q} (q* when τ' = 0), by exact evaluation of π_k with τ'Ω_q.
  """
  err_sup: Array               # [K]  ‖q_ref − q^{τ'Ω_q}_{π_k}‖_∞
  err_l1: Array                # [K]  ‖q_ref − q^{τ'Ω_q}_{π_k}‖_1 / ‖q_ref‖_1
  q_sup: Array                 # [K]  ‖q_k‖_∞
  residual: Array              # [K]  ‖q_k − q_{k−1}‖_∞
  eps_sup: Array               # [K]  ‖ε_k‖_∞
  avg_eps_sup: Array           # [K]  ‖(1/k) Σ_{j<=k} ε_j‖_∞
  support_size: Array          # [K]  mean_s |supp π_k(·|s)|
  divergence_max: Array        # [K]  max_s D̃_q(π_k ‖ π_{k−1})
  entropy_mean: Array          # [K]  mean_s Ω_q(π_k)
  policy_change: Array         # [K]  max_s ‖π_k − π_{k−1}‖_1
  action_gap_mean: Array       # [K]  mean_s (max_a q_k − second max_a q_k)
  eps: Array | None = None     # [K, S, A]  ε_k        (record_eps=True)
  q: Array | None = None       # [K, S, A]  q_k        (record_iterates=True)
  pi: Array | None = None      # [K, S, A]  π_k        (record_iterates=True)


class TsallisKLResult(NamedTuple):
  """Result of :func:`tsallis_kl_mdvi`."""
  q: Array              # [S, A]  q_K
  pi: Array             # [S, A]  π_{K+1} = the Tsallis-KL greedy step of q_K anchored at π_K
  q_ref: Array          # [S, A]  the reference of the errors
  trace: TsallisKLTrace


class MVIqTrace(NamedTuple):
  """Per-update diagnostics of :func:`mvi_q` (THEORY.md §4.5). Entry i is the update k = i + 1.

  Errors are against q_ref = q*_{τ_ref Ω_q}, τ_ref = (1 − α)τ by default, by exact evaluation of π_k with
  τ_ref Ω_q (for q ≠ 1 MVI(q) need not converge to it; see :func:`mvi_q`).
  """
  err_sup: Array               # [K]  ‖q_ref − q^{τ_ref Ω_q}_{π_k}‖_∞
  err_l1: Array                # [K]  ‖q_ref − q^{τ_ref Ω_q}_{π_k}‖_1 / ‖q_ref‖_1
  q_sup: Array                 # [K]  ‖q_k‖_∞
  residual: Array              # [K]  ‖q_k − q_{k−1}‖_∞
  eps_sup: Array               # [K]  ‖ε_k‖_∞
  avg_eps_sup: Array           # [K]  ‖(1/k) Σ_{j<=k} ε_j‖_∞
  clip_fraction: Array         # [K]  fraction of (s, a) whose bonus base was below l0 (0 without clipping)
  off_support_fraction: Array  # [K]  fraction of (s, a) with π_k(a|s) = 0
  support_size: Array          # [K]  mean_s |supp π_k(·|s)|
  threshold_gap: Array         # [K]  max_s |ψ̂ − ψ_q| at q_{k−1}/τ (Taylor threshold, qexp.taylor_threshold)
  entropy_mean: Array          # [K]  mean_s Ω_q(π_k)
  policy_change: Array         # [K]  max_s ‖π_k − π_{k−1}‖_1
  action_gap_mean: Array       # [K]  mean_s (max_a q_k − second max_a q_k)
  eps: Array | None = None     # [K, S, A]  ε_k        (record_eps=True)
  q: Array | None = None       # [K, S, A]  q_k        (record_iterates=True)
  pi: Array | None = None      # [K, S, A]  π_k        (record_iterates=True)


class MVIqResult(NamedTuple):
  """Result of :func:`mvi_q`."""
  q: Array          # [S, A]  q_K
  pi: Array         # [S, A]  π_{K+1} = exp_q(q_K/τ − ψ_q(q_K/τ)), the policy after the last update
  q_prime: Array    # [S, A]  q_K − ατ ln_q π_K (the "support" bonus' q', §4.4; off-support ln_q 0 = −1/(q−1))
  q_ref: Array      # [S, A]  the reference of the errors
  trace: MVIqTrace


# -- q-logarithm helpers with a traced q − 1 -------------------------------------------------------------

def _ln_q_of_log(log_x: Array, qm1, is_one: bool) -> Array:
  """ln_q evaluated from log x: expm1((q − 1) log x)/(q − 1) (log x at q = 1)."""
  return log_x if is_one else jnp.expm1(qm1 * log_x) / qm1


def _log_exp_q(x: Array, qm1) -> Array:
  """log exp_q(x) = log1p((q − 1) x)/(q − 1) where 1 + (q − 1) x > 0, else −inf (q > 1)."""
  b = qm1 * x
  inside = b > -1.0
  return jnp.where(inside, jnp.log1p(jnp.where(inside, b, 0.0)) / qm1, -jnp.inf)


def _entropy_log(log_pi: Array, qm1, is_one: bool) -> Array:
  """Ω_q(π) = −<π, ln_q π>/q from ln π (−inf off the support).  [..., A] -> [...]."""
  pos = jnp.isfinite(log_pi)
  lp = jnp.where(pos, log_pi, 0.0)
  return -jnp.sum(jnp.where(pos, jnp.exp(lp) * _ln_q_of_log(lp, qm1, is_one), 0.0), axis=-1) / (1.0 + qm1)


def _divergence_log(log_pi: Array, log_mu: Array, qm1, is_one: bool) -> Array:
  """D̃_q(π‖μ) = <π, ln_q(π/μ)>/q from logs; +inf where π > 0 = μ.  [..., A] -> [...]."""
  pos = jnp.isfinite(log_pi)
  lp = jnp.where(pos, log_pi, 0.0)
  ratio = jnp.where(pos, lp - log_mu, 0.0)  # +inf where μ = 0 < π
  return jnp.sum(jnp.where(pos, jnp.exp(lp) * _ln_q_of_log(ratio, qm1, is_one), 0.0), axis=-1) / (1.0 + qm1)


def _safe_log(p: Array) -> Array:
  return jnp.where(p > 0, jnp.log(jnp.where(p > 0, p, 1.0)), -jnp.inf)


# -- the Tsallis-KL greedy step ----------------------------------------------------------------------------

def _tkl_log_greedy(Q: Array, log_mu: Array, lam, tau_prime, qm1, is_one: bool) -> Array:
  r"""ln of argmax_π <π, Q> − λ D̃_q(π‖μ) + τ' Ω_q(π);  [..., A] -> [..., A] (−inf off the support).

  With T = λ + τ', β = λ/T, the KKT conditions give, on supp μ (all actions when λ = 0),

      π_a = m_a exp_q((Q_a − ν)/T),   m_a = [1 + β (μ_a^(1−q) − 1)]^(−1/(q−1)),

  (the form [(q − 1)(Q − ν')/(λ μ^(1−q) + τ')]_+^(1/(q−1)) of THEORY.md §4.3 with ν' = ν − T/(q − 1)); m = μ for
  τ' = 0 and m = μ^β at q = 1. ln m is computed as −log((1 − β) + β μ^(1−q))/(q − 1) without cancellation, so
  q = 1 + 1e-6 is accurate. ν solves Σ_a π_a = 1: in s = (ν − max Q)/T it lies in

      [max_a (u_a − ln_q(1/m_a)),  −ln_q(1/Σ_a m_a)],   u = (Q − max Q)/T,

  where the sum is >= 1 at the left end and <= 1 at the right end; bisection (mantissa bits + 40 halvings)
  then two safeguarded Newton steps; the policy is divided by its sum (a no-op up to rounding).
  """
  temp = lam + tau_prime
  beta = lam / temp
  if is_one:
    finite = jnp.isfinite(log_mu)
    prior = jnp.where(finite, beta * jnp.where(finite, log_mu, 0.0), jnp.where(beta > 0, -jnp.inf, 0.0))
    return jax.nn.log_softmax(prior + Q / temp, axis=-1)
  in_mu = jnp.isfinite(log_mu)
  y = jnp.where(in_mu, -qm1 * jnp.where(in_mu, log_mu, 0.0), 0.0)            # (q − 1) ln(1/μ) >= 0
  safe_beta = jnp.where(beta > 0, beta, 1.0)
  big = jnp.logaddexp(jnp.log1p(-jnp.minimum(safe_beta, 1.0)), jnp.log(safe_beta) + y)
  log_c = jnp.where(y < 1.0, jnp.log1p(safe_beta * jnp.expm1(jnp.minimum(y, 1.0))), big)  # ln((1−β) + β μ^(1−q))
  log_m = jnp.where(beta > 0, jnp.where(in_mu, -log_c / qm1, -jnp.inf), 0.0)
  admissible = jnp.isfinite(log_m)
  q_max = jnp.max(jnp.where(admissible, Q, -jnp.inf), axis=-1, keepdims=True)
  u = jnp.where(admissible, (Q - q_max) / temp, -jnp.inf)

  def log_pi_at(s):
    return log_m + _log_exp_q(u - s[..., None], qm1)

  def excess(s):
    return jnp.sum(jnp.exp(log_pi_at(s)), axis=-1) - 1.0  # decreasing in s

  log_big_m = jax.nn.logsumexp(log_m, axis=-1)
  hi = -jnp.expm1(-qm1 * log_big_m) / qm1                                  # −ln_q(1/M) >= 0
  ln_q_inv_m = jnp.where(admissible, jnp.expm1(-qm1 * jnp.where(admissible, log_m, 0.0)) / qm1, jnp.inf)
  lo = jnp.minimum(jnp.max(u - ln_q_inv_m, axis=-1), hi)

  def bisect(_, bracket):
    lo, hi = bracket
    mid = 0.5 * (lo + hi)
    above = excess(mid) > 0
    return jnp.where(above, mid, lo), jnp.where(above, hi, mid)

  lo, hi = lax.fori_loop(0, int(np.finfo(Q.dtype).nmant) + _EXTRA_BISECTIONS, bisect, (lo, hi))
  s = 0.5 * (lo + hi)
  for _ in range(_NEWTON_STEPS):
    lp = log_pi_at(s)
    on = jnp.isfinite(lp)
    # d/ds Σ m exp_q(u − s) = −Σ m exp_q(u − s)^(2−q) = −Σ exp(ln m + (1 − (q − 1)) ln exp_q) on the support.
    slope = jnp.sum(jnp.where(on, jnp.exp(log_m + (1.0 - qm1) * jnp.where(on, lp - log_m, 0.0)), 0.0), axis=-1)
    s = jnp.clip(s + (jnp.sum(jnp.exp(lp), axis=-1) - 1.0) / slope, lo, hi)
  lp = log_pi_at(s)
  return lp - jax.nn.logsumexp(lp, axis=-1, keepdims=True)


_tkl_log_greedy_jit = jax.jit(_tkl_log_greedy, static_argnums=5)


def tsallis_kl_greedy(Q: Any, mu: Any, *, lam, tau_prime=0.0, q) -> Array:
  r"""The Tsallis-KL greedy policy (THEORY.md §4.3);  [..., A], [..., A] -> [..., A].

      π = argmax_π <π, Q> − λ D̃_q(π‖μ) + τ' Ω_q(π)
        = [(q − 1)(Q − ν)/(λ μ^(1−q) + τ')]_+^(1/(q−1))   on supp μ (0 off it when λ > 0),

  which for τ' = 0 is μ ⊙ exp_q((Q − ν)/λ) (another ν); the normalizer is found by bisection to machine
  precision (see :func:`_tkl_log_greedy`). Normalisation with 1/q (module docstring): papers without it use λq,
  τ'q. q = 1 is the MD greedy step ∝ μ^β exp(Q/(λ + τ')), β = λ/(λ + τ'); λ = 0 is the Tsallis entropy greedy
  step exp_q(Q/τ' − ψ_q(Q/τ')) of :func:`mdptheory.qexp.tsallis_regularizer`.

  Support: supp π ⊆ supp μ whenever λ > 0, so zeros of μ are never revived (absorbing zeros of the MD
  recursion, claim TS-3); for q > 1 the support can shrink further (π_a = 0 where Q_a <= ν).

  Args:
    Q: [..., A] scores.
    mu: [..., A] anchor policy (rows on the simplex; zeros allowed); broadcasts against Q.
    lam: Tsallis-KL weight λ >= 0 (may be traced).
    tau_prime: Tsallis-entropy weight τ' >= 0 (may be traced), λ + τ' > 0.
    q: concrete Tsallis index q >= 1.

  Returns:
    [..., A] the greedy policy.

  Raises:
    ParameterError: q < 1, λ < 0, τ' < 0, λ + τ' = 0.
    InvalidMDPError: a concrete μ with negative entries or rows not summing to 1.
    ShapeError: Q and μ do not broadcast, or a scalar.
  """
  q = _check_q(q)
  lam, tau_prime = _check_weights(lam, tau_prime)
  Q = _as_float("Q", Q)
  mu = _as_float("mu", mu)
  try:
    Q, mu = jnp.broadcast_arrays(Q, mu.astype(Q.dtype))
  except ValueError as e:
    raise ShapeError(f"Q {Q.shape} and mu {mu.shape} do not broadcast: {e}") from e
  if not V.is_traced(mu):
    V.check_stochastic("mu", np.asarray(mu, np.float64), what="row")  # InvalidMDPError for a non-policy
  return jnp.exp(_tkl_log_greedy_jit(Q, _safe_log(mu), lam, tau_prime, q - 1.0, q == 1.0))


# -- Tsallis-KL MD-VI -------------------------------------------------------------------------------------

def tsallis_kl_mdvi(mdp: MDP, *, lam, q, num_iters: int, tau_prime=0.0, noise: Noise | None = None,
                    key: Any = None, q0: Any = None, pi0: Any = None, reference: Any = None,
                    record_eps: bool = False, record_iterates: bool = False) -> TsallisKLResult:
  r"""Exact Tsallis-KL MD-VI (THEORY.md §4.3; 1/q normalisation of §4.1):

      π_{k+1} = argmax_π <π, q_k> − λ D̃_q(π‖π_k) + τ' Ω_q(π)               (:func:`tsallis_kl_greedy`),
      q_{k+1} = r + γ P (<π_{k+1}, q_k> − λ D̃_q(π_{k+1}‖π_k) + τ' Ω_q(π_{k+1})) + ε_{k+1},

  from π_0 uniform (or ``pi0``) and q_0 = 0 (or ``q0``). q = 1 is MD-VI(λ, τ') of §2.4. Papers without the 1/q
  factor have weights qλ, qτ'. The error model is called with the next-state value in parentheses.

  Properties (THEORY.md §4.3, claims TS-3/TS-4): zeros are absorbing (supp π_{k+1} ⊆ supp π_k for λ > 0); for
  q ≠ 1 the policy after K steps depends on the order of q_0..q_{K−1}, not only on their sum. A fixed point is
  the τ'Ω_q-regularized optimum restricted to the surviving support (D̃_q(π‖π) = 0 and its gradient is constant
  there), so early zeros can keep the iteration away from q*_{τ'Ω_q} [D].

  Args:
    mdp: the MDP.
    lam: Tsallis-KL weight λ >= 0 (may be traced).
    q: concrete Tsallis index q >= 1.
    num_iters: K >= 1.
    tau_prime: Tsallis-entropy weight τ' >= 0 (may be traced); λ + τ' > 0.
    noise: error model (:mod:`mdptheory.noise`) or None.
    key: PRNG key or int seed, required with ``noise``; ``jax.random.split(key, K)[k]`` for update k.
    q0: [S, A] initial q (default 0).
    pi0: [S, A] initial policy (default uniform); its zeros stay zeros.
    reference: :class:`~mdptheory.solvers.Optimum` or q [S, A] for the errors; default q*_{τ'Ω_q} (q* for a
      concrete τ' = 0).
    record_eps: record ε_k [K, S, A].
    record_iterates: record q_k and π_k [K, S, A].

  Returns:
    :class:`TsallisKLResult`.
  """
  q = _check_q(q)
  lam, tau_prime = _check_weights(lam, tau_prime)
  num_iters = V.check_int("num_iters", num_iters)
  noise, key = _check_noise_key(noise, key)
  S, A = _check_mdp(mdp, "tsallis_kl_mdvi")
  for pname, pval in (("lam", lam), ("tau_prime", tau_prime)):
    V.check_positive_in_dtype(pname, pval, mdp.dtype, hint=" (in tsallis_kl_mdvi)")
  V.check_mdp_precision(mdp, reg_range=tau_prime * np.log(A) if not V.is_traced(tau_prime) else 0.0,
                        where="tsallis_kl_mdvi")
  q0 = _check_sa("q0", q0, S, A, mdp.dtype)
  if pi0 is None:
    pi0 = jnp.full((S, A), 1.0 / A, mdp.dtype)
  elif not V.is_traced(pi0):
    pi0 = jnp.asarray(V.check_policy(pi0, S, A, name="pi0"), mdp.dtype)
  hard = (not V.is_traced(tau_prime)) and tau_prime == 0.0
  q_ref = _reference(mdp, reference, tau_prime, q, hard)
  return _tsallis_kl_mdvi(mdp, lam, tau_prime, q0, pi0, q_ref, key, qm1=q - 1.0, is_one=q == 1.0,
                          num_iters=num_iters, noise=noise, record_eps=bool(record_eps),
                          record_iterates=bool(record_iterates))


@functools.partial(jax.jit, static_argnames=("is_one", "num_iters", "noise", "record_eps", "record_iterates"))
def _tsallis_kl_mdvi(mdp, lam, tau_prime, q0, pi0, q_ref, key, qm1, *, is_one, num_iters, noise, record_eps,
                     record_iterates):
  dt = mdp.dtype
  S, A = mdp.num_states, mdp.num_actions
  lam = jnp.asarray(lam, dt)
  tau_prime = jnp.asarray(tau_prime, dt)
  qm1 = jnp.asarray(qm1, dt)
  ref_l1 = jnp.sum(jnp.abs(q_ref))
  keys = None if noise is None else jax.random.split(key, num_iters)

  def step(carry, k):
    q_prev, log_pi_prev, eps_sum = carry
    log_pi = _tkl_log_greedy(q_prev, log_pi_prev, lam, tau_prime, qm1, is_one)   # ln π_k
    pi = jnp.exp(log_pi)
    div = _divergence_log(log_pi, log_pi_prev, qm1, is_one)
    ent = _entropy_log(log_pi, qm1, is_one)
    v = ops.policy_average(pi, q_prev) - jnp.where(lam > 0, lam * div, 0.0) + tau_prime * ent
    eps = jnp.zeros((S, A), dt) if noise is None else jnp.asarray(noise(keys[k], k, mdp, v), dt)
    q = mdp.r + mdp.gamma * ops.expect(mdp.P, ops.materialize(mdp.P, v)) + eps
    eps_sum = eps_sum + eps
    gap = jnp.abs(q_ref - _evaluate_with_penalty(mdp, pi, -tau_prime * ent))
    out = dict(
        err_sup=jnp.max(gap), err_l1=metrics.relative_l1(jnp.sum(gap), ref_l1), q_sup=jnp.max(jnp.abs(q)),
        residual=jnp.max(jnp.abs(q - q_prev)), eps_sup=jnp.max(jnp.abs(eps)),
        avg_eps_sup=jnp.max(jnp.abs(eps_sum)) / (k + 1).astype(dt),
        support_size=jnp.mean(jnp.sum((pi > 0).astype(dt), axis=-1)),
        divergence_max=jnp.max(div), entropy_mean=jnp.mean(ent),
        policy_change=jnp.max(jnp.sum(jnp.abs(pi - jnp.exp(log_pi_prev)), axis=-1)),
        action_gap_mean=_action_gap_mean(q))
    if record_eps:
      out["eps"] = eps
    if record_iterates:
      out.update(q=q, pi=pi)
    return (q, log_pi, eps_sum), out

  init = (q0, _safe_log(pi0), jnp.zeros((S, A), dt))
  (q, log_pi, _), out = lax.scan(step, init, jnp.arange(num_iters))
  pi_next = jnp.exp(_tkl_log_greedy(q, log_pi, lam, tau_prime, qm1, is_one))
  return TsallisKLResult(q=q, pi=pi_next, q_ref=q_ref, trace=TsallisKLTrace(**out))


# -- MVI(q) -----------------------------------------------------------------------------------------------

def mvi_q(mdp: MDP, *, alpha, tau, q, num_iters: int, bonus: str = "support", clip_min: Any = None,
          noise: Noise | None = None, key: Any = None, q0: Any = None, reference: Any = None,
          reference_tau: Any = None, record_eps: bool = False, record_iterates: bool = False) -> MVIqResult:
  r"""MVI(q), Munchausen VI with Tsallis entropy (THEORY.md §4.4; paper details UNCONFIRMED).

      π_{k+1} = exp_q(q_k/τ − ψ_q(q_k/τ))   (the τΩ_q greedy step; sparsemax(q_k/τ) at q = 2),
      q_{k+1} = r + α b_{k+1} + γ P (<π_{k+1}, q_k> + τ Ω_q(π_{k+1})) + ε_{k+1},

  **Normalisation**: Ω_q carries 1/q (THEORY.md §4.1); a paper without it (S_q = qΩ_q) has temperature qτ where
  we have τ. Its MVI(q) with (α_p, τ_p) — greedy for τ_p S_q, bonus α_p τ_p ln_q π, bootstrap <π, q> + τ_p S_q —
  is this function with τ = qτ_p and α = α_p/q. The bootstrap <π, q> + τΩ_q(π) = Ω*_q(q_k) uses the same
  regularizer as the greedy step. ψ_q is exact (the sparsemax closed form at q = 2, bisection otherwise: the
  kernels of :mod:`mdptheory.qexp`); the Taylor threshold is only logged (``threshold_gap``, meaningful for q > 1).

  **Bonus variants** b_{k+1} (``bonus``), x = q_k/τ − ψ_q(q_k/τ):

  * ``"support"`` (the spec's definition): τ ln_q π_{k+1} = τx = q_k − τψ on the support and
    τ ln_q 0 = −τ/(q − 1) off it (finite for q > 1);
  * ``"gap"``: q_k − τψ everywhere (more negative off the support);
  * ``"policy_gap"``: q_k − <π_{k+1}, q_k> (the secondary source's "policy-average gap", reportedly used for
    numerical stability);
  * ``"log"``: the plain τ ln π_{k+1} (−∞ off the support for q > 1, so it needs ``clip_min``): the mismatch of
    q-Munchausen RL's sparsemax + log bonus (claim TS-8).

  With ``clip_min = l0`` the bonus base is clipped below at l0 (its upper end, 0 in M-DQN, is automatic for
  "support", "gap" and "log", which are <= 0). q = 1 is exactly M-VI(α, τ) (:func:`~mdptheory.algorithms.
  munchausen.mvi`) for "support", "gap" and "log".

  Fixed point [D]: for the "support" variant, a fixed point q with q' = q − ατ ln_q π satisfies
  π = exp_q(q'/((1 − α)τ) − ψ') (greedy at temperature (1 − α)τ) but
  q' = r + γ P (<π, q'> + (1 − qα)τ Ω_q(π)) (evaluation at temperature (1 − qα)τ, since <π, ln_q π> = −qΩ_q):
  the two temperatures agree only at q = 1 (or α = 0), so for q ≠ 1 the limit is not the optimum of one
  Tsallis-regularized problem (checked numerically in tests/test_tsallis_mvi.py). With the paper's normalisation
  (α → α/q above) the same computation gives greedy temperature (1 − α_p/q)τ and evaluation temperature
  (1 − α_p)τ: a mismatch too. The errors are nonetheless reported against q*_{τ_ref Ω_q},
  τ_ref = (1 − α)τ unless ``reference_tau`` says otherwise. "policy_gap" at q = 1 is not M-VI
  (q − <π, q> ≠ τ ln π).

  Args:
    mdp: the MDP.
    alpha: α ∈ [0, 1] (may be traced).
    tau: τ > 0 (may be traced).
    q: concrete Tsallis index q >= 1.
    num_iters: K >= 1.
    bonus: "support", "gap", "policy_gap" or "log" (see above).
    clip_min: l0 <= 0 lower clip of the bonus base (None: no clip); required for "log" when q > 1.
    noise: error model, called with v = <π_{k+1}, q_k> + τΩ_q(π_{k+1}) [S]; None for exact updates.
    key: PRNG key or int seed, required with ``noise``.
    q0: [S, A] initial q (default 0).
    reference: :class:`~mdptheory.solvers.Optimum` or q [S, A] for the errors (overrides ``reference_tau``).
    reference_tau: τ_ref >= 0 of the reference q*_{τ_ref Ω_q} and of the evaluation of π_k; default (1 − α)τ.
    record_eps: record ε_k [K, S, A].
    record_iterates: record q_k and π_k [K, S, A].

  Returns:
    :class:`MVIqResult`.

  Raises:
    ParameterError: bad α, τ, q, l0, bonus, num_iters, noise without key, "log" without clip_min for q > 1.
  """
  q = _check_q(q)
  alpha = _check_alpha(alpha)
  tau = V.check_positive("tau", tau, hint="; tau is the Tsallis temperature of MVI(q)")
  num_iters = V.check_int("num_iters", num_iters)
  if bonus not in BONUSES:
    raise ParameterError(f"bonus={bonus!r} must be one of {BONUSES}")
  use_clip = clip_min is not None
  clip_min = _check_clip_min(clip_min) if use_clip else 0.0
  if bonus == "log" and q > 1.0 and not use_clip:
    raise ParameterError("bonus='log' is -inf off the support of a sparse (q > 1) policy: pass clip_min (e.g. -1)")
  noise, key = _check_noise_key(noise, key)
  S, A = _check_mdp(mdp, "mvi_q")
  V.check_positive_in_dtype("tau", tau, mdp.dtype, hint=" (in mvi_q)")
  V.check_mdp_precision(mdp, reg_range=tau * np.log(A) if not V.is_traced(tau) else 0.0, where="mvi_q")
  q0 = _check_sa("q0", q0, S, A, mdp.dtype)
  if reference_tau is None:
    reference_tau = (1.0 - alpha) * tau
    hard = (not V.is_traced(alpha)) and alpha == 1.0
  else:
    reference_tau = V.check_positive("reference_tau", reference_tau, allow_zero=True)
    hard = (not V.is_traced(reference_tau)) and reference_tau == 0.0
  q_ref = _reference(mdp, reference, reference_tau, q, hard)
  return _mvi_q(mdp, alpha, tau, reference_tau, clip_min, q0, q_ref, key, q - 1.0, is_one=q == 1.0,
                is_two=q == 2.0, bonus=bonus, use_clip=use_clip, num_iters=num_iters, noise=noise,
                record_eps=bool(record_eps), record_iterates=bool(record_iterates))


def _tsallis_greedy_parts(Q: Array, tau, qm1, is_one: bool, is_two: bool):
  """The τΩ_q greedy step of Q [S, A], shifted by max_a Q: (π [S, A], x = Q/τ − ψ [S, A], τψ [S], ψ̂ − ψ [S]).

  q − 1 may be traced (one compilation for every q ∉ {1, 2}); ψ is exact (lse at q = 1, the sparsemax closed
  form at q = 2, bisection otherwise: the kernels of :mod:`mdptheory.qexp`); ψ̂ is the Taylor threshold.
  """
  q_max = jnp.max(Q, axis=-1)
  u = (Q - q_max[:, None]) / tau
  if is_one:
    s = jax.nn.logsumexp(u, axis=-1)
    x = u - s[:, None]
    pi = jnp.exp(x)
  else:
    s = qexp._threshold(u, qm1, is_two)          # ψ_q(u) = ψ_q(Q/τ) − max_a Q/τ
    x = u - s[:, None]
    pi = qexp._exp_q(x, qm1, is_two)
  pi = qexp._normalize(pi, x)  # (uniform on argmax x if every exp_q underflowed, a very large q)
  # The Taylor threshold is the q = 2 formula whatever q is (qexp.taylor_threshold); q = 2 only validates.
  psi_gap = qexp.taylor_threshold(u, 2.0) - s
  return pi, x, q_max + tau * s, psi_gap


@functools.partial(jax.jit, static_argnames=("is_one", "is_two", "bonus", "use_clip", "num_iters", "noise",
                                             "record_eps", "record_iterates"))
def _mvi_q(mdp, alpha, tau, reference_tau, clip_min, q0, q_ref, key, qm1, *, is_one, is_two, bonus, use_clip,
           num_iters, noise, record_eps, record_iterates):
  dt = mdp.dtype
  S, A = mdp.num_states, mdp.num_actions
  alpha = jnp.asarray(alpha, dt)
  tau = jnp.asarray(tau, dt)
  reference_tau = jnp.asarray(reference_tau, dt)
  qm1 = jnp.asarray(1.0 if is_two else qm1, dt)
  ref_l1 = jnp.sum(jnp.abs(q_ref))
  keys = None if noise is None else jax.random.split(key, num_iters)

  def step(carry, k):
    q_prev, pi_prev, _, eps_sum = carry
    pi, x, tau_psi, psi_gap = _tsallis_greedy_parts(q_prev, tau, qm1, is_one, is_two)  # π_k from q_{k−1}
    # The support of exp_q (1 + (q − 1) x > 0), not π > 0: a probability that underflows (x = −1e6 at q near 1)
    # is still on the support, where τ ln_q π = τ x is finite; −τ/(q − 1) there would be −5e11 at q = 1 + 1e-12.
    support = jnp.ones_like(pi, bool) if is_one else qm1 * x > -1.0
    # τ x = Q − τψ from the Q domain: x = Q/τ − ψ itself overflows in float32 for |Q|/τ > 3e38 (1e30 / 1e-8).
    tau_x = q_prev - tau_psi[:, None]
    tau_lnq = tau_x if is_one else jnp.where(support, tau_x, -tau / qm1)  # τ ln_q π_k (τ ln_q 0 = −τ/(q − 1))
    if bonus == "support":
      base = tau_lnq
    elif bonus == "gap":
      base = tau_x
    elif bonus == "policy_gap":
      base = q_prev - ops.policy_average(pi, q_prev)[:, None]
    else:  # "log": the natural log of the (sparse) policy
      base = tau_x if is_one else tau * _safe_log(pi)
    if use_clip:
      clip_fraction = jnp.mean((base < clip_min).astype(dt))
      base = jnp.maximum(base, clip_min)
    else:
      clip_fraction = jnp.zeros((), dt)
    ent = _entropy_log(x if is_one else _safe_log(pi), qm1, is_one)                   # Ω_q(π_k)
    v = tau_psi if is_one else ops.policy_average(pi, q_prev) + tau * ent             # τ lse(q/τ) at q = 1
    eps = jnp.zeros((S, A), dt) if noise is None else jnp.asarray(noise(keys[k], k, mdp, v), dt)
    q_new = mdp.r + alpha * base + mdp.gamma * ops.expect(mdp.P, ops.materialize(mdp.P, v)) + eps
    eps_sum = eps_sum + eps
    gap = jnp.abs(q_ref - _evaluate_with_penalty(mdp, pi, -reference_tau * ent))
    out = dict(
        err_sup=jnp.max(gap), err_l1=metrics.relative_l1(jnp.sum(gap), ref_l1), q_sup=jnp.max(jnp.abs(q_new)),
        residual=jnp.max(jnp.abs(q_new - q_prev)), eps_sup=jnp.max(jnp.abs(eps)),
        avg_eps_sup=jnp.max(jnp.abs(eps_sum)) / (k + 1).astype(dt),
        clip_fraction=clip_fraction,
        off_support_fraction=jnp.mean((~support).astype(dt)),
        support_size=jnp.mean(jnp.sum(support.astype(dt), axis=-1)),
        threshold_gap=jnp.max(jnp.abs(psi_gap)),
        entropy_mean=jnp.mean(ent),
        policy_change=jnp.max(jnp.sum(jnp.abs(pi - pi_prev), axis=-1)),
        action_gap_mean=_action_gap_mean(q_new))
    if record_eps:
      out["eps"] = eps
    if record_iterates:
      out.update(q=q_new, pi=pi)
    return (q_new, pi, tau_lnq, eps_sum), out

  # τ ln_q π_0 for the uniform π_0 (ln_q(1/A) = expm1(−(q − 1) log A)/(q − 1), −log A at q = 1).
  log_uniform = jnp.asarray(-np.log(A), dt)
  lnq0 = jnp.full((S, A), log_uniform if is_one else _ln_q_of_log(log_uniform, qm1, False), dt)
  init = (q0, jnp.full((S, A), 1.0 / A, dt), tau * lnq0, jnp.zeros((S, A), dt))
  # τ ln_q π_K is carried from the update that used π_K (τ x on the support, from the Q domain, not from π: a
  # probability below the float range keeps its finite ln_q).
  (q_last, _, tau_lnq_last, _), out = lax.scan(step, init, jnp.arange(num_iters))
  pi_next = _tsallis_greedy_parts(q_last, tau, qm1, is_one, is_two)[0]
  return MVIqResult(q=q_last, pi=pi_next, q_prime=q_last - alpha * tau_lnq_last, q_ref=q_ref,
                    trace=MVIqTrace(**out))


# -- helpers ------------------------------------------------------------------------------------------------

def _action_gap_mean(q: Array) -> Array:
  """mean_s (max_a q − second max_a q) (0 with one action)."""
  if q.shape[-1] < 2:
    return jnp.zeros((), q.dtype)
  top2 = lax.top_k(q, 2)[0]
  return jnp.mean(top2[..., 0] - top2[..., 1])


@functools.partial(jax.jit, static_argnames=("is_one", "is_two", "hard"))
def _tsallis_optimum_q(mdp: MDP, tau, qm1, *, is_one: bool, is_two: bool, hard: bool) -> Array:
  """q*_{τΩ_q} by policy iteration (q* when ``hard``); q − 1 traced unless q ∈ {1, 2}.  -> [S, A]."""
  if hard:
    return solvers.optimum(mdp).q
  if is_one:
    return _entropy_optimum_q(mdp, tau, hard=False)       # the same compiled program as M-VI's reference
  q = 2.0 if is_two else 1.0 + qm1                        # a traced q selects qexp's bisection path
  return solvers.optimum(mdp, qexp.tsallis_regularizer(q, tau)).q


def _reference(mdp, reference, tau, q, hard):
  S, A = mdp.num_states, mdp.num_actions
  if reference is not None:
    return _check_sa("reference", getattr(reference, "q", reference), S, A, mdp.dtype)
  return _tsallis_optimum_q(mdp, jnp.asarray(tau, mdp.dtype), q - 1.0, is_one=q == 1.0, is_two=q == 2.0,
                            hard=hard)


def _check_weights(lam, tau_prime):
  lam = V.check_positive("lam", lam, allow_zero=True, hint="; lam is the Tsallis-KL weight")
  tau_prime = V.check_positive("tau_prime", tau_prime, allow_zero=True,
                               hint="; tau_prime is the Tsallis-entropy weight")
  if not V.is_traced(lam) and not V.is_traced(tau_prime) and lam + tau_prime == 0:
    raise ParameterError("lam + tau_prime must be > 0 (lam = tau_prime = 0 is the hard greedy step)")
  return lam, tau_prime


def _check_noise_key(noise, key):
  if noise is None:
    return None, None
  if not callable(noise):
    raise ParameterError(f"noise={noise!r} is not an error model; pass e.g. mdptheory.noise.gaussian(0.5) or None")
  if key is None:
    raise ParameterError("a noise model needs key=... (an int seed or jax.random.key(seed))")
  return noise, V.check_key(key)


def _check_mdp(mdp, name):
  if not isinstance(mdp, MDP):
    raise ParameterError(f"{name} needs an mdptheory.MDP, got {type(mdp).__name__}; build one with MDP.create")
  return mdp.num_states, mdp.num_actions

