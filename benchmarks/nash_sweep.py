"""A Nash-MP sweep as one compiled call, against Python loops over the same configurations.

The sweep of issue "Preference games" (THEORY.md §5.2): 64 random intransitive games with n = 200 responses
(P = 1/2 + (U − Uᵀ)/2, uniform π_ref) x 8 values of β x 200 iterations of Nash Mirror-Prox with η = 2β, exact
preferences. The batched path is ``jax.jit(jax.vmap(jax.vmap(nash_mp)))`` (games outside, β inside, so the
two oracle calls per iteration become batched matrix products); the baselines, in the same process, are the
THEORY.md §5.2 pseudo-code in plain numpy and the jitted single-configuration ``nash_mp``, each looped in
Python over the configurations (timed on a subset and reported per configuration, so the ratios compare like
with like). The final policies of the three paths are compared.

    python -m benchmarks nash_sweep [--baseline-configs N] [--repeats R] [--no-x64]

Every timing is the best of R repeats (the machine may be shared).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from mdptheory._xla import avoid_cpu_pool_deadlock  # noqa: E402
from mdptheory.algorithms.nash import nash_mp  # noqa: E402
from mdptheory.envs.preference import random_intransitive_arrays  # noqa: E402
from mdptheory.types import PreferenceGame  # noqa: E402

N_GAMES, N, K = 64, 200, 200
BETAS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5)


def numpy_nash_mp(P, log_ref, beta, num_iters):
  """Nash-MP with η = 2β (THEORY.md §5.2 pseudo-code) for one game [X, n, n] in plain numpy."""
  eta = 2 * beta

  def prox(anchor, g):
    z = (anchor + eta * log_ref + (eta / beta) * g) / (1 + eta)
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))

  lp = log_ref.copy()
  for _ in range(num_iters):
    lh = prox(lp, np.einsum("xij,xj->xi", P, np.exp(lp)))
    lp = prox(lp, np.einsum("xij,xj->xi", P, np.exp(lh)))
  return lp


def main(argv=None) -> None:
  avoid_cpu_pool_deadlock()
  parser = argparse.ArgumentParser()
  parser.add_argument("--baseline-configs", type=int, default=32,
                      help="configurations timed for each Python loop (the rest is extrapolated per configuration)")
  parser.add_argument("--repeats", type=int, default=3, help="each timing is the best of this many runs")
  parser.add_argument("--x64", action=argparse.BooleanOptionalAction, default=True)
  args = parser.parse_args(argv)
  jax.config.update("jax_enable_x64", args.x64)
  dtype = jnp.float64 if args.x64 else jnp.float32

  keys = jax.random.split(jax.random.key(0), N_GAMES)
  P = jax.vmap(lambda k: random_intransitive_arrays(k, N))(keys).astype(dtype)       # [G, 1, n, n]
  rho = jnp.ones((N_GAMES, 1), dtype)
  pi_ref = jnp.full((N_GAMES, 1, N), 1.0 / N, dtype)
  games = PreferenceGame(P=P, rho=rho, pi_ref=pi_ref)
  betas = jnp.asarray(BETAS, dtype)
  C = N_GAMES * len(BETAS)

  def one(game, beta):
    return nash_mp(game, beta=beta, num_iters=K, record_trace=False).log_pi

  def best(fn):
    times = []
    for _ in range(args.repeats):
      t0 = time.perf_counter()
      result = fn()
      times.append(time.perf_counter() - t0)
    return min(times), result

  sweep = jax.jit(jax.vmap(jax.vmap(one, in_axes=(None, 0)), in_axes=(0, None)))   # [G, B, 1, n]
  t0 = time.perf_counter()
  sweep(games, betas).block_until_ready()
  compile_and_run = time.perf_counter() - t0
  batched, out = best(lambda: sweep(games, betas).block_until_ready())

  configs = [(g, b) for g in range(N_GAMES) for b in range(len(BETAS))]
  n = min(args.baseline_configs, C)
  chosen = [configs[i] for i in np.linspace(0, C - 1, n).astype(int)]
  Pn, log_ref = np.asarray(P, np.float64), np.log(np.asarray(pi_ref, np.float64))
  numpy_loop, np_out = best(lambda: [numpy_nash_mp(Pn[g], log_ref[g], BETAS[b], K) for g, b in chosen])
  numpy_loop *= C / n

  single = jax.jit(one)
  game_of = [jax.tree_util.tree_map(lambda a, g=g: a[g], games) for g in range(N_GAMES)]
  single(game_of[0], betas[0]).block_until_ready()          # compile once, outside the timing
  jit_loop, jit_out = best(lambda: [single(game_of[g], betas[b]).block_until_ready() for g, b in chosen])
  jit_loop *= C / n

  out = np.asarray(out, np.float64)
  gap_np = max(float(np.max(np.abs(out[g, b] - o))) for (g, b), o in zip(chosen, np_out))
  gap_jit = max(float(np.max(np.abs(out[g, b] - np.asarray(o)))) for (g, b), o in zip(chosen, jit_out))

  print(f"Nash-MP sweep: {N_GAMES} random intransitive games (n={N}) x {len(BETAS)} beta = {C} configurations x "
        f"{K} iterations (eta = 2 beta, exact preferences), {'float64' if args.x64 else 'float32'}, "
        f"best of {args.repeats}")
  print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} "
        f"on {jax.devices()[0].platform}")
  print(f"max |ln pi_K| difference to the batched call: numpy {gap_np:.2e}, per-configuration jit {gap_jit:.2e}")
  print(f"{'method':46s} {'seconds':>10s} {'configs/s':>10s} {'ratio':>8s}")
  print(f"{'numpy loop (measured on ' + str(n) + ' configs)':46s} {numpy_loop:10.2f} {C / numpy_loop:10.1f} "
        f"{1.0:8.2f}")
  print(f"{'jit per configuration, loop (' + str(n) + ' configs)':46s} {jit_loop:10.2f} {C / jit_loop:10.1f} "
        f"{numpy_loop / jit_loop:8.2f}")
  print(f"{'jit(vmap(vmap)) one call, compiled':46s} {batched:10.2f} {C / batched:10.1f} "
        f"{numpy_loop / batched:8.2f}")
  print(f"{'jit(vmap(vmap)) one call, first (with compile)':46s} {compile_and_run:10.2f} "
        f"{C / compile_and_run:10.1f} {numpy_loop / compile_and_run:8.2f}")


if __name__ == "__main__":
  main()
