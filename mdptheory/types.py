"""Problem data as NamedTuple pytrees: finite discounted and finite-horizon MDPs.

Shapes: S states, A actions, B stored successors per (s, a) in a sparse
kernel, H stages. Build problems with the validated constructors
(:meth:`MDP.create`, :meth:`MDP.from_sparse`, :meth:`MDP.from_ass`,
:meth:`MDP.from_gymnasium`, :meth:`FiniteHorizonMDP.create`); the bare
NamedTuple constructor does no checking and is meant for code that transforms
already-valid problems (``mdp._replace(gamma=g)`` inside ``jax.vmap``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mdptheory import validate as V
from mdptheory.errors import InvalidGameError, InvalidMDPError, ShapeError, SupportMismatchError

Array = jax.Array


class SparseKernel(NamedTuple):
  """A transition kernel stored as B successors per (s, a).

  ``P(s' | s, a) = sum_b probs[s, a, b] * [next_states[s, a, b] == s']``;
  duplicated successors add up. Memory is O(S A B) instead of O(S^2 A).
  """
  next_states: Array  # [S, A, B] int32, successor indices in [0, S)
  probs: Array        # [S, A, B] float, non-negative, sums to 1 over b

  @property
  def shape(self) -> tuple[int, int, int]:
    S, A, _ = self.next_states.shape
    return (S, A, S)

  def to_dense(self, *, memory_budget: int | None = None) -> Array:
    """The dense kernel [S, A, S]; refused before allocation above the memory budget."""
    S, A, _ = self.next_states.shape
    V.check_dense_budget("transition kernel P", (S, A, S), self.probs.dtype, memory_budget)
    dense = jnp.zeros((S, A, S), self.probs.dtype)
    s_idx = jnp.arange(S)[:, None, None]
    a_idx = jnp.arange(A)[None, :, None]
    return dense.at[s_idx, a_idx, self.next_states].add(self.probs)


class MDP(NamedTuple):
  """A finite discounted MDP.

  ``P`` is either a dense array or a :class:`SparseKernel`; every operator in
  :mod:`mdptheory.operators` accepts both.
  """
  P: Array | SparseKernel  # [S, A, S]  P[s, a, s'] = Pr(s' | s, a)
  r: Array                 # [S, A]     expected reward
  gamma: Array             # []         discount in [0, 1)
  mu0: Array               # [S]        initial-state distribution

  @property
  def num_states(self) -> int:
    return self.r.shape[-2]

  @property
  def num_actions(self) -> int:
    return self.r.shape[-1]

  @property
  def is_sparse(self) -> bool:
    return isinstance(self.P, SparseKernel)

  @property
  def dtype(self):
    return self.r.dtype

  def dense(self, *, memory_budget: int | None = None) -> "MDP":
    """The same MDP with a dense kernel."""
    if not self.is_sparse:
      return self
    return self._replace(P=self.P.to_dense(memory_budget=memory_budget))

  # -- validated constructors -------------------------------------------------

  @classmethod
  def create(cls, P: Any, r: Any, gamma: Any, mu0: Any = None, *, dtype: Any = None,
             memory_budget: int | None = None) -> "MDP":
    """Validates and builds an MDP from ``P[s, a, s']``, ``r[s, a]``, ``gamma`` and ``mu0[s]``.

    Args:
      P: [S, A, S] transition probabilities; every row ``P[s, a, :]`` must be
        non-negative and sum to 1 (rows off by rounding are renormalized).
        For pymdptoolbox's (A, S, S) layout use :meth:`from_ass`; for a
        successor list use :meth:`from_sparse`.
      r: [S, A] expected rewards.
      gamma: discount in [0, 1).
      mu0: [S] initial distribution; uniform when omitted.
      dtype: float32 or float64; JAX's default float when omitted.
      memory_budget: refuse a dense kernel above this many bytes.
    """
    dt = V.resolve_dtype(dtype)
    gamma = V.check_gamma(gamma)
    P = V.as_real_array("P", P, keep_float32=True)
    r = V.as_real_array("r", r)
    _check_layout(P, r)
    S, A, _ = P.shape
    V.check_dense_budget("transition kernel P", P.shape, dt, memory_budget)
    V.check_finite("r", r)
    V.check_in_range("r", r, dt)
    V.check_gamma_in_dtype(gamma, dt)
    P = V.check_stochastic("P", P, what="row P[s, a, :]", index_names=("s", "a"), dtype=dt)
    mu0 = np.full(S, 1.0 / S) if mu0 is None else V.check_distribution("mu0", mu0, S)
    return cls(P=V.adopt(P), r=jnp.asarray(r, dt), gamma=jnp.asarray(gamma, dt),
               mu0=jnp.asarray(mu0, dt))

  @classmethod
  def from_sparse(cls, next_states: Any, probs: Any, r: Any, gamma: Any, mu0: Any = None, *,
                  dtype: Any = None) -> "MDP":
    """Builds an MDP with a sparse kernel: successors ``next_states[s, a, b]`` with ``probs[s, a, b]``."""
    dt = V.resolve_dtype(dtype)
    gamma = V.check_gamma(gamma)
    r = V.as_real_array("r", r, ndim=2)
    ns = np.asarray(next_states)
    if ns.dtype.kind not in "iu":
      raise ShapeError(f"next_states must be an integer array, got dtype {ns.dtype}; pass integer state "
                       f"indices, e.g. next_states.astype(np.int32)")
    probs = V.as_real_array("probs", probs, keep_float32=True)
    S, A = r.shape
    if ns.ndim != 3 or ns.shape[:2] != (S, A) or probs.shape != ns.shape:
      raise ShapeError(
          f"next_states and probs must both have shape (S, A, B) with (S, A) = {(S, A)} from r; "
          f"got {ns.shape} and {probs.shape}")
    if ns.size and (ns.min() < 0 or ns.max() >= S):
      bad = (ns < 0) | (ns >= S)
      idx = tuple(int(i) for i in np.argwhere(bad)[0])
      raise ShapeError(f"next_states{list(idx)} = {int(ns[idx])} is not a state index in [0, {S})")
    V.check_finite("r", r)
    V.check_in_range("r", r, dt)
    V.check_gamma_in_dtype(gamma, dt)
    probs = V.check_stochastic("probs", probs, what="successor list probs[s, a, :]",
                               index_names=("s", "a"), dtype=dt)
    mu0 = np.full(S, 1.0 / S) if mu0 is None else V.check_distribution("mu0", mu0, S)
    ns32 = V.aligned_empty(ns.shape, np.int32)
    np.copyto(ns32, ns, casting="unsafe")  # indices are in [0, S) and S < 2**31
    kernel = SparseKernel(V.adopt(ns32), V.adopt(probs))
    return cls(P=kernel, r=jnp.asarray(r, dt), gamma=jnp.asarray(gamma, dt), mu0=jnp.asarray(mu0, dt))

  @classmethod
  def from_ass(cls, P: Any, R: Any, gamma: Any, mu0: Any = None, **kw) -> "MDP":
    """Builds an MDP from pymdptoolbox's layout: ``P[a, s, s']`` (A, S, S) and ``R`` (S, A) or (A, S, S).

    A reward of shape (A, S, S) is a reward per transition; it is reduced to the
    expected reward ``r[s, a] = sum_s' P[a, s, s'] R[a, s, s']``. A reward of shape (S,)
    is a state reward, repeated over actions.
    """
    P = V.as_real_array("P", P)
    R = V.as_real_array("R", R)
    if P.ndim != 3 or P.shape[1] != P.shape[2]:
      raise ShapeError(f"P in (A, S, S) layout must have shape (A, S, S), got {P.shape}")
    A, S, _ = P.shape
    if R.shape == (A, S, S):
      r = np.einsum("ast,ast->sa", P, R)
    elif R.shape == (S, A):
      r = R
    elif R.shape == (S,):
      r = np.repeat(R[:, None], A, axis=1)
    else:
      raise ShapeError(f"R must have shape (S, A) = {(S, A)}, (S,) or (A, S, S); got {R.shape}")
    return cls.create(np.transpose(P, (1, 0, 2)), r, gamma, mu0, **kw)

  @classmethod
  def from_gymnasium(cls, env: Any, gamma: Any, **kw) -> "MDP":
    """Builds an MDP from a gymnasium toy-text environment's ``P[s][a] = [(prob, next, reward, done)]``.

    Duplicate (next, reward) entries are summed, rewards become expectations, and
    terminal transitions lead to absorbing states (see :func:`mdptheory.gym.from_toy_text`).
    """
    from mdptheory.gym import from_toy_text  # gymnasium is imported only when needed
    P, r, mu0 = from_toy_text(env)
    return cls.create(P, r, gamma, mu0, **kw)


class FiniteHorizonMDP(NamedTuple):
  """A finite-horizon (undiscounted) MDP with stage-dependent dynamics."""
  P: Array    # [H, S, A, S]  P[h, s, a, s'] = Pr(s_{h+1} = s' | s_h = s, a_h = a)
  r: Array    # [H, S, A]     expected reward at stage h
  mu0: Array  # [S]           distribution of s_1

  @property
  def horizon(self) -> int:
    return self.r.shape[0]

  @property
  def num_states(self) -> int:
    return self.r.shape[1]

  @property
  def num_actions(self) -> int:
    return self.r.shape[2]

  @classmethod
  def create(cls, P: Any, r: Any, mu0: Any = None, *, horizon: Any = None, dtype: Any = None,
             memory_budget: int | None = None) -> "FiniteHorizonMDP":
    """Validates and builds a finite-horizon MDP.

    ``P`` is [H, S, A, S] (or a stationary [S, A, S] repeated over ``horizon``
    stages) and ``r`` is [H, S, A] (or a stationary [S, A]).
    """
    dt = V.resolve_dtype(dtype)
    P = V.as_real_array("P", P)
    r = V.as_real_array("r", r)
    if horizon is not None:
      horizon = V.check_int("horizon H", horizon, minimum=1)
    if P.ndim == 3:
      if horizon is None:
        raise ShapeError("a stationary P of shape (S, A, S) needs horizon=H to build a finite-horizon MDP")
      P = np.broadcast_to(P, (horizon, *P.shape))
    if r.ndim == 2:
      if horizon is None:
        horizon = P.shape[0]
      r = np.broadcast_to(r, (horizon, *r.shape))
    if P.ndim != 4 or P.shape[1] != P.shape[3]:
      raise ShapeError(f"P must have shape (H, S, A, S), got {P.shape}")
    H, S, A, _ = P.shape
    if H == 0 or S == 0 or A == 0:
      raise ShapeError(f"P has an empty dimension: shape (H, S, A, S) = {P.shape}")
    if horizon is not None and H != horizon:
      raise ShapeError(f"P has {H} stages but horizon={horizon}")
    if r.shape != (H, S, A):
      raise ShapeError(f"r must have shape (H, S, A) = {(H, S, A)}, got {r.shape}")
    V.check_dense_budget("transition kernel P", P.shape, dt, memory_budget)
    V.check_finite("r", r)
    V.check_in_range("r", r, dt)
    P = V.check_stochastic("P", P, what="row P[h, s, a, :]", index_names=("h", "s", "a"))
    mu0 = np.full(S, 1.0 / S) if mu0 is None else V.check_distribution("mu0", mu0, S)
    return cls(P=jnp.asarray(P, dt), r=jnp.asarray(r, dt), mu0=jnp.asarray(mu0, dt))

  @classmethod
  def from_mdp(cls, mdp: MDP, horizon: Any) -> "FiniteHorizonMDP":
    """The H-stage truncation of a (dense) discounted MDP; the discount is dropped."""
    H = V.check_int("horizon H", horizon, minimum=1)
    m = mdp.dense()
    return cls(P=jnp.broadcast_to(m.P, (H, *m.P.shape)), r=jnp.broadcast_to(m.r, (H, *m.r.shape)),
               mu0=m.mu0)


def _check_layout(P: np.ndarray, r: np.ndarray) -> None:
  """Shape checks for P [S, A, S] and r [S, A], with hints for common layout slips."""
  if P.ndim != 3:
    raise ShapeError(
        f"P must have shape (S, A, S) with P[s, a, s'] = Pr(s' | s, a); got shape {P.shape}")
  S, A, S2 = P.shape
  if S == 0 or A == 0 or S2 == 0:
    raise ShapeError(f"P has an empty dimension: shape (S, A, S) = {P.shape}; an MDP needs S >= 1 and A >= 1")
  if S != S2:
    if P.shape[1] == P.shape[2] and r.shape == (P.shape[1], P.shape[0]):
      raise ShapeError(
          f"P has shape {P.shape}, which looks like pymdptoolbox's (A, S, S) layout with A={S}, S={S2}; "
          f"use MDP.from_ass(P, r, gamma) or transpose to (S, A, S) with P.transpose(1, 0, 2)")
    raise ShapeError(f"P must have shape (S, A, S), but its first and last axes differ: {P.shape}")
  if r.shape != (S, A):
    if r.shape == (A, S):
      raise ShapeError(f"r has shape {r.shape} = (A, S); expected (S, A) = {(S, A)}: pass r.T")
    raise ShapeError(f"r must have shape (S, A) = {(S, A)} to match P {P.shape}, got {r.shape}")


class PreferenceGame(NamedTuple):
  """A contextual preference game (THEORY.md §5.1; Tiapkin et al. 2025, arXiv 2505.19731).

  Contexts x ~ rho, responses y in {0..n-1}; ``P[x, i, j]`` = Pr(i beats j | x),
  with ``P[x, i, j] + P[x, j, i] = 1`` (so ``P[x, i, i] = 1/2``). Build games with
  :meth:`create` (validated); the bare constructor does no checking and is
  meant for jitted code (``jax.vmap`` over a stacked batch of games works, the
  leaves then carry a leading batch axis).
  """
  P: Array       # [X, n, n]  P[x, i, j] = Pr(i beats j | x)
  rho: Array     # [X]        context weights, on the simplex
  pi_ref: Array  # [X, n]     reference policy pi_ref(y | x)

  @property
  def num_contexts(self) -> int:
    return self.P.shape[-3]

  @property
  def num_actions(self) -> int:
    return self.P.shape[-1]

  @property
  def dtype(self):
    return self.P.dtype

  @classmethod
  def create(cls, P: Any, rho: Any = None, pi_ref: Any = None, *, dtype: Any = None,
             require_full_support: bool = True) -> "PreferenceGame":
    """Validates and builds a preference game.

    Args:
      P: [n, n] (one context) or [X, n, n] preference probabilities in [0, 1] with
        ``P[x, i, j] + P[x, j, i] = 1`` within 1e-9 (accepted tensors are made exactly
        complementary, ``(P + 1 - P^T) / 2``).
      rho: [X] context weights on the simplex; uniform when omitted.
      pi_ref: [X, n] (or [n], shared by every context) reference policy with rows on
        the simplex; uniform when omitted.
      dtype: float32 or float64; JAX's default float when omitted.
      require_full_support: refuse a ``pi_ref`` with zeros (the regularised
        equilibrium and the KL-based algorithms need ``pi_ref > 0``).

    Raises:
      ShapeError, NonFiniteError, InvalidGameError (an invalid preference tensor, ``rho`` or
      ``pi_ref``; a subclass of InvalidMDPError), SupportMismatchError (zeros in ``pi_ref``), DTypeError.
    """
    dt = V.resolve_dtype(dtype)
    in_dtype = getattr(P, "dtype", np.dtype(np.float64))  # float32 input: complementary to ~1e-7 only
    P = V.as_real_array("P", P)
    given = P.shape
    if P.ndim == 2:
      P = P[None]
    if P.ndim != 3 or P.shape[1] != P.shape[2]:
      raise ShapeError(
          f"P must have shape (n, n) or (X, n, n) with P[x, i, j] = Pr(i beats j | x); got shape {given}")
    X, n, _ = P.shape
    if X == 0 or n == 0:
      raise ShapeError(f"P has an empty dimension: shape (X, n, n) = {P.shape}; a game needs X >= 1 and n >= 1")
    check_preferences(P, in_dtype=in_dtype)
    P = 0.5 * (P + 1.0 - np.transpose(P, (0, 2, 1)))
    rho = np.full(X, 1.0 / X) if rho is None else _game_error(V.check_distribution, "rho", rho, X)
    if pi_ref is None:
      pi_ref = np.full((X, n), 1.0 / n)
    else:
      pi_ref = V.as_real_array("pi_ref", pi_ref)
      if pi_ref.shape == (n,):
        pi_ref = np.broadcast_to(pi_ref, (X, n))
      if pi_ref.shape != (X, n):
        raise ShapeError(
            f"pi_ref must have shape (X, n) = {(X, n)} (or (n,) = ({n},) shared by every context) "
            f"to match P {P.shape}; got {pi_ref.shape}")
      pi_ref = _game_error(V.check_stochastic, "pi_ref", pi_ref, what="row pi_ref[x, :]", index_names=("x",))
      if require_full_support:
        zero = pi_ref <= 0
        if zero.any():
          x, y = (int(v) for v in np.argwhere(zero)[0])
          raise SupportMismatchError(
              f"pi_ref[x, y] at (x, y) = ({x}, {y}) is 0 ({int(zero.sum())} zeros); the regularised game "
              f"needs pi_ref > 0: mix it with the uniform policy, (1 - eps) pi_ref + eps / n, "
              f"or pass require_full_support=False")
    return cls(P=jnp.asarray(P, dt), rho=jnp.asarray(rho, dt), pi_ref=jnp.asarray(pi_ref, dt))


def check_preferences(P: np.ndarray, *, name: str = "P", in_dtype: Any = np.float64) -> None:
  """Checks a preference tensor [X, n, n]: finite, in [0, 1], diagonal 1/2, ``P + P^T = 1``.

  The tolerance is 1e-9, or 16 eps of ``in_dtype`` when that is coarser (float32 input).

  Raises:
    NonFiniteError: a NaN or inf entry.
    InvalidGameError: an entry outside [0, 1], a diagonal entry other than 1/2, or a pair
      ``P[x, i, j] + P[x, j, i]`` other than 1; the message names the first (x, i, j) and the fix.
  """
  V.check_finite(name, P)
  bad = (P < 0) | (P > 1)
  if bad.any():
    idx = tuple(int(i) for i in np.argwhere(bad)[0])
    raise InvalidGameError(
        f"{name}[x, i, j] at (x, i, j) = {idx} is {P[idx]:.10g}, outside [0, 1] ({int(bad.sum())} such entries); "
        f"preferences are probabilities, e.g. clip them or use 1/2 + (U - U^T)/2 with |U| <= 1/2")
  atol = max(1e-9, 16 * float(np.finfo(in_dtype).eps)) if np.issubdtype(in_dtype, np.floating) else 1e-9
  diag = np.diagonal(P, axis1=1, axis2=2)
  off = np.abs(diag - 0.5) > atol
  if off.any():
    x, i = (int(v) for v in np.argwhere(off)[0])
    raise InvalidGameError(
        f"{name}[x, i, i] at (x, i) = ({x}, {i}) is {diag[x, i]:.10g}, not 1/2; a response ties with itself, "
        f"set the diagonal to 1/2")
  sums = P + np.transpose(P, (0, 2, 1))
  off = np.abs(sums - 1.0) > atol
  if off.any():
    x, i, j = (int(v) for v in np.argwhere(off)[0])
    raise InvalidGameError(
        f"{name}[x, i, j] + {name}[x, j, i] at (x, i, j) = ({x}, {i}, {j}) is {sums[x, i, j]:.10g}, not 1 "
        f"({int(off.sum()) // 2} such pairs); preferences must be complementary, e.g. use "
        f"P = (P + 1 - P.transpose(0, 2, 1)) / 2")


def _game_error(check: Any, *args: Any, **kwargs: Any) -> Any:
  """``check(*args, **kwargs)`` with its InvalidMDPError re-raised as an InvalidGameError (same message)."""
  try:
    return check(*args, **kwargs)
  except InvalidGameError:
    raise
  except InvalidMDPError as e:
    raise InvalidGameError(str(e)) from None


class Bandit(NamedTuple):
  """A finite response set with a reference distribution and rewards (THEORY.md §7).

  Responses y in {0..M-1}. ``reward`` is what an aligned policy optimizes; the
  over-optimization setting (§7.4) adds a ``gold`` reward (what is measured),
  a fitted ``proxy`` and the response ``features`` the proxy is fitted on.
  Optional fields are None when absent. Build bandits with :meth:`create`
  (validated); the bare constructor does no checking (``bandit._replace(proxy=r_hat)``).
  """
  pi_ref: Array                   # [M]     reference distribution pi_ref(y), on the simplex (zeros allowed)
  reward: Array                   # [M]     reward r(y)
  gold: Array | None = None       # [M]     gold reward r*(y)
  proxy: Array | None = None      # [M]     proxy reward r_hat(y)
  features: Array | None = None   # [M, D]  response features x(y)

  @property
  def num_responses(self) -> int:
    return self.pi_ref.shape[-1]

  @property
  def dtype(self):
    return self.reward.dtype

  @classmethod
  def create(cls, pi_ref: Any, reward: Any, *, gold: Any = None, proxy: Any = None, features: Any = None,
             dtype: Any = None) -> "Bandit":
    """Validates and builds a bandit.

    Args:
      pi_ref: [M] reference distribution: non-negative, summing to 1 (within
        rounding; accepted vectors are renormalized).
      reward: [M] finite rewards.
      gold, proxy: optional [M] finite rewards.
      features: optional [M, D] finite features.
      dtype: float32 or float64; JAX's default float when omitted.

    Raises:
      ShapeError (not a vector, empty, or lengths that differ), InvalidMDPError
      (pi_ref negative or not summing to 1), NonFiniteError, DTypeError.
    """
    dt = V.resolve_dtype(dtype)
    p = V.as_real_array("pi_ref", pi_ref)
    if p.ndim != 1 or p.size == 0:
      raise ShapeError(f"pi_ref must be a non-empty vector [M] (one probability per response), got shape {p.shape}")
    M = p.shape[0]
    p = V.check_distribution("pi_ref", pi_ref, M)  # the raw input: float32 sums get float32's tolerance

    def vector(name: str, x: Any) -> Any:
      if x is None:
        return None
      arr = V.as_real_array(name, x)
      if arr.shape != (M,):
        raise ShapeError(f"{name} must have shape ({M},), one value per response of pi_ref; got {arr.shape}")
      V.check_finite(name, arr)
      V.check_in_range(name, arr, dt)
      return jnp.asarray(arr, dt)

    if features is not None:
      x = V.as_real_array("features", features)
      if x.ndim == 1:
        x = x[:, None]
      if x.ndim != 2 or x.shape[0] != M:
        raise ShapeError(f"features must have shape (M, D) = ({M}, D), one row per response; got {x.shape}")
      V.check_finite("features", x)
      V.check_in_range("features", x, dt)
      features = jnp.asarray(x, dt)
    return cls(pi_ref=jnp.asarray(p, dt), reward=vector("reward", reward), gold=vector("gold", gold),
               proxy=vector("proxy", proxy), features=features)
