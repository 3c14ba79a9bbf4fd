r"""Regularizers as bundles (Ω, Ω*, ∇Ω*) acting on the last (action) axis.

For a convex penalty Ω on the simplex, the regularized greedy step and the
smoothed maximum are its convex conjugate and the conjugate's gradient
(Geist, Scherrer & Pietquin 2019, "A Theory of Regularized MDPs", §2):

    Ω*(q)  = max_π <π, q> − Ω(π)          (the smoothed max, a regularized "V")
    ∇Ω*(q) = argmax_π <π, q> − Ω(π)       (the regularized greedy policy)

Every function maps ``[..., A]`` arrays (one row per state, or a batch of
rows) to ``[...]`` (Ω, Ω*) or ``[..., A]`` (∇Ω*, log ∇Ω*). References such as
``pi_ref`` broadcast against the leading axes, so ``kl(pi_ref=[S, A])``
regularizes each state toward its own row.

All computations are in log space: τ log π is computed as q − τ lse(q/τ), never
as τ·log(softmax(q/τ)), so nothing over- or underflows for τ down to 1e-6 in
float32 or float64. Temperatures may be traced arrays (``jax.vmap`` over τ):
build the bundle inside the function you transform; never pass a bundle as a
traced argument to ``jit``.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import xlogy

from mdptheory import validate as V

Array = jax.Array


class Regularizer(NamedTuple):
  """Ω on the simplex with its convex conjugate and the conjugate's gradient."""
  omega: Callable[[Array], Array]       # [..., A] -> [...]     Ω(π), the convex penalty
  smax: Callable[[Array], Array]        # [..., A] -> [...]     Ω*(q) = max_π <π, q> − Ω(π)
  argmax: Callable[[Array], Array]      # [..., A] -> [..., A]  ∇Ω*(q), the regularized greedy policy
  log_argmax: Callable[[Array], Array]  # [..., A] -> [..., A]  log ∇Ω*(q), −inf off the support
  name: str = "regularizer"
  # (name, concrete parameters) when the bundle is determined by them, else None. Two bundles with the same
  # spec are the same function, so jitted solvers that take the bundle as a static argument reuse one program.
  spec: tuple | None = None


def static_key(reg: Regularizer) -> tuple:
  """A hashable key that identifies the bundle: its spec, or the function objects themselves."""
  return ("spec",) + reg.spec if reg.spec is not None else ("fns",) + tuple(reg[:5])


def _concrete(*xs) -> bool:
  return not any(V.is_traced(x) for x in xs) and all(np.ndim(x) == 0 for x in xs)


def none() -> Regularizer:
  """No regularization: Ω = 0 on the simplex, Ω* = max, ∇Ω* = one-hot argmax (first maximizer)."""
  def argmax(q):
    return jax.nn.one_hot(jnp.argmax(q, axis=-1), q.shape[-1], dtype=q.dtype)

  def log_argmax(q):
    return jnp.where(argmax(q) > 0, 0.0, -jnp.inf).astype(q.dtype)

  return Regularizer(
      omega=lambda pi: jnp.zeros(pi.shape[:-1], pi.dtype),
      smax=lambda q: jnp.max(q, axis=-1),
      argmax=argmax,
      log_argmax=log_argmax,
      name="none",
      spec=("none",))


def entropy(tau) -> Regularizer:
  """Negative Shannon entropy Ω(π) = τ Σ_a π log π; Ω*(q) = τ lse(q/τ); ∇Ω* = softmax(q/τ)."""
  tau = V.check_positive("tau", tau, hint="; tau is the entropy temperature (tau -> 0 is the unregularized max, "
                                           "use regularizers.none() for tau = 0)")
  # Shift by max_a q before dividing by τ: lse(q/τ) of the raw q rounds q/τ with an absolute error eps·|q|/τ,
  # which XLA may round differently in the max and in the exponent (exp(1e281) = inf for |q|/τ ~ 1e297).
  # τ in q's precision (_temperature), so that a traced float64 τ (a vmapped sweep) on a float32 problem keeps
  # float32 and a τ below the dtype's range acts as the limit τ -> 0.
  def smax(q):
    m, t = _max_shift(q), _temperature("tau", tau, q)
    return m[..., 0] + t * jax.nn.logsumexp((q - m) / t, axis=-1)

  return Regularizer(
      omega=lambda pi: _like(jnp.asarray(tau), pi) * jnp.sum(xlogy(pi, pi), axis=-1),
      smax=smax,
      argmax=lambda q: jax.nn.softmax((q - _max_shift(q)) / _temperature("tau", tau, q), axis=-1),
      log_argmax=lambda q: jax.nn.log_softmax((q - _max_shift(q)) / _temperature("tau", tau, q), axis=-1),
      name="entropy",
      spec=("entropy", float(tau)) if _concrete(tau) else None)


def kl(pi_ref, lam) -> Regularizer:
  """KL to a fixed reference: Ω(π) = λ KL(π ‖ π_ref).

  Ω*(q) = λ log Σ_a π_ref(a) exp(q(a)/λ) and ∇Ω*(q) ∝ π_ref exp(q/λ), with
  support inside supp π_ref (THEORY.md §8, "KL to fixed prior").

  Args:
    pi_ref: [..., A] reference policy; rows on the simplex (zeros allowed).
    lam: KL weight λ > 0.
  Raises:
    ParameterError: λ <= 0, NaN or inf.
    InvalidMDPError, NonFiniteError, ShapeError: a concrete ``pi_ref`` whose rows are not on the simplex.
  """
  lam = V.check_positive("lam", lam, hint="; lam is the KL weight (use regularizers.none() for lam = 0)")
  _check_reference("pi_ref", pi_ref)
  log_ref = _safe_log(pi_ref)
  return _tilted(log_ref, lam, beta=1.0, name="kl")


def kl_entropy(lam, tau, pi_prev) -> Regularizer:
  r"""The MD-MPI(λ, τ) greedy step: Ω(π) = λ KL(π ‖ π_prev) − τ H(π) (THEORY.md §2.1–2.2).

  With β = λ / (λ + τ):
    ∇Ω*(q) ∝ π_prev^β exp(q / (λ + τ)),   Ω*(q) = (λ + τ) log Σ_a π_prev(a)^β exp(q(a) / (λ + τ)).

  Args:
    lam: KL weight λ >= 0.
    tau: entropy weight τ >= 0, with λ + τ > 0.
    pi_prev: [..., A] the previous policy π_k (the KL anchor); a concrete one must have rows on the simplex.
  """
  lam = V.check_positive("lam", lam, allow_zero=True)
  tau = V.check_positive("tau", tau, allow_zero=True)
  if not V.is_traced(lam) and not V.is_traced(tau) and lam + tau == 0:
    raise V.ParameterError("lam + tau must be > 0 for kl_entropy; use regularizers.none() for the hard greedy step")
  _check_reference("pi_prev", pi_prev)
  temp = lam + tau
  beta = lam / temp
  log_prev = _safe_log(pi_prev)
  # Ω(π) = λ KL(π‖π_prev) − τ H(π) = (λ + τ) Σ π log π − (λ + τ) Σ π · β log π_prev.
  return _tilted(log_prev, temp, beta=beta, name="kl_entropy")


def tsallis(q, tau) -> Regularizer:
  """Tsallis entropy regularizer τ Ω_q (THEORY.md §4.1–4.2); q = 1 is the Shannon case.

  See :func:`mdptheory.qexp.tsallis_regularizer` for the conventions.
  """
  from mdptheory.qexp import tsallis_regularizer
  return tsallis_regularizer(q, tau)


# -- helpers ------------------------------------------------------------------

def _check_reference(name: str, p) -> None:
  """A concrete reference policy [..., A] must have finite, non-negative rows summing to 1; tracers pass."""
  if not V.is_traced(p):
    V.check_simplex(name, p)


def _max_shift(q, support=None) -> Array:
  """max_a q(a) over ``support`` (all actions by default) as a stop-gradient constant, 0 where not finite.  [..., 1].

  Subtracting it before dividing by a temperature keeps every exponent <= 0 and computed from an exact
  difference, so a soft max of |q|/τ up to the float range neither overflows nor turns into inf − inf.
  """
  q = jnp.asarray(q)
  m = jnp.max(q if support is None else jnp.where(support, q, -jnp.inf), axis=-1, keepdims=True)
  return jax.lax.stop_gradient(jnp.where(jnp.isfinite(m), m, jnp.zeros_like(m)))


def _temperature(name: str, temp, q) -> Array:
  """The temperature in q's floating dtype, inside that dtype's normal range.

  A concrete temperature below the smallest normal number (1e-300 in float32 would round to 0, and 0/0 is
  NaN) is raised to it: the soft max is then the hard max up to that number times log A, the limit
  temp -> 0. One so large that temp · log A overflows the dtype is refused (ParameterError, at trace time).
  """
  dt = jnp.result_type(q)
  if not jnp.issubdtype(dt, jnp.floating):
    return temp
  fi = jnp.finfo(dt)
  if _concrete(temp):
    t = float(temp)
    if t * max(1.0, float(np.log(max(q.shape[-1], 1)))) > float(fi.max) / 16:
      raise V.ParameterError(f"{name} temperature {t:g} times log A overflows {dt} (largest {float(fi.max):.3g}); "
                             f"use a smaller temperature or float64")
    return jnp.asarray(max(t, float(fi.tiny)), dt)
  return jnp.maximum(jnp.asarray(temp).astype(dt), fi.tiny)


def _like(x, ref) -> Array:
  """``x`` cast to the floating dtype of ``ref`` (unchanged when ``ref`` is not floating)."""
  dt = jnp.result_type(ref)
  return x.astype(dt) if jnp.issubdtype(dt, jnp.floating) else x


def _safe_log(p) -> Array:
  """log p with log 0 = −inf, without a divide warning."""
  p = jnp.asarray(p)
  return jnp.where(p > 0, jnp.log(jnp.where(p > 0, p, 1.0)), -jnp.inf)


def _xlogy_ref(pi, log_ref):
  """π log π_ref with 0 · log 0 = 0 (and π > 0, π_ref = 0 gives −inf)."""
  return jnp.where(pi > 0, pi * log_ref, 0.0)


def _tilted(log_ref, temp, *, beta, name) -> Regularizer:
  """The bundle with greedy policy ∝ exp(β log π_ref + q / temp).

  Ω(π) = temp Σ π log π − temp Σ π β log π_ref, whose conjugate is
  temp · lse(β log π_ref + q / temp).
  """
  finite = jnp.isfinite(log_ref)
  # β log π_ref, with β · log 0 = −inf for β > 0 and 0 for β = 0 (no 0 · inf = NaN).
  prior = jnp.where(finite, beta * jnp.where(finite, log_ref, 0.0),
                    jnp.where(jnp.asarray(beta) > 0, -jnp.inf, 0.0))

  def shift(q):
    return _max_shift(q, jnp.isfinite(prior))  # the max over the support of the prior

  def logits(q, m):
    # The prior and temperature in q's precision: results follow q's dtype (a float64 π_ref or a traced
    # float64 λ on a float32 problem).
    # −inf off the prior's support even where (q − m)/temp overflows to +inf (no −inf + inf = NaN).
    p = _like(prior, q)
    return jnp.where(jnp.isfinite(p), p + (q - m) / _temperature(name, temp, q), -jnp.inf)

  def smax(q):
    m = shift(q)
    return m[..., 0] + _temperature(name, temp, q) * jax.nn.logsumexp(logits(q, m), axis=-1)

  def log_argmax(q):
    return jax.nn.log_softmax(logits(q, shift(q)), axis=-1)

  def omega(pi):
    t = _like(jnp.asarray(temp), pi)
    return t * jnp.sum(xlogy(pi, pi), axis=-1) - t * jnp.sum(_xlogy_ref(pi, _like(prior, pi)), axis=-1)

  return Regularizer(omega=omega, smax=smax, argmax=lambda q: jnp.exp(log_argmax(q)),
                     log_argmax=log_argmax, name=name)
