"""Tabular problem factories: Garnet, chain, RiverSwim, gridworlds, forest management.

Every factory is a pure function that returns exact problem data, an
:class:`~mdptheory.types.MDP` (``P [S, A, S]`` or a sparse kernel, ``r [S, A]``,
``gamma``, ``mu0 [S]``) or a :class:`~mdptheory.types.FiniteHorizonMDP`
(``P [H, S, A, S]``, ``r [H, S, A]``, ``mu0 [S]``), built through the validated
constructors. Randomness is explicit: random factories take ``key`` (an int
seed or a JAX PRNG key) and the same key always gives the same arrays.
``dtype=None`` gives JAX's default float (float64 when x64 is on).

Action and state conventions are documented per factory; rewards are the
expected reward ``r[s, a]`` of taking ``a`` in ``s``.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mdptheory import validate as V
from mdptheory.errors import ParameterError
from mdptheory.types import MDP, FiniteHorizonMDP, SparseKernel

Array = jax.Array

# Grid actions, shared by `gridworld` and `sutton_barto_grid`: (d_row, d_col).
NORTH, EAST, SOUTH, WEST = 0, 1, 2, 3
_MOVES = ((-1, 0), (0, 1), (1, 0), (0, -1))

_SPARSE_HINT = ("; pass sparse=True to store B successors per (s, a) in O(S A B) memory "
                "(a SparseKernel), or raise memory_budget if the machine really has the memory")


# -----------------------------------------------------------------------------
# Garnet (THEORY.md §1.2; Archibald, McKinnon & Thomas 1995; Vieillard et al. 2020, Appx. D)
# -----------------------------------------------------------------------------


def as_key(key: Any) -> Array:
  """An int seed or a JAX PRNG key (``jax.random.key`` or legacy ``PRNGKey``) as a PRNG key.

  Raises:
    ParameterError: for anything else (floats, bools, batches of keys).
  """
  if isinstance(key, (bool, np.bool_)):
    raise ParameterError(f"key={key!r} is a bool; pass an int seed or jax.random.key(seed)")
  if isinstance(key, (numbers.Integral, np.integer)):
    seed = int(key)
    if not -2**63 <= seed < 2**64:
      raise ParameterError(f"key={seed} does not fit in 64 bits; pass a smaller int seed")
    return jax.random.key(seed)
  if isinstance(key, (jax.Array, np.ndarray)):
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
      if key.shape != ():
        raise ParameterError(
            f"key must be a single PRNG key, got a batch of shape {key.shape}; "
            f"use garnet_batch or jax.vmap(garnet_arrays) for many keys")
      return key
    if key.dtype == np.uint32 and key.shape == (2,):
      # Same bits as jax.random.key(seed); one key type means one compiled sampler.
      return jax.random.wrap_key_data(jnp.asarray(key))
    raise ParameterError(
        f"key has dtype {key.dtype} and shape {key.shape}; pass an int seed, jax.random.key(seed) "
        f"or jax.random.PRNGKey(seed) (uint32 of shape (2,))")
  raise ParameterError(
      f"key={key!r} of type {type(key).__name__} is not a seed or PRNG key; "
      f"pass an int or jax.random.key(seed)")


def _num_rewarding(num_states: int, reward_fraction: float) -> int:
  """round(reward_fraction * S) states, at least one (THEORY.md §1.2: "10% of the states")."""
  return max(1, int(round(reward_fraction * num_states)))


def _distinct_successors(key: Array, num_rows: int, num_states: int, branching: int) -> Array:
  """B distinct states uniformly without replacement for each of ``num_rows`` rows, sorted.  -> [rows, B].

  Sequential sampling without replacement by rank: draw ``u_i ~ U{0, ..., S-1-i}``
  and take the ``u_i``-th (0-based) state not chosen yet, for i = 0..B-1. The map
  from ``(u_0, ..., u_{B-1})`` to ordered distinct tuples is a bijection, so the
  chosen set is uniform among the B-subsets. The ``u``-th free state is
  ``x = u + #{j : v_j - j <= u}`` for the chosen values sorted ``v_0 < v_1 < ...``
  (``v_j - j`` counts the free states below ``v_j``), and it belongs at position
  ``#{j : v_j - j <= u}`` of the sorted list. Each row keeps a sorted buffer of B
  slots (free slots hold the sentinel S + B), so the cost is O(B^2) per row and
  the memory O(rows * B): no S-sized permutation per row, which is what lets a
  sparse Garnet have S = 10^6 states.
  """
  u = jax.random.randint(key, (num_rows, branching), 0, num_states - jnp.arange(branching),
                         dtype=jnp.int32)
  slots = jnp.arange(branching, dtype=jnp.int32)
  sentinel = num_states + branching  # sentinel - j > S - 1 >= u: never counted
  chosen = jnp.full((num_rows, branching), sentinel, jnp.int32)

  def insert(i, chosen):
    u_i = jax.lax.dynamic_index_in_dim(u, i, axis=1, keepdims=False)          # [rows]
    k = jnp.sum(chosen - slots <= u_i[:, None], axis=1, dtype=jnp.int32)       # [rows]
    x = u_i + k                                                                # [rows]
    shifted = jnp.concatenate([chosen[:, :1], chosen[:, :-1]], axis=1)         # shifted[j] = chosen[j-1]
    return jnp.where(slots < k[:, None], chosen,
                     jnp.where(slots == k[:, None], x[:, None], shifted))

  return jax.lax.fori_loop(0, branching, insert, chosen)


@functools.partial(jax.jit, static_argnames=("num_states", "num_actions", "branching",
                                             "reward_fraction"))
def garnet_sparse_arrays(key: Array, num_states: int, num_actions: int, branching: int,
                         reward_fraction: float = 0.1) -> tuple[Array, Array, Array]:
  """The Garnet sampler of THEORY.md §1.2 as successor lists; pure and jittable.

  For every (s, a): ``branching`` distinct next states uniformly without
  replacement (stored sorted); ``branching - 1`` sorted uniforms padded with 0
  and 1, whose consecutive differences are the probabilities. Rewards:
  ``max(1, round(reward_fraction * S))`` states chosen uniformly without
  replacement get a reward ~ U(0, 1), the same for every action; the others 0.
  Memory is O(S A B) plus one S-sized permutation for the rewarding states.

  The integer arguments and ``reward_fraction`` fix shapes, so they are static;
  batch over keys with ``jax.vmap(lambda k: garnet_sparse_arrays(k, S, A, B))(keys)``.

  Args:
    key: a JAX PRNG key.
    num_states: S.
    num_actions: A.
    branching: B <= S, successors per (s, a).
    reward_fraction: fraction of rewarding states.

  Returns:
    ``(next_states [S, A, B] int32, probs [S, A, B], r [S, A])``, floats in
    JAX's default float dtype.
  """
  S, A, B = num_states, num_actions, branching
  k_next, k_cuts, k_states, k_rewards = jax.random.split(key, 4)
  next_states = _distinct_successors(k_next, S * A, S, B).reshape(S, A, B)
  cuts = jnp.sort(jax.random.uniform(k_cuts, (S * A, B - 1)), axis=1)
  edges = jnp.concatenate([jnp.zeros((S * A, 1)), cuts, jnp.ones((S * A, 1))], axis=1)
  probs = jnp.diff(edges, axis=1).reshape(S, A, B)
  m = _num_rewarding(S, reward_fraction)
  rewarding = jax.random.choice(k_states, S, (m,), replace=False)
  # U(0, 1) drawn in [tiny, 1) so that a rewarding state never gets exactly 0.
  values = jax.random.uniform(k_rewards, (m,), minval=jnp.finfo(jnp.zeros(()).dtype).tiny)
  r_state = jnp.zeros(S).at[rewarding].set(values)                              # [S]
  r = jnp.broadcast_to(r_state[:, None], (S, A))
  return next_states, probs, r


@functools.partial(jax.jit, static_argnames=("num_states", "num_actions", "branching",
                                             "reward_fraction"))
def garnet_arrays(key: Array, num_states: int, num_actions: int, branching: int,
                  reward_fraction: float = 0.1) -> tuple[Array, Array]:
  """A dense Garnet ``(P [S, A, S], r [S, A])``; pure and jittable, for ``jax.vmap`` over keys.

  The same sampler as :func:`garnet_sparse_arrays` (the successor lists are
  scattered into a dense kernel), so a dense and a sparse Garnet built from the
  same key are the same MDP. Many Garnets in one call::

      keys = jax.random.split(jax.random.key(0), 100)
      P, r = jax.vmap(lambda k: garnet_arrays(k, 30, 4, 4))(keys)   # [100, 30, 4, 30], [100, 30, 4]

  This path does not validate its output (it is the jitted core); use
  :func:`garnet` or :func:`garnet_batch` for validated ``MDP``s.
  """
  next_states, probs, r = garnet_sparse_arrays(key, num_states, num_actions, branching,
                                               reward_fraction)
  S, A = num_states, num_actions
  P = jnp.zeros((S, A, S), probs.dtype).at[
      jnp.arange(S)[:, None, None], jnp.arange(A)[None, :, None], next_states].set(probs)
  return P, r


def garnet_mdp(key: Array, num_states: int, num_actions: int, branching: int, gamma: Any,
               reward_fraction: float = 0.1) -> MDP:
  """A dense Garnet as an ``MDP`` with a uniform ``mu0``; pure and jittable, for ``jax.vmap`` over keys.

  The unvalidated jitted path used inside batched studies (``gamma`` may be
  traced); :func:`garnet` is the validated constructor::

      mdps = jax.vmap(lambda k: garnet_mdp(k, 30, 4, 4, 0.9))(jax.random.split(jax.random.key(0), 20))
  """
  P, r = garnet_arrays(key, num_states, num_actions, branching, reward_fraction)
  return MDP(P=P, r=r, gamma=jnp.asarray(gamma, r.dtype), mu0=jnp.full(num_states, 1.0 / num_states, r.dtype))


def garnet_fh_numpy(seed: int, num_states: int, num_actions: int, branching: int, horizon: int, *,
                    start: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """A finite-horizon Garnet drawn on the host with numpy: a Garnet(S, A, B) kernel per stage, U(0, 1) rewards.

  Each row P_h(·|s, a) has B distinct successors drawn uniformly without replacement, with probabilities
  the spacings of B − 1 sorted uniforms (THEORY.md §1.2); ``rng = default_rng([seed, 0])``. The start
  distribution is uniform, or a point mass on ``start``. No JAX compile, for studies that build many
  instances. Returns ``(P [H, S, A, S], r [H, S, A], mu0 [S])``, unvalidated arrays.
  """
  S, A, B, H = num_states, num_actions, branching, horizon
  rng = np.random.default_rng([seed, 0])
  P = np.zeros((H, S, A, S))
  succ = np.argsort(rng.random((H, S, A, S)), axis=-1)[..., :B]
  cuts = np.sort(rng.random((H, S, A, B - 1)), axis=-1)
  probs = np.diff(np.concatenate([np.zeros((H, S, A, 1)), cuts, np.ones((H, S, A, 1))], axis=-1), axis=-1)
  np.put_along_axis(P, succ, probs, axis=-1)
  mu0 = np.full(S, 1.0 / S) if start is None else np.eye(S)[start]
  return P, rng.random((H, S, A)), mu0


def _check_garnet_sizes(num_states: Any, num_actions: Any, branching: Any,
                        reward_fraction: Any) -> tuple[int, int, int, float]:
  S = V.check_int("num_states", num_states, minimum=1)
  A = V.check_int("num_actions", num_actions, minimum=1)
  B = V.check_int("branching", branching, minimum=1)
  if B > S:
    raise ParameterError(
        f"branching={B} exceeds num_states={S}; a Garnet draws B distinct next states, so use branching <= {S}")
  if S + B >= 2**31:
    raise ParameterError(f"num_states={S} is too large for int32 state indices; use num_states < 2**31 - B")
  f = V.check_real_scalar("reward_fraction", reward_fraction)
  if not 0.0 <= f <= 1.0:
    raise ParameterError(f"reward_fraction={f} must be in [0, 1] (THEORY.md §1.2 uses 0.1)")
  return S, A, B, f


def garnet(key: Any = 0, num_states: int = 30, num_actions: int = 4, branching: int = 4,
           gamma: float = 0.9, reward_fraction: float = 0.1, sparse: bool = False,
           dtype: Any = None, memory_budget: int | None = None) -> MDP:
  """A random Garnet MDP, exactly the protocol of THEORY.md §1.2.

  For every (s, a): ``branching`` distinct next states uniformly without
  replacement; ``branching - 1`` sorted U(0, 1) draws padded with 0 and 1 give
  the probabilities as consecutive differences. ``max(1, round(reward_fraction
  * S))`` states, chosen uniformly without replacement, get a U(0, 1) reward for
  every action; the others get 0 (so r_max <= 1). ``mu0`` is uniform. This is the
  Garnet of *Leverage the Average* (Vieillard et al., NeurIPS 2020, Appx. D),
  after Archibald, McKinnon & Thomas (1995).

  The dense and the sparse Garnet share the sampler :func:`garnet_sparse_arrays`:
  for the same key, ``garnet(k, sparse=True).dense()`` equals ``garnet(k)``.

  Args:
    key: int seed or JAX PRNG key (``jax.random.key`` or ``jax.random.PRNGKey``).
    num_states: S.
    num_actions: A.
    branching: B, successors per (s, a), 1 <= B <= S.
    gamma: discount in [0, 1).
    reward_fraction: fraction of rewarding states, in [0, 1].
    sparse: store ``P`` as a :class:`SparseKernel` [S, A, B] (O(S A B) memory;
      S = 10^6 is fine). The dense kernel [S, A, S] is refused above the memory
      budget before anything is allocated.
    dtype: float32 or float64; JAX's default float when None.
    memory_budget: bytes allowed for the dense kernel (default 2 GiB).

  Returns:
    A validated :class:`MDP`. The draws are made in JAX's default float, so the
    same key gives the same Garnet for a given x64 setting (float64 draws when
    x64 is on, float32 draws when it is off).

  Raises:
    MemoryBudgetError: dense ``P`` over the budget (use ``sparse=True``).
    ParameterError: bad sizes, gamma or key.
  """
  S, A, B, f = _check_garnet_sizes(num_states, num_actions, branching, reward_fraction)
  V.check_gamma(gamma)
  dt = V.resolve_dtype(dtype)
  if not sparse:
    V.check_dense_budget("Garnet transition kernel P", (S, A, S), dt, memory_budget, hint=_SPARSE_HINT)
  key = as_key(key)
  if sparse:
    next_states, probs, r = garnet_sparse_arrays(key, S, A, B, f)
    return MDP.from_sparse(next_states, probs, r, gamma, dtype=dtype)
  P, r = garnet_arrays(key, S, A, B, f)
  return MDP.create(P, r, gamma, dtype=dtype, memory_budget=memory_budget)


def garnet_batch(key: Any = 0, num_mdps: int = 8, num_states: int = 30, num_actions: int = 4,
                 branching: int = 4, gamma: float = 0.9, reward_fraction: float = 0.1,
                 sparse: bool = False, dtype: Any = None,
                 memory_budget: int | None = None) -> MDP:
  """``num_mdps`` Garnets built in one vmapped call, as one MDP pytree with a leading batch axis.

  Garnet i is ``garnet(jax.random.split(key, num_mdps)[i], ...)``. The leaves are
  ``P [N, S, A, S]`` (or a SparseKernel [N, S, A, B]), ``r [N, S, A]``,
  ``gamma [N]``, ``mu0 [N, S]``, ready for ``jax.vmap(solver)(batch)``.

  Args:
    key: int seed or a single JAX PRNG key; split into ``num_mdps`` keys.
    num_mdps: N.
    Other arguments: as in :func:`garnet`; the memory budget applies to the
      whole dense batch [N, S, A, S].

  Returns:
    A batched :class:`MDP` (validated in numpy).
  """
  N = V.check_int("num_mdps", num_mdps, minimum=1)
  S, A, B, f = _check_garnet_sizes(num_states, num_actions, branching, reward_fraction)
  g = V.check_gamma(gamma)
  dt = V.resolve_dtype(dtype)
  if not sparse:
    V.check_dense_budget("batch of Garnet kernels P", (N, S, A, S), dt, memory_budget,
                         hint=_SPARSE_HINT)
  keys = jax.random.split(as_key(key), N)
  if sparse:
    next_states, probs, r = jax.vmap(lambda k: garnet_sparse_arrays(k, S, A, B, f))(keys)
    probs = V.check_stochastic("probs", np.asarray(probs, np.float64), what="successor list",
                               index_names=("mdp", "s", "a"))
    P = SparseKernel(next_states, jnp.asarray(probs, dt))
  else:
    P, r = jax.vmap(lambda k: garnet_arrays(k, S, A, B, f))(keys)
    P = jnp.asarray(V.check_stochastic("P", np.asarray(P, np.float64), what="row P[mdp, s, a, :]",
                                       index_names=("mdp", "s", "a")), dt)
  return MDP(P=P, r=jnp.asarray(r, dt), gamma=jnp.full((N,), g, dt), mu0=jnp.full((N, S), 1.0 / S, dt))


def garnet_fh(key: Any = 0, num_states: int = 30, num_actions: int = 4, branching: int = 4,
              horizon: int = 10, reward_fraction: float = 0.1, dtype: Any = None,
              memory_budget: int | None = None) -> FiniteHorizonMDP:
  """A finite-horizon Garnet with a fresh Garnet kernel and reward at every stage.

  Stage h uses ``garnet_arrays(jax.random.split(key, H)[h], S, A, B, reward_fraction)``
  (THEORY.md §1.2 per stage), so ``P [H, S, A, S]`` and ``r [H, S, A]`` depend
  on h. ``mu0`` is uniform.
  """
  S, A, B, f = _check_garnet_sizes(num_states, num_actions, branching, reward_fraction)
  H = V.check_int("horizon", horizon, minimum=1)
  dt = V.resolve_dtype(dtype)
  V.check_dense_budget("finite-horizon Garnet kernel P", (H, S, A, S), dt, memory_budget,
                       hint="; use a shorter horizon or fewer states")
  keys = jax.random.split(as_key(key), H)
  P, r = jax.vmap(lambda k: garnet_arrays(k, S, A, B, f))(keys)
  return FiniteHorizonMDP.create(P, r, horizon=H, dtype=dtype, memory_budget=memory_budget)


# -----------------------------------------------------------------------------
# Chains
# -----------------------------------------------------------------------------

LEFT, RIGHT = 0, 1


def _check_probability(name: str, p: Any) -> float:
  p = V.check_real_scalar(name, p)
  if not 0.0 <= p <= 1.0:
    raise ParameterError(f"{name}={p} is a probability and must be in [0, 1]")
  return p


def chain(num_states: int = 10, slip: float = 0.1, gamma: float = 0.9, left_reward: float = 0.1,
          right_reward: float = 1.0, dtype: Any = None) -> MDP:
  """A chain of ``num_states`` states with two actions, 0 = left and 1 = right.

  Dynamics: the intended move of ``left`` is ``s -> max(s - 1, 0)`` and of
  ``right`` is ``s -> min(s + 1, S - 1)``. With probability ``1 - slip`` the
  intended move happens; with probability ``slip`` the move goes the other way
  (at an end, a move off the chain stays in place). Rewards depend on (s, a)
  only: ``r[0, left] = left_reward`` (0.1), ``r[S-1, right] = right_reward``
  (1), all others 0. ``mu0`` puts all mass on state 0, so a myopic agent
  settles for the small reward on the left.

  Args:
    num_states: S >= 2.
    slip: probability that the move goes the opposite way, in [0, 1].
    gamma: discount in [0, 1).
    left_reward: reward for ``left`` in state 0.
    right_reward: reward for ``right`` in state S - 1.
    dtype: float32 or float64.
  """
  S = V.check_int("num_states", num_states, minimum=2)
  slip = _check_probability("slip", slip)
  P = np.zeros((S, 2, S))
  for s in range(S):
    dest = (max(s - 1, 0), min(s + 1, S - 1))
    for a in (LEFT, RIGHT):
      P[s, a, dest[a]] += 1.0 - slip
      P[s, a, dest[1 - a]] += slip
  r = np.zeros((S, 2))
  r[0, LEFT] = V.check_real_scalar("left_reward", left_reward)
  r[S - 1, RIGHT] = V.check_real_scalar("right_reward", right_reward)
  mu0 = np.eye(S)[0]
  return MDP.create(P, r, gamma, mu0, dtype=dtype)


def river_swim(num_states: int = 6, gamma: float = 0.95, dtype: Any = None) -> MDP:
  """RiverSwim (Strehl & Littman, 2008, "An analysis of model-based interval estimation for
  Markov decision processes", J. Comput. Syst. Sci. 74(8)).

  Actions 0 = left (swim with the current) and 1 = right (against it).

  * ``left`` is deterministic: ``s -> max(s - 1, 0)``.
  * ``right`` in an interior state: to s + 1 w.p. 0.35, stay w.p. 0.6, back to
    s - 1 w.p. 0.05. In state 0: to state 1 w.p. 0.4, stay w.p. 0.6. In the
    rightmost state: stay w.p. 0.6, back to S - 2 w.p. 0.4.
  * Rewards: ``r[0, left] = 5/1000``, ``r[S-1, right] = 1``, others 0 (the
    rewards of Strehl & Littman, 5 and 10000, rescaled as in Osband, Russo &
    Van Roy, 2013, "(More) efficient reinforcement learning via posterior
    sampling", NeurIPS).
  * ``mu0``: all mass on state 0, the leftmost state, as in Osband, Russo &
    Van Roy (2013). Strehl & Littman start uniformly in one of the first two
    states instead; build that with ``mdp._replace(mu0=...)`` if needed (the
    values per state do not change).

  Args:
    num_states: S >= 2.
    gamma: discount in [0, 1).
    dtype: float32 or float64.
  """
  S = V.check_int("num_states", num_states, minimum=2)
  P = np.zeros((S, 2, S))
  for s in range(S):
    P[s, LEFT, max(s - 1, 0)] = 1.0
    if s == 0:
      P[s, RIGHT, 1] = 0.4
      P[s, RIGHT, 0] = 0.6
    elif s == S - 1:
      P[s, RIGHT, s] = 0.6
      P[s, RIGHT, s - 1] = 0.4
    else:
      P[s, RIGHT, s + 1] = 0.35
      P[s, RIGHT, s] = 0.6
      P[s, RIGHT, s - 1] = 0.05
  r = np.zeros((S, 2))
  r[0, LEFT] = 5.0 / 1000.0
  r[S - 1, RIGHT] = 1.0
  mu0 = np.eye(S)[0]
  return MDP.create(P, r, gamma, mu0, dtype=dtype)


# -----------------------------------------------------------------------------
# Gridworlds
# -----------------------------------------------------------------------------


def _cell(name: str, cell: Any, height: int, width: int) -> tuple[int, int]:
  try:
    row, col = (int(c) for c in cell)
  except (TypeError, ValueError):
    raise ParameterError(f"{name} {cell!r} is not a (row, col) pair of ints") from None
  if not (0 <= row < height and 0 <= col < width):
    raise ParameterError(
        f"{name} {(row, col)} is outside the {height}x{width} grid; rows are 0..{height - 1}, "
        f"columns 0..{width - 1}")
  return row, col


def gridworld(height: int = 5, width: int = 5, gamma: float = 0.9, slip: float = 0.0,
              goals: Mapping[tuple[int, int], float] | None = None,
              walls: Sequence[tuple[int, int]] = (), start: tuple[int, int] | None = (0, 0),
              step_reward: float = 0.0, bump_reward: float = 0.0, dtype: Any = None) -> MDP:
  """A grid of ``height x width`` cells with four moves; state index ``row * width + col``.

  Actions: 0 = north (row - 1), 1 = east (col + 1), 2 = south (row + 1),
  3 = west (col - 1). With probability ``1 - slip`` the chosen move is made;
  with probability ``slip`` the move is drawn uniformly among the four (so the
  chosen one has total probability ``1 - 3 slip / 4``). A move into the edge or a
  wall leaves the agent in place and gives ``bump_reward``; a move into a goal
  cell gives that goal's reward; any other move gives ``step_reward``; ``r[s, a]``
  is the expectation over the slip. Goal cells are absorbing with reward 0 (the
  episode is over); wall cells are unreachable self-loops with reward 0.

  Args:
    height: number of rows.
    width: number of columns.
    gamma: discount in [0, 1).
    slip: probability of a uniformly random move, in [0, 1].
    goals: ``{(row, col): reward}``; default ``{(height - 1, width - 1): 1.0}``.
    walls: cells that cannot be entered.
    start: the start cell (``mu0`` is a point mass); None for uniform over the
      cells that are neither walls nor goals.
    step_reward: reward of an ordinary move (e.g. -1 for shortest paths).
    bump_reward: reward of a move into the edge or a wall.
    dtype: float32 or float64.
  """
  H = V.check_int("height", height, minimum=1)
  W = V.check_int("width", width, minimum=1)
  slip = _check_probability("slip", slip)
  if goals is None:
    goals = {(H - 1, W - 1): 1.0}
  if not isinstance(goals, Mapping):
    raise ParameterError(f"goals must be a mapping {{(row, col): reward}}, got {type(goals).__name__}")
  goal_reward = {_cell("goal", c, H, W): V.check_real_scalar(f"goals[{c}]", g) for c, g in goals.items()}
  wall_set = {_cell("wall", c, H, W) for c in walls}
  if clash := sorted(wall_set & set(goal_reward)):
    raise ParameterError(f"cells {clash} are both walls and goals; remove them from one of the two")
  step_reward = V.check_real_scalar("step_reward", step_reward)
  bump_reward = V.check_real_scalar("bump_reward", bump_reward)
  S = H * W
  move_probs = np.full(4, slip / 4.0)
  P = np.zeros((S, 4, S))
  r = np.zeros((S, 4))
  for row in range(H):
    for col in range(W):
      s = row * W + col
      if (row, col) in wall_set or (row, col) in goal_reward:
        P[s, :, s] = 1.0
        continue
      for a in range(4):
        for move, p_move in enumerate(move_probs + (1.0 - slip) * np.eye(4)[a]):
          nr, nc = row + _MOVES[move][0], col + _MOVES[move][1]
          if not (0 <= nr < H and 0 <= nc < W) or (nr, nc) in wall_set:
            P[s, a, s] += p_move
            r[s, a] += p_move * bump_reward
          else:
            P[s, a, nr * W + nc] += p_move
            r[s, a] += p_move * goal_reward.get((nr, nc), step_reward)
  if start is None:
    free = np.ones(S)
    for (row, col) in wall_set | set(goal_reward):
      free[row * W + col] = 0.0
    if free.sum() == 0:
      raise ParameterError("every cell is a wall or a goal, so there is no start cell; free some cells")
    mu0 = free / free.sum()
  else:
    row, col = _cell("start", start, H, W)
    if (row, col) in wall_set or (row, col) in goal_reward:
      raise ParameterError(f"start {(row, col)} is a wall or a goal; pick a free cell or start=None")
    mu0 = np.eye(S)[row * W + col]
  return MDP.create(P, r, gamma, mu0, dtype=dtype)


def sutton_barto_grid(gamma: float = 0.9, dtype: Any = None) -> MDP:
  """The 5x5 gridworld of Sutton & Barto (2018, 2nd ed.), Example 3.5 (Figures 3.2 and 3.5).

  State index ``row * 5 + col``; actions 0 = north, 1 = east, 2 = south,
  3 = west. From A = (0, 1) every action gives +10 and moves to A' = (4, 1);
  from B = (0, 3) every action gives +5 and moves to B' = (2, 3). Elsewhere, an
  action that would leave the grid gives -1 and leaves the state unchanged, and
  any other move gives 0. ``mu0`` is uniform (the example is continuing).
  With gamma = 0.9 the equiprobable random policy has the values of Figure 3.2
  and the optimal values are those of Figure 3.5.
  """
  n = 5
  A_cell, A_prime, B_cell, B_prime = (0, 1), (4, 1), (0, 3), (2, 3)
  P = np.zeros((n * n, 4, n * n))
  r = np.zeros((n * n, 4))
  for row in range(n):
    for col in range(n):
      s = row * n + col
      for a in range(4):
        if (row, col) == A_cell:
          dest, reward = A_prime, 10.0
        elif (row, col) == B_cell:
          dest, reward = B_prime, 5.0
        else:
          nr, nc = row + _MOVES[a][0], col + _MOVES[a][1]
          dest, reward = ((nr, nc), 0.0) if 0 <= nr < n and 0 <= nc < n else ((row, col), -1.0)
        P[s, a, dest[0] * n + dest[1]] = 1.0
        r[s, a] = reward
  return MDP.create(P, r, gamma, dtype=dtype)


# -----------------------------------------------------------------------------
# Forest management (pymdptoolbox's mdptoolbox.example.forest)
# -----------------------------------------------------------------------------

WAIT, CUT = 0, 1


def forest(num_states: int = 3, r1: float = 4.0, r2: float = 2.0, p: float = 0.1,
           gamma: float = 0.9, dtype: Any = None) -> MDP:
  """The forest-management MDP exactly as ``mdptoolbox.example.forest(S, r1, r2, p)`` builds it.

  States are age classes 0..S-1 of the forest; actions 0 = wait, 1 = cut.

  * wait: to the next age class w.p. 1 - p (the oldest class stays), or a fire
    burns the forest back to state 0 w.p. p.
  * cut: back to state 0 w.p. 1.
  * rewards: wait gives ``r1`` in the oldest state, 0 elsewhere; cut gives 0 in
    state 0, 1 in the middle states and ``r2`` in the oldest state.

  Textbook value (pymdptoolbox docs, ``PolicyIteration`` example): with the
  defaults and gamma = 0.9, "always wait" is optimal with
  V = (26.244, 29.484, 33.484).

  Args:
    num_states: S >= 2 age classes.
    r1: reward for waiting in the oldest state, > 0.
    r2: reward for cutting in the oldest state, > 0.
    p: probability of a fire, in [0, 1].
    gamma: discount in [0, 1).
    dtype: float32 or float64.
  """
  S = V.check_int("num_states", num_states, minimum=2)
  r1 = V.check_positive("r1", r1)
  r2 = V.check_positive("r2", r2)
  p = _check_probability("p", p)
  P = np.zeros((S, 2, S))
  P[:, WAIT, 0] = p
  for s in range(S - 1):
    P[s, WAIT, s + 1] = 1.0 - p
  P[S - 1, WAIT, S - 1] = 1.0 - p
  P[:, CUT, 0] = 1.0
  r = np.zeros((S, 2))
  r[S - 1, WAIT] = r1
  r[1:S - 1, CUT] = 1.0
  r[S - 1, CUT] = r2
  return MDP.create(P, r, gamma, dtype=dtype)


# -----------------------------------------------------------------------------
# Finite-horizon versions
# -----------------------------------------------------------------------------


def finite_horizon(name_or_mdp: str | MDP, horizon: int, **kwargs: Any) -> FiniteHorizonMDP:
  """The H-stage, undiscounted version of a registered env or of a given MDP.

  ``finite_horizon("chain", 20, num_states=5)`` builds ``make("chain",
  num_states=5)`` and repeats its (dense) kernel and reward over H stages;
  the discount is dropped. A sparse kernel is densified (within the default
  memory budget).
  """
  if isinstance(name_or_mdp, str):
    from . import make  # the registry imports this module; import it at call time
    mdp = make(name_or_mdp, **kwargs)
  else:
    mdp = name_or_mdp
    if kwargs:
      raise ParameterError(
          f"keyword arguments {sorted(kwargs)} only apply when building an env by name; "
          f"pass finite_horizon(name, horizon, **kwargs) or an already built MDP without them")
  if isinstance(mdp, FiniteHorizonMDP):
    raise ParameterError("the problem is already finite-horizon; pass a discounted MDP or its name")
  if not isinstance(mdp, MDP):
    raise ParameterError(f"finite_horizon needs an MDP or a registered env name, got {type(mdp).__name__}")
  return FiniteHorizonMDP.from_mdp(mdp, horizon)


def chain_fh(num_states: int = 10, slip: float = 0.1, horizon: int = 20,
             dtype: Any = None) -> FiniteHorizonMDP:
  """:func:`chain` over ``horizon`` stages (stationary dynamics, no discount)."""
  return finite_horizon(chain(num_states=num_states, slip=slip, dtype=dtype), horizon)


def river_swim_fh(num_states: int = 6, horizon: int = 20, dtype: Any = None) -> FiniteHorizonMDP:
  """:func:`river_swim` over ``horizon`` stages (stationary dynamics, no discount)."""
  return finite_horizon(river_swim(num_states=num_states, dtype=dtype), horizon)
