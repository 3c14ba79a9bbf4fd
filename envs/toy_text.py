"""Gymnasium toy-text environments as exact MDPs: FrozenLake, CliffWalking, Taxi.

Each factory builds the environment with ``gymnasium.make(env_id, ...).unwrapped``
and converts its ``env.P[s][a] = [(prob, next, reward, terminated), ...]`` table
with :meth:`MDP.from_gymnasium` (see :func:`mdptheory.gym.from_toy_text` for how
duplicates are summed and how terminal transitions become absorbing states).
gymnasium is imported inside the functions, so importing the registry does not
import it.

Env ids are those of gymnasium 1.x: ``FrozenLake-v1``, ``CliffWalking-v1`` and
``Taxi-v4``.
"""

from __future__ import annotations

from typing import Any

from mdptheory.types import MDP


def _unwrapped(env_id: str, **kwargs: Any) -> Any:
  import gymnasium  # lazy: only the toy-text factories need it
  return gymnasium.make(env_id, **kwargs).unwrapped


def frozen_lake(map_name: str = "4x4", is_slippery: bool = True, gamma: float = 0.99,
                dtype: Any = None) -> MDP:
  """FrozenLake-v1 (S = 16 for "4x4", 64 for "8x8"; actions 0 = left, 1 = down, 2 = right, 3 = up).

  Reaching the goal gives +1 and ends the episode, falling in a hole ends it
  with 0; holes and the goal become absorbing zero-reward states. ``mu0`` is a
  point mass on the start cell (``env.initial_state_distrib``). With
  ``is_slippery`` the agent moves in the intended or one of the two
  perpendicular directions, each w.p. 1/3.
  """
  env = _unwrapped("FrozenLake-v1", map_name=map_name, is_slippery=is_slippery)
  return MDP.from_gymnasium(env, gamma, dtype=dtype)


def cliff_walking(gamma: float = 0.99, is_slippery: bool = False, dtype: Any = None) -> MDP:
  """CliffWalking-v1 (4x12 grid, S = 48; actions 0 = up, 1 = right, 2 = down, 3 = left).

  Every step costs -1; stepping into the cliff costs -100 and sends the agent
  back to the start (3, 0) without ending the episode; reaching the goal (3, 11)
  ends it, so the goal becomes an absorbing zero-reward state. ``mu0`` is a
  point mass on the start.
  """
  env = _unwrapped("CliffWalking-v1", is_slippery=is_slippery)
  return MDP.from_gymnasium(env, gamma, dtype=dtype)


def taxi(gamma: float = 0.99, is_rainy: bool = False, dtype: Any = None) -> MDP:
  """Taxi-v4 (Dietterich 2000): 500 states plus one absorbing terminal state, 6 actions.

  Actions 0 = south, 1 = north, 2 = east, 3 = west, 4 = pickup, 5 = dropoff.
  Each step costs -1, an illegal pickup/dropoff -10, a successful dropoff gives
  +20 and ends the episode. In ``env.P`` the state reached by a successful
  dropoff (passenger at its destination) can also be entered by ordinary moves
  from other such states, so it cannot be made absorbing in place: the
  conversion adds one absorbing terminal state with index 500 (S = 501) and
  sends every terminating transition there. ``mu0`` is
  ``env.initial_state_distrib`` (uniform over the 300 states whose passenger
  waits at a location other than its destination, taxi anywhere), 0 on state 500.
  The fickle-passenger variant is not a fixed ``env.P`` table and is not offered.
  """
  env = _unwrapped("Taxi-v4", is_rainy=is_rainy)
  return MDP.from_gymnasium(env, gamma, dtype=dtype)
