"""Claims about MD-MPI / DA-MPI and the baselines (THEORY.md §2.1–2.4, §2.7–2.8, §2.10).

Tolerances follow THEORY.md §9–10: equivalences 1e-10 in float64 (observed ~1e-14),
inequalities ``lhs <= rhs + 1e-9``. Runs are batched with ``jax.vmap`` inside one
``jax.jit`` per test so that each test compiles once.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import random_mdp
from mdptheory import bounds as B
from mdptheory import metrics as M
from mdptheory import noise as N
from mdptheory import operators as ops
from mdptheory import regularizers as R
from mdptheory import solvers
from mdptheory.algorithms import (ADPResult, advantage_learning, api, avi, cvi, da_mpi, md_greedy, md_mpi,
                                  resolvent_q, speedy_q_learning)
from mdptheory.envs.tabular import garnet, garnet_batch
from mdptheory.errors import ParameterError, ShapeError

LA1_PAIRS = ((0.5, 0.0), (0.2, 0.05), (1.0, 0.3))
# One error-model object per model: the jitted cores key their cache on it, so tests share compilations.
N1 = N.generative()
N2 = N.gaussian(0.5)


@pytest.fixture(scope="module")
def g20():
  """Garnet(20, 4, 3), γ = 0.9 (the LA-1 instance)."""
  return garnet(7, num_states=20, num_actions=4, branching=3, gamma=0.9)


@pytest.fixture(scope="module")
def g10():
  return garnet(3, num_states=10, num_actions=3, branching=3, gamma=0.9)


@pytest.fixture(scope="module")
def refs10(g10):
  """Optima of g10: unregularized (key None) and entropy-regularized (key τ)."""
  return {None: solvers.optimum(g10), 0.1: solvers.optimum(g10, R.entropy(0.1))}


def _pi(log_pi):
  return np.exp(np.asarray(log_pi))


# -----------------------------------------------------------------------------
# LA-1, LA-2: equivalences and closed forms
# -----------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["N2", "N1"])
def test_md_vi_and_da_vi_policies_coincide_for_any_error_sequence(g20, model):
  """LA-1 (Prop. 1): MD-VI(λ,τ) and DA-VI(λ,τ) driven by the same errors have the same policies (≤ 1e-10).

  Garnet(20,4,3), γ = 0.9, N2 σ = 0.5 (and N1), K = 60, (λ,τ) ∈ {(0.5,0), (0.2,0.05), (1,0.3)};
  CVI, the reparameterization of §2.8, gives the same policies too.
  """
  errors = N2 if model == "N2" else N1
  kw = dict(num_iters=60, noise=errors, key=jax.random.key(2), record_iterates=True, record_eps=True)
  lams, taus = jnp.asarray(LA1_PAIRS).T

  @jax.jit
  def run(lam, tau):
    return (md_mpi(g20, lam=lam, tau=tau, **kw), da_mpi(g20, lam=lam, tau=tau, **kw),
            cvi(g20, lam=lam, tau=tau, **kw))

  md, da, cv = jax.vmap(run)(lams, taus)
  for i, (lam, tau) in enumerate(LA1_PAIRS):
    gap_da = np.abs(_pi(md.trace.log_pi[i]) - _pi(da.trace.log_pi[i])).max()
    gap_cvi = np.abs(_pi(md.trace.log_pi[i]) - _pi(cv.trace.log_pi[i])).max()
    gap_final = np.abs(_pi(md.log_pi[i]) - _pi(da.log_pi[i])).max()  # π_{K+1}
    print(f"LA-1 {model} lam={lam} tau={tau}: max|pi_MD - pi_DA| = {gap_da:.1e}, max|pi_MD - pi_CVI| = {gap_cvi:.1e}")
    assert gap_da <= 1e-10 and gap_cvi <= 1e-10 and gap_final <= 1e-10
    # The same error sequence drove all three (N1 up to the round-off of v).
    np.testing.assert_allclose(md.trace.eps[i], da.trace.eps[i], rtol=0, atol=1e-10)
    np.testing.assert_allclose(md.trace.eps[i], cv.trace.eps[i], rtol=0, atol=1e-10)


@pytest.mark.parametrize("lam,tau", [(0.3, 0.0), (0.2, 0.1)])
def test_unrolled_policy_is_a_softmax_of_the_weighted_sum_of_past_q(g10, lam, tau):
  """§2.2 [P][D]: τ = 0: π_{k+1} ∝ exp(Σ_{j≤k} q_j/λ); τ > 0: ln π_{k+1} = Σ_{j≤k} β^{k−j} q_j/(λ+τ) + cst.

  Checked on a recorded q sequence of MD-VI under N2 errors (the unrolling is algebraic).
  """
  q0 = jax.random.normal(jax.random.key(9), g10.r.shape)
  res = md_mpi(g10, lam=lam, tau=tau, num_iters=30, noise=N2, key=jax.random.key(4), q0=q0,
               record_iterates=True)
  qs = np.concatenate([np.asarray(q0)[None], np.asarray(res.trace.q)])  # q_0..q_K
  beta = lam / (lam + tau)
  for k in range(30):  # trace.log_pi[k] = ln π_{k+1}
    weights = beta ** (k - np.arange(k + 1))
    logits = np.tensordot(weights, qs[:k + 1], axes=1) / (lam + tau)
    expected = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
        - logits.max(-1, keepdims=True)
    np.testing.assert_allclose(res.trace.log_pi[k], expected, rtol=0, atol=1e-10)


def test_log_space_greedy_step_is_the_kl_entropy_bundle():
  """md_greedy equals regularizers.kl_entropy (the LA-2-checked closed form) and none() at λ = τ = 0."""
  q = jax.random.normal(jax.random.key(0), (5, 4))
  log_prev = jax.nn.log_softmax(jax.random.normal(jax.random.key(1), (5, 4)))
  for lam, tau in [(0.5, 0.0), (0.2, 0.05), (0.0, 0.3)]:
    lp, v = md_greedy(log_prev, q, lam=lam, tau=tau)
    reg = R.kl_entropy(lam, tau, jnp.exp(log_prev))
    np.testing.assert_allclose(lp, reg.log_argmax(q), rtol=0, atol=1e-13)
    np.testing.assert_allclose(v, reg.smax(q), rtol=0, atol=1e-13)
  lp, v = md_greedy(log_prev, q, lam=0.0, tau=0.0)
  np.testing.assert_array_equal(jnp.exp(lp), R.none().argmax(q))
  np.testing.assert_array_equal(v, q.max(-1))


# -----------------------------------------------------------------------------
# LA-3, LA-10: boundedness and the fixed point
# -----------------------------------------------------------------------------


@pytest.mark.parametrize("errors", [None, "N1"])
def test_q_stays_within_v_max_without_errors_and_under_sampled_backups(errors):
  """LA-3 [P][D]: τ = 0, r ∈ [0, r_max], q_0 = 0 ⇒ ‖q_k‖_∞ ≤ v_max at every k, also with N1 sampling."""
  batch = garnet_batch(11, num_mdps=5, num_states=30, num_actions=4, branching=4, gamma=0.9)
  model = None if errors is None else N1
  lams = jnp.asarray([0.01, 0.1, 1.0])

  @jax.jit
  def run(mdp, key):
    return jax.vmap(lambda lam: md_mpi(mdp, lam=lam, tau=0.0, num_iters=200, noise=model, key=key))(lams)

  res = jax.vmap(run)(batch, jax.random.split(jax.random.key(0), 5))
  vmax = B.v_max(r_max=jax.vmap(B.r_max_of)(batch), gamma=0.9)  # [5]
  assert float(jnp.min(batch.r)) >= 0
  assert np.all(np.asarray(res.trace.q_sup) <= np.asarray(vmax)[:, None, None] + 1e-12)
  assert np.all(np.asarray(res.q) >= 0)


def test_kl_does_not_bias_the_fixed_point(g10, refs10):
  """LA-10 [P]: without errors MD-VI(λ, τ>0) → q*_τ (err < 1e-8); τ = 0: err ≤ 4(r_max+λ ln|A|)/((1−γ)² k) ∀k.

  One vmapped run over (λ, τ) ∈ {0.05, 0.1, 1} × {0, 0.1}, each against its own reference.
  """
  lams = jnp.asarray([0.05, 0.1, 1.0] * 2)
  taus = jnp.asarray([0.0] * 3 + [0.1] * 3)
  refs = jax.tree.map(lambda *x: jnp.stack(x), *([refs10[None]] * 3 + [refs10[0.1]] * 3))
  res = jax.vmap(lambda lam, tau, ref: md_mpi(g10, lam=lam, tau=tau, num_iters=400, reference=ref))(lams, taus, refs)
  err = np.asarray(res.trace.err_sup)
  assert np.all(err[3:, -1] < 1e-8), err[3:, -1]
  k = jnp.arange(1, 401)
  rhs = np.asarray(jax.vmap(lambda lam: B.theorem1_g1(k, gamma=0.9, r_max=B.r_max_of(g10), lam=lam,
                                                      num_actions=3))(lams[:3]))
  assert np.all(err[:3] <= rhs + 1e-9)
  print(f"LA-10 tau=0: max err/bound = {np.max(err[:3] / rhs):.3f}; tau>0 final errors {err[3:, -1]}")


def test_md_mpi_variants_share_the_fixed_point_and_md_pi_evaluates_exactly(g10, refs10):
  """m = 1, 3, ∞: MD-MPI(λ, τ, m) → q*_τ without errors (the KL changes the path only); m = ∞
  (``None`` ≡ ``math.inf``) makes q_{k+1} the exact fixed point of T^{λ,τ}_{π_{k+1}|π_k}
  (operators.evaluate with Ω = λKL(·‖π_k) − τH).
  """
  lam, tau = 0.3, 0.1
  ref = refs10[tau]
  runs = {m: md_mpi(g10, lam=lam, tau=tau, m=m, num_iters=300, reference=ref, record_iterates=True)
          for m in (1, 3, None)}
  for m, res in runs.items():
    assert float(res.trace.err_sup[-1]) < 1e-8, m
    np.testing.assert_allclose(res.q, ref.q, rtol=0, atol=1e-8)
  pi_md_pi = _pi(runs[None].trace.log_pi)
  pis = np.concatenate([np.full((1, 10, 3), 1 / 3), pi_md_pi])
  for k in range(5):
    exact = ops.evaluate(g10, pis[k + 1], R.kl_entropy(lam, tau, pis[k])).q
    np.testing.assert_allclose(runs[None].trace.q[k], exact, rtol=0, atol=1e-10)
  res_inf = md_mpi(g10, lam=lam, tau=tau, m=math.inf, num_iters=300, reference=ref, record_iterates=True)
  np.testing.assert_array_equal(res_inf.trace.q, runs[None].trace.q)


# -----------------------------------------------------------------------------
# LA-12 and the λ → 0 limits; the baselines
# -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 4, 5])
def test_md_vi_with_vanishing_kl_gives_avis_policies_when_greedy_actions_are_stable(seed):
  """LA-12 [P]: λ = 1e-6, K = 50: MD-VI(λ, 0) policies equal AVI's greedy policies.

  Instances: random MDPs with action-dependent rewards and q_0 = r (non-degenerate action gaps from
  the start; a Garnet's rewards ignore the action, so q_0 = 0 or r ties every action). The premise is
  asserted: AVI's greedy action never changes. Where it does change, the limits differ (next test).
  """
  mdp = random_mdp(seed, num_states=6, num_actions=3)
  md = md_mpi(mdp, lam=1e-6, tau=0.0, num_iters=50, q0=mdp.r, record_iterates=True)
  av = avi(mdp, num_iters=50, q0=mdp.r, record_iterates=True)
  greedy = np.argmax(_pi(av.trace.log_pi), -1)
  assert np.all(greedy == greedy[0]) and float(M.action_gap(mdp.r).min()) > 1e-3
  assert np.abs(_pi(md.trace.log_pi) - _pi(av.trace.log_pi)).max() <= 1e-9


def test_md_vi_with_vanishing_kl_follows_speedy_q_learning_not_avi(g10):
  """Limits do not commute (§2.3, LA-12): for λ → 0 the MD-VI(λ,0) = DA-VI(λ,0) trajectory tends to SQL.

  [D] DA-VI's running mean obeys SQL's recursion shifted by one index: with q_0 = r = T(0),
  h_k → Q^SQL_{k+1} (SQL from Q_0 = 0), at rate O(λ); with errors shifted by one index likewise.
  On an MDP where AVI's greedy action switches, MD-VI(1e-6, 0)'s policies differ from AVI's.
  """
  K = 50
  sql = speedy_q_learning(g10, num_iters=K + 1)
  for lam in (1e-6, 1e-8):
    da = da_mpi(g10, lam=lam, tau=0.0, num_iters=K, q0=g10.r)
    gap = float(jnp.max(jnp.abs(da.aux["h"] - sql.q)))
    assert gap <= 1e3 * lam, (lam, gap)
  eps = 0.3 * jax.random.normal(jax.random.key(0), (K + 1, 10, 3))
  eps = eps.at[0].set(0.0)  # SQL's first update is T̂_0 Q_0 = r + ε_0, DA starts at h_0 = r
  da = da_mpi(g10, lam=1e-8, tau=0.0, num_iters=K, q0=g10.r, noise=N.sequence(eps[1:]), key=0)
  sql = speedy_q_learning(g10, num_iters=K + 1, noise=N.sequence(eps), key=0)
  assert float(jnp.max(jnp.abs(da.aux["h"] - sql.q))) <= 1e-5
  # The counterexample to "MD-VI -> AVI" at the trajectory level.
  mdp = random_mdp(3, num_states=6, num_actions=3)
  md = md_mpi(mdp, lam=1e-6, tau=0.0, num_iters=50, q0=mdp.r, record_iterates=True)
  av = avi(mdp, num_iters=50, q0=mdp.r, record_iterates=True)
  assert np.abs(_pi(md.trace.log_pi) - _pi(av.trace.log_pi)).max() > 0.5


def test_speedy_q_learning_matches_one_hand_computed_step_with_a_shared_sample(g10, refs10):
  """Azar et al. 2011, Alg. 1: Q_{k+1} = Q_k + α_k(T̂_kQ_{k−1} − Q_k) + (1−α_k)(T̂_kQ_k − T̂_kQ_{k−1}), one y_k."""
  P, r = np.asarray(g10.P), np.asarray(g10.r)
  q0 = np.asarray(jax.random.normal(jax.random.key(3), (10, 3)))
  K = 3
  res = speedy_q_learning(g10, num_iters=K, noise=N1, key=5, q0=q0, record_iterates=True)
  keys = jax.random.split(jax.random.key(5), K)
  q_prev, q = q0, q0
  for k in range(K):
    y = np.asarray(N.sample_next_states(keys[k], g10))  # [S, A]
    t_now = r + 0.9 * q.max(-1)[y]
    t_prev = r + 0.9 * q_prev.max(-1)[y]
    a = 1.0 / (k + 1)
    q_prev, q = q, q + a * (t_prev - q) + (1 - a) * (t_now - t_prev)
    np.testing.assert_allclose(res.trace.q[k], q, rtol=0, atol=1e-12)
  # Without errors SQL converges to q*.
  ref = refs10[None]
  exact = speedy_q_learning(g10, num_iters=2000, reference=ref)
  assert float(jnp.max(jnp.abs(exact.q - ref.q))) < 1e-2
  assert float(exact.trace.err_sup[-1]) < 1e-8


def test_advantage_learning_is_the_limit_of_cvi(g10, refs10):
  """AL(α) = lim CVI(λ = α t, τ = (1 − α) t) as t → 0 (§2.8 [P]); AL(0) = AVI.

  Without errors max_a q_k → v* and the gaps of the fixed point are those of q* over 1 − α [D].
  """
  alpha, K = 0.6, 30
  kw = dict(num_iters=K, noise=N2, key=jax.random.key(4), q0=jnp.zeros((10, 3)), record_iterates=True)
  al = advantage_learning(g10, alpha=alpha, **kw)
  for t in (1e-6, 1e-8):
    c = cvi(g10, lam=alpha * t, tau=(1 - alpha) * t, **kw)
    assert float(jnp.max(jnp.abs(c.q - al.q))) <= 100 * t
  al0 = advantage_learning(g10, alpha=0.0, **kw)
  av = avi(g10, **kw)  # the configuration of the unrolled-form test: one compilation
  np.testing.assert_allclose(al0.q, av.q, rtol=0, atol=1e-13)
  ref = refs10[None]
  al_exact = advantage_learning(g10, alpha=alpha, num_iters=600)
  np.testing.assert_allclose(jnp.max(al_exact.q, -1), ref.v, rtol=0, atol=1e-10)
  np.testing.assert_allclose(al_exact.q - ref.v[:, None], (ref.q - ref.v[:, None]) / (1 - alpha), rtol=0,
                             atol=1e-9)


def test_api_evaluates_the_greedy_policy_exactly(g10, refs10):
  """API = MD-MPI(0, 0, ∞): q_{k+1} = q^{π_{k+1}}, π_{k+1} = argmax q_k; exact API reaches q* in few steps."""
  ref = refs10[None]
  res = api(g10, num_iters=10, reference=ref, record_iterates=True)
  for k in range(10):
    np.testing.assert_allclose(res.trace.q[k], ops.evaluate(g10, _pi(res.trace.log_pi[k])).q, rtol=0, atol=1e-10)
  assert float(res.trace.err_sup[-1]) < 1e-10


# -----------------------------------------------------------------------------
# Trace definitions, clipping, transforms, validation
# -----------------------------------------------------------------------------


def test_trace_fields_follow_their_definitions(g10, refs10):
  """Every trace field recomputed in numpy from the recorded ε_k, q_k and π_k (indexing: entry i is k = i + 1)."""
  lam, tau, K, gamma = 0.3, 0.1, 25, 0.9
  ref = refs10[tau]
  res = md_mpi(g10, lam=lam, tau=tau, num_iters=K, noise=N1, key=jax.random.key(1), reference=ref,
               record_eps=True, record_iterates=True, componentwise=True)
  t = res.trace
  eps, q, lp = np.asarray(t.eps), np.asarray(t.q), np.asarray(t.log_pi)
  pi = np.exp(lp)
  pi_prev = np.concatenate([np.full((1, 10, 3), 1 / 3), pi[:-1]])
  k = np.arange(1, K + 1)
  beta = lam / (lam + tau)
  cums = np.cumsum(eps, 0)
  np.testing.assert_allclose(t.avg_eps_sup, np.abs(cums).max((1, 2)) / k, rtol=1e-12)
  sups = np.abs(eps).max((1, 2))
  np.testing.assert_allclose(t.eps_sup, sups, rtol=1e-12)
  np.testing.assert_allclose(t.disc_eps_sum, [sum(gamma ** (kk - j) * sups[j - 1] for j in range(1, kk + 1))
                                              for kk in k], rtol=1e-12)
  ema = np.zeros((10, 3))
  emas = []
  for j in range(K):
    ema = beta * ema + (1 - beta) * eps[j]
    emas.append(np.abs(ema).max())
  np.testing.assert_allclose(t.ema_eps_sup, emas, rtol=1e-12)
  np.testing.assert_allclose(res.ema, ema, rtol=0, atol=1e-14)
  np.testing.assert_allclose(res.eps_sum, cums[-1], rtol=0, atol=1e-13)
  np.testing.assert_allclose(t.q_sup, np.abs(q).max((1, 2)), rtol=1e-14)
  np.testing.assert_allclose(t.kl_max, (pi * (lp - np.log(pi_prev))).sum(-1).max(-1), rtol=1e-9, atol=1e-14)
  np.testing.assert_allclose(t.entropy_mean, -(pi * lp).sum(-1).mean(-1), rtol=1e-12)
  np.testing.assert_allclose(t.policy_change, np.abs(pi - pi_prev).sum(-1).max(-1), rtol=1e-12)
  srt = np.sort(q, -1)
  np.testing.assert_allclose(t.action_gap_mean, (srt[..., -1] - srt[..., -2]).mean(-1), rtol=1e-12)
  for i in (0, K - 1):
    q_pi = ops.evaluate(g10, pi[i], R.entropy(tau)).q
    np.testing.assert_allclose(t.err_sup[i], np.abs(ref.q - q_pi).max(), rtol=1e-10)
    np.testing.assert_allclose(t.err_l1[i], np.abs(ref.q - q_pi).sum() / np.abs(ref.q).sum(), rtol=1e-10)
    # |A^1_k E_k| with SA × SA resolvents built explicitly.
    P = np.asarray(g10.P).reshape(30, 10)
    def resolvent(p):
      Ppi = np.einsum("xt,tb->xtb", P, p).reshape(30, 30)
      return np.linalg.inv(np.eye(30) - gamma * Ppi)
    E = -cums[i].reshape(-1)
    a1e = np.abs((resolvent(np.asarray(ref.pi)) - resolvent(pi[i])) @ E).reshape(10, 3)
    np.testing.assert_allclose(t.cw_a1e[i], a1e, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(resolvent_q(g10, pi[i], -cums[i]), (resolvent(pi[i]) @ E).reshape(10, 3),
                               rtol=1e-10, atol=1e-12)
  # The final policy is π_{K+1} = G_{π_K}(q_K).
  np.testing.assert_allclose(res.log_pi, md_greedy(t.log_pi[-1], t.q[-1], lam=lam, tau=tau)[0], atol=1e-14)


def test_clipping_is_folded_into_the_recorded_errors(g10):
  """clip = c keeps ‖q_k‖ ≤ c, and ε_k = q_k − T q_{k−1} includes the clipping (Thm 1 hypothesis)."""
  c = 2.0
  res = md_mpi(g10, lam=0.1, tau=0.0, num_iters=30, noise=N.gaussian(3.0), key=0, clip=c, record_eps=True,
               record_iterates=True)
  assert float(jnp.max(res.trace.q_sup)) <= c
  q_prev = np.concatenate([np.zeros((1, 10, 3)), np.asarray(res.trace.q[:-1])])
  log_prev = np.concatenate([np.full((1, 10, 3), -np.log(3)), np.asarray(res.trace.log_pi[:-1])])
  for k in range(30):
    _, v = md_greedy(jnp.asarray(log_prev[k]), jnp.asarray(q_prev[k]), lam=0.1, tau=0.0)
    np.testing.assert_allclose(res.trace.q[k] - ops.q_from_v(g10, v), res.trace.eps[k], rtol=0, atol=1e-12)


def test_jit_equals_eager_and_vmap_over_lam_tau_key_gamma_and_mdps_equals_a_loop(g10, refs10):
  """jit ≡ eager, and one vmap over (λ, τ, key, MDP) — λ = τ = 0 (AVI) included, γ changed through
  ``mdp._replace``, a second Garnet — equals the Python loop of single runs."""
  kw = dict(num_iters=25, noise=N1, reference=refs10[0.1])
  eager = md_mpi(g10, lam=0.3, tau=0.1, key=jax.random.key(1), **kw)
  jitted = jax.jit(lambda lam, key: md_mpi(g10, lam=lam, tau=0.1, key=key, **kw))(0.3, jax.random.key(1))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14), eager, jitted)
  other = garnet(4, num_states=10, num_actions=3, branching=3, gamma=0.9)
  mdps = [g10, g10, other, g10._replace(gamma=jnp.asarray(0.5))]
  lams, taus = jnp.asarray([0.0, 0.1, 1.0, 0.3]), jnp.asarray([0.0, 0.1, 0.1, 0.2])
  keys = jax.random.split(jax.random.key(7), 4)
  batch = jax.tree.map(lambda *x: jnp.stack(x), *mdps)
  # The reference only enters the diagnostics; one for all entries keeps the equivalence check cheap.
  batched = jax.vmap(lambda m, lam, tau, key: md_mpi(m, lam=lam, tau=tau, key=key, **kw))(batch, lams, taus, keys)
  for i in range(4):
    single = md_mpi(mdps[i], lam=float(lams[i]), tau=float(taus[i]), key=keys[i], **kw)
    if i == 0:
      # λ = τ = 0 is AVI: its hard argmax may break exact ties of q differently under vmap (round-off of a
      # batched reduction), so only the continuous quantities are compared.
      for a, b in [(batched.q, single.q), (batched.trace.q_sup, single.trace.q_sup),
                   (batched.trace.eps_sup, single.trace.eps_sup)]:
        np.testing.assert_allclose(a[i], b, rtol=1e-10, atol=1e-12)
      continue
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a[i], b, rtol=1e-10, atol=1e-12), batched, single)


def test_the_sparse_kernel_gives_the_same_run_as_the_dense_one(g10):
  """Dense [S, A, S] and sparse [S, A, B] kernels of one Garnet give the same MD-MPI run."""
  sparse = garnet(3, num_states=10, num_actions=3, branching=3, gamma=0.9, sparse=True)
  np.testing.assert_allclose(sparse.dense().P, g10.P, rtol=0, atol=0)
  # N2: the generative model samples successors of a sparse kernel differently from a dense one.
  kw = dict(lam=0.2, tau=0.1, num_iters=30, noise=N2, key=jax.random.key(4), q0=jnp.zeros((10, 3)),
            record_iterates=True)
  np.testing.assert_allclose(md_mpi(sparse, **kw).q, md_mpi(g10, **kw).q, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kwargs,match", [
    (dict(lam=-0.1, tau=0.0), "lam"),
    (dict(lam=0.1, tau=-1.0), "tau"),
    (dict(lam=0.1, tau=0.0, num_iters=0), "num_iters"),
    (dict(lam=0.1, tau=0.0, m=0), "m=0"),
    (dict(lam=0.1, tau=0.0, m=2.5), "m=2.5"),
    (dict(lam=float("nan"), tau=0.0), "lam"),
    (dict(lam=0.1, tau=0.0, noise=N1), "key"),
    (dict(lam=0.1, tau=0.0, clip=-1.0), "clip"),
    (dict(lam=0.1, tau=0.0, componentwise=True), "reference"),
])
def test_bad_inputs_are_refused_with_a_parameter_error(g10, kwargs, match):
  kw = dict(num_iters=5) | kwargs
  with pytest.raises(ParameterError, match=match):
    md_mpi(g10, **kw)


def test_bad_shapes_and_da_without_regularization_are_refused(g10):
  with pytest.raises(ShapeError, match="q0"):
    md_mpi(g10, lam=0.1, tau=0.0, num_iters=5, q0=np.zeros((3, 10)))
  with pytest.raises(ParameterError, match="lam \\+ tau"):
    da_mpi(g10, lam=0.0, tau=0.0, num_iters=5)
  with pytest.raises(ParameterError, match="alpha"):
    advantage_learning(g10, alpha=1.0, num_iters=5)
  with pytest.raises(ParameterError, match="lam"):
    da_mpi(g10, lam=-1.0, tau=0.1, num_iters=5)
  assert isinstance(md_mpi(g10, lam=0.0, tau=0.0, num_iters=2), ADPResult)  # λ = τ = 0 is AVI


# -----------------------------------------------------------------------------
# metrics
# -----------------------------------------------------------------------------


def test_metrics_follow_the_zero_log_zero_and_infinite_kl_conventions():
  pi = jnp.asarray([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
  mu = jnp.asarray([[0.25, 0.25, 0.5], [0.0, 0.5, 0.5]])
  np.testing.assert_allclose(M.kl(pi, mu), [np.log(2), np.inf])
  np.testing.assert_allclose(M.kl_log(jnp.log(pi), jnp.log(mu)), [np.log(2), np.inf])
  np.testing.assert_allclose(M.kl(mu[:1], pi[:1]), [np.inf])
  np.testing.assert_allclose(M.entropy(pi), [np.log(2), 0.0])
  np.testing.assert_allclose(M.entropy_log(jnp.log(pi)), [np.log(2), 0.0])
  np.testing.assert_allclose(M.l1_distance(pi, mu), [1.0, 2.0])
  np.testing.assert_array_equal(M.support_size(pi), [2, 1])
  np.testing.assert_allclose(M.action_gap(jnp.asarray([[1.0, 3.0, 2.5], [2.0, 2.0, 0.0]])), [0.5, 0.0])
  assert M.action_gap(jnp.ones((2, 1))).tolist() == [np.inf, np.inf]
  x, y = jnp.asarray([1.0, -2.0]), jnp.asarray([2.0, 2.0])
  assert float(M.sup_error(x, y)) == 4.0 and float(M.l1_error_normalized(x, y)) == 5.0 / 4.0
  assert float(M.span(jnp.asarray([3.0, -1.0]))) == 4.0
  # Log-space KL stays exact where exp underflows.
  lp = jnp.asarray([0.0, -800.0])
  lm = jnp.asarray([-1e-300, -900.0])
  assert abs(float(M.kl_log(lp, lm))) < 1e-12
