"""Bad input gets a clear error, naming the offending value and the fix, before any work starts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mdptheory import operators as ops
from mdptheory import regularizers as R
from mdptheory import solvers
from mdptheory.errors import (DTypeError, InvalidMDPError, MemoryBudgetError, NonFiniteError,
                              ParameterError, ShapeError)
from mdptheory.types import FiniteHorizonMDP, MDP, SparseKernel


def _good(S=3, A=2):
  P = np.full((S, A, S), 1.0 / S)
  r = np.zeros((S, A))
  return P, r


def test_a_row_summing_to_1_8_is_named_with_its_sum():
  P, r = _good()
  P[2, 1] = [0.6, 0.6, 0.6]
  with pytest.raises(InvalidMDPError, match=r"s=2, a=1.*sums to 1\.8.*normalize"):
    MDP.create(P, r, 0.9)


def test_a_row_summing_to_one_up_to_rounding_is_accepted():
  P = np.full((10, 1, 10), 0.1)  # ten entries of 0.1 (sum(0.1 for _ in range(10)) = 0.9999999999999999)
  P[3, 0, 0] += 1e-12  # and a row off by 1e-12
  mdp = MDP.create(P, np.zeros((10, 1)), 0.9)
  np.testing.assert_allclose(mdp.P.sum(-1), 1.0, rtol=0, atol=1e-15)


def test_negative_probabilities_are_refused():
  P, r = _good()
  P[1, 0] = [1.2, -0.2, 0.0]
  with pytest.raises(InvalidMDPError, match=r"P\[1, 0, 1\] = -0\.2 is negative"):
    MDP.create(P, r, 0.9)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["P", "r"])
def test_non_finite_values_are_refused(bad, where):
  P, r = _good()
  (P if where == "P" else r)[0, 1, ...] = bad
  with pytest.raises(NonFiniteError, match=rf"{where}\[0, 1.*not finite"):
    MDP.create(P, r, 0.9)


def test_a_matrix_is_not_a_kernel():
  with pytest.raises(ShapeError, match=r"\(S, A, S\).*\(4, 2\)"):
    MDP.create(np.full((4, 2), 0.5), np.zeros((4, 2)), 0.9)


def test_pymdptoolbox_layout_gets_a_hint_to_use_from_ass():
  A, S = 2, 4
  P_ass = np.full((A, S, S), 1.0 / S)
  r = np.zeros((S, A))
  with pytest.raises(ShapeError, match="from_ass"):
    MDP.create(P_ass, r, 0.9)
  mdp = MDP.from_ass(P_ass, r, 0.9)  # the named constructor accepts it
  assert mdp.P.shape == (S, A, S)


def test_from_ass_transposes_and_reduces_transition_rewards():
  rng = np.random.default_rng(0)
  A, S = 2, 3
  P = rng.random((A, S, S))
  P /= P.sum(-1, keepdims=True)
  R3 = rng.random((A, S, S))
  mdp = MDP.from_ass(P, R3, 0.9)
  np.testing.assert_allclose(mdp.P[1, 0], P[0, 1], atol=1e-15)
  np.testing.assert_allclose(mdp.r[2, 1], P[1, 2] @ R3[1, 2], atol=1e-15)


def test_reward_in_action_state_layout_is_refused_with_the_transpose_hint():
  P, _ = _good(S=3, A=2)
  with pytest.raises(ShapeError, match=r"\(A, S\).*r\.T"):
    MDP.create(P, np.zeros((2, 3)), 0.9)


@pytest.mark.parametrize("shape", [(0, 2, 0), (3, 0, 3)])
def test_empty_state_or_action_sets_are_refused(shape):
  with pytest.raises(ShapeError, match="empty dimension"):
    MDP.create(np.zeros(shape), np.zeros(shape[:2]), 0.9)


@pytest.mark.parametrize("dtype", [np.complex128, object])
def test_complex_and_object_dtypes_are_refused(dtype):
  P, r = _good()
  with pytest.raises(DTypeError, match="dtype"):
    MDP.create(P.astype(dtype), r, 0.9)


@pytest.mark.parametrize("gamma,fragment", [(1.2, "outside"), (-0.1, "outside"), (float("nan"), "NaN"),
                                            (True, "bool"), ("0.9", "string"), (np.array([0.9]), "scalar")])
def test_bad_discounts_are_refused(gamma, fragment):
  P, r = _good()
  with pytest.raises(ParameterError, match=fragment):
    MDP.create(P, r, gamma)


def test_gamma_one_needs_a_horizon():
  P, r = _good()
  with pytest.raises(ParameterError, match="horizon"):
    MDP.create(P, r, 1.0)
  FiniteHorizonMDP.create(P, r, horizon=4)  # the suggested fix works


@pytest.mark.parametrize("tau", [0.0, -1.0, float("nan")])
def test_non_positive_temperatures_are_refused(tau):
  with pytest.raises(ParameterError, match="tau"):
    R.entropy(tau)


def test_a_policy_whose_rows_do_not_sum_to_one_is_refused():
  P, r = _good()
  mdp = MDP.create(P, r, 0.9)
  pi = np.full((3, 2), 0.5)
  pi[1] = [0.5, 0.7]
  with pytest.raises(InvalidMDPError, match=r"pi row at \(s=1\) sums to 1\.2"):
    ops.evaluate(mdp, pi)


def test_a_deterministic_action_equal_to_A_is_refused():
  P, r = _good()
  mdp = MDP.create(P, r, 0.9)
  with pytest.raises(ShapeError, match=r"pi\[2\] = 2 is not an action index in \[0, 2\)"):
    ops.evaluate(mdp, np.array([0, 1, 2]))


def test_mu0_must_sum_to_one():
  P, r = _good()
  with pytest.raises(InvalidMDPError, match=r"mu0 sums to 0\.9"):
    MDP.create(P, r, 0.9, mu0=[0.3, 0.3, 0.3])


@pytest.mark.parametrize("bad", [0, -3, 10.0, 2.5, True])
def test_iteration_budgets_must_be_positive_integers(bad):
  P, r = _good()
  mdp = MDP.create(P, r, 0.9)
  with pytest.raises(ParameterError, match="num_iters"):
    solvers.value_iteration(mdp, num_iters=bad)
  with pytest.raises(ParameterError, match="num_iters"):
    solvers.policy_iteration(mdp, num_iters=bad)


@pytest.mark.parametrize("H", [0, 2.5, -1])
def test_horizons_must_be_positive_integers(H):
  P, r = _good()
  with pytest.raises(ParameterError, match="horizon"):
    FiniteHorizonMDP.create(P, r, horizon=H)
  with pytest.raises(ParameterError, match="horizon"):
    FiniteHorizonMDP.from_mdp(MDP.create(P, r, 0.9), H)


def test_float64_while_x64_is_off_is_refused():
  P, r = _good()
  jax.config.update("jax_enable_x64", False)
  try:
    with pytest.raises(ParameterError, match="jax_enable_x64"):
      MDP.create(P, r, 0.9, dtype=np.float64)
    assert MDP.create(P, r, 0.9).P.dtype == jnp.float32  # the default follows JAX
  finally:
    jax.config.update("jax_enable_x64", True)


def test_a_dense_kernel_over_the_memory_budget_is_refused_before_allocation():
  S, A = 100_000, 10
  kernel = SparseKernel(jnp.zeros((S, A, 1), jnp.int32), jnp.ones((S, A, 1)))
  with pytest.raises(MemoryBudgetError, match="sparse kernel"):
    kernel.to_dense()
  P, r = _good()
  with pytest.raises(MemoryBudgetError, match="memory budget"):
    MDP.create(P, r, 0.9, memory_budget=10)


def test_sparse_kernels_are_validated():
  r = np.zeros((2, 1))
  with pytest.raises(ShapeError, match=r"next_states\[1, 0, 0\] = 5 is not a state index"):
    MDP.from_sparse([[[0]], [[5]]], [[[1.0]], [[1.0]]], r, 0.9)
  with pytest.raises(InvalidMDPError, match=r"s=0, a=0.*sums to 1\.5"):
    MDP.from_sparse([[[0, 0]], [[1, 1]]], [[[1.0, 0.5]], [[0.5, 0.5]]], r, 0.9)
