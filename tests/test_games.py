"""Claims about preference games (THEORY.md §5.1, §5.5): the β-regularised Nash equilibrium and exploitability.

References are independent of the code under test: the equilibrium against scipy's root finder on the
fixed-point equations, against SLSQP minimising the (convex) exploitability, and against the closed form
of two-response games; Gap_β against a direct numerical maximisation of J_β(·, π) over the simplex;
payoffs and KL against numpy loops. Also: bad input (every message names the value), vmap == loop,
the float32 refusal, n = 1000, the env generators, and "the NP-1 check can fail".

Gap_β is the derived normalisation max_π' J_β(π', π) − 1/2 (THEORY.md §5.1); the paper's exact
normalisation is UNCONFIRMED, so the derived form is what is tested. Runs in float64 (conftest).
"""

from __future__ import annotations

import importlib
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize, special, stats

from mdptheory import envs, games
from mdptheory.envs import preference as pe
from mdptheory.errors import (DTypeError, InvalidMDPError, NonFiniteError, ParameterError, ShapeError,
                              SupportMismatchError)
from mdptheory.types import PreferenceGame

BETAS = (0.03, 0.1, 0.5)

# Jitted once per shape: most tests use games with X = 2 contexts and n = 4 responses.
_gap = jax.jit(games.exploitability)
_gap_lse = jax.jit(games.exploitability_lse)
_kl_log = jax.jit(games.kl_log)
_br = jax.jit(games.best_response_log)
_objective = jax.jit(games.objective)


def _random_game(seed: int, n: int = 4, contexts: int = 2, sigma: float = 1.0) -> PreferenceGame:
  """A random intransitive contextual game built with numpy (independent of the env samplers)."""
  rng = np.random.default_rng(seed)
  U = rng.uniform(-0.5, 0.5, (contexts, n, n))
  P = 0.5 + 0.5 * (U - U.transpose(0, 2, 1))
  rho = rng.dirichlet(np.ones(contexts))
  ref = special.softmax(sigma * rng.standard_normal((contexts, n)), axis=-1)
  return PreferenceGame.create(P, rho, ref)


def _np(game: PreferenceGame):
  return tuple(np.asarray(a, np.float64) for a in (game.P, game.rho, game.pi_ref))


def _random_policy(rng, contexts: int, n: int) -> np.ndarray:
  return rng.dirichlet(np.ones(n), contexts)


def _J(P, rho, ref, beta, pi, pi2):
  """J_β(π, π') from the definition, in numpy."""
  kl = lambda a, b: np.sum(rho * np.sum(special.xlogy(a, a) - special.xlogy(a, b), -1))
  pref = np.einsum("x,xi,xij,xj->", rho, pi, P, pi2)
  return pref - beta * kl(pi, ref) + beta * kl(pi2, ref)


# -----------------------------------------------------------------------------
# Validation: every message names the offending value and the fix
# -----------------------------------------------------------------------------


def _valid_P() -> np.ndarray:
  return np.array(pe.rock_paper_scissors(win_prob=0.8).P[0])   # a writable copy


@pytest.mark.parametrize("mutate,exc,pattern", [
    (lambda P: P.__setitem__((0, 1), P[0, 1] + 1e-3), InvalidMDPError, r"\(x, i, j\) = \(0, 0, 1\) is 1\.001"),
    (lambda P: P.__setitem__((1, 1), 0.6), InvalidMDPError, r"P\[x, i, i\] at \(x, i\) = \(0, 1\) is 0\.6, not 1/2"),
    (lambda P: (P.__setitem__((0, 2), 1.2), P.__setitem__((2, 0), -0.2)), InvalidMDPError,
     r"\(x, i, j\) = \(0, 0, 2\) is 1\.2, outside \[0, 1\]"),
    (lambda P: P.__setitem__((2, 1), np.nan), NonFiniteError, r"P\[0, 2, 1\] = nan"),
])
def test_an_invalid_preference_tensor_is_refused_with_its_index(mutate, exc, pattern):
  P = _valid_P()
  mutate(P)
  with pytest.raises(exc, match=pattern):
    PreferenceGame.create(P)


def test_complementarity_error_names_the_context_and_the_fix():
  P = np.stack([_valid_P(), _valid_P()])
  P[1, 2, 0] += 0.01
  with pytest.raises(InvalidMDPError, match=r"\(x, i, j\) = \(1, 0, 2\).*not 1.*\(P \+ 1 - P.transpose"):
    PreferenceGame.create(P)


@pytest.mark.parametrize("P,pattern", [
    (np.full(3, 0.5), r"shape \(n, n\) or \(X, n, n\).*\(3,\)"),
    (np.full((2, 3), 0.5), r"got shape \(2, 3\)$"),
    (np.full((1, 2, 3, 3), 0.5), r"got shape \(1, 2, 3, 3\)"),
    (np.zeros((2, 0, 0)), r"empty dimension"),
])
def test_a_malformed_shape_is_refused(P, pattern):
  with pytest.raises(ShapeError, match=pattern):
    PreferenceGame.create(P)


def test_rho_and_pi_ref_must_be_distributions_of_the_right_shape():
  P = np.stack([_valid_P(), _valid_P()])
  with pytest.raises(InvalidMDPError, match=r"rho sums to 0\.9"):
    PreferenceGame.create(P, rho=[0.5, 0.4])
  with pytest.raises(InvalidMDPError, match=r"rho\[1\] = -0\.5 is negative"):
    PreferenceGame.create(P, rho=[1.5, -0.5])
  with pytest.raises(ShapeError, match=r"rho must have shape \(2,\)"):
    PreferenceGame.create(P, rho=[1.0])
  with pytest.raises(InvalidMDPError, match=r"pi_ref row pi_ref\[x, :\] at \(x=1\) sums to 0\.9"):
    PreferenceGame.create(P, pi_ref=[[0.2, 0.3, 0.5], [0.2, 0.3, 0.4]])
  with pytest.raises(InvalidMDPError, match=r"pi_ref\[0, 1\] = -0\.1 is negative"):
    PreferenceGame.create(P, pi_ref=[[0.6, -0.1, 0.5], [0.2, 0.3, 0.5]])
  with pytest.raises(ShapeError, match=r"pi_ref must have shape \(X, n\) = \(2, 3\).*got \(2, 4\)"):
    PreferenceGame.create(P, pi_ref=np.full((2, 4), 0.25))
  with pytest.raises(NonFiniteError, match=r"pi_ref\[0, 2\] = inf"):
    PreferenceGame.create(P, pi_ref=[[0.5, 0.5, np.inf], [0.2, 0.3, 0.5]])


def test_pi_ref_zeros_are_refused_when_full_support_is_required():
  P = _valid_P()
  ref = [0.5, 0.0, 0.5]
  with pytest.raises(SupportMismatchError, match=r"pi_ref\[x, y\] at \(x, y\) = \(0, 1\) is 0.*require_full_support=False"):
    PreferenceGame.create(P, pi_ref=ref)
  game = PreferenceGame.create(P, pi_ref=ref, require_full_support=False)
  np.testing.assert_array_equal(np.asarray(game.pi_ref), [[0.5, 0.0, 0.5]])


def test_a_shared_pi_ref_broadcasts_and_an_accepted_P_is_made_exactly_complementary():
  rng = np.random.default_rng(0)
  U = rng.uniform(-0.5, 0.5, (3, 5, 5))
  P = 0.5 + 0.5 * (U - U.transpose(0, 2, 1)) + rng.uniform(-1e-10, 1e-10, (3, 5, 5))
  ref = special.softmax(rng.standard_normal(5))
  game = PreferenceGame.create(P, pi_ref=ref)
  Pg = np.asarray(game.P)
  assert np.max(np.abs(Pg + Pg.transpose(0, 2, 1) - 1.0)) <= 2.3e-16
  np.testing.assert_allclose(np.asarray(game.pi_ref), np.broadcast_to(ref, (3, 5)), rtol=1e-15)
  np.testing.assert_allclose(np.asarray(game.rho), np.full(3, 1 / 3), rtol=1e-15)
  assert game.num_contexts == 3 and game.num_actions == 5 and game.P.dtype == jnp.float64


def test_bad_solver_parameters_are_refused_before_any_computation():
  game = _random_game(0)
  with pytest.raises(ParameterError, match=r"beta=0\.0 must be > 0"):
    games.solve_nash_equilibrium(game, beta=0.0)
  with pytest.raises(ParameterError, match=r"beta=-0\.1 must be > 0"):
    games.solve_nash_equilibrium(game, beta=-0.1)
  with pytest.raises(ParameterError, match=r"tol=0\.0 must be > 0"):
    games.solve_nash_equilibrium(game, beta=0.1, tol=0.0)
  with pytest.raises(ParameterError, match=r"max_iters=0 must be an integer >= 1"):
    games.solve_nash_equilibrium(game, beta=0.1, max_iters=0)
  with pytest.raises(ParameterError, match=r"got ndarray; build one with PreferenceGame.create"):
    games.solve_nash_equilibrium(np.asarray(game.P), beta=0.1)
  batch = jax.tree_util.tree_map(lambda a: jnp.stack([a, a]), game)
  with pytest.raises(ShapeError, match=r"jax.vmap nash_equilibrium"):
    games.solve_nash_equilibrium(batch, beta=0.1)


@pytest.mark.parametrize("call,pattern", [
    (lambda: pe.random_intransitive(0, n=5, scale=1.5), r"scale=1\.5 must be in \(0, 1\]"),
    (lambda: pe.random_intransitive(0, n=1), r"n=1 must be an integer >= 2"),
    (lambda: pe.bradley_terry(0, n=5, reward_scale=-1.0), r"reward_scale=-1\.0 must be > 0"),
    (lambda: pe.bt_mixture(0, n=5, components=0), r"components=0 must be an integer >= 1"),
    (lambda: pe.cyclic_tournament(5, win_prob=0.3), r"win_prob=0\.3 must be in \[1/2, 1\]"),
    (lambda: pe.random_intransitive(0, n=5, ref_sigma=-1.0), r"ref_sigma=-1\.0 must be >= 0"),
    (lambda: pe.preference_tensor_np(0, "condorcet", 5), r"family='condorcet' is not one of"),
])
def test_bad_generator_arguments_are_refused(call, pattern):
  with pytest.raises(ParameterError, match=pattern):
    call()


# -----------------------------------------------------------------------------
# Payoffs, preferences, KL, the constant-sum identity
# -----------------------------------------------------------------------------


def test_payoff_preference_kl_and_win_rate_match_numpy_loops():
  game = _random_game(1, n=4, contexts=3)
  P, rho, ref = _np(game)
  rng = np.random.default_rng(1)
  pi, pi2 = _random_policy(rng, 3, 4), _random_policy(rng, 3, 4)
  loop_payoff = np.array([[sum(pi[x, j] * P[x, i, j] for j in range(4)) for i in range(4)] for x in range(3)])
  np.testing.assert_allclose(games.payoff(game, jnp.asarray(pi)), loop_payoff, rtol=1e-14)
  loop_pref = sum(rho[x] * pi[x, i] * pi2[x, j] * P[x, i, j] for x in range(3) for i in range(4) for j in range(4))
  np.testing.assert_allclose(games.preference(game, jnp.asarray(pi), jnp.asarray(pi2)), loop_pref, rtol=1e-14)
  loop_kl = sum(rho[x] * pi[x, i] * np.log(pi[x, i] / pi2[x, i]) for x in range(3) for i in range(4))
  np.testing.assert_allclose(games.kl(game, jnp.asarray(pi), jnp.asarray(pi2)), loop_kl, rtol=1e-13)
  np.testing.assert_allclose(games.kl_log(game, jnp.log(pi), jnp.log(pi2)), loop_kl, rtol=1e-13)
  # A policy ties with itself and with the reference only when it is the reference.
  np.testing.assert_allclose(games.preference(game, jnp.asarray(pi), jnp.asarray(pi)), 0.5, rtol=0, atol=1e-15)
  np.testing.assert_allclose(games.win_rate(game, game.pi_ref), 0.5, rtol=0, atol=1e-15)
  np.testing.assert_allclose(games.win_rate(game, jnp.asarray(pi)),
                             np.einsum("x,xi,xij,xj->", rho, pi, P, ref), rtol=1e-14)


def test_the_regularised_game_is_constant_sum():
  """J_β(π', π) = 1 − J_β(π, π') for random policy pairs and β (THEORY.md §5.1)."""
  game = _random_game(2)
  rng = np.random.default_rng(2)
  for beta in BETAS:
    for _ in range(5):
      pi, pi2 = jnp.asarray(_random_policy(rng, 2, 4)), jnp.asarray(_random_policy(rng, 2, 4))
      a = _objective(game, pi2, pi, beta=beta)
      b = _objective(game, pi, pi2, beta=beta)
      np.testing.assert_allclose(a, 1.0 - b, rtol=0, atol=1e-14)
      np.testing.assert_allclose(b, _J(*_np(game), beta, np.asarray(pi), np.asarray(pi2)), rtol=1e-13)


def test_span_distance_ignores_per_context_constants_and_common_zeros():
  a = jnp.log(jnp.asarray([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]]))
  np.testing.assert_allclose(games.span_distance(a, a + jnp.asarray([[3.0], [-1.0]])), 0.0, atol=1e-15)
  b = a.at[1, 2].add(0.7).at[0, 0].add(-0.2)
  np.testing.assert_allclose(games.span_distance(b, a), 0.7, rtol=1e-14)
  c = jnp.asarray([[-jnp.inf, 0.0, 1.0]])
  d = jnp.asarray([[-jnp.inf, 0.5, 0.0]])
  np.testing.assert_allclose(games.span_distance(c, d), 1.5, rtol=1e-15)
  assert games.span_distance(c, jnp.asarray([[0.0, 0.0, 0.0]])) == jnp.inf


# -----------------------------------------------------------------------------
# Exploitability Gap_β
# -----------------------------------------------------------------------------


def _bfgs_max(f, grad, X: int, n: int) -> float:
  """max over policies of f(π) by BFGS on softmax logits u, from the uniform policy.

  ``grad(π)`` is ∂f/∂π [X, n]; the chain rule through the softmax gives π ⊙ (g − ⟨π, g⟩) per context.
  """
  def neg(u):
    q = special.softmax(u.reshape(X, n), -1)
    g = grad(q)
    return -f(q), -(q * (g - np.sum(q * g, -1, keepdims=True))).ravel()

  res = optimize.minimize(neg, np.zeros(X * n), jac=True, method="BFGS", options={"gtol": 1e-13, "maxiter": 10000})
  return -res.fun


@pytest.mark.parametrize("beta", BETAS)
def test_exploitability_equals_a_direct_maximisation_over_the_opponent(beta):
  """Gap_β(π) = max_π' J_β(π', π) − 1/2 (definition), and duality gap = 2 Gap_β, for random π."""
  game = _random_game(3)
  P, rho, ref = _np(game)
  rng = np.random.default_rng(3)
  for _ in range(2):
    pi = _random_policy(rng, 2, 4)
    # ∂/∂q J_β(q, π) and ∂/∂q J_β(π, q), from the definition of J_β.
    d_first = lambda q: rho[:, None] * (np.einsum("xij,xj->xi", P, pi) - beta * (np.log(q) + 1 - np.log(ref)))
    d_second = lambda q: rho[:, None] * (np.einsum("xi,xij->xj", pi, P) + beta * (np.log(q) + 1 - np.log(ref)))
    direct = _bfgs_max(lambda q: _J(P, rho, ref, beta, q, pi), d_first, 2, 4) - 0.5
    gap = float(_gap(game, jnp.asarray(pi), beta=beta))
    np.testing.assert_allclose(gap, direct, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(games.exploitability_lse(game, jnp.asarray(pi), beta=beta), gap, rtol=1e-11)
    np.testing.assert_allclose(games.duality_gap(game, jnp.asarray(pi), beta=beta), 2 * gap, rtol=1e-15)
    # Two-sided: max_π' J(π', π) − min_π'' J(π, π''), the minimum found by its own BFGS run.
    lo = -_bfgs_max(lambda q: -_J(P, rho, ref, beta, pi, q), lambda q: -d_second(q), 2, 4)
    np.testing.assert_allclose(games.duality_gap(game, jnp.asarray(pi), beta=beta), direct + 0.5 - lo,
                               rtol=1e-9, atol=1e-12)


def test_exploitability_is_positive_off_the_equilibrium_with_the_derived_lower_bound():
  """Gap_β(π) = β KL(π‖π*) + β KL(π*‖BR_β(π)) >= β KL(π‖π*) > 0 for π ≠ π* [D] (NP-1)."""
  rng = np.random.default_rng(4)
  for seed, beta in itertools.product(range(3), BETAS):
    game = _random_game(seed, sigma=2.0)
    eq = games.solve_nash_equilibrium(game, beta=beta)
    assert abs(float(_gap(game, eq.pi, beta=beta))) <= 1e-12
    for scale in (1e-2, 0.3, 3.0):
      log_pi = jax.nn.log_softmax(eq.log_pi + scale * rng.standard_normal((2, 4)), -1)
      pi = jnp.exp(log_pi)
      gap = float(_gap(game, pi, beta=beta))
      kl_to_star = float(_kl_log(game, log_pi, eq.log_pi))
      kl_star_br = float(_kl_log(game, eq.log_pi, _br(game, pi, beta=beta)))
      assert gap > 0 and gap >= beta * kl_to_star - 1e-15
      np.testing.assert_allclose(gap, beta * (kl_to_star + kl_star_br), rtol=1e-9, atol=1e-16)


def test_exploitability_is_nonnegative_on_random_policies_and_corners():
  game = _random_game(5)
  rng = np.random.default_rng(5)
  pis = [_random_policy(rng, 2, 4) for _ in range(30)] + [np.full((2, 4), 0.25)]
  corner = np.zeros((2, 4))
  corner[:, 0] = 1.0   # a deterministic policy: Gap is finite, 0 ln 0 = 0
  pis.append(corner)
  for beta in BETAS:
    gaps = np.array([float(_gap(game, jnp.asarray(p), beta=beta)) for p in pis])
    lse = np.array([float(_gap_lse(game, jnp.asarray(p), beta=beta)) for p in pis])
    assert np.isfinite(gaps).all() and (gaps > 1e-6).all()
    np.testing.assert_allclose(gaps, lse, rtol=1e-10)


# -----------------------------------------------------------------------------
# The β-regularised Nash equilibrium
# -----------------------------------------------------------------------------


def _root_equilibrium(P, ref, beta) -> np.ndarray:
  """π*_β by scipy's Levenberg–Marquardt root finder on ln softmax(u) = ln BR_β(softmax(u)), from u = ln π_ref."""
  X, n = ref.shape

  def F(u):
    u = u.reshape(X, n)
    pi = special.softmax(u, -1)
    z = np.log(ref) + np.einsum("xij,xj->xi", P, pi) / beta
    return (special.log_softmax(u, -1) - special.log_softmax(z, -1)).ravel()

  sol = optimize.root(F, np.log(ref).ravel(), method="lm", tol=1e-15)
  assert sol.success and np.max(np.abs(F(sol.x))) < 1e-11, sol.message
  return special.softmax(sol.x.reshape(X, n), -1)


@pytest.mark.parametrize("beta", BETAS)
def test_the_equilibrium_matches_scipy_root_on_the_fixed_point_equations(beta):
  for seed in range(3):
    game = _random_game(10 + seed, sigma=1.5)
    eq = games.solve_nash_equilibrium(game, beta=beta)
    P, rho, ref = _np(game)
    np.testing.assert_allclose(np.asarray(eq.pi), _root_equilibrium(P, ref, beta), rtol=1e-9, atol=1e-12)
    assert bool(eq.certified) and float(eq.residual) <= 1e-12
    # Fixed point recomputed in numpy: π* ∝ π_ref exp(P(·≻π*)/β).
    z = np.log(ref) + np.einsum("xij,xj->xi", P, np.asarray(eq.pi)) / beta
    np.testing.assert_allclose(np.asarray(eq.log_pi), special.log_softmax(z, -1), rtol=0, atol=1e-12)


def test_the_equilibrium_minimises_the_convex_exploitability():
  """SLSQP on the simplex minimising Gap_β (lse form, written here in numpy) finds π*_β and Gap = 0."""
  beta = 0.1
  game = _random_game(20, sigma=1.0)
  P, rho, ref = _np(game)

  def gap(flat):
    pi = np.clip(flat.reshape(2, 4), 1e-300, None)
    z = np.log(ref) + np.einsum("xij,xj->xi", P, pi) / beta
    kl = np.sum(rho * np.sum(pi * (np.log(pi) - np.log(ref)), -1))
    return beta * np.dot(rho, special.logsumexp(z, -1)) + beta * kl - 0.5

  cons = [{"type": "eq", "fun": lambda f, x=x: f.reshape(2, 4)[x].sum() - 1.0} for x in range(2)]
  res = optimize.minimize(gap, np.full(8, 1 / 4), method="SLSQP", bounds=[(1e-12, 1.0)] * 8, constraints=cons,
                          options={"ftol": 1e-15, "maxiter": 1000})
  eq = games.solve_nash_equilibrium(game, beta=beta)
  np.testing.assert_allclose(res.x.reshape(2, 4), np.asarray(eq.pi), atol=2e-5)
  assert res.fun >= -1e-12 and res.fun <= 1e-9
  assert gap(np.asarray(eq.pi).ravel()) <= 1e-13


@pytest.mark.parametrize("a,r0,beta", [(0.9, 0.5, 0.1), (0.3, 0.8, 0.05), (0.5, 0.2, 1.0), (1.0, 0.01, 0.5)])
def test_two_response_games_have_a_closed_form_equilibrium(a, r0, beta):
  """n = 2: P(0≻π) − P(1≻π) = a − 1/2 for every π, so π*(0) = σ(logit π_ref(0) + (a − 1/2)/β) [D]."""
  game = PreferenceGame.create([[0.5, a], [1 - a, 0.5]], pi_ref=[r0, 1 - r0])
  eq = games.solve_nash_equilibrium(game, beta=beta)
  p = special.expit(special.logit(r0) + (a - 0.5) / beta)
  np.testing.assert_allclose(np.asarray(eq.pi)[0], [p, 1 - p], rtol=1e-12)


@pytest.mark.parametrize("beta", (0.01, 0.1, 1.0))
def test_symmetric_tournaments_with_a_uniform_reference_have_the_uniform_equilibrium(beta):
  for game in (pe.rock_paper_scissors(), pe.cyclic_tournament(4, win_prob=0.7)):
    n = game.num_actions
    eq = games.solve_nash_equilibrium(game, beta=beta)
    np.testing.assert_allclose(np.asarray(eq.pi), np.full((1, n), 1 / n), rtol=1e-12)
    assert abs(float(_gap(game, jnp.full((1, n), 1.0 / n), beta=beta))) <= 1e-15
    assert float(_gap(game, jnp.asarray([[0.5, 0.3] + [0.2 / (n - 2)] * (n - 2)]), beta=beta)) > 0


def test_a_transitive_game_ranks_the_equilibrium_by_reward():
  """Bradley–Terry with a uniform π_ref: π*_β(y) increases with r_y (P(y≻π) is increasing in r_y)."""
  game = pe.bradley_terry(3, n=4, reward_scale=2.0)
  eq = games.solve_nash_equilibrium(game, beta=0.1)
  P = np.asarray(game.P)[0]
  order = np.argsort(P.sum(1))   # the row sums of σ(r_i − r_j) order the rewards
  assert np.all(np.diff(np.asarray(eq.pi)[0][order]) > 0)


def test_kl_to_the_reference_is_at_most_one_over_two_beta():
  """KL_ρ(π*‖π_ref) = 1/(2β) − E_x ln Z_x <= 1/(2β) (THEORY.md §5.1, NP-1), identity checked in numpy."""
  for seed, beta, sigma in itertools.product(range(3), (0.01, 0.1, 0.5), (0.0, 3.0)):
    game = _random_game(30 + seed, sigma=sigma)
    eq = games.solve_nash_equilibrium(game, beta=beta)
    P, rho, ref = _np(game)
    kl = float(games.kl(game, eq.pi, game.pi_ref))
    log_Z = special.logsumexp(np.log(ref) + np.einsum("xij,xj->xi", P, np.asarray(eq.pi)) / beta, -1)
    np.testing.assert_allclose(kl, 0.5 / beta - np.dot(rho, log_Z), rtol=1e-9, atol=1e-12)
    assert 0.0 <= kl <= 0.5 / beta and (log_Z >= 0).all()


def test_vmap_over_games_and_betas_equals_the_per_game_loop():
  batch = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *[_random_game(40 + i) for i in range(3)])
  betas = jnp.asarray([0.05, 0.2, 1.0])
  solve = jax.jit(jax.vmap(jax.vmap(lambda g, b: games.nash_equilibrium(g, beta=b), (None, 0)), (0, None)))
  eqs = solve(batch, betas)
  games.require_certified(eqs)
  assert eqs.pi.shape == (3, 3, 2, 4)
  for i in range(3):
    game = jax.tree_util.tree_map(lambda a: a[i], batch)
    for j, beta in enumerate(np.asarray(betas)):
      single = games.solve_nash_equilibrium(game, beta=float(beta))
      np.testing.assert_allclose(eqs.pi[i, j], single.pi, rtol=1e-11, atol=1e-14)
      np.testing.assert_allclose(_gap(game, eqs.pi[i, j], beta=beta), 0.0, atol=1e-12)


def test_float32_and_unconverged_equilibria_are_refused_with_the_residual_reached():
  game32 = PreferenceGame.create(*_np(_random_game(0)), dtype=np.float32)
  with pytest.raises(DTypeError, match=r"tol=1e-12 is below what float32 can certify at beta=0\.1.*float64"):
    games.solve_nash_equilibrium(game32, beta=0.1)
  # float32 with a tolerance it can reach is fine; the core follows the dtype.
  eq32 = games.solve_nash_equilibrium(game32, beta=0.1, tol=1e-4)
  assert eq32.pi.dtype == jnp.float32
  game = _random_game(0)
  with pytest.raises(ParameterError, match=r"residual \S+ > tol=1e-12 after 3 Nash-MP iterations.*raise max_iters"):
    games.solve_nash_equilibrium(game, beta=0.05, max_iters=3)
  # A batch names the worst member.
  eq = games.solve_nash_equilibrium(game, beta=0.5)
  eqs = games.Equilibrium(pi=jnp.stack([eq.pi] * 2), log_pi=jnp.stack([eq.log_pi] * 2),
                          residual=jnp.asarray([1e-13, 0.4]), iterations=jnp.asarray([40, 200]),
                          certified=jnp.asarray([True, False]))
  with pytest.raises(ParameterError, match=r"batch index \(1,\).*1 of 2 not certified"):
    games.require_certified(eqs)


def test_the_round_off_floor_stops_the_solver_early():
  """A tolerance below the float64 floor: the stall test ends the loop ~⌈10/ln(1+2β)⌉ iterations after the
  last new minimum, long before max_iters, uncertified; at β = 1e-3 (floor ~1e-11) a tolerance above the
  floor is certified."""
  game = _random_game(1)
  eq = jax.jit(lambda g: games.nash_equilibrium(g, beta=0.1, tol=1e-17, max_iters=10**6))(game)
  assert not bool(eq.certified) and int(eq.iterations) < 2000 and float(eq.residual) < 1e-12
  eq = games.solve_nash_equilibrium(game, beta=1e-3, tol=1e-9)
  assert float(games.exploitability(game, eq.pi, beta=1e-3)) <= 1e-12


def test_one_nash_mp_step_by_hand():
  """The closed form of §5.2 recomputed in numpy (η = 2β)."""
  game = _random_game(7)
  P, rho, ref = _np(game)
  beta, eta = 0.2, 0.4
  lp = np.log(_random_policy(np.random.default_rng(7), 2, 4))
  half = special.log_softmax((lp + eta * np.log(ref) + eta / beta * np.einsum("xij,xj->xi", P, np.exp(lp)))
                             / (1 + eta), -1)
  nxt = special.log_softmax((lp + eta * np.log(ref) + eta / beta * np.einsum("xij,xj->xi", P, np.exp(half)))
                            / (1 + eta), -1)
  got, g = games.nash_mp_step(game, jnp.asarray(lp), games.payoff(game, jnp.exp(jnp.asarray(lp))),
                              beta=beta, eta=eta)
  np.testing.assert_allclose(got, nxt, rtol=1e-13, atol=1e-14)
  np.testing.assert_allclose(g, np.einsum("xij,xj->xi", P, np.exp(nxt)), rtol=1e-13)


def test_a_thousand_responses_work():
  game = pe.bradley_terry(0, n=1000, ref_sigma=1.0)
  eq = games.solve_nash_equilibrium(game, beta=0.2)
  assert eq.pi.shape == (1, 1000)
  assert abs(float(games.exploitability(game, eq.pi, beta=0.2))) <= 1e-12
  assert float(games.kl(game, eq.pi, game.pi_ref)) <= 0.5 / 0.2


# -----------------------------------------------------------------------------
# Instance generators (THEORY.md §5.5)
# -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["preference_intransitive", "preference_bradley_terry", "preference_bt_mixture",
                                  "rock_paper_scissors", "cyclic_tournament"])
def test_registered_games_are_valid_and_follow_dtype(name):
  game = envs.make(name)
  P = np.asarray(game.P)
  assert isinstance(game, PreferenceGame) and P.dtype == np.float64
  assert (P >= 0).all() and (P <= 1).all()
  np.testing.assert_allclose(P + P.transpose(0, 2, 1), 1.0, rtol=0, atol=2.3e-16)
  np.testing.assert_allclose(np.asarray(game.pi_ref).sum(-1), 1.0, rtol=0, atol=1e-15)
  assert envs.make(name, dtype=np.float32).P.dtype == np.float32


def test_generators_cover_contexts_references_and_sizes():
  game = pe.bt_mixture(1, n=10, contexts=3, ref_sigma=3.0)
  assert game.P.shape == (3, 10, 10) and game.pi_ref.shape == (3, 10) and game.rho.shape == (3,)
  assert not np.allclose(np.asarray(game.pi_ref), 1 / 10)         # softmax(N(0, 9)) is far from uniform
  assert not np.allclose(np.asarray(game.P)[0], np.asarray(game.P)[1])   # independent contexts
  small = pe.random_intransitive(0, n=10, scale=0.3)
  assert np.max(np.abs(np.asarray(small.P) - 0.5)) <= 0.15 + 1e-15


def test_sample_game_equals_the_validated_factory_and_vmaps():
  key = jax.random.key(11)
  a = pe.sample_game(key, "intransitive", 10, scale=0.3, ref_sigma=1.0)
  b = pe.random_intransitive(key, 10, scale=0.3, ref_sigma=1.0)
  for x, y in zip(a, b):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-14, atol=1e-15)
  batch = jax.vmap(lambda k: pe.sample_game(k, "bradley_terry", 6))(jax.random.split(key, 4))
  assert batch.P.shape == (4, 1, 6, 6)


def test_bradley_terry_is_transitive_and_bt_mixtures_have_condorcet_cycles():
  def has_cycle(P):
    beats = P > 0.5
    n = P.shape[0]
    return any(beats[i, j] and beats[j, k] and beats[k, i] for i, j, k in itertools.permutations(range(n), 3))
  for seed in range(5):
    assert not has_cycle(np.asarray(pe.bradley_terry(seed, n=10).P)[0])
  assert sum(has_cycle(np.asarray(pe.bt_mixture(seed, n=10).P)[0]) for seed in range(10)) >= 3


@pytest.mark.parametrize("family,scale", [("intransitive", 1.0), ("bradley_terry", 1.0), ("bt_mixture", 3.0)])
def test_the_numpy_twin_samples_the_same_law_as_the_jax_sampler(family, scale):
  """Two-sample KS test on P[x, 0, 1] over 400 independent draws of n = 4 (contexts are independent draws)."""
  jax_P = np.asarray(pe.sample_game(jax.random.key(0), family, 4, scale=scale, contexts=400).P)[:, 0, 1]
  np_P = np.array([pe.preference_tensor_np(s, family, 4, scale=scale)[0, 0, 1] for s in range(400)])
  assert stats.ks_2samp(jax_P, np_P).pvalue > 1e-3
  P = pe.preference_tensor_np(0, family, 6, scale=scale, contexts=2)
  np.testing.assert_allclose(P + P.transpose(0, 2, 1), 1.0, rtol=0, atol=2.3e-16)


# -----------------------------------------------------------------------------
# The NP-1 check can fail
# -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def np1_frame():
  study = importlib.import_module("mdptheory.studies.np_equilibrium")
  cells = [study.Config(family=f, beta=b, ref_sigma=s, seed=0)
           for f in ("intransitive", "bt_mixture") for b in (0.05, 0.5) for s in (0.0, 3.0)]
  frames = []
  for b in (0.05, 0.5):
    frames += study.run_batch([c for c in cells if c.beta == b])
  import pandas as pd
  return study, pd.concat(frames, ignore_index=True)


def test_np1_passes_on_a_small_frame(np1_frame):
  study, df = np1_frame
  assert all(r.passed and r.id == "NP-1" for r in study.check(df))


@pytest.mark.parametrize("corrupt,which", [
    (lambda df: df.__setitem__("gap_star", np.where(df.index == 0, 5e-12, df["gap_star"])), 0),
    (lambda df: df.__setitem__("certified", np.where(df.index == 8, False, df["certified"])), 0),
    (lambda df: df.__setitem__("gap", np.where(df.index == 5, -1e-9, df["gap"])), 1),
    (lambda df: df.__setitem__("bound_gap", np.where(df.index == 9, df["gap"] * 1.001, df["bound_gap"])), 1),
    (lambda df: df.__setitem__("kl_ref_scaled", np.where(df.index == 0, 1.01, df["kl_ref_scaled"])), 2),
])
def test_the_np1_check_fails_on_a_corrupted_frame(np1_frame, corrupt, which):
  study, df = np1_frame
  bad = df.copy()
  corrupt(bad)
  results = study.check(bad)
  assert not results[which].passed
  assert [r.passed for i, r in enumerate(results) if i != which] == [True, True]
