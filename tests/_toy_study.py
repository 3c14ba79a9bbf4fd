"""A synthetic study that follows the study protocol, for the runner's tests.

Each cell computes a geometric sequence x_k = x0 * rate**k, k < length, with
x0 = 1 + U(0, 1) drawn from ``jax.random.key(seed)``. Fault injection through
Config fields (so it works in worker processes too): ``fail_on`` raises when
``rate == fail_on``, ``nan_on`` makes ``value`` NaN from iteration
``length // 2`` on when ``rate == nan_on``, ``crash_on`` kills the worker
process (only in a spawned worker, never the test process) when
``rate == crash_on``, and ``sleep`` sleeps per cell.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

NAME = "toy"
VERSION = "1"

# Calls, counted per process, so the tests can see how cells were grouped.
CALLS = {"run": 0, "run_batch": 0, "batch_sizes": []}


@dataclasses.dataclass(frozen=True)
class Config:
  rate: float = 0.5
  length: int = 6
  label: str = "a"
  flag: bool = False
  fail_on: float = -1.0
  nan_on: float = -1.0
  crash_on: float = -1.0
  sleep: float = 0.0
  seed: int = 0

  @classmethod
  def quick(cls) -> "Config":
    return cls(length=4)


GRID = {"rate": (0.5, 0.9), "length": (6, 8)}
QUICK_GRID = {"rate": (0.5, 0.9)}
SEEDS = 3
QUICK_SEEDS = 2
BATCH = ("seed", "rate")
MONITOR = ("value",)


def _sequence(seed, rate, nan_on, length: int):
  k = jnp.arange(length)
  x0 = 1.0 + jax.random.uniform(jax.random.key(seed))
  value = x0 * rate ** k
  value = jnp.where((rate == nan_on) & (k >= length // 2), jnp.nan, value)
  return x0, value


def _maybe_crash(cfgs) -> None:
  if any(c.rate == c.crash_on for c in cfgs) and multiprocessing.parent_process() is not None:
    os._exit(3)  # a worker dying as on a segfault or an out-of-memory kill


def _frame(cfg: Config, x0, value) -> pd.DataFrame:
  k = np.arange(cfg.length)
  return pd.DataFrame({"study": NAME, "label": cfg.label, "rate": cfg.rate, "length": cfg.length,
                       "seed": cfg.seed, "iteration": k, "value": np.asarray(value),
                       "bound_value": 2.0 * cfg.rate ** k, "x0": float(x0)})


def run(cfg: Config) -> pd.DataFrame:
  """One row per iteration: the sequence and its bound 2 rate^k."""
  CALLS["run"] += 1
  if cfg.sleep:
    time.sleep(cfg.sleep)
  _maybe_crash([cfg])
  if cfg.rate == cfg.fail_on:
    raise ValueError(f"injected failure at rate={cfg.rate}")
  x0, value = jax.jit(_sequence, static_argnums=3)(cfg.seed, cfg.rate, cfg.nan_on, cfg.length)
  return _frame(cfg, x0, value)


def run_batch(cfgs: list[Config]) -> list[pd.DataFrame]:
  """The same cells in one jit(vmap) call; they differ only in seed and rate (BATCH)."""
  CALLS["run_batch"] += 1
  CALLS["batch_sizes"].append(len(cfgs))
  time.sleep(sum(c.sleep for c in cfgs))
  _maybe_crash(cfgs)
  if any(c.rate == c.fail_on for c in cfgs):
    raise ValueError("injected failure in a batch")
  c0 = cfgs[0]
  seeds = jnp.asarray([c.seed for c in cfgs])
  rates = jnp.asarray([c.rate for c in cfgs])
  fn = jax.jit(jax.vmap(_sequence, in_axes=(0, 0, None, None)), static_argnums=3)
  x0, value = fn(seeds, rates, c0.nan_on, c0.length)
  return [_frame(c, x0[i], value[i]) for i, c in enumerate(cfgs)]


def check(df: pd.DataFrame) -> list:
  return []


def plot(df: pd.DataFrame):
  return None
