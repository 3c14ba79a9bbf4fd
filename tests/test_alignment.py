"""Claims about the alignment closed forms on bandits (THEORY.md §7; mdptheory/alignment.py).

Every closed form is checked against an independent reference:

* the posterior π* ∝ π_ref e^{r/β} and the KL-constrained optimum against scipy's SLSQP on the simplex (CF-1);
* the exact best-of-N law with ties against brute-force enumeration of all N-tuples on tiny supports, and
  against Monte-Carlo best-of-N with a stated goodness-of-fit tolerance (CF-2, CF-3, CF-4);
* the summed-reward law of a memoryless reference against enumeration of all V^n sequences and against exact
  integer arithmetic, and the BoN-vs-KL-RL quantities against the generic bandit code on the enumerated
  sequences and against a 60-digit ``decimal`` computation (CF-6);
* the Bradley–Terry MLE against its first-order optimality condition and its consistency, the Gao fits
  against exact synthetic curves and the peak formulas against numerical maximization (CF-7).

Then every validation error, the bandit envs' conformance, and one "the check can fail" test per claim.
Runs in float64 (tests/conftest.py).
"""

from __future__ import annotations

import decimal
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize, special, stats

from mdptheory import alignment as al
from mdptheory import envs
from mdptheory.envs import bandits
from mdptheory.errors import InvalidMDPError, NonFiniteError, ParameterError, ShapeError
from mdptheory.types import Bandit

RNG_SEED = 20240117


def _kl(pi: np.ndarray, p: np.ndarray) -> float:
  on = pi > 0
  return float(np.sum(pi[on] * np.log(pi[on] / p[on])))


def _brute_bon(p: np.ndarray, r: np.ndarray, n: int) -> tuple[np.ndarray, float]:
  """π_N and the win rate by enumerating every N-tuple (and every Y' ~ π_ref), ties split uniformly."""
  M = len(p)
  law = np.zeros(M)
  for tup in itertools.product(range(M), repeat=n):
    prob = float(np.prod(p[list(tup)]))
    if prob == 0.0:
      continue
    rs = r[list(tup)]
    tied = [t for t, x in zip(tup, rs) if x == rs.max()]
    for t in tied:
      law[t] += prob / len(tied)
  win = sum(law[y] * p[z] * (1.0 if r[y] > r[z] else 0.5 if r[y] == r[z] else 0.0)
            for y in range(M) for z in range(M))
  return law, win


# -----------------------------------------------------------------------------
# Bandit: validated construction
# -----------------------------------------------------------------------------


def test_bandit_create_keeps_the_data_and_is_a_pytree():
  b = Bandit.create([0.2, 0.3, 0.5], [1.0, 0.0, 2.0], gold=[0.0, 1.0, 2.0], features=[[1.0], [2.0], [3.0]])
  assert b.num_responses == 3 and b.proxy is None and b.features.shape == (3, 1)
  assert b.reward.dtype == np.float64
  total = jax.jit(lambda bb: bb.reward @ bb.pi_ref)(b)
  np.testing.assert_allclose(total, 0.2 * 1.0 + 0.5 * 2.0, rtol=1e-15)
  assert Bandit.create([0.5, 0.5], [0, 1], dtype=np.float32).pi_ref.dtype == np.float32


@pytest.mark.parametrize("pi_ref, reward, error, match", [
    ([0.2, 0.3, 0.4], [0, 1, 2], InvalidMDPError, r"pi_ref sums to 0\.9.*divide it by its sum"),
    ([0.7, -0.2, 0.5], [0, 1, 2], InvalidMDPError, r"pi_ref\[1\] = -0\.2 is negative"),
    ([0.5, np.nan, 0.5], [0, 1, 2], NonFiniteError, r"pi_ref\[1\] = nan is not finite"),
    ([0.5, 0.5], [0.0, np.inf], NonFiniteError, r"reward\[1\] = inf is not finite.*replace NaN/inf"),
    ([0.5, 0.5], [0.0, 1.0, 2.0], ShapeError, r"reward must have shape \(2,\).*one value per response"),
    ([[0.5, 0.5]], [0.0, 1.0], ShapeError, r"pi_ref must be a non-empty vector"),
    ([], [], ShapeError, r"pi_ref must be a non-empty vector"),
])
def test_bandit_create_refuses_bad_input_with_the_value_and_the_fix(pi_ref, reward, error, match):
  with pytest.raises(error, match=match):
    Bandit.create(pi_ref, reward)


def test_bandit_create_checks_the_optional_fields():
  with pytest.raises(NonFiniteError, match=r"gold\[0\] = nan"):
    Bandit.create([0.5, 0.5], [0, 1], gold=[np.nan, 1.0])
  with pytest.raises(ShapeError, match=r"proxy must have shape \(2,\)"):
    Bandit.create([0.5, 0.5], [0, 1], proxy=[1.0])
  with pytest.raises(ShapeError, match=r"features must have shape \(M, D\) = \(2, D\)"):
    Bandit.create([0.5, 0.5], [0, 1], features=np.ones((3, 2)))
  with pytest.raises(NonFiniteError, match=r"features\[1, 0\] = inf"):
    Bandit.create([0.5, 0.5], [0, 1], features=[[0.0], [np.inf]])


# -----------------------------------------------------------------------------
# §7.1 Posterior and constrained form (CF-1)
# -----------------------------------------------------------------------------


def _slsqp_max(objective, M, constraints=(), x0=None):
  """Maximizes ``objective`` over the simplex with SLSQP (from a uniform start unless ``x0``)."""
  cons = [{"type": "eq", "fun": lambda x: np.sum(x) - 1.0}, *constraints]
  res = optimize.minimize(lambda x: -objective(x), np.full(M, 1.0 / M) if x0 is None else x0, method="SLSQP",
                          bounds=[(0.0, 1.0)] * M, constraints=cons, options={"ftol": 1e-12, "maxiter": 1000})
  assert res.success, res.message
  assert all(c["fun"](res.x) >= -1e-9 if c["type"] == "ineq" else abs(c["fun"](res.x)) < 1e-9 for c in cons)
  return res.x, -res.fun


def _objective_np(pi, p, r, beta):
  pi = np.clip(pi, 0.0, None)
  return float(pi @ r - beta * np.sum(special.xlogy(pi, pi) - special.xlogy(pi, p)))


@pytest.mark.parametrize("beta", [0.05, 0.5, 5.0])
def test_posterior_is_the_maximizer_found_by_slsqp(beta):
  rng = np.random.default_rng(RNG_SEED)
  p, r = rng.dirichlet(np.ones(6)), rng.random(6)
  post = al.posterior(p, r, beta=beta)
  x, best = _slsqp_max(lambda x: _objective_np(x, p, r, beta), 6)
  np.testing.assert_allclose(float(post.value), best, rtol=0, atol=1e-8)          # SLSQP's own accuracy
  np.testing.assert_allclose(np.asarray(post.pi), x, atol=1e-4)
  assert _objective_np(np.asarray(post.pi), p, r, beta) >= best - 1e-12


def test_posterior_matches_the_direct_formula_and_the_identity():
  rng = np.random.default_rng(1)
  p, r = rng.dirichlet(np.ones(8)), rng.normal(size=8)
  for beta in (0.1, 1.0, 10.0):
    post = al.posterior(p, r, beta=beta)
    direct = p * np.exp(r / beta)
    np.testing.assert_allclose(np.asarray(post.pi), direct / direct.sum(), rtol=1e-13)
    np.testing.assert_allclose(float(post.value), beta * np.log(np.sum(direct)), rtol=1e-13)
    pi = direct / direct.sum()
    np.testing.assert_allclose(float(post.expected_reward), pi @ r, rtol=1e-13)
    np.testing.assert_allclose(float(post.kl), _kl(pi, p), rtol=1e-12)
    assert abs(float(post.expected_reward - post.value - beta * post.kl)) < 1e-13


def test_posterior_is_stable_where_exp_r_over_beta_overflows():
  """At β = 1e-6, e^{r/β} overflows; the log-space posterior is the argmax with value max r + β log π_ref(argmax)."""
  p = np.array([0.5, 0.3, 0.2])
  r = np.array([0.2, 1.0, 0.7])
  beta = 1e-6
  with np.errstate(over="ignore"):
    assert not np.isfinite(np.exp(r / beta)).all()
  post = al.posterior(p, r, beta=beta)
  np.testing.assert_allclose(np.asarray(post.pi), [0.0, 1.0, 0.0], atol=1e-300)
  np.testing.assert_allclose(float(post.value), 1.0 + beta * np.log(0.3), rtol=1e-15)
  np.testing.assert_allclose(float(post.kl), -np.log(0.3), rtol=1e-12)


def test_posterior_keeps_the_support_of_pi_ref_and_vmaps_over_beta():
  p, r = np.array([0.0, 0.5, 0.5]), np.array([10.0, 0.0, 1.0])
  post = al.posterior(p, r, beta=0.1)
  assert float(post.pi[0]) == 0.0 and np.isneginf(float(post.log_pi[0]))
  betas = jnp.asarray([0.1, 1.0, 3.0])
  batched = jax.vmap(lambda b: al.posterior(p, r, beta=b))(betas)
  for i, b in enumerate([0.1, 1.0, 3.0]):
    np.testing.assert_allclose(batched.value[i], al.posterior(p, r, beta=b).value, rtol=1e-15)


@pytest.mark.parametrize("budget", [0.01, 0.2, 0.8])
def test_constrained_optimum_matches_slsqp(budget):
  """max E r s.t. KL <= Δ: the tilt from the root solve equals SLSQP's constrained maximizer."""
  rng = np.random.default_rng(RNG_SEED + 1)
  p, r = rng.dirichlet(np.ones(6)), rng.random(6)
  opt = al.constrained_optimum(p, r, kl_budget=budget)
  assert budget < opt.kl_max
  np.testing.assert_allclose(opt.kl, budget, rtol=1e-10)
  kl_con = {"type": "ineq", "fun": lambda x: budget - _kl(np.clip(x, 1e-300, None), p)}
  x, best = _slsqp_max(lambda x: x @ r, 6, [kl_con], x0=p.copy())
  np.testing.assert_allclose(opt.expected_reward, best, atol=1e-7)
  # The multiplier is the posterior's 1/β: π*_{1/λ} has the same law.
  np.testing.assert_allclose(np.exp(opt.log_pi), np.asarray(al.posterior(p, r, beta=1 / opt.lam).pi), atol=1e-12)


def test_constrained_optimum_edge_budgets():
  p, r = np.array([0.25, 0.25, 0.5]), np.array([1.0, 1.0, 0.0])
  zero = al.constrained_optimum(p, r, kl_budget=0.0)
  assert zero.lam == 0.0 and np.allclose(np.exp(zero.log_pi), p, atol=1e-15)
  top = al.constrained_optimum(p, r, kl_budget=5.0)
  assert math.isinf(top.lam) and top.expected_reward == 1.0
  np.testing.assert_allclose(np.exp(top.log_pi), [0.5, 0.5, 0.0], atol=1e-15)
  np.testing.assert_allclose(top.kl, np.log(2.0), rtol=1e-15)
  flat = al.constrained_optimum(p, np.ones(3), kl_budget=0.3)
  assert flat.lam == 0.0 and flat.kl == 0.0


@pytest.mark.parametrize("call, match", [
    (lambda: al.posterior([0.5, 0.5], [0, 1], beta=0.0), r"beta=0.0 must be > 0"),
    (lambda: al.posterior([0.5, 0.5], [0, 1], beta=-1.0), r"beta=-1.0 must be > 0"),
    (lambda: al.posterior([0.5, 0.5], [0, 1], beta=float("nan")), r"beta is NaN"),
    (lambda: al.posterior([0.5, 0.5], [0, 1], beta="0.1"), r"beta='0.1' is a string"),
    (lambda: al.tilt([0.5, 0.5], [0, 1], lam=-0.1), r"lam=-0.1 must be >= 0"),
    (lambda: al.constrained_optimum([0.5, 0.5], [0, 1], kl_budget=-0.1), r"kl_budget=-0.1 must be >= 0"),
    (lambda: al.reward_kl_frontier([0.5, 0.5], [0, 1], [0.0, -1.0]), r"lams contains -1 < 0"),
    (lambda: al.bon_law([0.5, 0.5], [0, 1], num_samples=0), r"num_samples N=0.0 must be a finite number >= 1"),
    (lambda: al.bon_law([0.5, 0.5], [0, 1], num_samples=0.5), r"N=0.5 must be a finite number >= 1"),
    (lambda: al.bon_law([0.5, 0.5], [0, 1], num_samples=float("inf")), r"N=inf must be a finite number >= 1"),
    (lambda: al.bon_laws([0.5, 0.5], [0, 1], [1.0, 0.0]), r"N=0.0 must be a finite number >= 1"),
    (lambda: al.bon_monte_carlo(0, [0.5, 0.5], [0, 1], num_samples=0, num_draws=10), r"num_samples N=0 must be"),
    (lambda: al.bon_monte_carlo(0, [0.5, 0.5], [0, 1], num_samples=2, num_draws=0), r"num_draws=0 must be"),
    (lambda: al.token_sum_log_pmf([0.5, 0.5], [0.0, 1.5], length=4), r"token_levels must be integers"),
    (lambda: al.token_sum_log_pmf([0.5, 0.5], [0, 1], length=0), r"length n=0 must be an integer >= 1"),
    (lambda: al.bon_vs_kl_rl([0.5, 0.5], [0, 1], length=4, kl_per_token=0.0), r"kl_per_token=0.0 must be > 0"),
    (lambda: al.bon_vs_kl_rl([0.5, 0.5], [0, 1], length=4, kl_per_token=1.0), r"kl_per_token=1.0 >= KL_max"),
    (lambda: al.fit_gao([1.0, 2.0], [1.0, 2.0], form="cubic"), r"form='cubic' must be 'bon'"),
    (lambda: al.fit_gao([0.0, 1.0], [0.0, 1.0], form="bon"), r"at least 2 points with d > 0"),
    (lambda: al.sample_preferences(0, [0.5, 0.5], [0, 1], num_pairs=0), r"num_pairs=0 must be"),
])
def test_bad_parameters_raise_parameter_errors_naming_the_value(call, match):
  with pytest.raises(ParameterError, match=match):
    call()


@pytest.mark.parametrize("call, error, match", [
    (lambda: al.posterior([0.5, 0.6], [0, 1], beta=1.0), InvalidMDPError, r"pi_ref sums to 1\.1"),
    (lambda: al.posterior([0.5, 0.5], [0, np.nan], beta=1.0), NonFiniteError, r"reward\[1\] = nan"),
    (lambda: al.posterior([0.5, 0.5], [0, 1, 2], beta=1.0), ShapeError, r"reward has shape \(3,\) but pi_ref"),
    (lambda: al.bon_law([[0.5, 0.5]], [0, 1], num_samples=2), ShapeError, r"pi_ref must be a non-empty vector"),
    (lambda: al.bon_law([1.2, -0.2], [0, 1], num_samples=2), InvalidMDPError, r"pi_ref\[1\] = -0\.2 is negative"),
    (lambda: al.token_sum_log_pmf([0.5, 0.5], [0, 1, 2], length=3), ShapeError, r"token_levels has shape"),
    (lambda: al.overoptimization_curves([0.5, 0.5], [0, 1], [0, np.inf], num_samples=[1], lams=[0.0]),
     NonFiniteError, r"gold\[1\] = inf"),
    (lambda: al.bradley_terry_mle(np.ones((3, 2)), [0, 5], [1, 2], [True, False]), ShapeError,
     r"first must hold response indices in \[0, 3\)"),
])
def test_bad_arrays_raise_errors_naming_the_offending_entry(call, error, match):
  with pytest.raises(error, match=match):
    call()


# -----------------------------------------------------------------------------
# §7.2 The exact best-of-N law (CF-2, CF-3, CF-4)
# -----------------------------------------------------------------------------


@pytest.mark.parametrize("p, r", [
    ([0.1, 0.2, 0.3, 0.4], [0.0, 1.0, 2.0, 3.0]),          # distinct
    ([0.1, 0.2, 0.3, 0.4], [1.0, 0.0, 1.0, 0.0]),          # two tie groups
    ([0.25, 0.0, 0.35, 0.4], [2.0, 5.0, 2.0, 1.0]),        # a tie at the top and a zero-mass response
    ([0.5, 0.3, 0.2], [1.0, 1.0, 1.0]),                    # all tied: π_N = π_ref
])
@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_bon_law_equals_brute_force_enumeration_of_n_tuples(p, r, n):
  p, r = np.asarray(p), np.asarray(r)
  law = al.bon_law(p, r, num_samples=n)
  ref, win = _brute_bon(p, r, n)
  np.testing.assert_allclose(np.asarray(law.pi), ref, rtol=1e-13, atol=1e-15)
  np.testing.assert_allclose(float(law.win_rate), win, rtol=1e-13)
  np.testing.assert_allclose(float(law.expected_reward), ref @ r, rtol=1e-13)
  np.testing.assert_allclose(float(law.kl), _kl(ref, p), rtol=1e-11, atol=1e-15)


def test_bon_kl_and_win_rate_obey_their_bounds_and_n_1_is_pi_ref():
  rng = np.random.default_rng(RNG_SEED + 2)
  for trial in range(12):
    M = int(rng.integers(2, 40))
    p = rng.dirichlet(np.ones(M))
    r = rng.integers(0, int(rng.integers(2, 6)), M).astype(float)    # ties
    ns = np.array([1.0, 2.0, 3.0, 7.0, 50.0, 1e3, 1e6])
    laws = al.bon_laws(p, r, ns)
    np.testing.assert_allclose(np.asarray(laws.pi[0]), p, rtol=1e-13)
    kl = np.asarray(laws.kl)
    assert (kl[1:] < np.asarray(al.bon_kl_bound(ns[1:])) - 1e-12).all()
    assert (kl <= np.log(ns) + 1e-13).all()
    assert (np.asarray(laws.win_rate) <= ns / (ns + 1) + 1e-14).all()
    np.testing.assert_allclose(np.asarray(laws.pi).sum(-1), 1.0, rtol=1e-13)


def test_bon_kl_gap_closes_as_in_the_theory_note():
  """THEORY.md §7.2 [N]: for a uniform reference on M distinct outcomes the gap log N − (N−1)/N − KL is
  1.3e-2, 2.1e-4, 3.6e-8 at N = 2 and M = 5, 50, 5000, and 1.57 at N = 64, M = 5."""
  gaps = {M: float(al.bon_kl_bound(2.0) - al.bon_law(np.full(M, 1 / M), np.arange(M), num_samples=2).kl)
          for M in (5, 50, 5000)}
  np.testing.assert_allclose([gaps[5], gaps[50], gaps[5000]], [1.3e-2, 2.1e-4, 3.6e-8], rtol=0.05)
  gap64 = float(al.bon_kl_bound(64.0) - al.bon_law(np.full(5, 0.2), np.arange(5), num_samples=64).kl)
  np.testing.assert_allclose(gap64, 1.57, atol=0.005)


def test_bon_law_matches_monte_carlo_best_of_n_with_ties():
  """Pearson chi-square goodness of fit of 40,000 simulated best-of-N draws (p > 1e-4 at every N) and a
  sup-norm error below 5 standard errors."""
  b = bandits.tied_bandit(3, num_responses=12, pattern="levels", num_levels=3)
  p, r = np.asarray(b.pi_ref), np.asarray(b.reward)
  ns = [1, 2, 5, 16]
  draws = 40_000
  freq = al.bon_monte_carlo(np.random.default_rng(5), p, r, num_samples=ns, num_draws=draws)
  for k, n in enumerate(ns):
    pi = np.asarray(al.bon_law(p, r, num_samples=n).pi)
    assert np.max(np.abs(freq[k] - pi) / np.sqrt(pi * (1 - pi) / draws + 1e-300)) < 5.0
    keep = pi * draws >= 5
    observed = freq[k][keep] * draws
    expected = pi[keep] * draws
    expected *= observed.sum() / expected.sum()
    assert stats.chisquare(observed, expected).pvalue > 1e-4


def test_a_law_that_ignores_ties_fails_the_monte_carlo_check():
  """The CF-3 check has power: breaking ties by index instead of uniformly is rejected by the DKW test."""
  from mdptheory.studies.cf_bon import dkw_epsilon
  p = np.array([0.3, 0.2, 0.3, 0.2])
  r = np.array([0.0, 1.0, 1.0, 1.0])
  n, draws = 4, 20_000
  freq = al.bon_monte_carlo(np.random.default_rng(0), p, r, num_samples=n, num_draws=draws)
  exact = np.asarray(al.bon_law(p, r, num_samples=n).pi)
  naive = np.asarray(al.bon_law(p, r + 1e-9 * np.arange(4), num_samples=n).pi)   # ties broken by index
  ks = lambda q: np.max(np.abs(np.cumsum(freq) - np.cumsum(q)))
  assert ks(exact) < dkw_epsilon(draws) < ks(naive)


def test_bon_law_is_stable_for_huge_n_against_a_decimal_reference():
  """N = 10^12 on 2000 outcomes: F^N − F⁻^N computed with 60 significant digits (F = k/M is exact)."""
  M = 2000
  p, r = np.full(M, 1.0 / M), np.arange(M, dtype=float)
  n = 10**12
  law = al.bon_law(p, r, num_samples=float(n))
  D = decimal.Decimal
  with decimal.localcontext() as ctx:
    ctx.prec, ctx.Emin = 60, -10**15          # masses down to e^(-10^12) stay representable
    for k in (M - 1, M - 2, M - 10, M // 2):
      F, Fm = D(k + 1) / D(M), D(k) / D(M)
      ref = float((F ** n - Fm ** n).ln())
      np.testing.assert_allclose(float(law.log_pi[k]), ref, rtol=1e-12, atol=1e-15)
  np.testing.assert_allclose(float(np.exp(np.asarray(law.log_pi)).sum()), 1.0, rtol=1e-12)


def test_bon_laws_equal_single_calls_and_a_vmap_over_n():
  b = bandits.tied_bandit(1, num_responses=13, pattern="pairs")
  p, r = b.pi_ref, b.reward
  ns = [1.0, 2.0, 4.5, 30.0]
  batched = al.bon_laws(p, r, ns)
  vmapped = jax.vmap(lambda n: al.bon_law(p, r, num_samples=n))(jnp.asarray(ns))
  for i, n in enumerate(ns):
    single = al.bon_law(p, r, num_samples=n)
    for a, b_ in ((batched, single), (vmapped, single)):
      np.testing.assert_allclose(np.asarray(a.log_pi[i]), np.asarray(b_.log_pi), rtol=1e-13)
      np.testing.assert_allclose(float(a.kl[i]), float(b_.kl), rtol=1e-12, atol=1e-16)


# -----------------------------------------------------------------------------
# §7.3 BoN against KL-RL on memoryless sequences (CF-6)
# -----------------------------------------------------------------------------


def test_token_sum_law_equals_enumeration_of_all_sequences():
  for n in (1, 3, 6):
    seq = envs.make("bandit_sequences", length=n)
    p, reward = np.asarray(seq.pi_ref), np.asarray(seq.reward).astype(int)
    ref = np.bincount(reward, weights=p, minlength=2 * n + 1)
    log_pmf = al.token_sum_log_pmf(bandits.TOKEN_PROBS, bandits.TOKEN_LEVELS, length=n)
    np.testing.assert_allclose(np.exp(log_pmf), ref, rtol=1e-13)


def test_token_sum_law_equals_exact_integer_arithmetic_in_the_far_tails():
  """p = (5, 3, 2)/10: every probability of the sum is an exact rational; n = 300 reaches 0.2^300 ≈ 1e-210."""
  n = 300
  counts = [1]                                     # the coefficients of (5 + 3x + 2x²)^n, exact integers
  for _ in range(n):
    new = [0] * (len(counts) + 2)
    for k, c in enumerate(counts):
      new[k] += 5 * c
      new[k + 1] += 3 * c
      new[k + 2] += 2 * c
    counts = new
  log_ref = np.array([math.log(c) - n * math.log(10) for c in counts])
  log_pmf = al.token_sum_log_pmf(bandits.TOKEN_PROBS, bandits.TOKEN_LEVELS, length=n)
  np.testing.assert_allclose(log_pmf, log_ref, rtol=1e-13)


def test_bon_vs_kl_rl_equals_the_generic_code_on_enumerated_sequences():
  n, delta = 6, 0.05
  seq = bandits.sequence_bandit(n)
  p, R = np.asarray(seq.pi_ref), np.asarray(seq.reward)
  res = al.bon_vs_kl_rl(bandits.TOKEN_PROBS, bandits.TOKEN_LEVELS, length=n, kl_per_token=delta)
  law = al.bon_law(p, R, num_samples=math.exp(n * delta))
  np.testing.assert_allclose(res.reward_bon, float(law.expected_reward) / n, rtol=1e-12)
  np.testing.assert_allclose(res.kl_bon, float(law.kl) / n, rtol=1e-11)
  # The KL-constrained optimum over sequences at budget nΔ is the product of the per-token tilts.
  opt = al.constrained_optimum(p, R, kl_budget=n * delta)
  np.testing.assert_allclose(res.reward_tilted, opt.expected_reward / n, rtol=1e-10)
  np.testing.assert_allclose(res.lam, opt.lam, rtol=1e-9)
  tilt = np.exp(opt.log_pi)
  pi_n = np.exp(np.asarray(law.log_pi))
  np.testing.assert_allclose(res.kl_bon_tilted, _kl(pi_n, tilt) / n, rtol=1e-10)


def test_bon_on_long_sequences_matches_an_exact_high_precision_reference():
  """n = 256, Δ = 0.2 (N = e^51.2): group masses F^N − F⁻^N from exact integers and 400-digit decimals.

  F = (partial sum of integer counts) / 10^256 has at most 256 digits, so it is exact at 400 digits and so is
  log F even where 1 − F ≈ 1e-179 (a 60-digit reference already loses the far tail there).
  """
  n, delta = 256, 0.2
  D = decimal.Decimal
  counts = [1]
  for _ in range(n):
    new = [0] * (len(counts) + 2)
    for k, c in enumerate(counts):
      new[k] += 5 * c
      new[k + 1] += 3 * c
      new[k + 2] += 2 * c
    counts = new
  cdf = list(itertools.accumulate(counts))
  log_q_ref = []
  with decimal.localcontext() as ctx:
    ctx.prec = 400
    total = D(10) ** n
    N = (D(n) * D(str(delta))).exp()
    power = lambda c: (N * (D(c) / total).ln()).exp() if c else D(0)
    for k in range(len(counts)):
      q = power(cdf[k]) - power(cdf[k - 1] if k else 0)
      log_q_ref.append(float(q.ln()) if q > 0 else -np.inf)
  log_q_ref = np.array(log_q_ref)
  log_pmf = al.token_sum_log_pmf(bandits.TOKEN_PROBS, bandits.TOKEN_LEVELS, length=n)
  _, a, b = al._cdf_from_log_mass(log_pmf)
  log_q = np.asarray(al.bon_group_log_mass(a, b, n * delta))
  big = log_q_ref > -700                     # where the mass is representable as a float
  np.testing.assert_allclose(log_q[big], log_q_ref[big], rtol=1e-11)
  assert big.sum() > 100 and (log_q[~big] < -690).all()
  # The naive power F**N in float64 loses the top of the distribution entirely.
  F = np.exp(np.logaddexp.accumulate(log_pmf))
  with np.errstate(invalid="ignore"):
    naive = np.diff(np.concatenate([[0.0], F ** math.exp(n * delta)]))
  top = np.argmax(log_q_ref)
  assert abs(np.log(max(naive[top], 1e-300)) - log_q_ref[top]) > 1.0


def test_theory_note_values_of_bon_against_kl_rl():
  """THEORY.md §7.3 [N]: per-token BoN reward 0.825, 0.894, 0.932, 0.946, 0.951 for n = 16..4096 against the
  tilt's 0.953 (p = (0.5, 0.3, 0.2), levels 0, 1, 2, Δ = 0.05); per-token KL(BoN ‖ p) → Δ."""
  expected = {16: 0.825, 64: 0.894, 256: 0.932, 1024: 0.946, 4096: 0.951}
  for n, value in expected.items():
    res = al.bon_vs_kl_rl(bandits.TOKEN_PROBS, bandits.TOKEN_LEVELS, length=n, kl_per_token=0.05)
    assert abs(res.reward_bon - value) < 5e-4, (n, res.reward_bon)
    assert abs(res.reward_tilted - 0.953) < 5e-4
    assert res.kl_bon < res.kl_bound < 0.05
  assert 0.05 - res.kl_bon < 3e-4


# -----------------------------------------------------------------------------
# §7.4 Over-optimization (CF-7)
# -----------------------------------------------------------------------------


def test_bradley_terry_mle_is_a_stationary_point_and_consistent():
  rng = np.random.default_rng(RNG_SEED + 3)
  M, D = 500, 3
  x = rng.normal(size=(M, D))
  theta = np.array([1.0, -0.5, 0.25])
  gold = x @ theta
  first, second, wins = al.sample_preferences(rng, np.full(M, 1 / M), gold, num_pairs=20_000)
  w = al.bradley_terry_mle(x, first, second, wins, l2=0.0)
  z = np.where(wins, 1.0, -1.0)[:, None] * (x[first] - x[second])
  loss = lambda v: np.sum(np.logaddexp(0.0, -z @ v))
  grad_fd = np.array([(loss(w + h) - loss(w - h)) / 2e-6 for h in 1e-6 * np.eye(D)])
  assert np.max(np.abs(grad_fd)) < 1e-3 * len(z) ** 0.5           # first-order optimality (finite differences)
  # Consistency of a well-specified model: 20,000 pairs give standard errors ~0.01.
  np.testing.assert_allclose(w, theta, atol=0.05)


def test_sample_preferences_follow_pi_ref_and_the_bradley_terry_labels():
  p = np.array([0.1, 0.2, 0.3, 0.4])
  gold = np.array([0.0, 0.0, 1.0, -1.0])
  first, second, wins = al.sample_preferences(np.random.default_rng(2), p, gold, num_pairs=40_000)
  counts = np.bincount(np.concatenate([first, second]), minlength=4)
  assert stats.chisquare(counts, p * counts.sum()).pvalue > 1e-4
  same = (gold[first] == gold[second])
  assert abs(wins[same].mean() - 0.5) < 5 * 0.5 / math.sqrt(same.sum())
  pair = (first == 2) & (second == 3)
  expected = special.expit(2.0)
  assert abs(wins[pair].mean() - expected) < 5 * math.sqrt(expected * (1 - expected) / pair.sum())


@pytest.mark.parametrize("form", ["bon", "rl"])
def test_gao_fit_recovers_exact_curves_and_its_peak_is_the_numerical_maximum(form):
  d = np.linspace(0.05, 3.0, 40)
  alpha, beta = 2.0, 0.7
  gain = alpha * d - beta * (d * d if form == "bon" else d * np.log(d))
  fit = al.fit_gao(d, gain, form=form)
  np.testing.assert_allclose([fit.alpha, fit.beta, fit.r2], [alpha, beta, 1.0], rtol=1e-12)
  curve = (lambda t: alpha * t - beta * t * t) if form == "bon" else (lambda t: alpha * t - beta * t * np.log(t))
  res = optimize.minimize_scalar(lambda t: -curve(t), bounds=(1e-9, 100.0), method="bounded",
                                 options={"xatol": 1e-12})
  np.testing.assert_allclose(fit.peak_d, res.x, rtol=1e-7)
  np.testing.assert_allclose(fit.peak_gain, curve(res.x), rtol=1e-12)
  assert al.gao_peak(1.0, -0.1, form=form) == (math.inf, math.inf)


def test_overoptimization_curves_equal_bon_and_posterior_under_the_proxy():
  b = bandits.overoptimization_bandit(0, num_responses=64, num_features=3)
  rng = np.random.default_rng(4)
  proxy = np.asarray(b.features) @ np.array([1.0, 0.5, 0.2]) + 0.1 * rng.normal(size=64)
  p, gold = np.asarray(b.pi_ref), np.asarray(b.gold)
  ns, lams = np.array([1.0, 3.0, 20.0]), np.array([0.0, 0.5, 4.0])
  c = al.overoptimization_curves(p, proxy, gold, num_samples=ns, lams=lams)
  for i, n in enumerate(ns):
    pi = np.asarray(al.bon_law(p, proxy, num_samples=n).pi)
    np.testing.assert_allclose(float(c.bon_gold[i]), pi @ gold - p @ gold, atol=1e-13)
    np.testing.assert_allclose(float(c.bon_d[i]) ** 2, _kl(pi, p), rtol=1e-10, atol=1e-15)
  for i, lam in enumerate(lams[1:], 1):
    pi = np.asarray(al.posterior(p, proxy, beta=1.0 / lam).pi)
    np.testing.assert_allclose(float(c.rl_gold[i]), pi @ gold - p @ gold, atol=1e-13)
    np.testing.assert_allclose(float(c.rl_proxy[i]), pi @ proxy - p @ proxy, atol=1e-13)
  assert float(c.rl_d[0]) == 0.0 and float(c.bon_d[0]) < 1e-7   # sqrt of a rounding-level KL at N = 1


# -----------------------------------------------------------------------------
# The bandit envs
# -----------------------------------------------------------------------------


BANDIT_ENVS = [n for n in envs.registered() if n.startswith("bandit_")]


@pytest.mark.parametrize("name", BANDIT_ENVS)
def test_bandit_envs_are_valid_pure_and_follow_dtype(name):
  b = envs.make(name)
  assert isinstance(b, Bandit)
  p = np.asarray(b.pi_ref)
  assert (p >= 0).all() and abs(p.sum() - 1.0) < 1e-12 and b.pi_ref.dtype == np.float64
  assert np.isfinite(np.asarray(b.reward)).all()
  again = envs.make(name)
  assert all(np.array_equal(np.asarray(u), np.asarray(v))
             for u, v in zip(jax.tree_util.tree_leaves(b), jax.tree_util.tree_leaves(again)))
  f32 = envs.make(name, dtype=np.float32)
  assert all(leaf.dtype == np.float32 for leaf in jax.tree_util.tree_leaves(f32))


@pytest.mark.parametrize("name", [n for n in BANDIT_ENVS if n in ("bandit_ties", "bandit_random",
                                                                    "bandit_overoptimization")])
def test_seeded_bandits_are_reproducible(name):
  a = envs.make(name, key=7)
  for same in (jax.random.key(7), jax.random.PRNGKey(7)):
    assert np.array_equal(np.asarray(envs.make(name, key=same).pi_ref), np.asarray(a.pi_ref))
    assert np.array_equal(np.asarray(envs.make(name, key=same).reward), np.asarray(a.reward))
  other = envs.make(name, key=8)
  assert not (np.array_equal(np.asarray(other.pi_ref), np.asarray(a.pi_ref))
              and np.array_equal(np.asarray(other.reward), np.asarray(a.reward)))


def test_tie_patterns_and_env_errors():
  assert list(bandits.tie_rewards(6, "pairs")) == [0, 0, 1, 1, 2, 2]
  assert list(bandits.tie_rewards(8, "top_tie")) == [0, 1, 2, 3, 4, 5, 6, 6]
  assert len(set(bandits.tie_rewards(12, "levels", 3))) == 3
  with pytest.raises(ParameterError, match="pattern='blocks' is not a tie pattern"):
    bandits.tie_rewards(6, "blocks")
  with pytest.raises(ParameterError, match="over the enumeration limit"):
    bandits.sequence_bandit(20)
  with pytest.raises(ParameterError, match="num_levels=1 makes every reward equal"):
    bandits.random_bandit(0, 5, num_levels=1)


def test_overoptimization_gold_is_the_documented_formula():
  b = bandits.overoptimization_bandit(3, num_responses=100, num_features=4, lure=2.0, goodhart=0.5)
  x = np.asarray(b.features)
  np.testing.assert_allclose(np.asarray(b.gold), x[:, 0] + 2.0 * x[:, 1] - 0.5 * x[:, 1] ** 2, rtol=1e-15)
  np.testing.assert_array_equal(np.asarray(b.reward), np.asarray(b.gold))


# -----------------------------------------------------------------------------
# The studies' checks can fail (one corruption per claim)
# -----------------------------------------------------------------------------


def _frame(name, tmp_path_factory):
  from test_studies import quick_frame   # shares the session's quick sweeps with tests/test_studies.py
  return quick_frame(name, tmp_path_factory).reset_index(drop=True)


def _result(study, df, claim):
  return next(r for r in study.check(df) if r.id == claim)


def test_cf1_and_cf5_checks_fail_on_corrupted_frames(tmp_path_factory):
  from mdptheory.studies import cf_posterior as study
  df = _frame("cf_posterior", tmp_path_factory)
  assert _result(study, df, "CF-1").passed and _result(study, df, "CF-5").passed
  tilted = df.index[df["policy"] == "tilted"]
  for col, value in (("identity_residual", 1e-9), ("random_gap", 1e-6), ("lam_error", 1e-6)):
    bad = df.copy()
    bad.loc[tilted[3], col] = value
    assert not _result(study, bad, "CF-1").passed, col
  bad = df.copy()
  i = df.index[(df["policy"] == "bon") & (df["num_samples"] == 4)][0]
  bad.loc[i, "expected_reward"] = bad.loc[i, "bound_expected_reward"] + 1e-6
  assert not _result(study, bad, "CF-5").passed


def test_cf2_cf3_cf4_checks_fail_on_corrupted_frames(tmp_path_factory):
  from mdptheory.studies import cf_bon as study
  df = _frame("cf_bon", tmp_path_factory)
  assert all(r.passed for r in study.check(df))
  i = df.index[(df["pattern"] == "levels") & (df["num_samples"] == 8)][0]
  bad = df.copy()
  bad.loc[i, "kl"] = bad.loc[i, "bound_kl"]               # equality is not a strict bound
  assert not _result(study, bad, "CF-2").passed
  bad = df.copy()                                         # the gap grows with M for distinct rewards
  j = df.index[(df["pattern"] == "distinct") & (df["num_responses"] == df["num_responses"].max())
               & (df["num_samples"] == 2)][0]
  bad.loc[j, "kl"] = 0.0
  assert not _result(study, bad, "CF-2").passed
  bad = df.copy()
  bad.loc[i, "mc_ks"] = 1.5 * bad.loc[i, "dkw_epsilon"]
  assert not _result(study, bad, "CF-3").passed
  bad = df.copy()
  bad.loc[i, "win_rate"] = bad.loc[i, "bound_win_rate"] + 1e-9
  assert not _result(study, bad, "CF-4").passed


def test_cf6_check_fails_when_a_gap_stops_shrinking(tmp_path_factory):
  from mdptheory.studies import cf_asymptotics as study
  df = _frame("cf_asymptotics", tmp_path_factory)
  assert study.check(df)[0].passed
  for col in ("reward_gap", "kl_gap", "kl_bon_tilted"):
    bad = df.copy()
    last = bad.index[(bad["length"] == bad["length"].max()) & (bad["kl_per_token"] == 0.05)][0]
    prev = bad.index[(bad["length"] == sorted(bad["length"].unique())[-2]) & (bad["kl_per_token"] == 0.05)][0]
    bad.loc[last, col] = bad.loc[prev, col] * 1.01
    assert not study.check(bad)[0].passed, col
  bad = df.copy()
  bad.loc[0, "reward_bon"] = bad.loc[0, "bound_reward_bon"] + 1e-6
  assert not study.check(bad)[0].passed


def test_cf7_check_fails_without_over_optimization_or_with_a_bad_fit(tmp_path_factory):
  from mdptheory.studies import cf_overopt as study
  df = _frame("cf_overopt", tmp_path_factory)
  assert study.check(df)[0].passed
  bad = df.copy()
  bad["r2"] = 0.5
  assert not study.check(bad)[0].passed
  bad = df.copy()
  bad["gain_end"] = bad["gain_half"] + 0.1                # the gold reward keeps rising
  assert not study.check(bad)[0].passed
  bad = df.copy()
  bad.loc[bad["method"] == "bon", "peak_d_numeric"] *= 1.01   # a peak formula off by 1%
  assert not study.check(bad)[0].passed
