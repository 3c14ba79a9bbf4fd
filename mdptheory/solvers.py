r"""Exact solvers: (regularized) value and policy iteration, the LP, backward induction.

Theory (Puterman 1994 §6.3–6.4; Geist, Scherrer & Pietquin 2019 for the
regularized case). T_Ω is a γ-contraction with a unique fixed point v*_Ω, so

* value iteration v_{k+1} = T_Ω v_k converges geometrically, and the
  a-posteriori bound ‖v_{k+1} − v*_Ω‖_∞ ≤ γ/(1 − γ) ‖v_{k+1} − v_k‖_∞ holds;
* policy iteration (exact evaluation, then the greedy step ∇Ω*) is Newton's
  method on v − T_Ω v: it stops after finitely many steps for the hard max and
  converges quadratically in the regularized case, with the bound
  ‖v*_Ω − v_{π,Ω}‖_∞ ≤ ‖T_Ω v_{π,Ω} − v_{π,Ω}‖_∞ / (1 − γ).

Loops are ``lax.scan`` over a fixed budget of iterations: once the stopping
rule fires the iterate is frozen, so a result traces the whole budget and works
under ``jax.vmap`` (every member of a batch stops on its own). Every result
says whether the stopping rule fired (``converged``) and carries the
a-posteriori ``error_bound``; a result that ran out of budget is never marked
converged.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mdptheory import operators as ops
from mdptheory import validate as V
from mdptheory.regularizers import Regularizer, none, static_key
from mdptheory.types import MDP, FiniteHorizonMDP

Array = jax.Array


class VIResult(NamedTuple):
  """Result of (regularized) value iteration."""
  v: Array            # [S]     final iterate
  q: Array            # [S, A]  q_v = r + γ P v
  pi: Array           # [S, A]  greedy policy ∇Ω*(q_v)
  residuals: Array    # [K]     ‖T_Ω v_k − v_k‖_∞ for k = 0..K−1 (frozen iterate after stopping)
  num_iters: Array    # []      number of updates applied
  converged: Array    # []      True iff the last applied update had residual <= tol
  error_bound: Array  # []      a-posteriori bound on ‖v − v*_Ω‖_∞


class PIResult(NamedTuple):
  """Result of (regularized) policy iteration."""
  v: Array               # [S]     exact value of pi
  q: Array               # [S, A]  exact action values of pi
  pi: Array              # [S, A]  final (evaluated) policy
  residuals: Array       # [K]     ‖T_Ω v_{π_k} − v_{π_k}‖_∞
  num_iters: Array       # []      number of improvement steps applied
  converged: Array       # []      policy stable, or residual <= tol
  error_bound: Array     # []      ‖T_Ω v_π − v_π‖_∞ / (1 − γ) >= ‖v*_Ω − v_π‖_∞


class FiniteHorizonResult(NamedTuple):
  """Result of backward induction on a finite-horizon MDP."""
  v: Array   # [H + 1, S]  v[h] is the value from stage h; v[H] = 0
  q: Array   # [H, S, A]
  pi: Array  # [H, S, A]


def value_iteration(mdp: MDP, reg: Regularizer | None = None, *, num_iters: int,
                    tol: float = 0.0, v0: Array | None = None) -> VIResult:
  """(Regularized) value iteration v_{k+1} = T_Ω v_k from v_0 (default 0).

  Runs at most ``num_iters`` updates and stops (freezes the iterate) after the
  first update whose residual ‖T_Ω v_k − v_k‖_∞ is <= ``tol``. Following
  Puterman (Thm 6.3.1), ``tol = ε (1 − γ) / (2γ)`` guarantees an ε-optimal
  greedy policy in the unregularized case.

  Args:
    mdp: the MDP (dense or sparse kernel; ``gamma`` may be traced).
    reg: the regularizer Ω; None is the hard max.
    num_iters: iteration budget (a Python int, >= 1).
    tol: residual tolerance of the stopping rule (>= 0; 0 runs the whole budget).
    v0: [S] initial values.
  """
  num_iters = V.check_int("num_iters", num_iters)
  tol = V.check_positive("tol", tol, allow_zero=True)
  reg = none() if reg is None else reg
  _check_discounted(mdp, "value_iteration")
  V.check_mdp_precision(mdp, tol=tol, reg_range=V.regularizer_range(reg, mdp.num_actions),
                        where="value_iteration")
  if v0 is not None and not V.is_traced(v0):
    arr = V.as_real_array("v0", v0)
    if arr.shape != (mdp.num_states,):
      raise V.ShapeError(f"v0 must have shape (S,) = ({mdp.num_states},), got {arr.shape}")
    V.check_finite("v0", arr)
    V.check_in_range("v0", arr, mdp.dtype)
  v0 = jnp.zeros(mdp.num_states, mdp.dtype) if v0 is None else jnp.asarray(v0, mdp.dtype)
  return _value_iteration(mdp, v0, tol, reg=_StaticReg(reg), num_iters=num_iters)


def _check_discounted(mdp: MDP, where: str) -> None:
  """A concrete γ must be in [0, 1): the solvers' values and bounds divide by 1 − γ.

  Only a bare ``mdp._replace(gamma=...)`` can carry another value; MDP.create refuses it.
  """
  g = mdp.gamma
  if V.is_traced(g) or np.ndim(g) != 0:
    return
  g = float(g)
  if not 0.0 <= g < 1.0:
    raise V.ParameterError(
        f"gamma={g:g}: {where} needs a discount in [0, 1) (its values and error bound divide by 1 - gamma); "
        f"for an undiscounted problem use a finite horizon (FiniteHorizonMDP.from_mdp(mdp, H) with "
        f"solvers.backward_induction), or evaluate one terminating policy with operators.evaluate")


class _StaticReg:
  """A regularizer bundle as a static jit argument, equal to another when their specs are equal.

  So ``value_iteration(mdp, entropy(0.1), ...)`` called twice compiles once, although each call builds new
  closures; bundles without a spec (a KL toward an array, traced temperatures) compare by their functions.
  """
  __slots__ = ("reg", "key")

  def __init__(self, reg: Regularizer):
    self.reg = reg
    self.key = static_key(reg)

  def __hash__(self) -> int:
    return hash(self.key)

  def __eq__(self, other) -> bool:
    return isinstance(other, _StaticReg) and self.key == other.key


@functools.partial(jax.jit, static_argnames=("reg", "num_iters"))
def _value_iteration(mdp: MDP, v0: Array, tol, *, reg: _StaticReg, num_iters: int) -> VIResult:
  # The MDP is an argument, never a closed-over constant: a 2 GB kernel is not baked into the program, and
  # repeated calls with the same shapes and regularizer reuse one compiled loop.
  reg = reg.reg
  def step(carry, _):
    v, done, n, last_res = carry
    tv = ops.bellman_optimality_v(mdp, v, reg)
    res = jnp.max(jnp.abs(tv - v))
    v_new = jnp.where(done, v, tv)
    last_res = jnp.where(done, last_res, res)
    n = n + jnp.where(done, 0, 1)
    done = done | (res <= tol)
    return (v_new, done, n, last_res), res

  init = (v0, jnp.asarray(False), jnp.asarray(0, jnp.int32), jnp.asarray(jnp.inf, mdp.dtype))
  (v, done, n, last_res), residuals = jax.lax.scan(step, init, None, length=num_iters)
  q = ops.q_from_v(mdp, v)
  bound = mdp.gamma / (1.0 - mdp.gamma) * last_res
  return VIResult(v=v, q=q, pi=reg.argmax(q), residuals=residuals, num_iters=n,
                  converged=done, error_bound=bound)


def policy_iteration(mdp: MDP, reg: Regularizer | None = None, *, num_iters: int = 100,
                     tol: float = 0.0, pi0=None) -> PIResult:
  """(Regularized) policy iteration: exact evaluation, then π_{k+1} = ∇Ω*(q_{π_k}).

  Unregularized: an action is only switched when it improves q by more than a
  few ulps, so ties cannot make the policy cycle; the loop stops when the
  policy is stable, which certifies optimality. Regularized (soft) PI is
  Newton's method and stops once the residual is <= ``tol`` or the policy no
  longer changes in floating point.

  Args:
    mdp: the MDP.
    reg: the regularizer Ω; None is the hard max.
    num_iters: budget of improvement steps (>= 1).
    tol: residual tolerance (>= 0).
    pi0: [S, A] (or [S] integer) initial policy; default the greedy policy ∇Ω*(r)
      with respect to the immediate reward (inside the regularizer's support).
  """
  return _checked_policy_iteration(mdp, reg, num_iters=num_iters, tol=tol, pi0=pi0, where="policy_iteration")


def _checked_policy_iteration(mdp: MDP, reg: Regularizer | None, *, num_iters, tol, pi0, where: str,
                              check_precision: bool = True) -> PIResult:
  """:func:`policy_iteration` after validation and the range/precision checks (``where`` names the caller)."""
  num_iters = V.check_int("num_iters", num_iters)
  reg = none() if reg is None else reg
  _check_discounted(mdp, where)
  if check_precision:
    V.check_mdp_precision(mdp, tol=tol, reg_range=V.regularizer_range(reg, mdp.num_actions), where=where,
                          stacklevel=5)
  tol = V.check_positive("tol", tol, allow_zero=True)
  S, A = mdp.num_states, mdp.num_actions
  if pi0 is None:
    pi0 = reg.argmax(mdp.r)
  elif not V.is_traced(pi0):
    pi0 = jnp.asarray(V.check_policy(pi0, S, A, name="pi0"), mdp.dtype)
  return _policy_iteration(mdp, pi0, tol, reg=_StaticReg(reg), num_iters=num_iters)


@functools.partial(jax.jit, static_argnames=("reg", "num_iters"))
def _policy_iteration(mdp: MDP, pi0: Array, tol, *, reg: _StaticReg, num_iters: int) -> PIResult:
  reg = reg.reg
  hard = reg.name == "none"
  eps = 64 * jnp.finfo(mdp.dtype).eps

  def improve(pi, q):
    if not hard:
      return reg.argmax(q)
    qmax = jnp.max(q, axis=-1, keepdims=True)
    current = jnp.sum(pi * q, axis=-1, keepdims=True)
    keep = current >= qmax - eps * (1.0 + jnp.abs(qmax))
    return jnp.where(keep, pi, reg.argmax(q))

  def residual(values):
    return jnp.max(jnp.abs(reg.smax(values.q) - values.v))

  def step(carry, _):
    pi, values, done, n = carry
    pi_new = improve(pi, values.q)
    stable = jnp.all(pi_new == pi)
    new_values = ops.evaluate(mdp, pi_new, reg)
    res_new = residual(new_values)
    take = ~done & ~stable
    pi = jnp.where(take, pi_new, pi)
    values = jax.tree.map(lambda a, b: jnp.where(take, a, b), new_values, values)
    n = n + jnp.where(take, 1, 0)
    done = done | stable | (res_new <= tol)
    return (pi, values, done, n), residual(values)

  values0 = ops.evaluate(mdp, pi0, reg)
  init = (pi0, values0, residual(values0) <= tol, jnp.asarray(0, jnp.int32))
  (pi, values, done, n), residuals = jax.lax.scan(step, init, None, length=num_iters)
  res = residual(values)
  return PIResult(v=values.v, q=values.q, pi=pi, residuals=residuals, num_iters=n,
                  converged=done, error_bound=res / (1.0 - mdp.gamma))


class Optimum(NamedTuple):
  """The (regularized) optimum of an MDP."""
  v: Array            # [S]     v*_Ω
  q: Array            # [S, A]  q*_Ω = r + γ P v*_Ω
  pi: Array           # [S, A]  π*_Ω = ∇Ω*(q*_Ω)
  converged: Array    # []
  error_bound: Array  # []      bound on ‖v − v*_Ω‖_∞


def optimum(mdp: MDP, reg: Regularizer | None = None, *, num_iters: int = 200,
            tol=None) -> Optimum:
  """The exact optimum q*, v*, π* (or q*_Ω for a regularizer), by policy iteration.

  Hard max: PI ends on a stable policy, whose exact value is v*. Regularized:
  PI converges quadratically, to machine precision in a few steps; the result
  is v_{π_K,Ω} with its certified ``error_bound``. The default ``tol`` is a few
  hundred ulps of the value scale max|r| / (1 − γ).
  """
  if not V.is_traced(mdp.r):
    # Before the default tol is derived from the value scale: an overflowing scale is an error, not tol = inf.
    V.check_mdp_precision(mdp, tol=tol, where="optimum",
                          reg_range=V.regularizer_range(none() if reg is None else reg, mdp.num_actions))
  if tol is None:
    scale = jnp.maximum(1.0, jnp.max(jnp.abs(mdp.r)) / (1.0 - mdp.gamma))
    tol = 256 * jnp.finfo(mdp.dtype).eps * scale
  res = _checked_policy_iteration(mdp, reg, num_iters=num_iters, tol=tol, pi0=None, where="optimum",
                                  check_precision=False)
  return Optimum(v=res.v, q=res.q, pi=res.pi, converged=res.converged, error_bound=res.error_bound)


def lp_optimum(mdp: MDP) -> Optimum:
  """The unregularized optimum by linear programming (scipy HiGHS), an independent cross-check.

  min_v Σ_s v(s)  s.t.  v(s) >= r(s, a) + γ Σ_s' P(s'|s, a) v(s')  for all (s, a)
  (Puterman 1994 §6.9). Computed in float64 numpy regardless of the MDP's dtype.
  """
  from scipy.optimize import linprog
  m = mdp.dense()
  P = np.asarray(m.P, np.float64)
  r = np.asarray(m.r, np.float64)
  g = float(m.gamma)
  S, A = r.shape
  # Constraint rows (s, a): γ P[s, a, :] v − v(s) <= −r(s, a).
  A_ub = g * P.reshape(S * A, S)
  A_ub[np.arange(S * A), np.repeat(np.arange(S), A)] -= 1.0
  res = linprog(np.ones(S), A_ub=A_ub, b_ub=-r.reshape(-1), bounds=[(None, None)] * S,
                method="highs")
  if res.status != 0:
    return Optimum(v=jnp.full(S, jnp.nan), q=jnp.full((S, A), jnp.nan), pi=jnp.full((S, A), jnp.nan),
                   converged=jnp.asarray(False), error_bound=jnp.asarray(jnp.inf))
  v = res.x
  q = r + g * P @ v
  pi = np.eye(A)[np.argmax(q, axis=-1)]
  residual = np.max(np.abs(q.max(-1) - v))
  dt = mdp.dtype
  return Optimum(v=jnp.asarray(v, dt), q=jnp.asarray(q, dt), pi=jnp.asarray(pi, dt),
                 converged=jnp.asarray(True), error_bound=jnp.asarray(residual / (1 - g), dt))


def backward_induction(fmdp: FiniteHorizonMDP,
                       reg: Regularizer | Callable[[Array], Regularizer] | None = None
                       ) -> FiniteHorizonResult:
  """Finite-horizon (regularized) backward induction.

  q_h = r_h + P_h v_{h+1},  v_h = Ω_h*(q_h),  π_h = ∇Ω_h*(q_h),  v_H = 0.

  With ``reg = lambda h: kl(prior[h], lam)`` this is the soft backward induction
  toward a stage-dependent prior (THEORY.md §6.3): v_h = λ log Σ_a prior_h e^{q_h/λ}
  and π_h ∝ prior_h e^{q_h/λ}.

  Args:
    fmdp: the finite-horizon MDP.
    reg: a regularizer used at every stage, a function of the (traced) stage
      index h returning one, or None for the hard max.
  """
  reg_at = (lambda h: none()) if reg is None else (reg if callable(reg) and not isinstance(reg, Regularizer)
                                                   else (lambda h: reg))
  H, S = fmdp.horizon, fmdp.num_states

  def step(v_next, h):
    q = fmdp.r[h] + jnp.einsum("sat,t->sa", fmdp.P[h], v_next)
    reg_h = reg_at(h)
    v = reg_h.smax(q)
    return v, (v, q, reg_h.argmax(q))

  v_end = jnp.zeros(S, fmdp.r.dtype)
  _, (v, q, pi) = jax.lax.scan(step, v_end, jnp.arange(H), reverse=True)
  return FiniteHorizonResult(v=jnp.concatenate([v, v_end[None]]), q=q, pi=pi)


def evaluate_finite(fmdp: FiniteHorizonMDP, pi,
                    reg: Regularizer | Callable[[Array], Regularizer] | None = None) -> FiniteHorizonResult:
  """Exact (regularized) evaluation of a non-stationary policy π [H, S, A] by backward recursion.

  v_h = <π_h, q_h> − Ω_h(π_h), q_h = r_h + P_h v_{h+1}, v_H = 0.
  """
  H, S, A = fmdp.horizon, fmdp.num_states, fmdp.num_actions
  if not V.is_traced(pi):
    arr = np.asarray(pi)
    if arr.shape[:1] != (H,):
      raise V.ShapeError(f"pi must have shape (H, S, A) = {(H, S, A)} (or (H, S) actions), got {arr.shape}")
    pi = jnp.asarray(np.stack([V.check_policy(arr[h], S, A, name=f"pi[{h}]") for h in range(H)]),
                     fmdp.r.dtype)
  reg_at = (lambda h: none()) if reg is None else (reg if callable(reg) and not isinstance(reg, Regularizer)
                                                   else (lambda h: reg))

  def step(v_next, h):
    q = fmdp.r[h] + jnp.einsum("sat,t->sa", fmdp.P[h], v_next)
    v = ops.regularized_average(pi[h], q, reg_at(h))
    return v, (v, q)

  v_end = jnp.zeros(S, fmdp.r.dtype)
  _, (v, q) = jax.lax.scan(step, v_end, jnp.arange(H), reverse=True)
  return FiniteHorizonResult(v=jnp.concatenate([v, v_end[None]]), q=q, pi=pi)
