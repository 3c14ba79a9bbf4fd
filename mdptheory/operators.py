r"""Bellman operators, hard and regularized, and exact policy evaluation.

Notation (THEORY.md §1.1, Geist, Scherrer & Pietquin 2019). For a regularizer
bundle Ω (see :mod:`mdptheory.regularizers`):

    q_v(s, a)        = r(s, a) + γ Σ_s' P(s'|s, a) v(s')                (q_from_v)
    (T_Ω v)(s)       = Ω*(q_v(s, ·))                                      (bellman_optimality_v)
    (T_Ω q)(s, a)    = r(s, a) + γ Σ_s' P(s'|s, a) Ω*(q(s', ·))           (bellman_optimality_q)
    (T_{π,Ω} v)(s)   = <π, q_v>(s) − Ω(π(·|s))                            (bellman_evaluation_v)
    (T_{π,Ω} q)(s,a) = r(s, a) + γ Σ_s' P(s'|s, a) (<π, q>(s') − Ω(π(·|s')))
    v_{π,Ω}          = (I − γ P_π)^{-1} (r_π − Ω(π))                      (evaluate)

All are γ-contractions in the sup norm (claim RB-1). ``P`` may be dense
[S, A, S] or a :class:`~mdptheory.types.SparseKernel`; both go through
:func:`expect`. Functions follow the dtype of their inputs.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mdptheory import linalg
from mdptheory import validate as V
from mdptheory.errors import NonFiniteError, SupportMismatchError
from mdptheory.regularizers import Regularizer, none
from mdptheory.types import MDP, SparseKernel

Array = jax.Array


class Values(NamedTuple):
  """State and action values of a policy."""
  v: Array  # [S]
  q: Array  # [S, A]


def expect(P: Array | SparseKernel, v: Array) -> Array:
  """(P v)(s, a) = Σ_s' P(s'|s, a) v(s').  [S] -> [S, A]."""
  if isinstance(P, SparseKernel):
    return jnp.sum(P.probs * v[P.next_states], axis=-1)
  return jnp.einsum("sat,t->sa", P, v)


def materialize(P: Array | SparseKernel, v: Array) -> Array:
  """``v``, computed once before a sparse kernel gathers from it; ``v`` itself for a dense kernel.

  Call it on a next-state value computed in the same step as the backup that reads it (an MD-VI or M-VI
  update): XLA's CPU compiler may fuse v's producer (a log-sum-exp over actions, say) into the gather of
  :func:`expect` and recompute it for each of the S·A·B reads, which made an MD-VI update at S = 200,
  B = 10 cost 15x a hard-VI update. ``optimization_barrier`` is dropped before fusion on the CPU and a loop
  that returns v unchanged is simplified away, so v goes through one trip of a loop whose trip count XLA
  cannot see and whose body multiplies by a 1 it cannot prove (bit-exact); the loop boundary forces one
  materialization. Its derivative is the identity (a custom JVP), so ``jax.grad`` works; it is not
  linearly transposable, so keep it out of functions handed to ``jax.linear_transpose`` (GMRES).
  """
  if not isinstance(P, SparseKernel):
    return v
  one = jnp.minimum(P.next_states.reshape(-1)[0], 0) + 1  # 1 (indices are >= 0), but not a constant
  return _through_loop(v, one)


@jax.custom_jvp
def _through_loop(v: Array, one: Array) -> Array:
  def body(c):
    i, x = c
    return i + 1, x * jnp.where(i < 0, 2.0, 1.0).astype(x.dtype)  # x * 1: bit-exact, but not loop-invariant

  return jax.lax.while_loop(lambda c: c[0] < one, body, (jnp.zeros((), one.dtype), v))[1]


@_through_loop.defjvp
def _through_loop_jvp(primals, tangents):
  v, one = primals
  return _through_loop(v, one), tangents[0]


def q_from_v(mdp: MDP, v: Array) -> Array:
  """q(s, a) = r(s, a) + γ (P v)(s, a).  [S] -> [S, A]."""
  return mdp.r + mdp.gamma * expect(mdp.P, v)


def policy_average(pi: Array, q: Array) -> Array:
  """<π, q>(s) = Σ_a π(a|s) q(s, a).  [S, A], [S, A] -> [S].

  Uses 0 · q = 0 where π = 0, so q = −inf off the policy's support is harmless.
  """
  return jnp.sum(jnp.where(pi > 0, pi * q, 0.0), axis=-1)


def policy_kernel(mdp: MDP, pi: Array) -> Array:
  """P_π(s, s') = Σ_a π(a|s) P(s'|s, a).  [S, A] -> [S, S]."""
  if isinstance(mdp.P, SparseKernel):
    S = mdp.num_states
    w = pi[..., None] * mdp.P.probs  # [S, A, B]
    rows = jnp.broadcast_to(jnp.arange(S)[:, None, None], w.shape)
    return jnp.zeros((S, S), w.dtype).at[rows, mdp.P.next_states].add(w)
  return jnp.einsum("sat,sa->st", mdp.P, pi)


def bellman_optimality_v(mdp: MDP, v: Array, reg: Regularizer | None = None) -> Array:
  """(T_Ω v)(s) = Ω*(q_v(s, ·)); the hard max when ``reg`` is None.  [S] -> [S]."""
  reg = none() if reg is None else reg
  return reg.smax(q_from_v(mdp, v))


def bellman_optimality_q(mdp: MDP, q: Array, reg: Regularizer | None = None) -> Array:
  """(T_Ω q)(s, a) = r(s, a) + γ Σ_s' P(s'|s, a) Ω*(q(s', ·)).  [S, A] -> [S, A]."""
  reg = none() if reg is None else reg
  return q_from_v(mdp, reg.smax(q))


def regularized_average(pi: Array, q: Array, reg: Regularizer | None = None) -> Array:
  """<π, q>(s) − Ω(π(·|s)): the regularized value of acting with π on q.  [S]."""
  reg = none() if reg is None else reg
  return policy_average(pi, q) - reg.omega(pi)


def bellman_evaluation_v(mdp: MDP, v: Array, pi: Array, reg: Regularizer | None = None) -> Array:
  """(T_{π,Ω} v)(s) = <π, q_v>(s) − Ω(π(·|s)).  [S] -> [S]."""
  return regularized_average(pi, q_from_v(mdp, v), reg)


def bellman_evaluation_q(mdp: MDP, q: Array, pi: Array, reg: Regularizer | None = None) -> Array:
  """(T_{π,Ω} q)(s, a) = r(s, a) + γ Σ_s' P(s'|s, a) (<π, q>(s') − Ω(π(·|s'))).  [S, A] -> [S, A]."""
  return q_from_v(mdp, regularized_average(pi, q, reg))


def greedy(q: Array, reg: Regularizer | None = None) -> Array:
  """The (regularized) greedy policy ∇Ω*(q); the first maximizer when ``reg`` is None.  [S, A]."""
  reg = none() if reg is None else reg
  return reg.argmax(q)


def evaluate(mdp: MDP, pi, reg: Regularizer | None = None, *,
             memory_budget: int | None = None) -> Values:
  """Exact (regularized) policy evaluation by a linear solve.

  v_{π,Ω} = (I − γ P_π)^{-1} (r_π − Ω(π)) and q_{π,Ω} = r + γ P v_{π,Ω}, the
  unique fixed points of T_{π,Ω} (THEORY.md §1.1; with the entropy regularizer
  this is q^τ_π, which carries the γτPH(π) term).

  A concrete ``pi`` is validated first: a stochastic [S, A] policy whose rows
  sum to 1, or deterministic action indices [S] (made one-hot), with a finite
  penalty Ω(π) (a KL regularizer needs π inside the reference's support). For a
  sparse kernel whose dense S×S system would exceed the memory budget, the
  system is solved matrix-free with GMRES instead.

  Undiscounted (γ = 1, only through the bare ``mdp._replace(gamma=1.0)``; a
  concrete γ must lie in [0, 1]): the stochastic-shortest-path value, finite
  exactly when π is proper, i.e. every state reaches, with probability 1, a
  terminal state (one that π never leaves and whose reward minus Ω(π) is 0).
  Computed in numpy float64 for a concrete π: v = 0 on the terminal states and
  (I − P_π) v = r_π − Ω(π) on the others.

  Args:
    mdp: the MDP.
    pi: [S, A] policy, or [S] integer actions.
    reg: the regularizer Ω (None: unregularized).
    memory_budget: bytes allowed for the dense S×S system.
  Returns:
    Values(v [S], q [S, A]).
  Raises:
    ShapeError, InvalidMDPError, NonFiniteError: a malformed policy.
    SupportMismatchError: Ω(π) is infinite (π puts mass where a KL reference has none).
    ParameterError: γ outside [0, 1]; γ = 1 with an improper policy (a state that never terminates)
      or with a traced policy.
  """
  S, A = mdp.num_states, mdp.num_actions
  concrete = not V.is_traced(pi)
  if concrete:
    pi = jnp.asarray(V.check_policy(pi, S, A), mdp.dtype)
  reg = none() if reg is None else reg
  V.check_mdp_precision(mdp, reg_range=V.regularizer_range(reg, A), where="evaluate")
  omega = reg.omega(pi)
  if concrete and not V.is_traced(omega):
    _check_penalty(omega, reg)
  b = policy_average(pi, mdp.r) - omega
  if not V.is_traced(mdp.gamma) and np.ndim(mdp.gamma) == 0:
    gamma = V.check_gamma(float(mdp.gamma), allow_one=True)
    if gamma == 1.0:
      if not (concrete and not V.is_traced(b)):
        raise V.ParameterError(
            "gamma=1: an undiscounted evaluation needs a concrete policy (it checks that the policy "
            "terminates before solving); call evaluate outside jit/vmap, or use gamma < 1")
      return _evaluate_undiscounted(mdp, pi, b, memory_budget)
  dense_ok = (S * S * np.dtype(mdp.dtype).itemsize
              <= (V.DEFAULT_MEMORY_BUDGET if memory_budget is None else memory_budget))
  if dense_ok:
    M = jnp.eye(S, dtype=b.dtype) - mdp.gamma * policy_kernel(mdp, pi)
    v = linalg.solve(M, b)
  else:
    def matvec(x):
      return x - mdp.gamma * policy_average(pi, expect(mdp.P, x))
    v, _ = jax.scipy.sparse.linalg.gmres(matvec, b, x0=b, tol=1e-12, restart=50, maxiter=1000)
  return Values(v=v, q=q_from_v(mdp, v))


def _check_penalty(omega: Array, reg: Regularizer) -> None:
  """Ω(π) per state must be finite: +inf means π puts mass where the regularizer's reference has none."""
  om = np.asarray(omega, np.float64)
  bad = ~np.isfinite(om)
  if not bad.any():
    return
  s = int(np.argmax(bad.reshape(-1)))
  if np.isposinf(om.reshape(-1)[s]):
    raise SupportMismatchError(
        f"Omega(pi) of the {reg.name} regularizer is infinite at state s={s} ({int(bad.sum())} such states): "
        f"pi puts mass on an action whose reference probability (pi_ref of regularizers.kl, pi_prev of "
        f"kl_entropy) is 0, so KL(pi || pi_ref) is infinite; keep pi inside the reference's support or mix the "
        f"reference with a little uniform mass")
  raise NonFiniteError(f"Omega(pi) of the {reg.name} regularizer is {om.reshape(-1)[s]} at state s={s}; "
                       f"check the regularizer's parameters and reference")


def _evaluate_undiscounted(mdp: MDP, pi: Array, b: Array, memory_budget: int | None) -> Values:
  """The γ = 1 (stochastic-shortest-path) value of a concrete π; raises if π is improper (see :func:`evaluate`)."""
  S = mdp.num_states
  V.check_dense_budget("policy kernel P_pi", (S, S), np.float64, memory_budget,
                       hint="; the undiscounted evaluation is dense: use gamma < 1 or a finite horizon")
  P_pi = np.asarray(policy_kernel(mdp, pi), np.float64)
  rhs = np.asarray(b, np.float64)
  tol = 64 * float(np.finfo(np.dtype(mdp.dtype)).eps)
  terminal = (np.diagonal(P_pi) >= 1.0 - tol) & (np.abs(rhs) <= tol * max(1.0, float(np.max(np.abs(rhs)))))
  # States that reach a terminal state with positive probability (backward search on P_π > 0); in a finite
  # chain they are absorbed with probability 1, and every other state never terminates.
  edges = P_pi > 0
  reach, frontier = terminal.copy(), terminal.copy()
  while frontier.any():
    frontier = edges[:, frontier].any(axis=1) & ~reach
    reach |= frontier
  if not reach.all():
    s = int(np.argmin(reach))
    raise V.ParameterError(
        f"gamma=1 (undiscounted): under pi, state s={s} never reaches a terminal state (one that pi never "
        f"leaves, with reward - Omega(pi) = 0), so its value is infinite or undefined: pi is improper "
        f"({int((~reach).sum())} such states, {int(terminal.sum())} terminal states). Use a discount "
        f"gamma < 1, a finite horizon (FiniteHorizonMDP.from_mdp(mdp, H) with solvers.evaluate_finite), "
        f"or a policy that terminates")
  v = np.zeros(S)
  live = ~terminal
  if live.any():
    v[live] = np.linalg.solve(np.eye(int(live.sum())) - P_pi[np.ix_(live, live)], rhs[live])
  v = jnp.asarray(v, mdp.dtype)
  return Values(v=v, q=q_from_v(mdp, v))


def span(x: Array, axis=None) -> Array:
  """The span seminorm max x − min x."""
  return jnp.max(x, axis=axis) - jnp.min(x, axis=axis)


def sup_norm(x: Array) -> Array:
  """‖x‖_∞."""
  return jnp.max(jnp.abs(x))
