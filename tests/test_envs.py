"""Claims about the env factories and their registry.

* Conformance over the whole registry: stochastic kernels, consistent shapes,
  gamma in [0, 1), mu0 a distribution, jit == eager, reproducible seeds.
* Garnet: the THEORY.md §1.2 protocol (distinct successors, Dirichlet(1) weights,
  round(0.1 S) rewarding states), sparse == dense, vmap == loop, S = 10^6 sparse,
  the memory budget before allocation.
* Textbook values: Sutton & Barto Example 3.5 (Figures 3.2 and 3.5), pymdptoolbox's
  forest example, closed forms for the chain and the gridworld.

Runs in float64 (tests/conftest.py enables x64).
"""

from __future__ import annotations

import functools
import inspect
import itertools
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from mdptheory import envs
from mdptheory.envs import tabular
from mdptheory.errors import MemoryBudgetError, ParameterError
from mdptheory.types import MDP, FiniteHorizonMDP, SparseKernel

@functools.lru_cache(maxsize=None)
def _built(name: str):
  return envs.make(name)


# The registry also holds bandits and preference games; their conformance tests live beside their modules.
MDP_ENVS = [n for n in envs.registered() if isinstance(_built(n), (MDP, FiniteHorizonMDP))]
SEEDED = [n for n in MDP_ENVS if "key" in inspect.signature(envs._REGISTRY[n]).parameters]


def _dense_P(problem) -> np.ndarray:
  P = problem.P.to_dense() if isinstance(problem.P, SparseKernel) else problem.P
  return np.asarray(P)


def _leaves_equal(x, y) -> bool:
  lx, tx = jax.tree_util.tree_flatten(x)
  ly, ty = jax.tree_util.tree_flatten(y)
  return tx == ty and all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(lx, ly))


def _value_iteration(P: np.ndarray, r: np.ndarray, gamma: float, tol: float = 1e-12) -> np.ndarray:
  """Plain numpy VI, v <- max_a r + gamma P v, stopped at ||v' - v|| < tol."""
  v = np.zeros(P.shape[0])
  while True:
    v_new = (r + gamma * P @ v).max(axis=1)
    if np.max(np.abs(v_new - v)) < tol:
      return v_new
    v = v_new


def _evaluate(P: np.ndarray, r: np.ndarray, gamma: float, pi: np.ndarray) -> np.ndarray:
  """v_pi = (I - gamma P_pi)^{-1} r_pi with numpy."""
  P_pi = np.einsum("sat,sa->st", P, pi)
  r_pi = np.sum(pi * r, axis=1)
  return np.linalg.solve(np.eye(P.shape[0]) - gamma * P_pi, r_pi)


# -----------------------------------------------------------------------------
# Registry
# -----------------------------------------------------------------------------


def test_registry_lists_the_documented_envs():
  assert {"garnet", "chain", "river_swim", "gridworld", "sutton_barto_grid", "forest",
          "frozen_lake", "cliff_walking", "taxi", "garnet_fh", "chain_fh",
          "river_swim_fh"} <= set(envs.registered())
  assert envs.registered() == sorted(envs.registered())


def test_every_registry_entry_is_a_known_problem_type():
  from mdptheory.types import Bandit, PreferenceGame
  kinds = {n: type(_built(n)).__name__ for n in envs.registered()}
  assert all(isinstance(_built(n), (MDP, FiniteHorizonMDP, Bandit, PreferenceGame)) for n in kinds), kinds
  assert len(MDP_ENVS) >= 12


def test_unknown_env_name_lists_the_registered_names():
  with pytest.raises(ValueError, match="unknown env 'garnett'") as e:
    envs.make("garnett")
  assert str(envs.registered()) in str(e.value)


def test_unknown_keyword_names_the_key_and_the_valid_keys():
  with pytest.raises(ParameterError, match="num_state") as e:
    envs.make("garnet", num_state=10)
  assert "num_states" in str(e.value) and "branching" in str(e.value)
  with pytest.raises(TypeError):  # ParameterError is also a TypeError, like Python's own
    envs.make("chain", gama=0.9)


# -----------------------------------------------------------------------------
# Conformance, parametrized over the whole registry
# -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", MDP_ENVS)
def test_kernel_rows_are_distributions_and_shapes_agree(name):
  problem = _built(name)
  P = _dense_P(problem)
  r, mu0 = np.asarray(problem.r), np.asarray(problem.mu0)
  if isinstance(problem, FiniteHorizonMDP):
    H, S, A, S2 = P.shape
    assert r.shape == (H, S, A) and S2 == S and problem.horizon == H
  else:
    assert isinstance(problem, MDP)
    S, A, S2 = P.shape
    assert r.shape == (S, A) and S2 == S
    gamma = float(problem.gamma)
    assert 0.0 <= gamma < 1.0
  assert mu0.shape == (S,)
  assert (P >= 0).all() and np.allclose(P.sum(-1), 1.0, rtol=0, atol=1e-12)
  assert (mu0 >= 0).all() and abs(mu0.sum() - 1.0) < 1e-12
  assert np.isfinite(r).all()
  assert r.dtype == np.float64 and P.dtype == np.float64


@pytest.mark.parametrize("name", MDP_ENVS)
def test_bellman_backup_is_the_same_under_jit(name):
  """jit == eager for the optimal backup (discounted) or a full backward induction (finite horizon)."""
  problem = _built(name)
  if isinstance(problem, FiniteHorizonMDP):
    def backward_induction(fh):
      def stage(v, h):
        q = fh.r[h] + jnp.einsum("sat,t->sa", fh.P[h], v)
        return q.max(-1), None
      v, _ = jax.lax.scan(stage, jnp.zeros(fh.num_states), jnp.arange(fh.horizon)[::-1])
      return v
    eager = np.zeros(problem.num_states)
    P, r = np.asarray(problem.P), np.asarray(problem.r)
    for h in reversed(range(problem.horizon)):
      eager = (r[h] + P[h] @ eager).max(-1)
    np.testing.assert_allclose(jax.jit(backward_induction)(problem), eager, rtol=1e-12, atol=1e-12)
  else:
    mdp = problem.dense()
    v = jax.random.normal(jax.random.key(1), (mdp.num_states,))
    backup = lambda m, v: m.r + m.gamma * jnp.einsum("sat,t->sa", m.P, v)
    eager = np.asarray(mdp.r) + float(mdp.gamma) * np.asarray(mdp.P) @ np.asarray(v)
    np.testing.assert_allclose(jax.jit(backup)(mdp, v), eager, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", MDP_ENVS)
def test_factories_are_pure_and_follow_dtype(name):
  assert _leaves_equal(envs.make(name), _built(name))
  f32 = envs.make(name, dtype=np.float32)
  assert all(leaf.dtype in (np.float32, np.int32) for leaf in jax.tree_util.tree_leaves(f32))
  np.testing.assert_allclose(_dense_P(f32), _dense_P(_built(name)), atol=1e-6)


@pytest.mark.parametrize("name", SEEDED)
def test_seeded_factories_are_reproducible(name):
  """Same key -> identical arrays (int seed == jax.random.key == PRNGKey); another key -> other arrays."""
  a = envs.make(name, key=7)
  assert _leaves_equal(a, envs.make(name, key=jax.random.key(7)))
  assert _leaves_equal(a, envs.make(name, key=jax.random.PRNGKey(7)))
  assert not np.array_equal(_dense_P(a), _dense_P(envs.make(name, key=8)))


# -----------------------------------------------------------------------------
# Garnet (THEORY.md §1.2)
# -----------------------------------------------------------------------------


# Few distinct shapes: each (S, A, B) compiles the sampler once (~1 s on a CPU).
@pytest.mark.parametrize("S,A,B", [(30, 4, 4), (7, 3, 7)])
def test_garnet_follows_the_protocol(S, A, B):
  """B distinct successors per row; max(1, round(0.1 S)) rewarding states in (0, 1), constant over actions."""
  for seed in range(3):
    mdp = envs.garnet(seed, num_states=S, num_actions=A, branching=B, gamma=0.9)
    P, r = np.asarray(mdp.P), np.asarray(mdp.r)
    assert ((P > 0).sum(-1) == B).all()
    np.testing.assert_allclose(P.sum(-1), 1.0, atol=1e-12)
    assert (r == r[:, :1]).all()
    rewarding = r[:, 0] != 0
    assert rewarding.sum() == max(1, round(0.1 * S))
    assert ((r[rewarding, 0] > 0) & (r[rewarding, 0] < 1)).all()
    np.testing.assert_array_equal(np.asarray(mdp.mu0), np.full(S, 1.0 / S))


def test_garnet_successor_sampler_matches_a_slow_reference():
  """The rank-insertion sampler returns, sorted, the u_i-th free state of each sequential draw."""
  S, B, rows = 9, 5, 200
  key = jax.random.key(3)
  fast = np.asarray(tabular._distinct_successors(key, rows, S, B))
  u = np.asarray(jax.random.randint(key, (rows, B), 0, S - jnp.arange(B), dtype=jnp.int32))
  for row in range(rows):
    chosen = []
    for i in range(B):
      free = [x for x in range(S) if x not in chosen]
      chosen.append(free[u[row, i]])
    np.testing.assert_array_equal(fast[row], sorted(chosen))


def test_garnet_successor_sets_are_uniform_subsets():
  """Every 3-subset of 6 states is equally likely (chi-square over 12,000 rows, fixed key)."""
  S, B = 6, 3
  rows = np.asarray(tabular._distinct_successors(jax.random.key(0), 12_000, S, B))
  subsets = list(itertools.combinations(range(S), B))
  index = {c: i for i, c in enumerate(subsets)}
  counts = np.bincount([index[tuple(row)] for row in rows], minlength=len(subsets))
  assert stats.chisquare(counts).pvalue > 1e-3


def test_garnet_weights_are_uniform_spacings():
  """Sorted-uniform spacings are Dirichlet(1, ..., 1): each weight ~ Beta(1, B - 1) (KS test)."""
  B = 4
  w = np.concatenate([np.asarray(envs.garnet_sparse_arrays(k, 30, 4, B, 0.1)[1]).reshape(-1, B)
                      for k in jax.random.split(jax.random.key(1), 5)])  # 600 rows
  for b in range(B):
    assert stats.kstest(w[:, b], stats.beta(1, B - 1).cdf).pvalue > 1e-3


def test_sparse_and_dense_garnet_are_the_same_mdp():
  for seed in range(3):
    dense = envs.garnet(seed)
    sparse = envs.garnet(seed, sparse=True)
    assert sparse.is_sparse and sparse.P.next_states.shape == (30, 4, 4)
    assert _leaves_equal(sparse.dense(), dense)


def test_garnet_vmap_over_keys_equals_a_python_loop():
  N = 10  # the same batch size as garnet_fh's default horizon, so the vmapped sampler compiles once
  keys = jax.random.split(jax.random.key(5), N)
  P, r = jax.vmap(lambda k: envs.garnet_arrays(k, 30, 4, 4, 0.1))(keys)
  batch = envs.garnet_batch(jax.random.key(5), num_mdps=N, num_states=30, num_actions=4, branching=4)
  sparse_batch = envs.garnet_batch(5, num_mdps=N, num_states=30, num_actions=4, branching=4,
                                   sparse=True)
  assert batch.P.shape == (N, 30, 4, 30) and batch.gamma.shape == (N,) and batch.mu0.shape == (N, 30)
  for i, k in enumerate(keys):
    one = envs.garnet(k, num_states=30, num_actions=4, branching=4)
    np.testing.assert_array_equal(P[i], one.P)
    np.testing.assert_array_equal(r[i], one.r)
    assert _leaves_equal(jax.tree_util.tree_map(lambda x: x[i], batch), one)
    assert _leaves_equal(jax.tree_util.tree_map(lambda x: x[i], sparse_batch).dense(), one)


def test_sparse_garnet_with_a_million_states_builds_without_a_dense_kernel():
  S = 1_000_000
  mdp = envs.garnet(0, num_states=S, num_actions=2, branching=2, sparse=True)
  ns, probs = np.asarray(mdp.P.next_states), np.asarray(mdp.P.probs)
  assert mdp.P.shape == (S, 2, S) and ns.shape == (S, 2, 2) and ns.dtype == np.int32
  assert (ns[..., 0] < ns[..., 1]).all() and ns.min() >= 0 and ns.max() < S
  np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-12)
  assert np.count_nonzero(np.asarray(mdp.r[:, 0])) == S // 10
  # Successors are spread over the whole range, not clustered (a uniform draw of 4 * 10^6 indices).
  assert abs(np.mean(ns) / (S - 1) - 0.5) < 1e-3


def test_dense_garnet_over_the_memory_budget_is_refused_before_allocation():
  start = time.perf_counter()
  with pytest.raises(MemoryBudgetError, match="sparse=True"):
    envs.garnet(0, num_states=100_000, num_actions=10)
  with pytest.raises(MemoryBudgetError):
    envs.garnet_batch(0, num_mdps=1000, num_states=1000, num_actions=10)
  assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("kwargs, match", [
    (dict(branching=31), "branching=31 exceeds num_states=30"),
    (dict(reward_fraction=1.5), "reward_fraction=1.5"),
    (dict(num_states=0), "num_states=0"),
    (dict(gamma=1.0), "gamma=1"),
    (dict(key=0.5), "key=0.5"),
    (dict(key=jax.random.split(jax.random.key(0), 3)), "batch of shape"),
])
def test_garnet_rejects_bad_parameters(kwargs, match):
  with pytest.raises(ParameterError, match=match):
    envs.garnet(**kwargs)


def test_finite_horizon_garnet_has_a_fresh_garnet_per_stage():
  H = 10
  fh = envs.garnet_fh(2, num_states=30, num_actions=4, branching=4, horizon=H)
  keys = jax.random.split(jax.random.key(2), H)
  P = np.asarray(fh.P)
  assert P.shape == (H, 30, 4, 30) and ((P > 0).sum(-1) == 4).all()
  for h in range(H):
    P_h, r_h = envs.garnet_arrays(keys[h], 30, 4, 4, 0.1)
    np.testing.assert_array_equal(P[h], P_h)
    np.testing.assert_array_equal(fh.r[h], r_h)
  assert not np.array_equal(P[0], P[1])


# -----------------------------------------------------------------------------
# Textbook values
# -----------------------------------------------------------------------------

FIGURE_3_2 = np.array([
    [3.3, 8.8, 4.4, 5.3, 1.5],
    [1.5, 3.0, 2.3, 1.9, 0.5],
    [0.1, 0.7, 0.7, 0.4, -0.4],
    [-1.0, -0.4, -0.4, -0.6, -1.2],
    [-1.9, -1.3, -1.2, -1.4, -2.0],
])
FIGURE_3_5 = np.array([
    [22.0, 24.4, 22.0, 19.4, 17.5],
    [19.8, 22.0, 19.8, 17.8, 16.0],
    [17.8, 19.8, 17.8, 16.0, 14.4],
    [16.0, 17.8, 16.0, 14.4, 13.0],
    [14.4, 16.0, 14.4, 13.0, 11.7],
])


def test_sutton_barto_random_policy_values_are_figure_3_2():
  mdp = envs.sutton_barto_grid(gamma=0.9)
  v = _evaluate(np.asarray(mdp.P), np.asarray(mdp.r), 0.9, np.full((25, 4), 0.25))
  np.testing.assert_allclose(v.reshape(5, 5), FIGURE_3_2, atol=0.051)


def test_sutton_barto_optimal_values_are_figure_3_5():
  mdp = envs.sutton_barto_grid(gamma=0.9)
  v_star = _value_iteration(np.asarray(mdp.P), np.asarray(mdp.r), 0.9)
  np.testing.assert_allclose(v_star.reshape(5, 5), FIGURE_3_5, atol=0.051)


def test_forest_always_wait_has_the_pymdptoolbox_value_and_is_optimal():
  mdp = envs.forest()
  P, r = np.asarray(mdp.P), np.asarray(mdp.r)
  wait = np.eye(2)[np.zeros(3, int)]
  v_wait = _evaluate(P, r, 0.9, wait)
  np.testing.assert_allclose(v_wait, [26.244, 29.484, 33.484], atol=1e-9)
  v_star = _value_iteration(P, r, 0.9)
  np.testing.assert_allclose(v_star, v_wait, atol=1e-9)
  q_star = r + 0.9 * P @ v_star
  assert (q_star.argmax(1) == tabular.WAIT).all()


def test_forest_arrays_are_those_printed_in_the_pymdptoolbox_docstring():
  """``mdptoolbox.example.forest()`` prints P (A, S, S) and R (S, A); MDP.from_ass reads that layout."""
  P_ass = [[[0.1, 0.9, 0.0], [0.1, 0.0, 0.9], [0.1, 0.0, 0.9]],
           [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]]
  R = [[0.0, 0.0], [0.0, 1.0], [4.0, 2.0]]
  assert _leaves_equal(envs.forest(), MDP.from_ass(P_ass, R, 0.9))


def test_deterministic_chain_values_have_the_closed_form():
  """slip = 0: going right is optimal and v*(s) = gamma^(S-1-s) / (1 - gamma)."""
  S, gamma = 10, 0.9
  mdp = envs.chain(num_states=S, slip=0.0, gamma=gamma)
  v_star = _value_iteration(np.asarray(mdp.P), np.asarray(mdp.r), gamma)
  np.testing.assert_allclose(v_star, gamma ** (S - 1 - np.arange(S)) / (1 - gamma), atol=1e-9)


def test_slippery_chain_moves_the_other_way_with_probability_slip():
  P = np.asarray(envs.chain(num_states=5, slip=0.2).P)
  assert P[2, tabular.RIGHT, 3] == pytest.approx(0.8) and P[2, tabular.RIGHT, 1] == pytest.approx(0.2)
  assert P[2, tabular.LEFT, 1] == pytest.approx(0.8) and P[2, tabular.LEFT, 3] == pytest.approx(0.2)
  assert P[0, tabular.LEFT, 0] == pytest.approx(0.8) and P[4, tabular.RIGHT, 4] == pytest.approx(0.8)


def test_river_swim_has_the_documented_dynamics_and_swimming_right_is_optimal():
  mdp = envs.river_swim(num_states=6, gamma=0.95)
  P, r = np.asarray(mdp.P), np.asarray(mdp.r)
  L, R = tabular.LEFT, tabular.RIGHT
  assert P[3, L, 2] == 1 and P[0, L, 0] == 1
  np.testing.assert_allclose(P[3, R, [4, 3, 2]], [0.35, 0.6, 0.05])
  np.testing.assert_allclose(P[0, R, [1, 0]], [0.4, 0.6])
  np.testing.assert_allclose(P[5, R, [5, 4]], [0.6, 0.4])
  assert r[0, L] == 0.005 and r[5, R] == 1.0 and np.count_nonzero(r) == 2
  v_star = _value_iteration(P, r, 0.95)
  assert ((r + 0.95 * P @ v_star).argmax(1) == R).all()


def test_gridworld_optimal_values_discount_the_shortest_path():
  """Deterministic grid, reward 1 on entering the goal: v*(s) = gamma^(d(s) - 1), d the BFS distance."""
  H, W, gamma = 4, 5, 0.9
  walls = [(1, 1), (1, 2), (1, 3), (2, 3)]
  mdp = envs.gridworld(height=H, width=W, gamma=gamma, goals={(3, 4): 1.0}, walls=walls)
  v_star = _value_iteration(np.asarray(mdp.P), np.asarray(mdp.r), gamma)
  dist, frontier = {(3, 4): 0}, [(3, 4)]
  while frontier:
    cell = frontier.pop(0)
    for dr, dc in tabular._MOVES:
      nxt = (cell[0] + dr, cell[1] + dc)
      if 0 <= nxt[0] < H and 0 <= nxt[1] < W and nxt not in walls and nxt not in dist:
        dist[nxt] = dist[cell] + 1
        frontier.append(nxt)
  for (row, col), d in dist.items():
    expected = 0.0 if d == 0 else gamma ** (d - 1)
    assert v_star[row * W + col] == pytest.approx(expected, abs=1e-9)
  assert np.asarray(mdp.mu0)[0] == 1.0


def test_slippery_gridworld_keeps_the_intended_move_with_probability_one_minus_three_quarters_slip():
  P = np.asarray(envs.gridworld(height=3, width=3, slip=0.4, goals={(2, 2): 1.0}).P)
  center = 4
  assert P[center, tabular.EAST, 5] == pytest.approx(1 - 0.75 * 0.4)
  assert P[center, tabular.EAST, 1] == pytest.approx(0.1)
  assert P[0, tabular.NORTH, 0] == pytest.approx(1 - 0.75 * 0.4 + 0.1)  # north and west bump


def test_gridworld_rejects_bad_cells():
  with pytest.raises(ParameterError, match=r"\(5, 0\) is outside the 5x5 grid"):
    envs.gridworld(walls=[(5, 0)])
  with pytest.raises(ParameterError, match="both walls and goals"):
    envs.gridworld(goals={(1, 1): 1.0}, walls=[(1, 1)])


def test_finite_horizon_versions_repeat_the_discounted_kernel():
  fh = envs.finite_horizon("chain", 4, num_states=5, slip=0.3)
  assert _leaves_equal(fh, envs.chain_fh(num_states=5, slip=0.3, horizon=4))
  base = envs.chain(num_states=5, slip=0.3)
  for h in range(4):
    np.testing.assert_array_equal(fh.P[h], base.P)
    np.testing.assert_array_equal(fh.r[h], base.r)
  with pytest.raises(ParameterError, match="only apply when building an env by name"):
    envs.finite_horizon(base, 4, num_states=5)
  assert envs.river_swim_fh(horizon=7).P.shape == (7, 6, 2, 6)
