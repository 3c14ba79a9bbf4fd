"""Preference-game instances (THEORY.md §5.5; Tiapkin et al. 2025, arXiv 2505.19731).

Families, each with X contexts (independent draws per context, uniform ρ) and a
reference policy π_ref uniform (``ref_sigma=0``) or softmax(N(0, σ²)) per context:

* :func:`random_intransitive`: P = 1/2 + scale (U − Uᵀ)/2, U_ij ~ U(−1/2, 1/2), scale ∈ (0, 1];
* :func:`bradley_terry`: transitive, P(i ≻ j) = σ(r_i − r_j), r ~ N(0, reward_scale²);
* :func:`bt_mixture`: P = Σ_k w_k σ(r^k_i − r^k_j), a mixture of BT models, which has
  Condorcet cycles (it is not transitive in general);
* :func:`rock_paper_scissors` and :func:`cyclic_tournament`: i beats the next (n−1)/2
  responses around a circle with probability ``win_prob``.

The validated factories return :class:`mdptheory.types.PreferenceGame` (built with
``PreferenceGame.create``). The ``*_arrays`` samplers and :func:`sample_game` are the
pure, jittable paths for batched studies (``jax.vmap`` over keys); they do not validate.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special

from mdptheory import validate as V
from mdptheory.errors import ParameterError
from mdptheory.types import PreferenceGame

from .tabular import as_key

Array = jax.Array

FAMILIES = ("intransitive", "bradley_terry", "bt_mixture")


# -----------------------------------------------------------------------------
# Jittable samplers (no validation)
# -----------------------------------------------------------------------------


def _uniform_float() -> Any:
  return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


def random_intransitive_arrays(key: Array, n: int, scale: Any = 1.0, contexts: int = 1) -> Array:
  """P [X, n, n] = 1/2 + scale (U − Uᵀ)/2 with U_ij ~ U(−1/2, 1/2) i.i.d.; pure, vmappable over keys.

  THEORY.md §5.5 (i). ``scale`` may be traced; entries stay in [0, 1] for scale ∈ [0, 1].
  """
  U = jax.random.uniform(key, (contexts, n, n), _uniform_float(), -0.5, 0.5)
  return 0.5 + 0.5 * scale * (U - jnp.swapaxes(U, -1, -2))


def bradley_terry_arrays(key: Array, n: int, reward_scale: Any = 1.0, contexts: int = 1) -> Array:
  """P [X, n, n] = σ(r_i − r_j), r ~ N(0, reward_scale²) per context; pure, vmappable.  §5.5 (ii)."""
  r = reward_scale * jax.random.normal(key, (contexts, n), _uniform_float())
  d = r[:, :, None] - r[:, None, :]
  # σ(d) and σ(−d) = 1 − σ(d) computed from the same d: complementary to rounding.
  return jax.nn.sigmoid(d)


def bt_mixture_arrays(key: Array, n: int, components: int = 3, reward_scale: Any = 3.0,
                      contexts: int = 1) -> Array:
  """P [X, n, n] = Σ_k w_k σ(r^k_i − r^k_j), w ~ Dirichlet(1), r^k ~ N(0, reward_scale²).  §5.5 (iv).

  A mixture of transitive Bradley–Terry models is in general intransitive (Condorcet
  cycles appear for well-separated components). Pure, vmappable over keys.
  """
  k_r, k_w = jax.random.split(key)
  r = reward_scale * jax.random.normal(k_r, (contexts, components, n), _uniform_float())
  # Dirichlet(1, ..., 1) as normalised Exp(1) draws (cheaper to compile than jax.random.dirichlet).
  e = jax.random.exponential(k_w, (contexts, components), _uniform_float())
  w = e / jnp.sum(e, axis=-1, keepdims=True)
  d = r[:, :, :, None] - r[:, :, None, :]
  return jnp.einsum("xk,xkij->xij", w, jax.nn.sigmoid(d))


def reference_arrays(key: Array, n: int, sigma: Any = 0.0, contexts: int = 1) -> Array:
  """π_ref [X, n] = softmax(σ z), z ~ N(0, I) per context (uniform at σ = 0); pure, vmappable.  §5.5."""
  z = jax.random.normal(key, (contexts, n), _uniform_float())
  return jax.nn.softmax(sigma * z, axis=-1)


def sample_game(key: Array, family: str, n: int, *, scale: Any = 1.0, ref_sigma: Any = 0.0,
                contexts: int = 1, components: int = 3) -> PreferenceGame:
  """An unvalidated random :class:`PreferenceGame` of ``family``; pure, for ``jax.vmap`` over keys.

  ``family`` (static) is one of :data:`FAMILIES`; ``scale`` is the intransitive scale or
  the Bradley–Terry reward scale. ``scale`` and ``ref_sigma`` may be traced. Example::

      games = jax.vmap(lambda k: sample_game(k, "intransitive", 200))(jax.random.split(key, 64))
  """
  k_p, k_ref = jax.random.split(key)
  if family == "intransitive":
    P = random_intransitive_arrays(k_p, n, scale, contexts)
  elif family == "bradley_terry":
    P = bradley_terry_arrays(k_p, n, scale, contexts)
  elif family == "bt_mixture":
    P = bt_mixture_arrays(k_p, n, components, scale, contexts)
  else:
    raise ParameterError(f"family={family!r} is not one of {FAMILIES}")
  pi_ref = reference_arrays(k_ref, n, ref_sigma, contexts).astype(P.dtype)
  rho = jnp.full((contexts,), 1.0 / contexts, P.dtype)
  return PreferenceGame(P=P, rho=rho, pi_ref=pi_ref)


def preference_tensor_np(rng: Any, family: str, n: int, *, scale: float = 1.0, contexts: int = 1,
                         components: int = 3) -> np.ndarray:
  """P [X, n, n] of ``family`` drawn with a numpy Generator: the laws of the ``*_arrays`` samplers.

  The host-side twin of :func:`sample_game`'s tensors for large sweeps, where XLA's compile
  time for JAX's threefry samplers at many shapes exceeds the time to draw (the streams differ,
  the distributions are the same). ``family`` is one of :data:`FAMILIES`; ``scale`` is the
  intransitive scale or the Bradley–Terry reward scale. Exactly complementary in float64.
  """
  rng = np.random.default_rng(rng)
  if family == "intransitive":
    U = rng.uniform(-0.5, 0.5, (contexts, n, n))
    return 0.5 + 0.5 * scale * (U - np.swapaxes(U, -1, -2))
  if family == "bradley_terry":
    r = scale * rng.standard_normal((contexts, n))
    P = special.expit(r[:, :, None] - r[:, None, :])
  elif family == "bt_mixture":
    r = scale * rng.standard_normal((contexts, components, n))
    w = rng.dirichlet(np.ones(components), contexts)
    P = np.einsum("xk,xkij->xij", w, special.expit(r[:, :, :, None] - r[:, :, None, :]))
  else:
    raise ParameterError(f"family={family!r} is not one of {FAMILIES}")
  return 0.5 * (P + 1.0 - np.swapaxes(P, -1, -2))


# -----------------------------------------------------------------------------
# Validated factories
# -----------------------------------------------------------------------------


def _check_common(n: int, contexts: int, ref_sigma: Any, *, n_min: int = 2) -> tuple[int, int, float]:
  n = V.check_int("n", n, minimum=n_min)
  contexts = V.check_int("contexts", contexts, minimum=1)
  ref_sigma = V.check_positive("ref_sigma", ref_sigma, allow_zero=True, hint=", e.g. ref_sigma=1.0")
  return n, contexts, ref_sigma


def _finish(P: Array, key: Array, n: int, contexts: int, ref_sigma: float, dtype: Any) -> PreferenceGame:
  pi_ref = None
  if ref_sigma > 0:
    pi_ref = np.asarray(reference_arrays(key, n, ref_sigma, contexts), np.float64)
    pi_ref = pi_ref / pi_ref.sum(-1, keepdims=True)
  # Complementarity is restored exactly in float64 before validation.
  P = np.asarray(P, np.float64)
  P = 0.5 * (P + 1.0 - np.swapaxes(P, -1, -2))
  return PreferenceGame.create(P, None, pi_ref, dtype=dtype)


def random_intransitive(key: Any = 0, n: int = 10, scale: float = 1.0, contexts: int = 1,
                        ref_sigma: float = 0.0, *, dtype: Any = None) -> PreferenceGame:
  """Random intransitive game P = 1/2 + scale (U − Uᵀ)/2 (THEORY.md §5.5 (i), scale 0.3 or 1).

  Args:
    key: int seed or JAX key.
    n: number of responses (>= 2).
    scale: in (0, 1].
    contexts: X, independent draws.
    ref_sigma: π_ref = softmax(N(0, σ²)) per context; uniform at 0.
    dtype: float32 or float64.
  """
  n, contexts, ref_sigma = _check_common(n, contexts, ref_sigma)
  scale = V.check_positive("scale", scale, hint=", e.g. scale=1.0")
  if scale > 1:
    raise ParameterError(f"scale={scale} must be in (0, 1] to keep preferences in [0, 1]")
  k_p, k_ref = jax.random.split(as_key(key))
  return _finish(random_intransitive_arrays(k_p, n, scale, contexts), k_ref, n, contexts, ref_sigma, dtype)


def bradley_terry(key: Any = 0, n: int = 10, reward_scale: float = 1.0, contexts: int = 1,
                  ref_sigma: float = 0.0, *, dtype: Any = None) -> PreferenceGame:
  """Transitive Bradley–Terry game P(i ≻ j) = σ(r_i − r_j), r ~ N(0, reward_scale²) (§5.5 (ii))."""
  n, contexts, ref_sigma = _check_common(n, contexts, ref_sigma)
  reward_scale = V.check_positive("reward_scale", reward_scale, hint=", e.g. reward_scale=1.0")
  k_p, k_ref = jax.random.split(as_key(key))
  return _finish(bradley_terry_arrays(k_p, n, reward_scale, contexts), k_ref, n, contexts, ref_sigma, dtype)


def bt_mixture(key: Any = 0, n: int = 10, components: int = 3, reward_scale: float = 3.0,
               contexts: int = 1, ref_sigma: float = 0.0, *, dtype: Any = None) -> PreferenceGame:
  """Mixture of ``components`` Bradley–Terry models with Dirichlet(1) weights (§5.5 (iv), Condorcet cycles)."""
  n, contexts, ref_sigma = _check_common(n, contexts, ref_sigma)
  components = V.check_int("components", components, minimum=1)
  reward_scale = V.check_positive("reward_scale", reward_scale, hint=", e.g. reward_scale=3.0")
  k_p, k_ref = jax.random.split(as_key(key))
  return _finish(bt_mixture_arrays(k_p, n, components, reward_scale, contexts), k_ref, n, contexts,
                 ref_sigma, dtype)


def cyclic_tournament(n: int = 5, win_prob: float = 1.0, *, dtype: Any = None) -> PreferenceGame:
  """Cyclic tournament: i beats i+1, ..., i+⌊(n−1)/2⌋ (mod n) with probability ``win_prob`` (§5.5 (iii)).

  For even n the opposite response (distance n/2) ties at 1/2. Every row of P − 1/2 sums
  to 0, so with a uniform π_ref the equilibrium is uniform for every β.
  """
  n = V.check_int("n", n, minimum=2)
  win_prob = V.check_real_scalar("win_prob", win_prob)
  if not 0.5 <= win_prob <= 1.0:
    raise ParameterError(f"win_prob={win_prob} must be in [1/2, 1]")
  d = (np.arange(n)[None, :] - np.arange(n)[:, None]) % n  # j − i mod n
  P = np.full((n, n), 0.5)
  P[(d >= 1) & (2 * d < n)] = win_prob
  P[(d > n / 2)] = 1.0 - win_prob
  return PreferenceGame.create(P, dtype=dtype)


def rock_paper_scissors(win_prob: float = 1.0, *, dtype: Any = None) -> PreferenceGame:
  """Rock (0), paper (1), scissors (2): paper beats rock, scissors beat paper, rock beats scissors.

  The 3-response :func:`cyclic_tournament` up to relabelling (§5.5 (iii)).
  """
  win_prob = V.check_real_scalar("win_prob", win_prob)
  if not 0.5 <= win_prob <= 1.0:
    raise ParameterError(f"win_prob={win_prob} must be in [1/2, 1]")
  w, l = win_prob, 1.0 - win_prob
  P = np.array([[0.5, l, w],
                [w, 0.5, l],
                [l, w, 0.5]])
  return PreferenceGame.create(P, dtype=dtype)
