"""Every registered study follows the protocol, runs its quick sweep, and its claims pass."""

import dataclasses
import fcntl
import importlib
import os

import numpy as np
import pandas as pd
import pytest

from mdptheory import runner
from mdptheory.claims import CLAIMS, ClaimResult
from mdptheory.studies import STUDIES

_FRAMES: dict[str, pd.DataFrame] = {}


def quick_frame(name: str, tmp_path_factory) -> pd.DataFrame:
  """The study's quick sweep through the runner, once per test session.

  Under pytest-xdist the workers share one results folder (the runner's
  resumable store) and take a per-study file lock, so a sweep is computed by
  one worker and reused, cell by cell, by the others.
  """
  if name not in _FRAMES:
    study = runner.resolve_study(name)
    cells = runner.expand(study, quick=True)
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
      root = root.parent          # shared by every worker of this session
    out = root / "quick-results" / name
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "w") as lock:
      fcntl.flock(lock, fcntl.LOCK_EX)
      summary = runner.run_sweep(study, cells, out=out, progress=False)
    assert summary.ok and summary.computed + summary.reused == len(cells)
    _FRAMES[name] = summary.frame
  return _FRAMES[name].copy()


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_study_follows_the_protocol(name):
  study = importlib.import_module(STUDIES[name])
  runner.validate_study(study)
  assert study.__doc__ and CLAIMS  # a docstring naming the theorem
  assert any(c.study == name for c in CLAIMS.values())


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_study_quick_sweep_runs_and_its_claims_pass(name, tmp_path_factory, tmp_path):
  study = importlib.import_module(STUDIES[name])
  df = quick_frame(name, tmp_path_factory)
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
  study.plot(df).savefig(tmp_path / f"{name}.png")


BATCHED = sorted(n for n in STUDIES if hasattr(importlib.import_module(STUDIES[n]), "run_batch"))


@pytest.mark.parametrize("name", BATCHED)
def test_batched_cells_equal_cell_by_cell_runs(name):
  """run_batch (one jit(vmap) call) equals run() per cell, for cells differing in the BATCH fields."""
  study = importlib.import_module(STUDIES[name])
  small = {"num_states": 8, "num_actions": 3, "branching": 2, "num_iters": 20}
  fields = {f.name for f in dataclasses.fields(study.Config)}
  base = dataclasses.replace(study.Config.quick(), **{k: v for k, v in small.items() if k in fields})
  varied = [f for f in study.BATCH if f != "seed" and f in study.QUICK_GRID]
  cells = [dataclasses.replace(base, seed=i, **{f: study.QUICK_GRID[f][i % len(study.QUICK_GRID[f])]
                                                for f in varied}) for i in range(3)]
  batched = study.run_batch(cells)
  for cell, frame in zip(cells, batched):
    single = study.run(cell)
    pd.testing.assert_frame_equal(frame.reset_index(drop=True), single.reset_index(drop=True),
                                  check_exact=False, rtol=1e-12, atol=1e-13)


def test_a_claim_result_fails_on_a_violated_bound_or_nan():
  assert not ClaimResult.compare("RB-1", 1.1, 1.0).passed
  assert ClaimResult.compare("RB-1", 1.0 + 1e-12, 1.0, atol=1e-9).passed
  assert not ClaimResult.compare("RB-1", float("nan"), 1.0).passed
  assert ClaimResult.compare("X", 2.0, 1.0, sense=">=").passed


def test_the_rb1_check_fails_when_a_residual_grows(tmp_path_factory):
  """The check can fail: a residual trace that grows by more than gamma is caught."""
  study = importlib.import_module(STUDIES["rb_contraction"])
  bad = quick_frame("rb_contraction", tmp_path_factory).reset_index(drop=True)
  i = bad.index[bad["iteration"] == 5][0]
  bad.loc[i, "residual"] = bad.loc[i, "residual_prev"] * 1.5
  bad.loc[i, "step_ratio"] = 1.5
  assert not study.check(bad)[0].passed


def test_the_rb3_check_fails_when_a_bias_exceeds_its_bound(tmp_path_factory):
  study = importlib.import_module(STUDIES["rb_bias"])
  bad = quick_frame("rb_bias", tmp_path_factory).reset_index(drop=True)
  bad.loc[0, "bias_max"] = bad.loc[0, "bound_bias_max"] * 1.01 + 1e-6
  assert not study.check(bad)[0].passed
  assert np.isfinite(study.check(bad)[0].measured)


def test_the_la4_check_fails_when_one_component_exceeds_its_bound(tmp_path_factory):
  """LA-4 is checked component-wise too: one (s, a) above its bound at one k fails the claim."""
  study = importlib.import_module(STUDIES["la_averaging"])
  bad = quick_frame("la_averaging", tmp_path_factory).reset_index(drop=True)
  assert {r.id: r.passed for r in study.check(bad)}["LA-4"]
  i = bad.index[(bad["lam"] > 0) & (bad["iteration"] == 7)][0]
  bad.loc[i, "cw_excess"] = 1e-6
  assert not {r.id: r.passed for r in study.check(bad)}["LA-4"]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(STUDIES))
def test_study_paper_scale_sweep_claims_pass(name, tmp_path):
  """The default (paper-scale) configuration; deselected by default, run with `make test-all`."""
  study = runner.resolve_study(name)
  summary = runner.run_sweep(study, runner.expand(study, quick=False), out=tmp_path, progress=False)
  assert summary.ok
  assert all(r.passed for r in study.check(summary.frame))
