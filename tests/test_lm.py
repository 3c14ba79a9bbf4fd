"""Claims about the LM policy bridge (mdptheory/lm; LM_BRIDGE.md; DESIGN.md §5).

Every exact tree tool is checked against an independent reference:

* sequence laws, conditionals and the trajectory KL against brute-force products over every sequence;
* the token-by-token KL-regularized optimum against the whole-sequence posterior (to 1e-12 in float64), the hard
  optimum against max r, regularized evaluation against the sequence-level objective;
* the tabular conversion against the library's tabular solvers (policy iteration with the entropy and the
  KL-to-prior regularizers, the LP), exact evaluation and MD-VI (``mdmpi.md_mpi``);
* the exact best-of-N law against enumeration of every N-tuple (ties included) and ``alignment.bon_law``;
* the Nash-MP steps against ``games.nash_mp_step``;
* the transformer: parameter dtypes under x64, causality, the tree read-out against a direct forward pass; the
  fit: the exact loss against tree KLs, a decreasing loss, chunked == unchunked, vmap == loop;
* each bridge claim group's check fails on a corrupted frame.

Runs in float64 (tests/conftest.py); the model itself trains in float32.
"""

from __future__ import annotations

import dataclasses
import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from mdptheory import alignment as al
from mdptheory import games, operators, solvers
from mdptheory import regularizers as R
from mdptheory.algorithms.mdmpi import md_mpi
from mdptheory.errors import InvalidMDPError, ParameterError, ShapeError
from mdptheory.lm import fit as lm_fit
from mdptheory.lm import model as lm_model
from mdptheory.lm import tree
from mdptheory.types import PreferenceGame

QUICK = lm_model.TransformerConfig(vocab_size=3, length=4)   # the studies' quick size: compiles are shared


def random_levels(rng, V, L, *, scale=1.0):
  """A random full-support policy as levels of log-probabilities (numpy draws, float64)."""
  return tuple(jax.nn.log_softmax(jnp.asarray(scale * rng.standard_normal((V ** t, V))), axis=-1)
               for t in range(L))


def brute_log_prob(levels, y, V):
  """log π(y) = Σ_t log π(y_t | y_<t) by walking the prefix indices one token at a time."""
  s, total = 0, 0.0
  for t, a in enumerate(y):
    total += float(levels[t][s, a])
    s = s * V + int(a)
  return total


# -----------------------------------------------------------------------------
# Tree tools
# -----------------------------------------------------------------------------


def test_sequences_are_lexicographic_and_children_are_s_times_v_plus_a():
  V, L = 3, 3
  ys = tree.sequences(V, L)
  assert ys.shape == (27, 3) and (ys[5] == [0, 1, 2]).all()
  assert [tuple(y) for y in ys] == list(itertools.product(range(V), repeat=L))
  pre = tree.prefixes(V, 2)
  for s, p in enumerate(pre):
    for a in range(V):
      assert tuple(tree.prefixes(V, 3)[s * V + a]) == (*p, a)
  assert tree.num_prefixes(V, L) == 13 and list(tree.state_offsets(V, L)) == [0, 1, 4, 13]


def test_sequence_law_and_conditionals_match_brute_force():
  rng = np.random.default_rng(0)
  V, L = 3, 3
  levels = random_levels(rng, V, L)
  lp = np.asarray(tree.sequence_log_probs(levels))
  brute = np.array([brute_log_prob(levels, y, V) for y in tree.sequences(V, L)])
  np.testing.assert_allclose(lp, brute, rtol=0, atol=1e-13)
  np.testing.assert_allclose(np.exp(lp).sum(), 1.0, rtol=0, atol=1e-13)
  # conditionals() inverts sequence_log_probs(), and factorizes an arbitrary sequence law.
  back = tree.conditionals(jnp.asarray(lp), V, L)
  for a, b in zip(back, levels):
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
  law = jax.nn.log_softmax(jnp.asarray(rng.standard_normal(V ** L)))
  np.testing.assert_allclose(tree.sequence_log_probs(tree.conditionals(law, V, L)), law, rtol=0, atol=1e-12)


def test_trajectory_kl_is_the_sequence_kl():
  """The chain rule: Σ_t E_{d_p} KL(p(·|s) ‖ q(·|s)) = KL over sequences (THEORY.md §6.1)."""
  rng = np.random.default_rng(1)
  V, L = 2, 4
  p, q = random_levels(rng, V, L), random_levels(rng, V, L)
  lp, lq = np.asarray(tree.sequence_log_probs(p)), np.asarray(tree.sequence_log_probs(q))
  brute = float(np.sum(np.exp(lp) * (lp - lq)))
  np.testing.assert_allclose(tree.trajectory_kl(p, q), brute, rtol=1e-12)
  np.testing.assert_allclose(tree.sequence_kl(jnp.asarray(lp), jnp.asarray(lq)), brute, rtol=1e-12)


@pytest.mark.parametrize("V,L", [(3, 4), (2, 5)])
@pytest.mark.parametrize("beta", [0.05, 0.3, 2.0])
def test_token_by_token_optimum_is_the_sequence_posterior(V, L, beta):
  """Backward induction on the tree gives Π_t π*(y_t|y_<t) = π_ref(y) e^{r(y)/β}/Z to 1e-12, V_0 = β log Z."""
  rng = np.random.default_rng(2)
  log_ref = random_levels(rng, V, L, scale=2.0)
  r = jnp.asarray(rng.random(V ** L))
  sol = tree.optimum(r, log_ref, beta=beta)
  lp_ref = tree.sequence_log_probs(log_ref)
  np.testing.assert_allclose(tree.sequence_log_probs(sol.log_pi), tree.posterior_log_probs(lp_ref, r, beta=beta),
                             rtol=0, atol=1e-12)
  post = al.posterior(np.exp(np.asarray(lp_ref)), np.asarray(r), beta=beta)      # independent bandit code
  np.testing.assert_allclose(sol.v[0][0], post.value, rtol=1e-12)


def test_soft_optimum_beats_random_policies_and_evaluation_is_the_sequence_objective():
  rng = np.random.default_rng(3)
  V, L, beta = 3, 3, 0.2
  log_ref = random_levels(rng, V, L)
  r = jnp.asarray(rng.random(V ** L))
  best = float(tree.optimum(r, log_ref, beta=beta).v[0][0])
  lp_ref = np.asarray(tree.sequence_log_probs(log_ref))
  for _ in range(20):
    pi = random_levels(rng, V, L, scale=3.0)
    val = float(tree.evaluate(pi, r, log_ref=log_ref, beta=beta).v[0][0])
    lp = np.asarray(tree.sequence_log_probs(pi))
    direct = float(np.exp(lp) @ np.asarray(r) - beta * np.sum(np.exp(lp) * (lp - lp_ref)))
    np.testing.assert_allclose(val, direct, rtol=1e-12)
    assert val <= best + 1e-12


def test_hard_optimum_is_the_discounted_max_reward():
  rng = np.random.default_rng(4)
  V, L, gamma = 3, 3, 0.9
  r = jnp.asarray(rng.random(V ** L))
  sol = tree.optimum(r, random_levels(rng, V, L), beta=0.0, gamma=gamma)
  np.testing.assert_allclose(sol.v[0][0], gamma ** (L - 1) * float(r.max()), rtol=1e-14)
  y = int(np.argmax(np.asarray(tree.sequence_log_probs(sol.log_pi))))
  assert y == int(np.argmax(r))


@pytest.mark.parametrize("tau", [0.0, 0.1])
def test_tabular_conversion_gives_the_tree_optimum_and_values(tau):
  """tree.to_mdp + the tabular solvers reproduce the tree's optimum, policy and regularized evaluation."""
  rng = np.random.default_rng(5)
  V, L, gamma = 3, 3, 0.9
  log_ref = random_levels(rng, V, L)
  r = rng.random(V ** L)
  sol = tree.optimum(jnp.asarray(r), log_ref, beta=tau, gamma=gamma)
  mdp = tree.to_mdp(r, vocab_size=V, length=L, gamma=gamma, log_ref=log_ref, tau=tau, dtype=np.float64)
  lr_tab = tree.to_table(log_ref)
  q_tree = tree.to_table(sol.q, terminal=0.0)
  if tau == 0:
    opt = solvers.optimum(mdp)
    np.testing.assert_allclose(opt.q, q_tree, rtol=0, atol=1e-12)
    np.testing.assert_allclose(solvers.lp_optimum(mdp).v[0], sol.v[0][0], rtol=1e-9)
    return
  # Entropy on r̂ = r + τ log π_ref: q̂* = q* + τ log π_ref (terminal: −τ log V), same policy.
  opt = solvers.optimum(mdp, R.entropy(tau))
  np.testing.assert_allclose(opt.q - tau * lr_tab, q_tree, rtol=0, atol=1e-10)
  np.testing.assert_allclose(jnp.log(opt.pi), tree.to_table(sol.log_pi), rtol=0, atol=1e-10)
  # The KL-to-prior regularizer on the unshifted MDP agrees.
  plain = tree.to_mdp(r, vocab_size=V, length=L, gamma=gamma, dtype=np.float64)
  kl_opt = solvers.optimum(plain, R.kl(jnp.exp(lr_tab), tau))
  np.testing.assert_allclose(kl_opt.q, q_tree, rtol=0, atol=1e-10)
  # Regularized evaluation of an arbitrary policy: the linear solve against backward induction.
  pi = random_levels(rng, V, L, scale=2.0)
  vals = operators.evaluate(mdp, jnp.exp(tree.to_table(pi)), R.entropy(tau))
  ours = tree.evaluate(pi, jnp.asarray(r), log_ref=log_ref, beta=tau, gamma=gamma)
  np.testing.assert_allclose(vals.q - tau * lr_tab, tree.to_table(ours.q, terminal=0.0), rtol=0, atol=1e-10)


def test_tree_md_vi_equals_the_tabular_md_mpi():
  """Exact MD-VI(λ, τ) on the tree (KL to π_ref) = mdmpi.md_mpi on r̂ with q̂_0 = τ log π_ref, at every k."""
  rng = np.random.default_rng(6)
  V, L, gamma, lam, tau, K = 3, 3, 0.9, 0.3, 0.1, 8
  log_ref = random_levels(rng, V, L)
  r = rng.random(V ** L)
  mdp = tree.to_mdp(r, vocab_size=V, length=L, gamma=gamma, log_ref=log_ref, tau=tau, dtype=np.float64)
  lr_tab = tree.to_table(log_ref)
  res = md_mpi(mdp, lam=lam, tau=tau, num_iters=K, q0=tau * lr_tab, record_iterates=True)
  log_pi = tree.uniform_levels(V, L, np.float64)
  q = tuple(jnp.zeros((V ** t, V)) for t in range(L))
  for k in range(K):
    new = tree.md_greedy_levels(log_pi, log_ref, q, lam=lam, tau=tau)
    q = tree.md_backup(q, new, log_pi, log_ref, jnp.asarray(r), lam=lam, tau=tau, gamma=gamma)
    log_pi = new
    np.testing.assert_allclose(res.trace.log_pi[k], tree.to_table(log_pi), rtol=0, atol=1e-12)
    np.testing.assert_allclose(res.trace.q[k] - tau * lr_tab, tree.to_table(q, terminal=0.0), rtol=0, atol=1e-12)


def test_tree_munchausen_recursion_is_md_vi():
  """The study's M-VI backup (KL to π_ref form) has MD-VI(ατ_M, (1−α)τ_M)'s policies with exact greedy steps."""
  from mdptheory.studies import lm_mdvi
  rng = np.random.default_rng(7)
  V, L, gamma, lam, tau = 3, 3, 0.9, 0.45, 0.05
  log_ref = random_levels(rng, V, L)
  r = jnp.asarray(rng.random(V ** L))
  args = [jnp.asarray(x) for x in (lam, tau, gamma)]
  zero = tuple(jnp.zeros((V ** t, V)) for t in range(L))
  runs = {}
  for mvi in (False, True):
    beta, temp = lam / (lam + tau), lam + tau
    log_pi = tree.uniform_levels(V, L, np.float64)
    q = tuple(jnp.full((V ** t, V), beta * temp * -np.log(V) if mvi else 0.0) for t in range(L))
    pols = []
    for _ in range(10):
      new = lm_mdvi._target(log_pi, q, zero, log_ref, args[0], args[1], jnp.asarray(mvi))   # exact greedy step
      eps, q, _ = jax.jit(lm_mdvi._update)(log_pi, new, q, log_ref, r, *args, jnp.asarray(mvi))
      assert float(tree.sup_norm(eps)) < 1e-12                                      # no error was made
      log_pi = new
      pols.append(tree.to_table(log_pi))
    runs[mvi] = np.stack(pols)
  np.testing.assert_allclose(runs[True], runs[False], rtol=0, atol=1e-12)


def test_bon_law_matches_enumeration_of_every_tuple_with_ties():
  rng = np.random.default_rng(8)
  V, L, N = 2, 3, 3
  lp = np.asarray(jax.nn.log_softmax(jnp.asarray(rng.standard_normal(V ** L))))
  p = np.exp(lp)
  r = np.array([0.0, 1.0, 1.0, 2.0, 0.5, 2.0, 1.0, 0.0])   # ties
  brute = np.zeros(V ** L)
  for tup in itertools.product(range(V ** L), repeat=N):
    prob = np.prod(p[list(tup)])
    best = max(r[i] for i in tup)
    winners = [i for i in tup if r[i] == best]
    for i in winners:                                      # uniform tie-breaking among the tied samples
      brute[i] += prob / len(winners)
  ours = np.exp(np.asarray(tree.bon_log_probs(jnp.asarray(lp), jnp.asarray(r), num_samples=N)))
  np.testing.assert_allclose(ours, brute, rtol=0, atol=1e-14)
  for n in (1.0, 7.0, 300.0):
    lib = al.bon_law(p, r, num_samples=n)
    ours = np.exp(np.asarray(tree.bon_log_probs(jnp.asarray(lp), jnp.asarray(r), num_samples=n)))
    np.testing.assert_allclose(ours, np.exp(np.asarray(lib.log_pi)), rtol=0, atol=1e-12)


def test_nash_mp_step_over_sequences_matches_the_games_module():
  rng = np.random.default_rng(9)
  Y, beta = 9, 0.1
  U = rng.uniform(-0.5, 0.5, (Y, Y))
  P = 0.5 + 0.5 * (U - U.T)
  lp_ref = jax.nn.log_softmax(jnp.asarray(rng.standard_normal(Y)))
  game = PreferenceGame.create(P, pi_ref=np.exp(np.asarray(lp_ref)), dtype=np.float64)
  lp = jax.nn.log_softmax(jnp.asarray(rng.standard_normal(Y)))
  _, ours = tree.nash_mp_step(game.P[0], lp, jnp.log(game.pi_ref[0]), beta=beta, eta=2 * beta)
  ref_next, _ = games.nash_mp_step(game, lp[None], games.payoff(game, jnp.exp(lp)[None]), beta=beta, eta=2 * beta)
  np.testing.assert_allclose(ours, ref_next[0], rtol=0, atol=1e-13)


def test_bad_tree_inputs_raise_clear_errors():
  with pytest.raises(ParameterError, match="vocab_size V"):
    tree.check_sizes(1, 3)
  with pytest.raises(ParameterError, match="exceeds the enumerable limit"):
    tree.check_sizes(10, 9)
  with pytest.raises(ShapeError, match=r"reward must have shape \(V\^L,\)"):
    tree.to_mdp(np.zeros(5), vocab_size=2, length=3, gamma=0.9)
  with pytest.raises(ParameterError, match="pass log_ref"):
    tree.to_mdp(np.zeros(8), vocab_size=2, length=3, gamma=0.9, tau=0.1)
  with pytest.raises(ParameterError, match="gamma"):
    tree.to_mdp(np.zeros(8), vocab_size=2, length=3, gamma=1.0)
  with pytest.raises(InvalidMDPError, match="sums to"):
    tree.check_sequence_law("log_p", np.log(np.full(8, 0.2)), 2, 3)
  with pytest.raises(ParameterError, match="divisible by num_heads"):
    lm_model.TransformerConfig(width=30, num_heads=4)
  with pytest.raises(ParameterError, match="dtype"):
    lm_model.TransformerConfig(dtype="int8")


# -----------------------------------------------------------------------------
# The transformer
# -----------------------------------------------------------------------------


def test_every_parameter_has_the_configured_dtype_under_x64():
  """x64 is on, yet every parameter is float32 (float64 when asked), the logits too; the read-out is float64."""
  assert jax.config.jax_enable_x64
  leaves = lambda m: {x.dtype for x in jax.tree_util.tree_leaves(eqx.filter(m, eqx.is_inexact_array))}
  for dtype in ("float32", "float64"):
    cfg = dataclasses.replace(QUICK, dtype=dtype)
    # The JAX initializer, traced without compiling (shapes and dtypes only), and the numpy one.
    assert {x.dtype for x in jax.tree_util.tree_leaves(eqx.filter_eval_shape(lm_model.init, jax.random.key(0), cfg))
            if jnp.issubdtype(x.dtype, jnp.floating)} == {jnp.dtype(dtype)}
    model = lm_model.init_numpy(0, cfg)
    assert leaves(model) == {jnp.dtype(dtype)}
  model = lm_model.init_numpy(0, QUICK)
  assert lm_model.leaf_logits(model, 3, 4).dtype == jnp.float32
  assert all(x.dtype == jnp.float64 for x in lm_model.tree_log_probs(model, 3, 4))


def test_the_model_is_causal_and_the_tree_read_out_is_its_forward_pass():
  model = lm_model.init_numpy(1, QUICK)
  x = jnp.asarray([3, 0, 2, 1])                     # BOS = V = 3
  y = x.at[2:].set(jnp.asarray([1, 2]))
  a, b = lm_model.forward(model, x), lm_model.forward(model, y)
  np.testing.assert_array_equal(a[:2], b[:2])       # positions 0, 1 see only BOS, y_0, y_1 < 2
  assert not np.allclose(a[2:], b[2:])
  levels = lm_model.tree_log_probs(model, 3, 4)
  for t in range(4):
    for s, pre in enumerate(tree.prefixes(3, t)):
      tokens = jnp.asarray([3, *pre, *([0] * (3 - t))])
      direct = jax.nn.log_softmax(lm_model.forward(model, tokens)[t].astype(jnp.float64))
      # float32 logits: the batched and the single-sequence forward round differently (~1e-8).
      np.testing.assert_allclose(levels[t][s], direct, rtol=0, atol=1e-6)


def test_a_zero_head_gives_exactly_the_uniform_policy():
  model = lm_model.init_numpy(2, dataclasses.replace(QUICK, zero_head=True))
  for lv in lm_model.tree_log_probs(model, 3, 4):
    np.testing.assert_array_equal(lv, np.full(lv.shape, -np.log(3.0)))


# -----------------------------------------------------------------------------
# Fitting
# -----------------------------------------------------------------------------


def test_exact_loss_is_the_per_level_mean_kl_or_the_sequence_kl():
  rng = np.random.default_rng(10)
  model = lm_model.init_numpy(3, QUICK)
  target = random_levels(rng, 3, 4)
  mine = lm_model.tree_log_probs(model, 3, 4)
  rows = lm_fit.target_rows(target, 3, 4)
  per_level = sum(float(jnp.mean(k)) for k in tree.per_state_kl(target, mine))
  np.testing.assert_allclose(lm_fit.exact_loss(model, rows, lm_fit.uniform_weights(3, 4)), per_level, rtol=2e-5)
  seq = float(tree.sequence_kl(tree.sequence_log_probs(target), tree.sequence_log_probs(mine)))
  np.testing.assert_allclose(lm_fit.exact_loss(model, rows, lm_fit.occupancy_weights(target, 3, 4)), seq, rtol=2e-5)


def test_fitting_decreases_the_exact_loss_and_the_reference_lm_learns_the_source():
  ref = lm_fit.reference_lm(QUICK, steps=200)
  assert ref.losses[-1] < 1e-2 * ref.losses[0]
  src_kl = tree.sequence_kl(tree.sequence_log_probs(ref.log_source), tree.sequence_log_probs(ref.log_ref))
  np.testing.assert_allclose(ref.pretrain_kl, src_kl, rtol=1e-12)
  assert ref.pretrain_kl < 1e-2
  # A fresh model fitted to a new target: the loss falls, and the KL it measures (float64) falls with it.
  rng = np.random.default_rng(11)
  target = random_levels(rng, 3, 4)
  model = lm_model.init_numpy(4, QUICK)
  before = float(tree.trajectory_kl(target, lm_model.tree_log_probs(model, 3, 4)))
  res = lm_fit.train(model, lm_fit.init_opt_state(model), lm_fit.target_rows(target, 3, 4),
                     lm_fit.occupancy_weights(target, 3, 4), lr=1e-2, steps=30)
  after = float(tree.trajectory_kl(target, lm_model.tree_log_probs(res.model, 3, 4)))
  assert res.losses[-1] < 0.5 * res.losses[0] and after < 0.5 * before


def test_the_exact_loss_vmaps_like_a_loop_and_bad_fit_arguments_raise():
  """jax.vmap of the exact loss over three models and targets == a loop (float32: rtol 1e-5). The vmapped train
  loop itself (gradients, Adam) is compared with a loop in the slow test below."""
  rng = np.random.default_rng(12)
  targets = jnp.stack([lm_fit.target_rows(random_levels(rng, 3, 4), 3, 4) for _ in range(3)]).astype(jnp.float32)
  w = lm_fit.uniform_weights(3, 4)
  singles = [lm_model.init_numpy(30 + i, QUICK) for i in range(3)]
  stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs) if eqx.is_array(xs[0]) else xs[0], *singles)
  batched = eqx.filter_jit(eqx.filter_vmap(lm_fit._exact_loss, in_axes=(eqx.if_array(0), 0, None)))(
      stacked, targets, w)
  for i in range(3):
    np.testing.assert_allclose(batched[i], lm_fit.exact_loss(singles[i], targets[i], w), rtol=1e-5)
  m0 = singles[0]
  with pytest.raises(ParameterError, match="must divide"):
    lm_fit.fit(m0, lm_fit.init_opt_state(m0), targets[0], w, lr=1e-2, steps=1, chunk=4)
  with pytest.raises(ParameterError, match="multiple of block"):
    lm_fit.train(m0, lm_fit.init_opt_state(m0), targets[0], w, lr=1e-2, steps=15)
  with pytest.raises(ShapeError, match="weights must have shape"):
    lm_fit.fit(m0, lm_fit.init_opt_state(m0), targets[0], w[:, :2], lr=1e-2, steps=1)


@pytest.mark.slow
def test_fit_batched_equals_a_loop_of_fits_and_chunking_changes_nothing():
  """The vmapped train loop (seeds x learning rates) equals a loop of fits, and a chunked fit (lax.scan over
  path chunks, rematerialized) equals the unchunked one: two float32 Adam steps on a 1-layer model, from
  JAX-initialized models (``eqx.filter_vmap(init)``). Slow only because it compiles three train loops.

  Losses agree to rtol 1e-5. Parameters are compared through the exact loss after the steps (rtol 1e-4):
  Adam's first steps move each weight by about ±lr whatever |g| is, so the sign of a near-zero gradient,
  decided by rounding, makes individual weights an ill-conditioned comparison.
  """
  cfg = lm_model.TransformerConfig(vocab_size=2, length=3, width=8, num_layers=1, num_heads=1)
  rng = np.random.default_rng(13)
  targets = [lm_fit.target_rows(random_levels(rng, 2, 3), 2, 3) for _ in range(3)]
  w = lm_fit.uniform_weights(2, 3)
  keys = jax.random.split(jax.random.key(5), 3)
  models = eqx.filter_vmap(lambda k: lm_model.init(k, cfg))(keys)
  states = eqx.filter_vmap(lm_fit.init_opt_state)(models)
  lrs = [1e-2, 3e-3, 1e-3]
  batched = lm_fit.fit_batched(models, states, jnp.stack(targets), jnp.stack([w] * 3), lrs=lrs, steps=2)
  for i in range(3):
    m = jax.tree_util.tree_map(lambda x: x[i] if eqx.is_array(x) else x, models)
    one = lm_fit.fit(m, lm_fit.init_opt_state(m), targets[i], w, lr=lrs[i], steps=2)
    np.testing.assert_allclose(batched.losses[i], one.losses, rtol=1e-5)
    bm = jax.tree_util.tree_map(lambda x: x[i] if eqx.is_array(x) else x, batched.model)
    np.testing.assert_allclose(lm_fit.exact_loss(bm, targets[i], w), lm_fit.exact_loss(one.model, targets[i], w),
                               rtol=1e-4)
    if i == 0:
      chunked = lm_fit.fit(m, lm_fit.init_opt_state(m), targets[0], w, lr=lrs[0], steps=2, chunk=2)
      np.testing.assert_allclose(chunked.losses, one.losses, rtol=1e-5)


# -----------------------------------------------------------------------------
# Each claim group's check can fail
# -----------------------------------------------------------------------------


def _replicate(df: pd.DataFrame, n: int = 20) -> pd.DataFrame:
  """One real cell's frame relabelled as n seeds (the checks' statistical parts need >= 20)."""
  return pd.concat([df.assign(seed=i) for i in range(n)], ignore_index=True)


def _passed(study, df) -> dict[str, bool]:
  return {r.id: r.passed for r in study.check(df)}


def test_lm_mdvi_checks_can_fail():
  from mdptheory.studies import lm_mdvi
  df = _replicate(lm_mdvi.run(dataclasses.replace(lm_mdvi.Config.quick(), settings="soft_vi,mdvi,mvi")))
  assert _passed(lm_mdvi, df) == {"LM-a1": True, "LM-a2": True}
  bad = df.copy()
  bad.loc[bad.index[3], "err_sup"] = bad.loc[bad.index[3], "bound_err_sup"] * 1.01     # one error above its bound
  assert not _passed(lm_mdvi, bad)["LM-a1"]
  bad = df.copy()
  bad.loc[bad.index[0], "q_hat_sup"] = 2.0 * bad.loc[bad.index[0], "v_max"]           # a violated hypothesis
  assert not _passed(lm_mdvi, bad)["LM-a1"]
  bad = df.copy()
  last = bad["iteration"] == bad["iteration"].max()
  soft = bad.loc[last & (bad["setting"] == "soft_vi"), "err_sup"].to_numpy()
  bad.loc[last & (bad["setting"] == "mdvi"), "err_sup"] = soft * 1.5                   # averaging no better
  assert not _passed(lm_mdvi, bad)["LM-a2"]


def test_lm_nash_checks_can_fail():
  from mdptheory.studies import lm_nash
  df = lm_nash.run(lm_nash.Config.quick())
  assert _passed(lm_nash, df) == {"LM-b1": True, "LM-b2": True}
  bad = df.copy()
  bad.loc[bad.index[2], "kl_exact"] = bad.loc[bad.index[2], "bound_kl_exact"] * 1.001
  assert not _passed(lm_nash, bad)["LM-b1"]
  bad = df.copy()
  bad.loc[bad.index[1], "step_ratio"] = 1.01                                            # no contraction at k = 1
  assert not _passed(lm_nash, bad)["LM-b2"]
  bad = df.copy()
  bad.loc[bad.index[3], "kl_star"] = bad.loc[bad.index[3], "bound_kl_star"] * 1.001
  assert not _passed(lm_nash, bad)["LM-b2"]


def test_lm_bon_checks_can_fail():
  from mdptheory.studies import lm_bon
  df = _replicate(lm_bon.run(lm_bon.Config.quick()))
  assert _passed(lm_bon, df) == {"LM-c1": True, "LM-c2": True, "LM-c3": True}
  bad = df.copy()
  i = bad.index[(bad["part"] == "bon") & (bad["param"] > 1)][0]
  bad.loc[i, "kl"] = bad.loc[i, "bound_kl"] + 1e-6                                     # KL above log N - (N-1)/N
  assert not _passed(lm_bon, bad)["LM-c1"]
  bad = df.copy()
  bad["posterior_gap"] = 1e-9                                                           # token optimum != posterior
  assert not _passed(lm_bon, bad)["LM-c1"]
  bad = df.copy()
  i = bad.index[bad["part"] == "distill_bon"][0]
  bad.loc[i, "reward"] = bad.loc[i, "bound_reward"] + 1e-6                             # above the frontier
  assert not _passed(lm_bon, bad)["LM-c2"]
  bad = df.copy()
  over = bad["part"].str.startswith("overopt")
  bad.loc[over, "gain_end"] = bad.loc[over, "gain_peak"]                                # no over-optimization
  assert not _passed(lm_bon, bad)["LM-c3"]


def test_lm_demonstrations_checks_can_fail():
  from mdptheory.studies import lm_demonstrations as dem
  df = _replicate(dem.run(dem.Config.quick()))
  assert _passed(dem, df) == {"LM-d1": True, "LM-d2": True}
  bad = df.copy()
  bad["kl_bc_tab"] = 0.5                                                                # BC error does not fall
  assert not _passed(dem, bad)["LM-d1"]
  bad = df.copy()
  bad.loc[bad.index[1], "subopt_rl"] = bad.loc[bad.index[1], "bound_subopt_rl"] + 1e-6  # decomposition violated
  assert not _passed(dem, bad)["LM-d2"]
  with pytest.raises(ParameterError, match="n_experts"):
    dem.run(dataclasses.replace(dem.Config.quick(), n_experts="8,4096"))
