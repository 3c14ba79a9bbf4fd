r"""Pure metrics on values and policies: errors, divergences, entropies, gaps (THEORY.md §1.1, §2.9).

Every function is a pure ``jax.numpy`` function that works on any leading batch
shape, is jittable and vmappable, and never validates (it is called inside
``lax.scan`` loops). Conventions (THEORY.md §1.1):

* policies act on the last (action) axis: ``pi [..., A]``; per-state quantities
  reduce that axis, ``[..., A] -> [...]``;
* 0 ln 0 = 0, and KL(π‖μ) = +inf when π puts mass where μ has none;
* log-space variants (``*_log``) take log-probabilities with ``-inf`` off the
  support, as produced by ``jax.nn.log_softmax`` or
  :attr:`mdptheory.regularizers.Regularizer.log_argmax`, and are exact where
  ``exp`` of the logs would underflow.

This module is a stable, generic API shared by the algorithm modules
(:mod:`mdptheory.algorithms`); the slope of a rate is fitted by
:func:`mdptheory.plotting.fit_rate`, not here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mdptheory.operators import span, sup_norm

Array = jax.Array

__all__ = [
    "action_gap", "entropy", "entropy_log", "kl", "kl_log", "l1_distance", "l1_error_normalized",
    "relative_l1", "span", "sup_error", "sup_norm", "support_size", "weighted_sum",
]


def sup_error(x: Array, y: Array, axis=None) -> Array:
  """‖x − y‖_∞ = max |x − y| over ``axis`` (all axes by default).

  Args:
    x: array, e.g. q^τ_{π_k} [S, A].
    y: array of the same shape, e.g. the reference q*_τ [S, A].
    axis: axes to reduce (None: all).
  """
  return jnp.max(jnp.abs(x - y), axis=axis)


def l1_error_normalized(x: Array, y: Array, axis=None) -> Array:
  """Normalized ℓ1 error ‖x − y‖_1 / ‖y‖_1, with ``y`` the reference (THEORY.md §1.2 metric).

  This is the metric of *Leverage the Average* (Vieillard et al. 2020, Appx. D):
  ‖q*_τ − q^τ_{π_k}‖_1 / ‖q*_τ‖_1. It is +inf (or NaN for x = y) when y = 0.

  Args:
    x: the approximation.
    y: the reference (the denominator).
    axis: axes to reduce (None: all).
  """
  return jnp.sum(jnp.abs(x - y), axis=axis) / jnp.sum(jnp.abs(y), axis=axis)


def weighted_sum(w: Array, x: Array) -> Array:
  """Σ_i w_i x_i over the last axis with 0 · (±inf) = 0: an entry of weight 0 does not count.  [..., n] -> [...].

  E.g. KL_ρ = Σ_x ρ(x) KL_x, where a context of weight 0 may have an infinite KL (``rho @ kl`` would be NaN).
  """
  return jnp.sum(jnp.where(w != 0, w * x, 0.0), axis=-1)


def relative_l1(gap_l1: Array, ref_l1: Array) -> Array:
  """‖x − y‖_1 / ‖y‖_1 from the two norms, with 0/0 = 0 (x = y = 0) and +inf for ‖y‖_1 = 0 < ‖x − y‖_1.

  The traces' ``err_l1`` (a zero-reward MDP has q* = 0 and must not report NaN).
  """
  safe = jnp.where(ref_l1 > 0, ref_l1, 1.0)
  return jnp.where(ref_l1 > 0, gap_l1 / safe, jnp.where(gap_l1 > 0, jnp.inf, 0.0))


def kl(pi: Array, mu: Array) -> Array:
  """KL(π‖μ)(s) = Σ_a π(a|s) (ln π(a|s) − ln μ(a|s)), with 0 ln 0 = 0.  [..., A] -> [...].

  +inf when π(a|s) > 0 = μ(a|s) for some a (THEORY.md §1.1).

  Args:
    pi: [..., A] probabilities.
    mu: [..., A] probabilities (broadcast against ``pi``).
  """
  pi, mu = jnp.broadcast_arrays(pi, mu)
  pos = pi > 0
  safe_pi = jnp.where(pos, pi, 1.0)
  safe_mu = jnp.where(mu > 0, mu, 1.0)
  term = jnp.where(mu > 0, pi * (jnp.log(safe_pi) - jnp.log(safe_mu)), jnp.inf)
  # KL >= 0 for distributions; rounding can leave -1e-17, which a weight such as beta = 1e300 would magnify.
  return jnp.maximum(jnp.sum(jnp.where(pos, term, 0.0), axis=-1), 0.0)


def kl_log(log_pi: Array, log_mu: Array) -> Array:
  """KL(π‖μ) from log-probabilities (−inf off the support).  [..., A] -> [...].

  Σ_a e^{ln π} (ln π − ln μ), with terms where ln π = −inf set to 0 and +inf
  where ln π > −inf = ln μ. Exact for probabilities below the float range.

  Args:
    log_pi: [..., A] log π.
    log_mu: [..., A] log μ (broadcast against ``log_pi``).
  """
  log_pi, log_mu = jnp.broadcast_arrays(log_pi, log_mu)
  on = jnp.isfinite(log_pi)
  safe_lp = jnp.where(on, log_pi, 0.0)
  mu_on = jnp.isfinite(log_mu)
  diff = safe_lp - jnp.where(mu_on, log_mu, 0.0)
  # +inf where μ = 0 < π, even when e^{ln π} underflows to 0 (no 0 · inf = NaN).
  term = jnp.where(on, jnp.where(mu_on, jnp.exp(safe_lp) * diff, jnp.inf), 0.0)
  return jnp.maximum(jnp.sum(term, axis=-1), 0.0)  # >= 0 (see kl)


def entropy(pi: Array) -> Array:
  """Shannon entropy H(π)(s) = −Σ_a π(a|s) ln π(a|s), with 0 ln 0 = 0.  [..., A] -> [...]."""
  pos = pi > 0
  return -jnp.sum(jnp.where(pos, pi * jnp.log(jnp.where(pos, pi, 1.0)), 0.0), axis=-1)


def entropy_log(log_pi: Array) -> Array:
  """H(π) = −Σ_a e^{ln π} ln π from log-probabilities (−inf off the support).  [..., A] -> [...]."""
  on = jnp.isfinite(log_pi)
  safe = jnp.where(on, log_pi, 0.0)
  return -jnp.sum(jnp.where(on, jnp.exp(safe) * safe, 0.0), axis=-1)


def l1_distance(pi: Array, mu: Array) -> Array:
  """‖π(·|s) − μ(·|s)‖_1 = Σ_a |π(a|s) − μ(a|s)| per state (in [0, 2]).  [..., A] -> [...]."""
  return jnp.sum(jnp.abs(pi - mu), axis=-1)


def action_gap(q: Array) -> Array:
  """Action gap max_a q(s, a) − second-largest q(s, ·) per state.  [..., A] -> [...].

  Ties give 0 (the two largest entries are counted separately). With a single
  action the gap is +inf (no competing action). Bellemare et al. (2016),
  "Increasing the action gap"; THEORY.md §2.9, §3.5.
  """
  if q.shape[-1] < 2:
    return jnp.full(q.shape[:-1], jnp.inf, q.dtype)
  # max minus the max over the other actions. Not lax.top_k: large vmapped scans that used it hung
  # intermittently in XLA's CPU runtime (jax 0.10.2, all threads idle); argmax/max did not.
  first = jnp.argmax(q, axis=-1)
  others = jnp.where(jax.nn.one_hot(first, q.shape[-1], dtype=bool), -jnp.inf, q)
  return jnp.max(q, axis=-1) - jnp.max(others, axis=-1)


def support_size(pi: Array, *, atol=0.0) -> Array:
  """Number of actions with π(a|s) > ``atol`` per state.  [..., A] -> [...] int32.

  For log-probabilities pass ``jnp.exp(log_pi)`` (exp(−inf) = 0), or compare
  ``log_pi > log(atol)`` directly.
  """
  return jnp.sum(pi > atol, axis=-1, dtype=jnp.int32)
