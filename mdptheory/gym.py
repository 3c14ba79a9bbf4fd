"""Gymnasium interop, both ways: toy-text tables to exact arrays, and any MDP as a ``gymnasium.Env``.

* :func:`from_toy_text` reads a toy-text environment's table
  ``env.P[s][a] = [(prob, next_state, reward, terminated), ...]`` (FrozenLake,
  CliffWalking, Taxi, or any env with that table) into ``P [S, A, S]``,
  ``r [S, A]`` and ``mu0 [S]``. :meth:`mdptheory.types.MDP.from_gymnasium`
  calls it.
* :class:`MDPEnv` (and :func:`to_gymnasium`) simulates any :class:`MDP` or
  :class:`FiniteHorizonMDP` behind the gymnasium API, for code that only
  speaks gymnasium.

Terminal transitions. In a toy-text env a transition with ``terminated=True``
ends the episode: no reward follows it. As an MDP, the episode's end is an
absorbing state with reward 0 for every action, so the discounted value of a
start state equals the expected discounted episodic return. The conversion
classifies each state t by how it can be entered (only entries with
probability > 0 count; a state with initial probability > 0 counts as entered
without termination):

* entered only by terminating transitions (FrozenLake's holes and goal,
  CliffWalking's goal): t itself becomes absorbing with reward 0; its own
  table entries, which the env never uses, are dropped. S is unchanged.
* entered both by terminating and by non-terminating transitions (Taxi: the
  state after a successful dropoff, passenger at its destination, is also the
  target of moves from the other passenger-at-destination states): t keeps its
  dynamics, and one extra absorbing state with index S (reward 0) is added;
  every terminating transition into such a t is redirected to it. S grows by 1
  and ``mu0`` is 0 there.
* never entered by a terminating transition: unchanged.

``terminal_states(env)`` lists the absorbing terminal states of the
conversion.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple

import gymnasium
import numpy as np
from gymnasium import spaces

from mdptheory import validate as V
from mdptheory.errors import InvalidMDPError, NonFiniteError, ParameterError, ShapeError
from mdptheory.types import MDP, FiniteHorizonMDP, SparseKernel

# A (s, a) list must sum to 1 within this tolerance (gymnasium writes 1/3 + 1/3 + 1/3
# and 0.8 + 0.1 + 0.1, which are 1 up to rounding).
_PROB_SUM_ATOL = 1e-8


class ToyTextTables(NamedTuple):
  """The arrays of a converted toy-text env."""
  P: np.ndarray         # [S, A, S] float64 transition probabilities
  r: np.ndarray         # [S, A]    float64 expected reward
  mu0: np.ndarray       # [S]       float64 initial distribution
  terminal: np.ndarray  # [T]       int, the absorbing terminal states


def _num_states_actions(env: Any) -> tuple[int, int]:
  """S and A from the Discrete spaces, else from ``nS``/``nA``, else from the table."""
  obs = getattr(env, "observation_space", None)
  act = getattr(env, "action_space", None)
  S = getattr(obs, "n", None) if isinstance(obs, spaces.Discrete) else getattr(env, "nS", None)
  A = getattr(act, "n", None) if isinstance(act, spaces.Discrete) else getattr(env, "nA", None)
  table = env.P
  if S is None:
    S = len(table)
  if A is None:
    A = max(len(table[s]) for s in (table.keys() if isinstance(table, dict) else range(len(table))))
  return int(S), int(A)


def _initial_distribution(env: Any, S: int) -> np.ndarray:
  """``env.initial_state_distrib`` (all three toy-text envs have it), else the start state(s), else uniform."""
  if getattr(env, "initial_state_distrib", None) is not None:
    return V.check_distribution("env.initial_state_distrib", env.initial_state_distrib, S)
  if getattr(env, "start_state_index", None) is not None:
    return np.eye(S)[int(env.start_state_index)]
  desc = getattr(env, "desc", None)
  if desc is not None:
    starts = (np.asarray(desc) == b"S").ravel().astype(np.float64)
    if starts.shape == (S,) and starts.sum() > 0:
      return starts / starts.sum()
  return np.full(S, 1.0 / S)


def _entries(table: Any, s: int, a: int) -> Any:
  """``table[s][a]`` with errors that name the missing state or action."""
  try:
    row = table[s]
  except (KeyError, IndexError):
    raise InvalidMDPError(
        f"env.P has no entry for state s={s}; every state 0..S-1 needs env.P[s][a] for every action")
  try:
    return row[a]
  except (KeyError, IndexError):
    raise InvalidMDPError(
        f"env.P[{s}] has no entry for action a={a}; every action must be defined in every state "
        f"(add env.P[{s}][{a}] = [(1.0, {s}, 0.0, False)] for a no-op)")


def toy_text_tables(env: Any) -> ToyTextTables:
  """Converts ``env.P[s][a] = [(prob, next, reward, terminated), ...]`` to arrays (see the module docstring).

  Duplicate entries (FrozenLake's slippery moves into an edge) add up; the
  reward becomes the expectation ``r[s, a] = sum prob * reward``; terminating
  transitions lead to absorbing zero-reward states.

  Raises:
    InvalidMDPError: a missing state or action, a negative probability, or the
      probabilities of (s, a) not summing to 1.
    ShapeError: a malformed entry or a next state outside [0, S).
    NonFiniteError: a non-finite probability or reward.
    ParameterError: an env whose dynamics are not in its table (Taxi's fickle passenger).
  """
  env = getattr(env, "unwrapped", env)
  if not hasattr(env, "P"):
    raise ParameterError(
        f"{type(env).__name__} has no transition table env.P; only toy-text style envs "
        f"(FrozenLake, CliffWalking, Taxi) can be converted exactly")
  if getattr(env, "fickle_passenger", False):
    raise ParameterError(
        "Taxi with fickle_passenger=True changes the destination inside step(), outside env.P; "
        "build it with fickle_passenger=False")
  table = env.P
  S, A = _num_states_actions(env)
  mu0 = _initial_distribution(env, S)

  src, act, dst, prob, rew, done = [], [], [], [], [], []
  for s in range(S):
    for a in range(A):
      entries = _entries(table, s, a)
      total = 0.0
      for entry in entries:
        try:
          p, t, reward, terminated = entry
        except (TypeError, ValueError):
          raise ShapeError(
              f"env.P[{s}][{a}] has the entry {entry!r}; each entry must be "
              f"(prob, next_state, reward, terminated)") from None
        if isinstance(t, (bool, np.bool_)) or not isinstance(t, (numbers.Integral, np.integer)):
          raise ShapeError(f"env.P[{s}][{a}] has next_state {t!r}, which is not an int state index")
        if not 0 <= int(t) < S:
          raise ShapeError(
              f"env.P[{s}][{a}] has next_state {int(t)}, outside the state range [0, {S}) "
              f"(s={s}, a={a})")
        p, reward = float(p), float(reward)
        if not math.isfinite(p):
          raise NonFiniteError(f"env.P[{s}][{a}] has probability {p} (s={s}, a={a}); it must be finite")
        if not math.isfinite(reward):
          raise NonFiniteError(f"env.P[{s}][{a}] has reward {reward} (s={s}, a={a}); rewards must be finite")
        if p < 0:
          raise InvalidMDPError(f"env.P[{s}][{a}] has the negative probability {p} (s={s}, a={a})")
        total += p
        src.append(s), act.append(a), dst.append(int(t)), prob.append(p)
        rew.append(reward), done.append(bool(terminated))
      if abs(total - 1.0) > _PROB_SUM_ATOL:
        raise InvalidMDPError(
            f"the probabilities of env.P[{s}][{a}] (s={s}, a={a}) sum to {total:.10g}, not 1; "
            f"fix the env's table so that every (s, a) list sums to 1")
  src, act, dst = np.array(src), np.array(act), np.array(dst)
  prob, rew, done = np.array(prob), np.array(rew), np.array(done, bool)

  # Classify the states by how they are entered (module docstring).
  live = prob > 0
  entered_done = np.zeros(S, bool)
  entered_done[dst[live & done]] = True
  entered_cont = mu0 > 0
  entered_cont[dst[live & ~done]] = True
  in_place = entered_done & ~entered_cont
  mixed = entered_done & entered_cont
  extra = bool(mixed.any())
  S_out = S + 1 if extra else S
  if extra:
    dst = np.where(done & mixed[dst], S, dst)
    mu0 = np.append(mu0, 0.0)
  terminal = np.flatnonzero(np.append(in_place, True) if extra else in_place)

  keep = ~in_place[src]  # a state that is absorbing in place loses its own entries
  P = np.zeros((S_out, A, S_out))
  r = np.zeros((S_out, A))
  np.add.at(P, (src[keep], act[keep], dst[keep]), prob[keep])
  np.add.at(r, (src[keep], act[keep]), (prob * rew)[keep])
  P[terminal, :, terminal] = 1.0
  r[terminal] = 0.0
  return ToyTextTables(P, r, mu0, terminal)


def from_toy_text(env: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """``(P [S, A, S], r [S, A], mu0 [S])`` in float64 from a toy-text env's ``env.P`` table.

  See :func:`toy_text_tables` for the checks and the module docstring for how
  terminal transitions become absorbing states. Feed the result to
  ``MDP.create(P, r, gamma, mu0)``, or call ``MDP.from_gymnasium(env, gamma)``.
  """
  P, r, mu0, _ = toy_text_tables(env)
  return P, r, mu0


def terminal_states(env: Any) -> np.ndarray:
  """The absorbing terminal states (indices into the converted MDP) of a toy-text env."""
  return toy_text_tables(env).terminal


class MDPEnv(gymnasium.Env):
  """Simulates an :class:`MDP` or :class:`FiniteHorizonMDP` behind the gymnasium API.

  Observations and actions are ``Discrete(S)`` and ``Discrete(A)`` ints.
  ``reset`` draws ``s_0 ~ mu0`` with ``self.np_random`` (``reset(options={"state": s})``
  starts in s instead); ``step(a)`` draws ``s' ~ P[s, a]`` and returns the
  expected reward ``r[s, a]`` (the MDP stores no reward noise).

  * Discounted MDP: an episode never terminates; it is truncated after
    ``max_episode_steps`` steps (None: never). ``self.gamma`` holds the discount
    for the caller.
  * Finite-horizon MDP: step h uses ``P[h]`` and ``r[h]`` and the episode
    terminates after H steps; ``max_episode_steps`` is ignored.

  ``info`` holds ``{"t": steps taken}``.
  """

  metadata = {"render_modes": ["ansi"], "render_fps": 4}

  def __init__(self, mdp: MDP | FiniteHorizonMDP, *, max_episode_steps: int | None = 1000,
               render_mode: str | None = None):
    if isinstance(mdp, FiniteHorizonMDP):
      if np.ndim(mdp.r) != 3:
        raise ShapeError(f"r must be [H, S, A] for one finite-horizon MDP, got shape {np.shape(mdp.r)}; "
                         f"wrap the MDPs of a batch one at a time")
      self.horizon: int | None = int(mdp.r.shape[0])
      self.gamma: float | None = None
      P, r = mdp.P, mdp.r
    elif isinstance(mdp, MDP):
      if np.ndim(mdp.r) != 2:
        raise ShapeError(f"r must be [S, A] for one MDP, got shape {np.shape(mdp.r)}; "
                         f"wrap the MDPs of a batch one at a time")
      self.horizon, self.gamma = None, float(mdp.gamma)
      P, r = mdp.P, mdp.r
    else:
      raise ParameterError(f"MDPEnv wraps an MDP or a FiniteHorizonMDP, got {type(mdp).__name__}")
    if max_episode_steps is not None:
      max_episode_steps = V.check_int("max_episode_steps", max_episode_steps, minimum=1)
    if render_mode is not None and render_mode not in self.metadata["render_modes"]:
      raise ParameterError(f"render_mode={render_mode!r} is not supported; use None or 'ansi'")
    self.max_episode_steps = max_episode_steps
    self.render_mode = render_mode
    self._r = np.asarray(r, np.float64)
    if isinstance(P, SparseKernel):
      self._next = np.asarray(P.next_states)                            # [..., S, A, B]
      self._cdf = np.cumsum(np.asarray(P.probs, np.float64), axis=-1)   # [..., S, A, B]
    else:
      self._next = None
      self._cdf = np.cumsum(np.asarray(P, np.float64), axis=-1)         # [..., S, A, S]
    self._mu0_cdf = np.cumsum(np.asarray(mdp.mu0, np.float64))
    S, A = self._r.shape[-2:]
    self.observation_space = spaces.Discrete(S)
    self.action_space = spaces.Discrete(A)
    self._s: int | None = None
    self._t = 0

  def _draw(self, cdf: np.ndarray) -> int:
    # Inverse CDF on u * total < total: lands on an entry of positive probability.
    return int(np.searchsorted(cdf, self.np_random.random() * cdf[-1], side="right"))

  def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
    super().reset(seed=seed)
    if options and "state" in options:
      s = options["state"]
      if not self.observation_space.contains(s):
        raise ParameterError(f"options['state']={s!r} is not a state in [0, {self.observation_space.n})")
      self._s = int(s)
    else:
      self._s = self._draw(self._mu0_cdf)
    self._t = 0
    return self._s, {"t": 0}

  def step(self, action: Any):
    if self._s is None:
      raise ParameterError("step() was called before reset(); call env.reset(seed=...) first")
    if not self.action_space.contains(action):
      raise ParameterError(f"action={action!r} is not an action in [0, {self.action_space.n})")
    if self.horizon is not None and self._t >= self.horizon:
      raise ParameterError(f"the episode ended at stage H={self.horizon}; call reset() to start another")
    s, a = self._s, int(action)
    stage = (self._t,) if self.horizon is not None else ()
    reward = float(self._r[(*stage, s, a)])
    b = self._draw(self._cdf[(*stage, s, a)])
    self._s = b if self._next is None else int(self._next[(*stage, s, a, b)])
    self._t += 1
    terminated = self.horizon is not None and self._t >= self.horizon
    truncated = (self.horizon is None and self.max_episode_steps is not None
                 and self._t >= self.max_episode_steps)
    return self._s, reward, terminated, truncated, {"t": self._t}

  def render(self) -> str | None:
    if self.render_mode == "ansi":
      return f"state {self._s}, step {self._t}\n"
    return None


def to_gymnasium(mdp: MDP | FiniteHorizonMDP, **kwargs: Any) -> MDPEnv:
  """``MDPEnv(mdp, **kwargs)``: the MDP as a ``gymnasium.Env`` (see :class:`MDPEnv`)."""
  return MDPEnv(mdp, **kwargs)
