r"""Demonstration-regularized RL: behaviour cloning, KL-regularized exploration toward π^BC, and RLHF.

After Tiapkin, Belomestny, Calandriello, Moulines, Munos, Naumov, Perrault, Valko & Ménard,
*Demonstration-Regularized RL* (ICLR 2024, arXiv 2310.17303); THEORY.md §6.

Setting (§6.1). An episodic finite-horizon MDP (:class:`~mdptheory.types.FiniteHorizonMDP`: ``P[h, s, a, s']``,
``r[h, s, a]`` in [0, 1], ``mu0[s]``; the paper's fixed initial state s_1 is ``mu0`` one-hot, and with a
general ``mu0`` every value below is the ``mu0``-average of the per-state one). Policies are non-stationary,
``pi[h, s, a]``. An expert π^E is ε_E-optimal, ε_E = V*_1 − V^{π^E}_1; the data are N^E expert trajectories
(states and actions, no rewards). The trajectory KL is
KL_traj(π‖π') = E_π Σ_h KL(π_h(·|s_h) ‖ π'_h(·|s_h)) = Σ_h Σ_s d^π_h(s) KL(π_h(·|s) ‖ π'_h(·|s)), with d^π_h the
state occupancy (:func:`occupancy`, :func:`trajectory_kl`).

Pieces, each with its section of THEORY.md:

* Experts (§6.1): :func:`optimal_expert`, :func:`soft_expert` (softmax of the entropy-regularized optimum at a
  temperature), :func:`noisy_expert` (mixture with the uniform policy); each carries its exact ε_E.
* Demonstrations: :class:`Demonstrations` (validated ``states``/``actions`` [N, H]) and
  :func:`sample_demonstrations` (jittable; trajectory i is driven by row i of one block of uniforms, so the
  first n trajectories do not depend on how many are drawn and nested datasets share their prefix).
* Behaviour cloning (§6.2): :func:`behavior_cloning`, π^BC_h(a|s) = (N_h(s, a) + κ)/(N_h(s) + Aκ); κ = 1 is the
  paper's estimator (Remark 1: maximum likelihood with the regularizer Σ_{s,a} log(1/π_h(a|s))).
* The regularized objective (§6.3): :func:`regularized_solution` solves max_π V^π_1 − λ KL_traj(π‖π^BC) exactly by
  soft backward induction with π^BC as the prior; :func:`decomposition` evaluates Theorem 2's bound
  V*_1 − V^{π̂}_1 <= ε_E + λ KL_traj(π^E‖π^BC) + ε_opt term by term.
* Exploration (§6.4): :func:`ucbvi_ent_plus`, the paper's UCBVI-Ent+ (KL-type Hoeffding bonuses, clipped
  upper and lower regularized values, the mixture sampling rule, the G-based stopping rule);
  :func:`ucbvi_simplified`, the SIMPLIFIED variant of THEORY.md §6.4 (a labelled baseline, not the paper's
  algorithm), which at λ = 0 is the no-demonstration baseline :func:`no_demonstration_bpi`.
* RLHF (§6.5, the paper's Algorithm 2): :func:`sample_preferences` (trajectory pairs from π^BC, Bradley–Terry
  preferences over returns), :func:`fit_reward_mle` (bounded maximum likelihood with scipy),
  :func:`rlhf` (regularized best-policy identification toward π^BC with the estimated reward) and
  Theorem 8's terms.

Every jittable function is pure; hyperparameters (λ, ε, κ, the bonus scale) may be traced, so a sweep over
seeds, λ or N^E is one ``jit(vmap(...))``; sizes and episode budgets are static. Concrete inputs are
validated in numpy at the public boundary (:mod:`mdptheory.validate`); traced values pass through.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from mdptheory import bounds, metrics
from mdptheory import regularizers as R
from mdptheory import solvers
from mdptheory import validate as V
from mdptheory.errors import NonFiniteError, ParameterError, ShapeError, SupportMismatchError
from mdptheory.types import FiniteHorizonMDP

Array = jax.Array

__all__ = [
    "BPIResult", "Decomposition", "Demonstrations", "Expert", "Preferences", "RLHFResult",
    "behavior_cloning", "bc_policy", "beta_kl", "decomposition", "fit_reward_mle", "no_demonstration_bpi",
    "noisy_expert", "occupancy", "optimal_expert", "policy_value", "regularized_gap", "regularized_solution",
    "regularized_value", "return_variance", "rlhf", "rlhf_terms", "sample_demonstrations", "sample_preferences",
    "sample_trajectory", "soft_expert", "suboptimality", "trajectory_kl", "trajectory_returns", "ucbvi_ent_plus",
    "ucbvi_simplified", "visit_counts",
]


# ----------------------------------------------------------------------------- validation helpers


def _check_fmdp(fmdp: Any) -> FiniteHorizonMDP:
  if not isinstance(fmdp, FiniteHorizonMDP):
    raise ParameterError(f"expected a FiniteHorizonMDP (P[h, s, a, s'], r[h, s, a], mu0[s]), got "
                         f"{type(fmdp).__name__}; build one with FiniteHorizonMDP.create or envs.make('garnet_fh')")
  return fmdp


def _check_fh_policy(pi: Any, fmdp: FiniteHorizonMDP, name: str = "pi") -> Array:
  """A concrete policy [H, S, A] with rows on the simplex (renormalized); traced values pass through."""
  if V.is_traced(pi):
    return pi
  H, S, A = fmdp.horizon, fmdp.num_states, fmdp.num_actions
  arr = V.as_real_array(name, pi)
  if arr.shape != (H, S, A):
    raise ShapeError(f"{name} must have shape (H, S, A) = {(H, S, A)}, got {arr.shape}")
  arr = V.check_stochastic(name, arr, what="row", index_names=("h", "s"))
  return jnp.asarray(arr, fmdp.r.dtype)


def _check_lam(lam: Any, *, allow_zero: bool = False) -> Any:
  return V.check_positive("lam", lam, allow_zero=allow_zero,
                          hint="; lam is the KL weight toward pi_BC (THEORY.md §6.3)")


def _check_budget(max_episodes: Any, chunk: Any) -> tuple[int, int]:
  T = V.check_int("max_episodes", max_episodes, minimum=1)
  c = V.check_int("chunk", chunk, minimum=1)
  return T, min(c, T)


def _check_delta(delta: Any) -> Any:
  d = V.check_real_scalar("delta", delta)
  if not V.is_traced(d) and not 0.0 < d < 1.0:
    raise ParameterError(f"delta={d} is a confidence level and must be in (0, 1), e.g. delta=0.1")
  return d


def _as_key(key: Any) -> Array:
  """A JAX key from an int seed or a key; a bool, a string or a batch of keys is a ParameterError."""
  return V.check_key(key)


def _categorical(u: Array, p: Array) -> Array:
  """Inverse-CDF draw from the weights ``p`` [n] with the uniform ``u`` in [0, 1); zero weights are never drawn."""
  c = jnp.cumsum(p)
  return jnp.minimum(jnp.sum(c < u * c[-1]), p.shape[-1] - 1).astype(jnp.int32)


# ----------------------------------------------------------------------------- values and experts


def _backward_values(P: Array, r: Array, pi: Array, penalty: Array | None = None) -> Array:
  """v_h = Σ_a π_h (r_h + P_h v_{h+1}) − penalty_h, v_{H+1} = 0.  Returns v [H + 1, S]."""
  H, S = r.shape[0], r.shape[1]
  pen = jnp.zeros((H, S), r.dtype) if penalty is None else penalty

  def step(v_next, h):
    q = r[h] + jnp.einsum("sat,t->sa", P[h], v_next)
    v = jnp.sum(jnp.where(pi[h] > 0, pi[h] * q, 0.0), axis=-1) - pen[h]
    return v, v

  v_end = jnp.zeros(S, r.dtype)
  _, v = lax.scan(step, v_end, jnp.arange(H), reverse=True)
  return jnp.concatenate([v, v_end[None]])


def policy_value(fmdp: FiniteHorizonMDP, pi: Array, *, r: Array | None = None) -> Array:
  """V^π_1 = Σ_s mu0(s) V^π_1(s) by backward recursion (THEORY.md §6.1).  [] ; jittable.

  Args:
    fmdp: the finite-horizon MDP.
    pi: [H, S, A] policy.
    r: [H, S, A] reward to evaluate with (default ``fmdp.r``; the RLHF pipeline passes r̂).
  """
  r = fmdp.r if r is None else r
  return fmdp.mu0 @ _backward_values(fmdp.P, r, pi)[0]


def _optimal_value(fmdp: FiniteHorizonMDP, r: Array | None = None) -> Array:
  m = fmdp if r is None else fmdp._replace(r=r)
  return m.mu0 @ solvers.backward_induction(m).v[0]


def suboptimality(fmdp: FiniteHorizonMDP, pi: Array) -> Array:
  """V*_1 − V^π_1 >= 0 (``mu0``-averaged), exact.  [] ; jittable."""
  return _optimal_value(fmdp) - policy_value(fmdp, pi)


class Expert(NamedTuple):
  """An expert policy with its exact suboptimality ε_E (THEORY.md §6.1)."""
  pi: Array      # [H, S, A]  π^E
  subopt: Array  # []         ε_E = V*_1 − V^{π^E}_1 >= 0


def optimal_expert(fmdp: FiniteHorizonMDP) -> Expert:
  """The optimal (deterministic, first-maximizer) policy of hard backward induction; ε_E = 0 up to round-off."""
  pi = solvers.backward_induction(fmdp).pi
  return Expert(pi, suboptimality(fmdp, pi))


def soft_expert(fmdp: FiniteHorizonMDP, *, tau) -> Expert:
  """π^E_h ∝ exp(Q^τ_h / τ), the optimum of the entropy-regularized problem at temperature τ > 0.

  As τ → 0 it tends to an optimal policy; ε_E is computed exactly (it is at most τ H log A).
  """
  tau = V.check_positive("tau", tau, hint="; tau is the expert's temperature (use optimal_expert for tau = 0)")
  pi = solvers.backward_induction(fmdp, R.entropy(tau)).pi
  return Expert(pi, suboptimality(fmdp, pi))


def noisy_expert(fmdp: FiniteHorizonMDP, *, noise, base: Array | None = None) -> Expert:
  """π^E = (1 − η) π_base + η · uniform, η = ``noise`` in [0, 1] (π_base: the optimal policy by default)."""
  eta = V.check_real_scalar("noise", noise)
  if not V.is_traced(eta) and not 0.0 <= eta <= 1.0:
    raise ParameterError(f"noise={eta} is a mixing weight and must be in [0, 1]")
  base = solvers.backward_induction(fmdp).pi if base is None else _check_fh_policy(base, fmdp, "base")
  pi = (1.0 - eta) * base + eta / fmdp.num_actions
  return Expert(pi, suboptimality(fmdp, pi))


# ----------------------------------------------------------------------------- demonstrations


class Demonstrations(NamedTuple):
  """N expert trajectories of length H: s^i_h and a^i_h (0-based stages h = 0..H−1)."""
  states: Array   # [N, H] int32  s^i_h
  actions: Array  # [N, H] int32  a^i_h

  @property
  def num_trajectories(self) -> int:
    return self.states.shape[0]

  @property
  def horizon(self) -> int:
    return self.states.shape[1]

  @classmethod
  def create(cls, states: Any, actions: Any, *, num_states: int, num_actions: int,
             horizon: int | None = None) -> "Demonstrations":
    """Validates and builds a dataset.

    Args:
      states: [N, H] state indices in [0, S).
      actions: [N, H] action indices in [0, A).
      num_states: S.
      num_actions: A.
      horizon: H; every trajectory must have exactly H steps (default: the second axis of ``states``).

    Raises:
      ShapeError: an empty dataset, a rank other than 2, mismatched shapes, a trajectory whose length is
        not H, or an index out of range (naming the trajectory, the step and the value).
      NonFiniteError: a NaN or inf entry.
      ParameterError: a non-integer entry.
    """
    S = V.check_int("num_states", num_states, minimum=1)
    A = V.check_int("num_actions", num_actions, minimum=1)
    out = []
    for name, x, size, what in (("states", states, S, "state"), ("actions", actions, A, "action")):
      if isinstance(x, (list, tuple)) and len(x) == 0:
        raise ShapeError(f"{name} is empty (0 trajectories); behaviour cloning needs at least one expert "
                         f"trajectory: pass N^E >= 1 trajectories of shape (N, H)")
      try:
        arr = np.asarray(x)
      except Exception as e:  # ragged lists
        raise ShapeError(f"{name} cannot be converted to an (N, H) array ({e}); every trajectory must have "
                         f"the same length H") from e
      if arr.dtype == object:
        raise ShapeError(f"{name} is ragged (trajectories of different lengths); every trajectory must have "
                         f"exactly H steps")
      if arr.dtype.kind not in "biuf":
        raise ParameterError(f"{name} has dtype {arr.dtype}; pass integer {what} indices")
      if arr.ndim != 2:
        raise ShapeError(f"{name} must have shape (N, H) (trajectories x steps), got shape {arr.shape}")
      if arr.shape[0] == 0:
        raise ShapeError(f"{name} is empty (0 trajectories); behaviour cloning needs at least one expert "
                         f"trajectory: pass N^E >= 1 trajectories of shape (N, H)")
      if horizon is not None and arr.shape[1] != horizon:
        raise ShapeError(f"{name} has trajectories of length {arr.shape[1]} but the horizon is H = {horizon}; "
                         f"every trajectory must have exactly H (state, action) pairs")
      if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
          i, h = (int(v) for v in np.argwhere(bad)[0])
          raise NonFiniteError(f"{name}[{i}, {h}] (trajectory {i}, step {h}) is {arr[i, h]}; a {what} index must "
                               f"be a finite integer: drop or repair trajectory {i}")
        frac = arr != np.round(arr)
        if frac.any():
          i, h = (int(v) for v in np.argwhere(frac)[0])
          raise ParameterError(f"{name}[{i}, {h}] (trajectory {i}, step {h}) = {arr[i, h]} is not an integer "
                               f"{what} index")
      bad = (arr < 0) | (arr >= size)
      if bad.any():
        i, h = (int(v) for v in np.argwhere(bad)[0])
        letter = "S" if what == "state" else "A"
        raise ShapeError(f"{name}[{i}, {h}] (trajectory {i}, step {h}) = {int(arr[i, h])} is not "
                         f"{'an' if what == 'action' else 'a'} {what} index "
                         f"in [0, {size}) ({letter} = {size}; {int(bad.sum())} such entries); {what}s are "
                         f"numbered 0..{size - 1}")
      out.append(arr.astype(np.int32))
    if out[0].shape != out[1].shape:
      raise ShapeError(f"states {out[0].shape} and actions {out[1].shape} must have the same shape (N, H)")
    return cls(jnp.asarray(out[0]), jnp.asarray(out[1]))


def _check_demos(demos: Any, num_states: int, num_actions: int, horizon: int | None = None) -> None:
  """Concrete demonstrations must index [0, S) x [0, A) and, when ``horizon`` is given, have H steps.

  JAX's scatter drops out-of-range indices silently, so a dataset from a larger MDP (or a wrong
  ``num_states``) would otherwise give a wrong policy without an error. Traced arrays pass.
  """
  if not isinstance(demos, Demonstrations):
    raise ParameterError(f"demos must be a Demonstrations (from Demonstrations.create or sample_demonstrations), "
                         f"got {type(demos).__name__}")
  if horizon is not None and demos.states.shape[-1] != horizon:
    raise ShapeError(f"demos have horizon {demos.states.shape[-1]} but the MDP has H = {horizon}; every "
                     f"trajectory must have exactly H (state, action) pairs")
  for name, x, size, what in (("states", demos.states, num_states, "state"),
                              ("actions", demos.actions, num_actions, "action")):
    if V.is_traced(x):
      continue
    arr = np.asarray(x)
    bad = (arr < 0) | (arr >= size)
    if bad.any():
      idx = tuple(int(i) for i in np.argwhere(bad)[0])
      raise ShapeError(
          f"demos.{name}{list(idx)} = {int(arr[idx])} is not {'an' if what == 'action' else 'a'} {what} index in "
          f"[0, {size}) ({int(bad.sum())} such entries); the demonstrations come from a larger MDP, or "
          f"num_{what}s={size} is wrong")


def _trajectory(u: Array, fmdp: FiniteHorizonMDP, pi: Array) -> tuple[Array, Array]:
  """The trajectory of π driven by the uniforms ``u`` [2H + 1] (inverse CDF): s_1 from u[0], then a_h from
  u[1 + 2h] and s_{h+1} from u[2 + 2h].  -> states [H], actions [H].  (H is static: the loop is unrolled.)"""
  s = _categorical(u[0], fmdp.mu0)
  states, actions = [], []
  for h in range(fmdp.horizon):
    a = _categorical(u[1 + 2 * h], pi[h, s])
    states.append(s)
    actions.append(a)
    s = _categorical(u[2 + 2 * h], fmdp.P[h, s, a])
  return jnp.stack(states), jnp.stack(actions)


def sample_trajectory(key: Array, fmdp: FiniteHorizonMDP, pi: Array) -> tuple[Array, Array]:
  """One trajectory of π: s_1 ~ mu0, a_h ~ π_h(·|s_h), s_{h+1} ~ P_h(·|s_h, a_h).  -> states [H], actions [H].

  Jittable; 2H + 1 uniforms from ``key`` drive the draws (inverse CDF).
  """
  u = jax.random.uniform(key, (2 * fmdp.horizon + 1,), dtype=fmdp.r.dtype)
  return _trajectory(u, fmdp, pi)


def sample_demonstrations(key: Any, fmdp: FiniteHorizonMDP, policy: Any, num_trajectories: int) -> Demonstrations:
  """N i.i.d. trajectories of ``policy`` (THEORY.md §6.1).

  Trajectory i is driven by row i of ``jax.random.uniform(key, (N, 2H + 1))``. With JAX's (default)
  partitionable threefry every entry's random bits depend only on its index, so the first n trajectories
  are the same for every ``num_trajectories >= n``: datasets of growing N^E drawn from one key are nested.
  Jittable in ``key``, ``fmdp`` and ``policy`` (``num_trajectories`` is static).

  Args:
    key: JAX PRNG key or int seed.
    fmdp: the finite-horizon MDP.
    policy: [H, S, A] the expert (or any) policy, rows on the simplex.
    num_trajectories: N >= 1.

  Returns:
    :class:`Demonstrations` with ``states``, ``actions`` [N, H].
  """
  _check_fmdp(fmdp)
  N = V.check_int("num_trajectories", num_trajectories, minimum=1)
  pi = _check_fh_policy(policy, fmdp, "policy")
  u = jax.random.uniform(_as_key(key), (N, 2 * fmdp.horizon + 1), dtype=fmdp.r.dtype)
  states, actions = jax.vmap(lambda ui: _trajectory(ui, fmdp, pi))(u)
  return Demonstrations(states, actions)


# ----------------------------------------------------------------------------- behaviour cloning


def visit_counts(states: Array, actions: Array, num_states: int, num_actions: int,
                 weights: Array | None = None) -> Array:
  """N_h(s, a) = Σ_i w_i [s^i_h = s, a^i_h = a].  states, actions [N, H] -> [H, S, A]; jittable.

  ``weights`` [N] (default 1) lets a traced number of trajectories be used: ``weights = arange(N) < n``.
  """
  N, H = states.shape
  w = jnp.ones(N) if weights is None else weights
  counts = jnp.zeros((H, num_states, num_actions), jnp.result_type(w, float))
  h_idx = jnp.broadcast_to(jnp.arange(H), (N, H))
  return counts.at[h_idx, states, actions].add(jnp.broadcast_to(w[:, None], (N, H)))


def bc_policy(counts: Array, *, kappa) -> Array:
  """π^BC_h(a|s) = (N_h(s, a) + κ) / (N_h(s) + Aκ) (THEORY.md §6.2); uniform where N_h(s) + Aκ = 0.  [H, S, A].

  κ = 1 is the paper's add-one estimator (Remark 1); κ = 0 is the plain maximum-likelihood estimate, which
  puts zero probability on every action not seen at a visited (h, s).
  """
  A = counts.shape[-1]
  num = counts + kappa
  den = jnp.sum(counts, axis=-1, keepdims=True) + A * kappa
  return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 1.0 / A)


def behavior_cloning(demos: Demonstrations, num_states: int, num_actions: int, *, kappa=1.0,
                     num_used: Any = None) -> Array:
  """Behaviour cloning π^BC from demonstrations (THEORY.md §6.2; Tiapkin et al. 2024, Remark 1).  [H, S, A].

  Args:
    demos: the dataset (validate it with :meth:`Demonstrations.create`).
    num_states: S.
    num_actions: A.
    kappa: smoothing weight κ >= 0; κ = 1 is the paper's add-one smoothing.
    num_used: use only the first ``num_used`` trajectories (may be traced; default all).

  Raises:
    ShapeError: a state or action of ``demos`` outside [0, S) or [0, A) (JAX would drop it silently).
  """
  S = V.check_int("num_states", num_states, minimum=1)
  A = V.check_int("num_actions", num_actions, minimum=1)
  _check_demos(demos, S, A)
  kappa = V.check_positive("kappa", kappa, allow_zero=True,
                           hint="; kappa is the smoothing weight (the paper's add-one smoothing is kappa=1)")
  weights = None
  if num_used is not None:
    if not V.is_traced(num_used):
      V.check_int("num_used", num_used, minimum=1)
    weights = (jnp.arange(demos.num_trajectories) < num_used).astype(float)
  return bc_policy(visit_counts(demos.states, demos.actions, S, A, weights), kappa=kappa)


# ----------------------------------------------------------------------------- trajectory KL


def occupancy(fmdp: FiniteHorizonMDP, pi: Array) -> Array:
  """d^π_h(s) = Pr_π(s_h = s): d_1 = mu0, d_{h+1}(s') = Σ_{s,a} d_h(s) π_h(a|s) P_h(s'|s, a).  [H, S]; jittable."""
  def step(d, h):
    return jnp.einsum("s,sa,sat->t", d, pi[h], fmdp.P[h]), d

  _, d = lax.scan(step, fmdp.mu0, jnp.arange(fmdp.horizon))
  return d


def _check_support(fmdp: FiniteHorizonMDP, pi: Array, pi_ref: Array, name: str) -> None:
  d = np.asarray(occupancy(fmdp, pi))
  p, q = np.asarray(pi), np.asarray(pi_ref)
  bad = (d[..., None] > 0) & (p > 0) & (q <= 0)
  if bad.any():
    h, s, a = (int(v) for v in np.argwhere(bad)[0])
    raise SupportMismatchError(
        f"{name}[h={h}, s={s}, a={a}] = 0 but pi puts mass {p[h, s, a]:.3g} on it at a state reached with "
        f"probability {d[h, s]:.3g} ({int(bad.sum())} such entries), so KL_traj(pi || {name}) is infinite; a "
        f"behaviour-cloning policy with kappa = 0 leaves zeros at unseen (s, a): use kappa > 0 (the paper's "
        f"add-one smoothing is kappa = 1)")


def trajectory_kl(fmdp: FiniteHorizonMDP, pi: Any, pi_ref: Any) -> Array:
  """KL_traj(π‖π_ref) = Σ_h Σ_s d^π_h(s) KL(π_h(·|s) ‖ π_ref,h(·|s)) (THEORY.md §6.1).  [].

  Exact, through the occupancy of π (equal to E_π log(p_π(τ)/p_{π_ref}(τ)), the KL between the trajectory
  laws). Jittable; with concrete inputs the support is checked first.

  Raises:
    SupportMismatchError: π_ref(a|s) = 0 where π plays a at a reachable (h, s), e.g. π_ref = π^BC with κ = 0.
  """
  _check_fmdp(fmdp)
  pi = _check_fh_policy(pi, fmdp, "pi")
  pi_ref = _check_fh_policy(pi_ref, fmdp, "pi_ref")
  if not (V.is_traced(pi) or V.is_traced(pi_ref) or V.is_traced(fmdp.P)):
    _check_support(fmdp, pi, pi_ref, "pi_ref")
  return _trajectory_kl(fmdp, pi, pi_ref)


def _trajectory_kl(fmdp: FiniteHorizonMDP, pi: Array, pi_ref: Array) -> Array:
  d = occupancy(fmdp, pi)
  kl = metrics.kl(pi, pi_ref)                       # [H, S], +inf off the support
  return jnp.sum(jnp.where(d > 0, d * kl, 0.0))


# ----------------------------------------------------------------------------- the regularized objective


def _kl_reg(pi_ref: Array, lam):
  return lambda h: R.kl(pi_ref[h], lam)


def regularized_solution(fmdp: FiniteHorizonMDP, pi_ref: Array, *, lam, r: Array | None = None
                         ) -> solvers.FiniteHorizonResult:
  """argmax_π V^π_1 − λ KL_traj(π‖π_ref), exactly, by soft backward induction with π_ref as prior (THEORY.md §6.3).

  Q_h = r_h + P_h V_{h+1}, V_h(s) = λ log Σ_a π_ref,h(a|s) e^{Q_h(s,a)/λ}, π^λ_h ∝ π_ref,h e^{Q_h/λ}, V_{H+1} = 0.
  ``result.v[0]`` is the regularized optimum per initial state. Jittable (``lam`` may be traced).

  Args:
    fmdp: the finite-horizon MDP.
    pi_ref: [H, S, A] the prior (π^BC); zeros restrict π^λ to its support.
    lam: KL weight λ > 0.
    r: [H, S, A] reward (default ``fmdp.r``).
  """
  lam = _check_lam(lam)
  _check_fmdp(fmdp)
  pi_ref = _check_fh_policy(pi_ref, fmdp, "pi_ref")  # a prior off the simplex would give NaN values
  if r is not None and not V.is_traced(r):
    arr = V.as_real_array("r", r)
    if arr.shape != tuple(fmdp.r.shape):
      raise ShapeError(f"r must have shape (H, S, A) = {tuple(fmdp.r.shape)}, got {arr.shape}")
    V.check_finite("r", arr)
    r = jnp.asarray(arr, fmdp.r.dtype)
  m = fmdp if r is None else fmdp._replace(r=r)
  return solvers.backward_induction(m, _kl_reg(pi_ref, lam))


def regularized_value(fmdp: FiniteHorizonMDP, pi: Array, pi_ref: Array, *, lam, r: Array | None = None) -> Array:
  """V^π_1 − λ KL_traj(π‖π_ref) (``mu0``-averaged), by regularized backward evaluation.  []; jittable."""
  m = fmdp if r is None else fmdp._replace(r=r)
  pen = lam * metrics.kl(pi, pi_ref)
  return m.mu0 @ _backward_values(m.P, m.r, pi, pen)[0]


def regularized_gap(fmdp: FiniteHorizonMDP, pi: Array, pi_ref: Array, *, lam, r: Array | None = None) -> Array:
  """ε_opt(π) = max_π' [V^π' − λ KL_traj(π'‖π_ref)] − [V^π − λ KL_traj(π‖π_ref)] >= 0.  []; jittable."""
  m = fmdp if r is None else fmdp._replace(r=r)
  best = m.mu0 @ solvers.backward_induction(m, _kl_reg(pi_ref, lam)).v[0]
  return best - regularized_value(fmdp, pi, pi_ref, lam=lam, r=r)


class Decomposition(NamedTuple):
  """Theorem 2 of Tiapkin et al. (2024), term by term (THEORY.md §6.3)."""
  eps_e: Array    # []  ε_E = V*_1 − V^{π^E}_1
  kl: Array       # []  KL_traj(π^E ‖ π^BC)  (ε_KL² in the paper)
  lam_kl: Array   # []  λ KL_traj(π^E ‖ π^BC)
  eps_opt: Array  # []  regularized gap of π̂ (ε_RL)
  subopt: Array   # []  V*_1 − V^{π̂}_1, the measured suboptimality
  bound: Array    # []  ε_E + λ KL_traj(π^E‖π^BC) + ε_opt


def decomposition(fmdp: FiniteHorizonMDP, expert: Expert, pi_bc: Array, pi_hat: Array, *, lam) -> Decomposition:
  """V*_1 − V^{π̂}_1 <= ε_E + λ KL_traj(π^E‖π^BC) + ε_opt (Theorem 2; THEORY.md §6.3).  Jittable.

  Holds exactly for every π̂ with ε_opt its regularized gap, because
  V^{π̂} >= V^{π̂} − λ KL(π̂‖π^BC) = max − ε_opt >= V^{π^E} − λ KL(π^E‖π^BC) − ε_opt.
  """
  eps_e = expert.subopt
  kl = _trajectory_kl(fmdp, expert.pi, pi_bc)
  eps_opt = regularized_gap(fmdp, pi_hat, pi_bc, lam=lam)
  subopt = suboptimality(fmdp, pi_hat)
  return Decomposition(eps_e, kl, lam * kl, eps_opt, subopt, eps_e + lam * kl + eps_opt)


# ----------------------------------------------------------------------------- exploration (§6.4)


class BPIResult(NamedTuple):
  """Result of a best-policy-identification run with a fixed episode budget (THEORY.md §6.4)."""
  pi: Array                 # [H, S, A]  output policy: π̄ when the stopping rule fired (else at the budget)
  episodes: Array           # []         episodes sampled before the stopping rule fired (the budget if it never did)
  stopped: Array            # []         True iff the stopping rule fired within the budget
  certificate: Array        # []         the stopping statistic at the output (mu0-averaged G_1, or V̄_1 − V̲_1)
  counts: Array             # [H, S, A]  visits n_h(s, a) at the end
  trace_episodes: Array     # [C]        episodes sampled at each checkpoint (every ``chunk`` episodes)
  trace_certificate: Array  # [C]        the statistic at each checkpoint (at the stop for the last one run; NaN after)


def beta_kl(n: Array, *, num_states: int, num_actions: int, horizon: int, delta) -> Array:
  """β^KL(δ, n) = log(2SAH/δ) + S log(e(1 + n)), the paper's KL-type threshold (THEORY.md §6.4)."""
  S, A, H = num_states, num_actions, horizon
  return jnp.log(2.0 * S * A * H / delta) + S * (1.0 + jnp.log1p(n))


def _empirical(counts: Array) -> tuple[Array, Array]:
  n = jnp.sum(counts, axis=-1)                                          # [H, S, A]
  S = counts.shape[-1]
  p_hat = jnp.where(n[..., None] > 0, counts / jnp.maximum(n, 1.0)[..., None], 1.0 / S)
  return n, p_hat


def _plan_ent_plus(counts, r, log_ref, lam, delta, bonus_scale):
  """One planning step of UCBVI-Ent+ (THEORY.md §6.4): upper/lower regularized values and G.

  Returns (π̄ [H, S, A], G_1 [S], gap Q̄ − Q̲ [H, S, A]).
  """
  H, S, A, _ = counts.shape
  n, p_hat = _empirical(counts)
  beta = bonus_scale * beta_kl(n, num_states=S, num_actions=A, horizon=H, delta=delta)
  n1 = jnp.maximum(n, 1.0)
  b_p = jnp.where(n > 0, jnp.sqrt(2.0 * H**2 * beta / n1), jnp.inf)         # Hoeffding (KL-type) bonus
  b_gap = jnp.where(n > 0, jnp.minimum(5.0 * H**2 * beta / n1, H), H)
  v_up = v_lo = g = jnp.zeros(S, r.dtype)
  pis, gaps = [None] * H, [None] * H
  for h in reversed(range(H)):                                           # H is small and static: unrolled
    q_up = jnp.clip(r[h] + p_hat[h] @ v_up + b_p[h], 0.0, H)
    q_lo = jnp.clip(r[h] + p_hat[h] @ v_lo - b_p[h], 0.0, H)
    logits = log_ref[h] + q_up / lam
    pi = jax.nn.softmax(logits, axis=-1)
    v_up = lam * jax.nn.logsumexp(logits, axis=-1)                         # = <π̄, Q̄> − λ KL(π̄‖π̃)
    v_lo = lam * jax.nn.logsumexp(log_ref[h] + q_lo / lam, axis=-1)       # the regularized max of Q̲
    w = (1.0 + 1.0 / H) * (p_hat[h] @ g) + b_gap[h]
    gap = q_up - q_lo
    g = jnp.clip(jnp.sum(pi * w, -1) + jnp.max(gap**2, -1) / (2.0 * lam), 0.0, H)
    pis[h], gaps[h] = pi, gap
  return jnp.stack(pis), g, jnp.stack(gaps)


def _plan_simplified(counts, r, log_ref, lam, delta, bonus_scale):
  """One planning step of the SIMPLIFIED variant (THEORY.md §6.4 pseudo-code); λ = 0 is the hard max.

  Returns (π [H, S, A], V̄_1 − V̲_1 [S], Q̄ − Q̲ [H, S, A]).
  """
  H, S, A, _ = counts.shape
  n, p_hat = _empirical(counts)
  L = bonus_scale * beta_kl(n, num_states=S, num_actions=A, horizon=H, delta=delta)
  b = math.sqrt(2.0) * H * jnp.sqrt(L / jnp.maximum(n, 1.0))
  soft = lam > 0
  lam_s = jnp.where(soft, lam, 1.0)
  v_up = v_lo = jnp.zeros(S, r.dtype)
  pis, gaps = [None] * H, [None] * H
  for h in reversed(range(H)):
    q_up = jnp.minimum(H - h, r[h] + b[h] + p_hat[h] @ v_up)
    q_lo = jnp.maximum(0.0, r[h] - b[h] + p_hat[h] @ v_lo)
    logits = log_ref[h] + q_up / lam_s
    hard_pi = jax.nn.one_hot(jnp.argmax(q_up, -1), A, dtype=r.dtype)
    pi = jnp.where(soft, jax.nn.softmax(logits, -1), hard_pi)
    v_up = jnp.where(soft, lam_s * jax.nn.logsumexp(logits, -1), jnp.max(q_up, -1))
    ref = jnp.exp(log_ref[h])
    v_lo = jnp.sum(jnp.where(pi > 0, pi * q_lo, 0.0), -1) - jnp.where(soft, lam * metrics.kl(pi, ref), 0.0)
    pis[h], gaps[h] = pi, q_up - q_lo
  return jnp.stack(pis), v_up - v_lo, jnp.stack(gaps)


def _episode(u, P, mu0, pi, gap, deviate: bool):
  """One episode's (h, s, a, s') under π, or the mixture rule: uniform h' ∈ {0..H}, at step h' play argmax gap."""
  H = P.shape[0]
  h_dev = jnp.minimum(jnp.floor(u[0] * (H + 1)), H).astype(jnp.int32) - 1 if deviate else jnp.int32(-1)
  s = _categorical(u[1], mu0)
  out = []
  for h in range(H):
    a = _categorical(u[2 + 2 * h], pi[h, s])
    if deviate:
      a = jnp.where(h == h_dev, jnp.argmax(gap[h, s]).astype(jnp.int32), a)
    s_next = _categorical(u[3 + 2 * h], P[h, s, a])
    out.append((s, a, s_next))
    s = s_next
  return out


def _run_bpi(key, fmdp: FiniteHorizonMDP, plan, deviate: bool, *, eps, max_episodes: int,
             chunk: int) -> BPIResult:
  """The shared episode loop: plan, test the stopping rule, else sample one episode; a fixed budget.

  A ``lax.while_loop`` over chunks of ``chunk`` episodes (a ``lax.scan`` each) that ends when the rule has
  fired or the budget is spent; under ``jax.vmap`` every member of a batch stops on its own (its state is
  frozen once it has stopped).
  """
  H, S, A = fmdp.horizon, fmdp.num_states, fmdp.num_actions
  dt = fmdp.r.dtype
  num_chunks = -(-max_episodes // chunk)

  def step(carry, _):
    counts, t, stopped, pi_out, cert_out = carry
    pi, g, gap = plan(counts)
    cert = fmdp.mu0 @ g
    active = ~stopped & (t < max_episodes)
    fire = active & (cert <= eps)
    pi_out = jnp.where(active, pi, pi_out)
    cert_out = jnp.where(active, cert, cert_out)
    sample = active & ~fire
    u = jax.random.uniform(jax.random.fold_in(key, t), (2 * H + 2,), dtype=dt)
    inc = sample.astype(counts.dtype)
    for h, (s, a, s_next) in enumerate(_episode(u, fmdp.P, fmdp.mu0, pi, gap, deviate)):
      counts = counts.at[h, s, a, s_next].add(inc)
    return (counts, t + sample.astype(t.dtype), stopped | fire, pi_out, cert_out), None

  def body(state):
    i, carry, rec = state
    carry, _ = lax.scan(step, carry, None, length=chunk)
    rec = rec.at[i].set(carry[4])
    return i + 1, carry, rec

  def cond(state):
    i, carry, _ = state
    return (i < num_chunks) & ~carry[2]

  init = (jnp.zeros((H, S, A, S), dt), jnp.int32(0), jnp.asarray(False),
          jnp.full((H, S, A), 1.0 / A, dt), jnp.asarray(jnp.inf, dt))
  rec0 = jnp.full((num_chunks,), jnp.nan, dt)
  _, (counts, t, stopped, pi_out, cert_out), rec = lax.while_loop(cond, body, (jnp.int32(0), init, rec0))
  # At the budget without stopping: the output is the plan from all max_episodes episodes.
  pi_end, g_end, _ = plan(counts)
  pi_out = jnp.where(stopped, pi_out, pi_end)
  cert_out = jnp.where(stopped, cert_out, fmdp.mu0 @ g_end)
  trace_t = jnp.minimum((jnp.arange(num_chunks) + 1) * chunk, max_episodes)
  return BPIResult(pi_out, t, stopped, cert_out, jnp.sum(counts, -1), trace_t, rec)


def _prep(fmdp, pi_ref, lam, eps, delta, bonus_scale, max_episodes, chunk, *, allow_zero_lam):
  _check_fmdp(fmdp)
  pi_ref = _check_fh_policy(pi_ref, fmdp, "pi_ref")
  lam = _check_lam(lam, allow_zero=allow_zero_lam)
  eps = V.check_positive("eps", eps, allow_zero=True, hint="; eps is the target precision (0 runs the whole budget)")
  delta = _check_delta(delta)
  bonus_scale = V.check_positive("bonus_scale", bonus_scale,
                                 hint="; bonus_scale multiplies the paper's threshold beta^KL (1 = the paper)")
  T, c = _check_budget(max_episodes, chunk)
  return pi_ref, lam, eps, delta, bonus_scale, T, c


def ucbvi_ent_plus(key: Any, fmdp: FiniteHorizonMDP, pi_ref: Any, *, lam, eps, delta=0.1, bonus_scale=1.0,
                   max_episodes: int, chunk: int = 256, r: Array | None = None) -> BPIResult:
  r"""UCBVI-Ent+ (Tiapkin et al. 2024, §4 and App. D; THEORY.md §6.4), regularized BPI toward π̃ = ``pi_ref``.

  With counts n^t_h(s, a) and the empirical kernel p̂^t_h (uniform where n = 0), at every episode t:

  * KL-type Hoeffding bonus b^p = √(2H² β^KL(δ, n)/n), β^KL(δ, n) = log(2SAH/δ) + S log(e(1 + n)) (+∞ at n = 0);
  * upper values Q̄_h = clip(r_h + p̂_h V̄_{h+1} + b^p, 0, H), π̄_h ∝ π̃_h e^{Q̄_h/λ},
    V̄_h = λ log Σ_a π̃_h e^{Q̄_h/λ} = π̄_h Q̄_h − λ KL(π̄_h‖π̃_h);
  * lower values Q̲_h = clip(r_h + p̂_h V̲_{h+1} − b^p, 0, H), V̲_h = λ log Σ_a π̃_h e^{Q̲_h/λ} (a regularized max);
  * G_h = clip(π̄_h W_h + max_a (Q̄_h − Q̲_h)²/(2λ), 0, H), W_h = (1 + 1/H) p̂_h G_{h+1} + b^gap,
    b^gap = min(5H² β^KL/n, H) (H at n = 0), G_{H+1} = 0;
  * stopping rule: stop at the first t with G_1(s_1) <= ε (here the ``mu0``-average) and output π̄;
  * sampling rule: otherwise draw h' uniformly in {0, ..., H} and play π̄ except at step h' (if h' >= 1),
    where the action is argmax_a (Q̄_{h'} − Q̲_{h'})(s, a); one episode updates the counts.

  Theorem 5 (S >= 2, λ <= H): the number of episodes is O(H⁵SA(log(SAH/δ) + SL)L/(ελ)) and the output is
  ε-optimal for the regularized objective w.p. >= 1 − δ. ``bonus_scale`` multiplies β^KL (so b^p by its
  square root and b^gap linearly): 1 is the paper; smaller values are a documented speed-up for quick runs
  that voids the guarantee.

  Args:
    key: JAX PRNG key or int seed; episode t uses ``fold_in(key, t)``.
    fmdp: the MDP (rewards in [0, 1]); ``r`` overrides its reward (RLHF).
    pi_ref: [H, S, A] the prior π̃ (π^BC).
    lam: KL weight λ > 0.
    eps: target precision ε >= 0 (ε = 0 runs the whole budget).
    delta: confidence δ in (0, 1).
    bonus_scale: multiplier of β^KL (1 = the paper's constants).
    max_episodes: episode budget (static).
    chunk: episodes per ``lax.scan`` between stopping checks of the outer loop and per trace entry (static).

  Returns:
    :class:`BPIResult`.
  """
  pi_ref, lam, eps, delta, bonus_scale, T, c = _prep(fmdp, pi_ref, lam, eps, delta, bonus_scale, max_episodes,
                                                     chunk, allow_zero_lam=False)
  r = fmdp.r if r is None else r
  log_ref = R._safe_log(pi_ref)
  plan = lambda counts: _plan_ent_plus(counts, r, log_ref, lam, delta, bonus_scale)  # noqa: E731
  return _run_bpi(_as_key(key), fmdp, plan, True, eps=eps, max_episodes=T, chunk=c)


def ucbvi_simplified(key: Any, fmdp: FiniteHorizonMDP, pi_ref: Any, *, lam, eps, delta=0.1, bonus_scale=1.0,
                     max_episodes: int, chunk: int = 256, r: Array | None = None) -> BPIResult:
  r"""The SIMPLIFIED variant of THEORY.md §6.4 (a labelled baseline, NOT the paper's UCBVI-Ent+).

  b_h = √2 H √(L/max(1, n)) with L = ``bonus_scale`` · β^KL(δ, n) (the paper's b^p at n >= 1);
  Q̄_h = min(H − h + 1, r_h + b_h + p̂_h V̄_{h+1}), V̄_h = λ log Σ_a π̃ e^{Q̄_h/λ}, π_h ∝ π̃ e^{Q̄_h/λ};
  Q̲_h = max(0, r_h − b_h + p̂_h V̲_{h+1}), V̲_h = <π_h, Q̲_h> − λ KL(π_h‖π̃_h); stop when V̄_1 − V̲_1 <= ε, else roll
  out π once. λ = 0 is the hard max (π = argmax Q̄, first maximizer): unregularized optimistic BPI, the
  no-demonstration baseline. The statistic V̄_1 − V̲_1 is first order in the bonuses (no 1/λ fast rate).
  Arguments as in :func:`ucbvi_ent_plus`, with λ >= 0.
  """
  pi_ref, lam, eps, delta, bonus_scale, T, c = _prep(fmdp, pi_ref, lam, eps, delta, bonus_scale, max_episodes,
                                                     chunk, allow_zero_lam=True)
  r = fmdp.r if r is None else r
  log_ref = R._safe_log(pi_ref)
  plan = lambda counts: _plan_simplified(counts, r, log_ref, lam, delta, bonus_scale)  # noqa: E731
  return _run_bpi(_as_key(key), fmdp, plan, False, eps=eps, max_episodes=T, chunk=c)


def no_demonstration_bpi(key: Any, fmdp: FiniteHorizonMDP, *, eps, delta=0.1, bonus_scale=1.0,
                         max_episodes: int, chunk: int = 256) -> BPIResult:
  """The λ → 0 limit without demonstrations: :func:`ucbvi_simplified` at λ = 0 (hard max, uniform prior).

  UCBVI-Ent+'s own stopping statistic has a 1/(2λ) term and never certifies as λ → 0, so the unregularized
  upper−lower gap V̄_1 − V̲_1 <= ε is the stopping rule of this baseline.
  """
  _check_fmdp(fmdp)
  H, S, A = fmdp.horizon, fmdp.num_states, fmdp.num_actions
  uniform = jnp.full((H, S, A), 1.0 / A, fmdp.r.dtype)
  return ucbvi_simplified(key, fmdp, uniform, lam=0.0, eps=eps, delta=delta, bonus_scale=bonus_scale,
                          max_episodes=max_episodes, chunk=chunk)


# ----------------------------------------------------------------------------- RLHF (§6.5)


class Preferences(NamedTuple):
  """M trajectory pairs (τ⁰, τ¹) with a preference o = 1 iff τ¹ ≻ τ⁰."""
  states0: Array   # [M, H] int32
  actions0: Array  # [M, H] int32
  states1: Array   # [M, H] int32
  actions1: Array  # [M, H] int32
  prefer1: Array   # [M]    float, 1.0 iff τ¹ is preferred


def trajectory_returns(r: Array, states: Array, actions: Array) -> Array:
  """R(τ) = Σ_h r_h(s_h, a_h) per trajectory.  r [H, S, A], states/actions [N, H] -> [N]."""
  H = r.shape[0]
  return jnp.sum(r[jnp.arange(H)[None, :], states, actions], axis=-1)


def sample_preferences(key: Any, fmdp: FiniteHorizonMDP, pi: Any, num_pairs: int, *, bt_scale=1.0) -> Preferences:
  """M pairs of trajectories of π (the paper samples with π^BC) and Bradley–Terry preferences (THEORY.md §6.5).

  o ~ Bernoulli(σ(c (R*(τ¹) − R*(τ⁰)))) with R* the true return and c = ``bt_scale`` (the paper's σ with
  c = 1). Jittable in ``key``, ``fmdp``, ``pi`` (``num_pairs`` is static).
  """
  _check_fmdp(fmdp)
  M = V.check_int("num_pairs", num_pairs, minimum=1)
  pi = _check_fh_policy(pi, fmdp, "pi")
  c = V.check_positive("bt_scale", bt_scale)
  k_traj, k_pref = jax.random.split(_as_key(key))
  H = fmdp.horizon
  u = jax.random.uniform(k_traj, (M, 2, 2 * H + 1), dtype=fmdp.r.dtype)
  s0, a0 = jax.vmap(lambda ui: _trajectory(ui, fmdp, pi))(u[:, 0])
  s1, a1 = jax.vmap(lambda ui: _trajectory(ui, fmdp, pi))(u[:, 1])
  diff = trajectory_returns(fmdp.r, s1, a1) - trajectory_returns(fmdp.r, s0, a0)
  o = jax.random.uniform(k_pref, (M,), dtype=fmdp.r.dtype)
  return Preferences(s0, a0, s1, a1, (o < jax.nn.sigmoid(c * diff)).astype(fmdp.r.dtype))


def fit_reward_mle(prefs: Preferences, num_states: int, num_actions: int, *, bt_scale=1.0, r_max=1.0,
                   init=None) -> np.ndarray:
  """Bounded maximum-likelihood reward under the Bradley–Terry model (THEORY.md §6.5).  -> r̂ [H, S, A] (numpy).

  Maximizes Σ_m log σ(±c (R̂(τ¹_m) − R̂(τ⁰_m))) over r̂ in [0, r_max]^{H×S×A} with scipy's L-BFGS-B (analytic
  gradient). The likelihood sees only return differences, so r̂ is identified up to a constant per stage
  and not at all at unvisited (h, s, a); those coordinates stay at the start point (``init``, default
  r_max/2), which shifts every policy's value equally or not at all on the pairs' support.
  """
  from scipy.optimize import minimize
  S = V.check_int("num_states", num_states, minimum=1)
  A = V.check_int("num_actions", num_actions, minimum=1)
  c = float(V.check_positive("bt_scale", bt_scale))
  r_max = float(V.check_positive("r_max", r_max))
  s0, a0, s1, a1 = (np.asarray(x) for x in prefs[:4])
  o = np.asarray(prefs.prefer1, np.float64)
  M, H = s0.shape
  idx0 = (np.arange(H)[None, :] * S + s0) * A + a0
  idx1 = (np.arange(H)[None, :] * S + s1) * A + a1
  X = np.zeros((M, H * S * A))
  np.add.at(X, (np.repeat(np.arange(M), H), idx1.ravel()), 1.0)
  np.add.at(X, (np.repeat(np.arange(M), H), idx0.ravel()), -1.0)
  y = 2.0 * o - 1.0

  def nll(theta):
    z = y * c * (X @ theta)
    loss = np.logaddexp(0.0, -z).sum()
    grad = -(X.T @ (y * c * _sigmoid(-z)))
    return loss, grad

  x0 = np.full(H * S * A, r_max / 2) if init is None else np.asarray(init, np.float64).ravel()
  res = minimize(nll, x0, jac=True, method="L-BFGS-B", bounds=[(0.0, r_max)] * (H * S * A),
                 options={"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-9})
  return res.x.reshape(H, S, A)


def _sigmoid(z):
  return np.exp(-np.logaddexp(0.0, -z))


def return_variance(fmdp: FiniteHorizonMDP, pi: Array, g: Array) -> Array:
  """Var_{τ~π}[Σ_h g_h(s_h, a_h)], exact by backward recursion of the first two moments.  []; jittable.

  M1_h(s) = Σ_a π (g + P M1_{h+1}), M2_h(s) = Σ_a π (g² + 2 g P M1_{h+1} + P M2_{h+1}).
  """
  def step(carry, h):
    m1, m2 = carry
    pm1 = jnp.einsum("sat,t->sa", fmdp.P[h], m1)
    pm2 = jnp.einsum("sat,t->sa", fmdp.P[h], m2)
    m1h = jnp.sum(pi[h] * (g[h] + pm1), -1)
    m2h = jnp.sum(pi[h] * (g[h] ** 2 + 2 * g[h] * pm1 + pm2), -1)
    return (m1h, m2h), None

  z = jnp.zeros(fmdp.num_states, g.dtype)
  (m1, m2), _ = lax.scan(step, (z, z), jnp.arange(fmdp.horizon), reverse=True)
  return fmdp.mu0 @ m2 - (fmdp.mu0 @ m1) ** 2


class RLHFResult(NamedTuple):
  """The RLHF pipeline's output and Theorem 8's terms (THEORY.md §6.5)."""
  pi: Array          # [H, S, A]  π^RL
  r_hat: Array       # [H, S, A]  the fitted reward
  subopt: Array      # []  V*_1 − V^{π^RL}_1 (true reward)
  eps_e: Array       # []  ε_E
  kl: Array          # []  ε_KL² = KL_traj(π^E‖π^BC)
  eps_rm_sq: Array   # []  ε_RM² = E_{τ⁰,τ¹~π^BC}[(Δ(r̂ − r*))²] = 2 Var_{π^BC}[Σ_h (r̂ − r*)_h] (UNCONFIRMED)
  eps_rl: Array      # []  regularized gap of π^RL under r̂ (0 for exact planning)
  bound: Array       # []  3(ε_E + ε_RL) + (9/H) ε_RM² + (λ + 4H) ε_KL²  (Theorem 8, λ >= H)


def rlhf_terms(fmdp: FiniteHorizonMDP, expert: Expert, pi_bc: Array, r_hat: Array, pi_rl: Array, *, lam
               ) -> RLHFResult:
  """Theorem 8's terms for a given π^RL and r̂ (jittable)."""
  kl = _trajectory_kl(fmdp, expert.pi, pi_bc)
  eps_rm_sq = 2.0 * return_variance(fmdp, pi_bc, r_hat - fmdp.r)
  eps_rl = regularized_gap(fmdp, pi_rl, pi_bc, lam=lam, r=r_hat)
  subopt = suboptimality(fmdp, pi_rl)
  bound = bounds.dr_rlhf_theorem8(expert.subopt, eps_rl, eps_rm_sq, kl, lam=lam, horizon=fmdp.horizon)
  return RLHFResult(pi_rl, r_hat, subopt, expert.subopt, kl, eps_rm_sq, eps_rl, bound)


@functools.partial(jax.jit, static_argnames=("num_states", "num_actions", "num_pairs"))
def _rlhf_collect(key, fmdp, demos, kappa, bt_scale, *, num_states, num_actions, num_pairs):
  pi_bc = bc_policy(visit_counts(demos.states, demos.actions, num_states, num_actions), kappa=kappa)
  return pi_bc, sample_preferences(key, fmdp, pi_bc, num_pairs, bt_scale=bt_scale)


@functools.partial(jax.jit, static_argnames=("planner", "max_episodes"))
def _rlhf_plan(key, fmdp, expert, pi_bc, r_hat, lam, eps, delta, bonus_scale, *, planner, max_episodes):
  if planner == "exact":
    pi_rl = regularized_solution(fmdp, pi_bc, lam=lam, r=r_hat).pi
  else:
    pi_rl = ucbvi_ent_plus(key, fmdp, pi_bc, lam=lam, eps=eps, delta=delta, bonus_scale=bonus_scale,
                           max_episodes=max_episodes, chunk=min(1000, max_episodes), r=r_hat).pi
  return rlhf_terms(fmdp, expert, pi_bc, r_hat, pi_rl, lam=lam)


def rlhf(key: Any, fmdp: FiniteHorizonMDP, expert: Expert, demos: Demonstrations, *, num_pairs: int, lam,
         kappa=1.0, bt_scale=1.0, planner: str = "exact", eps=0.0, delta=0.1, bonus_scale=1.0,
         max_episodes: int = 1000) -> RLHFResult:
  """Demonstration-regularized RLHF (the paper's Algorithm 2; THEORY.md §6.5), end to end for one seed.

  1. π^BC = BC(D^E) (κ-smoothing); 2. ``num_pairs`` trajectory pairs sampled with π^BC, Bradley–Terry
  preferences over true returns; 3. r̂ by bounded maximum likelihood; 4. regularized BPI toward π^BC with r̂
  and no pessimism: ``planner="exact"`` solves max V^π_{r̂} − λ KL_traj(π‖π^BC) with the true kernel (ε_RL = 0),
  ``planner="ucbvi_ent_plus"`` runs :func:`ucbvi_ent_plus` on the unknown kernel with reward r̂ (ε, δ,
  ``bonus_scale``, ``max_episodes``). Theorem 8 assumes λ >= H.
  """
  _check_fmdp(fmdp)
  if planner not in ("exact", "ucbvi_ent_plus"):
    raise ParameterError(f"planner={planner!r}; choose 'exact' or 'ucbvi_ent_plus'")
  S, A = fmdp.num_states, fmdp.num_actions
  M = V.check_int("num_pairs", num_pairs, minimum=1)
  _check_demos(demos, S, A, fmdp.horizon)
  kappa = V.check_positive("kappa", kappa, allow_zero=True)
  bt_scale = V.check_positive("bt_scale", bt_scale)
  lam = _check_lam(lam)
  eps = V.check_positive("eps", eps, allow_zero=True)
  delta = _check_delta(delta)
  bonus_scale = V.check_positive("bonus_scale", bonus_scale)
  T = V.check_int("max_episodes", max_episodes, minimum=1)
  k_pref, k_bpi = jax.random.split(_as_key(key))
  pi_bc, prefs = _rlhf_collect(k_pref, fmdp, demos, kappa, bt_scale, num_states=S, num_actions=A, num_pairs=M)
  r_hat = jnp.asarray(fit_reward_mle(prefs, S, A, bt_scale=bt_scale), fmdp.r.dtype)
  return _rlhf_plan(k_bpi, fmdp, expert, pi_bc, r_hat, lam, eps, delta, bonus_scale, planner=planner, max_episodes=T)
