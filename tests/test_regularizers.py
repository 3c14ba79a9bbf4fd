"""Claims about the (Ω, Ω*, ∇Ω*) bundles: conjugacy, gradients, closed forms, limits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize

from mdptheory import regularizers as R
from mdptheory.errors import ParameterError

RNG = np.random.default_rng(1234)
Q = jnp.asarray(RNG.normal(size=(7, 5)) * 2.0)
PI_PREV = jnp.asarray(RNG.dirichlet(np.ones(5), size=7))
REF_WITH_ZEROS = jnp.asarray(np.array([0.5, 0.0, 0.2, 0.3, 0.0]))


def smooth_bundles():
  return {
      "entropy": R.entropy(0.7),
      "kl": R.kl(PI_PREV, 0.4),
      "kl_zeros": R.kl(REF_WITH_ZEROS, 0.4),
      "kl_entropy": R.kl_entropy(0.3, 0.2, PI_PREV),
      "kl_entropy_no_kl": R.kl_entropy(0.0, 0.2, PI_PREV),
      "kl_entropy_no_entropy": R.kl_entropy(0.3, 0.0, PI_PREV),
      "tsallis2": R.tsallis(2.0, 0.5),
      "tsallis1.5": R.tsallis(1.5, 0.5),
  }


ALL = {"none": R.none(), **smooth_bundles()}


@pytest.mark.parametrize("name", sorted(ALL))
def test_greedy_policy_lies_on_the_simplex(name):
  pi = ALL[name].argmax(Q)
  assert pi.shape == Q.shape
  assert jnp.all(pi >= 0)
  np.testing.assert_allclose(pi.sum(-1), 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(ALL))
def test_conjugate_is_attained_at_the_greedy_policy(name):
  """Ω*(q) = <∇Ω*(q), q> − Ω(∇Ω*(q)) (Fenchel equality)."""
  reg = ALL[name]
  pi = reg.argmax(Q)
  np.testing.assert_allclose(reg.smax(Q), jnp.sum(pi * Q, -1) - reg.omega(pi), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(ALL))
def test_fenchel_young_inequality_against_random_policies(name):
  """Ω*(q) >= <π, q> − Ω(π) for every π on the simplex."""
  reg = ALL[name]
  pis = jnp.asarray(RNG.dirichlet(np.ones(5) * 0.5, size=(200, 7)))
  lhs = reg.smax(Q)[None]
  rhs = jnp.sum(pis * Q[None], -1) - jax.vmap(reg.omega)(pis)
  assert jnp.all(lhs >= rhs - 1e-12)


@pytest.mark.parametrize("name", sorted(smooth_bundles()))
def test_gradient_of_the_conjugate_is_the_greedy_policy(name):
  """∇Ω* computed by jax.grad of Ω* equals the closed-form greedy policy."""
  reg = ALL[name]
  grad = jax.grad(lambda q: reg.smax(q).sum())(Q)
  np.testing.assert_allclose(grad, reg.argmax(Q), rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", sorted(ALL))
def test_log_argmax_is_the_log_of_argmax(name):
  reg = ALL[name]
  pi, logpi = reg.argmax(Q), reg.log_argmax(Q)
  pos = pi > 0
  np.testing.assert_allclose(jnp.where(pos, logpi, 0.0), jnp.where(pos, jnp.log(jnp.where(pos, pi, 1.0)), 0.0),
                             rtol=0, atol=1e-9)
  assert jnp.all(jnp.where(pos, True, logpi == -jnp.inf))


def _slsqp_greedy(q, omega):
  """argmax_π <π, q> − Ω(π) on the simplex by a generic constrained optimizer."""
  A = q.shape[0]
  res = minimize(lambda p: -(p @ q - omega(p)), np.full(A, 1.0 / A), method="SLSQP",
                 bounds=[(0.0, 1.0)] * A, constraints=[{"type": "eq", "fun": lambda p: p.sum() - 1.0}],
                 options={"ftol": 1e-15, "maxiter": 500})
  return res.x, -res.fun


@pytest.mark.parametrize("lam,tau", [(0.5, 0.0), (0.2, 0.05), (1.0, 0.3), (0.0, 0.4)])
def test_md_greedy_closed_form_solves_the_argmax(lam, tau):
  """LA-2: π ∝ π_prev^β exp(q/(λ+τ)) maximizes <π,q> − λKL(π‖π_prev) + τH(π) (vs SLSQP)."""
  for s in range(3):
    q, prev = np.asarray(Q[s]), np.asarray(PI_PREV[s])
    reg = R.kl_entropy(lam, tau, PI_PREV[s])

    def omega(p, prev=prev):
      p = np.clip(p, 1e-300, None)
      return lam * np.sum(p * (np.log(p) - np.log(prev))) + tau * np.sum(p * np.log(p))

    _, best = _slsqp_greedy(q, omega)
    closed = float(reg.smax(jnp.asarray(q)))
    # The closed form is the maximum: at least as good as SLSQP, and SLSQP gets within 1e-8 of it.
    assert closed >= best - 1e-10
    assert closed - best <= 1e-7


def test_kl_entropy_limits_reduce_to_entropy_and_kl():
  np.testing.assert_allclose(R.kl_entropy(0.0, 0.3, PI_PREV).smax(Q), R.entropy(0.3).smax(Q), atol=1e-13)
  np.testing.assert_allclose(R.kl_entropy(0.3, 0.0, PI_PREV).argmax(Q), R.kl(PI_PREV, 0.3).argmax(Q), atol=1e-13)


def test_kl_to_a_reference_with_zeros_keeps_its_support_and_penalizes_leaving_it():
  reg = R.kl(REF_WITH_ZEROS, 0.1)
  pi = reg.argmax(Q)
  assert jnp.all(pi[:, REF_WITH_ZEROS == 0] == 0)
  outside = jnp.asarray([0.2, 0.2, 0.2, 0.2, 0.2])
  assert reg.omega(outside) == jnp.inf


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("tau", [1e-6, 1e-3, 1.0, 1e3])
def test_tiny_and_huge_temperatures_stay_finite(dtype, tau):
  q = (Q * 100).astype(dtype)
  for reg in (R.entropy(tau), R.kl(PI_PREV.astype(dtype), tau), R.kl_entropy(tau, tau, PI_PREV.astype(dtype))):
    for out in (reg.smax(q), reg.argmax(q), reg.omega(reg.argmax(q))):
      assert jnp.all(jnp.isfinite(out)), (reg.name, tau, dtype)
    np.testing.assert_allclose(reg.argmax(q).sum(-1), 1.0, atol=1e-5 if dtype == jnp.float32 else 1e-12)


def test_entropy_tends_to_the_hard_max_as_tau_vanishes():
  """0 <= τ lse(q/τ) − max q <= τ log A."""
  for tau in (1.0, 1e-2, 1e-4):
    gap = R.entropy(tau).smax(Q) - Q.max(-1)
    assert jnp.all(gap >= 0) and jnp.all(gap <= tau * np.log(Q.shape[-1]) + 1e-12)


def test_temperature_may_be_traced_under_vmap():
  taus = jnp.asarray([0.01, 0.1, 1.0, 10.0])
  batched = jax.vmap(lambda t: R.entropy(t).smax(Q))(taus)
  looped = jnp.stack([R.entropy(float(t)).smax(Q) for t in taus])
  np.testing.assert_allclose(batched, looped, rtol=1e-14, atol=0)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), True, "0.1", np.array([0.1, 0.2])])
def test_bad_temperatures_are_refused(bad):
  with pytest.raises(ParameterError, match="tau"):
    R.entropy(bad)


@pytest.mark.parametrize("bad", [0.0, -0.5, float("nan")])
def test_bad_kl_weights_are_refused(bad):
  with pytest.raises(ParameterError, match="lam"):
    R.kl(PI_PREV, bad)


def test_kl_entropy_needs_a_positive_total_weight():
  with pytest.raises(ParameterError, match="lam \\+ tau"):
    R.kl_entropy(0.0, 0.0, PI_PREV)
