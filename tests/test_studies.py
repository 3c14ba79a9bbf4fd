"""Every registered study runs in its quick configuration, and its claims pass."""

import importlib

import pandas as pd
import pytest

from mdptheory.claims import CLAIMS, ClaimResult
from mdptheory.studies import STUDIES


_FRAMES: dict[str, pd.DataFrame] = {}


def quick_frame(name: str) -> pd.DataFrame:
  """The study's quick-config frame, computed once per test session."""
  if name not in _FRAMES:
    study = importlib.import_module(STUDIES[name])
    _FRAMES[name] = study.run(study.Config.quick())
  return _FRAMES[name].copy()


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_study_quick_config_runs_and_its_claims_pass(name, tmp_path):
  study = importlib.import_module(STUDIES[name])
  df = quick_frame(name)
  assert isinstance(df, pd.DataFrame) and len(df) > 0
  assert {"study", "seed"} <= set(df.columns)
  # Every bound column sits beside a measured column of the same name.
  for col in df.columns:
    if col.startswith("bound_"):
      assert col[len("bound_"):] in df.columns, col
  results = study.check(df)
  assert results and all(isinstance(r, ClaimResult) for r in results)
  for r in results:
    assert CLAIMS[r.id].study == name
    assert r.passed, r
  fig = study.plot(df)
  fig.savefig(tmp_path / f"{name}.png")


def test_a_claim_result_fails_on_a_violated_bound_or_nan():
  assert not ClaimResult.compare("RB-1", 1.1, 1.0).passed
  assert ClaimResult.compare("RB-1", 1.0 + 1e-12, 1.0, atol=1e-9).passed
  assert not ClaimResult.compare("RB-1", float("nan"), 1.0).passed
  assert ClaimResult.compare("X", 2.0, 1.0, sense=">=").passed


def test_the_rb1_check_fails_when_a_residual_grows():
  """The check can fail: a residual trace that grows by more than gamma is caught."""
  study = importlib.import_module(STUDIES["rb_contraction"])
  bad = quick_frame("rb_contraction")
  i = bad.index[(bad["iteration"] == 5)][0]
  bad.loc[i, "residual"] = bad.loc[i, "residual_prev"] * 1.5
  bad.loc[i, "step_ratio"] = 1.5
  assert not study.check(bad)[0].passed


def test_the_rb3_check_fails_when_a_bias_exceeds_its_bound():
  study = importlib.import_module(STUDIES["rb_bias"])
  bad = quick_frame("rb_bias")
  bad.loc[bad.index[0], "bias_max"] = bad.loc[bad.index[0], "bound_bias_max"] * 1.01 + 1e-6
  assert not study.check(bad)[0].passed
