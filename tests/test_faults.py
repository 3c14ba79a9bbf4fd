"""Faults: a killed or interrupted sweep, a full disk, a diverging cell and a raising cell (mdptheory.runner)."""

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import _toy_study as toy
from mdptheory.runner import StoreError, StudyLock, cell_hash, expand, read_cell, run_sweep, store, study_dir
from mdptheory.runner.store import FILES, is_cell_dir

TESTS = str(Path(__file__).resolve().parent)
SLEEP = 0.25   # seconds per cell in the subprocess sweeps
N_SEEDS = 4    # QUICK_GRID has 2 rates: 8 cells


def sweep(cells, out, **kwargs):
  kwargs.setdefault("progress", False)
  kwargs.setdefault("log", None)
  return run_sweep(toy, cells, out=out, **kwargs)


def slow_cells():
  return expand(toy, quick=True, overrides={"sleep": str(SLEEP)}, seeds=N_SEEDS)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> pd.DataFrame:
  """The frame of the subprocess sweep's cells, computed without interruption."""
  return sweep(slow_cells(), tmp_path_factory.mktemp("uninterrupted"), max_batch=1).frame


def start_driver(out: Path, slow_writes: float = 0.0) -> subprocess.Popen:
  """Starts ``run_sweep`` on the toy study in a child process (one cell per task).

  With ``slow_writes``, every file write of the store first sleeps that long,
  so a signal can be timed to land while a cell is being assembled.
  """
  code = textwrap.dedent(f"""
      import sys, time
      sys.path.insert(0, {TESTS!r})
      import jax
      jax.config.update("jax_enable_x64", True)
      import _toy_study as toy
      from mdptheory.runner import expand, run_sweep, store
      if {slow_writes!r}:
          write = store._write_file
          def slow_write(path, data):
              time.sleep({slow_writes!r})
              write(path, data)
          store._write_file = slow_write
      cells = expand(toy, quick=True, overrides={{"sleep": "{SLEEP}"}}, seeds={N_SEEDS})
      run_sweep(toy, cells, out={str(out)!r}, progress=False, max_batch=1)
  """)
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=env, text=True)


def visible_cells(root: Path) -> list[Path]:
  return sorted(p for p in root.iterdir() if is_cell_dir(p)) if root.is_dir() else []


def temp_folders(root: Path) -> list[Path]:
  return [p for p in root.iterdir() if p.name.startswith((store.TMP_PREFIX, store.OLD_PREFIX))]


def wait_until(proc: subprocess.Popen, root: Path, n_cells: int, mid_write: bool, timeout: float = 60.0):
  """Waits until ``n_cells`` cells are stored (and, if ``mid_write``, one is being assembled)."""
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if proc.poll() is not None:
      pytest.fail(f"the sweep ended before the signal: rc={proc.returncode}\n{proc.communicate()[1]}")
    if root.is_dir() and len(visible_cells(root)) >= n_cells and (not mid_write or temp_folders(root)):
      return
    time.sleep(0.005)
  proc.kill()
  pytest.fail(f"timed out waiting for {n_cells} cells in {root}")


def assert_every_visible_cell_is_whole(root: Path) -> int:
  cells = visible_cells(root)
  for p in cells:
    assert sorted(f.name for f in p.iterdir()) == sorted(FILES), p
    json.loads((p / "config.json").read_text())
    assert json.loads((p / "meta.json").read_text())["status"] == "complete"
    assert read_cell(root, p.name) is not None and len(pd.read_parquet(p / "result.parquet")) == 4
  return len(cells)


def test_sigkill_midway_leaves_no_partial_cell_and_resume_computes_only_the_rest(tmp_path, uninterrupted):
  root = study_dir(tmp_path, toy)
  proc = start_driver(tmp_path, slow_writes=0.15)
  wait_until(proc, root, n_cells=2, mid_write=True)
  proc.send_signal(signal.SIGKILL)
  proc.communicate(timeout=30)
  assert proc.returncode == -signal.SIGKILL
  assert temp_folders(root)  # the killed write's temp folder is there, but invisible as a cell
  n_done = assert_every_visible_cell_is_whole(root)
  assert 2 <= n_done < 2 * N_SEEDS
  resumed = sweep(slow_cells(), tmp_path, max_batch=1)  # the lock died with the process
  assert (resumed.computed, resumed.reused) == (2 * N_SEEDS - n_done, n_done)
  assert not temp_folders(root)  # cleaned
  pd.testing.assert_frame_equal(resumed.frame, uninterrupted)


def test_sigint_stops_cleanly_releases_the_lock_and_resume_works(tmp_path, uninterrupted):
  root = study_dir(tmp_path, toy)
  proc = start_driver(tmp_path, slow_writes=0.15)
  wait_until(proc, root, n_cells=2, mid_write=True)
  proc.send_signal(signal.SIGINT)
  _, err = proc.communicate(timeout=30)
  assert proc.returncode != 0
  assert "interrupted after computing" in err and "re-run the same command to resume" in err
  assert "KeyboardInterrupt" in err
  assert not temp_folders(root)  # the interrupted write removed its temp folder
  n_done = assert_every_visible_cell_is_whole(root)
  assert 2 <= n_done < 2 * N_SEEDS
  StudyLock(root).acquire().release()  # released
  resumed = sweep(slow_cells(), tmp_path, max_batch=1)
  assert (resumed.computed, resumed.reused) == (2 * N_SEEDS - n_done, n_done)
  pd.testing.assert_frame_equal(resumed.frame, uninterrupted)


@pytest.mark.parametrize("fail_at", [2, 7])
def test_a_full_disk_keeps_the_earlier_cells_and_says_so(tmp_path, monkeypatch, fail_at):
  """Each cell writes three files; the write number ``fail_at`` raises ENOSPC."""
  cells = expand(toy, quick=True, seeds=3)
  calls = {"n": 0}
  real_write = store._write_file

  def full_disk(path, data):
    calls["n"] += 1
    if calls["n"] >= fail_at:
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    real_write(path, data)

  monkeypatch.setattr(store, "_write_file", full_disk)
  with pytest.raises(StoreError) as info:
    sweep(cells, tmp_path, max_batch=1)
  assert info.value.errno == errno.ENOSPC
  msg = str(info.value)
  assert "No space left on device" in msg and "could not store cell" in msg and "re-run" in msg
  root = study_dir(tmp_path, toy)
  assert assert_every_visible_cell_is_whole(root) == (fail_at - 1) // 3
  assert not temp_folders(root)
  monkeypatch.setattr(store, "_write_file", real_write)
  StudyLock(root).acquire().release()
  resumed = sweep(cells, tmp_path)
  assert (resumed.computed, resumed.reused) == (len(cells) - (fail_at - 1) // 3, (fail_at - 1) // 3)
  pd.testing.assert_frame_equal(resumed.frame, pd.concat([toy.run(c) for c in cells], ignore_index=True))


def test_a_nan_cell_is_diverged_and_a_raising_cell_failed_while_the_others_complete(tmp_path):
  # rate is a BATCH field: the three cells go to one run_batch call, which raises, so they run one by one.
  cells = expand(toy, quick=False, overrides={"rate": "0.5,0.7,0.9", "length": "8", "fail_on": "0.5",
                                              "nan_on": "0.9"}, seeds=1)
  toy.CALLS.update(run=0, run_batch=0)
  summary = sweep(cells, tmp_path)
  assert toy.CALLS["run_batch"] == 1 and toy.CALLS["run"] == 3
  bad, ok, nan = (cell_hash(toy, c) for c in cells)
  assert [h for h, _, _ in summary.failed] == [bad] and [h for h, _, _ in summary.diverged] == [nan]
  assert summary.failed[0][1]["rate"] == 0.5 and "ValueError: injected failure at rate=0.5" in summary.failed[0][2]
  assert "non-finite values in ['value'] from iteration 4" in summary.diverged[0][2]
  report = summary.report()
  assert "computed 3, reused 0" in report and bad in report and nan in report
  root = study_dir(tmp_path, toy)
  meta = json.loads((root / bad / "meta.json").read_text())
  assert meta["status"] == "failed" and "Traceback" in meta["traceback"] and "injected failure" in meta["traceback"]
  assert "run_batch over 3 cells raised" in meta["note"]
  assert json.loads((root / ok / "meta.json").read_text())["status"] == "complete"
  meta = json.loads((root / nan / "meta.json").read_text())
  assert meta["status"] == "diverged" and "iteration < 4" in meta["message"]
  # The frame holds the complete cell and the diverged cell's finite prefix.
  frame = summary.frame
  assert list(frame.groupby("rate", sort=False).size().items()) == [(0.7, 8), (0.9, 4)]
  assert np.isfinite(frame["value"]).all()
  pd.testing.assert_frame_equal(frame.iloc[8:].reset_index(drop=True),
                                toy.run(cells[2]).iloc[:4].reset_index(drop=True))
  # Re-running recomputes the failed cell only; the diverged one is deterministic and reused.
  again = sweep(cells, tmp_path)
  assert (again.computed, again.reused) == (1, 2) and len(again.failed) == 1 and len(again.diverged) == 1
  pd.testing.assert_frame_equal(again.frame, frame)


def test_failed_and_diverged_cells_are_reported_from_worker_processes_too(tmp_path):
  cells = expand(toy, quick=True, overrides={"rate": "0.5,0.7,0.9", "fail_on": "0.5", "nan_on": "0.9"}, seeds=2)
  local = sweep(cells, tmp_path / "one")
  pooled = sweep(cells, tmp_path / "two", workers=2)
  assert [h for h, _, _ in pooled.failed] == [h for h, _, _ in local.failed] and len(local.failed) == 2
  assert [h for h, _, _ in pooled.diverged] == [h for h, _, _ in local.diverged] and len(local.diverged) == 2
  pd.testing.assert_frame_equal(local.frame, pooled.frame)


def test_a_worker_that_dies_is_retried_alone_and_then_only_its_cells_fail(tmp_path):
  cells = expand(toy, quick=True, overrides={"crash_on": "0.9"}, seeds=2)
  summary = sweep(cells, tmp_path, workers=2, max_batch=1, max_retries=1)
  dead = [cell_hash(toy, c) for c in cells if c.rate == 0.9]
  assert sorted(h for h, _, _ in summary.failed) == sorted(dead)
  assert all("the worker process died" in msg and "2 attempts" in msg for _, _, msg in summary.failed)
  assert summary.computed == 4 and set(summary.frame["rate"]) == {0.5} and len(summary.frame) == 2 * 4
  meta = json.loads((study_dir(tmp_path, toy) / dead[0] / "meta.json").read_text())
  assert meta["status"] == "failed" and "worker process died" in meta["message"]


def test_leftover_temp_folders_are_ignored_and_cleaned(tmp_path):
  cells = expand(toy, quick=True)
  root = study_dir(tmp_path, toy)
  h = cell_hash(toy, cells[0])
  half = root / f"{store.TMP_PREFIX}{h}-abc"
  half.mkdir(parents=True)
  (half / "result.parquet").write_bytes(b"half a file")
  (root / ".index.parquet.x.tmp").write_bytes(b"")
  summary = sweep(cells, tmp_path)
  assert summary.computed == 4 and not temp_folders(root) and not list(root.glob("*.tmp"))
  # A run killed between renaming a cell aside and moving its replacement in: the old cell comes back.
  h1 = cell_hash(toy, cells[1])
  os.replace(root / h1, root / f"{store.OLD_PREFIX}{h1}-dead")
  again = sweep(cells, tmp_path, force=False)
  assert (again.computed, again.reused) == (0, 4) and not temp_folders(root)
