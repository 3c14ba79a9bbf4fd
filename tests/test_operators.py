"""Claims about the Bellman operators: contraction (RB-1), exact evaluation, sparse = dense."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import random_mdp
from mdptheory import operators as ops
from mdptheory import regularizers as R
from mdptheory.types import MDP


def _regularizers(tau, A, key):
  prior = jax.nn.softmax(jax.random.normal(key, (A,)))
  return {
      "none": R.none(),
      "entropy": R.entropy(tau),
      "kl": R.kl(prior, tau),
      "kl_entropy": R.kl_entropy(tau, 0.5 * tau, prior),
      "tsallis2": R.tsallis(2.0, tau),
      "tsallis3": R.tsallis(3.0, tau),
  }


def _to_sparse(mdp: MDP, pad: int = 2) -> MDP:
  """The same MDP with a sparse kernel; each row gets ``pad`` extra duplicate zero-probability successors."""
  P = np.asarray(mdp.P)
  S, A, _ = P.shape
  nxt = np.concatenate([np.broadcast_to(np.arange(S), (S, A, S)), np.zeros((S, A, pad), int)], -1)
  prob = np.concatenate([P, np.zeros((S, A, pad))], -1)
  return MDP.from_sparse(nxt, prob, np.asarray(mdp.r), float(mdp.gamma), np.asarray(mdp.mu0))


@settings(max_examples=25, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1), gamma=st.floats(0.0, 0.99), tau=st.floats(1e-2, 10.0))
def test_every_regularized_operator_is_a_gamma_contraction(seed, gamma, tau):
  """RB-1: ‖T u − T w‖_∞ <= γ ‖u − w‖_∞ for the optimality and evaluation operators, v and q forms."""
  mdp = random_mdp(seed % 1000, num_states=6, num_actions=3, gamma=gamma)
  k_reg, k_u, k_w, k_pi = jax.random.split(jax.random.key(seed), 4)
  u, w = 5 * jax.random.normal(k_u, (2, 6, 3)), 5 * jax.random.normal(k_w, (2, 6, 3))
  pi = jax.nn.softmax(jax.random.normal(k_pi, (6, 3)))
  for name, reg in _regularizers(tau, 3, k_reg).items():
    pairs = {
        "T_v": (ops.bellman_optimality_v(mdp, u[0, :, 0], reg), ops.bellman_optimality_v(mdp, w[0, :, 0], reg),
                u[0, :, 0] - w[0, :, 0]),
        "T_q": (ops.bellman_optimality_q(mdp, u[1], reg), ops.bellman_optimality_q(mdp, w[1], reg), u[1] - w[1]),
        "T_pi_v": (ops.bellman_evaluation_v(mdp, u[0, :, 0], pi, reg),
                   ops.bellman_evaluation_v(mdp, w[0, :, 0], pi, reg), u[0, :, 0] - w[0, :, 0]),
        "T_pi_q": (ops.bellman_evaluation_q(mdp, u[1], pi, reg), ops.bellman_evaluation_q(mdp, w[1], pi, reg),
                   u[1] - w[1]),
    }
    for op, (tu, tw, d) in pairs.items():
      lhs = jnp.max(jnp.abs(tu - tw))
      assert lhs <= gamma * jnp.max(jnp.abs(d)) + 1e-12, (name, op, float(lhs))


def test_contraction_is_tight_for_the_hard_operator_on_constant_shifts():
  """T(v + c) = T v + γ c: the modulus γ cannot be improved (a check that RB-1 measures the right thing)."""
  mdp = random_mdp(3)
  v = jnp.arange(6.0)
  for reg in (R.none(), R.entropy(0.3)):
    np.testing.assert_allclose(ops.bellman_optimality_v(mdp, v + 2.0, reg) - ops.bellman_optimality_v(mdp, v, reg),
                               0.9 * 2.0, rtol=0, atol=1e-12)


def test_sparse_kernel_matches_the_dense_kernel():
  mdp = random_mdp(5, branching=2)
  sparse = _to_sparse(mdp)
  v = jnp.linspace(-1, 2, 6)
  pi = jax.nn.softmax(jnp.arange(18.0).reshape(6, 3) / 7)
  np.testing.assert_allclose(ops.expect(sparse.P, v), ops.expect(mdp.P, v), atol=1e-14)
  np.testing.assert_allclose(ops.policy_kernel(sparse, pi), ops.policy_kernel(mdp, pi), atol=1e-14)
  np.testing.assert_allclose(sparse.dense().P, mdp.P, atol=1e-15)
  np.testing.assert_allclose(ops.evaluate(sparse, pi).q, ops.evaluate(mdp, pi).q, atol=1e-12)


def test_policy_kernel_rows_are_distributions():
  mdp = random_mdp(7)
  pi = jax.nn.softmax(jax.random.normal(jax.random.key(0), (6, 3)))
  Ppi = ops.policy_kernel(mdp, pi)
  np.testing.assert_allclose(Ppi.sum(-1), 1.0, atol=1e-14)
  assert jnp.all(Ppi >= 0)


@pytest.mark.parametrize("reg_name", ["none", "entropy", "kl_entropy"])
def test_exact_evaluation_is_the_fixed_point_of_iterated_T_pi(reg_name):
  """v_{π,Ω} from the linear solve equals lim_k T_{π,Ω}^k v_0 (Banach iteration, independent method)."""
  mdp = random_mdp(11, gamma=0.8)
  pi = jax.nn.softmax(jax.random.normal(jax.random.key(1), (6, 3)))
  reg = _regularizers(0.4, 3, jax.random.key(2))[reg_name]
  exact = ops.evaluate(mdp, pi, reg)
  v = jnp.zeros(6)
  for _ in range(250):  # 0.8^250 ~ 1e-24
    v = ops.bellman_evaluation_v(mdp, v, pi, reg)
  np.testing.assert_allclose(exact.v, v, rtol=0, atol=1e-11)
  np.testing.assert_allclose(ops.bellman_evaluation_q(mdp, exact.q, pi, reg), exact.q, rtol=0, atol=1e-11)


def test_entropy_regularized_q_carries_the_gamma_tau_P_H_term():
  """q^τ_π solves (I − γP_π) q = r + γτ P H(π) (THEORY.md §1.1), built here with numpy."""
  mdp = random_mdp(2)
  tau = 0.7
  pi = np.asarray(jax.nn.softmax(jax.random.normal(jax.random.key(3), (6, 3))))
  P, r, g = np.asarray(mdp.P), np.asarray(mdp.r), 0.9
  M = np.einsum("sat,tb->satb", P, pi).reshape(18, 18)
  H = -(pi * np.log(pi)).sum(-1)
  q_ref = np.linalg.solve(np.eye(18) - g * M, (r + g * tau * P @ H).reshape(-1)).reshape(6, 3)
  np.testing.assert_allclose(ops.evaluate(mdp, pi, R.entropy(tau)).q, q_ref, rtol=0, atol=1e-12)


def test_deterministic_policies_may_be_given_as_action_indices():
  mdp = random_mdp(4)
  actions = np.array([0, 2, 1, 1, 0, 2])
  np.testing.assert_allclose(ops.evaluate(mdp, actions).v, ops.evaluate(mdp, np.eye(3)[actions]).v, atol=1e-14)


def test_matrix_free_evaluation_matches_the_dense_solve():
  """With a tiny memory budget a sparse MDP is evaluated by GMRES; the result is the same."""
  mdp = _to_sparse(random_mdp(9, branching=3))
  pi = jax.nn.softmax(jax.random.normal(jax.random.key(4), (6, 3)))
  np.testing.assert_allclose(ops.evaluate(mdp, pi, memory_budget=8).v, ops.evaluate(mdp, pi).v,
                             rtol=0, atol=1e-9)


def test_operators_under_jit_equal_eager():
  mdp = random_mdp(8)
  q = jax.random.normal(jax.random.key(5), (6, 3))
  for reg in _regularizers(0.3, 3, jax.random.key(6)).values():
    f = lambda m, q, reg=reg: ops.bellman_optimality_q(m, q, reg)
    np.testing.assert_allclose(jax.jit(f)(mdp, q), f(mdp, q), rtol=1e-14, atol=1e-14)


def test_span_and_sup_norm():
  x = jnp.asarray([3.0, -1.0, 2.0])
  assert ops.span(x) == 4.0 and ops.sup_norm(x) == 3.0
  assert ops.span(x + 10.0) == ops.span(x)  # a seminorm: blind to constants
