"""Test configuration: JAX on the CPU in float64 (the library never enables x64 on import)."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Single-threaded Eigen in XLA's CPU backend: its multi-threaded pool can wedge on large vmapped programs.
if "xla_cpu_multi_thread_eigen" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mdptheory.types import MDP  # noqa: E402


def random_mdp(seed: int, num_states: int = 6, num_actions: int = 3, gamma: float = 0.9,
               branching: int | None = None) -> MDP:
  """A random dense MDP built with numpy (independent of the env factories)."""
  rng = np.random.default_rng(seed)
  P = rng.random((num_states, num_actions, num_states))
  if branching is not None:
    mask = np.zeros_like(P, dtype=bool)
    for s in range(num_states):
      for a in range(num_actions):
        mask[s, a, rng.choice(num_states, branching, replace=False)] = True
    P = np.where(mask, P, 0.0)
  P /= P.sum(-1, keepdims=True)
  r = rng.uniform(-1.0, 1.0, (num_states, num_actions))
  return MDP.create(P, r, gamma)


@pytest.fixture
def small_mdp() -> MDP:
  return random_mdp(0)
