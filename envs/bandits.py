"""Bandit instances for the alignment closed forms (THEORY.md §7).

Every factory is a pure function returning a validated
:class:`~mdptheory.types.Bandit` (``pi_ref [M]``, ``reward [M]``, optional
``gold``/``proxy [M]`` and ``features [M, D]``). Random factories take ``key``
(an int seed or a JAX PRNG key); the same key gives the same arrays. They draw
with a numpy Generator seeded by the key's bits (:func:`rng_from_key`): the
draws are small and numpy's samplers need no compilation.
``dtype=None`` gives JAX's default float (float64 when x64 is on).

* :func:`uniform_bandit`: uniform π_ref on M distinct rewards (THEORY.md §7.2, CF-2);
* :func:`tied_bandit`: tie patterns (distinct, pairs, equal levels, a tied top block) under a random π_ref (CF-3);
* :func:`random_bandit`: Dirichlet π_ref with continuous or integer-level rewards (CF-1, CF-5);
* :func:`token_bandit` and :func:`sequence_bandit`: a memoryless token law with integer token rewards,
  and its enumeration over V^n sequences with the summed reward (THEORY.md §7.3, CF-6);
* :func:`overoptimization_bandit`: Gaussian response features with a gold reward that punishes
  extremes of a feature a linear proxy rewards (THEORY.md §7.4, CF-7).
"""

from __future__ import annotations

import itertools
from typing import Any

import jax
import numpy as np

from mdptheory import validate as V
from mdptheory.errors import ParameterError
from mdptheory.types import Bandit

from .tabular import as_key

TIE_PATTERNS = ("distinct", "pairs", "levels", "top_tie")

#: A 3-token law ("3-token vocab", THEORY.md §7.3/§10); it reproduces the note's per-token BoN rewards
#: 0.825 … 0.951 against the tilt's 0.953 at Delta = 0.05.
TOKEN_PROBS = (0.5, 0.3, 0.2)
TOKEN_LEVELS = (0, 1, 2)


Array = jax.Array


def _f64(x: Array) -> np.ndarray:
  return np.asarray(x, np.float64)


def rng_from_key(key: Any) -> np.random.Generator:
  """A numpy Generator seeded by the bits of a JAX PRNG key (or of ``jax.random.key(seed)`` for an int)."""
  return np.random.default_rng(np.asarray(jax.random.key_data(as_key(key)), np.uint64).ravel())


def uniform_bandit(num_responses: int = 10, *, dtype: Any = None) -> Bandit:
  """Uniform π_ref on M responses with distinct rewards r(y) = y / (M − 1) (r = 0 for M = 1).

  THEORY.md §7.2, CF-2: the BoN KL is strictly below log N − (N−1)/N and the gap
  closes as M → ∞.
  """
  M = V.check_int("num_responses", num_responses, minimum=1)
  return Bandit.create(np.full(M, 1.0 / M), np.arange(M) / max(M - 1, 1), dtype=dtype)


def tie_rewards(num_responses: int, pattern: str, num_levels: int = 4) -> np.ndarray:
  """Rewards [M] with a tie pattern.

  * ``distinct``: r = y (no ties);
  * ``pairs``: r = ⌊y/2⌋ (groups of two);
  * ``levels``: r = ⌊y L / M⌋ (L groups of about M/L);
  * ``top_tie``: r = y below the top quarter, the top ⌈M/4⌉ responses tied at the maximum.
  """
  M = V.check_int("num_responses", num_responses, minimum=1)
  y = np.arange(M)
  if pattern == "distinct":
    return y.astype(np.float64)
  if pattern == "pairs":
    return (y // 2).astype(np.float64)
  if pattern == "levels":
    L = V.check_int("num_levels", num_levels, minimum=1)
    return np.floor(y * L / M)
  if pattern == "top_tie":
    top = -(-M // 4)
    return np.minimum(y, M - top).astype(np.float64)
  raise ParameterError(f"pattern={pattern!r} is not a tie pattern; choose from {TIE_PATTERNS}")


def tied_bandit(key: Any = 0, num_responses: int = 12, pattern: str = "levels", num_levels: int = 4, *,
                concentration: float = 1.0, dtype: Any = None) -> Bandit:
  """π_ref ~ Dirichlet(concentration · 1) from ``key``, rewards with a tie pattern (:func:`tie_rewards`).

  THEORY.md §7.2, CF-3: the exact law with ties against Monte-Carlo best-of-N.
  """
  conc = V.check_positive("concentration", concentration)
  r = tie_rewards(num_responses, pattern, num_levels)
  p = rng_from_key(key).dirichlet(np.full(r.shape[0], conc))
  return Bandit.create(p / p.sum(), r, dtype=dtype)


def random_bandit(key: Any = 0, num_responses: int = 10, num_levels: int = 0, *, concentration: float = 1.0,
                  dtype: Any = None) -> Bandit:
  """π_ref ~ Dirichlet(concentration · 1); r ~ U(0, 1), or U{0, .., L−1}/(L−1) with ties when ``num_levels`` = L >= 2.

  THEORY.md §7.1/§7.2 (CF-1, CF-5).
  """
  M = V.check_int("num_responses", num_responses, minimum=1)
  L = V.check_int("num_levels", num_levels, minimum=0)
  if L == 1:
    raise ParameterError("num_levels=1 makes every reward equal; pass 0 (continuous rewards) or L >= 2")
  conc = V.check_positive("concentration", concentration)
  rng = rng_from_key(key)
  p = rng.dirichlet(np.full(M, conc))
  r = rng.random(M) if L == 0 else rng.integers(0, L, M) / (L - 1)
  return Bandit.create(p / p.sum(), r, dtype=dtype)


def token_bandit(token_probs: Any = TOKEN_PROBS, token_levels: Any = TOKEN_LEVELS, *, dtype: Any = None) -> Bandit:
  """One token of a memoryless reference: π_ref = the token law, reward = the integer token level.

  THEORY.md §7.3 (CF-6): the defaults are the note's 3-token law, p = (0.5, 0.3, 0.2), levels (0, 1, 2).
  """
  levels = np.asarray(token_levels)
  if levels.dtype.kind not in "iu":
    raise ParameterError(f"token_levels must be integers (a lattice reward), got {token_levels!r}")
  return Bandit.create(token_probs, levels.astype(np.float64), dtype=dtype)


def sequence_bandit(length: int = 4, token_probs: Any = TOKEN_PROBS, token_levels: Any = TOKEN_LEVELS, *,
                    dtype: Any = None) -> Bandit:
  """All V^n sequences of n i.i.d. tokens: π_ref(y) = Π_t p(y_t), reward = Σ_t ℓ(y_t).

  The enumerated reference for the convolution of THEORY.md §7.3; responses are
  in lexicographic order (``itertools.product``). Refused above 10^6 sequences.
  """
  n = V.check_int("length", length, minimum=1)
  token = token_bandit(token_probs, token_levels, dtype=np.float64 if V.x64_enabled() else np.float32)
  p, levels = _f64(token.pi_ref), _f64(token.reward)
  if len(p) ** n > 10**6:
    raise ParameterError(f"{len(p)}^{n} = {len(p) ** n} sequences is over the enumeration limit of 10^6; "
                         f"use mdptheory.alignment.token_sum_log_pmf for long sequences")
  seqs = np.array(list(itertools.product(range(len(p)), repeat=n)))
  return Bandit.create(np.prod(p[seqs], axis=1), levels[seqs].sum(axis=1), dtype=dtype)


def overoptimization_bandit(key: Any = 0, num_responses: int = 2048, num_features: int = 6, *,
                            lure: float = 1.0, goodhart: float = 1.0, dtype: Any = None) -> Bandit:
  """Reward over-optimization in miniature (THEORY.md §7.4, CF-7; Gao, Schulman & Hilton 2022).

  Responses have features x(y) ~ N(0, I_D), D >= 2, drawn once from ``key``;
  π_ref is uniform. The gold reward is r*(y) = x_1 + c·x_2 − g·x_2² (c =
  ``lure``, g = ``goodhart``): x_1 is good throughout, x_2 only in moderation,
  x_3..x_D are irrelevant. The best linear fit of c x_2 − g x_2² is c x_2, so a
  linear proxy w·x fitted to gold preferences rewards x_2 without limit, and
  optimizing it far enough lowers the gold reward. In the Gaussian continuum,
  the tilt e^{λ u·x} along the unit direction u ∝ (1, c) of the population
  proxy gives N(λu, I) at KL = λ²/2, hence the gold gain λ(u_1 + c u_2) − g λ² u_2²
  with λ = √2 d: a concave curve of d = sqrt(KL) with an interior peak. ``reward`` and ``gold`` are both r*; ``proxy`` is left to the
  caller (:func:`mdptheory.alignment.bradley_terry_mle`).
  """
  M = V.check_int("num_responses", num_responses, minimum=2)
  D = V.check_int("num_features", num_features, minimum=2)
  g = V.check_positive("goodhart", goodhart, allow_zero=True)
  lure = V.check_real_scalar("lure", lure)
  x = rng_from_key(key).standard_normal((M, D))
  gold = x[:, 0] + lure * x[:, 1] - g * x[:, 1] ** 2
  return Bandit.create(np.full(M, 1.0 / M), gold, gold=gold, features=x, dtype=dtype)
