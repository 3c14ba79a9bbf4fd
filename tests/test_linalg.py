"""Batch-safe dense solves: same answers and gradients as jnp.linalg.solve, and no batched LAPACK call on the CPU."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mdptheory import linalg

RTOL, ATOL = 1e-12, 1e-12


@pytest.fixture
def systems():
  rng = np.random.default_rng(0)
  M = jnp.asarray(rng.normal(size=(5, 7, 7)) + 7.0 * np.eye(7))
  b = jnp.asarray(rng.normal(size=(5, 7)))
  return M, b


def test_solve_matches_numpy_unbatched_batched_and_nested(systems):
  M, b = systems
  ref = np.linalg.solve(np.asarray(M), np.asarray(b)[..., None])[..., 0]
  np.testing.assert_allclose(linalg.solve(M[0], b[0]), ref[0], rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(jax.jit(jax.vmap(linalg.solve))(M, b), ref, rtol=RTOL, atol=ATOL)
  # One matrix, many right-hand sides; and many matrices, one right-hand side.
  np.testing.assert_allclose(jax.vmap(linalg.solve, in_axes=(None, 0))(M[0], b),
                             np.linalg.solve(np.asarray(M[0]), np.asarray(b).T).T, rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(jax.vmap(linalg.solve, in_axes=(0, None))(M, b[0]),
                             np.linalg.solve(np.asarray(M), np.asarray(b[0])), rtol=RTOL, atol=ATOL)
  nested = jax.vmap(jax.vmap(linalg.solve, in_axes=(None, 0)), in_axes=(0, None))(M, b)   # [5, 5, 7]
  np.testing.assert_allclose(nested, np.einsum("mij,kj->mki", np.linalg.inv(np.asarray(M)), np.asarray(b)),
                             rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(jax.vmap(linalg.inv)(M), np.linalg.inv(np.asarray(M)), rtol=RTOL, atol=ATOL)
  B = jnp.asarray(np.random.default_rng(1).normal(size=(7, 3)))
  np.testing.assert_allclose(linalg.solve(M[0], B), np.linalg.solve(np.asarray(M[0]), np.asarray(B)),
                             rtol=RTOL, atol=ATOL)


def test_gradients_equal_those_of_jnp_linalg_solve(systems):
  M, b = systems

  def loss(solver):
    return lambda M, b: jnp.sum(jnp.sin(solver(M, b)))

  ours = jax.vmap(jax.grad(loss(linalg.solve), argnums=(0, 1)))(M, b)
  ref = jax.vmap(jax.grad(loss(jnp.linalg.solve), argnums=(0, 1)))(M, b)
  for g, r in zip(ours, ref):
    np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-12)
  fwd = jax.jvp(lambda M: linalg.solve(M, b[0]), (M[0],), (jnp.ones_like(M[0]),))[1]
  ref_fwd = jax.jvp(lambda M: jnp.linalg.solve(M, b[0]), (M[0],), (jnp.ones_like(M[0]),))[1]
  np.testing.assert_allclose(fwd, ref_fwd, rtol=1e-10, atol=1e-12)


def test_a_batched_cpu_program_has_only_unbatched_lapack_calls(systems):
  """The property that avoids the CPU thread-pool deadlock: every getrf has num_batch_dims = 0."""
  M, b = systems
  ours = jax.jit(jax.vmap(linalg.solve)).lower(M, b).as_text()
  plain = jax.jit(jax.vmap(jnp.linalg.solve)).lower(M, b).as_text()

  def batch_dims(text):
    return [int(d) for d in re.findall(r'getrf_ffi\(.*?num_batch_dims = "(\d+)"', text)]

  assert batch_dims(plain) and max(batch_dims(plain)) >= 1   # the check can fail: plain solve batches
  assert batch_dims(ours) == [0] * len(batch_dims(ours)) and batch_dims(ours)
