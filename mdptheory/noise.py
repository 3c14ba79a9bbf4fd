r"""Error models for the approximate-DP error ε_k (THEORY.md §1.3).

An error model is a function ``noise(key, k, mdp, v) -> eps [S, A]``: given a
JAX key, the iteration index k (traced), the MDP and the next-state value
``v [S]`` that the exact backup r + γ P v averages, it returns the error added
to that backup, so the approximate update is

    q_{k+1} = r + γ P v_k + ε_{k+1}.

Models (all pure, jittable and vmappable; parameters may be traced arrays):

* N1 :func:`generative` — one sampled next state per (s, a): ε = γ (v(s') − (P v)(s, a)),
  a bounded martingale difference, |ε| <= γ span(v) (the paper's model, Vieillard et al. 2020 Appx. D).
* N2 :func:`gaussian` — i.i.d. N(0, σ²).
* N3 :func:`biased` — b + N(0, σ²): averaging cannot remove b.
* N4 :func:`student_t` (heavy tails, ν ∈ [1.5, 3]) and :func:`spikes` (rare large outliers).
* N5 :func:`alternating` — (−1)^k c: averages to 0 at rate 1/k.
* :func:`sequence` — a user-supplied array ε[k] (k = 0 is the error of the first update).
* :func:`zero` — exact updates.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from mdptheory import validate as V
from mdptheory.operators import expect
from mdptheory.types import MDP, SparseKernel

Array = jax.Array
Noise = Callable[[Array, Array, MDP, Array], Array]


def zero() -> Noise:
  """No error: ε_k = 0."""
  return lambda key, k, mdp, v: jnp.zeros(mdp.r.shape, mdp.r.dtype)


def _inverse_cdf(key: Array, probs: Array) -> Array:
  """One index per row of ``probs [..., n]`` by inversion: #{j : u >= F_j}, u ~ U[0, F_n) (one uniform per row).

  Scaling u by the computed total F_n keeps u < F_n, so the chosen index always has positive probability,
  even when rounding leaves F_n slightly below 1 and the last entries are zero.
  """
  cdf = jnp.cumsum(probs, axis=-1)
  u = jax.random.uniform(key, probs.shape[:-1] + (1,), probs.dtype) * cdf[..., -1:]
  return jnp.sum(u >= cdf, axis=-1).astype(jnp.int32)


def sample_next_states(key: Array, mdp: MDP) -> Array:
  """One s' ~ P(·|s, a) for every (s, a), by inverting the CDF.  -> [S, A] int32 (dense or sparse kernel)."""
  if isinstance(mdp.P, SparseKernel):
    b = _inverse_cdf(key, mdp.P.probs)  # [S, A]
    return jnp.take_along_axis(mdp.P.next_states, b[..., None], -1)[..., 0]
  return _inverse_cdf(key, mdp.P)


def generative() -> Noise:
  """N1: the sampled backup r + γ v(s') with s' ~ P(·|s, a), one draw per (s, a) and iteration."""
  def noise(key, k, mdp, v):
    s_next = sample_next_states(key, mdp)
    return mdp.gamma * (v[s_next] - expect(mdp.P, v))
  return noise


def gaussian(sigma) -> Noise:
  """N2: ε_k(s, a) ~ N(0, σ²) i.i.d."""
  sigma = V.check_positive("sigma", sigma, allow_zero=True)
  return lambda key, k, mdp, v: sigma * jax.random.normal(key, mdp.r.shape, mdp.r.dtype)


def biased(bias, sigma=0.0) -> Noise:
  """N3: ε_k = b + N(0, σ²); ``bias`` is a scalar or an [S, A] array."""
  sigma = V.check_positive("sigma", sigma, allow_zero=True)
  return lambda key, k, mdp, v: bias + sigma * jax.random.normal(key, mdp.r.shape, mdp.r.dtype)


def student_t(df, scale=1.0) -> Noise:
  """N4: heavy-tailed ε_k = scale · t_ν (ν = ``df``; finite variance needs ν > 2)."""
  df = V.check_positive("df", df)
  scale = V.check_positive("scale", scale, allow_zero=True)
  return lambda key, k, mdp, v: scale * jax.random.t(key, df, mdp.r.shape, mdp.r.dtype)


def spikes(prob, size, sigma=0.0) -> Noise:
  """N4 (outliers): with probability ``prob`` per entry a spike ±size, plus N(0, σ²)."""
  prob = V.check_positive("prob", prob, allow_zero=True)
  size = V.check_positive("size", size, allow_zero=True)
  sigma = V.check_positive("sigma", sigma, allow_zero=True)

  def noise(key, k, mdp, v):
    k_hit, k_sign, k_g = jax.random.split(key, 3)
    hit = jax.random.bernoulli(k_hit, prob, mdp.r.shape)
    sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, mdp.r.shape), 1.0, -1.0)
    return jnp.where(hit, sign * size, 0.0) + sigma * jax.random.normal(k_g, mdp.r.shape, mdp.r.dtype)
  return noise


def alternating(c) -> Noise:
  """N5: ε_k = (−1)^k c, with k the 0-based index of the update (scalar or [S, A] ``c``)."""
  return lambda key, k, mdp, v: jnp.where(k % 2 == 0, 1.0, -1.0) * jnp.broadcast_to(
      jnp.asarray(c, mdp.r.dtype), mdp.r.shape)


def sequence(eps) -> Noise:
  """A user-supplied error sequence ``eps [K, S, A]``; update k (0-based) gets ``eps[k]``.

  Running more than K updates repeats the last entry (clamped indexing); pass K = num_iters.
  """
  if not V.is_traced(eps):
    arr = V.as_real_array("eps", eps)
    if arr.ndim != 3:
      raise V.ShapeError(f"eps must have shape (K, S, A), got {arr.shape}")
    V.check_finite("eps", arr)
    eps = jnp.asarray(arr)
  return lambda key, k, mdp, v: eps[jnp.minimum(k, eps.shape[0] - 1)].astype(mdp.r.dtype)


MODELS: dict[str, Callable[..., Noise]] = {
    "zero": zero, "generative": generative, "gaussian": gaussian, "biased": biased,
    "student_t": student_t, "spikes": spikes, "alternating": alternating,
}


def make(name: str, **kwargs) -> Noise:
  """The error model registered under ``name`` (see :data:`MODELS`)."""
  if name not in MODELS:
    raise V.ParameterError(f"unknown noise model {name!r}; choose from {sorted(MODELS)}")
  return MODELS[name](**kwargs)
