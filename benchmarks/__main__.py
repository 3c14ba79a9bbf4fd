"""Runs every benchmark and prints its table: ``python -m benchmarks [name ...]``."""

import sys

from benchmarks import lm_bridge, mdvi_sweep, nash_sweep, vi_peers

BENCHMARKS = {"vi_peers": vi_peers.main, "mdvi_sweep": mdvi_sweep.main, "nash_sweep": nash_sweep.main, "lm_bridge": lm_bridge.main}

if __name__ == "__main__":
  # python -m benchmarks [NAME [benchmark options]]; no name runs every benchmark with its defaults.
  if len(sys.argv) > 1:
    name, options = sys.argv[1], sys.argv[2:]
    if name not in BENCHMARKS:
      sys.exit(f"unknown benchmark {name!r}; choose from {sorted(BENCHMARKS)}")
    BENCHMARKS[name](options)
  else:
    for main in BENCHMARKS.values():
      main([])
