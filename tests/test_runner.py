"""The sweep runner: grids, cell identity, batching, workers, reuse and the lock (mdptheory.runner)."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

import _toy_study as toy
from mdptheory.errors import ParameterError
from mdptheory.runner import (SweepSummary, StoreLockedError, StudyLock, cell_hash, cell_payload, expand,
                              load_results, parse_set, read_cell, resolve_study, run_sweep, study_dir)
from mdptheory.runner import execute, grid
from mdptheory.runner.store import is_cell_dir

def sweep(cells, out, **kwargs) -> SweepSummary:
  kwargs.setdefault("progress", False)
  kwargs.setdefault("log", None)
  return run_sweep(toy, cells, out=out, **kwargs)


def reference_frame(cells) -> pd.DataFrame:
  """The cells computed one by one with ``run``, outside the runner."""
  return pd.concat([toy.run(c) for c in cells], ignore_index=True)


@pytest.fixture(autouse=True)
def _reset_calls():
  toy.CALLS.update(run=0, run_batch=0, batch_sizes=[])


# ----------------------------------------------------------------------------- grids


def test_expand_is_the_grid_product_times_seeds_in_canonical_order():
  cells = expand(toy, quick=False)
  # GRID = rate (0.5, 0.9) x length (6, 8), SEEDS = 3; Config field order (rate, length), seed innermost.
  assert [(c.rate, c.length, c.seed) for c in cells] == [
      (r, n, s) for r in (0.5, 0.9) for n in (6, 8) for s in range(3)]
  quick = expand(toy, quick=True)
  assert [(c.rate, c.length, c.seed) for c in quick] == [(r, 4, s) for r in (0.5, 0.9) for s in range(2)]
  assert len(expand(toy, quick=True, seeds=5)) == 10
  assert all(isinstance(c, toy.Config) for c in cells)


def test_overrides_are_parsed_to_the_field_types():
  sets = parse_set(["rate=0.1, 1", "length=3", "flag=true,no", "label=x"])
  assert sets == {"rate": ["0.1", "1"], "length": ["3"], "flag": ["true", "no"], "label": ["x"]}
  cells = expand(toy, quick=True, overrides=sets, seeds=1)
  assert [(c.rate, c.flag) for c in cells] == [(0.1, True), (0.1, False), (1.0, True), (1.0, False)]
  assert all(type(c.rate) is float and type(c.length) is int and c.length == 3 and c.label == "x" for c in cells)
  # A list of values (Python or strings) and a comma-separated string are the same override.
  a = expand(toy, quick=True, overrides={"rate": [0.25, "0.75"], "length": [5]})
  b = expand(toy, quick=True, overrides={"rate": "0.25,0.75", "length": "5"})
  assert a == b and [c.rate for c in a] == [0.25, 0.25, 0.75, 0.75]


@pytest.mark.parametrize("overrides, seeds, match", [
    ({"gamma": "0.9"}, None, r"unknown field 'gamma'; valid fields: \['rate', 'length', 'label'"),
    ({"rate": "fast"}, None, r"rate='fast' is not a valid float"),
    ({"length": "2.5"}, None, r"length='2.5' is not a valid int"),
    ({"length": [2.0]}, None, r"length=2.0 is not a valid int"),
    ({"length": [True]}, None, r"length=True is not a valid int"),
    ({"flag": "maybe"}, None, r"flag='maybe' is not a valid bool.*true/false"),
    ({"rate": "nan"}, None, r"rate='nan' is not a valid float"),
    ({"rate": ""}, None, r"rate has no values"),
    ({"rate": []}, None, r"rate has no values"),
    ({"rate": "0.1,0.10"}, None, r"rate lists 0.1 more than once"),
    ({"seed": "1,2"}, None, r"`seed` cannot be swept; use seeds"),
    (None, 0, r"seeds=0 must be an integer >= 1"),
    (None, 2.0, r"seeds=2.0 must be an integer >= 1"),
])
def test_expand_rejects_bad_overrides_naming_the_value(overrides, seeds, match):
  with pytest.raises(ParameterError, match=match):
    expand(toy, quick=True, overrides=overrides, seeds=seeds)


def test_unknown_study_lists_the_registered_ones():
  from mdptheory.studies import STUDIES
  with pytest.raises(ParameterError, match="unknown study 'nope'") as info:
    expand("nope", quick=True)
  assert str(sorted(STUDIES)) in str(info.value)


def test_a_module_that_breaks_the_protocol_is_named():
  import types
  bad = types.ModuleType("bad_study")
  bad.NAME = "bad"
  with pytest.raises(ParameterError, match=r"bad_study lacks \['VERSION', 'Config'"):
    resolve_study(bad)


@pytest.mark.parametrize("items, match", [
    (["rate"], "expected field=value"),
    (["=0.1"], "expected field=value"),
    (["rate=0.1", "rate=0.2"], "given twice"),
    (["rate=0.1,,0.2"], "empty value"),
])
def test_parse_set_rejects_malformed_items(items, match):
  with pytest.raises(ParameterError, match=match):
    parse_set(items)


def test_cell_hash_is_canonical_json_of_study_version_package_and_config():
  cfg = toy.Config(rate=0.1, seed=3)
  payload = cell_payload(toy, cfg)
  import mdptheory
  assert payload["package"] == mdptheory.__version__ and payload["version"] == toy.VERSION
  text = grid.canonical_json(payload)
  assert '"rate":0.1,' in text and text.index('"config"') < text.index('"package"')  # repr floats, sorted keys
  h = cell_hash(toy, cfg)
  assert len(h) == 16 and int(h, 16) >= 0
  assert cell_hash(toy, toy.Config(rate=0.1, seed=3)) == h
  assert cell_hash(toy, toy.Config(rate=1, seed=3)) == cell_hash(toy, toy.Config(rate=1.0, seed=3))
  assert cell_hash(toy, toy.Config(rate=0.1, seed=4)) != h
  # float32 and float64 results are different results: the precision is part of the identity.
  import jax
  assert payload["dtype"] == "float64"
  jax.config.update("jax_enable_x64", False)
  try:
    assert cell_hash(toy, cfg) != h
  finally:
    jax.config.update("jax_enable_x64", True)


# ----------------------------------------------------------------------------- execution


def test_cells_are_grouped_by_non_batch_fields_and_chunked():
  cells = expand(toy, quick=False)  # 2 lengths (not in BATCH) x 2 rates x 3 seeds
  configs = [grid.config_dict(c) for c in cells]
  hashes = [cell_hash(toy, c) for c in cells]
  tasks = execute.make_tasks(toy, configs, hashes, chunk=256)
  assert [len(t.hashes) for t in tasks] == [6, 6] and all(t.use_batch for t in tasks)
  assert [{c["length"] for c in t.configs} for t in tasks] == [{6}, {8}]
  assert [h for t in tasks for h in t.hashes] != hashes  # grouping reorders; the frame does not (below)
  tasks = execute.make_tasks(toy, configs, hashes, chunk=4)
  assert [len(t.hashes) for t in tasks] == [3, 3, 3, 3]
  tasks = execute.make_tasks(toy, configs, hashes, chunk=1)
  assert len(tasks) == 12 and not any(t.use_batch for t in tasks)


def test_batched_sweep_equals_cell_by_cell_runs(tmp_path):
  cells = expand(toy, quick=False)
  batched = sweep(cells, tmp_path / "batched")
  assert toy.CALLS["run_batch"] == 2 and toy.CALLS["batch_sizes"] == [6, 6] and toy.CALLS["run"] == 0
  single = sweep(cells, tmp_path / "single", max_batch=1)
  assert toy.CALLS["run"] == 12 and toy.CALLS["run_batch"] == 2
  pd.testing.assert_frame_equal(batched.frame, single.frame)
  pd.testing.assert_frame_equal(batched.frame, reference_frame(cells))
  assert (batched.computed, batched.reused, batched.failed, batched.diverged) == (12, 0, [], [])
  meta = json.loads((batched.out / cell_hash(toy, cells[0]) / "meta.json").read_text())
  assert meta["batched"] and meta["batch_size"] == 6 and meta["status"] == "complete"
  assert meta["dtype"] == "float64" and meta["device"] == "cpu" and meta["seed"] == 0
  assert set(meta["versions"]) >= {"numpy", "jax", "pandas", "mdptheory"} and "git_commit" in meta


def test_one_and_two_workers_give_identical_frames(tmp_path):
  cells = expand(toy, quick=False)
  one = sweep(cells, tmp_path / "one", workers=1)
  two = sweep(cells, tmp_path / "two", workers=2)
  pd.testing.assert_frame_equal(one.frame, two.frame)
  assert two.computed == len(cells)
  pids = {json.loads((two.out / cell_hash(toy, c) / "meta.json").read_text())["pid"] for c in cells}
  assert os.getpid() not in pids  # computed in spawned workers (one may take both tasks if the other is slow)
  x64 = {json.loads((two.out / cell_hash(toy, c) / "meta.json").read_text())["dtype"] for c in cells}
  assert x64 == {"float64"}  # the workers enabled x64 like the parent


def test_rerun_reuses_force_recomputes_and_version_or_deletion_makes_cells_pending(tmp_path, monkeypatch):
  cells = expand(toy, quick=True)
  first = sweep(cells, tmp_path)
  assert (first.computed, first.reused) == (4, 0)
  again = sweep(cells, tmp_path)
  assert (again.computed, again.reused) == (0, 4) and "computed 0, reused 4" in again.report()
  pd.testing.assert_frame_equal(first.frame, again.frame)
  forced = sweep(cells, tmp_path, force=True)
  assert (forced.computed, forced.reused) == (4, 0)
  pd.testing.assert_frame_equal(first.frame, forced.frame)
  root = study_dir(tmp_path, toy)
  shutil.rmtree(root / cell_hash(toy, cells[2]))
  toy.CALLS.update(run=0, run_batch=0)
  partial = sweep(cells, tmp_path)
  assert (partial.computed, partial.reused) == (1, 3)
  # The missing cell's whole chunk is recomputed (so it is bit-identical to the first run); only it is written.
  assert toy.CALLS["run"] == 0 and toy.CALLS["run_batch"] == 1
  pd.testing.assert_frame_equal(first.frame, partial.frame)
  # A corrupt (or tampered) cell is stale and recomputed.
  (root / cell_hash(toy, cells[1]) / "result.parquet").write_bytes(b"not parquet")
  cfg_path = root / cell_hash(toy, cells[3]) / "config.json"
  cfg_path.write_text(cfg_path.read_text().replace('"seed": 1', '"seed": 7'))
  stale = sweep(cells, tmp_path)
  assert (stale.computed, stale.reused) == (2, 2)
  pd.testing.assert_frame_equal(first.frame, stale.frame)
  # A new study VERSION changes every cell's hash.
  monkeypatch.setattr(toy, "VERSION", "2")
  bumped = sweep(cells, tmp_path)
  assert (bumped.computed, bumped.reused) == (4, 0)
  assert len([p for p in root.iterdir() if is_cell_dir(p)]) == 8  # old cells are kept
  index = pd.read_parquet(root / "index.parquet")
  assert len(index) == 8 and set(index["version"]) == {"1", "2"} and set(index["status"]) == {"complete"}
  assert {"hash", "rate", "seed", "length"} <= set(index.columns)


def test_load_results_reads_the_stored_cells_in_cell_order(tmp_path):
  cells = expand(toy, quick=True, seeds=3)
  summary = sweep(cells, tmp_path)
  pd.testing.assert_frame_equal(load_results(toy, cells, tmp_path), summary.frame)
  pd.testing.assert_frame_equal(load_results(toy, cells[::-1], tmp_path), reference_frame(cells[::-1]))
  assert load_results(toy, expand(toy, quick=False), tmp_path).empty  # nothing stored for these
  cell = read_cell(study_dir(tmp_path, toy), cell_hash(toy, cells[0]))
  assert cell.status == "complete" and cell.config["config"]["rate"] == 0.5


def test_sweep_rejects_bad_arguments(tmp_path):
  cells = expand(toy, quick=True)
  with pytest.raises(ParameterError, match=r"backend='dask'; valid backends: \['local', 'ray'\]"):
    sweep(cells, tmp_path, backend="dask")
  with pytest.raises(ParameterError, match="workers=0 must be an integer >= 1"):
    sweep(cells, tmp_path, workers=0)
  with pytest.raises(ParameterError, match="listed more than once"):
    sweep(cells + cells[:1], tmp_path)
  with pytest.raises(ParameterError, match="is not a _toy_study.Config"):
    sweep([dataclasses.asdict(cells[0])], tmp_path)


# ----------------------------------------------------------------------------- the lock


def test_a_second_writer_gets_a_clear_error(tmp_path):
  cells = expand(toy, quick=True)
  root = study_dir(tmp_path, toy)
  with StudyLock(root):
    with pytest.raises(StoreLockedError, match=rf"{root} is being written by pid {os.getpid()}"):
      sweep(cells, tmp_path)
    with pytest.raises(StoreLockedError):
      StudyLock(root).acquire()
  assert sweep(cells, tmp_path).computed == 4  # released


def test_a_writer_in_another_process_holds_the_lock(tmp_path):
  root = study_dir(tmp_path, toy)
  code = textwrap.dedent(f"""
      import sys
      from mdptheory.runner.store import StudyLock
      with StudyLock({str(root)!r}):
          print("locked", flush=True)
          sys.stdin.readline()
  """)
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                          text=True)
  try:
    assert proc.stdout.readline().strip() == "locked"
    with pytest.raises(StoreLockedError, match=rf"{root} is being written by pid {proc.pid};") as info:
      sweep(expand(toy, quick=True), tmp_path)
    assert "another --out folder" in str(info.value)
  finally:
    proc.communicate("\n", timeout=30)
  assert proc.returncode == 0
  assert sweep(expand(toy, quick=True), tmp_path).computed == 4


# ----------------------------------------------------------------------------- ray


def test_ray_backend_on_an_embedded_cluster_matches_local(tmp_path):
  ray = pytest.importorskip("ray")
  cells = expand(toy, quick=True)
  local = sweep(cells, tmp_path / "local")
  remote = sweep(cells, tmp_path / "ray", backend="ray", workers=2)
  pd.testing.assert_frame_equal(local.frame, remote.frame)
  assert not ray.is_initialized()  # the embedded cluster was shut down
  metas = [json.loads((remote.out / cell_hash(toy, c) / "meta.json").read_text()) for c in cells]
  assert {m["backend"] for m in metas} == {"ray"} and {m["dtype"] for m in metas} == {"float64"}
  assert os.getpid() not in {m["pid"] for m in metas}
