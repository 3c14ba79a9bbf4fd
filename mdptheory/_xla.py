"""XLA settings applied by the entry points (CLI, test suite, sweep workers), never on import.

XLA's CPU backend runs large batched (``vmap``) programs on a multi-threaded
Eigen pool, which can wedge: the program never finishes and every thread
waits on a futex. We saw it reproducibly with ``mdptheory verify --full`` (a
vmapped policy iteration after another large study in the same process), and
it is a known XLA CPU issue; single-threaded Eigen avoids it at a small cost
(XLA still parallelizes across operations).
"""

from __future__ import annotations

import os

SINGLE_THREADED_EIGEN = "--xla_cpu_multi_thread_eigen=false"


def avoid_cpu_pool_deadlock() -> None:
  """Adds ``--xla_cpu_multi_thread_eigen=false`` to ``XLA_FLAGS`` unless the user set that flag.

  Takes effect if called before JAX creates its CPU backend (the first computation).
  """
  flags = os.environ.get("XLA_FLAGS", "")
  if "xla_cpu_multi_thread_eigen" not in flags:
    os.environ["XLA_FLAGS"] = f"{flags} {SINGLE_THREADED_EIGEN}".strip()
