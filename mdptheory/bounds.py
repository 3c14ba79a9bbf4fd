r"""Error-propagation bounds for MD-MPI, DA-MPI and AVI (THEORY.md §2.5–2.7, §8).

Each bound is a pure, jittable function of the error traces recorded by
:mod:`mdptheory.algorithms.mdmpi` (``ADPTrace``) and of scalar problem
constants; hyperparameters may be traced arrays. Status tags follow
THEORY.md §0.1: [P] primary text, [D] derived, [S] secondary source only,
UNCONFIRMED (do not hard-test the printed constant; test the derived form).

Indexing (shared with :class:`mdptheory.algorithms.mdmpi.ADPTrace`): a trace
entry ``i = 0..K−1`` belongs to the update k = i + 1 that produced q_k; the
policy error ``err_sup[i]`` is the error of π_k = G(q_{k−1}), the policy used
in that update. Hence

* Theorem 1 (bounds π_k with E_k): ``theorem1_linf(trace.avg_eps_sup, k)`` with
  ``k = arange(1, K + 1)`` lines up with ``err_sup``;
* Theorem 2 and the AVI bound (bound π_{k+1} with ε_1..ε_k): pass the whole
  trace and ``k = arange(K)`` (k = 0 is the initialization-only bound), which
  again lines up entry by entry with ``err_sup``.

Constants: r_max bounds |r|; v^τ_max = (r_max + τ ln|A|)/(1 − γ) [P] (§1.1).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mdptheory import validate as V
from mdptheory.errors import ParameterError

Array = jax.Array

__all__ = [
    "avi_asymptotic", "avi_bound", "check_r_max", "discounted_cumsum", "entropy_bias", "entropy_q_bias",
    "munchausen_alpha1_linf", "r_max_of", "theorem1_componentwise", "theorem1_g1", "theorem1_linf", "theorem2_g2", "theorem2_g2_sum",
    "theorem2_linf", "v_max",
]


def v_max(*, r_max, gamma, tau=0.0, num_actions=1, mdp=None) -> Array:
  """v^τ_max = (r_max + τ ln|A|) / (1 − γ); v_max = v^0_max (THEORY.md §1.1) [P].

  Also the λ-version v^λ_max of Theorem 1 (pass ``tau=lam``).

  Args:
    r_max: bound on |r|.
    mdp: optional; if given, r_max is checked against max |r| of ``mdp.r`` (:func:`check_r_max`).
    gamma: discount.
    tau: entropy (or KL) weight.
    num_actions: |A|.
  """
  check_r_max(r_max, mdp)
  return (r_max + tau * jnp.log(num_actions)) / (1.0 - gamma)


def r_max_of(mdp) -> Array:
  """The smallest valid r_max of an MDP, max_{s,a} |r(s, a)|."""
  return jnp.max(jnp.abs(mdp.r))


def check_r_max(r_max: Any, mdp: Any = None) -> None:
  """Refuses an r_max that is not a bound on |r|: negative, or (with ``mdp``) below max |r| of that MDP.

  Every bound of this module that takes ``r_max`` calls it (``mdp=`` is optional there); a traced
  ``r_max`` or reward is not checked. NaN entries (e.g. a missing cell of a results frame) pass.

  Args:
    r_max: a scalar or an array of them.
    mdp: anything with a reward array ``.r`` (an MDP, a FiniteHorizonMDP), or None.

  Raises:
    ParameterError: naming r_max and, with ``mdp``, max |r| and the fix.
  """
  if V.is_traced(r_max):
    return
  try:
    arr = np.asarray(r_max, np.float64)
  except (TypeError, ValueError):
    raise ParameterError(f"r_max={r_max!r} is not a number; pass a bound on |r|, e.g. r_max=bounds.r_max_of(mdp)")
  if (arr < 0).any():
    raise ParameterError(f"r_max={float(arr.min()):g} must be >= 0: it bounds |r(s, a)|; pass bounds.r_max_of(mdp)")
  if mdp is None:
    return
  r = getattr(mdp, "r", mdp)
  if V.is_traced(r) or np.size(r) == 0:
    return
  r = np.asarray(r, np.float64)
  r_abs = float(np.max(np.abs(r)))
  low = arr < r_abs * (1.0 - 4 * np.finfo(np.float64).eps)
  if low.any():
    idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(np.abs(r))), r.shape))
    raise ParameterError(
        f"r_max={float(arr[low].min()):.6g} is smaller than max |r| = {r_abs:.6g} of the MDP (at index {idx}), "
        f"so the bound would not hold; pass r_max >= {r_abs:.6g}, e.g. r_max=bounds.r_max_of(mdp)")


def discounted_cumsum(x: Array, gamma) -> Array:
  """D_k = Σ_{j=1}^k γ^{k−j} x_j for k = 0..K, with D_0 = 0.  [K] -> [K + 1].

  Computed by the recursion D_k = γ D_{k−1} + x_k in ``lax.scan`` (no overflow of γ^{−j}).

  Args:
    x: [K] the sequence x_1..x_K (e.g. ``trace.eps_sup``).
    gamma: the discount (may be traced).
  """
  def step(d, xk):
    d = gamma * d + xk
    return d, d
  _, d = jax.lax.scan(step, jnp.zeros((), x.dtype), x)
  return jnp.concatenate([jnp.zeros((1,), x.dtype), d])


# -----------------------------------------------------------------------------
# Theorem 1: MD-VI(λ, 0) = DA-VI(λ, 0)
# -----------------------------------------------------------------------------


def theorem1_g1(k, *, gamma, r_max, lam, num_actions, mdp=None) -> Array:
  """g^1(k) = 4 v^λ_max / ((1 − γ) k) = 4 (r_max + λ ln|A|) / ((1 − γ)² k) (THEORY.md §2.5).

  The initialization term of Theorem 1 of *Leverage the Average* (Vieillard et
  al. 2020). The λ-version is restated by a secondary source [S] and agrees
  with the primary prose ("linear in λ through v^λ_max") [P]; the tighter
  γλ ln|A| variant is UNCONFIRMED and not implemented (this one is weaker,
  hence safe).
  """
  check_r_max(r_max, mdp)
  return 4.0 * v_max(r_max=r_max, gamma=gamma, tau=lam, num_actions=num_actions) / ((1.0 - gamma) * k)


def theorem1_linf(avg_eps_sup, k, *, gamma, r_max, lam, num_actions, mdp=None) -> Array:
  r"""Theorem 1, ℓ∞ form: the bound on ‖q* − q_{π_k}‖_∞ for MD-VI(λ, 0) (THEORY.md §2.5).

      ‖q* − q_{π_k}‖_∞ ≤ 2/(1 − γ) ‖(1/k) Σ_{j=1}^k ε_j‖_∞ + 4/(1 − γ)² (r_max + λ ln|A|)/k

  Source: Vieillard et al. 2020 (*Leverage the Average*, NeurIPS), Thm 1; the
  display is lost in the primary text we read, this ℓ∞ form is restated by a
  secondary source [S] and checked numerically [N]. Hypotheses: m = 1, τ = 0,
  ‖q_k‖_∞ ≤ v_max (clipping folded into ε), π_0 uniform. Tested form: exactly
  this one (λ-version), at every k, in ``tests/test_bounds.py`` (LA-4).

  Elementwise in ``avg_eps_sup`` and ``k`` (both broadcast): pass
  ``trace.avg_eps_sup`` [K] and ``k = arange(1, K + 1)`` to get the bound of
  every ``trace.err_sup`` entry.

  Args:
    avg_eps_sup: ‖(1/k) Σ_{j≤k} ε_j‖_∞ (``ADPTrace.avg_eps_sup``).
    k: iteration index k >= 1.
    gamma: discount.
    r_max: bound on |r|.
    mdp: optional; if given, r_max is checked against max |r| of ``mdp.r`` (:func:`check_r_max`).
    lam: KL weight λ.
    num_actions: |A|.
  """
  check_r_max(r_max, mdp)
  return (2.0 / (1.0 - gamma) * avg_eps_sup
          + theorem1_g1(k, gamma=gamma, r_max=r_max, lam=lam, num_actions=num_actions))


def theorem1_componentwise(a1e_abs, k, *, gamma, r_max, lam, num_actions, mdp=None) -> Array:
  r"""Theorem 1, component-wise form: |A^1_k E_k| / k + g^1(k) 1 (THEORY.md §2.5).

      0 ≤ q* − q_{π_k} ≤ |A^1_k E_k| / k + g^1(k) 1,
      A^1_k = (I − γP_{π*})^{-1} − (I − γP_{π_k})^{-1}  (on the SA-dimensional q space),
      E_k = −Σ_{j=1}^k ε_j.

  Source: Vieillard et al. 2020, Thm 1; the display is reconstructed from the
  proof text, UNCONFIRMED as printed (THEORY.md §12.1). Its ℓ∞ corollary is
  :func:`theorem1_linf` (‖A^1_k‖_∞ ≤ 2/(1 − γ)). Tested form: this
  reconstruction, at every k and every (s, a), in ``tests/test_bounds.py``.

  Args:
    a1e_abs: [..., S, A] |A^1_k E_k| (``ADPTrace.cw_a1e``, recorded with
      ``componentwise=True``).
    k: [...] iteration index k >= 1, broadcast against the leading axes of
      ``a1e_abs`` (e.g. ``arange(1, K + 1)`` for a trace [K, S, A]).
    gamma, r_max, lam, num_actions: as in :func:`theorem1_linf`; like ``k``
      they broadcast against the leading axes (not the trailing [S, A]).
  Returns:
    [..., S, A] the component-wise bound on q* − q_{π_k}.
  """
  check_r_max(r_max, mdp)
  k = jnp.asarray(k)
  g1 = theorem1_g1(k, gamma=gamma, r_max=r_max, lam=lam, num_actions=num_actions)
  return a1e_abs / k[..., None, None] + g1[..., None, None]


# -----------------------------------------------------------------------------
# Theorem 2: DA-VI(λ, τ) = MD-VI(λ, τ), τ > 0
# -----------------------------------------------------------------------------


def theorem2_g2(k, *, gamma, beta, tau, r_max, num_actions, mdp=None) -> Array:
  r"""g_2(k) of Theorem 2 in closed form (THEORY.md §2.6) [P][D].

      g_2(k) = γ^k (1 + (1 − β)/(1 − γ)) Σ_{j=0}^k (β/γ)^j v^τ_max
             = 2 (k + 1) γ^k v^τ_max                                         if β = γ,
             = (1 + (1 − β)/(1 − γ)) (β^{k+1} − γ^{k+1}) / (β − γ) v^τ_max     if β ≠ γ.

  The β ≠ γ form is used when |β − γ| > 1e-8 (β, γ may be traced: both are
  computed and selected with ``jnp.where``); closer to equality the β = γ form
  evaluated at the midpoint is used (relative error O(k² (β − γ)²)).
  Source: Vieillard et al. 2020, Thm 2 [P, decoded]. Tested: both forms
  against the defining sum (:func:`theorem2_g2_sum`), and inside
  :func:`theorem2_linf` (LA-7).

  Args:
    k: iteration index k >= 0 (broadcasts).
    gamma: discount γ.
    beta: β = λ / (λ + τ) in [0, 1).
    tau: entropy weight τ (enters v^τ_max).
    r_max: bound on |r|.
    mdp: optional; if given, r_max is checked against max |r| of ``mdp.r`` (:func:`check_r_max`).
    num_actions: |A|.
  """
  check_r_max(r_max, mdp)
  k = jnp.asarray(k)
  vm = v_max(r_max=r_max, gamma=gamma, tau=tau, num_actions=num_actions)
  coef = 1.0 + (1.0 - beta) / (1.0 - gamma)
  diff = beta - gamma
  close = jnp.abs(diff) <= 1e-8
  mid = 0.5 * (beta + gamma)
  equal_form = (k + 1) * mid ** k
  safe_diff = jnp.where(close, 1.0, diff)
  general_form = (beta ** (k + 1) - gamma ** (k + 1)) / safe_diff
  return coef * jnp.where(close, equal_form, general_form) * vm


def theorem2_g2_sum(k: int, *, gamma, beta, tau, r_max, num_actions, mdp=None) -> Array:
  """g_2(k) from its defining sum γ^k (1 + (1 − β)/(1 − γ)) Σ_{j=0}^k (β/γ)^j v^τ_max (a reference; k a Python int).

  Written as Σ_j β^j γ^{k−j} so that γ = 0 and β = 0 need no special case (0^0 = 1).
  """
  check_r_max(r_max, mdp)
  j = jnp.arange(k + 1)
  vm = v_max(r_max=r_max, gamma=gamma, tau=tau, num_actions=num_actions)
  return (1.0 + (1.0 - beta) / (1.0 - gamma)) * jnp.sum(beta ** j * gamma ** (k - j)) * vm


def theorem2_linf(ema_sup_trace, k, *, gamma, beta, tau, r_max, num_actions, mdp=None) -> Array:
  r"""Theorem 2, ℓ∞ form: the bound on ‖q*_τ − q^τ_{π_{k+1}}‖_∞ for MD-VI(λ, τ > 0) (THEORY.md §2.6).

      ‖q*_τ − q^τ_{π_{k+1}}‖_∞ ≤ 2/(1 − γ) Σ_{j=1}^k γ^{k−j} ‖E^β_j‖_∞ + g_2(k),
      E^β_j = (1 − β) Σ_{i=1}^j β^{j−i} ε_i,   β = λ/(λ + τ).

  Source: Vieillard et al. 2020, Thm 2: component-wise statement [P, decoded];
  this ℓ∞ corollary restated by a secondary source [S] and derived with
  ‖A_2^{k:j}‖_∞ ≤ 2/(1 − γ) under the no-inverse reading of A_2 [D]
  (UNCONFIRMED as printed, §12.1). Tested form: exactly this one, at every k
  (LA-7).

  Args:
    ema_sup_trace: [K] ‖E^β_j‖_∞ for j = 1..K (``ADPTrace.ema_eps_sup``).
    k: iteration index 0 <= k <= K (int or int array). ``k = arange(K)`` gives
      the bounds of ``trace.err_sup`` (entry i is π_{i+1}) entry by entry.
    gamma: discount γ.
    beta: β = λ/(λ + τ).
    tau: entropy weight τ.
    r_max: bound on |r|.
    mdp: optional; if given, r_max is checked against max |r| of ``mdp.r`` (:func:`check_r_max`).
    num_actions: |A|.
  """
  check_r_max(r_max, mdp)
  d = discounted_cumsum(jnp.asarray(ema_sup_trace), gamma)
  k = jnp.asarray(k)
  return (2.0 / (1.0 - gamma) * d[k]
          + theorem2_g2(k, gamma=gamma, beta=beta, tau=tau, r_max=r_max, num_actions=num_actions))


# -----------------------------------------------------------------------------
# AVI (classical error propagation)
# -----------------------------------------------------------------------------


def avi_bound(eps_sup_trace, k, *, gamma, q0_err) -> Array:
  r"""The AVI bound on ‖q* − q^{π_{k+1}}‖_∞, π_{k+1} greedy w.r.t. q_k (THEORY.md §2.7) [D].

      ‖q* − q^{π_{k+1}}‖_∞ ≤ 2γ/(1 − γ) (Σ_{j=1}^k γ^{k−j} ‖ε_j‖_∞ + γ^k ‖q* − q_0‖_∞).

  The derived form, carrying ‖q* − q_0‖ (THEORY.md §2.7: from ‖q* − q_k‖ ≤
  γ^k‖q* − q_0‖ + Σ_j γ^{k−j}‖ε_j‖ and ‖q* − q^π‖ ≤ 2γ/(1 − γ)‖q* − q‖ for π
  greedy w.r.t. q; Bertsekas & Tsitsiklis 1996, Munos 2007). The paper's
  printed normalization (numerators 2γ and 2, with γ^k v_max) is [S] and
  follows from this one only when ‖q* − q_0‖ ≤ v_max/γ; this derived form is
  the one tested (RB-2).

  Args:
    eps_sup_trace: [K] ‖ε_j‖_∞ for j = 1..K (``ADPTrace.eps_sup``).
    k: 0 <= k <= K (int or int array); ``k = arange(K)`` lines up with ``trace.err_sup``.
    gamma: discount γ.
    q0_err: ‖q* − q_0‖_∞.
  """
  d = discounted_cumsum(jnp.asarray(eps_sup_trace), gamma)
  k = jnp.asarray(k)
  return 2.0 * gamma / (1.0 - gamma) * (d[k] + gamma ** k * q0_err)


def avi_asymptotic(limsup_eps, *, gamma) -> Array:
  """limsup_k ‖q* − q^{π_k}‖_∞ ≤ 2γ/(1 − γ)² limsup_k ‖ε_k‖_∞ (THEORY.md §2.7) [D].

  The quadratic horizon is tight for AVI (Scherrer & Lesner 2012, cited by the paper) [P].
  Tested: :func:`avi_bound` with a constant error trace tends to it from below.
  """
  return 2.0 * gamma / (1.0 - gamma) ** 2 * limsup_eps


# -----------------------------------------------------------------------------
# Entropy bias (THEORY.md §2.6, §8; Geist, Scherrer & Pietquin 2019)
# -----------------------------------------------------------------------------


def entropy_bias(tau, num_actions, gamma) -> Array:
  """‖q* − q^{π*_τ}‖_∞ ≤ τ ln|A| / (1 − γ): the cost of acting with the entropy-optimal policy [P].

  Vieillard et al. 2020 §4, citing Geist et al. 2019 (THEORY.md §2.6, LA-11);
  checked exactly in ``tests/test_bounds.py`` and ``studies/rb_bias.py``.
  """
  return tau * jnp.log(num_actions) / (1.0 - gamma)


def entropy_q_bias(tau, num_actions, gamma) -> Array:
  """0 ≤ q*_τ − q* ≤ γ τ ln|A| / (1 − γ): the bias of the soft optimal values (THEORY.md §8) [D]."""
  return gamma * tau * jnp.log(num_actions) / (1.0 - gamma)


# -----------------------------------------------------------------------------
# Munchausen VI, α = 1 (THEORY.md §3.4)
# -----------------------------------------------------------------------------


def munchausen_alpha1_linf(avg_eps_sup, k, *, gamma, r_max, tau, num_actions, mdp=None) -> Array:
  r"""The α = 1 bound of Munchausen VI: M-VI(1, τ) is MD-VI(τ, 0), so Theorem 1 applies with λ = τ (THEORY.md §3.4).

      ‖q* − q_{π_k}‖_∞ ≤ 2/(1 − γ) ‖(1/k) Σ_{j=1}^k ε_j‖_∞ + 4/(1 − γ)² (r_max + τ ln|A|)/k,
      π_k = softmax(q_{k−1}/τ).

  Source: Vieillard, Pietquin & Geist 2020 (*Munchausen RL*, NeurIPS, arXiv 2007.14430) state the α = 1
  case after their Theorem 1 (the M-VI ≡ MD-VI(ατ, (1 − α)τ) equivalence, §3.3) as a consequence of
  *Leverage the Average* Theorem 1 [S]; the constants of that printed statement are UNCONFIRMED. This is
  the derived form [D]: :func:`theorem1_linf` with λ = τ, under its hypotheses for the MD-VI iterates
  q'_k = q_k − τ ln π_k (start M-VI from q_0 = −τ ln|A| to get q'_0 = 0). Tested form: exactly this one,
  at every k, under N1 (MV-3, ``studies/mv_robustness.py``). Indexing as :func:`theorem1_linf`: pass
  ``MVITrace.avg_eps_sup`` and ``k = arange(1, K + 1)`` to line up with ``MVITrace.err_sup``.

  Args:
    avg_eps_sup: ‖(1/k) Σ_{j≤k} ε_j‖_∞ (``MVITrace.avg_eps_sup``).
    k: iteration index k >= 1.
    gamma: discount.
    r_max: bound on |r|.
    mdp: optional; if given, r_max is checked against max |r| of ``mdp.r`` (:func:`check_r_max`).
    tau: the M-VI temperature τ (the KL weight λ = ατ = τ of the equivalent MD-VI).
    num_actions: |A|.
  """
  check_r_max(r_max, mdp)
  return theorem1_linf(avg_eps_sup, k, gamma=gamma, r_max=r_max, lam=tau, num_actions=num_actions)


# -----------------------------------------------------------------------------
# Demonstration-regularized RL (THEORY.md §6; Tiapkin et al., ICLR 2024, arXiv 2310.17303)
# -----------------------------------------------------------------------------


def dr_bc_corollary1(n, *, num_states, num_actions, horizon, delta) -> Array:
  r"""Corollary 1 (finite MDPs, N^E >= A): w.p. >= 1 − δ, KL_traj(π^E‖π^BC) is at most [P]

      6 S A H log(2 e⁴ N^E) log(12 H (N^E)² / δ) / N^E + 18 A H / N^E

  for the add-one behaviour-cloning estimator (THEORY.md §6.2).

  Args:
    n: number of expert trajectories N^E (may be an array).
    num_states, num_actions, horizon: S, A, H.
    delta: confidence δ in (0, 1).
  """
  S, A, H = num_states, num_actions, horizon
  return (6.0 * S * A * H * jnp.log(2.0 * jnp.e**4 * n) * jnp.log(12.0 * H * n**2 / delta) + 18.0 * A * H) / n


def dr_bc_lower_bound(n, *, num_states, num_actions, horizon, gamma=None) -> Array:
  r"""Corollary 4's minimax lower bound H S A / (128 N log(e²/γ)), γ <= 1/(2A) (default 1/(2A)) [P].

  A worst case over instances (stated for HSA >= 40, A >= 2, H >= 2, N >= 512 e² HSA): a reference for
  the order HSA/N, not a bound on a given instance's KL (THEORY.md §6.2).
  """
  S, A, H = num_states, num_actions, horizon
  g = 1.0 / (2.0 * A) if gamma is None else gamma
  return H * S * A / (128.0 * n * jnp.log(jnp.e**2 / g))


def dr_decomposition(eps_e, kl, eps_opt, *, lam) -> Array:
  r"""Theorem 2: V*_1 − V^{π̂}_1 <= ε_E + λ KL_traj(π^E‖π^BC) + ε_opt for an ε_opt-optimal π̂ of the
  λ-regularized objective (THEORY.md §6.3) [P][D]."""
  return eps_e + lam * kl + eps_opt


def dr_rlhf_theorem8(eps_e, eps_rl, eps_rm_sq, kl, *, lam, horizon) -> Array:
  r"""Theorem 8 (λ >= H): V*_1 − V^{π^RL}_1 <= 3(ε_E + ε_RL) + (9/H) ε_RM² + (λ + 4H) ε_KL² (THEORY.md §6.5) [P].

  ε_KL² = KL_traj(π^E‖π^BC). The testbed's ε_RM² is the mean squared error of the fitted reward's return
  differences on π^BC's trajectory pairs; the paper's exact definition of ε_RM is UNCONFIRMED.
  """
  return 3.0 * (eps_e + eps_rl) + 9.0 / horizon * eps_rm_sq + (lam + 4.0 * horizon) * kl


__all__ += ["dr_bc_corollary1", "dr_bc_lower_bound", "dr_decomposition", "dr_rlhf_theorem8"]
