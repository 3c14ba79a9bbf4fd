"""Run a sweep: reuse stored cells, compute the rest in batches, store each cell as it finishes.

``run_sweep(study, cells)`` is the whole pipeline behind ``mdptheory run``:

1. take the study folder's lock and remove temp folders left by killed runs;
2. reuse every stored complete or diverged cell whose identity matches
   (unless ``force``); missing, failed, stale and unreadable cells are pending;
3. group *all* the cells by their non-BATCH fields, cut each group into
   chunks of at most ``max_batch`` cells, and compute each chunk that holds a
   pending cell with one ``run_batch`` call (or ``run`` per cell) on the
   chosen backend;
4. store each pending cell as soon as its chunk returns (only this process
   writes), with the metadata needed to recompute it (:func:`rerun_cell`);
5. rebuild ``index.parquet``, release the lock and return a
   :class:`SweepSummary` whose frame concatenates the complete and diverged
   cells in the order of ``cells``.

Determinism. A cell computed inside a vmapped batch can differ in the last
bit from the same cell computed alone or in another batch (XLA compiles a
different program). The chunks therefore depend only on ``cells`` (their
order) and ``max_batch``: never on ``workers``, the backend, or which cells
were already stored, and a chunk with any pending cell is recomputed whole.
The same cells with the same ``max_batch`` thus give bit-identical frames on
the CPU across runs, worker counts, backends and interrupted-and-resumed
runs (tests/test_determinism.py). Each cell's meta.json records its chunk
(the BATCH-field values of its members) so :func:`rerun_cell` recomputes it
exactly from the stored files alone.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import subprocess
import sys
import time
import types
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mdptheory.errors import MDPTheoryError, ParameterError
from mdptheory.runner import backends, grid, store

DEFAULT_MAX_BATCH = 256


@dataclasses.dataclass(frozen=True)
class SweepSummary:
  """What a sweep did.

  Attributes:
    study: the study's NAME.
    computed: cells computed in this run (including the failed and diverged ones).
    reused: stored cells reused without recomputation.
    failed: ``(hash, config, message)`` for every failed cell.
    diverged: ``(hash, config, message)`` for every diverged cell (computed or reused).
    frame: the complete and diverged cells' frames, concatenated in the order of the cells.
    elapsed: wall time in seconds.
    out: the study's results folder.
    varying: the Config fields whose values differ among the cells, and
      ``seed``; the report names cells by these.
  """
  study: str
  computed: int
  reused: int
  failed: list[tuple[str, dict[str, Any], str]]
  diverged: list[tuple[str, dict[str, Any], str]]
  frame: pd.DataFrame
  elapsed: float
  out: Path
  varying: tuple[str, ...] = ("seed",)

  @property
  def ok(self) -> bool:
    """No cell failed or diverged."""
    return not self.failed and not self.diverged

  def report(self) -> str:
    """``computed N, reused M`` and the failed and diverged cells, one per line."""
    lines = [f"{self.study}: computed {self.computed}, reused {self.reused} "
             f"({self.elapsed:.1f} s) -> {self.out}"]
    for label, items in (("failed", self.failed), ("diverged", self.diverged)):
      if items:
        lines.append(f"{label} ({len(items)}):")
        for h, cfg, msg in items:
          short = msg.strip().splitlines()[-1] if msg and msg.strip() else ""
          shown = {k: v for k, v in cfg.items() if k in self.varying} or cfg
          lines.append(f"  {h} {_brief(shown)}: {short}  [{self.out / h / 'meta.json'}]")
    return "\n".join(lines)

  def __str__(self) -> str:
    return self.report()


def _brief(cfg: dict[str, Any]) -> str:
  return "{" + ", ".join(f"{k}={v!r}" for k, v in cfg.items()) + "}"


def _stderr(msg: str) -> None:
  print(msg, file=sys.stderr, flush=True)


def git_commit(cwd: str | os.PathLike | None = None) -> str | None:
  """``git rev-parse HEAD`` in ``cwd`` (default: the working directory), or None."""
  try:
    res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
  except (OSError, subprocess.SubprocessError):
    return None
  out = res.stdout.strip()
  return out if res.returncode == 0 and out else None


def make_tasks(study: types.ModuleType, configs: Sequence[dict[str, Any]], hashes: Sequence[str],
               chunk: int) -> list[backends.Task]:
  """Groups cells by every non-BATCH field and cuts each group into near-equal chunks of <= ``chunk`` cells.

  Groups come in order of their first cell and keep the cells' order, so the
  tasks follow the canonical cell order. A chunk of one cell (or any chunk of
  a study without ``run_batch``) is computed with ``run``.
  """
  has_batch = callable(getattr(study, "run_batch", None))
  if not has_batch:
    chunk = 1
  batch_fields = set(study.BATCH)
  groups: dict[str, list[int]] = {}
  for i, cfg in enumerate(configs):
    key = grid.canonical_json({k: v for k, v in cfg.items() if k not in batch_fields})
    groups.setdefault(key, []).append(i)
  tasks = []
  for members in groups.values():
    n_chunks = math.ceil(len(members) / chunk)
    size, extra = divmod(len(members), n_chunks)
    start = 0
    for c in range(n_chunks):
      part = members[start:start + size + (c < extra)]
      start += len(part)
      tasks.append(backends.Task(tuple(hashes[i] for i in part), tuple(configs[i] for i in part),
                                 has_batch and len(part) > 1))
  return tasks


def run_sweep(study: str | types.ModuleType, cells: Sequence[Any], *, out: str | os.PathLike = "results",
              backend: str = "local", workers: int = 1, address: str | None = None, force: bool = False,
              progress: bool = True, max_batch: int | None = None, max_retries: int = 1,
              log: Callable[[str], None] | None = _stderr,
              invocation: Mapping[str, Any] | None = None) -> SweepSummary:
  """Computes the cells that are not stored yet, stores them, and returns every cell's frame.

  Args:
    study: a study module or registered name.
    cells: ``study.Config`` instances, normally from :func:`grid.expand`; their
      order is the order of the returned frame.
    out: the results root; cells go to ``<out>/<study.NAME>/<cell-hash>/``.
    backend: ``"local"`` (in this process, or a spawned process pool when
      ``workers > 1``) or ``"ray"`` (Ray tasks).
    workers: processes for ``local``; CPUs of the embedded cluster for ``ray``.
    address: a Ray cluster to join (``"auto"``, ``"ray://host:10001"``); None
      starts an embedded local cluster.
    force: recompute every cell, even those stored.
    progress: show a progress bar on a terminal (stderr).
    max_batch: at most this many cells per ``run_batch`` call (default: the
      study's ``MAX_BATCH`` or 256). The chunks do not depend on ``workers``
      (see the module docstring); to spread one large group over several
      workers, lower ``max_batch``.
    max_retries: resubmissions of a task whose worker process died.
    log: receives the summary (and an interruption notice); None is silent.
    invocation: how the sweep was requested, recorded in every cell's
      meta.json (the CLI passes its command line); default
      ``{"api": "mdptheory.runner.run_sweep", ...}`` with these arguments.

  Returns:
    A :class:`SweepSummary`.

  Raises:
    ParameterError: an unknown backend, bad ``workers``/``max_batch``, cells
      that are not ``study.Config`` instances, or duplicate cells.
    UnsafePathError: ``out`` is not a usable folder, or the study folder or a
      cell folder is a symlink leading out of ``out`` (nothing is written).
    StoreLockedError: another process is writing this study's folder.
    StoreError: a cell could not be written (e.g. the disk is full); the
      cells stored before it are intact and a re-run resumes.
    KeyboardInterrupt: re-raised after the lock is released; the cells
      stored so far stay.
  """
  t_start = time.perf_counter()
  study = grid.resolve_study(study)
  if backend not in backends.BACKENDS:
    raise ParameterError(f"backend={backend!r}; valid backends: {list(backends.BACKENDS)}")
  _check_positive_int("workers", workers)
  _check_positive_int("max_retries", max_retries, minimum=0)
  if max_batch is None:
    max_batch = getattr(study, "MAX_BATCH", DEFAULT_MAX_BATCH)
  _check_positive_int("max_batch", max_batch)
  cells = list(cells)
  for cfg in cells:
    if not isinstance(cfg, study.Config):
      raise ParameterError(f"cell {cfg!r} is not a {study.__name__}.Config; build cells with "
                           f"mdptheory.runner.expand")
  configs = [grid.config_dict(c) for c in cells]
  payloads = [grid.cell_payload(study, c) for c in cells]
  hashes = [grid.payload_hash(p) for p in payloads]
  position = {h: i for i, h in enumerate(hashes)}
  if len(position) != len(hashes):
    dups = sorted({_brief(configs[i]) for i, h in enumerate(hashes) if position[h] != i})
    raise ParameterError(f"cells are listed more than once: {dups}")

  root = store.study_dir(out, study)
  for h in hashes:  # a cell folder that is a symlink leading elsewhere: refuse before any work
    store.cell_dir(root, h)
  if invocation is None:
    invocation = {"api": "mdptheory.runner.run_sweep", "backend": backend, "workers": workers,
                  "max_batch": max_batch, "force": force, "num_cells": len(cells)}
  lock = store.StudyLock(root).acquire()
  results: dict[str, tuple[str, pd.DataFrame, str | None]] = {}
  failed: dict[str, str] = {}
  computed = reused = 0
  bar = None
  try:
    store.clean_temp(root)
    pending = set()
    for i, h in enumerate(hashes):
      cell = None if force else store.read_cell(root, h, payloads[i])
      if cell is not None and cell.status in ("complete", "diverged"):
        results[h] = (cell.status, cell.frame, cell.meta.get("message"))
        reused += 1
      else:
        pending.add(h)
    # The chunks are cut from all the cells, so they do not depend on workers or on what is stored.
    tasks = [t for t in make_tasks(study, configs, hashes, max_batch) if pending.intersection(t.hashes)]
    bar = _progress_bar(study.NAME, len(cells), reused, progress)
    base_meta = {"study": study.NAME, "version": study.VERSION, "module": study.__name__,
                 "package": payloads[0]["package"] if payloads else None, "backend": backend,
                 "workers": workers, "max_batch": max_batch, "git_commit": git_commit(),
                 "invocation": dict(invocation)}
    driver_env = backends.environment() if tasks else {}  # for cells whose worker died before reporting
    if not tasks:
      stream = iter(())
    elif backend == "ray":
      stream = backends.run_ray(study, tasks, workers, address, max_retries)
    elif workers > 1 and len(tasks) > 1:
      stream = backends.run_pool(study, tasks, workers, max_retries)
    else:
      stream = backends.run_inline(study, tasks)
    try:
      for task, outcomes in stream:
        for o in outcomes:
          if o.hash not in pending:  # computed only because its chunk-mates were pending: keep the stored one
            continue
          i = position[o.hash]
          status, frame, message, tb = o.status, o.frame, o.message, o.traceback
          try:
            data = store.frame_to_parquet(frame)
          except Exception as e:  # e.g. a column of mixed Python objects
            status, message = "failed", f"the result frame cannot be stored as parquet: {type(e).__name__}: {e}"
            data = store.frame_to_parquet(pd.DataFrame())
          meta = dict(base_meta, hash=o.hash, status=status, message=message, traceback=tb,
                      seed=configs[i].get("seed"), config=configs[i], wall_time_s=o.wall_time_s,
                      batch_size=o.batch_size, batched=o.batched, batch=_batch_meta(study, task, o.hash),
                      **(o.env or driver_env),
                      created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
          store.write_cell(root, payloads[i], data, meta)
          computed += 1
          if status == "failed":
            failed[o.hash] = message or "failed"
          else:
            results[o.hash] = (status, store.parquet_to_frame(data), message)
          if bar is not None:
            bar.update(1)
            bar.set_postfix(reused=reused, failed=len(failed),
                            diverged=sum(s == "diverged" for s, _, _ in results.values()), refresh=False)
    finally:
      close = getattr(stream, "close", None)
      if close is not None:
        close()
  except KeyboardInterrupt:
    if log is not None:
      log(f"{study.NAME}: interrupted after computing {computed} cells ({reused} reused); the stored cells "
          f"stay in {root}; re-run the same command to resume")
    raise
  finally:
    try:
      if bar is not None:
        bar.close()
      with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
          store.rebuild_index(root)
        except Exception:  # the index is optional; never mask the sweep's own outcome
          pass
    finally:
      lock.release()

  frames, diverged = [], []
  for i, h in enumerate(hashes):
    if h in results:
      status, frame, message = results[h]
      frames.append(frame)
      if status == "diverged":
        diverged.append((h, configs[i], message or "diverged"))
  summary = SweepSummary(
      study=study.NAME, computed=computed, reused=reused,
      failed=[(h, configs[i], failed[h]) for i, h in enumerate(hashes) if h in failed],
      diverged=diverged, frame=store.concat_frames(frames), elapsed=time.perf_counter() - t_start, out=root,
      varying=tuple(k for k in (configs[0] if configs else {})
                    if k == "seed" or len({grid.canonical_json(c[k]) for c in configs}) > 1))
  if log is not None:
    log(summary.report())
  return summary


def _batch_meta(study: types.ModuleType, task: backends.Task, h: str) -> dict[str, Any]:
  """A cell's chunk for meta.json: the BATCH fields that vary in it (and seed), each member's values in call
  order, and the cell's index among them; with the cell's config this rebuilds the ``run_batch`` call."""
  fields = [f for f in study.BATCH
            if f == "seed" or len({grid.canonical_json(c.get(f)) for c in task.configs}) > 1]
  return {"fields": fields, "members": [[c.get(f) for f in fields] for c in task.configs],
          "index": task.hashes.index(h), "use_batch": task.use_batch}


def rerun_cell(folder: str | os.PathLike, study: str | types.ModuleType | None = None) -> pd.DataFrame:
  """Recomputes a stored cell from its ``config.json`` and ``meta.json`` alone; returns the frame it stores.

  The cell's Config comes from config.json, and its chunk (the other cells of its ``run_batch`` call,
  recorded in meta.json as ``batch``) is rebuilt around it, so a batched cell is recomputed in the same
  batch. With the same code, versions, platform and XLA flags (all recorded in meta.json), the result
  is bit-identical to the stored frame. Nothing is written.

  Args:
    folder: a cell folder ``<out>/<study>/<cell-hash>``.
    study: the study module or registered name; default: the registered study named in config.json
      (the metadata never makes this function import a module by itself).

  Returns:
    The frame, as read back from parquet (the stored frame's dtypes).

  Raises:
    ParameterError: the folder is not a readable cell; the study is not registered (pass ``study``) or
      its VERSION differs from the recorded one; JAX's x64 mode differs from the recorded dtype; the
      recorded config no longer fits the study's Config.
    MDPTheoryError: the recomputation failed (the message says why).
  """
  folder = Path(folder)
  try:
    config = json.loads((folder / "config.json").read_text())
    meta = json.loads((folder / "meta.json").read_text())
    name, version, fields = config["study"], config["version"], dict(config["config"])
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise ParameterError(f"{folder} is not a readable cell folder (config.json and meta.json as written by "
                         f"run_sweep): {type(e).__name__}: {e}") from None
  study = grid.resolve_study(name if study is None else study)
  if study.NAME != name or study.VERSION != version:
    raise ParameterError(f"{folder} holds {name} version {version!r}; the study given is {study.NAME} version "
                         f"{study.VERSION!r}. Check out the code that wrote it (git commit "
                         f"{meta.get('git_commit')}, mdptheory {config.get('package')})")
  dtype = "float64" if backends.x64_enabled() else "float32"
  stored_dtype = config.get("dtype", meta.get("dtype"))
  if stored_dtype != dtype:
    raise ParameterError(f"{folder} was computed in {stored_dtype} but JAX computes in {dtype} here; call "
                         f"jax.config.update('jax_enable_x64', {stored_dtype == 'float64'}) first")
  try:
    cfg = study.Config(**fields)
    batch = meta.get("batch") or {}
    if meta.get("batched") and batch.get("members"):
      members = [dataclasses.replace(cfg, **dict(zip(batch["fields"], values))) for values in batch["members"]]
      index = int(batch["index"])
      if members[index] != cfg:
        raise ValueError(f"batch member {index} is {members[index]}, not the cell's config {cfg}")
    else:
      members, index = [cfg], 0
  except (TypeError, ValueError, KeyError, IndexError) as e:
    raise ParameterError(f"{folder}: the recorded config does not fit {study.__name__}.Config: "
                         f"{type(e).__name__}: {e}") from None
  hashes = [grid.cell_hash(study, c) for c in members]
  outcome = backends.compute_cells(study, members, hashes, len(members) > 1)[index]
  if outcome.status == "failed":
    raise MDPTheoryError(f"recomputing {folder} failed: {outcome.message}")
  return store.parquet_to_frame(store.frame_to_parquet(outcome.frame))


def _check_positive_int(name: str, value: Any, minimum: int = 1) -> None:
  if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
    raise ParameterError(f"{name}={value!r} must be an integer >= {minimum}")


def _progress_bar(name: str, total: int, reused: int, progress: bool):
  if not progress or not total:
    return None
  stream = sys.stderr
  try:
    tty = stream.isatty()
  except (AttributeError, ValueError):
    tty = False
  if not tty:
    return None
  from tqdm import tqdm
  bar = tqdm(total=total, initial=reused, desc=name, unit="cell", file=stream, dynamic_ncols=True)
  bar.set_postfix(reused=reused, failed=0, diverged=0)
  return bar
