"""Where cells are computed: in-process, in a spawned process pool, or as Ray tasks.

Every backend takes a list of :class:`Task` (cells that differ only in the
study's BATCH fields) and yields ``(task, outcomes)`` as tasks finish, in any
order. Workers only compute; the driver (``execute.run_sweep``) is the only
process that writes to the store. A worker enables JAX's x64 mode iff the
driver has it on, and copies the driver's other numerics options
(:data:`JAX_NUMERICS`) and ``XLA_FLAGS``, so every backend computes the same
numbers. Tasks and outcomes travel between processes by the standard
library's (or Ray's) pickling; nothing pickled is ever written to disk.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import sys
import time
import traceback
import types
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from mdptheory.errors import ParameterError

BACKENDS = ("local", "ray")


class Task(NamedTuple):
  """Cells computed together: one ``run_batch`` call (``use_batch``) or ``run`` per cell."""
  hashes: tuple[str, ...]
  configs: tuple[dict[str, Any], ...]   # Config fields as plain scalars (picklable without the study)
  use_batch: bool


class Outcome(NamedTuple):
  """One computed cell, as returned by a worker."""
  hash: str
  status: str                 # "complete" | "failed" | "diverged"
  frame: pd.DataFrame         # the rows to store (empty if failed; the finite prefix if diverged)
  message: str | None         # why it failed or diverged
  traceback: str | None       # the traceback of a failed cell
  wall_time_s: float          # this cell's share of the computation
  batch_size: int             # how many cells were computed together
  batched: bool               # computed by run_batch
  env: dict[str, Any]         # dtype, device, package versions, host, pid of the worker


# ----------------------------------------------------------------------------- computing cells


def x64_enabled() -> bool:
  """Whether JAX's x64 mode is on in this process."""
  import jax
  return bool(jax.config.read("jax_enable_x64"))


# JAX options that change what is computed: recorded in meta.json and copied from the driver to workers.
JAX_NUMERICS = ("jax_enable_x64", "jax_default_matmul_precision", "jax_default_prng_impl",
                "jax_threefry_partitionable", "jax_disable_jit")
# Environment variables that change what JAX/XLA compute (recorded in meta.json when set).
NUMERICS_ENV = ("XLA_FLAGS", "JAX_PLATFORMS", "JAX_ENABLE_X64", "JAX_DEFAULT_MATMUL_PRECISION", "JAX_DISABLE_JIT",
                "JAX_DEFAULT_PRNG_IMPL", "JAX_THREEFRY_PARTITIONABLE")


def environment() -> dict[str, Any]:
  """What a cell's numbers depend on besides its config (recorded in each cell's meta.json).

  The dtype (JAX x64 mode), the JAX backend and device kind, the versions of mdptheory, jax, jaxlib,
  numpy, pandas, pyarrow and Python, the OS/CPU platform, ``XLA_FLAGS`` and the other JAX variables of
  :data:`NUMERICS_ENV`, the JAX config options that change numerics, the host and the pid.
  """
  import platform

  import jax
  import numpy
  import mdptheory
  try:
    dev = jax.devices()[0]
    device, device_kind = dev.platform, str(getattr(dev, "device_kind", ""))
  except Exception:  # no backend could be initialized
    device, device_kind = "unknown", ""
  versions = {"mdptheory": mdptheory.__version__, "jax": jax.__version__, "numpy": numpy.__version__,
              "pandas": pd.__version__, "python": sys.version.split()[0]}
  for mod in ("jaxlib", "pyarrow", "scipy"):
    try:
      versions[mod] = importlib.import_module(mod).__version__
    except (ImportError, AttributeError):
      versions[mod] = None
  jax_config = numerics_config()
  return {"dtype": "float64" if x64_enabled() else "float32", "x64": x64_enabled(), "device": device,
          "device_kind": device_kind, "versions": versions, "platform": platform.platform(),
          "machine": platform.machine(), "xla_flags": os.environ.get("XLA_FLAGS", ""),
          "env_vars": {k: os.environ[k] for k in NUMERICS_ENV if k in os.environ}, "jax_config": jax_config,
          "host": os.uname().nodename, "pid": os.getpid()}


def monitor_columns(study: types.ModuleType, frame: pd.DataFrame) -> list[str]:
  """The study's MONITOR columns, or every float column not starting with ``bound_``."""
  cols = getattr(study, "MONITOR", None)
  if cols is None:
    return [c for c in frame.columns
            if pd.api.types.is_float_dtype(frame[c]) and not str(c).startswith("bound_")]
  missing = [c for c in cols if c not in frame.columns]
  if missing:
    raise ParameterError(f"{study.__name__}.MONITOR names columns {missing} that the result frame lacks; "
                         f"its columns: {list(frame.columns)}")
  return list(cols)


def truncate_divergence(study: types.ModuleType, frame: pd.DataFrame) -> tuple[pd.DataFrame, str | None]:
  """Cuts a frame whose monitored columns hold NaN/inf back to its last finite iterate.

  With an iteration column (``study.ITERATION`` if the study sets it, else
  ``"iteration"``), the rows kept are those with an iteration below the first
  iteration at which any monitored value is not finite; without one, the rows
  before the first such row.

  Returns:
    ``(frame, None)`` if every monitored value is finite, else
    ``(kept rows, message)``.
  """
  cols = monitor_columns(study, frame)
  if not cols or frame.empty:
    return frame, None
  values = frame[cols].to_numpy(dtype=np.float64, na_value=np.nan)
  bad = ~np.isfinite(values)
  bad_rows = bad.any(axis=1)
  if not bad_rows.any():
    return frame, None
  where = [c for c, b in zip(cols, bad.any(axis=0)) if b]
  it = getattr(study, "ITERATION", "iteration")
  if it in frame.columns:
    its = frame[it].to_numpy()
    first = its[bad_rows].min()
    kept = frame[its < first].reset_index(drop=True)
    msg = (f"non-finite values in {where} from {it} {first} on ({int(bad_rows.sum())} of {len(frame)} rows); "
           f"kept the {len(kept)} rows with {it} < {first}")
  else:
    first = int(np.argmax(bad_rows))
    kept = frame.iloc[:first].reset_index(drop=True)
    msg = (f"non-finite values in {where} from row {first} on ({int(bad_rows.sum())} of {len(frame)} rows); "
           f"kept the first {first} rows")
  return kept, msg


def _error_message(e: BaseException) -> str:
  return f"{type(e).__name__}: {e}"


def compute_cells(study: types.ModuleType, cfgs: Sequence[Any], hashes: Sequence[str],
                  use_batch: bool) -> list[Outcome]:
  """Computes cells: one ``run_batch`` call, falling back to ``run`` per cell if it raises.

  A cell whose ``run`` raises is failed (with its traceback); a cell whose
  monitored columns are not finite is diverged. Nothing here raises except
  KeyboardInterrupt and other BaseExceptions, which stop the sweep.
  """
  env = environment()
  n = len(cfgs)
  note = None
  if use_batch and n > 1 and hasattr(study, "run_batch"):
    t0 = time.perf_counter()
    try:
      frames = study.run_batch(list(cfgs))
      if not isinstance(frames, (list, tuple)) or len(frames) != n:
        raise TypeError(f"run_batch returned {type(frames).__name__} of length "
                        f"{len(frames) if hasattr(frames, '__len__') else '?'}; expected a list of {n} DataFrames")
      share = (time.perf_counter() - t0) / n
      return [_finish(study, h, frame, share, n, True, env) for h, frame in zip(hashes, frames)]
    except Exception as e:
      note = f"run_batch over {n} cells raised {_error_message(e)}; computed cell by cell instead"
  outcomes = []
  for cfg, h in zip(cfgs, hashes):
    t0 = time.perf_counter()
    try:
      frame = study.run(cfg)
    except Exception as e:
      outcomes.append(Outcome(h, "failed", pd.DataFrame(), _error_message(e), traceback.format_exc(),
                              time.perf_counter() - t0, 1, False, dict(env, note=note)))
      continue
    outcomes.append(_finish(study, h, frame, time.perf_counter() - t0, 1, False, dict(env, note=note)))
  return outcomes


def _finish(study, h, frame, wall, batch_size, batched, env) -> Outcome:
  try:
    if not isinstance(frame, pd.DataFrame):
      raise TypeError(f"{study.__name__}.run returned {type(frame).__name__}; expected a pandas DataFrame")
    frame = frame.reset_index(drop=True)
    kept, msg = truncate_divergence(study, frame)
  except Exception as e:
    return Outcome(h, "failed", pd.DataFrame(), _error_message(e), traceback.format_exc(), wall, batch_size,
                   batched, env)
  status = "complete" if msg is None else "diverged"
  return Outcome(h, status, kept, msg, None, wall, batch_size, batched, env)


def failed_outcomes(task: Task, error: BaseException | str) -> list[Outcome]:
  """Every cell of ``task`` failed with ``error`` (a worker that died, an import error, ...)."""
  if isinstance(error, BaseException):
    msg = _error_message(error)
    tb = "".join(traceback.format_exception(type(error), error, error.__traceback__))
  else:
    msg, tb = error, None
  return [Outcome(h, "failed", pd.DataFrame(), msg, tb, 0.0, len(task.hashes), task.use_batch, {})
          for h in task.hashes]


# ----------------------------------------------------------------------------- worker processes


def module_location(study: types.ModuleType) -> tuple[str, str | None]:
  """The study's import name and the sys.path entry it was found under (for workers)."""
  name = study.__name__
  if name == "__main__":
    raise ParameterError("a study defined in __main__ cannot be sent to worker processes; move it to an "
                         "importable module, or use workers=1")
  file = getattr(study, "__file__", None)
  if not file:
    return name, None
  p = Path(file).resolve().parent
  depth = len(name.split(".")) - (0 if Path(file).name == "__init__.py" else 1)
  for _ in range(depth):
    p = p.parent
  return name, str(p)


def numerics_config() -> dict[str, Any]:
  """This process's values of the JAX options in :data:`JAX_NUMERICS` (handed to workers)."""
  import jax
  out = {}
  for opt in JAX_NUMERICS:
    try:
      value = getattr(jax.config, opt)
    except AttributeError:  # an option this jax version does not have
      continue
    out[opt] = value if isinstance(value, (bool, int, float, str, type(None))) else str(value)
  return out


def setup_worker(x64: bool, module_root: str | None = None, env_vars: dict[str, str] | None = None,
                 jax_config: dict[str, Any] | None = None) -> None:
  """Prepares a worker process: environment, sys.path entry of the study, JAX x64 and the other numerics
  options of :data:`JAX_NUMERICS` like the driver, so every worker computes the same numbers."""
  for k, v in (env_vars or {}).items():
    os.environ.setdefault(k, v)
  if module_root and module_root not in sys.path:
    sys.path.append(module_root)
  import jax
  for opt, value in (jax_config or {}).items():
    if opt in JAX_NUMERICS and getattr(jax.config, opt, value) != value:
      jax.config.update(opt, value)
  jax.config.update("jax_enable_x64", bool(x64))


def import_study(name: str, module_root: str | None) -> types.ModuleType:
  try:
    return importlib.import_module(name)
  except ModuleNotFoundError:
    if not module_root or module_root in sys.path:
      raise
    sys.path.append(module_root)
    return importlib.import_module(name)


def worker_run(name: str, module_root: str | None, task: Task, x64: bool,
               jax_config: dict[str, Any] | None = None) -> list[Outcome]:
  """The body of a worker task (process pool or Ray): import the study, compute the task's cells."""
  setup_worker(x64, module_root, jax_config=jax_config)
  study = import_study(name, module_root)
  cfgs = [study.Config(**d) for d in task.configs]
  return compute_cells(study, cfgs, task.hashes, task.use_batch)


# ----------------------------------------------------------------------------- backends


def run_inline(study: types.ModuleType, tasks: Sequence[Task]) -> Iterator[tuple[Task, list[Outcome]]]:
  """Computes the tasks one after another in this process."""
  for task in tasks:
    cfgs = [study.Config(**d) for d in task.configs]
    yield task, compute_cells(study, cfgs, task.hashes, task.use_batch)


def _worker_env() -> dict[str, str]:
  # Workers get the parent's XLA flags (e.g. single-threaded Eigen, see mdptheory._xla).
  env = {"XLA_FLAGS": os.environ["XLA_FLAGS"]} if os.environ.get("XLA_FLAGS") else {}
  # Several processes sharing one accelerator must not each preallocate most of its memory.
  try:
    import jax
    if jax.devices()[0].platform != "cpu":
      env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
  except Exception:
    pass
  return env


def _stop_pool(pool: ProcessPoolExecutor, kill: bool) -> None:
  if not kill:
    pool.shutdown(wait=True)
    return
  procs = list((getattr(pool, "_processes", None) or {}).values())
  pool.shutdown(wait=False, cancel_futures=True)
  for p in procs:
    if p.is_alive():
      p.terminate()
  for p in procs:
    p.join(timeout=10)


def run_pool(study: types.ModuleType, tasks: Sequence[Task], workers: int,
             max_retries: int = 1) -> Iterator[tuple[Task, list[Outcome]]]:
  """Computes the tasks in a pool of ``workers`` spawned processes (never forked: JAX is threaded).

  If a worker process dies (segfault, out of memory), the whole pool breaks
  and which task killed it is unknown. Every unfinished task then counts one
  attempt and, while it has retries left (``max_retries``), runs again alone
  in a fresh one-process pool (``workers`` of them at a time), so a task that
  kills its worker again fails only itself.
  """
  name, root = module_location(study)
  x64, env_vars, jax_config = x64_enabled(), _worker_env(), numerics_config()
  ctx = multiprocessing.get_context("spawn")

  def new_pool(n: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=setup_worker,
                               initargs=(x64, root, env_vars, jax_config))

  def died(i: int, error: BaseException, attempts: int) -> list[Outcome]:
    return failed_outcomes(tasks[i], f"the worker process died ({type(error).__name__}: {error}) on each of "
                                     f"{attempts} attempts")

  # Round 1: one shared pool.
  remaining = list(range(len(tasks)))
  broken: BaseException | None = None
  pool = new_pool(min(workers, len(tasks)))
  kill = True
  try:
    futures = {pool.submit(worker_run, name, root, tasks[i], x64, jax_config): i for i in remaining}
    pending = set(futures)
    while pending and broken is None:
      done, pending = wait(pending, return_when=FIRST_COMPLETED)
      for fut in done:
        i = futures[fut]
        try:
          outcomes = fut.result()
        except BrokenProcessPool as e:
          broken = e
          continue
        except Exception as e:
          outcomes = failed_outcomes(tasks[i], e)
        remaining.remove(i)
        yield tasks[i], outcomes
    kill = broken is not None
  finally:
    _stop_pool(pool, kill)
  if broken is None:
    return
  # Retries: each unfinished task alone in its own process.
  attempts = {i: 1 for i in remaining}
  queue = [i for i in remaining if attempts[i] <= max_retries]
  for i in remaining:
    if attempts[i] > max_retries:
      yield tasks[i], died(i, broken, attempts[i])
  running: dict[Any, tuple[int, ProcessPoolExecutor]] = {}
  try:
    while queue or running:
      while queue and len(running) < workers:
        i = queue.pop(0)
        solo = new_pool(1)
        running[solo.submit(worker_run, name, root, tasks[i], x64, jax_config)] = (i, solo)
      done, _ = wait(list(running), return_when=FIRST_COMPLETED)
      for fut in done:
        i, solo = running.pop(fut)
        try:
          outcomes = fut.result()
        except BrokenProcessPool as e:
          _stop_pool(solo, kill=True)
          attempts[i] += 1
          if attempts[i] <= max_retries:
            queue.append(i)
            continue
          outcomes = died(i, e, attempts[i])
        except Exception as e:
          outcomes = failed_outcomes(tasks[i], e)
        _stop_pool(solo, kill=False)
        yield tasks[i], outcomes
  finally:
    for _, solo in running.values():
      _stop_pool(solo, kill=True)


def run_ray(study: types.ModuleType, tasks: Sequence[Task], workers: int, address: str | None = None,
            max_retries: int = 1) -> Iterator[tuple[Task, list[Outcome]]]:
  """Computes each task as a Ray task.

  With ``address=None`` (and no Ray session open in this process) an embedded
  local cluster with ``workers`` CPUs is started and shut down afterwards;
  with an address (``"auto"``, ``"ray://host:10001"``, ...) the driver joins
  that cluster and disconnects afterwards. Worker crashes are retried
  ``max_retries`` times by Ray; a task that still fails marks its cells failed.
  The study must be importable on the workers (same path or installed).
  """
  try:
    import ray
  except ImportError:
    raise ParameterError("backend='ray' needs the ray package: pip install 'mdptheory[ray]' "
                         f"(or use one of the other backends: {[b for b in BACKENDS if b != 'ray']})") from None
  name, root = module_location(study)
  x64, jax_config = x64_enabled(), numerics_config()
  started = False
  if not ray.is_initialized():
    kwargs = dict(include_dashboard=False, logging_level=logging.WARNING, configure_logging=True)
    env_vars = _worker_env()
    if env_vars:
      kwargs["runtime_env"] = {"env_vars": env_vars}
    with warnings.catch_warnings():
      # Ray starts its processes with fork+exec (subprocess), which is safe; JAX warns on any fork.
      warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
      if address is None:
        ray.init(num_cpus=workers, **kwargs)
      else:
        ray.init(address=address, **kwargs)
    started = True
  refs: dict[Any, int] = {}
  try:
    remote = ray.remote(num_cpus=1, max_retries=max_retries)(worker_run)
    refs = {remote.remote(name, root, task, x64, jax_config): i for i, task in enumerate(tasks)}
    while refs:
      ready, _ = ray.wait(list(refs), num_returns=1)
      for ref in ready:
        i = refs.pop(ref)
        try:
          outcomes = ray.get(ref)
        except Exception as e:  # the task's worker died max_retries + 1 times, or the study did not import
          outcomes = failed_outcomes(tasks[i], e)
        yield tasks[i], outcomes
  finally:
    for ref in refs:
      try:
        ray.cancel(ref, force=True)
      except Exception:
        pass
    if started:
      ray.shutdown()
