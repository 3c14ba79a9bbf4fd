"""Determinism: the same cells give bit-identical stored results on the CPU in float64 (mdptheory.runner).

Across runs, across 1 and 2 worker processes, and across an interrupted-and-resumed run; and every stored
cell records what is needed to recompute it (``meta.json``), which :func:`mdptheory.runner.rerun_cell`
does from the stored files alone.

The study is ``mv_robustness``'s MV-6 (M-VI under N1, one sampled next state per (s, a) and update), kept
small. A cell computed in a vmapped batch can differ in the last bits from the same cell in a batch of
another size (XLA compiles a different program; at the study's quick sizes, a batch of 20 Garnets and two
of 10 differ), so the runner's chunks must depend only on the cells and ``max_batch``. The tests check the
bits and, through the ``batch`` recorded in meta.json, the chunks themselves: both fail if the chunks
depend on the worker count or on which cells were already stored (as when the runner cut the pending
cells into ``ceil(pending / workers)``-cell chunks: 3 + 3 instead of 6 below).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import jax
import pandas as pd
import pytest

from matplotlib.figure import Figure

import _toy_study as toy
from mdptheory import cli
from mdptheory.errors import ParameterError
from mdptheory.runner import backends, cell_hash, config_dict, expand, rerun_cell, resolve_study, run_sweep, store
from mdptheory.studies import STUDIES, mv_robustness

STUDY = resolve_study("mv_robustness")
N_BIG, N_SMALL = 6, 2   # two groups (tau_prime differs: not a BATCH field): chunks of 6 and 2 cells
K = 6


def mv6_cells() -> list:
  """8 MV-6 cells on Garnet(6, 3, 2), K = 6: tau' = 0.01 for seeds 0..5, tau' = 0.02 for seeds 0..1."""
  base = dict(claim="MV-6", num_states=6, num_actions=3, branching=2, num_iters=K)
  big = expand(STUDY, quick=True, overrides={**base, "tau_prime": "0.01"}, seeds=N_BIG)
  small = expand(STUDY, quick=True, overrides={**base, "tau_prime": "0.02"}, seeds=N_SMALL)
  return big + small


def sweep(cells, out: Path, **kwargs):
  return run_sweep(STUDY, cells, out=out, progress=False, log=None, **kwargs)


def stored(out: Path) -> dict[str, pd.DataFrame]:
  """Every stored cell's frame, by cell key (the folder name)."""
  root = out / STUDY.NAME
  return {p.name: pd.read_parquet(p / "result.parquet") for p in sorted(root.iterdir()) if store.is_cell_dir(p)}


def meta(out: Path, h: str) -> dict:
  return json.loads((out / STUDY.NAME / h / "meta.json").read_text())


def assert_same_cells(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
  """The same cell keys, and bit-identical frames (NaN in the same places) for each."""
  assert sorted(a) == sorted(b)
  for h in a:
    pd.testing.assert_frame_equal(a[h], b[h], check_exact=True, obj=f"cell {h}")


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory) -> Path:
  """The MV-6 cells computed in this process (workers=1)."""
  out = tmp_path_factory.mktemp("one")
  summary = sweep(mv6_cells(), out)
  assert summary.ok and summary.computed == N_BIG + N_SMALL
  return out


def test_one_and_two_workers_and_a_second_run_store_bit_identical_cells(one_worker, tmp_path):
  cells = mv6_cells()
  two = sweep(cells, tmp_path / "two", workers=2)
  assert two.ok and two.computed == len(cells)
  a, b = stored(one_worker), stored(tmp_path / "two")
  assert_same_cells(a, b)
  assert len(a) == len(cells) and all(len(f) == 3 * K for f in a.values())   # 3 alphas x K rows per cell
  # The same chunks whatever the worker count: 6 and 2 cells, each one run_batch call.
  for c in cells:
    h = cell_hash(STUDY, c)
    m1, m2 = meta(one_worker, h), meta(tmp_path / "two", h)
    assert m1["batch"] == m2["batch"] and m1["batched"] and m1["batch_size"] == (N_BIG if c.tau_prime == 0.01
                                                                                  else N_SMALL)
    assert (m1["workers"], m2["workers"]) == (1, 2)
  assert len({meta(tmp_path / "two", cell_hash(STUDY, c))["pid"] for c in cells}) == 2   # two worker processes
  # A second run from scratch in this process (force) stores the same bits again; so does the frame returned.
  again = sweep(cells, one_worker, force=True)
  assert again.computed == len(cells)
  assert_same_cells(stored(one_worker), a)
  pd.testing.assert_frame_equal(again.frame, two.frame, check_exact=True)


def test_an_interrupted_and_resumed_run_stores_the_same_bits(one_worker, tmp_path):
  cells = mv6_cells()
  reference = stored(one_worker)
  out = tmp_path / "resumed"
  shutil.copytree(one_worker, out)
  root = out / STUDY.NAME
  # A run killed part-way: 3 cells of the big chunk and 1 of the small one never written, one half-written.
  lost = [cell_hash(STUDY, c) for c in cells[:3] + cells[-1:]]
  for h in lost:
    shutil.rmtree(root / h)
  (root / f"{store.TMP_PREFIX}{lost[0]}-dead").mkdir()
  (root / f"{store.TMP_PREFIX}{lost[0]}-dead" / "result.parquet").write_bytes(b"half a file")
  resumed = sweep(cells, out)
  assert (resumed.computed, resumed.reused) == (len(lost), len(cells) - len(lost))
  assert not [p for p in root.iterdir() if p.name.startswith(store.TMP_PREFIX)]
  assert_same_cells(stored(out), reference)
  for h in lost:  # recomputed in their original chunks, not in a chunk of the 4 missing cells
    assert meta(out, h)["batch"] == meta(one_worker, h)["batch"]


def test_a_stored_cell_records_how_to_reproduce_it_and_rerun_cell_gives_the_same_frame(one_worker):
  cells = mv6_cells()
  c = cells[4]                                       # inside the chunk of 6
  h = cell_hash(STUDY, c)
  m = meta(one_worker, h)
  config = json.loads((one_worker / STUDY.NAME / h / "config.json").read_text())
  assert (m["study"], m["version"], m["status"]) == ("mv_robustness", mv_robustness.VERSION, "complete")
  assert m["config"] == config["config"] == config_dict(c) and m["seed"] == c.seed == 4
  assert set(m["config"]) == {f.name for f in dataclasses.fields(STUDY.Config)}      # every field
  assert {"mdptheory", "jax", "jaxlib", "numpy", "python"} <= set(m["versions"])
  assert m["versions"]["jax"] == jax.__version__ and m["versions"]["mdptheory"] == config["package"]
  assert (m["device"], m["dtype"], m["x64"]) == ("cpu", "float64", True) and config["dtype"] == "float64"
  assert m["xla_flags"] == m["env_vars"].get("XLA_FLAGS", "") and m["jax_config"]["jax_enable_x64"] is True
  assert m["invocation"]["api"] == "mdptheory.runner.run_sweep" and m["max_batch"] == m["invocation"]["max_batch"]
  # The chunk: the 6 seeds of tau' = 0.01 in call order, this cell at index 4.
  assert m["batch"]["fields"] == ["seed"] and m["batch"]["members"] == [[s] for s in range(N_BIG)]
  assert m["batch"]["index"] == 4
  frame = rerun_cell(one_worker / STUDY.NAME / h)
  pd.testing.assert_frame_equal(frame, stored(one_worker)[h], check_exact=True)


def test_rerun_cell_refuses_a_mismatched_version_or_dtype(one_worker, monkeypatch):
  folder = one_worker / STUDY.NAME / cell_hash(STUDY, mv6_cells()[0])
  monkeypatch.setattr(backends, "x64_enabled", lambda: False)
  with pytest.raises(ParameterError, match=r"computed in float64 but JAX computes in float32.*jax_enable_x64"):
    rerun_cell(folder)
  monkeypatch.undo()
  monkeypatch.setattr(mv_robustness, "VERSION", "99")
  with pytest.raises(ParameterError, match=r"holds mv_robustness version '1'.*version '99'"):
    rerun_cell(folder)
  with pytest.raises(ParameterError, match="not a readable cell folder"):
    rerun_cell(one_worker / "nothing-here")


def test_the_cli_records_its_command_line_in_every_cell(tmp_path, monkeypatch, capsys):
  monkeypatch.setitem(STUDIES, "toy", "_toy_study")            # the runner's synthetic study, registered
  monkeypatch.setattr(toy, "plot", lambda df: Figure())
  argv = ["run", "toy", "--quick", "--set", "rate=0.5,0.7,0.9", "--seeds", "2", "--max-batch", "4",
          "--out", str(tmp_path / "res"), "--figures", str(tmp_path / "fig"), "--no-progress"]
  assert cli.main(argv) == 0
  capsys.readouterr()
  root = tmp_path / "res" / "toy"
  metas = [json.loads((p / "meta.json").read_text()) for p in root.iterdir() if store.is_cell_dir(p)]
  assert len(metas) == 6
  for m in metas:
    assert m["invocation"] == {"command": "mdptheory " + " ".join(argv), "x64": True}
    assert m["max_batch"] == 4 and m["batched"] and m["batch_size"] == 3           # 6 cells: two chunks of 3
  h = metas[0]["hash"]
  pd.testing.assert_frame_equal(rerun_cell(root / h), pd.read_parquet(root / h / "result.parquet"), check_exact=True)
