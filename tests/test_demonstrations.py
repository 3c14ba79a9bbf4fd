"""Demonstration-regularized RL (THEORY.md §6; Tiapkin et al., ICLR 2024, arXiv 2310.17303).

References are independent of the code under test: trajectory enumeration on tiny finite-horizon MDPs
(values, occupancies, trajectory KL, return variance, the regularized objective), scipy's optimizer for the
regularized maximum, Monte Carlo with stated tolerances for the samplers, a numpy re-implementation of one
UCBVI-Ent+ planning step from the formulas of THEORY.md §6.4, and synthetic frames on which every study's
check must pass or fail as constructed.
"""

from __future__ import annotations

import functools
import importlib
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize

from mdptheory import bounds
from mdptheory.algorithms import demonstrations as D
from mdptheory.errors import NonFiniteError, ParameterError, ShapeError, SupportMismatchError
from mdptheory.types import FiniteHorizonMDP


# Test programs are small: compile them without XLA's backend optimizations (about half the compile time).
fast_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})


# ----------------------------------------------------------------------------- references


def tiny_fmdp(seed: int, S: int = 3, A: int = 2, H: int = 3, *, start: str = "uniform") -> FiniteHorizonMDP:
  """A random finite-horizon MDP built with numpy (dense kernels, U(0, 1) rewards)."""
  rng = np.random.default_rng(seed)
  P = rng.random((H, S, A, S)) ** 3
  P /= P.sum(-1, keepdims=True)
  mu0 = np.full(S, 1.0 / S) if start == "uniform" else np.eye(S)[0]
  return FiniteHorizonMDP.create(P, rng.random((H, S, A)), mu0)


def random_policy(seed: int, H: int, S: int, A: int, *, zeros: bool = False) -> np.ndarray:
  rng = np.random.default_rng(seed)
  pi = rng.random((H, S, A))
  if zeros:
    pi[rng.random((H, S, A)) < 0.3] = 0.0
    pi[..., 0] += 1e-3
  return pi / pi.sum(-1, keepdims=True)


class Enumeration:
  """All trajectories (s_1, a_1, ..., s_H, a_H) of a tiny MDP with their dynamics weights and returns."""

  def __init__(self, fmdp: FiniteHorizonMDP, r=None):
    P, mu0 = np.asarray(fmdp.P), np.asarray(fmdp.mu0)
    r = np.asarray(fmdp.r if r is None else r)
    H, S, A, _ = P.shape
    self.H, self.S, self.A = H, S, A
    t = np.array(list(itertools.product(range(S), range(A), repeat=H)))
    self.s, self.a = t[:, 0::2], t[:, 1::2]
    w = mu0[self.s[:, 0]].copy()
    for h in range(H - 1):
      w *= P[h, self.s[:, h], self.a[:, h], self.s[:, h + 1]]
    self.dyn = w
    self.ret = sum(r[h, self.s[:, h], self.a[:, h]] for h in range(H))

  def prob(self, pi) -> np.ndarray:
    pi = np.asarray(pi)
    return self.dyn * np.prod([pi[h, self.s[:, h], self.a[:, h]] for h in range(self.H)], axis=0)

  def value(self, pi) -> float:
    return float(np.sum(self.prob(pi) * self.ret))

  def kl(self, pi, ref) -> float:
    p, q = self.prob(pi), self.prob(ref)
    on = p > 0
    return float(np.sum(p[on] * np.log(p[on] / q[on])))

  def objective(self, pi, ref, lam) -> float:
    return self.value(pi) - lam * self.kl(pi, ref)


# ----------------------------------------------------------------------------- values, occupancy, KL


def test_values_occupancy_and_return_variance_match_trajectory_enumeration():
  fmdp = tiny_fmdp(0)
  pi = random_policy(1, 3, 3, 2)
  enum = Enumeration(fmdp)
  p = enum.prob(pi)
  assert abs(p.sum() - 1.0) < 1e-12
  g = np.random.default_rng(2).normal(size=(3, 3, 2))
  value, d, variance = fast_jit(lambda m, pi, g: (D.policy_value(m, pi), D.occupancy(m, pi),
                                                  D.return_variance(m, pi, g)))(fmdp, jnp.asarray(pi), jnp.asarray(g))
  np.testing.assert_allclose(float(value), enum.value(pi), rtol=0, atol=1e-12)
  for h in range(3):
    np.testing.assert_allclose(np.asarray(d)[h], np.bincount(enum.s[:, h], weights=p, minlength=3), atol=1e-12)
  G = sum(g[h, enum.s[:, h], enum.a[:, h]] for h in range(3))
  np.testing.assert_allclose(float(variance), np.sum(p * G**2) - np.sum(p * G) ** 2, atol=1e-12)


def test_trajectory_kl_is_the_kl_between_trajectory_laws():
  """KL_traj(π‖π') = Σ_h E_π KL(π_h‖π'_h) equals KL(p_π ‖ p_π') over trajectories (THEORY.md §6.1)."""
  fmdp = tiny_fmdp(3)
  enum = Enumeration(fmdp)
  ref = random_policy(5, 3, 3, 2)
  for zeros in (False, True):
    pi = random_policy(4, 3, 3, 2, zeros=zeros)
    np.testing.assert_allclose(float(D.trajectory_kl(fmdp, pi, ref)), enum.kl(pi, ref), atol=1e-12)
  assert abs(float(D.trajectory_kl(fmdp, ref, ref))) < 1e-14


def test_bc_with_kappa_zero_makes_the_expert_kl_infinite_with_a_clear_error():
  fmdp = tiny_fmdp(6)
  expert = random_policy(6, 3, 3, 2)                         # full support
  demos = D.Demonstrations.create([[0, 1, 2], [1, 1, 0]], [[0, 0, 1], [1, 0, 1]], num_states=3, num_actions=2)
  pi_ml = D.behavior_cloning(demos, 3, 2, kappa=0.0)
  assert float(pi_ml[1, 1, 1]) == 0.0                        # (h=1, s=1) seen twice, action 1 never
  with pytest.raises(SupportMismatchError, match=r"pi_ref\[h=\d, s=\d, a=\d\] = 0 .*kappa > 0 .*kappa = 1"):
    D.trajectory_kl(fmdp, expert, pi_ml)
  assert np.isfinite(float(D.trajectory_kl(fmdp, expert, D.behavior_cloning(demos, 3, 2, kappa=1.0))))


# ----------------------------------------------------------------------------- experts


def test_expert_suboptimalities_are_exact():
  fmdp = tiny_fmdp(7, S=2, A=2, H=3)
  enum = Enumeration(fmdp)
  best = max(enum.value(np.eye(2)[np.array(d).reshape(3, 2)]) for d in itertools.product(range(2), repeat=6))
  opt, soft, noisy, uniform = fast_jit(lambda m, taus, noise: (
      D.optimal_expert(m), jax.vmap(lambda t: D.soft_expert(m, tau=t))(taus),
      jax.vmap(lambda e: D.noisy_expert(m, noise=e))(noise),
      D.noisy_expert(m, noise=1.0)))(fmdp, jnp.asarray([0.05, 0.5]), jnp.asarray([0.0, 0.3]))
  assert abs(float(opt.subopt)) < 1e-12
  np.testing.assert_allclose(enum.value(opt.pi), best, atol=1e-12)
  for i, tau in enumerate((0.05, 0.5)):
    np.testing.assert_allclose(float(soft.subopt[i]), best - enum.value(soft.pi[i]), atol=1e-12)
    assert -1e-12 <= float(soft.subopt[i]) <= tau * 3 * np.log(2) + 1e-12
  for i in range(2):
    np.testing.assert_allclose(float(noisy.subopt[i]), best - enum.value(noisy.pi[i]), atol=1e-12)
  np.testing.assert_allclose(np.asarray(uniform.pi), 0.5)
  with pytest.raises(ParameterError, match="noise=1.5"):
    D.noisy_expert(fmdp, noise=1.5)
  with pytest.raises(ParameterError, match="tau"):
    D.soft_expert(fmdp, tau=0.0)


# ----------------------------------------------------------------------------- demonstrations

_sample = fast_jit(D.sample_demonstrations, static_argnums=(3,))


def test_sampled_demonstrations_follow_the_occupancy_measure():
  """Monte Carlo: the frequency of (h, s, a) over N = 20000 trajectories is d_h(s) π_h(a|s) within 5 σ."""
  fmdp = tiny_fmdp(8)
  pi = random_policy(9, 3, 3, 2)
  N = 20000
  demos = _sample(jax.random.key(1), fmdp, jnp.asarray(pi), N)
  freq = np.bincount(((np.arange(3)[None] * 3 + np.asarray(demos.states)) * 2 + np.asarray(demos.actions)).ravel(),
                     minlength=18).reshape(3, 3, 2) / N
  enum = Enumeration(fmdp)
  p = np.stack([np.bincount(enum.s[:, h] * 2 + enum.a[:, h], weights=enum.prob(pi), minlength=6).reshape(3, 2)
                for h in range(3)])
  sigma = np.sqrt(p * (1 - p) / N)
  assert np.all(np.abs(freq - p) <= 5 * sigma + 1e-12), np.max(np.abs(freq - p) / (sigma + 1e-300))


def test_datasets_are_nested_and_vmap_over_seeds_equals_a_loop():
  fmdp = tiny_fmdp(10)
  pi = random_policy(11, 3, 3, 2)
  big = _sample(jax.random.key(3), fmdp, jnp.asarray(pi), 20000)      # the same program as the Monte Carlo test
  small = _sample(jax.random.key(3), fmdp, jnp.asarray(pi), 20)
  np.testing.assert_array_equal(np.asarray(big.states[:20]), np.asarray(small.states))
  np.testing.assert_array_equal(np.asarray(big.actions[:20]), np.asarray(small.actions))
  keys = jax.random.split(jax.random.key(4), 3)
  batched = fast_jit(jax.vmap(lambda k: D.sample_demonstrations(k, fmdp, jnp.asarray(pi), 20)))(keys)
  for i in range(3):
    single = _sample(keys[i], fmdp, jnp.asarray(pi), 20)
    np.testing.assert_array_equal(np.asarray(batched.states[i]), np.asarray(single.states))
    np.testing.assert_array_equal(np.asarray(batched.actions[i]), np.asarray(single.actions))


@pytest.mark.parametrize("states, actions, horizon, error, match", [
    ([[0, 1, 2], [1, 1, 0]], [[0, 1, 0], [1, 2, 0]], 3, ShapeError,
     r"actions\[1, 1\] \(trajectory 1, step 1\) = 2 .*\[0, 2\)"),
    ([[0, 3, 2], [1, 1, 0]], [[0, 1, 0], [1, 1, 0]], 3, ShapeError,
     r"states\[0, 1\] \(trajectory 0, step 1\) = 3 .*S = 3"),
    ([[0, -1, 2]], [[0, 1, 0]], 3, ShapeError, r"states\[0, 1\] .* = -1"),
    (np.zeros((0, 3), int), np.zeros((0, 3), int), 3, ShapeError, "empty"),
    ([], [], 3, ShapeError, "empty"),
    ([[0, 1], [1, 1]], [[0, 1], [1, 0]], 3, ShapeError, r"length 2 but the horizon is H = 3"),
    ([[0, 1, 2], [1, 1]], [[0, 1, 0], [1, 0]], 3, ShapeError, "ragged|same length"),
    ([[0.0, np.nan, 2.0]], [[0, 1, 0]], 3, NonFiniteError, r"states\[0, 1\] \(trajectory 0, step 1\) is nan"),
    ([[0, 1, 2]], [[0, 1.5, 0]], 3, ParameterError, r"actions\[0, 1\] .* = 1.5 is not an integer"),
    ([[0, 1, 2]], [[0, 1, 0], [0, 0, 0]], 3, ShapeError, "same shape"),
    ([0, 1, 2], [0, 1, 0], 3, ShapeError, r"shape \(N, H\)"),
])
def test_invalid_demonstrations_are_refused_with_the_offending_entry(states, actions, horizon, error, match):
  with pytest.raises(error, match=match):
    D.Demonstrations.create(states, actions, num_states=3, num_actions=2, horizon=horizon)


def test_valid_demonstrations_are_accepted_as_int32():
  demos = D.Demonstrations.create([[0, 1, 2]], [[1.0, 0.0, 1.0]], num_states=3, num_actions=2, horizon=3)
  assert demos.actions.dtype == jnp.int32 and demos.num_trajectories == 1 and demos.horizon == 3


# ----------------------------------------------------------------------------- behaviour cloning


def test_behavior_cloning_is_add_one_smoothing_and_kappa_generalizes_it():
  demos = D.Demonstrations.create([[0, 1], [0, 1], [0, 0]], [[1, 0], [1, 1], [0, 2]], num_states=2, num_actions=3)
  bc = fast_jit(lambda d, kappa, n: D.behavior_cloning(d, 2, 3, kappa=kappa, num_used=n))
  pi = np.asarray(D.behavior_cloning(demos, 2, 3))
  np.testing.assert_allclose(pi[0, 0], [(1 + 1) / (3 + 3), (2 + 1) / (3 + 3), 1 / 6], atol=1e-15)
  np.testing.assert_allclose(pi[0, 1], [1 / 3] * 3, atol=1e-15)            # unseen (h, s): uniform
  np.testing.assert_allclose(pi[1, 1], [(1 + 1) / 5, (1 + 1) / 5, 1 / 5], atol=1e-15)
  pi_k = np.asarray(bc(demos, 0.5, 3))
  np.testing.assert_allclose(pi_k[0, 0], [1.5 / 4.5, 2.5 / 4.5, 0.5 / 4.5], atol=1e-15)
  pi_0 = np.asarray(bc(demos, 0.0, 3))
  np.testing.assert_allclose(pi_0[0, 0], [1 / 3, 2 / 3, 0.0], atol=1e-15)
  np.testing.assert_allclose(pi_0[0, 1], [1 / 3] * 3, atol=1e-15)
  counts_2 = np.zeros((2, 2, 3))
  for s_, a_ in zip(np.asarray(demos.states[:2]), np.asarray(demos.actions[:2])):
    counts_2[[0, 1], s_, a_] += 1
  np.testing.assert_allclose(np.asarray(bc(demos, 1.0, 2)), (counts_2 + 1) / (counts_2.sum(-1, keepdims=True) + 3),
                             atol=1e-15)
  with pytest.raises(ParameterError, match="kappa=-1.0"):
    D.behavior_cloning(demos, 2, 3, kappa=-1.0)


# ----------------------------------------------------------------------------- the regularized objective


@fast_jit
def _solve(fmdp, prior, lam):
  sol = D.regularized_solution(fmdp, prior, lam=lam)
  return sol.pi, fmdp.mu0 @ sol.v[0], D.regularized_value(fmdp, sol.pi, prior, lam=lam)


@pytest.mark.parametrize("lam", [0.05, 1.0, 20.0])
def test_soft_backward_induction_is_the_maximum_over_policies(lam):
  """max_π V^π − λ KL_traj(π‖π^BC) by scipy (trajectory enumeration, softmax parameters, 5 starts) equals
  the soft backward induction value, and no random policy beats it (THEORY.md §6.3, DR-3)."""
  fmdp = tiny_fmdp(12, S=2, A=2, H=2)
  prior = random_policy(13, 2, 2, 2)
  enum = Enumeration(fmdp)
  pi_lam, value, reg_value = _solve(fmdp, jnp.asarray(prior), lam)
  value = float(value)
  np.testing.assert_allclose(float(reg_value), value, atol=1e-12)
  np.testing.assert_allclose(enum.objective(np.asarray(pi_lam), prior, lam), value, atol=1e-12)

  def neg(z):
    logits = z.reshape(2, 2, 2)
    pi = np.exp(logits - logits.max(-1, keepdims=True))
    return -enum.objective(pi / pi.sum(-1, keepdims=True), prior, lam)

  rng = np.random.default_rng(0)
  best = max(-minimize(neg, rng.normal(size=8), method="BFGS", options={"gtol": 1e-10}).fun for _ in range(5))
  np.testing.assert_allclose(best, value, atol=1e-7)
  assert best <= value + 1e-9
  for seed in range(20):
    assert enum.objective(random_policy(100 + seed, 2, 2, 2), prior, lam) <= value + 1e-12


def test_theorem2_decomposition_holds_for_any_policy():
  """V* − V^π̂ <= ε_E + λ KL(π^E‖π^BC) + ε_opt(π̂) for arbitrary π̂, with ε_opt its exact regularized gap."""
  fmdp = tiny_fmdp(14)
  expert = D.Expert(jnp.asarray(random_policy(27, 3, 3, 2)), None)
  expert = expert._replace(subopt=D.suboptimality(fmdp, expert.pi))
  demos = D.Demonstrations.create(np.random.default_rng(1).integers(0, 3, (30, 3)),
                                  np.random.default_rng(2).integers(0, 2, (30, 3)), num_states=3, num_actions=2)
  pi_bc = D.behavior_cloning(demos, 3, 2)
  lams = jnp.asarray([0.01, 0.1, 1.0, 3.0, 10.0, 100.0])
  pi_hats = jnp.asarray(np.stack([random_policy(200 + i, 3, 3, 2) for i in range(6)]))

  def one(lam, pi_hat):
    exact = D.regularized_solution(fmdp, pi_bc, lam=lam).pi
    return D.decomposition(fmdp, expert, pi_bc, pi_hat, lam=lam), D.regularized_gap(fmdp, exact, pi_bc, lam=lam)

  dec, exact_gap = fast_jit(jax.vmap(one))(lams, pi_hats)
  assert np.all(np.asarray(dec.eps_opt) >= -1e-12) and np.all(np.asarray(dec.subopt) >= -1e-12)
  assert np.all(np.asarray(dec.subopt) <= np.asarray(dec.bound) + 1e-12)
  np.testing.assert_allclose(np.asarray(dec.bound), np.asarray(bounds.dr_decomposition(dec.eps_e, dec.kl, dec.eps_opt,
                                                                                       lam=lams)))
  np.testing.assert_allclose(np.asarray(exact_gap), 0.0, atol=1e-12)


# ----------------------------------------------------------------------------- UCBVI-Ent+ (§6.4)


def _plan_by_hand(counts, r, prior, lam, delta, scale):
  """THEORY.md §6.4's formulas, written with numpy loops over (s, a)."""
  H, S, A, _ = counts.shape
  V_up, V_lo, G = np.zeros(S), np.zeros(S), np.zeros(S)
  pis = np.zeros((H, S, A))
  for h in reversed(range(H)):
    Q_up, Q_lo, W, gap = (np.zeros((S, A)) for _ in range(4))
    for s in range(S):
      for a in range(A):
        n = counts[h, s, a].sum()
        p = counts[h, s, a] / n if n > 0 else np.full(S, 1.0 / S)
        beta = scale * (np.log(2 * S * A * H / delta) + S * np.log(np.e * (1 + n)))
        b = np.sqrt(2 * H**2 * beta / n) if n > 0 else np.inf
        b_gap = min(5 * H**2 * beta / n, H) if n > 0 else H
        Q_up[s, a] = min(max(r[h, s, a] + p @ V_up + b, 0), H)
        Q_lo[s, a] = min(max(r[h, s, a] + p @ V_lo - b, 0), H)
        W[s, a] = (1 + 1 / H) * (p @ G) + b_gap
    for s in range(S):
      w = prior[h, s] * np.exp((Q_up[s] - Q_up[s].max()) / lam)
      pis[h, s] = w / w.sum()
    V_up = np.array([Q_up[s].max() + lam * np.log(np.sum(prior[h, s] * np.exp((Q_up[s] - Q_up[s].max()) / lam)))
                     for s in range(S)])
    V_lo = np.array([Q_lo[s].max() + lam * np.log(np.sum(prior[h, s] * np.exp((Q_lo[s] - Q_lo[s].max()) / lam)))
                     for s in range(S)])
    G = np.clip(np.sum(pis[h] * W, 1) + np.max((Q_up - Q_lo) ** 2, 1) / (2 * lam), 0, H)
  return pis, G


_plan = fast_jit(D._plan_ent_plus)


@pytest.mark.parametrize("scale", [1.0, 1e-3])
def test_one_ucbvi_ent_plus_planning_step_matches_the_formulas(scale):
  rng = np.random.default_rng(15)
  H, S, A = 3, 3, 2
  counts = rng.integers(0, 40, (H, S, A, S)).astype(float)
  counts[0, 1, 0] = 0.0                                      # an unvisited (h, s, a)
  r, prior, lam = rng.random((H, S, A)), random_policy(16, H, S, A), 0.7
  pi, g, _ = _plan(jnp.asarray(counts), jnp.asarray(r), jnp.log(jnp.asarray(prior)), lam, 0.1, scale)
  pi_ref, g_ref = _plan_by_hand(counts, r, prior, lam, 0.1, scale)
  np.testing.assert_allclose(np.asarray(pi), pi_ref, atol=1e-12)
  np.testing.assert_allclose(np.asarray(g), g_ref, atol=1e-12)


def test_without_data_the_upper_values_are_h_and_g_is_clipped_at_h():
  H, S, A = 3, 3, 2
  pi, g, gap = _plan(jnp.zeros((H, S, A, S)), jnp.full((H, S, A), 0.5), jnp.log(jnp.full((H, S, A), 0.5)),
                      0.3, 0.1, 1.0)
  np.testing.assert_allclose(np.asarray(gap), H)
  np.testing.assert_allclose(np.asarray(g), H)


def _bpi_impl(key, fmdp, prior, lam, eps, simplified=False):
  """A budget of 20000 episodes in chunks of 500, β^KL scaled by 0.01 (one compilation per variant)."""
  run = D.ucbvi_simplified if simplified else D.ucbvi_ent_plus
  return run(key, fmdp, prior, lam=lam, eps=eps, bonus_scale=0.01, max_episodes=20000, chunk=500)


_bpi = functools.partial(fast_jit, static_argnames=("simplified",))(_bpi_impl)
_gap = fast_jit(lambda fmdp, pi, prior, lam: D.regularized_gap(fmdp, pi, prior, lam=lam))


def test_ucbvi_ent_plus_stopping_rule_bookkeeping_and_certificate():
  """At stopping: G_1 <= ε, fewer episodes than the budget, H visits per episode, and the exact regularized gap
  of the output is below the certificate; with ε = 0 the whole budget is spent."""
  fmdp = tiny_fmdp(17, S=2, A=2, H=2, start="first")
  prior = jnp.full((2, 2, 2), 0.5)
  res = _bpi(jax.random.key(0), fmdp, prior, 0.5, 0.3)
  assert bool(res.stopped) and float(res.certificate) <= 0.3 and int(res.episodes) < 20000
  assert float(res.counts.sum()) == 2 * int(res.episodes)
  assert float(_gap(fmdp, res.pi, prior, 0.5)) <= float(res.certificate)
  trace = np.asarray(res.trace_certificate)
  last = int(res.episodes) // 500                            # the checkpoint in which the rule fired
  assert trace[last] == float(res.certificate) and np.isnan(trace[last + 1:]).all()
  full = _bpi(jax.random.key(0), fmdp, prior, 0.5, 0.0)
  assert not bool(full.stopped) and int(full.episodes) == 20000 and float(full.counts.sum()) == 40000
  np.testing.assert_array_equal(np.asarray(full.trace_episodes), np.arange(1, 41) * 500)
  assert float(full.certificate) <= float(res.certificate)


@pytest.mark.slow
def test_ucbvi_ent_plus_with_the_papers_constants_certifies_a_tiny_problem():
  fmdp = tiny_fmdp(18, S=2, A=2, H=2, start="first")
  prior = jnp.full((2, 2, 2), 0.5)
  res = D.ucbvi_ent_plus(1, fmdp, prior, lam=1.0, eps=0.5, max_episodes=2_000_000, chunk=5000)
  assert bool(res.stopped)
  assert float(D.regularized_gap(fmdp, res.pi, prior, lam=1.0)) <= float(res.certificate) <= 0.5


def test_ucbvi_vmap_over_seeds_equals_a_loop():
  fmdp = tiny_fmdp(19, S=2, A=2, H=2, start="first")
  prior = jnp.full((2, 2, 2), 0.5)
  keys = jax.random.split(jax.random.key(7), 3)
  batched = fast_jit(jax.vmap(lambda k: _bpi_impl(k, fmdp, prior, 0.5, 0.4)))(keys)
  assert len(set(np.asarray(batched.episodes).tolist())) > 1        # the members stop at different times
  for i in range(3):
    single = _bpi(keys[i], fmdp, prior, 0.5, 0.4)
    for name, a, b in zip(single._fields, single, batched):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b[i]), err_msg=name)


def test_simplified_variant_at_lambda_zero_is_hard_optimistic_bpi():
  fmdp = tiny_fmdp(20, S=2, A=2, H=2, start="first")
  prior = jnp.full((2, 2, 2), 0.5)
  res = _bpi(jax.random.key(2), fmdp, prior, 0.0, 0.3, simplified=True)
  pi = np.asarray(res.pi)
  assert bool(res.stopped) and set(np.unique(pi)) <= {0.0, 1.0}
  assert float(D.suboptimality(fmdp, res.pi)) <= float(res.certificate) <= 0.3
  soft = _bpi(jax.random.key(2), fmdp, prior, 0.5, 0.3, simplified=True)
  assert bool(soft.stopped) and 0 < np.asarray(soft.pi).min()
  assert float(_gap(fmdp, soft.pi, prior, 0.5)) <= float(soft.certificate) <= 0.3


@pytest.mark.parametrize("kw, match", [
    (dict(lam=0.0), "lam=0.0 must be > 0"),
    (dict(lam=-1.0), "lam=-1.0"),
    (dict(eps=-0.1), "eps=-0.1"),
    (dict(delta=1.5), "delta=1.5"),
    (dict(bonus_scale=0.0), "bonus_scale=0.0"),
    (dict(max_episodes=0), "max_episodes=0"),
    (dict(max_episodes=10.5), "max_episodes=10.5"),
])
def test_ucbvi_ent_plus_refuses_bad_parameters(kw, match):
  fmdp = tiny_fmdp(21, S=2, A=2, H=2)
  args = dict(lam=0.5, eps=0.1, max_episodes=10) | kw
  with pytest.raises(ParameterError, match=match):
    D.ucbvi_ent_plus(0, fmdp, np.full((2, 2, 2), 0.5), **args)


def test_ucbvi_refuses_a_prior_of_the_wrong_shape_or_a_discounted_mdp():
  fmdp = tiny_fmdp(22, S=2, A=2, H=2)
  with pytest.raises(ShapeError, match=r"pi_ref must have shape \(H, S, A\) = \(2, 2, 2\)"):
    D.ucbvi_ent_plus(0, fmdp, np.full((2, 2), 0.5), lam=0.5, eps=0.1, max_episodes=10)
  with pytest.raises(ParameterError, match="FiniteHorizonMDP"):
    D.ucbvi_simplified(0, "mdp", np.full((2, 2, 2), 0.5), lam=0.5, eps=0.1, max_episodes=10)


# ----------------------------------------------------------------------------- RLHF (§6.5)


_prefs = fast_jit(D.sample_preferences, static_argnums=(3,))


def test_preferences_follow_the_bradley_terry_model():
  """E[o] = E[σ(c ΔR)] over π's pairs (Monte Carlo, 5 σ with σ <= 1/(2√M))."""
  fmdp = tiny_fmdp(23)
  pi = random_policy(24, 3, 3, 2)
  M = 20000
  prefs = _prefs(jax.random.key(8), fmdp, jnp.asarray(pi), M, bt_scale=2.0)
  o = np.asarray(prefs.prefer1)
  assert set(np.unique(o)) <= {0.0, 1.0}
  r = np.asarray(fmdp.r)
  ret = lambda s, a: r[np.arange(3)[None], np.asarray(s), np.asarray(a)].sum(1)  # noqa: E731
  p = 1 / (1 + np.exp(-2.0 * (ret(prefs.states1, prefs.actions1) - ret(prefs.states0, prefs.actions0))))
  assert abs(o.mean() - p.mean()) <= 5 * 0.5 / np.sqrt(M)


def test_reward_mle_maximizes_the_likelihood_and_recovers_return_differences():
  fmdp = tiny_fmdp(25)
  pi = np.full((3, 3, 2), 0.5)
  prefs = _prefs(jax.random.key(9), fmdp, jnp.asarray(pi), 20000, bt_scale=3.0)
  r_hat = D.fit_reward_mle(prefs, 3, 2, bt_scale=3.0)
  assert r_hat.shape == (3, 3, 2) and r_hat.min() >= 0.0 and r_hat.max() <= 1.0
  s0, a0, s1, a1, o = (np.asarray(x) for x in prefs)

  def nll(r):
    ret = lambda s, a: r[np.arange(3)[None], s, a].sum(1)  # noqa: E731
    z = 3.0 * (ret(s1, a1) - ret(s0, a0)) * (2 * o - 1)
    return np.logaddexp(0.0, -z).sum()

  assert nll(r_hat) <= nll(np.asarray(fmdp.r)) + 1e-6          # the MLE beats the truth on its own data
  enum = Enumeration(fmdp)
  R_hat = sum(r_hat[h, enum.s[:, h], enum.a[:, h]] for h in range(3))
  diff = (R_hat - enum.ret) - np.average(R_hat - enum.ret, weights=enum.prob(pi))
  assert np.sqrt(np.average(diff**2, weights=enum.prob(pi))) < 0.1   # return differences recovered


def test_rlhf_pipeline_with_exact_planning_and_theorem8_terms():
  fmdp = tiny_fmdp(26, start="first")
  expert = fast_jit(lambda m: D.soft_expert(m, tau=0.05))(fmdp)
  demos = _sample(jax.random.key(10), fmdp, expert.pi, 200)
  res = D.rlhf(11, fmdp, expert, demos, num_pairs=300, lam=3.0)
  assert abs(float(res.eps_rl)) < 1e-12                     # exact planning
  np.testing.assert_allclose(float(res.bound), 3 * float(res.eps_e) + 9 / 3 * float(res.eps_rm_sq)
                             + (3.0 + 12.0) * float(res.kl), rtol=1e-12)
  assert 0.0 <= float(res.subopt) <= float(res.bound)
  assert float(res.eps_rm_sq) > 0 and float(res.kl) > 0
  with pytest.raises(ParameterError, match="planner"):
    D.rlhf(11, fmdp, expert, demos, num_pairs=10, lam=3.0, planner="ppo")


# ----------------------------------------------------------------------------- the studies' checks can fail


def _study(name):
  return importlib.import_module(f"mdptheory.studies.{name}")


def test_dr1_check_fails_on_a_slow_rate():
  study = _study("dr_bc")
  rng = np.random.default_rng(0)
  rows = []
  for n in (10, 30, 100, 300, 1000, 3000):
    for seed in range(20):
      rows.append(dict(n_expert=n, seed=seed, kl=30.0 / n * np.exp(0.05 * rng.normal()), delta=0.05,
                       bound_kl=1e3, sah_over_n=120.0 / n))
  good = pd.DataFrame(rows)
  assert study.check(good)[0].passed
  slow = good.assign(kl=good["kl"] * good["n_expert"] ** 0.5)          # slope -0.5
  assert not study.check(slow)[0].passed
  above = good.assign(kl=good["kl"] * 10)                               # above SAH/N
  assert not study.check(above)[0].passed


def _decomposition_frame():
  rows = []
  for n in (10, 100):
    for seed in range(3):
      for i, lam in enumerate((0.01, 0.1, 1.0, 10.0)):
        kl, eps_e = 0.5 / n, 0.01
        rows.append(dict(n_expert=n, seed=seed, lam=lam, horizon=3, bonus_scale=0.01, eps_e=eps_e, kl=kl,
                         subopt=0.5 * lam * kl, bound_subopt=eps_e + lam * kl, kl_opt=1.0,
                         subopt_learner=0.02, eps_rl=0.01, bound_subopt_learner=eps_e + lam * kl + 0.01,
                         certificate=0.02, certified_total=eps_e + lam * kl + 0.02,
                         v_lam=2.0 - 0.1 * i, v_bc=1.0, kl_solution=0.5 / lam, bound_kl_solution=1.0 / lam,
                         bf_gap=1e-10, bf_excess=-1e-12, bf_eval_gap=1e-13, bf_policy_gap=1e-6))
  return pd.DataFrame(rows)


def test_dr2_dr3_dr5_checks_fail_when_their_inequalities_break():
  study = _study("dr_decomposition")
  good = _decomposition_frame()
  assert all(r.passed for r in study.check(good))
  ids = lambda df: {r.id: r.passed for r in study.check(df)}  # noqa: E731
  bad = good.copy()
  bad.loc[3, "subopt"] = bad.loc[3, "bound_subopt"] + 1e-6
  assert not ids(bad)["DR-2"]
  bad = good.copy()
  bad.loc[5, "subopt_learner"] = bad.loc[5, "bound_subopt_learner"] + 1e-6
  assert not ids(bad)["DR-2"]
  bad = good.assign(bf_gap=good["bf_gap"].where(good.index != 2, 2e-6))
  assert not ids(bad)["DR-3"]
  bad = good.assign(bf_excess=good["bf_excess"].where(good.index != 2, 1e-7))
  assert not ids(bad)["DR-3"]
  bad = good.copy()
  bad.loc[0, "kl_solution"] = bad.loc[0, "bound_kl_solution"] * 1.01
  assert not ids(bad)["DR-5"]
  bad = good.copy()
  bad.loc[1, "v_lam"] = 5.0                                  # V^(pi^lam) increasing in lam
  assert not ids(bad)["DR-5"]
  bad = good.copy()
  bad.loc[0, "subopt"] = 1.0                                 # no lam -> 0 limit
  assert not ids(bad)["DR-5"]


def _exploration_frame(slope: float):
  rows = []
  rng = np.random.default_rng(1)
  for n in (0, 10, 30, 100, 300):
    for seed in range(20):
      for alg in (("no_demo",) if n == 0 else ("ucbvi_ent_plus", "simplified")):
        episodes = 5000 if n == 0 else (1e5 * n ** slope if alg == "ucbvi_ent_plus" else 5000)
        rows.append(dict(algorithm=alg, n_expert=n, eps=0.3, seed=seed, lam=0.3 * 0.3 * n / 18, horizon=3,
                         stopped=True, episodes=int(episodes * np.exp(0.05 * rng.normal())), bonus_scale=0.01,
                         lam_factor=0.3, gap=0.01, subopt=0.02, bound_subopt=0.5))
  return pd.DataFrame(rows)


def test_dr4_check_fails_without_the_one_over_n_rate_or_with_censored_runs():
  study = _study("dr_exploration")
  assert study.check(_exploration_frame(-1.0))[0].passed
  assert not study.check(_exploration_frame(-0.3))[0].passed
  assert not study.check(_exploration_frame(-2.0))[0].passed
  censored = _exploration_frame(-1.0)
  censored.loc[censored.index[censored["algorithm"] == "ucbvi_ent_plus"][3], "stopped"] = False
  assert not study.check(censored)[0].passed


def _rlhf_frame(trend: float):
  rows = []
  rng = np.random.default_rng(2)
  for n in (0, 10, 100, 1000):
    for seed in range(20):
      level = 0.4 if n == 0 else 0.1 * (n / 10) ** trend
      rows.append(dict(n_expert=n, seed=seed, subopt=level * np.exp(0.1 * rng.normal()), bound_subopt=10.0,
                       num_pairs=300, lam=3.0, planner="exact", bonus_scale=0.01))
  return pd.DataFrame(rows)


def test_dr6_check_fails_when_demonstrations_do_not_help():
  study = _study("dr_rlhf")
  assert study.check(_rlhf_frame(-0.5))[0].passed
  assert not study.check(_rlhf_frame(0.3))[0].passed
  assert not study.check(_rlhf_frame(0.0))[0].passed
