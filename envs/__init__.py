"""Problem factories and their registry.

Every env is a pure factory that returns exact problem data (an ``MDP``, a
``FiniteHorizonMDP``, a ``PreferenceGame`` or a ``Bandit``). The registry below is one explicit dict, read top to
bottom (gymnax ``_builtins``, STYLE.md §5.8); ``make(name, **kwargs)`` builds
an entry and ``registered()`` lists them. ``tests/test_envs.py`` checks every
entry for conformance.

Example::

  from mdptheory import envs
  mdp = envs.make("garnet", key=jax.random.key(0), num_states=30, num_actions=4, branching=4)
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from mdptheory.errors import ParameterError

from . import preference, tabular, toy_text
from .tabular import (
    as_key,
    chain,
    chain_fh,
    finite_horizon,
    forest,
    garnet,
    garnet_arrays,
    garnet_batch,
    garnet_fh,
    garnet_mdp,
    garnet_sparse_arrays,
    gridworld,
    river_swim,
    river_swim_fh,
    sutton_barto_grid,
)
from .toy_text import cliff_walking, frozen_lake, taxi
from .preference import (
    bradley_terry,
    bradley_terry_arrays,
    bt_mixture,
    bt_mixture_arrays,
    cyclic_tournament,
    preference_tensor_np,
    random_intransitive,
    random_intransitive_arrays,
    reference_arrays,
    rock_paper_scissors,
    sample_game,
)
from . import bandits
from .bandits import (
    overoptimization_bandit,
    random_bandit,
    sequence_bandit,
    tied_bandit,
    token_bandit,
    uniform_bandit,
)

_REGISTRY: dict[str, Callable[..., Any]] = {
    # Discounted MDPs
    "garnet": tabular.garnet,                          # (key, num_states, num_actions, branching, gamma, sparse) -> MDP
    "chain": tabular.chain,                            # (num_states, slip, gamma) -> MDP
    "river_swim": tabular.river_swim,                  # (num_states, gamma) -> MDP, Strehl & Littman 2008
    "gridworld": tabular.gridworld,                    # (height, width, gamma, slip, goals, walls) -> MDP
    "sutton_barto_grid": tabular.sutton_barto_grid,    # (gamma) -> MDP, Sutton & Barto Example 3.5
    "forest": tabular.forest,                          # (num_states, r1, r2, p, gamma) -> MDP, pymdptoolbox
    # Gymnasium toy text, converted exactly (gymnasium imported on call)
    "frozen_lake": toy_text.frozen_lake,               # (map_name, is_slippery, gamma) -> MDP
    "cliff_walking": toy_text.cliff_walking,           # (gamma, is_slippery) -> MDP
    "taxi": toy_text.taxi,                             # (gamma, is_rainy) -> MDP
    # Finite horizon
    "garnet_fh": tabular.garnet_fh,                    # (key, num_states, num_actions, branching, horizon) -> FiniteHorizonMDP
    "chain_fh": tabular.chain_fh,                      # (num_states, slip, horizon) -> FiniteHorizonMDP
    "river_swim_fh": tabular.river_swim_fh,            # (num_states, horizon) -> FiniteHorizonMDP
    # Preference games (THEORY.md §5.5)
    "preference_intransitive": preference.random_intransitive,  # (key, n, scale, contexts, ref_sigma) -> PreferenceGame
    "preference_bradley_terry": preference.bradley_terry,       # (key, n, reward_scale, contexts, ref_sigma)
    "preference_bt_mixture": preference.bt_mixture,             # (key, n, components, reward_scale, contexts, ref_sigma)
    "rock_paper_scissors": preference.rock_paper_scissors,      # (win_prob) -> PreferenceGame
    "cyclic_tournament": preference.cyclic_tournament,          # (n, win_prob) -> PreferenceGame
    # Bandits for the alignment closed forms (THEORY.md §7)
    "bandit_uniform": bandits.uniform_bandit,                   # (num_responses) -> Bandit
    "bandit_ties": bandits.tied_bandit,                         # (key, num_responses, pattern, num_levels) -> Bandit
    "bandit_random": bandits.random_bandit,                     # (key, num_responses, num_levels) -> Bandit
    "bandit_tokens": bandits.token_bandit,                      # (token_probs, token_levels) -> Bandit
    "bandit_sequences": bandits.sequence_bandit,                # (length, token_probs, token_levels) -> Bandit
    "bandit_overoptimization": bandits.overoptimization_bandit,  # (key, num_responses, num_features, lure, goodhart)
}


def registered() -> list[str]:
  """The names ``make`` accepts, sorted."""
  return sorted(_REGISTRY)


def make(name: str, **kwargs: Any) -> Any:
  """Returns the problem registered under ``name``, built with ``kwargs``.

  Raises:
    ParameterError (a ValueError): unknown ``name`` (the message lists the
      registered names) or a keyword the factory does not take (the message
      lists the keywords it does take).
  """
  try:
    factory = _REGISTRY[name]
  except (KeyError, TypeError):
    raise ParameterError(f"unknown env {name!r}; registered: {registered()}") from None
  params = inspect.signature(factory).parameters
  if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
    valid = [n for n, p in params.items()
             if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
      raise ParameterError(
          f"env {name!r} does not take the keyword(s) {unknown}; valid keywords: {valid}")
  return factory(**kwargs)


__all__ = [
    "as_key", "chain", "chain_fh", "cliff_walking", "finite_horizon", "forest", "frozen_lake",
    "garnet", "garnet_arrays", "garnet_batch", "garnet_fh", "garnet_mdp", "garnet_sparse_arrays", "gridworld",
    "make", "registered", "river_swim", "river_swim_fh", "sutton_barto_grid", "taxi",
]
__all__ += [
    "bradley_terry", "bradley_terry_arrays", "bt_mixture", "bt_mixture_arrays", "cyclic_tournament",
    "preference_tensor_np", "random_intransitive", "random_intransitive_arrays", "reference_arrays", "rock_paper_scissors", "sample_game",
]
__all__ += [
    "overoptimization_bandit", "random_bandit", "sequence_bandit", "tied_bandit", "token_bandit", "uniform_bandit",
]
