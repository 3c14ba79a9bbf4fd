"""Claims about the gymnasium interop (mdptheory.gym).

* from_toy_text reproduces env.P exactly (duplicates summed, expected rewards),
  terminal transitions lead to absorbing zero-reward states, and simulating the
  original gymnasium env gives the converted transition frequencies and rewards.
* Bad tables raise the library's errors, naming (s, a) and the offending value.
* MDPEnv passes gymnasium's env checker, and its samples follow P and mu0.

Statistical tests use fixed seeds, so they are deterministic; each threshold is a
p-value of 1e-4 (or a 5-sigma band), loose enough that a correct sampler passes for
essentially any seed and tight enough that a wrong probability of the size of
the ones in these envs (>= 0.05) fails at these sample sizes.
"""

from __future__ import annotations

import types
import warnings

import gymnasium
import jax
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from scipy import stats

from mdptheory import envs
from mdptheory.errors import InvalidMDPError, NonFiniteError, ParameterError, ShapeError
from mdptheory.gym import MDPEnv, from_toy_text, terminal_states, to_gymnasium, toy_text_tables
from mdptheory.types import MDP, FiniteHorizonMDP

TOY_TEXT = [
    ("FrozenLake-v1", dict(is_slippery=True)),
    ("FrozenLake-v1", dict(is_slippery=False)),
    ("FrozenLake-v1", dict(map_name="8x8", is_slippery=True)),
    ("CliffWalking-v1", dict()),
    ("CliffWalking-v1", dict(is_slippery=True)),
    ("Taxi-v4", dict()),
    ("Taxi-v4", dict(is_rainy=True)),
]


def _unwrapped(env_id, **kw):
  return gymnasium.make(env_id, **kw).unwrapped


def _converted_next(next_state: int, terminated: bool, terminal: np.ndarray) -> int:
  """Where a gymnasium transition lands in the converted MDP (mdptheory.gym's docstring)."""
  if terminated and next_state not in terminal:
    return int(terminal[-1])  # redirected to the added absorbing state
  return next_state


# -----------------------------------------------------------------------------
# from_toy_text
# -----------------------------------------------------------------------------


@pytest.mark.parametrize("env_id,kw", TOY_TEXT, ids=[f"{e}-{k}" for e, k in TOY_TEXT])
def test_converted_tables_sum_the_env_entries(env_id, kw):
  """P[s, a, s'] and r[s, a] recomputed entry by entry from env.P, duplicates included."""
  env = _unwrapped(env_id, **kw)
  P, r, mu0, terminal = toy_text_tables(env)
  S = env.observation_space.n
  for s in range(S):
    if s in terminal:
      continue
    for a in range(env.action_space.n):
      row, reward = np.zeros(P.shape[0]), 0.0
      for p, t, rew, done in env.P[s][a]:
        row[_converted_next(t, done, terminal)] += p
        reward += p * rew
      np.testing.assert_allclose(P[s, a], row, rtol=0, atol=1e-15)
      assert r[s, a] == pytest.approx(reward, abs=1e-12)
  np.testing.assert_allclose(mu0[:S], env.initial_state_distrib, atol=0)
  np.testing.assert_allclose(P.sum(-1), 1.0, atol=1e-12)


def test_slippery_frozen_lake_sums_duplicate_entries():
  """In the corner, 'left' and 'up' both bump: env.P[0][0] lists state 0 twice, each 1/3."""
  env = _unwrapped("FrozenLake-v1", is_slippery=True)
  assert [t for _, t, _, _ in env.P[0][0]].count(0) == 2
  P, _, _ = from_toy_text(env)
  assert P[0, 0, 0] == pytest.approx(2 / 3) and P[0, 0, 4] == pytest.approx(1 / 3)


@pytest.mark.parametrize("map_name", ["4x4", "8x8"])
def test_frozen_lake_holes_and_goal_are_absorbing_with_zero_reward(map_name):
  env = _unwrapped("FrozenLake-v1", map_name=map_name)
  mdp = envs.frozen_lake(map_name=map_name)
  holes_and_goal = np.flatnonzero(np.isin(env.desc.ravel(), [b"H", b"G"]))
  np.testing.assert_array_equal(terminal_states(env), holes_and_goal)
  assert mdp.num_states == env.observation_space.n
  P, r = np.asarray(mdp.P), np.asarray(mdp.r)
  for t in holes_and_goal:
    assert (P[t, :, t] == 1).all() and (r[t] == 0).all()


def test_cliff_walking_goal_is_absorbing_and_the_cliff_is_not_terminal():
  env = _unwrapped("CliffWalking-v1")
  P, r, mu0, terminal = toy_text_tables(env)
  np.testing.assert_array_equal(terminal, [47])
  assert (P[47, :, 47] == 1).all() and (r[47] == 0).all()
  # Stepping right from the start (3, 0) into the cliff costs -100 and returns to the start.
  assert P[36, 1, 36] == 1 and r[36, 1] == -100
  assert mu0[36] == 1


def test_taxi_dropoff_leads_to_an_added_absorbing_state():
  """A dropoff target is also entered by ordinary moves, so terminal transitions go to state 500."""
  env = _unwrapped("Taxi-v4")
  mdp = envs.taxi()
  P, r = np.asarray(mdp.P), np.asarray(mdp.r)
  assert mdp.num_states == 501 and float(mdp.mu0[500]) == 0
  np.testing.assert_array_equal(terminal_states(env), [500])
  assert (P[500, :, 500] == 1).all() and (r[500] == 0).all()
  done = [(s, a) for s in range(500) for a in range(6) if env.P[s][a][0][3]]
  assert len(done) == 4  # per destination: passenger in the taxi, taxi at the destination, dropoff
  for s, a in done:
    assert P[s, a, 500] == 1 and r[s, a] == 20
  # The dropoff target itself keeps its dynamics (it is entered by moves as well).
  target = env.P[done[0][0]][done[0][1]][0][1]
  assert any(env.P[s][a][0][1] == target and not env.P[s][a][0][3]
             for s in range(500) for a in range(6))
  assert P[target, :, 500].sum() == 0


def test_deterministic_frozen_lake_optimal_value_discounts_the_shortest_path():
  """Reward 1 on the 6th move and nothing after the goal: v*(start) = gamma^5."""
  mdp = envs.frozen_lake(is_slippery=False, gamma=0.9)
  P, r = np.asarray(mdp.P), np.asarray(mdp.r)
  v = np.zeros(16)
  for _ in range(200):
    v = (r + 0.9 * P @ v).max(1)
  assert v[0] == pytest.approx(0.9 ** 5, abs=1e-12)


@pytest.mark.parametrize("env_id,kw,steps", [
    ("FrozenLake-v1", dict(is_slippery=True), 20_000),
    ("CliffWalking-v1", dict(is_slippery=True), 30_000),
    ("Taxi-v4", dict(is_rainy=True), 30_000),
])
def test_simulating_the_gymnasium_env_matches_the_converted_mdp(env_id, kw, steps):
  """Random-policy rollouts of the original env: transition counts follow P (chi-square), rewards average r."""
  env = gymnasium.make(env_id, **kw).unwrapped
  P, r, _, terminal = toy_text_tables(env)
  S, A = r.shape
  rng = np.random.default_rng(0)
  counts = np.zeros((S, A, S))
  reward_sum, reward_sq = np.zeros((S, A)), np.zeros((S, A))
  s, _ = env.reset(seed=0)
  for _ in range(steps):
    a = int(rng.integers(A))
    s_next, reward, terminated, _, _ = env.step(a)
    counts[s, a, _converted_next(s_next, terminated, terminal)] += 1
    reward_sum[s, a] += reward
    reward_sq[s, a] += reward ** 2
    s = env.reset()[0] if terminated else s_next
  n = counts.sum(-1)
  visited = n >= 30
  assert visited.sum() >= 20
  # Pooled chi-square over visited (s, a): sum (O - E)^2 / E over the support, dof = sum (|support| - 1).
  expected = n[..., None] * P
  support = (P > 0) & visited[..., None]
  assert (counts[(P == 0)] == 0).all()  # never a transition the MDP forbids
  chi2 = np.sum((counts[support] - expected[support]) ** 2 / expected[support])
  dof = int(support.sum() - visited.sum())
  if dof > 0:
    assert stats.chi2.sf(chi2, dof) > 1e-4
  # Mean rewards: within 5 standard errors of r[s, a] (exact variance from env.P).
  mean = reward_sum[visited] / n[visited]
  var = np.zeros((S, A))
  for s in range(env.observation_space.n):
    for a in range(A):
      var[s, a] = sum(p * rew ** 2 for p, _, rew, _ in env.P[s][a]) - r[s, a] ** 2
  tol = 5 * np.sqrt(np.maximum(var[visited], 0) / n[visited]) + 1e-12
  assert (np.abs(mean - r[visited]) <= tol).all()


def test_from_gymnasium_is_the_validated_from_toy_text():
  env = _unwrapped("FrozenLake-v1")
  P, r, mu0 = from_toy_text(env)
  assert P.dtype == r.dtype == mu0.dtype == np.float64
  mdp = MDP.from_gymnasium(env, 0.99)
  reference = MDP.create(P, r, 0.99, mu0)
  for x, y in zip(jax.tree_util.tree_leaves(mdp), jax.tree_util.tree_leaves(reference)):
    np.testing.assert_array_equal(x, y)


# -- bad tables -----------------------------------------------------------------


def _fake_env(table, S=3, A=2, **attrs):
  return types.SimpleNamespace(P=table, observation_space=gymnasium.spaces.Discrete(S),
                               action_space=gymnasium.spaces.Discrete(A), **attrs)


def _good_table():
  return {s: {a: [(1.0, (s + a) % 3, 0.0, False)] for a in range(2)} for s in range(3)}


def test_probabilities_not_summing_to_one_name_the_state_action_and_the_sum():
  table = _good_table()
  table[1][0] = [(0.5, 0, 1.0, False), (0.3, 2, 0.0, False)]
  with pytest.raises(InvalidMDPError, match=r"s=1, a=0\) sum to 0\.8\b"):
    from_toy_text(_fake_env(table))


def test_next_state_out_of_range_is_a_shape_error():
  table = _good_table()
  table[2][1] = [(1.0, 3, 0.0, False)]
  with pytest.raises(ShapeError, match=r"env.P\[2\]\[1\] has next_state 3, outside the state range \[0, 3\)"):
    from_toy_text(_fake_env(table))


@pytest.mark.parametrize("mutate, error, match", [
    (lambda t: t[0][1].__setitem__(0, (1.0, 1, float("nan"), False)), NonFiniteError, r"reward nan"),
    (lambda t: t[2].pop(1), InvalidMDPError, r"env.P\[2\] has no entry for action a=1"),
    (lambda t: t.pop(2), InvalidMDPError, r"no entry for state s=2"),
    (lambda t: t[1].__setitem__(1, [(1.0, 0, 0.0)]), ShapeError, r"\(prob, next_state, reward, terminated\)"),
    (lambda t: t[1].__setitem__(1, [(1.2, 0, 0.0, False), (-0.2, 1, 0.0, False)]), InvalidMDPError,
     r"negative probability -0.2"),
])
def test_malformed_tables_raise_the_library_errors(mutate, error, match):
  table = _good_table()
  mutate(table)
  with pytest.raises(error, match=match):
    from_toy_text(_fake_env(table))


def test_fickle_taxi_is_refused_because_its_dynamics_are_not_in_the_table():
  with pytest.raises(ParameterError, match="fickle_passenger"):
    from_toy_text(_unwrapped("Taxi-v4", fickle_passenger=True))


def test_a_state_entered_both_ways_keeps_its_dynamics_and_ends_episodes_in_an_added_state():
  """0 -> 2 without termination, 1 -> 2 with termination (+5): v(1) = 5 exactly, and 2 still moves to 0."""
  table = {
      0: {0: [(1.0, 2, 0.0, False)]},
      1: {0: [(1.0, 2, 5.0, True)]},
      2: {0: [(1.0, 0, 1.0, False)]},
  }
  P, r, mu0 = from_toy_text(_fake_env(table, S=3, A=1, initial_state_distrib=np.array([0.0, 1.0, 0.0])))
  assert P.shape == (4, 1, 4)
  np.testing.assert_array_equal(P[:, 0], [[0, 0, 1, 0], [0, 0, 0, 1], [1, 0, 0, 0], [0, 0, 0, 1]])
  np.testing.assert_array_equal(r[:, 0], [0, 5, 1, 0])
  np.testing.assert_array_equal(mu0, [0, 1, 0, 0])
  v = np.linalg.solve(np.eye(4) - 0.9 * P[:, 0], r[:, 0])
  assert v[1] == pytest.approx(5.0)


# -----------------------------------------------------------------------------
# MDPEnv
# -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["chain", "garnet", "river_swim", "frozen_lake", "taxi",
                                  "chain_fh", "garnet_fh"])
def test_mdp_env_passes_the_gymnasium_env_checker(name):
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    check_env(MDPEnv(envs.make(name)))
    check_env(MDPEnv(envs.make(name), render_mode="ansi"))
  # The one expected warning: an env built without gymnasium.make has no spec for re-making it.
  other = [str(w.message) for w in caught if "not having a spec" not in str(w.message)]
  assert other == []


def test_mdp_env_wraps_a_sparse_kernel():
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    check_env(to_gymnasium(envs.garnet(0, sparse=True)))
  assert all("not having a spec" in str(w.message) for w in caught)


def _rollout_counts(env: MDPEnv, steps: int, seed: int) -> np.ndarray:
  S, A = env.observation_space.n, env.action_space.n
  rng = np.random.default_rng(seed)
  counts = np.zeros((S, A, S))
  s, _ = env.reset(seed=seed)
  for _ in range(steps):
    a = int(rng.integers(A))
    s_next, _, terminated, truncated, _ = env.step(a)
    counts[s, a, s_next] += 1
    s = env.reset()[0] if terminated or truncated else s_next
  return counts


def test_mdp_env_transition_frequencies_follow_P():
  """40,000 steps on a 10-state Garnet (~1,300 per (s, a)): pooled chi-square p-value > 1e-4."""
  mdp = envs.garnet(4, num_states=10, num_actions=3, branching=4, gamma=0.9)
  P = np.asarray(mdp.P)
  counts = _rollout_counts(MDPEnv(mdp), 40_000, seed=1)
  n = counts.sum(-1)
  assert (counts[P == 0] == 0).all()
  expected = n[..., None] * P
  support = P > 0
  chi2 = np.sum((counts[support] - expected[support]) ** 2 / expected[support])
  dof = int(support.sum() - n.size)
  assert stats.chi2.sf(chi2, dof) > 1e-4
  # And a wrong kernel would be caught: the same counts against a perturbed P fail.
  wrong = P.copy()
  wrong[..., :] = np.where(support, 1.0 / 4, 0.0)
  chi2_wrong = np.sum((counts[support] - (n[..., None] * wrong)[support]) ** 2 / (n[..., None] * wrong)[support])
  assert stats.chi2.sf(chi2_wrong, dof) < 1e-4


def test_dense_and_sparse_mdp_envs_are_the_same_process():
  """Successors are sorted in both layouts, so the same seed gives the same trajectory."""
  dense = envs.garnet(4, num_states=10, num_actions=3, branching=4, gamma=0.9)
  sparse = envs.garnet(4, num_states=10, num_actions=3, branching=4, gamma=0.9, sparse=True)
  np.testing.assert_array_equal(_rollout_counts(MDPEnv(dense), 2_000, seed=3),
                                _rollout_counts(MDPEnv(sparse), 2_000, seed=3))


def test_mdp_env_reset_samples_mu0():
  mdp = envs.taxi()
  env = MDPEnv(mdp)
  starts = np.bincount([env.reset(seed=i)[0] for i in range(3_000)], minlength=501)
  mu0 = np.asarray(mdp.mu0)
  assert (starts[mu0 == 0] == 0).all()
  assert stats.chisquare(starts[mu0 > 0]).pvalue > 1e-4  # uniform over the 300 start states
  assert env.reset(seed=0, options={"state": 7})[0] == 7


def test_discounted_mdp_env_truncates_and_never_terminates():
  env = MDPEnv(envs.chain(), max_episode_steps=25)
  env.reset(seed=0)
  flags = [env.step(1)[2:4] for _ in range(25)]
  assert all(not terminated for terminated, _ in flags)
  assert [truncated for _, truncated in flags] == [False] * 24 + [True]
  assert env.gamma == pytest.approx(0.9)


def test_finite_horizon_mdp_env_terminates_at_stage_H_with_stage_rewards():
  fh = envs.garnet_fh(0, horizon=10)
  env = MDPEnv(fh)
  s, _ = env.reset(seed=0)
  for h in range(10):
    s_next, reward, terminated, truncated, info = env.step(0)
    assert reward == float(fh.r[h, s, 0]) and float(fh.P[h, s, 0, s_next]) > 0
    assert terminated == (h == 9) and not truncated and info["t"] == h + 1
    s = s_next
  with pytest.raises(ParameterError, match="call reset"):
    env.step(0)
  assert isinstance(fh, FiniteHorizonMDP)


def test_mdp_env_rejects_misuse():
  env = MDPEnv(envs.chain())
  with pytest.raises(ParameterError, match="before reset"):
    env.step(0)
  env.reset(seed=0)
  with pytest.raises(ParameterError, match="action=2"):
    env.step(2)
  with pytest.raises(ShapeError, match="one at a time"):
    MDPEnv(jax.tree_util.tree_map(lambda x: np.stack([x, x]), envs.chain()))
  with pytest.raises(ParameterError, match="MDP or a FiniteHorizonMDP"):
    MDPEnv(np.zeros((2, 2)))
