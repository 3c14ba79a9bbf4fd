"""A whole MD-VI sweep as one compiled call, against a Python loop of per-configuration numpy runs.

The sweep of issue "KL and entropy regularized approximate DP": 20 Garnets(30, 4, 4) x 8 KL weights
lam x 5 seeds of the generative-model noise (N1) x 800 iterations of MD-VI(lam, 0), gamma = 0.9.
The batched path is ``jax.jit(jax.vmap(...))`` over (Garnet, lam, seed); the baseline is the
THEORY.md §2.4 pseudo-code in plain numpy, looped in Python over the same configurations (timed on a
subset and reported per configuration, so the ratio compares like with like).

    python -m benchmarks mdvi_sweep [--baseline-configs N]
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

from mdptheory import noise  # noqa: E402
from mdptheory._xla import avoid_cpu_pool_deadlock  # noqa: E402
from mdptheory.algorithms.mdmpi import md_mpi  # noqa: E402
from mdptheory.envs.tabular import garnet_arrays  # noqa: E402
from mdptheory.types import MDP  # noqa: E402

S, A, B, GAMMA, K = 30, 4, 4, 0.9, 800
LAMS = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
NUM_GARNETS, NUM_SEEDS = 20, 5


def numpy_mdvi(P, r, gamma, lam, num_iters, rng):
  """MD-VI(lam, 0) with one sampled next state per (s, a) per iteration (THEORY.md §2.4), plain numpy."""
  S, A = r.shape
  logpi = np.full((S, A), -np.log(A))
  q = np.zeros((S, A))
  cdf = np.cumsum(P, -1)
  for _ in range(num_iters):
    z = logpi + q / lam
    z = z - z.max(1, keepdims=True)
    lognew = z - np.log(np.exp(z).sum(1, keepdims=True))
    p = np.exp(lognew)
    kl = (p * (lognew - logpi)).sum(1)
    v = (p * q).sum(1) - lam * kl
    u = rng.random((S, A, 1))
    s_next = np.minimum((u > cdf).sum(-1), S - 1)
    q = r + gamma * v[s_next]
    logpi = lognew
  return q


def main(argv=None) -> None:
  avoid_cpu_pool_deadlock()
  parser = argparse.ArgumentParser()
  parser.add_argument("--baseline-configs", type=int, default=16,
                      help="configurations timed for the numpy loop (the rest is extrapolated per configuration)")
  parser.add_argument("--x64", action=argparse.BooleanOptionalAction, default=True)
  args = parser.parse_args(argv)
  jax.config.update("jax_enable_x64", args.x64)
  dtype = jnp.float64 if args.x64 else jnp.float32

  keys = jax.random.split(jax.random.key(0), NUM_GARNETS)
  P, r = jax.vmap(lambda k: garnet_arrays(k, S, A, B))(keys)
  P, r = P.astype(dtype), r.astype(dtype)
  G, L, N = np.meshgrid(np.arange(NUM_GARNETS), np.asarray(LAMS), np.arange(NUM_SEEDS), indexing="ij")
  g_idx, lam, seed = jnp.asarray(G.ravel()), jnp.asarray(L.ravel(), dtype), jnp.asarray(N.ravel())
  C = g_idx.shape[0]

  def one(g, lam, seed):
    mdp = MDP(P=P[g], r=r[g], gamma=jnp.asarray(GAMMA, dtype), mu0=jnp.full(S, 1.0 / S, dtype))
    return md_mpi(mdp, lam=lam, tau=0.0, num_iters=K, noise=noise.generative(),
                  key=jax.random.fold_in(jax.random.key(1), g * 1000 + seed)).q

  sweep = jax.jit(jax.vmap(one))
  t0 = time.perf_counter()
  sweep(g_idx, lam, seed).block_until_ready()
  compile_and_run = time.perf_counter() - t0
  t0 = time.perf_counter()
  sweep(g_idx, lam, seed).block_until_ready()
  batched = time.perf_counter() - t0

  Pn, rn = np.asarray(P, np.float64), np.asarray(r, np.float64)
  n = min(args.baseline_configs, C)
  rng = np.random.default_rng(0)
  t0 = time.perf_counter()
  for i in range(n):
    numpy_mdvi(Pn[int(G.ravel()[i])], rn[int(G.ravel()[i])], GAMMA, float(L.ravel()[i]), K, rng)
  per_config = (time.perf_counter() - t0) / n
  loop = per_config * C

  print(f"MD-VI sweep: {NUM_GARNETS} Garnets({S},{A},{B}) x {len(LAMS)} lam x {NUM_SEEDS} seeds = {C} "
        f"configurations x {K} iterations, N1 noise, {'float64' if args.x64 else 'float32'}")
  print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} "
        f"on {jax.devices()[0].platform}")
  print(f"{'method':44s} {'seconds':>10s} {'configs/s':>10s} {'ratio':>8s}")
  print(f"{'numpy loop (measured on ' + str(n) + ' configs)':44s} {loop:10.2f} {C / loop:10.1f} {1.0:8.2f}")
  print(f"{'jit(vmap) one call, compiled':44s} {batched:10.2f} {C / batched:10.1f} {loop / batched:8.2f}")
  print(f"{'jit(vmap) one call, first (with compile)':44s} {compile_and_run:10.2f} {C / compile_and_run:10.1f} "
        f"{loop / compile_and_run:8.2f}")


if __name__ == "__main__":
  main()
