"""Dense linear solves that are safe to batch on XLA's CPU backend.

``jnp.linalg.solve`` under ``vmap`` becomes one batched LAPACK ``getrf``,
which jaxlib (0.10) runs as a ``ParallelBatchMap`` on XLA's intra-op thread
pool and then *waits* on that pool. When as many of these solves run at once
as the pool has threads (two on a 2-core machine, e.g. two independent policy
evaluations in one batched program), every worker waits for sub-tasks that no
worker is free to run: the program never finishes, each thread parked on a
futex (seen in native stacks of a hung ``mdptheory run rb_bias``).

:func:`solve` computes the same thing, but on the CPU its batching rule maps
the unbatched solve over the batch with ``lax.map``, so no batched LAPACK call
waits on the pool. On accelerators the batched solve is kept. It is
differentiable (through :func:`jax.lax.custom_linear_solve`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

Array = jax.Array


@jax.custom_batching.custom_vmap
def _raw_solve(M: Array, b: Array) -> Array:
  return jnp.linalg.solve(M, b)


@_raw_solve.def_vmap
def _raw_solve_vmap(axis_size: int, in_batched: list[bool], M: Array, b: Array):
  m_batched, b_batched = in_batched
  if jax.default_backend() != "cpu":   # batched solvers are fine (and fast) on accelerators
    axes = (0 if m_batched else None, 0 if b_batched else None)
    return jax.vmap(jnp.linalg.solve, in_axes=axes)(M, b), True
  if not m_batched:   # one matrix, many right-hand sides: a single unbatched solve with stacked columns
    cols = jnp.moveaxis(b, 0, -1)                                     # [n, ..., batch]
    flat = cols.reshape(cols.shape[0], -1)
    x = _raw_solve(M, flat).reshape(cols.shape)
    return jnp.moveaxis(x, -1, 0), True
  b = b if b_batched else jnp.broadcast_to(b, (axis_size,) + b.shape)
  return lax.map(lambda mb: _raw_solve(*mb), (M, b)), True


def solve(M: Array, b: Array) -> Array:
  """``x`` with ``M x = b`` for a square ``M [n, n]`` and ``b [n]`` or ``[n, k]`` (as ``jnp.linalg.solve``).

  Batch it with ``jax.vmap`` freely: on the CPU the batch is a ``lax.map`` of
  unbatched LAPACK solves (see the module docstring for why).
  """
  if b.ndim == 1:
    return lax.custom_linear_solve(lambda x: M @ x, b, solve=lambda _, y: _raw_solve(M, y),
                                   transpose_solve=lambda _, y: _raw_solve(M.T, y))
  return jax.vmap(lambda col: solve(M, col), in_axes=1, out_axes=1)(b)


def inv(M: Array) -> Array:
  """``M^{-1}`` for a square ``M [n, n]``, batch-safe like :func:`solve`."""
  return solve(M, jnp.eye(M.shape[-1], dtype=M.dtype))
