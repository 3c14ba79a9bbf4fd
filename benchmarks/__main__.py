"""Runs every benchmark and prints its table: ``python -m benchmarks [name [options]]``.

Without a name, each benchmark runs with its defaults in its own process: they set XLA's CPU flags
differently (``vi_peers`` keeps XLA's multi-threaded defaults, the sweeps run single-threaded Eigen), and
those flags are read once, when a process first uses JAX.
"""

import subprocess
import sys
import time

from benchmarks import lm_bridge, mdvi_sweep, nash_sweep, vi_peers

BENCHMARKS = {"vi_peers": vi_peers.main, "mdvi_sweep": mdvi_sweep.main, "nash_sweep": nash_sweep.main,
              "lm_bridge": lm_bridge.main}

if __name__ == "__main__":
  if len(sys.argv) > 1:
    name, options = sys.argv[1], sys.argv[2:]
    if name not in BENCHMARKS:
      sys.exit(f"unknown benchmark {name!r}; choose from {sorted(BENCHMARKS)}")
    BENCHMARKS[name](options)
  else:
    start = time.perf_counter()
    for name in BENCHMARKS:
      print(f"\n===== {name} =====", flush=True)
      code = subprocess.call([sys.executable, "-m", "benchmarks", name])
      if code:
        sys.exit(f"benchmark {name} failed with exit code {code}")
    print(f"\nall benchmarks: {time.perf_counter() - start:.0f} s")
