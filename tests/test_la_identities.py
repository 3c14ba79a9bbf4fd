"""The checks of ``la_identities`` (LA-1, 2, 9, 10, 11, 12) and ``la_noise`` (LA-5b) can fail, and their helpers.

The frames are the studies' quick sweeps, shared with ``tests/test_studies.py`` (computed once per session).
Each "can fail" test corrupts the frame in the way the claim forbids and asserts that the check reports FAIL.
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from mdptheory import noise as N
from mdptheory.algorithms.mdmpi import md_mpi
from mdptheory.envs.tabular import garnet_mdp
from mdptheory.errors import ParameterError
from mdptheory.studies import la_identities as LI
from mdptheory.studies import la_noise as LN
from test_studies import quick_frame


@pytest.fixture(scope="module")
def ident(tmp_path_factory):
  return quick_frame("la_identities", tmp_path_factory)


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
  return quick_frame("la_noise", tmp_path_factory)


def _result(check, df, claim):
  (res,) = [r for r in check(df) if r.id == claim]
  return res


def test_the_quick_frames_pass_before_they_are_corrupted(ident, noisy):
  assert all(r.passed for r in LI.check(ident)) and len(LI.check(ident)) == 6
  assert all(r.passed for r in LN.check(noisy))


# ----------------------------------------------------------------------------- la_identities


def test_la1_fails_when_md_and_da_policies_differ(ident):
  bad = ident.copy()
  i = bad.index[(bad["claim"] == "LA-1") & (bad["tau"] > 0)][5]
  bad.loc[i, "measured"] = 1e-9                        # above the 1e-10 tolerance of tau > 0
  assert not _result(LI.check, bad, "LA-1").passed
  bad = ident.copy()
  i = bad.index[(bad["claim"] == "LA-1") & (bad["lam"] == 0.01)][-1]
  bad.loc[i, "measured"] = 2 * bad.loc[i, "bound_measured"]   # above the scaled tolerance of tau = 0
  assert not _result(LI.check, bad, "LA-1").passed
  bad = ident.copy()
  bad.loc[bad.index[bad["claim"] == "LA-1"][3], "aux"] = 1e-6  # CVI departs
  assert not _result(LI.check, bad, "LA-1").passed


def test_la2_fails_when_slsqp_beats_the_closed_form_or_the_value_identity_breaks(ident):
  bad = ident.copy()
  bad.loc[bad.index[bad["claim"] == "LA-2"][7], "measured"] = 1e-6
  assert not _result(LI.check, bad, "LA-2").passed
  bad = ident.copy()
  bad.loc[bad.index[bad["claim"] == "LA-2"][7], "aux"] = 1e-8
  assert not _result(LI.check, bad, "LA-2").passed


def test_la9_fails_on_a_variance_off_by_five_percent(ident):
  bad = ident.copy()
  i = bad.index[bad["claim"] == "LA-9"][2]
  bad.loc[i, "value"] = 1.05 * bad.loc[i, "target"]
  bad.loc[i, "measured"] = 0.05
  assert not _result(LI.check, bad, "LA-9").passed


def test_la10_fails_on_a_biased_fixed_point_or_a_violated_deterministic_bound(ident):
  bad = ident.copy()
  part = bad[bad["claim"] == "LA-10"]
  i = part.index[(part["tau"] > 0) & (part["iteration"] == part["iteration"].max())][0]
  bad.loc[i, "measured"] = 1e-6                        # converged to the wrong point
  assert not _result(LI.check, bad, "LA-10").passed
  bad = ident.copy()
  i = part.index[(part["tau"] == 0) & (part["iteration"] == 20)][0]
  bad.loc[i, "measured"] = bad.loc[i, "bound_measured"] * 1.01
  assert not _result(LI.check, bad, "LA-10").passed


def test_la11_fails_when_the_entropy_bias_exceeds_its_bound(ident):
  bad = ident.copy()
  i = bad.index[bad["claim"] == "LA-11"][1]
  bad.loc[i, "measured"] = bad.loc[i, "bound_measured"] * 1.001
  res = _result(LI.check, bad, "LA-11")
  assert not res.passed and res.measured > 1
  bad = ident.copy()
  bad.loc[bad.index[bad["claim"] == "LA-11"][1], "aux"] = -1e-3   # a policy better than the optimum
  assert not _result(LI.check, bad, "LA-11").passed


def test_la12_fails_when_policies_differ_on_the_premise_or_the_premise_never_holds(ident):
  part = ident[ident["claim"] == "LA-12"]
  assert (part["value"] > 0).any()
  bad = ident.copy()
  bad.loc[part.index[(part["value"] > 0) & (part["iteration"] == 30)][0], "measured"] = 1.0
  assert not _result(LI.check, bad, "LA-12").passed
  bad = ident.copy()
  bad.loc[part.index, "value"] = 0.0
  res = _result(LI.check, bad, "LA-12")
  assert not res.passed and math.isnan(res.measured)


def test_la_identities_objective_and_bad_input():
  """The numpy objective of LA-2 by hand; an unknown check or too few draws is refused."""
  q, mu, p = np.array([1.0, -0.5, 2.0]), np.array([0.2, 0.3, 0.5]), np.array([0.5, 0.0, 0.5])
  lam, tau = 0.3, 0.2
  plogp = 0.5 * math.log(0.5) * 2
  expected = 1.5 - lam * (plogp - 0.5 * math.log(0.2) - 0.5 * math.log(0.5)) - tau * plogp
  assert LI._objective(p, q, np.log(mu), lam, tau) == pytest.approx(expected, rel=0, abs=1e-14)
  with pytest.raises(ParameterError, match="LA-7"):
    LI.run(LI.Config(check="LA-7"))
  with pytest.raises(ParameterError, match="num_draws"):
    LI.run(LI.Config(check="LA-9", num_draws=10))


# ----------------------------------------------------------------------------- la_noise


def _final(df):
  return df["iteration"] == df["iteration"].max()


def test_la5b_fails_when_averaging_does_not_beat_accumulation(noisy):
  bad = noisy.copy()
  sel = _final(bad) & (bad["noise"] == "N2") & (bad["lam"] > 0)
  bad.loc[sel, "err_sup"] *= 20
  bad.loc[sel, "bound_err_sup"] *= 20                  # keep Theorem 1 intact: only the comparison breaks
  res = LN.check(bad)[0]
  assert not res.passed and res.measured > LN.RATIO


def test_la5b_fails_when_the_bias_floor_vanishes_or_exceeds_its_bound(noisy):
  bad = noisy.copy()
  sel = _final(bad) & (bad["noise"] == "N3") & (bad["lam"] > 0)
  bad.loc[sel, "err_sup"] = 1e-4                        # the floor vanished
  assert not LN.check(bad)[0].passed
  bad = noisy.copy()
  i = bad.index[sel][0]
  bad.loc[i, "err_sup"] = bad.loc[i, "floor_bound"] + 10.0     # g1(K) < 2 in the quick sweep
  bad.loc[i, "bound_err_sup"] = bad.loc[i, "err_sup"] + 1.0
  assert not LN.check(bad)[0].passed


def test_la5b_fails_when_theorem1_is_violated_at_one_iteration(noisy):
  bad = noisy.copy()
  md = bad.index[(bad["noise"] == "N4") & (bad["lam"] > 0)]
  i = md[len(md) // 2]
  bad.loc[i, "err_sup"] = bad.loc[i, "bound_err_sup"] * 1.01
  assert not LN.check(bad)[0].passed


@pytest.mark.slow
def test_la_noise_cells_use_the_library_error_models(noisy):
  """The study's traced model selector gives the run of md_mpi with the mdptheory.noise object itself: N3 with
  the study's b (random signs from the Garnet's key), N4 with the numpy t draws replayed by noise.sequence
  (checked on the quick sweep's seed-3 runs); the t draws follow t_nu (Kolmogorov-Smirnov test).

  Slow (two more MD-VI compilations, ~7 s of CPU): the default run stays within the suite's time budget."""
  cfg = dataclasses.replace(LN.Config.quick(), seed=3, lam=0.1)
  S, A = cfg.num_states, cfg.num_actions
  key = jax.random.key(cfg.seed)
  mdp = garnet_mdp(key, S, A, cfg.branching, cfg.gamma)
  b = cfg.bias * jnp.where(jax.random.bernoulli(jax.random.fold_in(key, 5), 0.5, (S, A)), 1.0, -1.0)
  v_max = float(jnp.max(jnp.abs(mdp.r))) / (1 - cfg.gamma)
  for name, model in (("N3", N.biased(b, cfg.sigma)), ("N4", N.sequence(LN._student_t(cfg, cfg.seed)))):
    frame = noisy[(noisy["noise"] == name) & (noisy["lam"] == cfg.lam) & (noisy["seed"] == cfg.seed)]
    direct = md_mpi(mdp, lam=cfg.lam, tau=0.0, num_iters=cfg.num_iters, noise=model, key=jax.random.fold_in(key, 2),
                    clip=v_max)
    rows = frame["iteration"].to_numpy() - 1
    np.testing.assert_allclose(frame["eps_sup"], np.asarray(direct.trace.eps_sup)[rows], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(frame["q_sup"], np.asarray(direct.trace.q_sup)[rows], rtol=1e-10, atol=1e-13)
  draws = LN._student_t(dataclasses.replace(cfg, num_iters=2000), 0).ravel() / cfg.t_scale
  assert stats.kstest(draws, stats.t(cfg.t_df).cdf).pvalue > 1e-3
  with pytest.raises(ParameterError, match="N6"):
    LN.run(dataclasses.replace(cfg, noise="N6"))
