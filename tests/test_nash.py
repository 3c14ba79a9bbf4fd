"""Nash Mirror-Prox and its baselines (THEORY.md §5): closed forms, fixed points, rates, query counts, bad input.

References are independent of the code under test: π*_β is certified by its fixed-point residual (recomputed
here in numpy), the proximal steps are checked against scipy's SLSQP, query counts against a run-time callback
in the oracle, and the rate claims against their closed-form bounds.
"""

import dataclasses
import importlib
import math

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize
from scipy.stats import binomtest

from mdptheory import games
from mdptheory.algorithms import nash as N
from mdptheory.envs.preference import random_intransitive, rock_paper_scissors
from mdptheory.errors import ParameterError, ShapeError, SupportMismatchError
from mdptheory.plotting import fit_rate
from mdptheory.types import PreferenceGame

K = 60  # iterations shared by most tests (one compiled program per algorithm)
MD_GRID = (0.01, 0.03, 0.1, 0.3)  # Nash-MD's eta*beta in the tests that vmap over it


def _game(seed: int = 0, n: int = 5, contexts: int = 2) -> PreferenceGame:
  return random_intransitive(seed, n, contexts=contexts, ref_sigma=1.0)


def _equilibrium(game: PreferenceGame, beta: float) -> games.Equilibrium:
  """π*_β, with its §5.1 fixed-point residual recomputed in numpy (independently of games.py)."""
  eq = games.solve_nash_equilibrium(game, beta=beta)
  P, ref, log_pi = (np.asarray(a, np.float64) for a in (game.P, game.pi_ref, eq.log_pi))
  z = np.log(ref) + np.einsum("xij,xj->xi", P, np.exp(log_pi)) / beta
  log_br = z - np.logaddexp.reduce(z, axis=-1, keepdims=True)
  assert np.max(np.abs(log_pi - log_br)) <= 1e-12
  return eq


# ----------------------------------------------------------------------------- NP-2: closed forms


def _slsqp_prox(P, rho, ref, beta, eta, anchor, opp):
  """argmin_π P(opp ≻ π) + β KL_ρ(π‖π_ref) + (β/η) KL_ρ(π‖anchor) by SLSQP, objective from the definition."""
  X, n = ref.shape

  def kl(a, b):
    return np.sum(rho * np.sum(a * (np.log(a) - np.log(b)), -1))

  def fun(z):
    pi = z.reshape(X, n)
    return np.einsum("x,xi,xij,xj->", rho, opp, P, pi) + beta * kl(pi, ref) + beta / eta * kl(pi, anchor)

  def grad(z):
    pi = z.reshape(X, n)
    g = np.einsum("x,xi,xij->xj", rho, opp, P)
    return (g + rho[:, None] * (beta * (np.log(pi) - np.log(ref) + 1) + beta / eta * (np.log(pi) - np.log(anchor) + 1))
            ).ravel()

  cons = [{"type": "eq", "fun": (lambda z, x=x: z.reshape(X, n)[x].sum() - 1.0),
           "jac": (lambda z, x=x: np.repeat(np.eye(X)[x], n))} for x in range(X)]
  res = minimize(fun, anchor.ravel(), jac=grad, method="SLSQP", bounds=[(1e-300, 1.0)] * (X * n),
                 constraints=cons, options=dict(ftol=1e-16, maxiter=1000))
  return res.x.reshape(X, n), fun, grad


@pytest.mark.parametrize("beta", [0.05, 0.5])
def test_np2_both_proximal_steps_solve_their_argmins(beta):
  """NP-2: the half and the full step of Nash-MP are the argmins of §5.2 (THEORY.md §5.7).

  Tolerances: objective(closed form) <= objective(SLSQP) + 1e-12 and the stationarity residual of the closed
  form (spread of the gradient over y, computed from the definition) <= 1e-12; the policies themselves agree
  only to 1e-7, the accuracy a generic optimiser reaches on a flat quadratic bottom (~sqrt(eps)).
  """
  game = _game(1)
  eta = 2 * beta
  res = N.nash_mp(game, beta=beta, num_iters=K, record_iterates=True)
  P, rho, ref = (np.asarray(a, np.float64) for a in (game.P, game.rho, game.pi_ref))
  log_pi, log_half = np.asarray(res.trace.log_pi), np.asarray(res.trace.log_pi_half)
  for k in (0, 3):
    anchor = np.exp(log_pi[k])
    for closed, opp in ((np.exp(log_half[k + 1]), anchor), (np.exp(log_pi[k + 1]), np.exp(log_half[k + 1]))):
      opt, fun, grad = _slsqp_prox(P, rho, ref, beta, eta, anchor, opp)
      assert fun(closed.ravel()) <= fun(opt.ravel()) + 1e-12
      g = grad(closed.ravel()).reshape(ref.shape) / rho[:, None]
      assert np.max(g.max(-1) - g.min(-1)) <= 1e-12
      np.testing.assert_allclose(closed, opt, atol=1e-7, rtol=0)
  # The traced diagnostics are those of the recorded iterates (games.py's functions, independently written).
  pis = np.exp(log_pi)
  for k in (0, 7, K):
    np.testing.assert_allclose(res.trace.gap[k], games.exploitability(game, jnp.asarray(pis[k]), beta=beta),
                               rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(res.trace.win_rate[k], games.win_rate(game, jnp.asarray(pis[k])), rtol=1e-12)
    np.testing.assert_allclose(res.trace.kl_ref[k], games.kl(game, jnp.asarray(pis[k]), game.pi_ref),
                               rtol=1e-10, atol=1e-15)
  assert np.isnan(res.trace.kl_half[0]) and np.isnan(res.trace.log_pi_half[0]).all()


# ----------------------------------------------------------------------------- fixed points

_REGULARIZED = {
    "nash_mp": lambda g, b, **kw: N.nash_mp(g, beta=b, **kw),
    "nash_mp_approx (exact preferences)": lambda g, b, **kw: N.nash_mp_approx(g, beta=b, num_samples=0, **kw),
    "regularized_omd": lambda g, b, **kw: N.regularized_omd(g, beta=b, eta=0.5 / b, **kw),
    "mmd": lambda g, b, **kw: N.mmd(g, beta=b, eta=4 * b, **kw),
    "extragradient": lambda g, b, **kw: N.extragradient(g, beta=b, eta=0.1, **kw),
    "proximal_point": lambda g, b, **kw: N.proximal_point(g, beta=b, **kw),
}


@pytest.mark.parametrize("name", sorted(_REGULARIZED))
def test_the_equilibrium_is_a_fixed_point_of_every_regularized_method(name):
  """Started at π*_β, every regularized method stays there (span of log-ratios <= 1e-10 at every iteration)."""
  beta = 0.2
  game = _game(2)
  eq = _equilibrium(game, beta)
  res = _REGULARIZED[name](game, beta, num_iters=K, reference=eq, pi0=eq.pi)
  assert np.max(res.trace.span) <= 1e-10
  assert np.max(np.abs(res.trace.gap)) <= 1e-13
  # ... and from π_ref they move towards it: the check is not vacuous.
  away = _REGULARIZED[name](game, beta, num_iters=K, reference=eq)
  assert away.trace.kl[0] > 1e-3 and away.trace.kl[-1] < 1e-2 * away.trace.kl[0]


def test_nash_md_fixed_point_is_biased_by_order_eta_squared():
  """Nash-MD with a constant η stops at a point π̃_η ≠ π*_β; KL(π*‖π̃_η) <= 2η/β and vanishes faster than η."""
  beta, game = 0.2, _game(2)
  eq = _equilibrium(game, beta)
  ebs = jnp.asarray(MD_GRID)
  res = jax.vmap(lambda e: N.nash_md(game, beta=beta, eta=e, num_iters=3000, reference=eq, pi0=eq.pi))(ebs / beta)
  floor = np.asarray(res.trace.kl[:, -1])
  assert np.all(floor > 1e-14) and np.all(np.diff(floor) > 0)
  assert np.all(floor <= 2 * np.asarray(ebs / beta) / beta)
  slope = fit_rate(np.asarray(ebs), floor).slope      # observed ~2 [N]
  assert slope > 1.5, slope


# ----------------------------------------------------------------------------- NP-3 on 20 instances


@pytest.fixture(scope="module")
def rates_frame():
  """20 quick-mode np_rates cells at n = 300 (two batches of the quick sweep's shape: compiled once)."""
  study = importlib.import_module("mdptheory.studies.np_rates")
  base = dataclasses.replace(study.Config.quick(), n=300)
  frames = []
  for start in (0, 5):
    cells = [dataclasses.replace(base, beta=b, seed=s) for b in study.QUICK_GRID["beta"]
             for s in range(start, start + 5)]
    frames += study.run_batch(cells)
  return study, pd.concat(frames, ignore_index=True)


def test_np3_pointwise_bound_and_fitted_factor_on_20_random_instances(rates_frame):
  """NP-3: KL(π*‖π_k) <= (1+2β)^(−k) KL(π*‖π_ref) until the 1e-11 floor, and the fitted per-iteration factor is
  <= 1/(1+2β) + 1e-3, on 20 random games (n = 300, X = 2, β ∈ {0.05, 0.2}; π* certified, eq_residual <= 1e-12).
  The bound is rebuilt here from the KL trace, not read from the study's bound column."""
  _, df = rates_frame
  assert df["eq_residual"].max() <= 1e-12
  cells = list(df.sort_values("iteration").groupby(["beta", "seed"]))
  assert len(cells) == 20
  for (beta, _), cell in cells:
    kl, k = cell["kl"].to_numpy(), cell["iteration"].to_numpy()
    end = int(np.argmax(kl <= 1e-11))
    assert end > 10
    assert np.all(kl[1:end] <= (1 + 2 * beta) ** (-k[1:end].astype(float)) * kl[0])
    factor = math.exp(fit_rate(k[:end], kl[:end], log_x=False).slope)
    assert factor <= 1 / (1 + 2 * beta) + 1e-3


def test_proximal_point_contracts_kl_by_one_over_one_plus_eta_per_step():
  """The exact implicit step (THEORY.md §5.3 [D]): KL(π*‖π_{k+1}) <= KL(π*‖π_k)/(1 + η), for η = 2β and η = 8β."""
  beta, game = 0.1, _game(3)
  eq = _equilibrium(game, beta)
  for eta in (2 * beta, 8 * beta):
    res = N.proximal_point(game, beta=beta, eta=eta, num_iters=K, inner_steps=30, reference=eq)
    kl = np.asarray(res.trace.kl)
    live = kl[:-1] > 1e-11
    assert np.nanmax(res.trace.inner_error) <= 1e-9      # the inner solve converged
    assert np.all(kl[1:][live] <= kl[:-1][live] / (1 + eta) + 1e-15)


# ----------------------------------------------------------------------------- NP-6, NP-7


def test_np6_nash_md_recursion_at_every_step():
  """NP-6 (Munos et al. 2023, Thm 1): KL_{t+1} <= (1 − η_t β) KL_t + 2η_t², fixed η and η_t = 2/(β(t+2))."""
  for seed, beta in ((4, 0.05), (5, 0.5)):
    game = _game(seed)
    eq = _equilibrium(game, beta)
    ebs = np.asarray(MD_GRID)
    fixed = jax.vmap(lambda e: N.nash_md(game, beta=beta, eta=e, num_iters=3000, reference=eq))(jnp.asarray(ebs / beta))
    for i, eb in enumerate(ebs):
      kl = np.asarray(fixed.trace.kl[i])
      assert np.all(kl[1:] <= (1 - eb) * kl[:-1] + 2 * (eb / beta) ** 2 + 1e-15)
    kl = np.asarray(N.nash_md(game, beta=beta, schedule="harmonic", num_iters=3000, reference=eq).trace.kl)
    eta_t = 2 / (beta * (np.arange(3000) + 2))
    assert np.all(kl[1:] <= (1 - eta_t * beta) * kl[:-1] + 2 * eta_t ** 2 + 1e-15)
    assert np.all(kl <= 8 / (beta ** 2 * (np.arange(3001) + 1)))


def test_np7_self_play_on_rock_paper_scissors_cycles_while_the_average_converges():
  """NP-7: MWU's last iterate drifts away from the uniform equilibrium (KL(u‖π_t) grows at every step), its
  exploitability stays large; the averaged iterate's exploitability goes to 0."""
  rps = rock_paper_scissors()
  u = np.full((1, 3), 1 / 3)
  res = N.self_play_mwu(rps, eta=0.1, num_iters=2000, reference=u, pi0=np.array([[0.6, 0.3, 0.1]]))
  kl, gap, gap_avg = (np.asarray(x) for x in (res.trace.kl, res.trace.gap, res.trace.gap_avg))
  assert np.all(np.diff(kl) > 0)
  assert gap[1000:].min() > 0.1
  assert gap_avg[-1] < 0.1 * gap[1000:].min()
  assert gap_avg[-1] < gap_avg[100] < gap_avg[0]
  np.testing.assert_allclose(res.pi_avg.sum(-1), 1.0, rtol=1e-12)
  # At the equilibrium itself nothing moves.
  still = N.self_play_mwu(rps, eta=0.1, num_iters=2000, reference=u, pi0=u)
  assert np.max(still.trace.kl) <= 1e-15


# ----------------------------------------------------------------------------- queries


_ALL = {
    "nash_mp": (lambda g, **kw: N.nash_mp(g, beta=0.2, **kw), 2),
    "nash_mp_approx": (lambda g, **kw: N.nash_mp_approx(g, beta=0.2, inner_steps=3, num_samples=0, **kw), 6),
    "nash_md": (lambda g, **kw: N.nash_md(g, beta=0.2, eta=1.0, **kw), 1),
    "self_play_mwu": (lambda g, **kw: N.self_play_mwu(g, eta=0.5, **kw), 1),
    "regularized_omd": (lambda g, **kw: N.regularized_omd(g, beta=0.2, eta=1.0, **kw), 1),
    "mmd": (lambda g, **kw: N.mmd(g, beta=0.2, eta=0.8, **kw), 1),
    "extragradient": (lambda g, **kw: N.extragradient(g, beta=0.2, eta=0.05, **kw), 2),
    "proximal_point": (lambda g, **kw: N.proximal_point(g, beta=0.2, inner_steps=4, **kw), 4),
}


def _count_queries(monkeypatch, names):
  """Runs each algorithm for 3 iterations with a run-time callback in the oracle that counts its calls."""
  calls = []
  original = N._query

  def counting(*args):
    jax.debug.callback(lambda: calls.append(1))
    return original(*args)

  monkeypatch.setattr(N, "_query", counting)
  N._solve.clear_cache()        # retrace with the counting oracle ...
  game = _game(0, n=3, contexts=1)
  try:
    for name in names:
      fn, per_iter = _ALL[name]
      calls.clear()
      res = jax.block_until_ready(fn(game, num_iters=3))
      jax.effects_barrier()
      assert len(calls) == 3 * per_iter, name
      np.testing.assert_array_equal(res.trace.n_queries, per_iter * np.arange(4), err_msg=name)
      assert N.queries_per_iteration(name, inner_steps=3 if name == "nash_mp_approx" else 4) == per_iter
  finally:
    monkeypatch.undo()
    N._solve.clear_cache()      # ... and do not leave it in the cache


def test_query_counts_match_the_oracle_calls_made_at_run_time(monkeypatch):
  """n_queries[k] = k × (oracle calls per iteration), the calls counted as they run (nested inner loops)."""
  _count_queries(monkeypatch, ["nash_mp_approx"])


@pytest.mark.slow
def test_query_counts_of_every_algorithm(monkeypatch):
  _count_queries(monkeypatch, sorted(_ALL))


# ----------------------------------------------------------------------------- batching


def test_vmap_over_beta_eta_and_games_equals_the_loop():
  """One jit(vmap) call over (game, β, η) gives the per-configuration results (1e-12); seeds are vmapped in the
  sampled-preference tests below."""
  gs = [_game(s) for s in range(3)]
  batch = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *gs)
  betas, etas = jnp.asarray([0.05, 0.2, 0.5]), jnp.asarray([0.1, 0.3, 1.0])

  def one(game, beta, eta):
    return N.nash_mp(game, beta=beta, eta=eta, num_iters=K).trace

  batched = jax.jit(jax.vmap(one))(batch, betas, etas)
  for i, g in enumerate(gs):
    single = N.nash_mp(g, beta=float(betas[i]), eta=float(etas[i]), num_iters=K).trace
    for field in ("gap", "kl_ref", "win_rate"):
      np.testing.assert_allclose(getattr(batched, field)[i], getattr(single, field), rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------- sampled preferences


def test_sampled_queries_are_unbiased():
  """The win fraction of m comparisons per (x, y) averages to P(y ≻ π | x) (4 standard errors)."""
  game = _game(5)
  log_pi = jnp.log(game.pi_ref)
  keys = jax.random.split(jax.random.key(0, impl="rbg"), 2000)   # rbg: compiles in a fraction of threefry's time
  est = jax.vmap(lambda k: N._query(game.P, log_pi, k, 8))(keys)
  exact = np.asarray(N._payoff(game.P, log_pi))
  se = np.sqrt(exact * (1 - exact) / (8 * len(keys)))
  assert np.all(np.abs(np.asarray(est.mean(0)) - exact) <= 4 * se + 1e-12)
  assert set(np.unique(np.asarray(est) * 8)) <= set(range(9))   # whole numbers of wins


@pytest.mark.slow
def test_sampled_nash_mp_converges_to_a_noise_floor_that_shrinks_with_the_sample_size():
  """With m sampled comparisons per (x, y) the KL falls to a noise floor (the median KL of the second half); 100×
  more samples lower it more than 10× on significantly many of 20 seeds (sign test)."""
  beta, game = 0.2, _game(6)
  eq = _equilibrium(game, beta)
  keys = jax.random.split(jax.random.key(1), 20)
  floors = {}
  for m in (10, 1000):
    kl = jax.vmap(lambda k: N.nash_mp(game, beta=beta, num_iters=K, num_samples=m, key=k, reference=eq).trace.kl)(
        keys)
    kl = np.asarray(kl)
    floors[m] = np.median(kl[:, K // 2:], axis=1)
  assert np.all(floors[1000] < 0.05 * kl[:, 0])
  wins = int(np.sum(floors[1000] < floors[10] / 10))
  assert binomtest(wins, 20, 0.5, alternative="greater").pvalue < 1e-3, (np.median(floors[10]),
                                                                          np.median(floors[1000]))


def test_approximate_nash_mp_with_exact_preferences_is_exact_nash_mp():
  """inner_lr = 1 and exact preferences: identical to Nash-MP (zero inner error); inner_lr < 1 leaves an
  optimisation error, which is logged."""
  beta, game = 0.2, _game(7)
  eq = _equilibrium(game, beta)
  exact = N.nash_mp(game, beta=beta, num_iters=K, reference=eq)
  approx = N.nash_mp_approx(game, beta=beta, num_iters=K, num_samples=0, reference=eq)
  np.testing.assert_allclose(approx.log_pi, exact.log_pi, atol=1e-12)
  assert np.nanmax(approx.trace.inner_error) <= 1e-14
  slow = N.nash_mp_approx(game, beta=beta, num_iters=K, inner_lr=0.5, num_samples=0, reference=eq)
  assert np.nanmin(slow.trace.inner_error[1:5]) > 1e-6        # an optimisation error, logged


@pytest.mark.slow
def test_approximate_nash_mp_inner_error_shrinks_with_more_inner_steps():
  """With sampled preferences the inner iterate averages the estimates: 16× more inner steps cut the median
  inner error by more than 4× (it falls like 1/steps)."""
  beta, game = 0.2, _game(7)
  eq = _equilibrium(game, beta)
  errs = [np.nanmedian(N.nash_mp_approx(game, beta=beta, num_iters=K, inner_steps=s, num_samples=16, key=2,
                                        reference=eq).trace.inner_error) for s in (1, 16)]
  assert errs[1] < errs[0] / 4, errs


def test_extragradient_stays_on_the_truncated_simplex_and_converges():
  beta, game = 0.2, _game(8)
  eq = _equilibrium(game, beta)
  res = N.extragradient(game, beta=beta, eta=0.1, num_iters=K, reference=eq, min_prob=1e-6)
  pis = np.exp(np.stack([res.log_pi, res.log_pi_half]))
  assert pis.min() >= 1e-6 * (1 - 1e-12)
  np.testing.assert_allclose(pis.sum(-1), 1.0, rtol=1e-12)
  assert res.trace.kl[-1] < 1e-3 * res.trace.kl[0]


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize("call, error, match", [
    (lambda g: N.nash_mp(g, beta=0.0, num_iters=5), ParameterError, "beta=0.0 must be > 0"),
    (lambda g: N.nash_mp(g, beta=-1.0, num_iters=5), ParameterError, "beta=-1.0"),
    (lambda g: N.nash_mp(g, beta=0.1, eta=0.0, num_iters=5), ParameterError, "eta=0.0"),
    (lambda g: N.nash_mp(g, beta=0.1, num_iters=0), ParameterError, "num_iters=0"),
    (lambda g: N.nash_mp(g, beta="0.1", num_iters=5), ParameterError, "string"),
    (lambda g: N.nash_md(g, beta=0.5, eta=3.0, num_iters=5), ParameterError, "eta\\*beta = 3.0\\*0.5"),
    (lambda g: N.nash_md(g, beta=0.5, num_iters=5), ParameterError, "needs eta"),
    (lambda g: N.nash_md(g, beta=0.5, eta=1.0, schedule="harmonic", num_iters=5), ParameterError, "leave eta=None"),
    (lambda g: N.nash_md(g, beta=0.5, eta=1.0, schedule="cosine", num_iters=5), ParameterError, "cosine"),
    (lambda g: N.regularized_omd(g, beta=0.5, eta=4.0, num_iters=5), ParameterError, "eta <= 2"),
    (lambda g: N.nash_mp(g, beta=0.1, num_iters=5, num_samples=4), ParameterError, "needs a key"),
    (lambda g: N.nash_mp(g, beta=0.1, num_iters=5, num_samples=-1, key=0), ParameterError, "num_samples=-1"),
    (lambda g: N.nash_mp_approx(g, beta=0.1, num_iters=5, inner_lr=1.5, key=0), ParameterError, "inner_lr=1.5"),
    (lambda g: N.nash_mp_approx(g, beta=0.1, num_iters=5, inner_steps=0, key=0), ParameterError, "inner_steps=0"),
    (lambda g: N.extragradient(g, beta=0.1, eta=0.1, num_iters=5, min_prob=0.5), ParameterError, "min_prob=0.5"),
    (lambda g: N.nash_mp(g, beta=0.1, num_iters=5, pi0=np.ones((2, 4)) / 4), ShapeError, "pi0 must have shape"),
    (lambda g: N.nash_mp(g, beta=0.1, num_iters=5, pi0=np.full((2, 5), 0.3)), ValueError, "sums to 1.5"),
    (lambda g: N.mmd(g, beta=0.1, eta=0.4, num_iters=5, pi0=np.eye(5)[[0, 1]]), SupportMismatchError, "pi0\\[0, 1\\]"),
    (lambda g: N.nash_mp(g, beta=0.1, num_iters=5, reference=np.ones((3, 5)) / 5), ShapeError, "reference"),
    (lambda g: N.nash_mp(g, beta=0.1, num_iters=5, key="seed", num_samples=2), ParameterError, "key="),
    (lambda g: N.nash_mp(object(), beta=0.1, num_iters=5), ParameterError, "PreferenceGame"),
    (lambda g: N.queries_per_iteration("sppo"), ParameterError, "sppo"),
])
def test_bad_input_raises_a_clear_error(call, error, match):
  with pytest.raises(error, match=match):
    call(_game(0))


def test_a_reference_policy_with_zeros_is_refused_where_its_log_is_used():
  P = np.asarray(_game(0, contexts=1).P)
  game = PreferenceGame(P=jnp.asarray(P), rho=jnp.ones(1), pi_ref=jnp.asarray([[0.5, 0.5, 0.0, 0.0, 0.0]]))
  with pytest.raises(SupportMismatchError, match=r"pi_ref\[0, 2\] = 0"):
    N.nash_mp(game, beta=0.1, num_iters=5)
  # Self-play without beta does not use pi_ref: accepted (traced abstractly, nothing compiled).
  out = jax.eval_shape(lambda: N.self_play_mwu(game, eta=0.1, num_iters=5, pi0=np.full((1, 5), 0.2)))
  assert out.trace.gap.shape == (6,)


# ----------------------------------------------------------------------------- studies: the checks can fail


def test_np_rates_checks_pass_and_each_can_fail(rates_frame):
  study, df = rates_frame
  assert all(r.passed for r in study.check(df))
  pre = df.index[(df["iteration"] == 5) & (df["beta"] == 0.05)][0]
  bad = df.copy()
  bad.loc[pre, "kl"] = bad.loc[pre, "bound_kl"] * 1.01          # above (1 + 2β)^(−k) KL_0
  assert not study.check(bad)[0].passed
  bad = df.copy()
  bad["span"] = bad["span"] ** 0.25                              # a quarter of the rate
  assert not study.check(bad)[1].passed
  bad = df.copy()
  bad.loc[bad["seed"] == 3, "iters_to_tol"] = bad["bound_iters_to_tol"] + 1
  assert not study.check(bad)[2].passed
  few = df[df["seed"] < 5]                                       # 10 instances: too few for NP-3
  assert not study.check(few)[0].passed


@pytest.fixture(scope="module")
def baselines_frame():
  """Two quick-mode np_baselines cells (the quick sweep's shapes: compiled once)."""
  study = importlib.import_module("mdptheory.studies.np_baselines")
  cells = [dataclasses.replace(study.Config.quick(), beta=b, seed=0) for b in study.QUICK_GRID["beta"]]
  return study, pd.concat([study.run(c) for c in cells], ignore_index=True)


def test_np_baselines_checks_pass_and_each_can_fail(baselines_frame):
  study, df = baselines_frame
  results = {r.id: r for r in study.check(df)}
  assert all(r.passed for r in results.values()), results
  bad = df.copy()
  bad.loc[bad["part"] == "closed_form", "kkt"] = 1e-6
  assert not study.check(bad)[0].passed
  bad = df.copy()
  i = bad.index[(bad["algorithm"] == "nash_md") & (bad["iteration"] == 10)][0]
  bad.loc[i, "kl"] = bad.loc[i, "recursion_rhs"] * 1.001 + 1e-9
  assert not study.check(bad)[1].passed
  bad = df.copy()
  bad.loc[bad["part"] == "rps", "gap_avg"] = 0.3
  assert not study.check(bad)[2].passed
  bad = df.copy()
  i = bad.index[(bad["algorithm"] == "nash_mp") & (bad["iteration"] == 2)][0]
  bad.loc[i, "kl"] = bad.loc[i, "bound_kl"] * 1.5
  assert not study.check(bad)[3].passed
