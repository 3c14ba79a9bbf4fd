"""Claims about the Tsallis regularizer (THEORY.md §4.1–4.2, TS-1, TS-2, TS-7).

Run with JAX x64 (tests/conftest.py, or JAX_ENABLE_X64=1): the tolerances below are float64 tolerances except
where a test says float32.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize

from mdptheory import regularizers
from mdptheory.errors import ParameterError, ShapeError
# Import names from the submodule: the package also exports a function called `tsallis`.
from mdptheory.qexp import (exp_q, log_q, sparsemax, taylor_threshold, threshold, tsallis_entropy, tsallis_kl,
                               tsallis_regularizer)


@pytest.fixture(autouse=True, scope="module")
def _require_x64():
  if not jax.config.jax_enable_x64:
    pytest.fail("these tests need float64: enable JAX x64 (tests/conftest.py or JAX_ENABLE_X64=1)")


def _random_scores(seed, shape=(20, 5), scale=1.0):
  """Scores Q (or z) ~ scale · N(0, 1), [*shape]."""
  # One shape for most tests: every new (shape, dtype) costs a compilation.
  return scale * np.random.default_rng(seed).normal(size=shape)


def _objective(pi, Q, q, tau):
  """<π, Q> + τ Ω_q(π) in plain numpy (the literal formula of THEORY.md §4.1)."""
  pi = np.maximum(pi, 0.0)
  return float(pi @ Q + tau * (1.0 - np.sum(pi**q)) / (q * (q - 1.0)))


def _slsqp_greedy(Q, q, tau):
  """A generic optimiser on the simplex: maximise <π, Q> + τ Ω_q(π) with SLSQP from two starts."""
  A = Q.shape[0]

  def f(pi):
    return -_objective(pi, Q, q, tau)

  def jac(pi):
    return -(Q - tau * np.maximum(pi, 0.0)**(q - 1.0) / (q - 1.0))

  best = None
  starts = [np.full(A, 1.0 / A), np.exp(Q / tau - np.max(Q / tau)) / np.sum(np.exp(Q / tau - np.max(Q / tau)))]
  for x0 in starts:
    res = optimize.minimize(
        f, x0, jac=jac, method="SLSQP", bounds=[(0.0, 1.0)] * A,
        constraints=[{"type": "eq", "fun": lambda p: np.sum(p) - 1.0, "jac": lambda p: np.ones_like(p)}],
        options={"ftol": 1e-16, "maxiter": 1000})
    pi = np.maximum(res.x, 0.0)
    pi = pi / pi.sum()  # evaluate a feasible point: SLSQP may end slightly off the simplex
    if best is None or _objective(pi, Q, q, tau) > _objective(best, Q, q, tau):
      best = pi
  return best


def _rounding_tolerance(pi, q, z_scale, base=1e-13):
  """Tolerance on Σ_a exp_q(z_a − ψ) − 1 from rounding x = z − ψ: ≈ eps (1 + |z|) Σ_{a∈K} exp_q'(x_a).

  exp_q' = π^(2−q) <= 1 for q <= 2, but for q > 2 it is unbounded at the support boundary (exp_q rises like
  (1 + (q − 1)x)^(1/(q−1))), so a row with an action just inside the support is ill-conditioned: no float ψ
  normalises it better than this (THEORY.md §1.4-style rounding analysis, not a solver tolerance).
  """
  pi = np.asarray(pi, np.float64)
  kappa = np.sum(np.where(pi > 0, np.where(pi > 0, pi, 1.0)**(2.0 - q), 0.0), axis=-1)
  return base + 16 * np.finfo(np.float64).eps * (1.0 + z_scale) * kappa


def _sparsemax_reference(z):
  """Sort-based sparsemax in numpy, one row at a time (Martins & Astudillo 2016, Alg. 1)."""
  out = np.zeros_like(z)
  for i, row in enumerate(z):
    zs = np.sort(row)[::-1]
    cs = np.cumsum(zs)
    k = np.arange(1, len(row) + 1)
    K = k[1 + k * zs > cs].max()
    out[i] = np.maximum(row - (cs[K - 1] - 1) / K, 0.0)
  return out


# -- TS-2: the greedy closed form ----------------------------------------------------------

@pytest.mark.parametrize("q", [1.5, 2.0, 3.0])
@pytest.mark.parametrize("tau", [0.3, 1.0])
def test_greedy_policy_attains_the_generic_optimiser_value(q, tau, record_property):
  """TS-2: exp_q(Q/τ − ψ) maximises <π, Q> + τ Ω_q(π): SLSQP finds nothing better and reaches it to 1e-10."""
  Q = _random_scores(0, (8, 5))  # SLSQP runs per row
  pi = np.asarray(tsallis_regularizer(q, tau).argmax(Q))
  gaps = []
  for s in range(Q.shape[0]):
    ours = _objective(pi[s], Q[s], q, tau)
    generic = _objective(_slsqp_greedy(Q[s], q, tau), Q[s], q, tau)
    assert generic <= ours + 1e-12, (s, generic - ours)   # nothing on the simplex beats the closed form
    gaps.append(ours - generic)
  record_property("max_slsqp_gap", max(gaps))
  print(f"q={q} tau={tau}: max objective gap to SLSQP = {max(gaps):.2e}")
  assert max(gaps) <= 1e-10


def test_q2_greedy_is_sparsemax():
  """TS-2: at q = 2 the greedy policy is sparsemax(Q/τ), which matches a numpy reference to 1e-14."""
  Q = _random_scores(1)
  for tau in [0.1, 0.5, 2.0]:
    pi = tsallis_regularizer(2.0, tau).argmax(Q)
    np.testing.assert_allclose(pi, sparsemax(Q / tau), rtol=0, atol=1e-14)
    np.testing.assert_allclose(sparsemax(Q / tau), _sparsemax_reference(Q / tau), rtol=0, atol=1e-14)


def test_bisection_agrees_with_the_q2_closed_form():
  """The bisection path (q = 2 ± 1e-13) and the sort-based closed form (q = 2) give the same ψ."""
  z = _random_scores(2, scale=2.0)
  psi2 = threshold(z, 2.0)
  for q in [2.0 - 1e-13, 2.0 + 1e-13]:
    np.testing.assert_allclose(threshold(z, q), psi2, rtol=0, atol=1e-11)


@pytest.mark.parametrize("q", [1.5, 2.0, 3.0])
def test_support_size_is_non_decreasing_in_tau(q):
  """TS-2: the support {a : Q_a/τ − ψ > −1/(q−1)} grows with τ, from the argmax (τ → 0) to all actions."""
  Q = _random_scores(3)
  taus = np.logspace(-6, 4, 80)  # full support needs τ ≫ spread of Q for large q
  sizes = np.stack([np.sum(np.asarray(tsallis_regularizer(q, t).argmax(Q)) > 0, axis=-1) for t in taus])
  assert np.all(np.diff(sizes, axis=0) >= 0)
  assert np.all(sizes[0] == 1) and np.all(sizes[-1] == Q.shape[-1])


@pytest.mark.parametrize("q", [1.0 + 1e-6, 1.1, 1.5, 2.0, 3.0, 5.0])
def test_policy_is_on_the_simplex_and_log_policy_is_consistent(q):
  """Σ π = 1 to 1e-13; log_argmax = log π with −inf exactly off the support; τ ln_q π = Q − τψ on it (§4.2)."""
  Q = _random_scores(4)
  for tau in [0.2, 1.0, 5.0]:
    reg = tsallis_regularizer(q, tau)
    pi, log_pi = np.asarray(reg.argmax(Q)), np.asarray(reg.log_argmax(Q))
    assert np.all(pi >= 0)
    np.testing.assert_allclose(pi.sum(-1), 1.0, rtol=0, atol=1e-13)
    assert np.array_equal(np.isneginf(log_pi), pi == 0)
    np.testing.assert_allclose(np.exp(log_pi), pi, rtol=1e-13, atol=1e-16)
    psi = np.asarray(threshold(Q / tau, q))
    support = pi > 0
    # ln_q π = Q/τ − ψ on the support, up to the normalisation of π (ill-conditioned rows for q > 2, see above).
    err = np.where(support, np.asarray(log_q(pi, q)) - (Q / tau - psi[:, None]), 0.0)
    tol = 1e-12 + 2 * _rounding_tolerance(pi, q, np.abs(Q / tau).max(), base=0.0)
    assert np.all(np.abs(err).max(-1) <= tol)


# -- TS-1: continuity at q = 1 -------------------------------------------------------------------

def test_q_to_one_tends_to_softmax_at_rate_q_minus_one(record_property):
  """TS-1: ‖argmax_q − softmax(Q/τ)‖∞ and |smax_q − τ lse(Q/τ)| are O(q − 1) down to q − 1 = 1e-6."""
  Q = _random_scores(5)
  tau = 0.5
  soft, lse = jax.nn.softmax(Q / tau, axis=-1), tau * jax.nn.logsumexp(Q / tau, axis=-1)
  deltas = [1e-3, 1e-4, 1e-6]
  pol_err, val_err = [], []
  for d in deltas:
    reg = tsallis_regularizer(1.0 + d, tau)
    pol_err.append(float(jnp.max(jnp.abs(reg.argmax(Q) - soft))))
    val_err.append(float(jnp.max(jnp.abs(reg.smax(Q) - lse))))
  record_property("softmax_err", pol_err)
  print("‖π_q − softmax‖∞ at q − 1 =", deltas, ":", [f"{e:.3e}" for e in pol_err])
  for errs in (pol_err, val_err):
    ratios = np.array(errs) / np.array(deltas)   # err / (q − 1) is roughly constant
    assert np.all(ratios > 0.1) and np.all(ratios < 10.0)
    np.testing.assert_allclose(ratios, ratios[0], rtol=0.05)


def test_q_near_one_is_accurate_in_float32():
  """At q = 1 + 1e-6 the log1p/expm1 forms keep float32 within float32 rounding of softmax (no 1/(q−1) blow-up)."""
  Q = _random_scores(6).astype(np.float32)
  reg = tsallis_regularizer(1.0 + 1e-6, 0.5)
  pi, v = reg.argmax(Q), reg.smax(Q)
  assert pi.dtype == jnp.float32 and v.dtype == jnp.float32
  np.testing.assert_allclose(pi, jax.nn.softmax(Q / 0.5, axis=-1), rtol=0, atol=5e-6)
  np.testing.assert_allclose(v, 0.5 * jax.nn.logsumexp(Q / 0.5, axis=-1), rtol=0, atol=1e-5)


def test_q_logarithm_exponential_entropy_and_kl_tend_to_shannon():
  """ln_q → log, exp_q → exp, Ω_q → H, D̃_q → KL as q → 1 (error ∝ q − 1), and are exact at q = 1."""
  rng = np.random.default_rng(7)
  pi, mu = rng.dirichlet(np.ones(5), size=10), rng.dirichlet(np.ones(5), size=10)
  x = rng.uniform(-3, 3, size=20)
  shannon = -np.sum(pi * np.log(pi), -1)
  kl = np.sum(pi * np.log(pi / mu), -1)
  for d in [1e-4, 1e-6, 1e-8]:
    q = 1.0 + d
    np.testing.assert_allclose(log_q(pi, q), np.log(pi), rtol=0, atol=30 * d)
    np.testing.assert_allclose(exp_q(x, q), np.exp(x), rtol=30 * d, atol=0)
    np.testing.assert_allclose(tsallis_entropy(pi, q), shannon, rtol=0, atol=30 * d)
    np.testing.assert_allclose(tsallis_kl(pi, mu, q), kl, rtol=0, atol=30 * d)
  np.testing.assert_allclose(tsallis_entropy(pi, 1), shannon, rtol=1e-14)
  np.testing.assert_allclose(tsallis_kl(pi, mu, 1), kl, rtol=1e-13)
  np.testing.assert_allclose(exp_q(x, 1), np.exp(x), rtol=1e-15)


def test_q_equal_one_dispatches_to_the_entropy_bundle():
  """q == 1 returns regularizers.entropy(τ), and q = 1 + 1e-12 is within 1e-10 of it."""
  Q = _random_scores(8)
  reg = tsallis_regularizer(1, 0.7)
  assert reg.name == "entropy"
  np.testing.assert_allclose(reg.argmax(Q), regularizers.entropy(0.7).argmax(Q), rtol=0, atol=0)
  near = tsallis_regularizer(1.0 + 1e-12, 0.7)
  assert near.name == "tsallis"
  np.testing.assert_allclose(near.argmax(Q), reg.argmax(Q), rtol=0, atol=1e-10)
  np.testing.assert_allclose(near.smax(Q), reg.smax(Q), rtol=0, atol=1e-10)
  assert regularizers.tsallis(2, 0.7).name == "tsallis"


# -- q-calculus and the entropy ----------------------------------------------------------------------

@pytest.mark.parametrize("q", [1.5, 2.0, 3.0])
def test_q_calculus_identities(q):
  """ln_q(exp_q x) = x on x > −1/(q−1); ln_q 0 = −1/(q−1); pseudo-additivity; Ω_2 = (1 − ‖π‖²)/2, D̃_2 = χ²/2."""
  rng = np.random.default_rng(9)
  x = rng.uniform(-1 / (q - 1) + 1e-3, 3, size=50)
  np.testing.assert_allclose(log_q(exp_q(x, q), q), x, rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(log_q(0.0, q), -1 / (q - 1), rtol=1e-15)
  a, b = rng.uniform(0.1, 3, size=(2, 50))
  la, lb = np.asarray(log_q(a, q)), np.asarray(log_q(b, q))
  np.testing.assert_allclose(log_q(a * b, q), la + lb + (q - 1) * la * lb, rtol=1e-12, atol=1e-13)
  pi, mu = rng.dirichlet(np.ones(5), size=10), rng.dirichlet(np.ones(5), size=10)
  literal_omega = (1 - np.sum(pi**q, -1)) / (q * (q - 1))
  literal_kl = (np.sum(pi**q * mu**(1 - q), -1) - 1) / (q * (q - 1))
  np.testing.assert_allclose(tsallis_entropy(pi, q), literal_omega, rtol=1e-12)
  np.testing.assert_allclose(tsallis_kl(pi, mu, q), literal_kl, rtol=1e-12)
  np.testing.assert_allclose(tsallis_kl(pi, pi, q), 0.0, atol=1e-15)
  if q == 2.0:
    np.testing.assert_allclose(tsallis_entropy(pi, 2), (1 - np.sum(pi**2, -1)) / 2, rtol=1e-13)
    np.testing.assert_allclose(tsallis_kl(pi, mu, 2), (np.sum(pi**2 / mu, -1) - 1) / 2, rtol=1e-12)
  # Zeros: 0 ln_q 0 = 0; π > 0 = μ gives +inf.
  vertex = np.eye(5)[:2]
  np.testing.assert_allclose(tsallis_entropy(vertex, q), 0.0, atol=0)
  assert np.all(np.isinf(tsallis_kl(pi[:2], vertex, q)))
  assert np.all(np.isfinite(tsallis_kl(vertex, pi[:2], q)))


# -- Fenchel duality and the envelope theorem --------------------------------------------------------

@pytest.mark.parametrize("q", [1.0 + 1e-6, 1.1, 1.5, 2.0, 3.0, 5.0])
def test_fenchel_identity_and_young_inequality(q):
  """Ω*(Q) = <π*, Q> − Ω(π*) and Ω*(Q) > <π, Q> − Ω(π) for every other π on the simplex."""
  rng = np.random.default_rng(10)
  Q = _random_scores(11)
  for tau in [0.1, 1.0, 10.0]:
    reg = tsallis_regularizer(q, tau)
    pi_star, v = reg.argmax(Q), reg.smax(Q)
    np.testing.assert_allclose(v, jnp.sum(pi_star * Q, -1) - reg.omega(pi_star), rtol=1e-13, atol=1e-13)
    dense = rng.dirichlet(np.ones(5), size=20)
    sparse = rng.dirichlet(np.ones(5), size=20) * (rng.uniform(size=(20, 5)) < 0.5)
    sparse[:, 0] += 1e-3
    sparse /= sparse.sum(-1, keepdims=True)
    for pi in (dense, sparse):
      gap = np.asarray(v - (jnp.sum(pi * Q, -1) - reg.omega(pi)))
      assert np.all(gap > 1e-10), gap.min()


@pytest.mark.parametrize("q", [1.0 + 1e-6, 1.1, 1.5, 2.0, 3.0, 5.0])
def test_gradient_of_smax_is_the_greedy_policy(q):
  """Envelope theorem: jax.grad of Ω* (autodiff + implicit-function dψ/dz) equals ∇Ω* = argmax, atol 1e-10."""
  Q = jnp.asarray(_random_scores(12))
  for tau in [0.1, 1.0, 10.0]:
    reg = tsallis_regularizer(q, tau)
    grad = jax.grad(lambda Q: reg.smax(Q).sum())(Q)
    np.testing.assert_allclose(grad, reg.argmax(Q), rtol=0, atol=1e-10)


@pytest.mark.parametrize("q", [1.5, 2.0, 3.0])
def test_smax_and_threshold_match_finite_differences(q):
  """Central differences: dΩ*(Q)[d] = <π*, d> and dψ(z)[d] = jvp (the custom implicit-function rule)."""
  rng = np.random.default_rng(13)
  Q = _random_scores(14)
  tau, h = 0.7, 1e-5
  reg = tsallis_regularizer(q, tau)
  for _ in range(5):
    d = rng.normal(size=Q.shape)
    fd = (reg.smax(Q + h * d) - reg.smax(Q - h * d)) / (2 * h)
    np.testing.assert_allclose(fd, jnp.sum(reg.argmax(Q) * d, -1), rtol=0, atol=1e-8)
    z = Q / tau
    fd_psi = (threshold(z + h * d, q) - threshold(z - h * d, q)) / (2 * h)
    _, jvp = jax.jvp(lambda z: threshold(z, q), (jnp.asarray(z),), (jnp.asarray(d),))
    np.testing.assert_allclose(fd_psi, jvp, rtol=0, atol=1e-8)


def test_sparsemax_jacobian_is_the_support_projection():
  """Martins & Astudillo (2016), Prop. 2: ∂sparsemax/∂z = diag(s) − s sᵀ/|K|, s the support indicator."""
  z = jnp.asarray(_random_scores(15, (6,), scale=1.5))
  s = (sparsemax(z) > 0).astype(z.dtype)
  np.testing.assert_allclose(jax.jacobian(sparsemax)(z), jnp.diag(s) - jnp.outer(s, s) / s.sum(), atol=1e-14)


# -- the threshold ψ ------------------------------------------------------------------------------------

@pytest.mark.parametrize("q", [1.0, 1.0 + 1e-6, 1.1, 1.5, 2.0, 3.0, 5.0])
def test_threshold_normalises_and_lies_in_the_bracket(q):
  """Σ_a exp_q(z_a − ψ) = 1 (1e-13) and z_max <= ψ <= z_max + (1 − A^(1−q))/(q − 1) (log A at q = 1)."""
  z = _random_scores(16, (100, 5), scale=3.0)
  psi = np.asarray(threshold(z, q))
  pi = np.asarray(exp_q(z - psi[:, None], q))
  sum_err = np.abs(pi.sum(-1) - 1.0)
  assert np.all(sum_err <= _rounding_tolerance(pi, q, np.abs(z).max()))
  if q <= 2.0:  # well conditioned: exp_q' <= 1
    assert sum_err.max() <= 1e-13
  width = math.log(5) if q == 1.0 else -math.expm1(-(q - 1) * math.log(5)) / (q - 1)
  z_max = z.max(-1)
  assert np.all(psi >= z_max - 1e-14) and np.all(psi <= z_max + width + 1e-14)
  # Equal scores put ψ at the top of the bracket (uniform policy).
  np.testing.assert_allclose(threshold(np.zeros((1, 5)), q), [width], rtol=1e-14)


def test_taylor_threshold_error(record_property):
  """TS-7: ψ̂ = 1 + (Σ_K z − 1)/|K| is exact at q = 2 and its error grows with |q − 2| on either side."""
  z = _random_scores(17, (2000, 5))
  err = {q: np.abs(np.asarray(taylor_threshold(z, q) - threshold(z, q))) for q in [1.1, 1.5, 2.0, 3.0, 5.0]}
  summary = {q: (float(e.max()), float(e.mean())) for q, e in err.items()}
  record_property("taylor_threshold_error_max_mean", summary)
  print("|ψ̂ − ψ| (max, mean) on 2000 rows z ~ N(0, 1), A = 5:", summary)
  assert summary[2.0][0] <= 1e-12
  assert summary[1.1][0] > 1e-2 and summary[5.0][0] > 1e-2
  means = [summary[q][1] for q in (2.0, 1.5, 1.1)]
  assert means == sorted(means)
  means = [summary[q][1] for q in (2.0, 3.0, 5.0)]
  assert means == sorted(means)


# -- extremes, transformations -----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("q", [1.0 + 1e-6, 1.5, 2.0, 3.0, 5.0])
def test_extreme_temperatures_and_values_stay_finite_and_on_the_simplex(dtype, q):
  """τ ∈ {1e-6, 1e-3, 1, 1e3}, |Q| up to 1e3: finite, dtype kept, rows on the simplex.

  Also max Q <= Ω*(Q) <= max Q + τ Ω_q(uniform) (a vertex and the entropy maximiser bound the maximum).
  """
  rng = np.random.default_rng(18)
  Q = np.concatenate([1e3 * rng.uniform(-1, 1, size=(14, 5)), np.full((1, 5), 1e3), rng.normal(size=(5, 5))])
  Q = Q.astype(dtype)
  atol = 1e-5 if dtype == np.float32 else 1e-13
  omega_unif = float(tsallis_entropy(np.full(5, 1 / 5), q))
  for tau in [1e-6, 1e-3, 1.0, 1e3]:
    reg = tsallis_regularizer(q, tau)
    pi, log_pi, v = reg.argmax(Q), reg.log_argmax(Q), reg.smax(Q)
    assert pi.dtype == dtype and v.dtype == dtype and log_pi.dtype == dtype
    assert bool(jnp.all(jnp.isfinite(pi))) and bool(jnp.all(jnp.isfinite(v)))
    assert not bool(jnp.any(jnp.isnan(log_pi)))
    assert bool(jnp.all(pi >= 0))
    np.testing.assert_allclose(pi.sum(-1), 1.0, rtol=0, atol=atol)
    v64, q_max = np.asarray(v, np.float64), Q.max(-1).astype(np.float64)
    slack = 4 * np.finfo(dtype).eps * np.abs(q_max) + atol
    assert np.all(v64 >= q_max - slack) and np.all(v64 <= q_max + tau * omega_unif + slack)


def test_vmap_over_traced_tau_equals_a_python_loop():
  """The bundle built inside vmap with a traced τ gives the same policies and values as a loop over τ."""
  Q = jnp.asarray(_random_scores(19))
  taus = jnp.array([0.05, 0.3, 1.0, 4.0])
  for q in [1.5, 2.0, 3.0]:
    def f(tau):
      reg = tsallis_regularizer(q, tau)
      return reg.argmax(Q), reg.smax(Q), reg.log_argmax(Q)
    pis, vs, logs = jax.vmap(f)(taus)
    for i, tau in enumerate(np.asarray(taus)):
      pi, v, log_pi = f(float(tau))
      np.testing.assert_allclose(pis[i], pi, rtol=0, atol=1e-14)
      np.testing.assert_allclose(vs[i], v, rtol=1e-14, atol=1e-14)
      np.testing.assert_array_equal(np.isneginf(logs[i]), np.isneginf(log_pi))


def test_jit_equals_eager():
  """jit of (argmax, smax, grad smax, threshold) equals the eager values."""
  Q = jnp.asarray(_random_scores(20))
  for q in [1.5, 2.0]:  # the bisection and the closed-form paths
    reg = tsallis_regularizer(q, 0.5)

    def everything(Q):
      return reg.argmax(Q), reg.smax(Q), jax.grad(lambda Q: reg.smax(Q).sum())(Q), threshold(Q, q)

    for jitted, eager in zip(jax.jit(everything)(Q), everything(Q)):
      np.testing.assert_allclose(jitted, eager, rtol=1e-14, atol=1e-14)


# -- bad input ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("q, match", [
    (0, r"q=0\.0 must be > 0"), (-1, r"q=-1\.0 must be > 0"), (float("nan"), r"q is NaN"),
    (True, r"q=True is a bool"), ("2", r"q='2' is a string"), (0.5, r"q=0\.5: q in \(0, 1\) is not supported"),
    (float("inf"), r"q=inf"), (np.array([2.0, 3.0]), r"q must be a scalar")])
def test_bad_q_is_refused(q, match):
  with pytest.raises(ParameterError, match=match):
    tsallis_regularizer(q, 1.0)
  with pytest.raises(ParameterError, match=match):
    threshold(np.zeros(3), q)


def test_q_in_zero_one_message_names_the_supported_range():
  with pytest.raises(ParameterError, match=r"only q >= 1 is implemented"):
    tsallis_regularizer(0.5, 1.0)


@pytest.mark.parametrize("tau, match", [(0, r"tau=0\.0 must be > 0"), (-1, r"tau=-1\.0 must be > 0"),
                                        (float("nan"), r"tau is NaN"), (True, r"tau=True is a bool")])
def test_bad_tau_is_refused(tau, match):
  with pytest.raises(ParameterError, match=match):
    tsallis_regularizer(2.0, tau)


def test_a_sweep_over_traced_q_equals_a_python_loop():
  """vmap over q (the bisection path) matches the concrete-q bundles, including q = 2's closed form."""
  Q = jnp.asarray(np.random.default_rng(7).normal(size=(4, 5)))
  qs = jnp.asarray([1.3, 2.0, 3.5])
  batched = jax.vmap(lambda q: tsallis_regularizer(q, 0.7).argmax(Q))(qs)
  looped = jnp.stack([tsallis_regularizer(float(q), 0.7).argmax(Q) for q in qs])
  np.testing.assert_allclose(batched, looped, rtol=0, atol=1e-12)
  values = jax.vmap(lambda q: tsallis_regularizer(q, 0.7).smax(Q))(qs)
  np.testing.assert_allclose(values, jnp.stack([tsallis_regularizer(float(q), 0.7).smax(Q) for q in qs]),
                             rtol=0, atol=1e-12)
  omegas = jax.vmap(lambda q: tsallis_regularizer(q, 0.7).omega(looped[1]))(qs)
  np.testing.assert_allclose(omegas, jnp.stack([tsallis_regularizer(float(q), 0.7).omega(looped[1]) for q in qs]),
                             rtol=0, atol=1e-13)


def test_scalar_scores_are_refused():
  with pytest.raises(ShapeError, match=r"action axis"):
    threshold(1.0, 2.0)


# -- property test --------------------------------------------------------------------------------------------

@settings(max_examples=30, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1), q=st.floats(1.05, 4.0), tau=st.floats(1e-2, 10.0),
       num_actions=st.sampled_from([1, 2, 5]), scale=st.sampled_from([0.1, 1.0, 30.0]))
def test_greedy_policy_is_on_the_simplex_and_fenchel_young_is_tight(seed, q, tau, num_actions, scale):
  """For any Q, q ∈ [1.05, 4], τ ∈ [1e-2, 10]: π* ∈ Δ and Ω*(Q) = <π*, Q> − Ω(π*) (Fenchel–Young equality)."""
  Q = _random_scores(seed, (3, num_actions), scale=scale)
  reg = tsallis_regularizer(q, tau)
  pi, v = np.asarray(reg.argmax(Q)), np.asarray(reg.smax(Q))
  assert np.all(pi >= 0)
  np.testing.assert_allclose(pi.sum(-1), 1.0, rtol=0, atol=1e-13)
  fy = np.asarray(jnp.sum(pi * Q, -1) - reg.omega(pi))
  np.testing.assert_allclose(v, fy, rtol=1e-12, atol=1e-12 * (1 + tau))
