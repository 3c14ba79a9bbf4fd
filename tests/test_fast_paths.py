"""The performance paths keep the results: compiled-once solvers, zero-copy construction, lean M-VI."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import random_mdp
from mdptheory import regularizers as R
from mdptheory import solvers
from mdptheory import validate as V
from mdptheory.algorithms.munchausen import mvi
from mdptheory.errors import InvalidMDPError
from mdptheory.types import MDP


def _numpy_vi(P, r, gamma, num_iters, tau=None):
  """Value iteration in plain numpy: the independent reference for the jitted loop."""
  v = np.zeros(r.shape[0])
  for _ in range(num_iters):
    q = r + gamma * np.einsum("sat,t->sa", P, v)
    if tau is None:
      v = q.max(1)
    else:
      m = q.max(1)
      v = m + tau * np.log(np.exp((q - m[:, None]) / tau).sum(1))
  return v


@pytest.mark.parametrize("tau", [None, 0.3])
def test_value_iteration_matches_numpy_and_compiles_once_per_regularizer(tau):
  mdp = random_mdp(0, num_states=7, num_actions=3, gamma=0.9)
  P, r = np.asarray(mdp.P), np.asarray(mdp.r)
  make = (lambda: None) if tau is None else (lambda: R.entropy(tau))
  before = solvers._value_iteration._cache_size()
  first = solvers.value_iteration(mdp, make(), num_iters=40)
  second = solvers.value_iteration(mdp, make(), num_iters=40)  # a new bundle with the same spec
  # At most one new program for the two calls (none if an earlier test compiled this shape already).
  assert solvers._value_iteration._cache_size() - before <= 1
  np.testing.assert_array_equal(first.v, second.v)
  np.testing.assert_allclose(first.v, _numpy_vi(P, r, 0.9, 40, tau), rtol=0, atol=1e-12)


def test_bundles_without_a_spec_are_told_apart():
  # Two KL bundles toward different references have no spec: the cache must not confuse them.
  mdp = random_mdp(1, num_states=5, num_actions=3, gamma=0.8)
  a = solvers.value_iteration(mdp, R.kl(np.full((5, 3), 1 / 3), 0.5), num_iters=30).v
  ref = np.tile([0.8, 0.1, 0.1], (5, 1))
  b = solvers.value_iteration(mdp, R.kl(ref, 0.5), num_iters=30).v
  assert float(jnp.max(jnp.abs(a - b))) > 1e-3


def test_construction_copies_the_callers_arrays():
  rng = np.random.default_rng(0)
  P = rng.random((40, 3, 40))
  P /= P.sum(-1, keepdims=True)
  r = rng.random((40, 3))
  mdp = MDP.create(P, r, 0.9)
  expected = np.array(mdp.P)
  P[:] = 0.0  # the caller reuses its buffer
  np.testing.assert_array_equal(np.asarray(mdp.P), expected)
  ns = rng.integers(0, 40, (40, 3, 4))
  probs = np.full((40, 3, 4), 0.25)
  sparse = MDP.from_sparse(ns, probs, r, 0.9)
  ns_before = np.array(sparse.P.next_states)
  ns[:] = 0
  np.testing.assert_array_equal(np.asarray(sparse.P.next_states), ns_before)


def test_float32_kernels_are_checked_in_their_own_precision():
  rng = np.random.default_rng(1)
  P = rng.random((300, 2, 300)).astype(np.float32)
  P /= P.sum(-1, keepdims=True)  # normalized in float32: rows sum to 1 within float32 rounding only
  mdp = MDP.create(P, np.zeros((300, 2), np.float32), 0.9, dtype=np.float32)
  assert mdp.P.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(mdp.P, np.float64).sum(-1), 1.0, rtol=0, atol=1e-5)
  P[3, 1, :] *= 1.01
  with pytest.raises(InvalidMDPError, match=r"\(s=3, a=1\) sums to 1\.0099"):
    MDP.create(P, np.zeros((300, 2)), 0.9, dtype=np.float32)


def test_aligned_arrays_are_adopted_without_a_copy():
  x = V.aligned_empty((64, 33), np.float64)
  x[:] = np.arange(64 * 33).reshape(64, 33)
  y = V.adopt(x)
  assert x.ctypes.data % 64 == 0
  np.testing.assert_array_equal(np.asarray(y), x)
  z = V.adopt(np.arange(6.0)[::2])  # not contiguous: copied
  np.testing.assert_array_equal(np.asarray(z), [0.0, 2.0, 4.0])


def test_mvi_without_error_tracking_gives_the_same_iterates():
  mdp = random_mdp(2, num_states=6, num_actions=3, gamma=0.9)
  full = mvi(mdp, alpha=0.9, tau=0.2, num_iters=25)
  lean = mvi(mdp, alpha=0.9, tau=0.2, num_iters=25, track_error=False)
  np.testing.assert_array_equal(full.q, lean.q)
  np.testing.assert_array_equal(full.trace.q_sup, lean.trace.q_sup)
  assert lean.trace.err_sup is None and lean.q_ref is None
  assert full.trace.err_sup.shape == (25,)


def _sparse_and_dense(seed: int, S: int = 9, A: int = 3, B: int = 3):
  rng = np.random.default_rng(seed)
  ns = rng.integers(0, S, (S, A, B))
  probs = rng.random((S, A, B))
  probs /= probs.sum(-1, keepdims=True)
  r = rng.random((S, A))
  sparse = MDP.from_sparse(ns, probs, r, 0.9)
  return sparse, sparse.dense()


def test_lean_md_vi_and_m_vi_give_the_traced_iterates_on_sparse_and_dense_kernels():
  from mdptheory.algorithms.mdmpi import md_mpi
  sparse, dense = _sparse_and_dense(3)
  for mdp in (sparse, dense):
    full = md_mpi(mdp, lam=0.2, tau=0.05, num_iters=30)
    lean = md_mpi(mdp, lam=0.2, tau=0.05, num_iters=30, record_trace=False)
    assert lean.trace is None
    np.testing.assert_array_equal(lean.q, full.q)
    m_full = mvi(mdp, alpha=0.8, tau=0.3, num_iters=30)
    m_lean = mvi(mdp, alpha=0.8, tau=0.3, num_iters=30, record_trace=False)
    assert m_lean.trace is None
    np.testing.assert_array_equal(m_lean.q, m_full.q)
  # The sparse kernel's materialized gather gives the dense kernel's iterates (to summation order).
  np.testing.assert_allclose(md_mpi(sparse, lam=0.2, tau=0.05, num_iters=30, record_trace=False).q,
                             md_mpi(dense, lam=0.2, tau=0.05, num_iters=30, record_trace=False).q,
                             rtol=0, atol=1e-12)


def test_materialize_is_the_identity_in_value_and_derivative():
  from mdptheory import operators as ops
  sparse, dense = _sparse_and_dense(4)
  v = jnp.linspace(-1.0, 2.0, 9)
  np.testing.assert_array_equal(ops.materialize(sparse.P, v), v)
  assert ops.materialize(dense.P, v) is v
  f = lambda x: jnp.sum(jnp.sin(ops.expect(sparse.P, ops.materialize(sparse.P, x))))
  g = lambda x: jnp.sum(jnp.sin(ops.expect(sparse.P, x)))
  np.testing.assert_allclose(jax.grad(f)(v), jax.grad(g)(v), rtol=0, atol=1e-14)
  batched = jax.vmap(lambda x: ops.materialize(sparse.P, x))(jnp.stack([v, 2 * v]))
  np.testing.assert_array_equal(batched, jnp.stack([v, 2 * v]))


def test_md_mpi_refuses_a_reference_without_the_trace():
  from mdptheory.algorithms.mdmpi import md_mpi
  from mdptheory.errors import ParameterError
  mdp = random_mdp(5, num_states=4, num_actions=2)
  with pytest.raises(ParameterError, match="record_trace=True"):
    md_mpi(mdp, lam=0.1, tau=0.0, num_iters=3, reference=solvers.optimum(mdp), record_trace=False)
