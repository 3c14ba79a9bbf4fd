"""Claims about Munchausen VI (THEORY.md §3: MV-1 to MV-5), checked against independent numpy references.

The MD-VI reference below is the plain-numpy pseudo-code of THEORY.md §2.4 (log space), written here
independently of :mod:`mdptheory.algorithms`. Run with JAX x64 (tests/conftest.py).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

from mdptheory import noise, solvers
from mdptheory.algorithms.munchausen import MVIResult, MVITrace, mdvi_to_mvi, munchausen_q_prime, mvi, mvi_to_mdvi
from mdptheory.envs.tabular import garnet
from mdptheory.errors import ParameterError, ShapeError


@pytest.fixture(autouse=True, scope="module")
def _require_x64():
  if not jax.config.jax_enable_x64:
    pytest.fail("these tests need float64: enable JAX x64 (tests/conftest.py or JAX_ENABLE_X64=1)")


# Shared error models: a compiled run is cached per error-model object (a static argument), so tests that use
# the same object (and the same K and recording flags) share one compilation.
K1 = 60
EPS = 0.5 * np.random.default_rng(0).normal(size=(K1, 20, 4))   # N2, σ = 0.5, for Garnet(20, 4, 3)
SEQ = noise.sequence(EPS)
GEN = noise.generative()


@pytest.fixture(scope="module")
def g20():
  """Garnet(20, 4, 3), γ = 0.9 (the MV-1 instance) and its numpy arrays."""
  mdp = garnet(0, num_states=20, num_actions=4, branching=3, gamma=0.9)
  return mdp, np.asarray(mdp.P), np.asarray(mdp.r), float(mdp.gamma)


def mdvi_reference(P, r, gamma, lam, tau, eps, q0):
  """MD-VI(λ, τ), m = 1, in plain numpy: the pseudo-code of THEORY.md §2.4, errors eps[k] added to update k.

  Returns (ln π_1..ln π_K [K, S, A], q_1..q_K [K, S, A]).
  """
  S, A = r.shape
  logpi = np.full((S, A), -np.log(A))
  q = np.array(q0, dtype=float)
  beta = lam / (lam + tau)
  logpis, qs = [], []
  for k in range(eps.shape[0]):
    z = beta * logpi + q / (lam + tau)
    lognew = z - logsumexp(z, axis=1, keepdims=True)            # ln π_{k+1}
    p = np.exp(lognew)
    kl = np.sum(p * (lognew - logpi), 1)
    ent = -np.sum(p * lognew, 1)
    v = np.sum(p * q, 1) - lam * kl + tau * ent
    q = r + gamma * np.einsum("sat,t->sa", P, v) + eps[k]
    logpi = lognew
    logpis.append(lognew)
    qs.append(q)
  return np.array(logpis), np.array(qs)


def mvi_log_pi_form(P, r, gamma, alpha, tau, eps, clip_min=None):
  """M-VI in the ln π form of THEORY.md §3.2 (π = softmax, then np.log(π)), plain numpy.  -> q_1..q_K."""
  S, A = r.shape
  q = np.zeros((S, A))
  qs = []
  for k in range(eps.shape[0]):
    e = np.exp(q / tau - np.max(q / tau, 1, keepdims=True))
    pi = e / e.sum(1, keepdims=True)
    tlogp = tau * np.log(pi)
    bonus = tlogp if clip_min is None else np.clip(tlogp, clip_min, 0.0)
    v = np.sum(pi * (q - tlogp), 1)
    q = r + alpha * bonus + gamma * np.einsum("sat,t->sa", P, v) + eps[k]
    qs.append(q)
  return np.array(qs)


# -- MV-1: reparameterisation -------------------------------------------------------------------------

@pytest.mark.parametrize("alpha,tau", [(0.9, 0.1), (0.5, 0.4), (0.99, 0.03)])
def test_mv1_mvi_is_mdvi_with_lam_alpha_tau_and_tau_prime_one_minus_alpha_tau(g20, alpha, tau):
  """MV-1 (§3.3): (π_k, q'_k = q_k − ατ ln π_k) of M-VI(α, τ) is the MD-VI(ατ, (1 − α)τ) sequence, same errors.

  Garnet(20, 4, 3), N2 errors σ = 0.5 fed to both through noise.sequence, K = 60; tol 1e-10 (THEORY §10: ≤ 5e-14).
  M-VI starts from q_0 = 0, so MD-VI starts from q'_0 = q_0 − ατ ln π_0 = ατ ln|A|.
  """
  mdp, P, r, gamma = g20
  K, (S, A), eps = K1, r.shape, EPS
  res = mvi(mdp, alpha=alpha, tau=tau, num_iters=K, noise=SEQ, key=0, record_iterates=True)
  lam, tau_prime = mvi_to_mdvi(alpha, tau)
  ref_logpi, ref_q = mdvi_reference(P, r, gamma, lam, tau_prime, eps, np.full((S, A), alpha * tau * np.log(A)))
  logpis = np.asarray(res.trace.log_pi)
  q_prime = np.asarray(munchausen_q_prime(res.trace.q, res.trace.log_pi, alpha, tau))
  pi_gap = np.abs(np.exp(logpis) - np.exp(ref_logpi)).max()
  q_gap = np.abs(q_prime - ref_q).max()
  print(f"MV-1 alpha={alpha} tau={tau}: max|dpi|={pi_gap:.2e} max|dq'|={q_gap:.2e}")
  assert pi_gap <= 1e-10
  assert q_gap <= 1e-10
  # The result's final pair: q_K, q'_K = q_K − ατ ln π_K, and ln π_{K+1} = log_softmax(q_K/τ).
  np.testing.assert_array_equal(res.q, res.trace.q[-1])
  np.testing.assert_allclose(res.q_prime, ref_q[-1], rtol=0, atol=1e-10)
  np.testing.assert_allclose(res.log_pi, jax.nn.log_softmax(res.q / tau, axis=-1), rtol=0, atol=1e-12)


def test_mv1_against_the_library_md_mpi_with_the_same_key_under_generative_noise(g20):
  """MV-1 with MD-VI from mdptheory.algorithms.mdmpi.md_mpi (skipped if that module is absent), N1 errors.

  Both algorithms split the key the same way and call the error model with the same next-state value
  (τ lse(q_k/τ) = <π_{k+1}, q'_k> − λKL(π_{k+1}‖π_k) + τ'H(π_{k+1})), so even sampled backups give both the
  same errors, and the equivalence holds along the whole noisy trajectory.
  """
  mdmpi = pytest.importorskip("mdptheory.algorithms.mdmpi")
  mdp, P, r, gamma = g20
  alpha, tau, K = 0.9, 0.1, K1
  S, A = r.shape
  lam, tau_prime = mvi_to_mdvi(alpha, tau)
  q0 = jnp.full((S, A), alpha * tau * math.log(A))
  res = mvi(mdp, alpha=alpha, tau=tau, num_iters=K, noise=GEN, key=11, record_eps=True, record_iterates=True)
  # md_mpi measures its errors against an Optimum; hand it the q*_{τ'} that mvi computed.
  ref = solvers.Optimum(v=jnp.max(res.q_ref, -1), q=res.q_ref, pi=jnp.exp(res.log_pi),
                        converged=jnp.asarray(True), error_bound=jnp.asarray(0.0))
  md = mdmpi.md_mpi(mdp, lam=lam, tau=tau_prime, num_iters=K, noise=GEN, key=11, q0=q0, record_eps=True,
                    record_iterates=True, reference=ref)
  np.testing.assert_allclose(res.trace.eps, md.trace.eps, rtol=0, atol=1e-12)
  q_prime = munchausen_q_prime(res.trace.q, res.trace.log_pi, alpha, tau)
  pi_gap = float(jnp.max(jnp.abs(jnp.exp(res.trace.log_pi) - jnp.exp(md.trace.log_pi))))
  q_gap = float(jnp.max(jnp.abs(q_prime - md.trace.q)))
  print(f"MV-1 vs md_mpi (N1, same key): max|dpi|={pi_gap:.2e} max|dq'|={q_gap:.2e}")
  assert pi_gap <= 1e-10 and q_gap <= 1e-10
  np.testing.assert_allclose(res.q_prime, md.q, rtol=0, atol=1e-10)
  np.testing.assert_allclose(jnp.exp(res.log_pi), jnp.exp(md.log_pi), rtol=0, atol=1e-10)  # π_{K+1}
  # Same policies, same evaluation (entropy τ'), same reference: the error traces agree too.
  np.testing.assert_allclose(res.trace.err_sup, md.trace.err_sup, rtol=0, atol=1e-9)


def test_parameter_maps_are_inverse_and_follow_the_reference_code():
  lam, tau_prime = mvi_to_mdvi(0.9, 0.03)
  assert lam == pytest.approx(0.027) and tau_prime == pytest.approx(0.003)  # KL weight ατ, entropy (1 − α)τ
  alpha, tau = mdvi_to_mvi(lam, tau_prime)
  assert alpha == pytest.approx(0.9) and tau == pytest.approx(0.03)
  a, t = jax.vmap(mdvi_to_mvi)(*jax.vmap(mvi_to_mdvi)(jnp.array([0.0, 0.5, 1.0]), jnp.array([0.1, 0.2, 0.3])))
  np.testing.assert_allclose(a, [0.0, 0.5, 1.0], atol=1e-15)
  np.testing.assert_allclose(t, [0.1, 0.2, 0.3], atol=1e-15)
  np.testing.assert_allclose(munchausen_q_prime(jnp.ones(3), jnp.log(jnp.array([0.5, 0.25, 0.25])), 0.5, 2.0),
                             1.0 - np.log([0.5, 0.25, 0.25]), rtol=1e-15)


# -- MV-2: log-sum-exp form and limits ----------------------------------------------------------------

@pytest.mark.parametrize("clip_min", [None, -0.3])
def test_mv2_lse_form_equals_the_log_pi_form(g20, clip_min):
  """MV-2: the lse form (the library) equals r + ατ ln π + γP<π, q − τ ln π> computed with np.log(softmax)."""
  mdp, P, r, gamma = g20
  res = mvi(mdp, alpha=0.7, tau=0.5, num_iters=K1, noise=SEQ, key=0, clip_min=clip_min, record_iterates=True)
  ref = mvi_log_pi_form(P, r, gamma, 0.7, 0.5, EPS, clip_min)
  np.testing.assert_allclose(res.trace.q, ref, rtol=0, atol=1e-10)
  if clip_min is not None:
    assert float(jnp.max(res.trace.clip_fraction)) > 0  # the clip was exercised


def test_mv2_alpha_zero_is_soft_value_iteration(g20):
  mdp, P, r, gamma = g20
  K, tau, eps = K1, 0.2, EPS
  res = mvi(mdp, alpha=0.0, tau=tau, num_iters=K, noise=SEQ, key=0, record_iterates=True)
  q, qs = np.zeros(r.shape), []
  for k in range(K):
    q = r + gamma * np.einsum("sat,t->sa", P, tau * logsumexp(q / tau, axis=1)) + eps[k]
    qs.append(q)
  np.testing.assert_allclose(res.trace.q, np.array(qs), rtol=0, atol=1e-10)


@pytest.mark.parametrize("alpha", [0.5, 0.9, 0.99])
def test_mv2_small_tau_tracks_advantage_learning(g20, alpha):
  """MV-2: τ = 1e-6 tracks AL, q_{k+1} = r + γP max q_k + α(q_k − max_a q_k) (§3.2).

  One step from the same q differs by at most (α + γ) τ ln|A| (0 <= τ lse(q/τ) − max q <= τ ln|A|); over the
  trajectory (K = 150) we require the gap to stay below τ ln|A|/(1 − γ) (observed ≈ 2e-6).
  """
  mdp, P, r, gamma = g20
  K, tau, A = 150, 1e-6, r.shape[1]
  res = mvi(mdp, alpha=alpha, tau=tau, num_iters=K, record_iterates=True)
  qs_mvi = np.asarray(res.trace.q)
  q, qs = np.zeros(r.shape), []
  one_step = 0.0
  for k in range(K):
    m = q.max(1)
    q = r + gamma * np.einsum("sat,t->sa", P, m) + alpha * (q - m[:, None])
    qs.append(q)
    # one AL step from the M-VI iterate vs the M-VI step from it
    if k + 1 < K:
      qk = qs_mvi[k]
      mk = qk.max(1)
      al = r + gamma * np.einsum("sat,t->sa", P, mk) + alpha * (qk - mk[:, None])
      one_step = max(one_step, np.abs(al - qs_mvi[k + 1]).max())
  gap = np.abs(np.array(qs) - qs_mvi).max()
  print(f"MV-2 AL alpha={alpha}: one-step {one_step:.2e}, trajectory {gap:.2e}")
  assert one_step <= (alpha + gamma) * tau * math.log(A) + 1e-12
  assert gap <= tau * math.log(A) / (1 - gamma)


# -- MV-3: the α = 1 bound ------------------------------------------------------------------------------

def test_mv3_alpha_one_bound_holds_at_every_iteration_under_generative_noise():
  """MV-3 (§3.4): α = 1 is MD-VI(τ, 0); Leverage Thm 1 (ℓ∞ form, the λ-version of §2.5) gives at every k

      ‖q* − q_{π_k}‖_∞ <= 2/(1 − γ) ‖(1/k) Σ_{j<=k} ε_j‖_∞ + 4/(1 − γ)² (r_max + τ ln|A|)/k,

  π_k = softmax(q_{k−1}/τ) the policy of update k. N1 errors, Garnet(10, 3, 3), K = 200, τ ∈ {0.1, 1} × 3 seeds.
  """
  mdp = garnet(5, num_states=10, num_actions=3, branching=3, gamma=0.9)
  K, gamma, A = 200, 0.9, 3
  r_max = float(jnp.max(jnp.abs(mdp.r)))
  taus = jnp.repeat(jnp.array([0.1, 1.0]), 3)
  keys = jax.random.split(jax.random.key(7), 6)
  runs = [mvi(mdp, alpha=1.0, tau=float(t), num_iters=K, noise=GEN, key=key) for t, key in zip(taus, keys)]
  res = jax.tree.map(lambda *x: jnp.stack(x), *runs)
  k = np.arange(1, K + 1)
  lhs = np.asarray(res.trace.err_sup)
  rhs = (2 / (1 - gamma) * np.asarray(res.trace.avg_eps_sup)
         + 4 / (1 - gamma) ** 2 * (r_max + np.asarray(taus)[:, None] * math.log(A)) / k)
  print(f"MV-3: max lhs/rhs = {np.max(lhs / rhs):.3f} (tau=0.1: {np.max(lhs[:3] / rhs[:3]):.3f}, "
        f"tau=1: {np.max(lhs[3:] / rhs[3:]):.3f}); final lhs = {np.round(lhs[:, -1], 4)}")
  assert np.all(lhs <= rhs + 1e-9)
  assert np.all(np.asarray(res.trace.eps_sup) > 0)  # the noise was really applied


@pytest.mark.slow
def test_mv3_alpha_one_bound_at_paper_scale():
  """MV-3 in the setup of LA-4: Garnet(30, 4, 4), γ = 0.9, N1, τ = λ ∈ {0.01, 0.1, 1}, K = 800, 20 Garnets."""
  K, gamma, A = 800, 0.9, 4
  k = np.arange(1, K + 1)
  worst = 0.0
  for seed in range(20):
    mdp = garnet(100 + seed, num_states=30, num_actions=4, branching=4, gamma=gamma)
    r_max = float(jnp.max(jnp.abs(mdp.r)))
    for tau in (0.01, 0.1, 1.0):
      res = mvi(mdp, alpha=1.0, tau=tau, num_iters=K, noise=GEN, key=seed)
      lhs = np.asarray(res.trace.err_sup)
      rhs = 2 / (1 - gamma) * np.asarray(res.trace.avg_eps_sup) + 4 / (1 - gamma) ** 2 * (r_max + tau * math.log(A)) / k
      assert np.all(lhs <= rhs + 1e-9)
      worst = max(worst, float(np.max(lhs / rhs)))
  print(f"MV-3 paper scale: max lhs/rhs = {worst:.3f}")


# -- MV-4: fixed point and action gap --------------------------------------------------------------------

@pytest.mark.parametrize("alpha", [0.0, 0.5, 0.9])
def test_mv4_action_gap_ratio_is_one_over_one_minus_alpha(alpha):
  """MV-4 (§3.5): tests the DERIVED gap ratio 1/(1 − α), not the printed factor.

  Our recollection of Munchausen RL's Theorem 2 factor, (1 + α)/(1 − α), is UNCONFIRMED and disagrees with the
  derivation for the recursion of §3.2; the fixed point q_∞ = q*_{τ'} + α/(1 − α)(q*_{τ'} − τ' lse(q*_{τ'}/τ'))
  gives max_a q_∞ − q_∞ = (max_a q*_{τ'} − q*_{τ'})/(1 − α) exactly. Garnet(10, 3, 3), τ = 0.5, K = 600.
  """
  mdp = garnet(0, num_states=10, num_actions=3, branching=3, gamma=0.9)
  tau = 0.5
  tau_prime = (1 - alpha) * tau
  res = mvi(mdp, alpha=alpha, tau=tau, num_iters=600)
  q_star, q = np.asarray(res.q_ref), np.asarray(res.q)
  q_inf = q_star + alpha / (1 - alpha) * (q_star - tau_prime * logsumexp(q_star / tau_prime, axis=1,
                                                                          keepdims=True))
  np.testing.assert_allclose(q, q_inf, rtol=0, atol=1e-8)
  gap, gap_star = q.max(1, keepdims=True) - q, q_star.max(1, keepdims=True) - q_star
  mask = gap_star > 1e-3
  ratio = gap[mask] / gap_star[mask]
  print(f"MV-4 alpha={alpha}: gap ratio in [{ratio.min():.9f}, {ratio.max():.9f}] over {mask.sum()} entries "
        f"(1/(1-alpha) = {1 / (1 - alpha):.6f}; printed (1+alpha)/(1-alpha) = {(1 + alpha) / (1 - alpha):.6f})")
  assert mask.sum() >= 10
  np.testing.assert_allclose(ratio, 1 / (1 - alpha), rtol=0, atol=1e-6)
  assert float(res.trace.err_sup[-1]) < 1e-10  # π_k → π*_{τ'}
  top2 = -np.sort(-q_star, axis=1)[:, :2]
  mean_gap_star = np.mean(top2[:, 0] - top2[:, 1])
  np.testing.assert_allclose(float(res.trace.action_gap_mean[-1]) / mean_gap_star, 1 / (1 - alpha), rtol=1e-8)


# -- MV-5: clipping ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("tau", [0.03, 0.3])
def test_mv5_clipped_mvi_departs_from_mdvi_once_the_clip_binds(g20, tau):
  """MV-5 (§3.4): with l0 = −1, clipped M-VI equals MD-VI (= unclipped M-VI) exactly while nothing is clipped.

  Once the clip binds (first at the update producing q_{k0}), π_{k0+1} onwards differ. With τ = 0.03 (M-DQN's
  value) the clip binds only where π < e^{−1/τ} ≈ 3e-15, so the policies differ by ~1e-14 in probability but by
  O(1) in the logits τ ln π (the q' of MD-VI); with τ = 0.3 they differ visibly in probability too.
  """
  mdp, P, r, gamma = g20
  K, alpha = 150, 0.9
  plain = mvi(mdp, alpha=alpha, tau=tau, num_iters=K, record_iterates=True)
  clipped = mvi(mdp, alpha=alpha, tau=tau, num_iters=K, clip_min=-1.0, record_iterates=True)
  cf = np.asarray(clipped.trace.clip_fraction)
  assert np.all(np.asarray(plain.trace.clip_fraction) == 0)
  assert np.any(cf > 0)
  k0 = int(np.argmax(cf > 0)) + 1        # first k whose update clipped
  # differences of π_1..π_K, in the logits τ ln π and in probability
  d_logit = np.abs(tau * np.asarray(plain.trace.log_pi) - tau * np.asarray(clipped.trace.log_pi)).max((1, 2))
  d_pi = np.abs(np.exp(plain.trace.log_pi) - np.exp(clipped.trace.log_pi)).max((1, 2))
  # π_1..π_{k0} use q_0..q_{k0−1}: computed without any binding clip, hence bit-identical.
  assert np.all(d_logit[:k0] == 0) and np.all(d_pi[:k0] == 0)
  assert np.all(d_logit[k0:] > 1e-6)
  # ... and equal to the MD-VI reference to round-off before the clip binds.
  lam, tau_prime = mvi_to_mdvi(alpha, tau)
  ref_logpi, _ = mdvi_reference(P, r, gamma, lam, tau_prime, np.zeros((K, *r.shape)),
                                np.full(r.shape, lam * np.log(r.shape[1])))
  np.testing.assert_allclose(np.exp(clipped.trace.log_pi[:k0]), np.exp(ref_logpi[:k0]), rtol=0, atol=1e-10)
  print(f"MV-5 tau={tau}: first clip at k={k0}; final clip fraction {cf[-1]:.3f}; "
        f"max|dpi| {d_pi.max():.2e}, max|d tau ln pi| {d_logit.max():.2f}; "
        f"final error vs q*_tau' plain {float(plain.trace.err_sup[-1]):.2e} clipped "
        f"{float(clipped.trace.err_sup[-1]):.2e}")
  if tau == 0.3:
    assert d_pi.max() > 1e-3


# -- transformations and validation --------------------------------------------------------------------

def _leaves(result):
  return {".".join(str(getattr(k, "name", k)) for k in path): leaf
          for path, leaf in jax.tree_util.tree_leaves_with_path(result)}


def test_jit_equals_eager_and_vmap_over_alpha_tau_and_seeds_equals_a_loop(g20):
  mdp = g20[0]
  kw = dict(num_iters=K1, noise=GEN, record_eps=True, record_iterates=True)
  eager = mvi(mdp, alpha=0.8, tau=0.2, key=5, **kw)
  jitted = jax.jit(lambda a, t, key: mvi(mdp, alpha=a, tau=t, key=key, **kw))(0.8, 0.2, jax.random.key(5))
  for name, leaf in _leaves(eager).items():
    np.testing.assert_allclose(leaf, _leaves(jitted)[name], rtol=1e-12, atol=1e-12, err_msg=name)
  alphas, taus = jnp.array([0.0, 0.5, 0.9]), jnp.array([0.05, 0.2, 1.0])
  keys = jax.random.split(jax.random.key(1), 3)
  batched = jax.vmap(lambda a, t, key: mvi(mdp, alpha=a, tau=t, key=key, **kw))(alphas, taus, keys)
  for i in range(3):
    single = _leaves(mvi(mdp, alpha=float(alphas[i]), tau=float(taus[i]), key=keys[i], **kw))
    for name, leaf in _leaves(batched).items():
      np.testing.assert_allclose(leaf[i], single[name], rtol=1e-10, atol=1e-10, err_msg=name)


def test_the_sparse_kernel_agrees_with_the_dense_one(g20):
  sparse = garnet(0, num_states=20, num_actions=4, branching=3, gamma=0.9, sparse=True)
  a = mvi(g20[0], alpha=0.9, tau=0.1, num_iters=150, record_iterates=True)
  b = mvi(sparse, alpha=0.9, tau=0.1, num_iters=150, record_iterates=True)
  np.testing.assert_allclose(a.q, b.q, rtol=0, atol=1e-12)
  np.testing.assert_allclose(a.trace.err_sup, b.trace.err_sup, rtol=0, atol=1e-12)
  assert isinstance(a, MVIResult) and isinstance(a.trace, MVITrace)
  assert a.trace.eps is None and a.trace.q.shape == (150, 20, 4)


@pytest.mark.parametrize("kwargs,err", [
    (dict(alpha=-0.1), ParameterError), (dict(alpha=1.5), ParameterError), (dict(tau=0.0), ParameterError),
    (dict(tau=-1.0), ParameterError), (dict(clip_min=0.5), ParameterError), (dict(num_iters=0), ParameterError),
    (dict(alpha="0.9"), ParameterError), (dict(noise=noise.gaussian(0.1)), ParameterError),
    (dict(q0=np.zeros((3, 3))), ShapeError), (dict(reference=np.zeros((20, 5))), ShapeError),
])
def test_bad_inputs_are_refused(g20, kwargs, err):
  base = dict(alpha=0.5, tau=0.1, num_iters=K1)
  base.update(kwargs)
  with pytest.raises(err):
    mvi(g20[0], **base)
  with pytest.raises(ParameterError):
    mvi_to_mdvi(1.2, 0.1)
  with pytest.raises(ParameterError):
    mdvi_to_mvi(0.0, 0.0)
