r"""Closed forms of KL-regularized alignment on a bandit (THEORY.md §7).

A bandit is a finite response set y ∈ {0..M−1} with a reference distribution
π_ref [M] and a reward r [M] (:class:`mdptheory.types.Bandit`). Everything here
is exact: the laws are computed in closed form, in log space, and checked in
``tests/test_alignment.py`` against independent references (brute-force
enumeration, Monte Carlo, scipy optimization, direct convolution).

**§7.1 — the KL-regularized optimum is a Bayesian posterior** (Korbak, Perez &
Buckley 2022, arXiv 2205.11275):

    max_π E_π r − β KL(π ‖ π_ref)  ⇒  π*(y) = π_ref(y) e^{r(y)/β} / Z,   Z = E_{π_ref} e^{r/β},
    value = β log Z,   E_{π*} r = β log Z + β KL(π* ‖ π_ref).

log Z is a max-shifted log-sum-exp of log π_ref + r/β; e^{r/β} is never formed.
The constrained form (Yang, Salamatian, Sun, Suresh & Beirami 2024, arXiv
2404.01730) max E_φ r s.t. KL(φ ‖ π_ref) <= Δ is solved by the tilt
φ_λ ∝ π_ref e^{λ r} with λ >= 0 the root of KL(φ_λ ‖ π_ref) = Δ (a Brent root
solve; KL(φ_λ) increases with λ, d KL/dλ = λ Var_φ r).

**§7.2 — the exact best-of-N law with ties** (Beirami et al. 2024, arXiv
2401.01879). Group the responses by equal reward; a group G has mass p_G, CDF
F_G = P(r <= r_G) and F⁻_G = P(r < r_G). With ties broken uniformly among the
tied samples,

    π_N(y) = (F_G^N − (F⁻_G)^N) π_ref(y) / p_G,   G = G(y).

Its KL to π_ref is at most log N − (N−1)/N (equality only without atoms) and at
most log N; its win rate against π_ref (ties count ½) is at most N/(N+1).
The group masses q_G = F^N − (F⁻)^N are computed as

    log q_G = −e^{log N + A_G} + log(−expm1(−e^{log N + B_G})),
    A_G = log(−log F_G),   B_G = log(−log(F⁻_G / F_G)),

with A and B computed once in log space, from the tail sums P(r > r_G) (via
log1p) where F_G > ½: no F^N is formed, N can be e^{800} (``log N`` is what is
passed) and tails of e^{−800} keep their relative precision.

**§7.3 — BoN against KL-RL for a memoryless reference** (Yang et al. 2024): a
sequence of n i.i.d. tokens with additive reward; the law of the summed reward
is the n-fold convolution of the token law (computed exactly in log space),
BoN with N = e^{nΔ} acts on it group-wise, and the per-token tilt with KL Δ is
the KL-constrained optimum of the whole sequence.

**§7.4 — reward over-optimization in miniature** (Gao, Schulman & Hilton 2022,
arXiv 2210.10760): a proxy reward fitted by Bradley–Terry maximum likelihood on
sampled preference pairs, the exact gold reward of BoN and of the KL-regularized
optimum under the proxy against d = sqrt(KL), and least-squares fits of
R_bon(d) = d(α − β d) and R_RL(d) = d(α − β log d) with their peaks
(d* = α/(2β), R* = α²/(4β); d* = e^{α/β − 1}, R* = β e^{α/β − 1}). The
functional forms are known from secondary sources only (THEORY.md §7.4, [S]).

Inputs are validated in numpy at the public functions (before any jit); traced
values (a ``jax.vmap`` over β, λ or N) pass through unchecked. The JAX
functions follow their inputs' dtype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy import optimize, special

from mdptheory import validate as V
from mdptheory.errors import NonFiniteError, ParameterError, ShapeError
from mdptheory.metrics import kl_log

Array = jax.Array

__all__ = [
    "BoNLaw", "ConstrainedOptimum", "GaoFit", "OverOptimizationCurves", "RewardGroups", "SequenceAsymptotics",
    "Tilted", "bon_group_log_mass", "bon_kl_bound", "bon_law", "bon_laws", "bon_monte_carlo", "bon_vs_kl_rl",
    "bon_win_rate_bound", "bradley_terry_mle", "constrained_optimum", "fit_gao", "gao_peak",
    "overoptimization_curves", "posterior", "regularized_objective", "reward_groups", "reward_kl_frontier",
    "sample_preferences", "tilt", "token_sum_log_pmf",
]


# -----------------------------------------------------------------------------
# Validation (numpy, before any jit)
# -----------------------------------------------------------------------------


def _float_dtype(*xs: Any) -> Any:
  """float32 if an input is a float32 array, else JAX's default float."""
  if any(getattr(x, "dtype", None) == np.float32 for x in xs):
    return jnp.float32
  return jnp.float64 if V.x64_enabled() else jnp.float32


def _check_bandit(pi_ref: Any, reward: Any, *, reward_name: str = "reward",
                  pi_name: str = "pi_ref", as_numpy: bool = False) -> tuple[Array, Array]:
  """pi_ref [M] on the simplex and a finite reward [M]; traced arrays pass through.

  Returns JAX arrays (in the inputs' float dtype), or float64 numpy arrays with ``as_numpy``.
  """
  if V.is_traced(pi_ref) or V.is_traced(reward):
    if as_numpy:
      raise ParameterError(f"{pi_name} and {reward_name} must be concrete arrays here (this computation runs in "
                           f"numpy), not traced JAX values; call it outside jit/vmap")
    return jnp.asarray(pi_ref), jnp.asarray(reward)
  dt = _float_dtype(pi_ref, reward)
  p = V.as_real_array(pi_name, pi_ref)
  if p.ndim != 1 or p.size == 0:
    raise ShapeError(f"{pi_name} must be a non-empty vector [M] (one probability per response), got shape {p.shape}")
  p = V.check_distribution(pi_name, pi_ref, p.size)  # the raw input: float32 sums get float32's tolerance
  r = V.as_real_array(reward_name, reward)
  if r.shape != p.shape:
    raise ShapeError(f"{reward_name} has shape {r.shape} but {pi_name} has shape {p.shape}; "
                     f"give one value per response")
  V.check_finite(reward_name, r)
  if as_numpy:
    return p, r
  V.check_in_range(reward_name, r, dt)
  return jnp.asarray(p, dt), jnp.asarray(r, dt)


def _check_beta(beta: Any) -> Any:
  return V.check_positive("beta", beta, hint="; beta is the KL weight of E r - beta KL (beta -> 0 is the "
                                               "unregularized argmax, use constrained_optimum for a KL budget)")


def _check_num_samples(num_samples: Any) -> Any:
  n = V.check_real_scalar("num_samples", num_samples)
  if V.is_traced(n):
    return n
  if not math.isfinite(n) or n < 1:
    raise ParameterError(f"num_samples N={n} must be a finite number >= 1 (best-of-N draws N samples from pi_ref); "
                         f"N = 1 is pi_ref itself")
  return n


def _check_log_z_range(r: Any, scale: Any, what: str) -> None:
  """Refuses a tilt whose log Z ~ scale · max|r| overflows the dtype (r = 1e300 with β = 1e-45: log Z = 1e345)."""
  if scale is None or V.is_traced(r):
    return
  r_max = float(np.max(np.abs(np.asarray(r)))) if np.size(r) else 0.0
  limit = float(np.finfo(np.dtype(r.dtype)).max) / 16
  if scale * r_max > limit:
    raise NonFiniteError(
        f"{what} * max|reward| = {scale:.3g} * {r_max:.3g} = {scale * r_max:.3g} overflows {np.dtype(r.dtype)}: "
        f"log Z would be infinite; rescale the reward (the tilt depends on reward/beta only) or use float64")


def _safe_log(p: Array) -> Array:
  """log p with log 0 = −inf and no divide warning."""
  p = jnp.asarray(p)
  return jnp.where(p > 0, jnp.log(jnp.where(p > 0, p, 1.0)), -jnp.inf)


# -----------------------------------------------------------------------------
# §7.1 The KL-regularized optimum as a posterior; the constrained form
# -----------------------------------------------------------------------------


class Tilted(NamedTuple):
  """The tilted law π ∝ π_ref e^{λ r} (λ = 1/β) and its statistics."""
  log_pi: Array           # [M]  log π, −inf off supp π_ref
  log_z: Array            # []   log Z = log E_{π_ref} e^{λ r}
  value: Array            # []   β log Z = max_π E_π r − β KL(π ‖ π_ref) (log Z / λ from tilt())
  kl: Array               # []   KL(π ‖ π_ref)
  expected_reward: Array  # []   E_π r

  @property
  def pi(self) -> Array:
    """The probabilities e^{log π} (numpy for numpy fields, JAX otherwise)."""
    return (np.exp if isinstance(self.log_pi, np.ndarray) else jnp.exp)(self.log_pi)


def _tilted(log_pi_ref: Array, reward: Array, inv_temp: Array, beta: Array) -> Tilted:
  """π ∝ π_ref exp(inv_temp · r) (inv_temp = 1/β or λ); value = β log Z.

  The reward is shifted by its max m over supp π_ref before it is scaled: r/β of the raw reward rounds
  with an absolute error eps·|r|/β (1e3 in float32 for r = 1e6, β = 1e-4), which would corrupt the
  normalization; log Z = lse + inv_temp · m and value = m + β lse are assembled afterwards.
  """
  on = jnp.isfinite(log_pi_ref)
  m = jnp.max(jnp.where(on, reward, -jnp.inf))
  m = jax.lax.stop_gradient(jnp.where(jnp.isfinite(m), m, 0.0))
  logits = jnp.where(on, log_pi_ref + (reward - m) * inv_temp, -jnp.inf)  # −inf off the support
  lse = jax.nn.logsumexp(logits)
  log_pi = logits - lse
  pi = jnp.exp(log_pi)
  return Tilted(log_pi=log_pi, log_z=lse + inv_temp * m, value=m + beta * lse, kl=kl_log(log_pi, log_pi_ref),
                expected_reward=jnp.sum(jnp.where(pi > 0, pi * reward, 0.0)))


def posterior(pi_ref: Any, reward: Any, *, beta: Any) -> Tilted:
  r"""The maximizer of E_π r − β KL(π ‖ π_ref): π* ∝ π_ref e^{r/β} (THEORY.md §7.1; Korbak et al. 2022).

  Computed in log space: log π* = log π_ref + r/β − lse(log π_ref + r/β), so β
  down to 1e-6 (r/β = 1e6) neither overflows nor loses the argmax. The value is
  β log Z, and E_{π*} r = β log Z + β KL(π* ‖ π_ref) (``kl`` and
  ``expected_reward`` are computed from π*, not from this identity).

  Args:
    pi_ref: [M] reference distribution (zeros allowed: π* has the same support).
    reward: [M] rewards.
    beta: KL weight β > 0 (may be traced, e.g. ``jax.vmap`` over β).

  Returns:
    :class:`Tilted` with ``value`` = β log Z.

  Raises:
    ShapeError, InvalidMDPError (pi_ref off the simplex), NonFiniteError, ParameterError (β <= 0).
  """
  beta = _check_beta(beta)
  p, r = _check_bandit(pi_ref, reward)
  V.check_positive_in_dtype("beta", beta, r.dtype, hint=" (in posterior)")
  _check_log_z_range(r, 1.0 / beta if not V.is_traced(beta) else None, "1/beta")
  return _posterior_core(p, r, jnp.asarray(beta, r.dtype))


@jax.jit
def _posterior_core(p: Array, r: Array, beta: Array) -> Tilted:
  return _tilted(_safe_log(p), r, 1.0 / beta, beta)


def tilt(pi_ref: Any, reward: Any, *, lam: Any) -> Tilted:
  """The exponential tilt φ_λ ∝ π_ref e^{λ r}, λ >= 0 (λ = 0 is π_ref; λ = 1/β is :func:`posterior`).

  ``value`` is log Z / λ (the posterior value at β = 1/λ) for λ > 0, and its
  limit E_{π_ref} r at λ = 0.

  Args:
    pi_ref: [M] reference distribution.
    reward: [M] rewards.
    lam: inverse temperature λ >= 0 (may be traced).
  """
  lam = V.check_positive("lam", lam, allow_zero=True, hint="; lam is the tilt's inverse temperature 1/beta")
  p, r = _check_bandit(pi_ref, reward)
  _check_log_z_range(r, lam if not V.is_traced(lam) else None, "lam")
  return _tilt_core(p, r, jnp.asarray(lam, r.dtype))


@jax.jit
def _tilt_core(p: Array, r: Array, lam: Array) -> Tilted:
  out = _tilted(_safe_log(p), r, lam, jnp.asarray(1.0, r.dtype))
  value = jnp.where(lam > 0, out.log_z / jnp.where(lam > 0, lam, 1.0), out.expected_reward)
  return out._replace(value=value)


def regularized_objective(pi: Any, pi_ref: Any, reward: Any, *, beta: Any) -> Array:
  """J(π) = E_π r − β KL(π ‖ π_ref), for one policy [M] or a batch [..., M]; −inf if supp π ⊄ supp π_ref."""
  beta = _check_beta(beta)
  p, r = _check_bandit(pi_ref, reward)
  if not V.is_traced(pi):
    arr = V.as_real_array("pi", pi, keep_float32=True)
    if arr.shape[-1:] != p.shape:
      raise ShapeError(f"pi has shape {arr.shape}; its last axis must have M = {p.shape[0]} responses")
    V.check_simplex("pi", arr, index_names=())
  pi = jnp.asarray(pi, r.dtype)
  return _objective_core(pi, p, r, jnp.asarray(beta, r.dtype))


@jax.jit
def _objective_core(pi: Array, p: Array, r: Array, beta: Array) -> Array:
  er = jnp.sum(jnp.where(pi > 0, pi * r, 0.0), axis=-1)
  return er - beta * kl_log(_safe_log(pi), _safe_log(p))


def reward_kl_frontier(pi_ref: Any, reward: Any, lams: Any) -> Tilted:
  """The tilted family {φ_λ : λ ∈ lams}: its (KL, E r) points trace the reward–KL frontier (THEORY.md §7.2, CF-5).

  Every φ_λ maximizes E r among the laws with KL <= KL(φ_λ ‖ π_ref), so no law
  (BoN included) lies above the curve λ ↦ (KL(φ_λ), E_{φ_λ} r).

  Args:
    pi_ref: [M] reference distribution.
    reward: [M] rewards.
    lams: [K] inverse temperatures λ >= 0.

  Returns:
    :class:`Tilted` with a leading axis [K] on every field.
  """
  p, r = _check_bandit(pi_ref, reward)
  lams_np = V.as_real_array("lams", lams) if not V.is_traced(lams) else None
  if lams_np is not None:
    V.check_finite("lams", lams_np)
    if (lams_np < 0).any():
      raise ParameterError(f"lams contains {lams_np[lams_np < 0][0]:g} < 0; the frontier uses tilts lam >= 0")
  return jax.vmap(lambda lam: tilt(p, r, lam=lam))(jnp.asarray(lams, r.dtype))


class ConstrainedOptimum(NamedTuple):
  """The solution of max_φ E_φ r s.t. KL(φ ‖ π_ref) <= Δ."""
  lam: float               # the multiplier λ >= 0 (inf: the budget reaches the argmax set)
  log_pi: np.ndarray       # [M] log φ_Δ
  kl: float                # KL(φ_Δ ‖ π_ref) (= Δ when the constraint is active)
  expected_reward: float   # E_{φ_Δ} r
  kl_max: float            # −log π_ref(argmax set): the largest useful budget


def _tilt_np(log_p: np.ndarray, r: np.ndarray, lam: float) -> tuple[np.ndarray, float, float]:
  """(log φ_λ, KL(φ_λ ‖ p), E_φ r) in numpy float64 for log p, r restricted to supp p (all finite)."""
  logits = log_p + lam * r
  top = logits.max()
  log_phi = logits - (top + np.log(np.sum(np.exp(logits - top))))   # max-shifted log-sum-exp
  phi = np.exp(log_phi)
  return log_phi, max(float(phi @ (log_phi - log_p)), 0.0), float(phi @ r)


def constrained_optimum(pi_ref: Any, reward: Any, *, kl_budget: Any, rtol: float = 1e-13) -> ConstrainedOptimum:
  r"""max_φ E_φ r s.t. KL(φ ‖ π_ref) <= Δ: φ_Δ ∝ π_ref e^{λ r} with KL(φ_λ ‖ π_ref) = Δ (THEORY.md §7.1).

  Yang et al. 2024 (arXiv 2404.01730): the KL-constrained optimum is the
  exponential tilt whose KL meets the budget. KL(φ_λ) increases from 0 (λ = 0)
  to KL_max = −log π_ref(argmax r) (λ → ∞), so λ is bracketed by doubling and
  found by :func:`scipy.optimize.brentq`. A budget >= KL_max gives λ = ∞ and
  π_ref restricted to the argmax set; Δ = 0 (or a constant reward) gives λ = 0.
  Computed in numpy float64.

  Args:
    pi_ref: [M] reference distribution.
    reward: [M] rewards.
    kl_budget: Δ >= 0.
    rtol: relative tolerance of the root in λ.

  Returns:
    :class:`ConstrainedOptimum`.

  Raises:
    ParameterError: Δ < 0 or not finite; the array errors of :func:`posterior`.
  """
  delta = V.check_positive("kl_budget", kl_budget, allow_zero=True, hint="; the KL budget Delta is a number >= 0")
  p, r = _check_bandit(pi_ref, reward, as_numpy=True)
  on = p > 0
  log_p, r_on = np.log(p[on]), r[on]          # the tilt lives on supp π_ref

  def full(log_phi_on: np.ndarray) -> np.ndarray:
    out = np.full(p.shape, -np.inf)
    out[on] = log_phi_on
    return out

  r_max = r_on.max()
  top = r_on == r_max
  kl_max = max(float(-np.log(np.exp(log_p[top]).sum())), 0.0)
  log_phi0, kl0, er0 = _tilt_np(log_p, r_on, 0.0)   # kl0 is 0 up to rounding
  if delta <= kl0 or r_on.min() == r_max:   # no budget, or nothing to gain (any λ is optimal for a constant r)
    return ConstrainedOptimum(0.0, full(log_phi0), 0.0, er0, kl_max)
  if delta >= kl_max:
    log_phi = np.where(top, log_p - np.log(np.exp(log_p[top]).sum()), -np.inf)
    return ConstrainedOptimum(math.inf, full(log_phi), kl_max, float(r_max), kl_max)
  hi = 1.0 / (r_max - r_on.min())
  while _tilt_np(log_p, r_on, hi)[1] < delta:
    hi *= 2.0
    if hi > 1e300:   # Δ is KL_max to rounding: the optimum is the argmax restriction
      log_phi = np.where(top, log_p - np.log(np.exp(log_p[top]).sum()), -np.inf)
      return ConstrainedOptimum(math.inf, full(log_phi), kl_max, float(r_max), kl_max)
  lam = optimize.brentq(lambda l: _tilt_np(log_p, r_on, l)[1] - delta, 0.0, hi, xtol=1e-300, rtol=rtol,
                        maxiter=500)
  log_phi, kl, er = _tilt_np(log_p, r_on, lam)
  return ConstrainedOptimum(float(lam), full(log_phi), kl, er, kl_max)


# -----------------------------------------------------------------------------
# §7.2 The exact best-of-N law
# -----------------------------------------------------------------------------


def _xp(*xs: Any) -> Any:
  """numpy for numpy/Python inputs, jax.numpy as soon as one input is a JAX array (or a tracer)."""
  return jnp if any(isinstance(x, jax.Array) for x in xs) else np


def bon_kl_bound(num_samples: Any) -> Any:
  """log N − (N−1)/N: Beirami et al.'s upper bound on KL(π_N ‖ π_ref) (equality only without atoms)."""
  xp = _xp(num_samples)
  n = xp.asarray(num_samples, dtype=float) if xp is np else jnp.asarray(num_samples)
  return xp.log(n) - (n - 1.0) / n


def bon_win_rate_bound(num_samples: Any) -> Any:
  """N/(N+1): the bound on the win rate of π_N against π_ref, ties counted ½ (equality without atoms)."""
  xp = _xp(num_samples)
  n = xp.asarray(num_samples, dtype=float) if xp is np else jnp.asarray(num_samples)
  return n / (n + 1.0)


def _bucket(n: int) -> int:
  """Array sizes are padded to a power of two (>= 8) so that one compiled function serves many sizes."""
  return max(8, 1 << (int(n) - 1).bit_length())


class RewardGroups(NamedTuple):
  """Responses grouped by equal reward, in increasing order of reward (THEORY.md §7.2).

  Independent of N, so it is computed once (numpy float64, in log space) and shared by every N.
  """
  reward: np.ndarray           # [G]  the group rewards r_G, increasing
  log_mass: np.ndarray         # [G]  log p_G = log π_ref(G)
  log_cdf: np.ndarray          # [G]  log F_G = log P(r <= r_G); log1p(−P(r > r_G)) where F_G > ½
  log_neg_log_cdf: np.ndarray  # [G]  log(−log F_G) (−inf for the top group, where F = 1)
  log_neg_log_ratio: np.ndarray  # [G]  log(−log(F⁻_G / F_G)) (+inf for the lowest group, where F⁻ = 0)
  index: np.ndarray            # [M]  the group of each response (−1 off supp π_ref)


def _log_neg_log1m_exp(log_x: np.ndarray) -> np.ndarray:
  """log(−log(1 − x)) from log x <= 0, for x down to e^{−10^4} (−log(1 − x) = x + x²/2 + …)."""
  log_x = np.minimum(log_x, 0.0)
  small = log_x < -20.0
  with np.errstate(divide="ignore", over="ignore"):
    direct = np.log(-np.log1p(-np.exp(np.where(small, -20.0, log_x))))
    return np.where(small, log_x + np.log1p(0.5 * np.exp(np.where(small, log_x, -20.0))), direct)


def _cdf_from_log_mass(log_mass: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(log F, log(−log F), log(−log(F⁻/F))) for ordered atoms of log mass ``log_mass`` [G] (all finite).

  Everything stays in log space, with stable tails: where F_G > ½, log F_G =
  log1p(−T_G) and log(−log F_G) ≈ log T_G from the tail T_G = P(r > r_G) (a
  cumulative log-sum-exp from above), so a tail of e^{−800} keeps its relative
  precision; where F_G <= ½ the cumulative log-sum-exp from below is used.
  """
  log_f_left = np.logaddexp.accumulate(log_mass)
  tail_incl = np.logaddexp.accumulate(log_mass[::-1])[::-1]
  log_tail = np.concatenate([tail_incl[1:], [-np.inf]])      # log P(r > r_G)
  use_tail = log_tail < math.log(0.5)
  with np.errstate(divide="ignore"):
    log_f = np.where(use_tail, np.log1p(-np.exp(np.where(use_tail, log_tail, -1.0))), log_f_left)
    log_neg_log_f = np.where(use_tail, _log_neg_log1m_exp(log_tail),
                             np.log(-np.where(use_tail, -1.0, log_f_left)))
  log_ratio = np.minimum(log_mass - log_f, 0.0)             # log(p_G / F_G) = log(1 − F⁻/F)
  log_ratio[0] = 0.0                                        # F⁻ = 0 below the lowest atom, exactly
  return log_f, log_neg_log_f, _log_neg_log1m_exp(log_ratio)


def reward_groups(pi_ref: Any, reward: Any) -> RewardGroups:
  """Groups the responses of supp π_ref by exact reward equality (numpy float64).

  Args:
    pi_ref: [M] reference distribution.
    reward: [M] rewards.

  Returns:
    :class:`RewardGroups`.
  """
  p, r = _check_bandit(pi_ref, reward, as_numpy=True)
  on = p > 0
  values, inverse = np.unique(r[on], return_inverse=True)
  mass = np.bincount(inverse, weights=p[on], minlength=values.size)
  log_mass = np.log(mass)
  index = np.full(r.shape, -1)
  index[on] = inverse
  return RewardGroups(values, log_mass, *_cdf_from_log_mass(log_mass), index)


def bon_group_log_mass(log_neg_log_cdf: Any, log_neg_log_ratio: Any, log_num_samples: Any) -> Array:
  r"""log q_G = log(F_G^N − F⁻_G^N), elementwise over ordered groups (THEORY.md §7.2).  [G] -> [G].

  With A = log(−log F) and B = log(−log(F⁻/F)) (:class:`RewardGroups`),

      log q = N log F + log(1 − (F⁻/F)^N) = −e^{log N + A} + log(−expm1(−e^{log N + B})).

  No power F^N is formed, N = e^{nΔ} itself may exceed the float range, and
  tails of e^{−800} keep their relative precision (naive F**N loses all
  precision for n ≳ 1000). An empty group (B = −inf) gets −inf. Pure JAX for
  JAX inputs (vmap over ``log_num_samples``); numpy float64 for numpy inputs.

  Args:
    log_neg_log_cdf: [G] A = log(−log F_G) (−inf where F = 1).
    log_neg_log_ratio: [G] B = log(−log(F⁻_G / F_G)) (+inf where F⁻ = 0, −inf for an empty group).
    log_num_samples: log N, N >= 1 real.
  """
  xp = _xp(log_neg_log_cdf, log_neg_log_ratio, log_num_samples)
  a, b = xp.asarray(log_neg_log_cdf), xp.asarray(log_neg_log_ratio)
  log_n = xp.asarray(log_num_samples, a.dtype)
  with np.errstate(over="ignore", divide="ignore"):
    return -xp.exp(log_n + a) + xp.log(-xp.expm1(-xp.exp(log_n + b)))


class BoNLaw(NamedTuple):
  """The exact best-of-N law π_N and its statistics."""
  log_pi: Array           # [M]  log π_N, −inf off supp π_ref
  kl: Array               # []   KL(π_N ‖ π_ref)
  win_rate: Array         # []   P(r(Y_N) > r(Y')) + ½ P(r(Y_N) = r(Y')), Y' ~ π_ref independent
  expected_reward: Array  # []   E_{π_N} r

  @property
  def pi(self) -> Array:
    """The probabilities e^{log π} (numpy for numpy fields, JAX otherwise)."""
    return (np.exp if isinstance(self.log_pi, np.ndarray) else jnp.exp)(self.log_pi)


def _bon_from_groups(groups: RewardGroups, p: Array, log_n: Array) -> BoNLaw:
  """π_N from the groups (a pytree of arrays) and π_ref [M]; pure jnp, traceable in every argument."""
  log_p = _safe_log(p)
  dt = log_p.dtype
  log_cdf, log_pg, reward_g = (jnp.asarray(x, dt) for x in (groups.log_cdf, groups.log_mass, groups.reward))
  log_q = bon_group_log_mass(jnp.asarray(groups.log_neg_log_cdf, dt), jnp.asarray(groups.log_neg_log_ratio, dt),
                             log_n)
  q = jnp.exp(log_q)
  idx = jnp.maximum(groups.index, 0)
  log_pi = jnp.where(groups.index >= 0, log_q[idx] + log_p - log_pg[idx], -jnp.inf)
  kl = jnp.maximum(jnp.sum(jnp.where(q > 0, q * (log_q - log_pg), 0.0)), 0.0)  # π_N/π_ref constant per group; >= 0
  win = jnp.sum(q * (jnp.exp(log_cdf) - 0.5 * jnp.exp(log_pg)))       # Σ_G q_G (F⁻_G + p_G / 2)
  return BoNLaw(log_pi=log_pi, kl=kl, win_rate=win, expected_reward=jnp.sum(q * reward_g))


_bon_one = jax.jit(_bon_from_groups)
_bon_many = jax.jit(jax.vmap(_bon_from_groups, in_axes=(None, None, 0)))


def bon_law(pi_ref: Any, reward: Any, *, num_samples: Any) -> BoNLaw:
  r"""The exact best-of-N law with ties: π_N(y) = (F^N − F⁻^N) π_ref(y) / p_G (THEORY.md §7.2).

  Ties (equal rewards) are broken uniformly among the tied samples, which
  splits a group's mass q_G in proportion to π_ref inside the group. Real
  N >= 1 is allowed (F^N − F⁻^N is then a "fractional" best-of-N). The
  grouping runs in numpy on the concrete ``pi_ref`` and ``reward``; N may be
  traced (``jax.vmap(lambda n: bon_law(p, r, num_samples=n))(ns)``).

  Args:
    pi_ref: [M] reference distribution.
    reward: [M] rewards (ties are exact equalities).
    num_samples: N >= 1.

  Returns:
    :class:`BoNLaw`; ``kl <= log N − (N−1)/N`` and ``win_rate <= N/(N+1)`` (Beirami et al. 2024).

  Raises:
    ParameterError: N < 1; the array errors of :func:`posterior`.
  """
  n = _check_num_samples(num_samples)
  p, r = _check_bandit(pi_ref, reward)
  # log N in float64 before the cast: N = 1e300 is inf in float32, but log N = 690.8 is not.
  log_n = jnp.log(jnp.asarray(n, r.dtype)) if V.is_traced(n) else jnp.asarray(math.log(n), r.dtype)
  groups = reward_groups(p, r)
  return (_bon_from_groups if V.is_traced(log_n) else _bon_one)(groups, p, log_n)


def _pad_groups(groups: RewardGroups, size_g: int) -> RewardGroups:
  """Pads the groups with empty ones (mass 0, B = −inf, so q_G = 0), which change nothing."""
  extra = size_g - groups.reward.shape[0]
  pad = lambda x, v: np.concatenate([x, np.full(extra, v, x.dtype)])
  return groups._replace(reward=pad(groups.reward, 0.0), log_mass=pad(groups.log_mass, -np.inf),
                         log_cdf=pad(groups.log_cdf, 0.0), log_neg_log_cdf=pad(groups.log_neg_log_cdf, -np.inf),
                         log_neg_log_ratio=pad(groups.log_neg_log_ratio, -np.inf))


def bon_laws(pi_ref: Any, reward: Any, num_samples: Any) -> BoNLaw:
  """:func:`bon_law` for a vector of N [K] in one compiled call, as numpy float64 arrays with a leading axis [K].

  The arrays are padded to power-of-two sizes (zero-mass responses, empty groups) so that bandits of
  nearby sizes share one compilation.
  """
  ns = V.as_real_array("num_samples", num_samples)
  if ns.ndim != 1 or ns.size == 0:
    raise ShapeError(f"num_samples must be a non-empty vector [K], got shape {ns.shape}")
  for n in ns:
    _check_num_samples(float(n))
  p, r = _check_bandit(pi_ref, reward, as_numpy=True)
  M = p.shape[0]
  groups = reward_groups(p, r)
  size = _bucket(M)
  groups = _pad_groups(groups, size)._replace(index=np.concatenate([groups.index, np.full(size - M, -1)]))
  dt = _float_dtype(pi_ref, reward)
  law = _bon_many(groups, jnp.asarray(np.concatenate([p, np.zeros(size - M)]), dt), jnp.asarray(np.log(ns), dt))
  law = jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64), law)
  return law._replace(log_pi=law.log_pi[:, :M])


def _sample(rng: np.random.Generator, p: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
  """Inverse-CDF sampling of indices ~ p (zero-mass entries are never drawn)."""
  cdf = np.cumsum(p)
  idx = np.searchsorted(cdf, rng.random(shape) * cdf[-1], side="right")
  return np.minimum(idx, p.shape[0] - 1)


def bon_monte_carlo(rng: Any, pi_ref: Any, reward: Any, *, num_samples: int | Sequence[int],
                    num_draws: int) -> np.ndarray:
  """Monte-Carlo best-of-N: draw N samples from π_ref, keep one with the largest reward (ties uniform).

  A cross-check of :func:`bon_law`, written independently of it (numpy): each
  draw simulates the procedure itself. For several N the draws are nested
  (the first N columns of one table of draws).

  Args:
    rng: a numpy Generator or a seed (``np.random.default_rng(rng)``).
    pi_ref: [M] reference distribution.
    reward: [M] rewards.
    num_samples: an integer N >= 1 or a sequence of them.
    num_draws: the number of best-of-N draws.

  Returns:
    Empirical frequencies [M] (or [len(num_samples), M]).
  """
  single = np.ndim(num_samples) == 0
  ns = [num_samples] if single else list(num_samples)
  if not ns:
    raise ParameterError("num_samples is empty; pass an integer N >= 1 or a list of them")
  ns = [V.check_int("num_samples N", n, minimum=1) for n in ns]
  draws = V.check_int("num_draws", num_draws, minimum=1)
  p, r = _check_bandit(pi_ref, reward, as_numpy=True)
  rng = np.random.default_rng(rng)
  idx = _sample(rng, p, (draws, max(ns)))
  u = rng.random(idx.shape)                                    # uniform tie-breaking keys
  rewards = r[idx]
  rows = np.arange(draws)
  freq = np.empty((len(ns), p.shape[0]))
  for k, n in enumerate(ns):
    rr = rewards[:, :n]                                        # the first n samples of each draw
    tied = rr == rr.max(axis=1, keepdims=True)
    pick = np.argmax(np.where(tied, u[:, :n], -1.0), axis=1)   # uniform among the tied samples
    freq[k] = np.bincount(idx[rows, pick], minlength=p.shape[0]) / draws
  return freq[0] if single else freq


# -----------------------------------------------------------------------------
# §7.3 BoN against KL-RL on memoryless sequences with additive reward
# -----------------------------------------------------------------------------


def token_sum_log_pmf(token_probs: Any, token_levels: Sequence[int], *, length: int) -> np.ndarray:
  """log P(Σ_t ℓ(y_t) = length·min ℓ + k), k = 0..length·(max ℓ − min ℓ), for y_t i.i.d. ~ token_probs.

  The exact n-fold convolution of the token law, one token at a time with a
  log-sum-exp over the reachable sums (numpy float64; O(n² V span) work, about
  1 s at n = 4096, V = 3), so probabilities far below the float range
  (0.2^4096) stay exact in log space. Integer levels make the sum
  a lattice variable (THEORY.md §7.3).

  Args:
    token_probs: [V] token distribution.
    token_levels: [V] integer reward levels ℓ(v).
    length: n >= 1 tokens.

  Returns:
    [length·span + 1] log-probabilities (numpy float64; −inf for unreachable sums).
  """
  length = V.check_int("length n", length, minimum=1)
  levels = np.asarray(token_levels)
  if levels.dtype.kind not in "iu":
    raise ParameterError(f"token_levels must be integers (a lattice reward), got dtype {levels.dtype}; "
                         f"scale the token rewards to integers and pass the scale as reward_scale")
  p, _ = _check_bandit(token_probs, levels.astype(np.float64), reward_name="token_levels", pi_name="token_probs",
                       as_numpy=True)
  log_p = np.where(p > 0, np.log(np.where(p > 0, p, 1.0)), -np.inf)
  shifts = levels - levels.min()
  span = int(shifts.max())
  out = np.full(length * span + 1, -np.inf)
  out[0] = 0.0
  with np.errstate(invalid="ignore"):   # logaddexp(-inf, -inf) = -inf
    for t in range(length):             # only the reachable prefix [0, t span] is live after t tokens
      live = t * span + 1
      new = np.full_like(out, -np.inf)
      for v, s in enumerate(shifts):
        new[s:s + live] = np.logaddexp(new[s:s + live], out[:live] + log_p[v])
      out = new
  return out


class SequenceAsymptotics(NamedTuple):
  """Per-token BoN (N = e^{nΔ}) and KL-constrained tilt (KL nΔ) on n i.i.d. tokens (THEORY.md §7.3)."""
  length: int                   # n
  log_num_samples: float        # log N = nΔ
  lam: float                    # the tilt λ with KL(φ_λ ‖ p) = Δ per token
  reward_bon: float             # E_{BoN} R / n
  reward_tilted: float          # E_{φ_λ} r (per token): the KL-RL optimum at budget nΔ
  kl_bon: float                 # KL(BoN ‖ p^n) / n
  kl_tilted: float              # KL(φ_λ ‖ p) = Δ
  kl_bound: float               # (log N − (N−1)/N) / n, Beirami et al.'s bound per token
  kl_bon_tilted: float          # KL(BoN ‖ φ_λ^n) / n
  reward_tilted_convolution: float  # E_{φ_λ^n} R / n from the convolution (equals reward_tilted)


def bon_vs_kl_rl(token_probs: Any, token_levels: Sequence[int], *, length: int, kl_per_token: float,
                 reward_scale: float = 1.0) -> SequenceAsymptotics:
  r"""BoN with N = e^{nΔ} against the KL-constrained optimum on n memoryless tokens (Yang et al. 2024).

  Reference: y = (y_1..y_n) i.i.d. from ``token_probs``; reward R(y) = scale · Σ_t ℓ(y_t).
  KL-RL: the per-token tilt φ_λ with KL(φ_λ ‖ p) = Δ; its product φ_λ^n is
  the KL-constrained optimum over sequences at budget nΔ. BoN: the exact law
  of :func:`bon_group_log_mass` on the exact law of R (:func:`token_sum_log_pmf`),
  with log N = nΔ (N need not be an integer nor fit in a float). Both are
  constant on each level set of R, so every KL reduces to a sum over levels.

  Yang et al. show the two are asymptotically equivalent (per-token rewards
  and KL agree, the normalized KL between them vanishes) as n → ∞; the exact
  statement and normalization are UNCONFIRMED (THEORY.md §7.3, §12 item 6).

  Args:
    token_probs: [V] token distribution.
    token_levels: [V] integer reward levels.
    length: n >= 1.
    kl_per_token: Δ > 0.
    reward_scale: token reward = scale · level.

  Returns:
    :class:`SequenceAsymptotics` (per-token quantities, float64 numpy scalars).
  """
  length = V.check_int("length n", length, minimum=1)
  delta = V.check_positive("kl_per_token", kl_per_token, hint="; Delta is the per-token KL budget")
  scale = V.check_positive("reward_scale", reward_scale)
  levels = np.asarray(token_levels)
  log_pmf = token_sum_log_pmf(token_probs, levels, length=length)
  p, _ = _check_bandit(token_probs, levels.astype(np.float64), reward_name="token_levels", pi_name="token_probs",
                       as_numpy=True)
  token_reward = scale * levels.astype(np.float64)
  opt = constrained_optimum(p, token_reward, kl_budget=delta)
  if not math.isfinite(opt.lam):
    raise ParameterError(f"kl_per_token={delta} >= KL_max={opt.kl_max:.6g}: the tilt degenerates to the argmax "
                         f"token; pass a smaller budget")
  reach = np.isfinite(log_pmf)                                 # reachable sums (all of them for gcd 1 levels)
  log_pmf = log_pmf[reach]
  R = scale * (length * levels.min() + np.flatnonzero(reach).astype(np.float64))   # [K] summed rewards
  log_n = length * delta
  _, log_neg_log_f, log_neg_log_ratio = _cdf_from_log_mass(log_pmf)
  log_q = np.asarray(bon_group_log_mass(log_neg_log_f, log_neg_log_ratio, log_n), np.float64)
  q = np.exp(log_q)
  on = q > 0
  logits = log_pmf + opt.lam * R
  log_t = logits - special.logsumexp(logits)
  kl_bon = float(np.sum(q[on] * (log_q[on] - log_pmf[on])))
  kl_bt = float(np.sum(q[on] * (log_q[on] - log_t[on])))
  n_samples_term = -math.expm1(-log_n)                         # (N − 1)/N
  return SequenceAsymptotics(
      length=length, log_num_samples=log_n, lam=opt.lam,
      reward_bon=float(np.sum(q * R)) / length, reward_tilted=opt.expected_reward,
      kl_bon=kl_bon / length, kl_tilted=opt.kl, kl_bound=(log_n - n_samples_term) / length,
      kl_bon_tilted=kl_bt / length, reward_tilted_convolution=float(np.sum(np.exp(log_t) * R)) / length)


# -----------------------------------------------------------------------------
# §7.4 Reward over-optimization in miniature
# -----------------------------------------------------------------------------


def sample_preferences(rng: Any, pi_ref: Any, gold: Any, *, num_pairs: int
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Pairs (i, j) ~ π_ref ⊗ π_ref labelled by the gold Bradley–Terry model, P(i ≻ j) = σ(r*(i) − r*(j)).

  Args:
    rng: a numpy Generator or a seed.
    pi_ref: [M] reference distribution.
    gold: [M] gold reward r*.
    num_pairs: number of labelled pairs.

  Returns:
    ``(first [P], second [P], first_wins [P] bool)`` (numpy). The first P' < P pairs
    of a draw are a draw of P' pairs, so nested data sizes share their pairs.
  """
  num_pairs = V.check_int("num_pairs", num_pairs, minimum=1)
  p, g = _check_bandit(pi_ref, gold, reward_name="gold", as_numpy=True)
  rng = np.random.default_rng(rng)
  first, second = _sample(rng, p, (2, num_pairs))
  wins = rng.random(num_pairs) < special.expit(g[first] - g[second])   # Bernoulli(σ(r*(i) − r*(j)))
  return first, second, wins


def bradley_terry_mle(features: Any, first: Any, second: Any, first_wins: Any, *, l2: float = 1e-3) -> np.ndarray:
  r"""Bradley–Terry maximum likelihood for a linear reward r̂(y) = w · x(y) (numpy; scipy trust-region Newton).

  Minimizes Σ_k log(1 + exp(−z_k w·(x_{i_k} − x_{j_k}))) + (l2/2)‖w‖², z_k = ±1
  the label (a logistic regression on feature differences, no intercept: BT
  rewards are defined up to a constant). The small ridge only keeps w finite
  when the pairs are linearly separable.

  Args:
    features: [M, D] response features x(y).
    first, second: [P] response indices of each pair.
    first_wins: [P] bool, True when ``first`` was preferred.
    l2: ridge weight >= 0.

  Returns:
    w [D] (float64).
  """
  x = V.as_real_array("features", features)
  if x.ndim != 2:
    raise ShapeError(f"features must be [M, D], got shape {x.shape}")
  V.check_finite("features", x)
  l2 = V.check_positive("l2", l2, allow_zero=True)
  i, j = np.asarray(first), np.asarray(second)
  z = np.where(np.asarray(first_wins, bool), 1.0, -1.0)
  if not (i.shape == j.shape == z.shape and i.ndim == 1 and i.size > 0):
    raise ShapeError(f"first, second and first_wins must be equal-length vectors; got {i.shape}, {j.shape}, {z.shape}")
  for name, idx in (("first", i), ("second", j)):
    if idx.dtype.kind not in "iu" or (idx < 0).any() or (idx >= x.shape[0]).any():
      raise ShapeError(f"{name} must hold response indices in [0, {x.shape[0]})")
  diff = z[:, None] * (x[i] - x[j])

  def loss(w):
    m = diff @ w
    grad = -diff.T @ special.expit(-m) + l2 * w
    return float(np.sum(np.logaddexp(0.0, -m)) + 0.5 * l2 * w @ w), grad

  def hess(w):
    m = diff @ w
    s = special.expit(m) * special.expit(-m)
    return (diff.T * s) @ diff + l2 * np.eye(w.shape[0])

  # The loss is convex with an exact Hessian (D x D): a trust-region Newton method converges in a few steps.
  res = optimize.minimize(loss, np.zeros(x.shape[1]), jac=True, hess=hess, method="trust-exact",
                          options={"gtol": 1e-10, "maxiter": 1000})
  return res.x


class OverOptimizationCurves(NamedTuple):
  """Exact gold and proxy gains (relative to π_ref) of BoN and of the tilt under the proxy."""
  bon_d: Array            # [N_bon]  sqrt(KL(π_N ‖ π_ref)) of BoN under the proxy
  bon_gold: Array         # [N_bon]  E_{π_N} r* − E_{π_ref} r*
  bon_proxy: Array        # [N_bon]  E_{π_N} r̂ − E_{π_ref} r̂
  rl_d: Array             # [K]      sqrt(KL(φ_λ ‖ π_ref)) of the tilt φ_λ ∝ π_ref e^{λ r̂}
  rl_gold: Array          # [K]
  rl_proxy: Array         # [K]


def overoptimization_curves(pi_ref: Any, proxy: Any, gold: Any, *, num_samples: Any, lams: Any
                            ) -> OverOptimizationCurves:
  """Gold reward against d = sqrt(KL) for BoN and for the KL-regularized optimum under a proxy (THEORY.md §7.4).

  Args:
    pi_ref: [M] reference distribution.
    proxy: [M] proxy reward r̂ (what BoN and the tilt optimize).
    gold: [M] gold reward r* (what is measured).
    num_samples: [N_bon] BoN sample counts N >= 1.
    lams: [K] tilts λ = 1/β >= 0 of the KL-regularized optimum π ∝ π_ref e^{λ r̂}.
  """
  p, rp = _check_bandit(pi_ref, proxy, reward_name="proxy")
  _, rg = _check_bandit(p, gold, reward_name="gold")
  ns = V.as_real_array("num_samples", num_samples)
  if ns.ndim != 1 or ns.size == 0 or (ns < 1).any() or not np.isfinite(ns).all():
    raise ParameterError(f"num_samples must be a non-empty vector of numbers >= 1, got {ns}")
  lam = V.as_real_array("lams", lams)
  if lam.ndim != 1 or lam.size == 0 or (lam < 0).any() or not np.isfinite(lam).all():
    raise ParameterError(f"lams must be a non-empty vector of finite numbers >= 0, got {lam}")
  groups = reward_groups(p, rp)
  return _curves(groups, p, rp, rg, jnp.log(jnp.asarray(ns, rp.dtype)), jnp.asarray(lam, rp.dtype))


@jax.jit
def _curves(groups: RewardGroups, p: Array, rp: Array, rg: Array, log_ns: Array, lams: Array
            ) -> OverOptimizationCurves:
  base_gold, base_proxy = jnp.sum(p * rg), jnp.sum(p * rp)
  log_p = _safe_log(p)

  def bon(log_n):
    law = _bon_from_groups(groups, p, log_n)
    return jnp.sqrt(jnp.maximum(law.kl, 0.0)), jnp.sum(law.pi * rg) - base_gold, law.expected_reward - base_proxy

  def rl(lam):
    t = _tilted(log_p, rp, lam, jnp.asarray(1.0, rp.dtype))
    return jnp.sqrt(jnp.maximum(t.kl, 0.0)), jnp.sum(t.pi * rg) - base_gold, t.expected_reward - base_proxy

  bd, bg, bp = jax.vmap(bon)(log_ns)
  rd, rgain, rpr = jax.vmap(rl)(lams)
  return OverOptimizationCurves(bd, bg, bp, rd, rgain, rpr)


class GaoFit(NamedTuple):
  """A least-squares fit of Gao et al.'s form to (d, R) and the fitted curve's peak."""
  form: str         # "bon": R = d(α − β d);  "rl": R = d(α − β log d)
  alpha: float
  beta: float
  peak_d: float     # argmax of the fitted curve (inf when β <= 0: no interior peak)
  peak_gain: float  # its maximum
  r2: float         # coefficient of determination of the fit (no intercept: R(0) = 0)


def gao_peak(alpha: float, beta: float, *, form: str) -> tuple[float, float]:
  """The peak (d*, R*) of Gao et al.'s forms (THEORY.md §7.4, derived [D]).

  bon: R = d(α − β d), d* = α/(2β), R* = α²/(4β).  rl: R = d(α − β log d), d* = e^{α/β − 1}, R* = β d*.
  With β <= 0 there is no interior maximum: (inf, inf).
  """
  if form not in ("bon", "rl"):
    raise ParameterError(f"form={form!r} must be 'bon' (d(alpha - beta d)) or 'rl' (d(alpha - beta log d))")
  if not beta > 0:
    return math.inf, math.inf
  if form == "bon":
    return alpha / (2 * beta), alpha ** 2 / (4 * beta)
  d = math.exp(min(alpha / beta - 1.0, 700.0))
  return d, beta * d


def fit_gao(d: Any, gain: Any, *, form: str) -> GaoFit:
  """Least squares of R(d) = α d − β d² ("bon") or α d − β d log d ("rl"): linear in (α, β).

  Args:
    d: [K] distances sqrt(KL) > 0 (points with d <= 0 are dropped: R(0) = 0 by construction).
    gain: [K] gold gains R.
    form: "bon" or "rl".
  """
  if form not in ("bon", "rl"):
    raise ParameterError(f"form={form!r} must be 'bon' (d(alpha - beta d)) or 'rl' (d(alpha - beta log d))")
  d = V.as_real_array("d", d, ndim=1)
  y = V.as_real_array("gain", gain, ndim=1)
  if d.shape != y.shape:
    raise ShapeError(f"d has shape {d.shape} but gain has shape {y.shape}")
  keep = (d > 0) & np.isfinite(d) & np.isfinite(y)
  if keep.sum() < 2:
    raise ParameterError(f"fit_gao needs at least 2 points with d > 0, got {int(keep.sum())}")
  d, y = d[keep], y[keep]
  second = d ** 2 if form == "bon" else d * np.log(d)
  X = np.stack([d, -second], axis=1)
  (alpha, beta), *_ = np.linalg.lstsq(X, y, rcond=None)
  resid = y - X @ np.array([alpha, beta])
  sst = float(np.sum((y - y.mean()) ** 2))
  r2 = 1.0 - float(resid @ resid) / sst if sst > 0 else float("nan")
  peak_d, peak_gain = gao_peak(float(alpha), float(beta), form=form)
  return GaoFit(form, float(alpha), float(beta), peak_d, peak_gain, r2)
