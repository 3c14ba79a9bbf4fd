"""Claims about the exact solvers: fixed points, agreement of VI/PI/LP, certified stopping, bias bounds."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import random_mdp
from mdptheory import operators as ops
from mdptheory import regularizers as R
from mdptheory import solvers
from mdptheory.types import FiniteHorizonMDP, MDP

SEEDS = range(5)


@pytest.mark.parametrize("seed", SEEDS)
def test_value_iteration_policy_iteration_and_the_lp_agree(seed):
  mdp = random_mdp(seed, num_states=8, num_actions=3, gamma=0.9)
  vi = solvers.value_iteration(mdp, num_iters=2000, tol=1e-13)
  pi = solvers.policy_iteration(mdp)
  lp = solvers.lp_optimum(mdp)
  assert bool(vi.converged) and bool(pi.converged)
  np.testing.assert_allclose(vi.v, pi.v, rtol=0, atol=1e-10)
  np.testing.assert_allclose(lp.v, pi.v, rtol=0, atol=1e-7)  # HiGHS feasibility tolerance
  np.testing.assert_array_equal(jnp.argmax(vi.q, -1), jnp.argmax(pi.pi, -1))


@pytest.mark.parametrize("reg_name,tau", [("none", 0.0), ("entropy", 0.5), ("entropy", 0.01), ("kl", 0.3)])
def test_the_optimum_is_a_fixed_point_and_the_greedy_policy_attains_it(reg_name, tau):
  """T_Ω q* = q*, and the exact value of π*_Ω = ∇Ω*(q*) is v*_Ω (STYLE §5.10.2)."""
  mdp = random_mdp(21, num_states=7, num_actions=4, gamma=0.95)
  reg = {"none": R.none, "entropy": lambda: R.entropy(tau),
         "kl": lambda: R.kl(jnp.full((7, 4), 0.25), tau)}[reg_name]()
  opt = solvers.optimum(mdp, None if reg_name == "none" else reg)
  assert bool(opt.converged)
  np.testing.assert_allclose(ops.bellman_optimality_q(mdp, opt.q, reg), opt.q, rtol=0, atol=1e-10)
  np.testing.assert_allclose(ops.evaluate(mdp, opt.pi, reg).v, opt.v, rtol=0, atol=1e-10)


@pytest.mark.parametrize("num_iters", [5, 20, 80, 400])
def test_value_iteration_a_posteriori_bound_holds_and_converged_is_honest(num_iters):
  mdp = random_mdp(3, gamma=0.9)
  v_star = solvers.optimum(mdp).v
  for reg in (None, R.entropy(0.2)):
    v_ref = v_star if reg is None else solvers.optimum(mdp, reg).v
    res = solvers.value_iteration(mdp, reg, num_iters=num_iters, tol=1e-9)
    err = float(jnp.max(jnp.abs(res.v - v_ref)))
    assert err <= float(res.error_bound) + 1e-13
    # Converged is claimed only if the stopping rule really fired.
    assert bool(res.converged) == bool(jnp.any(res.residuals <= 1e-9))
    if not res.converged:
      assert int(res.num_iters) == num_iters


def test_value_iteration_residuals_contract_by_gamma_at_every_iteration():
  mdp = random_mdp(4, gamma=0.8)
  for reg in (None, R.entropy(1.0), R.kl(jnp.full((6, 3), 1 / 3), 0.1)):
    res = solvers.value_iteration(mdp, reg, num_iters=60)
    r = np.asarray(res.residuals)
    assert np.all(r[1:] <= 0.8 * r[:-1] + 1e-13)


def test_puterman_stopping_rule_gives_an_epsilon_optimal_policy():
  """tol = ε(1−γ)/(2γ) ⇒ the greedy policy is ε-optimal (Puterman Thm 6.3.1, QuantEcon's test)."""
  mdp = random_mdp(6, gamma=0.95)
  eps = 1e-3
  res = solvers.value_iteration(mdp, num_iters=10_000, tol=eps * (1 - 0.95) / (2 * 0.95))
  assert bool(res.converged)
  v_pi = ops.evaluate(mdp, res.pi).v
  assert float(jnp.max(solvers.optimum(mdp).v - v_pi)) <= eps


def test_policy_iteration_error_bound_dominates_the_true_error():
  mdp = random_mdp(8, gamma=0.9)
  opt = solvers.optimum(mdp, R.entropy(0.3))
  for k in (1, 2, 3):
    res = solvers.policy_iteration(mdp, R.entropy(0.3), num_iters=k)
    assert float(jnp.max(jnp.abs(res.v - opt.v))) <= float(res.error_bound) + 1e-13


def test_hard_policy_iteration_stops_in_finitely_many_steps_on_a_stable_policy():
  mdp = random_mdp(10, num_states=10, num_actions=4, gamma=0.99)
  res = solvers.policy_iteration(mdp, num_iters=50)
  assert bool(res.converged) and int(res.num_iters) < 50
  np.testing.assert_allclose(ops.bellman_optimality_v(mdp, res.v), res.v, rtol=0, atol=1e-10)


def test_sparse_and_dense_mdps_give_the_same_optimum():
  mdp = random_mdp(12, branching=2)
  P = np.asarray(mdp.P)
  nxt = np.argsort(-P, axis=-1)[..., :2]
  prob = np.take_along_axis(P, nxt, -1)
  sparse = MDP.from_sparse(nxt, prob, np.asarray(mdp.r), 0.9)
  for reg in (None, R.entropy(0.1)):
    np.testing.assert_allclose(solvers.value_iteration(sparse, reg, num_iters=500).v,
                               solvers.value_iteration(mdp, reg, num_iters=500).v, rtol=0, atol=1e-12)


# -- RB-3: bias of the regularized optimum (THEORY.md §8) ---------------------

@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("tau", [1e-2, 0.1, 1.0])
def test_entropy_bias_bounds(seed, tau):
  """0 <= q*_τ − q* <= γτ ln|A|/(1−γ) and ‖q* − q^{π*_τ}‖_∞ <= τ ln|A|/(1−γ)."""
  gamma, A = 0.9, 4
  mdp = random_mdp(seed, num_states=7, num_actions=A, gamma=gamma)
  hard, soft = solvers.optimum(mdp), solvers.optimum(mdp, R.entropy(tau))
  gap = soft.q - hard.q
  assert float(gap.min()) >= -1e-10
  assert float(gap.max()) <= gamma * tau * np.log(A) / (1 - gamma) + 1e-10
  q_soft_policy = ops.evaluate(mdp, soft.pi).q
  assert float(jnp.max(hard.q - q_soft_policy)) <= tau * np.log(A) / (1 - gamma) + 1e-10


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("lam", [1e-2, 0.3])
def test_kl_to_a_fixed_prior_tends_to_the_max_over_its_support(seed, lam):
  """v*_supp − λ ln(1/μ_min)/(1−γ) <= v*_λ <= v*_supp, where v*_supp is the optimum restricted to supp μ."""
  gamma, A = 0.9, 4
  mdp = random_mdp(seed, num_states=6, num_actions=A, gamma=gamma)
  mu = np.tile([0.5, 0.3, 0.2, 0.0], (6, 1))
  restricted = MDP.create(np.asarray(mdp.P)[:, :3], np.asarray(mdp.r)[:, :3], gamma)
  v_supp = solvers.optimum(restricted).v
  v_lam = solvers.optimum(mdp, R.kl(jnp.asarray(mu), lam)).v
  assert float(jnp.max(v_lam - v_supp)) <= 1e-10
  assert float(jnp.max(v_supp - v_lam)) <= lam * np.log(1 / 0.2) / (1 - gamma) + 1e-10


# -- transforms: jit, vmap over hyperparameters --------------------------------

def test_value_iteration_under_jit_equals_eager():
  mdp = random_mdp(13)
  f = lambda m: solvers.value_iteration(m, R.entropy(0.2), num_iters=50).v
  np.testing.assert_allclose(jax.jit(f)(mdp), f(mdp), rtol=1e-14, atol=0)


def test_a_grid_of_temperatures_and_discounts_is_one_vmapped_call():
  mdp = random_mdp(14)
  taus = jnp.asarray([0.01, 0.1, 1.0])
  gammas = jnp.asarray([0.5, 0.9, 0.99])
  T, G = jnp.meshgrid(taus, gammas, indexing="ij")

  def solve(tau, gamma):
    return solvers.value_iteration(mdp._replace(gamma=gamma), R.entropy(tau), num_iters=300).v

  batched = jax.jit(jax.vmap(solve))(T.ravel(), G.ravel())
  looped = jnp.stack([solve(float(t), float(g)) for t, g in zip(T.ravel(), G.ravel())])
  np.testing.assert_allclose(batched, looped, rtol=1e-12, atol=1e-12)


def test_vmap_over_kl_weights_and_policy_iteration_equals_a_loop():
  mdp = random_mdp(15)
  lams = jnp.asarray([0.05, 0.5, 5.0])
  prior = jnp.full((6, 3), 1 / 3)
  batched = jax.vmap(lambda l: solvers.optimum(mdp, R.kl(prior, l)).v)(lams)
  looped = jnp.stack([solvers.optimum(mdp, R.kl(prior, float(l))).v for l in lams])
  np.testing.assert_allclose(batched, looped, rtol=0, atol=1e-12)


# -- finite horizon -------------------------------------------------------------

def _tiny_fh(seed=0, H=2, S=2, A=2):
  rng = np.random.default_rng(seed)
  P = rng.random((H, S, A, S))
  P /= P.sum(-1, keepdims=True)
  return FiniteHorizonMDP.create(P, rng.random((H, S, A)), np.full(S, 1 / S))


def test_backward_induction_equals_brute_force_over_deterministic_policies():
  fmdp = _tiny_fh(H=3, S=2, A=2)
  policies = jnp.asarray(np.eye(2)[np.asarray(list(itertools.product(range(2), repeat=3 * 2))).reshape(-1, 3, 2)])
  values = jax.vmap(lambda pi: solvers.evaluate_finite(fmdp, pi).v[0])(policies)  # [64, S]
  np.testing.assert_allclose(solvers.backward_induction(fmdp).v[0], values.max(0), rtol=0, atol=1e-12)


def test_soft_backward_induction_toward_a_prior_is_optimal_and_self_consistent():
  """π_h ∝ prior_h e^{q_h/λ} maximizes V^π − λ KL_traj(π‖prior); its regularized value is v."""
  fmdp = _tiny_fh(seed=3, H=3, S=3, A=2)
  rng = np.random.default_rng(0)
  prior = jnp.asarray(rng.dirichlet(np.ones(2), size=(3, 3)))
  lam = 0.5
  reg = lambda h: R.kl(prior[h], lam)
  res = solvers.backward_induction(fmdp, reg)
  np.testing.assert_allclose(solvers.evaluate_finite(fmdp, res.pi, reg).v, res.v, rtol=0, atol=1e-12)
  others = jnp.asarray(rng.dirichlet(np.ones(2) * 0.5, size=(500, 3, 3)))
  values = jax.vmap(lambda pi: solvers.evaluate_finite(fmdp, pi, reg).v[0])(others)  # [500, S]
  assert jnp.all(values <= res.v[0][None] + 1e-12)


# -- textbook values through the library's own solvers ---------------------------

SUTTON_BARTO_FIG_3_2 = [[3.3, 8.8, 4.4, 5.3, 1.5], [1.5, 3.0, 2.3, 1.9, 0.5], [0.1, 0.7, 0.7, 0.4, -0.4],
                        [-1.0, -0.4, -0.4, -0.6, -1.2], [-1.9, -1.3, -1.2, -1.4, -2.0]]
SUTTON_BARTO_FIG_3_5 = [[22.0, 24.4, 22.0, 19.4, 17.5], [19.8, 22.0, 19.8, 17.8, 16.0],
                        [17.8, 19.8, 17.8, 16.0, 14.4], [16.0, 17.8, 16.0, 14.4, 13.0],
                        [14.4, 16.0, 14.4, 13.0, 11.7]]


def test_sutton_barto_example_3_5_values_from_the_solvers():
  """Sutton & Barto (2nd ed.) Fig. 3.2 (equiprobable policy) and Fig. 3.5 (v*), to the book's 0.1."""
  from mdptheory import envs
  mdp = envs.make("sutton_barto_grid")
  v_random = ops.evaluate(mdp, jnp.full((25, 4), 0.25)).v.reshape(5, 5)
  np.testing.assert_allclose(v_random, SUTTON_BARTO_FIG_3_2, rtol=0, atol=0.051)
  for v_star in (solvers.optimum(mdp).v, solvers.value_iteration(mdp, num_iters=1000, tol=1e-12).v,
                 solvers.lp_optimum(mdp).v):
    np.testing.assert_allclose(v_star.reshape(5, 5), SUTTON_BARTO_FIG_3_5, rtol=0, atol=0.051)
