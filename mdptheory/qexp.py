r"""Tsallis entropy regularization, "2 − q dual" convention (THEORY.md §4.1–4.2).

Conventions, for a Tsallis index q >= 1 (q = 1 is the Shannon / natural-log case):

    ln_q x     = (x^(q−1) − 1) / (q − 1),          exp_q x = [1 + (q − 1) x]_+^(1/(q−1)),
    Ω_q(π)     = (1 − Σ_a π_a^q) / (q (q − 1)) = −<π, ln_q π> / q      (Shannon entropy at q = 1),
    D̃_q(π‖μ)  = (Σ_a π_a^q μ_a^(1−q) − 1) / (q (q − 1)) = <π, ln_q(π/μ)> / q   (KL at q = 1).

The original Tsallis convention (x^(1−q) − 1)/(1 − q) is ln_{2−q} here. The 1/q normalisation makes the greedy
policy exactly exp_q of a shifted score (THEORY.md §4.2):

    π* = argmax_π <π, Q> + τ Ω_q(π) = exp_q(z − ψ),   z = Q/τ,   Σ_a exp_q(z_a − ψ) = 1,

with support {a : z_a − ψ > −1/(q − 1)} (sparse for q > 1) and ψ ∈ [z_max, z_max + (1 − A^(1−q))/(q − 1)].
Papers that regularize with S_q = q Ω_q (no 1/q) have temperature qτ where we have τ.

Value. On the support π^(q−1) = 1 + (q − 1)(z − ψ), so Σ π^q = 1 + (q − 1)(<π, z> − ψ) and

    Ω*(Q) = <π*, Q> + τ Ω_q(π*) = τ [ψ + (Σ_a exp_q(z_a − ψ)^q − 1) / q].

The right-hand side is the Lagrangian of the simplex constraint at its multiplier ψ: its partial derivative in ψ
is 1 − Σ_a π_a = 0 and in z_a it is exp_q(z_a − ψ) = π_a. Autodiff of this formula, with dψ/dz given by the
implicit function theorem, therefore reproduces ∇Ω* = π* (the envelope theorem) without being told to; the
tests check it.

Numerics.
* Everything is shifted by max_a Q_a before dividing by τ (u = (Q − Q_max)/τ <= 0, s = ψ − z_max >= 0), so nothing
  overflows for τ down to 1e-6 in float32 or float64; Ω* = Q_max + τ [s + (Σ exp_q(u − s)^q − 1)/q].
* exp_q, ln_q and Ω_q are evaluated as exp(log1p((q−1)x)/(q−1)), expm1((q−1) log x)/(q−1) and
  −Σ π expm1((q−1) log π) / (q(q−1)). These have no 1 − 1 cancellation divided by (q − 1), so they stay accurate for
  q = 1 + 1e-6 (and below) and tend to exp, log and the Shannon entropy; the bisection bracket is written with expm1
  for the same reason. q == 1 exactly dispatches to the Shannon code.
* ψ: q = 2 uses the sort-based sparsemax closed form (Martins & Astudillo 2016); other q > 1 use bisection on s in
  the bracket above with a fixed number of steps (mantissa bits + 10, under ``lax.fori_loop``: jit/vmap friendly),
  then two Newton steps safeguarded by the final bracket, so Σ π = 1 to a few ulps.
* Conditioning for q > 2: exp_q rises from 0 like (1 + (q − 1)x)^(1/(q−1)) at the support boundary, so a rounding
  error ε in x = z − ψ moves π by up to ε^(1/(q−1)) for an action just inside the support (about 1e-2 in float32,
  1e-4 in float64 at q = 5, in the worst case). No float ψ then makes Σ π exactly 1; the greedy policy is divided
  by its sum (a no-op in exact arithmetic) so that rows are always on the simplex.
* dψ/dz_b = exp_q'(z_b − ψ) / Σ_a exp_q'(z_a − ψ) with exp_q' = exp_q^(2−q) (implicit function theorem), a
  ``jax.custom_jvp``; the weights are formed in log space so that q > 2 (where exp_q' blows up at the support
  boundary) gives no inf/inf.

A concrete q is validated and picks the code path (q = 1 Shannon, q = 2 sort-based); the jitted kernels take
q − 1, computed in Python float64 (so that q = 1 + 1e-6 is not rounded to float32 first), as a traced argument,
so a sweep over q compiles once per shape. The regularizer bundle also accepts a traced q > 1 (``jax.vmap`` over
q), which runs the bisection path; derivatives with respect to q are not defined (the threshold's custom JVP
treats q as a constant). τ may be a traced array (``jax.vmap`` over τ): build the bundle inside the function you
transform.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from mdptheory import regularizers
from mdptheory import validate as V
from mdptheory.errors import ParameterError, ShapeError
from mdptheory.regularizers import Regularizer

Array = jax.Array

# Newton steps after the bisection (each one is safeguarded by the final bisection bracket).
_NEWTON_STEPS = 2


# -- validation ------------------------------------------------------------------

def _check_q(q: Any) -> float:
  """The Tsallis index as a Python float >= 1; refuses traced, bool, str, NaN, inf and q < 1."""
  if V.is_traced(q):
    raise ParameterError(
        "q is a traced JAX value; the Tsallis index selects the code path (closed form at q = 2, bisection "
        "otherwise) and must be a concrete Python/numpy number: loop over q in Python (tau may be vmapped)")
  q = V.check_real_scalar("q", q)
  if math.isinf(q):
    raise ParameterError(f"q={q} is infinite; pass a finite Tsallis index q >= 1 (e.g. q=2 for sparsemax)")
  if q <= 0:
    raise ParameterError(f"q={q} must be > 0 (the Tsallis index); this module implements q >= 1, "
                         f"e.g. q=1 (Shannon) or q=2 (sparsemax)")
  if q < 1:
    raise ParameterError(f"q={q}: q in (0, 1) is not supported here (the Tsallis index is mathematically allowed "
                         f"there, but only q >= 1 is implemented: q=1 is Shannon, q=2 is sparsemax)")
  return q


def _as_float(name: str, x: Any) -> Array:
  """``x`` as a floating JAX array of rank >= 1 (the last axis is the action axis)."""
  x = jnp.asarray(x)
  if x.ndim < 1:
    raise ShapeError(f"{name} must have an action axis (shape [..., A]), got a scalar")
  if not jnp.issubdtype(x.dtype, jnp.floating):
    x = x.astype(jnp.result_type(float))
  return x


# -- q-logarithm and q-exponential (kernels take qm1 = q − 1 > 0, possibly traced) ----------------

def _ln_q_of_log(log_x: Array, qm1) -> Array:
  """ln_q evaluated from log x: expm1((q − 1) log x)/(q − 1), for q > 1."""
  return jnp.expm1(qm1 * log_x) / qm1


def _log_exp_q(x: Array, qm1) -> Array:
  """log exp_q(x) = log1p((q − 1) x)/(q − 1) where 1 + (q − 1) x > 0, else −inf; q > 1.  [...] -> [...]."""
  b = qm1 * x
  inside = b > -1.0
  # Double where: no log1p(<= −1) (NaN/−inf) in the primal or its derivative off the support.
  return jnp.where(inside, jnp.log1p(jnp.where(inside, b, 0.0)) / qm1, -jnp.inf)


def _exp_q(x: Array, qm1, is_two: bool) -> Array:
  """exp_q(x) = [1 + (q − 1) x]_+^(1/(q−1)) for q > 1; exactly [1 + x]_+ when ``is_two`` (q = 2)."""
  if is_two:
    return jnp.where(x > -1.0, 1.0 + x, 0.0)
  return jnp.exp(_log_exp_q(x, qm1))


def _floating(x: Any) -> Array:
  x = jnp.asarray(x)
  return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.result_type(float))


def log_q(x: Array, q: float) -> Array:
  """Tsallis q-logarithm ln_q x = (x^(q−1) − 1)/(q − 1), elementwise (THEORY.md §4.1).

  Evaluated as expm1((q − 1) log x)/(q − 1), accurate as q → 1 (where it tends to log x);
  ln_q 0 = −1/(q − 1) for q > 1.

  Args:
    x: [...] non-negative values.
    q: concrete Tsallis index q >= 1 (q = 1 is the natural log).

  Returns:
    [...] ln_q x.
  """
  q = _check_q(q)
  log_x = jnp.log(_floating(x))
  return log_x if q == 1.0 else _ln_q_of_log(log_x, q - 1.0)


def exp_q(x: Array, q: float) -> Array:
  """Tsallis q-exponential exp_q x = [1 + (q − 1) x]_+^(1/(q−1)), elementwise (THEORY.md §4.1).

  The inverse of ln_q on x > −1/(q − 1); 0 below. Evaluated as exp(log1p((q − 1) x)/(q − 1)), which tends to
  exp x as q → 1.

  Args:
    x: [...] real values.
    q: concrete Tsallis index q >= 1 (q = 1 is exp).

  Returns:
    [...] exp_q x >= 0.
  """
  q = _check_q(q)
  x = _floating(x)
  return jnp.exp(x) if q == 1.0 else _exp_q(x, q - 1.0, q == 2.0)


# -- entropy and divergence ----------------------------------------------------------

def tsallis_entropy(pi: Array, q: float) -> Array:
  """Ω_q(π) = (1 − Σ_a π_a^q)/(q(q − 1)) = −<π, ln_q π>/q;  [..., A] -> [...] (THEORY.md §4.1).

  Computed as −Σ_a π_a expm1((q − 1) log π_a)/(q(q − 1)) with 0 ln_q 0 = 0, so it is accurate near q = 1,
  where it tends to the Shannon entropy −Σ π log π (returned exactly at q = 1). Concave; 0 at a vertex,
  maximal at the uniform policy: Ω_q(uniform) = (1 − A^(1−q))/(q(q − 1)).

  Args:
    pi: [..., A] policies (rows on the simplex).
    q: concrete Tsallis index q >= 1.

  Returns:
    [...] Ω_q(π).
  """
  q = _check_q(q)
  pi = _as_float("pi", pi)
  pos = pi > 0
  log_pi = jnp.log(jnp.where(pos, pi, 1.0))
  ln_q_pi = log_pi if q == 1.0 else _ln_q_of_log(log_pi, q - 1.0)
  return -jnp.sum(jnp.where(pos, pi * ln_q_pi, 0.0), axis=-1) / q


def _tsallis_entropy_qm1(pi: Array, qm1) -> Array:
  """Ω_q(π) for q = 1 + qm1 > 1 with a possibly traced qm1 (the kernel of :func:`tsallis_entropy`)."""
  pi = _as_float("pi", pi)
  pos = pi > 0
  log_pi = jnp.log(jnp.where(pos, pi, 1.0))
  return -jnp.sum(jnp.where(pos, pi * _ln_q_of_log(log_pi, qm1), 0.0), axis=-1) / (1.0 + qm1)


def tsallis_kl(pi: Array, mu: Array, q: float) -> Array:
  """D̃_q(π‖μ) = (Σ_a π_a^q μ_a^(1−q) − 1)/(q(q − 1)) = <π, ln_q(π/μ)>/q;  [..., A] -> [...] (THEORY.md §4.1).

  Computed as Σ_a π_a expm1((q − 1) log(π_a/μ_a))/(q(q − 1)) with 0 · ln_q(0/μ) = 0 and +inf where π_a > 0 = μ_a;
  the KL divergence at q = 1. For q = 2 it is χ²(π‖μ)/2. ``pi`` and ``mu`` broadcast against each other.

  Args:
    pi: [..., A] policies.
    mu: [..., A] reference policies.
    q: concrete Tsallis index q >= 1.

  Returns:
    [...] D̃_q(π‖μ) >= 0 (for rows on the simplex).
  """
  q = _check_q(q)
  pi, mu = jnp.broadcast_arrays(_as_float("pi", pi), _as_float("mu", mu))
  pos = pi > 0
  log_ratio = jnp.log(jnp.where(pos, pi, 1.0)) - jnp.log(jnp.where(pos, mu, 1.0))
  ln_q_ratio = log_ratio if q == 1.0 else _ln_q_of_log(log_ratio, q - 1.0)
  return jnp.sum(jnp.where(pos, pi * ln_q_ratio, 0.0), axis=-1) / q


# -- threshold ψ_q -----------------------------------------------------------------------

def _sparsemax_shifted_threshold(u: Array) -> Array:
  """ψ_2(u) = 1 + θ for sparsemax [u − θ]_+ (Martins & Astudillo 2016, Alg. 1).  [..., A] -> [...].

  With u sorted decreasingly, K = max{k : 1 + k u_(k) > Σ_{j<=k} u_(j)} and θ = (Σ_{j<=K} u_(j) − 1)/K.
  """
  num_actions = u.shape[-1]
  u_sorted = -jnp.sort(-u, axis=-1)
  cumsum = jnp.cumsum(u_sorted, axis=-1)
  k = jnp.arange(1, num_actions + 1, dtype=u.dtype)
  size = jnp.sum(1.0 + k * u_sorted > cumsum, axis=-1)  # the condition holds on a prefix; k = 1 always
  total = jnp.take_along_axis(cumsum, (size - 1)[..., None], axis=-1)[..., 0]
  return 1.0 + (total - 1.0) / size.astype(u.dtype)


def _num_bisections(dtype) -> int:
  # The bracket is at most max(log A, 1/(q−1)) wide; mantissa bits + 10 halvings reach its ulp.
  return int(np.finfo(dtype).nmant) + 10


def _bisection_shifted_threshold(u: Array, qm1) -> Array:
  """s = ψ_q(u) for u with max_a u_a = 0, q > 1: the root of Σ_a exp_q(u_a − s) = 1.  [..., A] -> [...].

  Bisection on s ∈ [0, (1 − A^(1−q))/(q − 1)] (THEORY.md §4.2; at the ends the sum is >= 1, from the maximizer,
  and <= A exp_q(−s_hi) = 1), then safeguarded Newton steps with
  −d/ds Σ_a exp_q(u_a − s) = Σ_{a∈K} exp_q(u_a − s)^(2−q).
  """
  num_actions = u.shape[-1]
  # (1 − A^(1−q))/(q − 1) without cancellation as q → 1 (it tends to log A).
  s_hi = -jnp.expm1(-qm1 * math.log(num_actions)) / qm1

  def excess(s):
    return jnp.sum(_exp_q(u - s[..., None], qm1, False), axis=-1) - 1.0  # decreasing in s

  def bisect(_, bracket):
    lo, hi = bracket
    mid = 0.5 * (lo + hi)
    above = excess(mid) > 0  # the root is right of mid
    return jnp.where(above, mid, lo), jnp.where(above, hi, mid)

  lo = jnp.zeros(u.shape[:-1], u.dtype)
  hi = jnp.broadcast_to(s_hi, u.shape[:-1]).astype(u.dtype)
  lo, hi = lax.fori_loop(0, _num_bisections(u.dtype), bisect, (lo, hi))
  s = 0.5 * (lo + hi)
  for _ in range(_NEWTON_STEPS):
    log_pi = _log_exp_q(u - s[..., None], qm1)
    f = jnp.sum(jnp.exp(log_pi), axis=-1) - 1.0
    on_support = jnp.isfinite(log_pi)
    slope = jnp.sum(jnp.where(on_support, jnp.exp((1.0 - qm1) * jnp.where(on_support, log_pi, 0.0)), 0.0),
                    axis=-1)
    # slope >= exp_q(−s)^(2−q) > 0 (the maximizer is always on the support); an overflowed slope gives step 0.
    s = jnp.clip(s + f / slope, lo, hi)
  return s


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _threshold(z: Array, qm1, is_two: bool) -> Array:
  """ψ_q(z) for q = 1 + qm1 > 1, differentiable in z by the implicit function theorem.  [..., A] -> [...].

  q is treated as a constant: its tangent is ignored (derivatives in q are not supported).
  """
  z_max = jnp.max(z, axis=-1)
  u = z - z_max[..., None]
  s = _sparsemax_shifted_threshold(u) if is_two else _bisection_shifted_threshold(u, qm1)
  return z_max + s


@_threshold.defjvp
def _threshold_jvp(is_two, primals, tangents):
  """dψ = Σ_b w_b dz_b, w_b = exp_q'(z_b − ψ)/Σ_a exp_q'(z_a − ψ), exp_q' = exp_q^(2−q) (zero off the support)."""
  z, qm1 = primals
  dz, _ = tangents
  psi = _threshold(z, qm1, is_two)
  log_pi = _log_exp_q(z - psi[..., None], qm1)
  on_support = jnp.isfinite(log_pi)
  # log w_b = (2 − q) log π_b: softmax normalizes in log space (π^(2−q) overflows near the boundary when q > 2).
  log_w = jnp.where(on_support, (1.0 - qm1) * jnp.where(on_support, log_pi, 0.0), -jnp.inf)
  w = jax.nn.softmax(log_w, axis=-1)
  return psi, jnp.sum(w * dz, axis=-1)


_threshold_jit = jax.jit(_threshold, static_argnums=2)


def _normalized_exp_q(x: Array, qm1, is_two: bool) -> Array:
  """The greedy policy exp_q(x)/Σ_a exp_q(x_a) for x = z − ψ;  [..., A] -> [..., A].

  Σ_a exp_q(x_a) = 1 up to rounding, so the division changes nothing in exact arithmetic; it keeps rows on the
  simplex when q > 2 makes the normalisation ill-conditioned (see the module docstring).
  """
  return _normalize(_exp_q(x, qm1, is_two), x)


def _normalize(pi: Array, x: Array) -> Array:
  """``pi`` divided by its row sums; a row that underflowed to all zeros becomes uniform on argmax x.

  For a large q, 1 + (q − 1)(x − ψ) at the threshold can round to 0 for every action (ties at q = 1000:
  π = A^(−1) needs a base of A^(1−q), below the float range), so every exp_q underflows. The mass then sits
  on the largest x, which are the tied maximizers: the limit is uniform on them.
  """
  total = jnp.sum(pi, axis=-1, keepdims=True)
  top = (x >= jnp.max(x, axis=-1, keepdims=True)).astype(pi.dtype)
  return jnp.where(total > 0, pi / jnp.where(total > 0, total, 1.0), top / jnp.sum(top, axis=-1, keepdims=True))


def threshold(z: Array, q: float) -> Array:
  r"""The Tsallis threshold ψ_q(z) solving Σ_a exp_q(z_a − ψ) = 1;  [..., A] -> [...] (THEORY.md §4.2).

  For z = Q/τ the greedy policy is exp_q(z − ψ). Exact: q = 1 gives lse(z); q = 2 the sparsemax closed form
  ψ = 1 + θ (Martins & Astudillo 2016); other q > 1 bisection in ψ − z_max ∈ [0, (1 − A^(1−q))/(q − 1)] to
  float precision, then Newton polish. Differentiable in z (jvp/grad/vmap/jit) by the implicit function theorem:

      ∂ψ/∂z_b = exp_q'(z_b − ψ) / Σ_a exp_q'(z_a − ψ),   exp_q' = exp_q^(2−q),

  which is 1/|K| on the support K at q = 2 and softmax(z) at q = 1.

  Args:
    z: [..., A] scores Q/τ.
    q: concrete Tsallis index q >= 1.

  Returns:
    [...] ψ_q(z), with z_max <= ψ <= z_max + (1 − A^(1−q))/(q − 1).
  """
  q = _check_q(q)
  z = _as_float("z", z)
  if q == 1.0:
    return jax.nn.logsumexp(z, axis=-1)
  return _threshold_jit(z, q - 1.0, q == 2.0)


def taylor_threshold(z: Array, q: float) -> Array:
  r"""First-order (Taylor) approximation of ψ_q: ψ̂ = 1 + (Σ_{a∈K} z_a − 1)/|K|;  [..., A] -> [...].

  K is the q = 2 (sparsemax) support, so ψ̂ is the exact q = 2 threshold whatever q is: exact at q = 2, with an
  error that grows with |q − 2| (THEORY.md §4.4, claim TS-7; the Tsallis-MVI paper's approximation). ``q`` is
  validated but does not enter the formula; measure |ψ̂ − threshold(z, q)| separately.

  Args:
    z: [..., A] scores Q/τ.
    q: concrete Tsallis index q >= 1 (the index whose threshold is being approximated).

  Returns:
    [...] ψ̂.
  """
  _check_q(q)
  return _threshold_jit(_as_float("z", z), 1.0, True)


def sparsemax(z: Array) -> Array:
  """sparsemax(z) = argmin_{π∈Δ} ‖π − z‖² = [z − θ]_+, Σ_a [z_a − θ]_+ = 1;  [..., A] -> [..., A].

  The q = 2, τ = 1 Tsallis greedy policy exp_2(z − ψ_2(z)), θ = ψ_2 − 1 (Martins & Astudillo 2016). Its Jacobian
  (through the implicit-function jvp of ψ) is diag(s) − s sᵀ/|K| with s the support indicator.
  """
  return _argmax(_as_float("z", z), 1.0, 1.0, True)


# -- the regularizer bundle -----------------------------------------------------------------
# The bundle's functions are jitted per (shape, dtype, q == 2); τ and q − 1 are traced arguments.

def _shifted_scores(Q: Array, tau, qm1, is_two: bool) -> tuple[Array, Array, Array]:
  """(Q_max, s, x): u = (Q − Q_max)/τ, s = ψ_q(u), x = u − s = Q/τ − ψ_q(Q/τ).  [..., A] -> [...], [...], [..., A]."""
  # ψ(z − c) = ψ(z) − c for every constant c, so the shift may be a stop_gradient constant.
  q_max = lax.stop_gradient(jnp.max(Q, axis=-1))
  u = (Q - q_max[..., None]) / tau
  s = _threshold(u, qm1, is_two)
  return q_max, s, u - s[..., None]


@functools.partial(jax.jit, static_argnums=3)
def _smax(Q: Array, tau, qm1, is_two: bool) -> Array:
  """Ω*(Q) = Q_max + τ [s + (Σ_a exp_q(u_a − s)^q − 1)/q].  [..., A] -> [...]."""
  q_max, s, x = _shifted_scores(Q, tau, qm1, is_two)
  q = 1.0 + qm1
  sum_pi_q = jnp.sum(jnp.exp(q * _log_exp_q(x, qm1)), axis=-1)
  return q_max + tau * (s + (sum_pi_q - 1.0) / q)


@functools.partial(jax.jit, static_argnums=3)
def _argmax(Q: Array, tau, qm1, is_two: bool) -> Array:
  """∇Ω*(Q) = exp_q(Q/τ − ψ).  [..., A] -> [..., A]."""
  return _normalized_exp_q(_shifted_scores(Q, tau, qm1, is_two)[2], qm1, is_two)


@functools.partial(jax.jit, static_argnums=3)
def _log_argmax(Q: Array, tau, qm1, is_two: bool) -> Array:
  """log ∇Ω*(Q), −inf off the support (the log of :func:`_argmax`).  [..., A] -> [..., A]."""
  x = _shifted_scores(Q, tau, qm1, is_two)[2]
  log_pi = _log_exp_q(x, qm1)
  log_total = jax.nn.logsumexp(log_pi, axis=-1, keepdims=True)
  # All −inf (every exp_q underflowed, see _normalize): the log of the uniform policy on argmax x.
  return jnp.where(jnp.isfinite(log_total), log_pi - jnp.where(jnp.isfinite(log_total), log_total, 0.0),
                   jnp.log(_normalize(jnp.zeros_like(x), x)))


def tsallis_regularizer(q: float, tau) -> Regularizer:
  r"""The Tsallis entropy bundle: Ω(π) = −τ Ω_q(π) (THEORY.md §4.1–4.2, normalisation with 1/q).

      ∇Ω*(Q) = argmax_π <π, Q> + τ Ω_q(π) = exp_q(Q/τ − ψ_q(Q/τ)),
      Ω*(Q)  = <π*, Q> + τ Ω_q(π*) = τ [ψ + (Σ_a exp_q(Q_a/τ − ψ)^q − 1)/q],

  evaluated after shifting by max_a Q_a (see the module docstring). On the support τ ln_q π* = Q − τψ; off it
  π* = 0 and ``log_argmax`` is −inf. q = 2 is sparsemax(Q/τ). q = 1 returns :func:`regularizers.entropy`.
  jax.grad of ``smax`` is ``argmax`` by the envelope theorem (not by a custom rule).

  Papers that use S_q = q Ω_q (no 1/q) correspond to temperature qτ here.

  Args:
    q: Tsallis index q >= 1 (q in (0, 1) is not supported). A concrete q selects the closed forms at q = 1
      (Shannon) and q = 2 (sparsemax); a traced q (``jax.vmap`` over q) uses bisection and must be > 1.
    tau: temperature τ > 0; may be a traced scalar (``jax.vmap`` over τ).

  Returns:
    A :class:`Regularizer` named "tsallis" (or the "entropy" bundle at q = 1).

  Raises:
    ParameterError: a concrete q that is not a real >= 1 (bool, str, NaN, <= 0, in (0, 1)), or τ not > 0.
  """
  if V.is_traced(q):
    # A sweep over q (jax.vmap): the generic bisection path, valid for every q > 1 (q = 1 exactly needs the
    # Shannon bundle and q = 2's closed form is not selected; bisection reaches the same ψ to rounding).
    qm1, is_two = q - 1.0, False
    entropy_of = lambda pi: _tsallis_entropy_qm1(pi, qm1)
  else:
    q = _check_q(q)
    if q == 1.0:
      return regularizers.entropy(tau)
    qm1, is_two = q - 1.0, q == 2.0  # q − 1 in Python float64: q = 1 + 1e-6 must not be rounded to float32 first
    entropy_of = lambda pi: tsallis_entropy(pi, q)
  tau = V.check_positive("tau", tau, hint="; tau is the Tsallis temperature (tau -> 0 is the unregularized max, "
                                           "use regularizers.none() for tau = 0)")

  # τ in Q's precision and normal range (regularizers._temperature: 1e-300 in float32 would be 0, and 0/0 NaN).
  def smax(Q):
    Q = _as_float("Q", Q)
    return _smax(Q, regularizers._temperature("tau", tau, Q), qm1, is_two)

  def argmax(Q):
    Q = _as_float("Q", Q)
    return _argmax(Q, regularizers._temperature("tau", tau, Q), qm1, is_two)

  def log_argmax(Q):
    Q = _as_float("Q", Q)
    return _log_argmax(Q, regularizers._temperature("tau", tau, Q), qm1, is_two)

  def omega(pi):
    return -tau * entropy_of(pi)

  spec = None if V.is_traced(q) or V.is_traced(tau) or np.ndim(tau) else ("tsallis", float(q), float(tau))
  return Regularizer(omega=omega, smax=smax, argmax=argmax, log_argmax=log_argmax, name="tsallis", spec=spec)
