"""Claims about the error-propagation bounds (THEORY.md §2.5–2.7, §8, §2.10, LA-4/7/9/11, RB-2).

Inequalities are asserted at every iteration as ``lhs <= rhs + 1e-9`` (THEORY.md §9); the ratio
lhs/rhs is printed (run with ``-s``). Quick sizes by default; the paper-scale versions are marked
``slow`` (``pytest -m slow``). Every configuration is one ``jax.jit(jax.vmap(...))`` call over the
Garnets (and λ or β), so each test compiles once.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mdptheory import bounds as B
from mdptheory import noise as N
from mdptheory import operators as ops
from mdptheory import regularizers as R
from mdptheory import solvers
from mdptheory.algorithms import avi, md_mpi
from mdptheory.envs.tabular import garnet, garnet_batch

GAMMA = 0.9
A = 4
N1 = N.generative()
QUICK, SLOW = (5, 200), (20, 800)  # (number of Garnets, K)
TAU_THM2 = 1e-2


def _garnets(num_mdps):
  """Garnet(30, 4, 4), γ = 0.9 (THEORY.md §1.2, the paper's instance), as one batched MDP."""
  return garnet_batch(2020, num_mdps=num_mdps, num_states=30, num_actions=A, branching=4, gamma=GAMMA)


BIAS_TAUS = (TAU_THM2, 0.1, 1.0)


@pytest.fixture(scope="module")
def quick_garnets():
  batch = _garnets(QUICK[0])
  return batch, jax.vmap(solvers.optimum)(batch)


def _soft_optima(batch, taus):
  """q*_τ for every Garnet and τ in one vmapped call: leaves [len(taus), N, ...]."""
  return jax.vmap(lambda tau: jax.vmap(lambda m: solvers.optimum(m, R.entropy(tau)))(batch))(jnp.asarray(taus))


@pytest.fixture(scope="module")
def quick_soft_optima(quick_garnets):
  return _soft_optima(quick_garnets[0], BIAS_TAUS)


def _stack(tree, n):
  return jax.tree.map(lambda x: jnp.broadcast_to(x, (n, *x.shape)), tree)


# -----------------------------------------------------------------------------
# LA-4: Theorem 1
# -----------------------------------------------------------------------------


def _check_theorem1(batch, refs, K):
  lams = jnp.asarray([0.01, 0.1, 1.0])
  n = batch.r.shape[0]
  keys = jax.random.split(jax.random.key(41), n)

  @jax.jit
  def run(mdp, ref, key):
    return jax.vmap(lambda lam: md_mpi(mdp, lam=lam, tau=0.0, num_iters=K, noise=N1, key=key, reference=ref,
                                       componentwise=True))(lams)

  res = jax.vmap(run)(batch, refs, keys)  # leaves [n, 3, K, ...]
  r_max = jax.vmap(B.r_max_of)(batch)[:, None, None]                   # [n, 1, 1]
  lam = lams[None, :, None]
  k = jnp.arange(1, K + 1)
  # Hypothesis of the theorem: ‖q_k‖ <= v_max (no clipping needed, LA-3).
  assert np.all(np.asarray(res.trace.q_sup) <= np.asarray(B.v_max(r_max=r_max, gamma=GAMMA)) + 1e-12)
  lhs = np.asarray(res.trace.err_sup)
  rhs = np.asarray(B.theorem1_linf(res.trace.avg_eps_sup, k, gamma=GAMMA, r_max=r_max, lam=lam, num_actions=A))
  assert np.all(lhs <= rhs + 1e-9), np.max(lhs - rhs)
  assert np.all(np.asarray(res.trace.eps_sup)[..., 1:] > 0)  # the errors were applied (ε_1 = 0: v_0 = 0)
  # Component-wise: 0 <= q* − q_{π_k} <= |A^1_k E_k|/k + g^1(k) at every (s, a) and k.
  gap = np.asarray(res.trace.cw_gap)
  cw = np.asarray(B.theorem1_componentwise(res.trace.cw_a1e, k, gamma=GAMMA, r_max=r_max, lam=lam,
                                           num_actions=A))
  assert np.all(gap >= -1e-9) and np.all(gap <= cw + 1e-9), np.max(gap - cw)
  # The ℓ∞ form is the corollary: max_sa of the component-wise bound <= the ℓ∞ bound (‖A^1_k‖ <= 2/(1−γ)).
  assert np.all(cw.max((-1, -2)) <= rhs + 1e-9)
  ratio, cw_ratio = float(np.max(lhs / rhs)), float(np.max(gap / cw))
  by_lam = np.max(lhs / rhs, axis=(0, 2))
  print(f"LA-4 ({n} Garnets, K={K}): max lhs/rhs = {ratio:.4f} (by lam {np.round(by_lam, 4)}), "
        f"component-wise max ratio = {cw_ratio:.4f}, min slack = {float(np.min(cw - gap)):.3f}")
  return ratio


def test_theorem1_linf_and_componentwise_hold_at_every_iteration(quick_garnets):
  """LA-4 (quick): Garnet(30,4,4), γ = 0.9, N1, λ ∈ {0.01, 0.1, 1}, 5 Garnets, K = 200; ratio ≪ 1 (saw ≤ 0.073)."""
  ratio = _check_theorem1(*quick_garnets, QUICK[1])
  assert ratio < 0.5


@pytest.mark.slow
def test_theorem1_holds_at_every_iteration_at_paper_scale():
  """LA-4 (paper scale): 20 Garnets, K = 800."""
  batch = _garnets(SLOW[0])
  _check_theorem1(batch, jax.vmap(solvers.optimum)(batch), SLOW[1])


# -----------------------------------------------------------------------------
# LA-7: Theorem 2
# -----------------------------------------------------------------------------


def _check_theorem2(batch, refs, K):
  betas = jnp.asarray([0.0, 0.5, 0.9, 0.99])
  lams = betas * TAU_THM2 / (1 - betas)
  n = batch.r.shape[0]
  keys = jax.random.split(jax.random.key(42), n)

  @jax.jit
  def run(mdp, ref, key):
    return jax.vmap(lambda lam: md_mpi(mdp, lam=lam, tau=TAU_THM2, num_iters=K, noise=N1, key=key,
                                       reference=ref))(lams)

  res = jax.vmap(run)(batch, refs, keys)  # [n, 4, K]
  r_max = jax.vmap(B.r_max_of)(batch)
  vmax_tau = B.v_max(r_max=r_max, gamma=GAMMA, tau=TAU_THM2, num_actions=A)[:, None, None]
  assert np.all(np.asarray(res.trace.q_sup) <= np.asarray(vmax_tau) + 1e-12)
  # err_sup[i] is π_{i+1}, bounded with E^β_1..E^β_i: k = i.
  rhs = jax.vmap(jax.vmap(
      lambda ema, beta, rm: B.theorem2_linf(ema, jnp.arange(K), gamma=GAMMA, beta=beta, tau=TAU_THM2, r_max=rm,
                                            num_actions=A),
      in_axes=(0, 0, None)), in_axes=(0, None, 0))(res.trace.ema_eps_sup, betas, r_max)
  lhs, rhs = np.asarray(res.trace.err_sup), np.asarray(rhs)
  assert np.all(lhs <= rhs + 1e-9), np.max(lhs - rhs)
  by_beta = np.max(lhs / rhs, axis=(0, 2))
  final = np.median(lhs[:, :, -1], axis=0)
  print(f"LA-7 ({n} Garnets, K={K}, tau={TAU_THM2}): betas {betas.tolist()}, max lhs/rhs {by_beta.round(4)}; "
        f"median final sup error {final.round(3)}")
  return float(np.max(by_beta))


def test_theorem2_linf_holds_at_every_iteration(quick_garnets, quick_soft_optima):
  """LA-7 (quick): τ = 1e-2, β ∈ {0, .5, .9, .99}, λ = βτ/(1−β), N1, 5 Garnets, K = 200 (saw ≤ 0.13)."""
  refs = jax.tree.map(lambda x: x[BIAS_TAUS.index(TAU_THM2)], quick_soft_optima)
  assert _check_theorem2(quick_garnets[0], refs, QUICK[1]) < 0.5


@pytest.mark.slow
def test_theorem2_holds_at_every_iteration_at_paper_scale():
  """LA-7 (THEORY.md sizes): 20 Garnets, K = 400."""
  batch = _garnets(SLOW[0])
  _check_theorem2(batch, jax.tree.map(lambda x: x[0], _soft_optima(batch, (TAU_THM2,))), 400)


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9, 0.9 + 1e-12, 0.9 - 1e-9, 0.99])
def test_g2_closed_forms_equal_the_defining_sum(beta):
  """g_2(k): the β = γ form 2(k+1)γ^k v^τ_max and the β ≠ γ form agree with γ^k(1+(1−β)/(1−γ))Σ_j(β/γ)^j v^τ_max."""
  kw = dict(gamma=GAMMA, beta=beta, tau=0.1, r_max=1.0, num_actions=A)
  for k in (0, 1, 5, 50, 400):
    np.testing.assert_allclose(B.theorem2_g2(k, **kw), B.theorem2_g2_sum(k, **kw), rtol=1e-9)
  if beta == GAMMA:
    vmax = B.v_max(r_max=1.0, gamma=GAMMA, tau=0.1, num_actions=A)
    np.testing.assert_allclose(B.theorem2_g2(7, **kw), 2 * 8 * GAMMA ** 7 * vmax, rtol=1e-12)
  # Vectorized over k and equal to the scalar calls.
  ks = jnp.arange(10)
  np.testing.assert_allclose(B.theorem2_g2(ks, **kw), [B.theorem2_g2(int(k), **kw) for k in ks], rtol=1e-12)


# -----------------------------------------------------------------------------
# RB-2: the AVI bound, and AVI's plateau
# -----------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["N1", "N2"])
def test_avi_bound_holds_at_every_iteration_and_avi_plateaus(quick_garnets, model):
  """RB-2 [D]: ‖q* − q^{π_{k+1}}‖ ≤ 2γ/(1−γ)(Σ_j γ^{k−j}‖ε_j‖ + γ^k‖q* − q_0‖) ∀k under N1 and N2 (σ = 0.1);
  under N1 AVI's error does not vanish: median over 5 Garnets of the final normalized ℓ1 error > 0.1 (K = 300)."""
  batch, refs = quick_garnets
  K = 300
  errors = N1 if model == "N1" else N.gaussian(0.1)
  keys = jax.random.split(jax.random.key(43), batch.r.shape[0])
  res = jax.jit(jax.vmap(lambda m, ref, key: avi(m, num_iters=K, noise=errors, key=key, reference=ref)))(
      batch, refs, keys)
  q0_err = jnp.max(jnp.abs(refs.q), axis=(-1, -2))  # q_0 = 0
  rhs = jax.vmap(lambda e, d0: B.avi_bound(e, jnp.arange(K), gamma=GAMMA, q0_err=d0))(res.trace.eps_sup, q0_err)
  lhs, rhs = np.asarray(res.trace.err_sup), np.asarray(rhs)
  assert np.all(lhs <= rhs + 1e-9), np.max(lhs - rhs)
  final_l1 = np.asarray(res.trace.err_l1[:, -1])
  print(f"RB-2 {model}: max lhs/rhs = {np.max(lhs / rhs):.4f}; final normalized l1 error {final_l1.round(3)}")
  if model == "N1":
    assert np.median(final_l1) > 0.1


def test_avi_bound_tends_to_its_asymptotic_form():
  """2γ/(1−γ)(Σ_j γ^{k−j} c + γ^k d) → 2γ/(1−γ)² c as k → ∞ (THEORY.md §2.7), from below when d ≤ c/(1−γ)."""
  c = 0.3
  trace = jnp.full((2000,), c)
  lim = B.avi_asymptotic(c, gamma=GAMMA)
  vals = B.avi_bound(trace, jnp.asarray([10, 100, 2000]), gamma=GAMMA, q0_err=1.0)
  assert np.all(np.asarray(vals) <= float(lim) + 1e-12)
  np.testing.assert_allclose(vals[-1], lim, rtol=1e-12)
  # discounted_cumsum is the recursion D_k = γ D_{k−1} + x_k with D_0 = 0.
  x = jnp.asarray([1.0, 2.0, 3.0])
  np.testing.assert_allclose(B.discounted_cumsum(x, 0.5), [0.0, 1.0, 2.5, 4.25])


# -----------------------------------------------------------------------------
# LA-9: the EMA of the errors
# -----------------------------------------------------------------------------


def test_ema_of_iid_errors_has_variance_sigma2_one_minus_beta_over_one_plus_beta():
  """LA-9 [D]: Var(E^β_k) → σ²(1−β)/(1+β), within 3%, over 10⁴ draws (vmap over keys) of MD-VI's recorded E^β_K."""
  sigma, K, draws = 0.7, 60, 10_000  # β^{2K} <= 0.9^120 ≈ 3e-6: the limit is reached
  mdp = garnet(1, num_states=4, num_actions=2, branching=2, gamma=GAMMA)
  betas = jnp.asarray([0.0, 0.5, 0.9])
  tau = 1.0
  lams = betas * tau / (1 - betas)  # β = λ/(λ + τ)
  keys = jax.random.split(jax.random.key(44), draws)
  errors = N.gaussian(sigma)
  run = jax.jit(jax.vmap(jax.vmap(lambda lam, key: md_mpi(mdp, lam=lam, tau=tau, num_iters=K, noise=errors,
                                                          key=key).ema, in_axes=(None, 0)), in_axes=(0, None)))
  ema = np.asarray(run(lams, keys))  # [3, draws, S, A]
  for i, beta in enumerate(betas.tolist()):
    var = ema[i].var(axis=0).mean()  # pooled over the S·A independent entries
    target = sigma ** 2 * (1 - beta) / (1 + beta)
    print(f"LA-9 beta={beta}: Var = {var:.5f}, target {target:.5f}, relative error {var / target - 1:+.4f}")
    assert abs(var / target - 1) < 0.03


# -----------------------------------------------------------------------------
# LA-11 / RB-3: entropy bias; helpers
# -----------------------------------------------------------------------------


def test_entropy_bias_bounds_hold_exactly(quick_garnets, quick_soft_optima):
  """LA-11 [P]: ‖q* − q^{π*_τ}‖_∞ ≤ τ ln|A|/(1−γ); RB-3 [D]: 0 ≤ q*_τ − q* ≤ γτ ln|A|/(1−γ)."""
  batch, refs = quick_garnets
  for i, tau in enumerate(BIAS_TAUS):
    soft = jax.tree.map(lambda x: x[i], quick_soft_optima)
    assert bool(jnp.all(soft.converged))
    q_pi = jax.vmap(lambda m, pi: ops.evaluate(m, pi).q)(batch, soft.pi)
    policy_gap = np.asarray(jnp.max(jnp.abs(refs.q - q_pi), axis=(-1, -2)))
    assert np.all(policy_gap <= float(B.entropy_bias(tau, A, GAMMA)) + 1e-9)
    bias = np.asarray(soft.q - refs.q)
    assert np.all(bias >= -1e-9) and np.all(bias <= float(B.entropy_q_bias(tau, A, GAMMA)) + 1e-9)


def test_v_max_and_the_theorem1_constants():
  """v^τ_max = (r_max + τ ln|A|)/(1−γ) [P]; g^1(k) = 4 v^λ_max/((1−γ)k); the ℓ∞ bound adds 2/(1−γ)‖avg ε‖."""
  np.testing.assert_allclose(B.v_max(r_max=1.0, gamma=0.9, tau=0.1, num_actions=4), (1 + 0.1 * math.log(4)) / 0.1)
  np.testing.assert_allclose(B.v_max(r_max=2.0, gamma=0.5), 4.0)
  g1 = B.theorem1_g1(10, gamma=0.9, r_max=1.0, lam=0.5, num_actions=4)
  np.testing.assert_allclose(g1, 4 * (1 + 0.5 * math.log(4)) / (0.01 * 10))
  np.testing.assert_allclose(B.theorem1_linf(0.2, 10, gamma=0.9, r_max=1.0, lam=0.5, num_actions=4), 20 * 0.2 + g1)
  cw = B.theorem1_componentwise(jnp.ones((2, 3, 4)), jnp.asarray([1, 2]), gamma=0.9, r_max=1.0, lam=0.5,
                                num_actions=4)
  np.testing.assert_allclose(cw[1], 0.5 + B.theorem1_g1(2, gamma=0.9, r_max=1.0, lam=0.5, num_actions=4))
