"""The mv_robustness study (MV-2, MV-3, MV-5, MV-6; THEORY.md §3.2–3.7): its checks can fail, and its new pieces.

The quick frame (20 Garnets, K = 200) is the one tests/test_studies.py computes, shared through its
``quick_frame`` cache. Each "can fail" test corrupts a copy of that passing frame in the way the claim forbids
and asserts that the check reports FAIL.
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from mdptheory import bounds
from mdptheory.claims import CLAIMS
from mdptheory.errors import ParameterError
from mdptheory.studies import mv_robustness as study
from test_studies import quick_frame


@pytest.fixture(scope="module")
def frame(tmp_path_factory) -> pd.DataFrame:
  """The quick sweep through the runner, shared with tests/test_studies.py (computed once per session)."""
  return quick_frame(study.NAME, tmp_path_factory).reset_index(drop=True)


def _result(df: pd.DataFrame, claim: str):
  (res,) = [r for r in study.check(df) if r.id == claim]
  return res


def test_every_claim_passes_on_the_quick_frame_and_is_registered(frame):
  results = study.check(frame)
  assert [r.id for r in results] == list(study.CLAIM_IDS)
  for r in results:
    print(r.id, f"{r.measured:.4g}", r.detail)
    assert r.passed, r
    assert CLAIMS[r.id].study == study.NAME
    assert CLAIMS[r.id].paper.startswith("Vieillard, Pietquin & Geist 2020 (arXiv 2007.14430)")
  assert "UNCONFIRMED" in CLAIMS["MV-3"].note


# -- MV-2 -------------------------------------------------------------------------------------------------

def test_mv2_check_fails_when_an_identity_breaks(frame):
  bad = frame.copy()
  i = bad.index[(bad["claim"] == "MV-2") & (bad["variant"] == "alpha=0 vs soft VI") & (bad["iteration"] == 50)][0]
  bad.loc[i, "gap"] = 3 * study.IDENTITY_TOL
  assert not _result(bad, "MV-2").passed


def test_mv2_check_fails_when_a_gap_is_not_finite(frame):
  """A NaN gap (e.g. log 0 in the ln pi form) must not be skipped by the maximum."""
  bad = frame.copy()
  i = bad.index[(bad["claim"] == "MV-2") & bad["variant"].str.startswith("lse") & (bad["iteration"] == 20)][0]
  bad.loc[i, "gap"] = np.nan
  assert not _result(bad, "MV-2").passed


def test_mv2_check_fails_when_the_al_one_step_gap_exceeds_max_alpha_gamma_tau_ln_a(frame):
  bad = frame.copy()
  rows = (bad["claim"] == "MV-2") & (bad["variant"] == "tau=1e-6 vs AL, one step") & (bad["iteration"] == 7)
  bad.loc[rows, "gap"] = bad.loc[rows, "bound_gap"] + 1e-9
  assert not _result(bad, "MV-2").passed


def test_mv2_al_one_step_tolerance_is_attained(frame):
  """The gap −α b(s) + γ b(s'), b = τ lse(q/τ) − max q ∈ [0, τ ln|A|], reaches max(α, γ) τ ln|A| when the
  actions of one of s, s' all tie (b = τ ln|A|) and the other has a clear gap (b ≈ 0), as happens in the
  first updates from q_0 = 0: the tolerance is tight, not loose."""
  part = frame[(frame["claim"] == "MV-2") & (frame["variant"] == "tau=1e-6 vs AL, one step")]
  worst = (part["gap"] / part["bound_gap"]).groupby(part["alpha"]).max()
  print(worst)
  assert len(worst) == len(study.AL_ALPHAS) and (worst > 1 - 1e-6).all()
  assert (part["gap"] <= part["bound_gap"] + study.ROUND_OFF).all()


def test_mv2_ln_pi_form_is_the_lse_form_also_with_the_clip_binding(frame):
  part = frame[(frame["claim"] == "MV-2") & frame["variant"].str.startswith("lse")]
  clipped = part[part["variant"].str.contains("clip")]
  assert (clipped.groupby(["alpha", "tau"])["clip_fraction"].max() > 0).all()   # the clip was exercised
  assert part["gap"].max() <= study.IDENTITY_TOL


# -- MV-3 -------------------------------------------------------------------------------------------------

def test_mv3_check_fails_when_the_bound_is_violated_once(frame):
  bad = frame.copy()
  i = bad.index[(bad["claim"] == "MV-3") & (bad["iteration"] == 100)][0]
  bad.loc[i, "err_sup"] = bad.loc[i, "bound_err_sup"] * 1.001 + 1e-6
  res = _result(bad, "MV-3")
  assert not res.passed and res.measured > 1.0


def test_munchausen_alpha1_bound_is_theorem1_with_lam_tau():
  """The derived α = 1 form: 2/(1−γ) avg + 4 (r_max + τ ln|A|)/((1−γ)² k), elementwise and traceable in τ."""
  avg, k = np.array([0.3, 0.1, 0.05]), np.array([1, 2, 3])
  gamma, r_max, tau, A = 0.9, 0.8, 0.1, 4
  expected = 2 / (1 - gamma) * avg + 4 * (r_max + tau * math.log(A)) / ((1 - gamma) ** 2 * k)
  got = bounds.munchausen_alpha1_linf(avg, k, gamma=gamma, r_max=r_max, tau=tau, num_actions=A)
  np.testing.assert_allclose(got, expected, rtol=1e-14)
  taus = jnp.array([0.01, 0.1, 1.0])
  batched = jax.jit(jax.vmap(lambda t: bounds.munchausen_alpha1_linf(avg, k, gamma=gamma, r_max=r_max, tau=t,
                                                                     num_actions=A)))(taus)
  np.testing.assert_allclose(batched[1], expected, rtol=1e-14)


# -- MV-5 -------------------------------------------------------------------------------------------------

def test_mv5_check_fails_when_policies_differ_before_the_first_clip(frame):
  bad = frame.copy()
  pre = (bad["claim"] == "MV-5") & (bad["clipped_so_far"] == 0)
  assert pre.any()
  bad.loc[bad.index[pre][0], "logit_gap"] = 1e-8
  assert not _result(bad, "MV-5").passed


def test_mv5_check_fails_when_the_policies_do_not_depart_after_the_clip(frame):
  bad = frame.copy()
  post = (bad["claim"] == "MV-5") & (bad["clipped_so_far"] > 0)
  bad.loc[bad.index[post][0], "logit_gap"] = 0.0
  assert not _result(bad, "MV-5").passed


def test_mv5_check_fails_when_the_clip_never_binds(frame):
  """Without any clipped update the departure cannot be observed: the claim is not checked, so it fails."""
  part = frame[frame["claim"] == "MV-5"].copy()
  part["clip_fraction"] = 0.0
  part["clipped_so_far"] = 0
  part["policy_gap"] = 0.0
  part["logit_gap"] = 0.0
  assert not _result(part, "MV-5").passed


# -- MV-6 -------------------------------------------------------------------------------------------------

def test_mv6_check_fails_when_munchausen_is_not_better(frame):
  bad = frame.copy()
  part = (bad["claim"] == "MV-6")
  soft = bad.loc[part & (bad["alpha"] == 0.0), "err_sup"].to_numpy()
  bad.loc[part & (bad["alpha"] == 0.99), "err_sup"] = soft * 1.5
  res = _result(bad, "MV-6")
  assert not res.passed and res.measured > 1.0


def test_mv6_check_fails_with_fewer_than_20_garnets(frame):
  small = frame[(frame["claim"] == "MV-6") & (frame["seed"] < study.MIN_GARNETS - 1)]
  assert not _result(small, "MV-6").passed


def test_mv6_compares_at_the_same_entropy_temperature(frame):
  part = frame[frame["claim"] == "MV-6"]
  np.testing.assert_allclose(part["tau"] * (1 - part["alpha"]), part["tau_prime"], rtol=1e-12)


# -- protocol details --------------------------------------------------------------------------------------

@pytest.mark.parametrize("change,match", [
    (dict(claim="MV-4"), "claim"), (dict(gamma=1.0), "gamma"), (dict(tau_prime=0.0), "tau_prime"),
    (dict(num_iters=0), "num_iters"), (dict(branching=40), "branching"),
])
def test_bad_configs_are_refused_before_compiling(change, match):
  with pytest.raises(ParameterError, match=match):
    study.run_batch([dataclasses.replace(study.Config(), **change)])


def test_a_batch_must_share_everything_but_the_seed():
  with pytest.raises(ParameterError, match="only in their seed"):
    study.run_batch([study.Config(claim="MV-3"), study.Config(claim="MV-6", seed=1)])


def test_the_figure_draws_a_partial_sweep(frame, tmp_path):
  fig = study.plot(frame[frame["claim"] == "MV-6"])
  fig.savefig(tmp_path / "partial.png")
  assert len(fig.subfigs) == 6
