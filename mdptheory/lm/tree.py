r"""The token MDP as a prefix tree: exact sequence laws, soft values, best-of-N and Nash-MP over V^L.

Setting (LM_BRIDGE.md §0–1; DESIGN.md §5). A vocabulary of V tokens and a
length L. A state is a prefix s = (y_0, …, y_{t−1}) of length t < L, an
action is a token a, the transition appends it (s → s·a), and a reward
r(y) is paid on complete sequences y ∈ V^L. The tree has Σ_{t<L} V^t
decision states; V = 4, L = 5 gives 341 states and 1024 sequences.

**Layout.** Prefixes of length t are numbered lexicographically (y_0 most
significant), so the child of prefix s at level t by token a is s·V + a at
level t + 1, and the last level's children are the sequences. A policy is a
tuple of ``levels``: ``levels[t]`` is [V^t, V], the log-probabilities
log π(·|s) of the V^t prefixes of length t. Reshaping level t's
[V^t, V] array to [V^{t+1}] indexes the children, which is all the tree
algebra needs (no gather).

**Exact objects** (all pure ``jax.numpy``, dtype-parametric: they follow
their inputs' dtype; float64 for checks):

* the sequence law of a policy, π(y) = Π_t π(y_t | y_{<t}), and its inverse
  (the token conditionals of any sequence law, :func:`conditionals`);
* soft values and the KL-regularized optimum by backward induction with a
  per-token discount γ (γ = 1 is the LM objective):

      Q_{L−1}(s, a) = r(s·a),   Q_t(s, a) = γ V_{t+1}(s·a),
      V_t(s) = β log Σ_a π_ref(a|s) e^{Q_t(s, a)/β},   π*(a|s) = π_ref(a|s) e^{(Q_t(s, a) − V_t(s))/β};

  with γ = 1 the product of the token policies is the sequence posterior
  π*(y) = π_ref(y) e^{r(y)/β} / Z and V_0 = β log Z (Korbak, Perez & Buckley
  2022, arXiv 2205.11275; Rafailov et al. 2024, arXiv 2404.12358); β = 0 is the
  hard maximum;
* regularized policy evaluation (KL to π_ref, and the MD-VI backup with a KL
  to the previous policy, THEORY.md §2.1);
* the exact best-of-N law over sequences (Beirami et al. 2024, arXiv
  2401.01879; THEORY.md §7.2), with ties split uniformly;
* the closed-form Nash Mirror-Prox steps over sequences (Tiapkin et al. 2025,
  arXiv 2505.19731 v1; THEORY.md §5.2);
* :func:`to_mdp`: the tree as a tabular :class:`~mdptheory.types.MDP` with an
  absorbing terminal state and a per-token γ, so the tabular solvers and
  bounds apply unchanged.

The sizes (V, L) are static Python ints; everything else may be traced.
Validation (:func:`check_sizes`, :func:`check_sequence_law`) happens in numpy
at the public constructors, never inside jit.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mdptheory import metrics
from mdptheory import validate as Vd
from mdptheory.errors import InvalidMDPError, ParameterError, ShapeError
from mdptheory.types import MDP

Array = jax.Array
Levels = tuple  # tuple of L arrays, levels[t]: [V^t, V] (or [V^t] for per-state quantities)

__all__ = [
    "Levels", "Solution", "TreeValues", "bon_log_probs", "check_sequence_law", "check_sizes", "conditionals",
    "evaluate", "from_table", "level_sizes", "md_backup", "md_greedy_levels", "nash_mp_step", "nash_prox_step",
    "normalize", "num_prefixes", "optimum", "per_state_kl", "posterior_log_probs", "prefix_log_probs",
    "preference_payoff", "prefixes", "sequence_kl", "sequence_log_probs", "sequences", "state_offsets", "sup_norm",
    "to_mdp", "to_table", "trajectory_kl", "uniform_levels",
]

#: Largest V^L the tree tools accept by default (an enumerable tree; DESIGN.md §5).
MAX_SEQUENCES = 1 << 24


# -----------------------------------------------------------------------------
# Sizes and enumeration (numpy, static)
# -----------------------------------------------------------------------------


def check_sizes(vocab_size: Any, length: Any, *, max_sequences: int = MAX_SEQUENCES) -> tuple[int, int]:
  """Validates the tree's vocabulary size V >= 2 and length L >= 1, with V^L <= ``max_sequences``."""
  V = Vd.check_int("vocab_size V", vocab_size, minimum=2)
  L = Vd.check_int("length L", length, minimum=1)
  if V ** L > max_sequences:
    raise ParameterError(
        f"V^L = {V}^{L} = {V ** L} sequences exceeds the enumerable limit {max_sequences}; "
        f"use a smaller vocabulary or length (or raise max_sequences if the machine has the memory)")
  return V, L


def level_sizes(V: int, L: int) -> tuple[int, ...]:
  """(V^0, V^1, …, V^{L−1}): the number of prefixes at each level."""
  return tuple(V ** t for t in range(L))


def num_prefixes(V: int, L: int) -> int:
  """Σ_{t<L} V^t, the number of decision states of the tree."""
  return sum(level_sizes(V, L))


def state_offsets(V: int, L: int) -> np.ndarray:
  """[L + 1] start index of each level in the flat state numbering; the last entry is the terminal state."""
  return np.concatenate([[0], np.cumsum(level_sizes(V, L))]).astype(np.int64)


@functools.lru_cache(maxsize=64)
def _tokens(V: int, n: int) -> np.ndarray:
  idx = np.arange(V ** n, dtype=np.int64)
  digits = [(idx // V ** (n - 1 - i)) % V for i in range(n)]
  out = np.stack(digits, axis=-1) if n else np.zeros((1, 0), np.int64)
  out.setflags(write=False)
  return out.astype(np.int32)


def sequences(V: int, L: int) -> np.ndarray:
  """[V^L, L] int32: every sequence, in lexicographic order (row i is the sequence with index i)."""
  return _tokens(V, L)


def prefixes(V: int, t: int) -> np.ndarray:
  """[V^t, t] int32: every prefix of length t, in lexicographic order."""
  return _tokens(V, t)


# -----------------------------------------------------------------------------
# Sequence laws
# -----------------------------------------------------------------------------


def uniform_levels(V: int, L: int, dtype: Any = None) -> Levels:
  """The uniform policy: every ``levels[t]`` is [V^t, V] of −log V."""
  dt = Vd.resolve_dtype(dtype)
  return tuple(jnp.full((n, V), -np.log(V), dt) for n in level_sizes(V, L))


def normalize(logit_levels: Sequence[Array]) -> Levels:
  """log_softmax of every level's logits: an unnormalized tree of logits -> a policy."""
  return tuple(jax.nn.log_softmax(x, axis=-1) for x in logit_levels)


@jax.jit
def prefix_log_probs(levels: Sequence[Array]) -> Levels:
  """log d_π(s) for every prefix of every level t = 0..L: a tuple of L + 1 arrays [V^t].

  d_π(root) = 1 and d_π(s·a) = d_π(s) π(a|s); the last entry (t = L) is the
  sequence law. Zero-probability tokens (−inf) propagate as −inf.
  """
  out = [jnp.zeros((1,), levels[0].dtype)]
  for lp in levels:
    out.append((out[-1][:, None] + lp).reshape(-1))
  return tuple(out)


@jax.jit
def sequence_log_probs(levels: Sequence[Array]) -> Array:
  """log π(y) = Σ_t log π(y_t | y_{<t}) for every y ∈ V^L.  levels -> [V^L]."""
  return prefix_log_probs(levels)[-1]


@functools.partial(jax.jit, static_argnames=("V", "L"))
def conditionals(log_p: Array, V: int, L: int) -> Levels:
  """The token conditionals of a sequence law: log p(a | s) = log p(s·a) − log p(s).  [V^L] -> levels.

  Prefix masses are marginals, log p(s) = lse over the sequences extending s.
  Where p(s) = 0 the conditional is set to uniform (any value would do: the
  prefix is never reached). ``sequence_log_probs(conditionals(log p))`` is
  log p again (to rounding).
  """
  marg = [log_p]
  for t in range(L, 0, -1):
    marg.append(jax.nn.logsumexp(marg[-1].reshape(V ** (t - 1), V), axis=-1))
  marg = marg[::-1]  # marg[t]: [V^t]
  out = []
  for t in range(L):
    parent = marg[t][:, None]
    child = marg[t + 1].reshape(V ** t, V)
    reached = jnp.isfinite(parent)
    out.append(jnp.where(reached, child - jnp.where(reached, parent, 0.0), -jnp.log(V).astype(child.dtype)))
  return tuple(out)


@jax.jit
def sequence_kl(log_p: Array, log_q: Array) -> Array:
  """KL(p ‖ q) = Σ_y p(y)(log p(y) − log q(y)) from log-probabilities (0 log 0 = 0, +inf off supp q).  -> []."""
  return metrics.kl_log(log_p, log_q)


def per_state_kl(levels_p: Sequence[Array], levels_q: Sequence[Array]) -> Levels:
  """KL(p(·|s) ‖ q(·|s)) at every prefix: a tuple of L arrays [V^t]."""
  return tuple(metrics.kl_log(a, b) for a, b in zip(levels_p, levels_q))


@jax.jit
def trajectory_kl(levels_p: Sequence[Array], levels_q: Sequence[Array]) -> Array:
  """KL_traj(p ‖ q) = Σ_t Σ_s d_p(s) KL(p(·|s) ‖ q(·|s)) (THEORY.md §6.1).  -> [].

  On a tree (deterministic transitions) it equals the sequence KL
  :func:`sequence_kl` of the two laws (the chain rule of KL); the tests check it.
  """
  d = prefix_log_probs(levels_p)
  total = jnp.zeros((), levels_p[0].dtype)
  for t, kl_t in enumerate(per_state_kl(levels_p, levels_q)):
    w = jnp.exp(d[t])
    total = total + jnp.sum(jnp.where(w > 0, w * kl_t, 0.0))
  return total


def sup_norm(levels: Sequence[Array]) -> Array:
  """max over every level and entry of |x|.  -> []."""
  return jnp.max(jnp.stack([jnp.max(jnp.abs(x)) for x in levels]))


@jax.jit
def posterior_log_probs(log_ref: Array, reward: Array, *, beta: Any) -> Array:
  """The whole-sequence posterior log π*(y) = log π_ref(y) + r(y)/β − log Z (THEORY.md §7.1).  [V^L] -> [V^L]."""
  return jax.nn.log_softmax(log_ref + reward / beta)


# -----------------------------------------------------------------------------
# Soft values, the regularized optimum and policy evaluation (backward induction)
# -----------------------------------------------------------------------------


class Solution(NamedTuple):
  """The KL-regularized optimum on the tree (or the hard optimum for β = 0)."""
  log_pi: Levels  # levels[t] [V^t, V]  log π*(·|s)
  q: Levels       # levels[t] [V^t, V]  Q*_t(s, a)
  v: Levels       # levels[t] [V^t]     V*_t(s); v[0][0] = β log Z for γ = 1


class TreeValues(NamedTuple):
  """Exact (regularized) values of a policy on the tree."""
  q: Levels  # levels[t] [V^t, V]
  v: Levels  # levels[t] [V^t]


def _soft_max(log_ref: Array, q: Array, beta: Any) -> tuple[Array, Array]:
  """(V(s), log π*(·|s)) = (β lse(log π_ref + q/β), log_softmax(log π_ref + q/β)); β = 0: hard max on supp π_ref."""
  beta = jnp.asarray(beta, q.dtype)
  soft = beta > 0
  safe = jnp.where(soft, beta, 1.0)
  logits = log_ref + q / safe
  v_soft = safe * jax.nn.logsumexp(logits, axis=-1)
  lp_soft = jax.nn.log_softmax(logits, axis=-1)
  masked = jnp.where(jnp.isfinite(log_ref), q, -jnp.inf)
  v_hard = jnp.max(masked, axis=-1)
  first = jnp.argmax(masked, axis=-1)
  lp_hard = jnp.where(jnp.arange(q.shape[-1]) == first[..., None], 0.0, -jnp.inf).astype(q.dtype)
  return jnp.where(soft, v_soft, v_hard), jnp.where(soft, lp_soft, lp_hard)


@jax.jit
def optimum(reward: Array, log_ref: Sequence[Array], *, beta: Any, gamma: Any = 1.0) -> Solution:
  r"""The maximizer of E_π Σ_t γ^t [r_t − β KL(π(·|s_t) ‖ π_ref(·|s_t))] by backward induction.

      Q_{L−1}(s, a) = r(s·a),  Q_t(s, a) = γ V_{t+1}(s·a),
      V_t(s) = β lse_a(log π_ref(a|s) + Q_t(s, a)/β),  log π*(a|s) = log π_ref(a|s) + (Q_t(s, a) − V_t(s))/β.

  With γ = 1 the product of the token policies is the sequence posterior
  π_ref(y) e^{r(y)/β} / Z (tested to 1e-12 in float64). β = 0 gives the hard
  optimum (first maximizer, V_t = max_a Q_t over supp π_ref).

  Args:
    reward: [V^L] terminal reward r(y).
    log_ref: levels of log π_ref.
    beta: KL weight β >= 0 (may be traced).
    gamma: per-token discount γ in (0, 1] (may be traced).
  """
  L = len(log_ref)
  V = log_ref[0].shape[-1]
  q_next = reward.reshape(-1, V)  # level L−1: Q = r(s·a)
  qs, vs, lps = [None] * L, [None] * L, [None] * L
  for t in range(L - 1, -1, -1):
    q_t = q_next if t == L - 1 else gamma * q_next
    v_t, lp_t = _soft_max(log_ref[t], q_t, beta)
    qs[t], vs[t], lps[t] = q_t, v_t, lp_t
    if t > 0:
      q_next = v_t.reshape(-1, V)
  return Solution(log_pi=tuple(lps), q=tuple(qs), v=tuple(vs))


@jax.jit
def evaluate(log_pi: Sequence[Array], reward: Array, *, log_ref: Sequence[Array] | None = None, beta: Any = 0.0,
             gamma: Any = 1.0) -> TreeValues:
  r"""Regularized policy evaluation on the tree: the fixed point of T^{β}_π (THEORY.md §1.1, §2.1).

      Q_{L−1}(s, a) = r(s·a),  Q_t(s, a) = γ V_{t+1}(s·a),
      V_t(s) = Σ_a π(a|s) Q_t(s, a) − β KL(π(·|s) ‖ π_ref(·|s)).

  ``log_ref=None`` (or β = 0) is the unregularized value. On the tabular MDP
  of :func:`to_mdp` this is q^τ_π of the KL-to-π_ref regularized MDP (the
  terminal state's value is 0).

  Args:
    log_pi: levels of log π.
    reward: [V^L].
    log_ref: levels of log π_ref, or None.
    beta: KL weight β >= 0.
    gamma: per-token discount.
  """
  L = len(log_pi)
  V = log_pi[0].shape[-1]
  q_next = reward.reshape(-1, V)
  qs, vs = [None] * L, [None] * L
  for t in range(L - 1, -1, -1):
    q_t = q_next if t == L - 1 else gamma * q_next
    p = jnp.exp(log_pi[t])
    v_t = jnp.sum(jnp.where(p > 0, p * q_t, 0.0), axis=-1)
    if log_ref is not None:
      v_t = v_t - jnp.where(jnp.asarray(beta) > 0, beta * metrics.kl_log(log_pi[t], log_ref[t]), 0.0)
    qs[t], vs[t] = q_t, v_t
    if t > 0:
      q_next = v_t.reshape(-1, V)
  return TreeValues(q=tuple(qs), v=tuple(vs))


@jax.jit
def md_greedy_levels(log_pi_prev: Sequence[Array], log_ref: Sequence[Array], q: Sequence[Array], *, lam: Any,
                     tau: Any) -> Levels:
  r"""The MD-VI(λ, τ) greedy step with τ a KL weight to π_ref, at every prefix (THEORY.md §2.2):

      log π_{k+1} = log_softmax(β log π_k + (1 − β) log π_ref + q_k/(λ + τ)),   β = λ/(λ + τ).

  (−λ KL(π ‖ π_k) − τ KL(π ‖ π_ref) = −λ KL(π ‖ π_k) + τ H(π) + τ ⟨π, log π_ref⟩: the KL-to-π_ref problem is the
  entropy-regularized one on q + τ log π_ref.) λ + τ > 0.
  """
  temp = lam + tau
  beta = lam / temp
  return tuple(jax.nn.log_softmax(beta * lp + (1.0 - beta) * lr + qt / temp, axis=-1)
               for lp, lr, qt in zip(log_pi_prev, log_ref, q))


@jax.jit
def md_backup(q: Sequence[Array], log_pi_new: Sequence[Array], log_pi_old: Sequence[Array],
              log_ref: Sequence[Array], reward: Array, *, lam: Any, tau: Any, gamma: Any) -> Levels:
  r"""One MD-VI evaluation step T^{λ,τ}_{π_{k+1}|π_k} q on the tree (THEORY.md §2.1, τ a KL weight to π_ref):

      q_{k+1}(s, a) = r(s, a) + γ [⟨π_{k+1}, q_k⟩ − λ KL(π_{k+1} ‖ π_k) − τ KL(π_{k+1} ‖ π_ref)](s·a),

  with r(s, a) = r(s·a) at the last level (0 elsewhere) and the absorbing
  terminal state's value 0 (its q stays 0 from q_0 = 0).
  """
  L = len(q)
  V = q[0].shape[-1]
  out = [None] * L
  for t in range(L):
    if t == L - 1:
      out[t] = reward.reshape(-1, V)
    else:
      p = jnp.exp(log_pi_new[t + 1])
      v = (jnp.sum(jnp.where(p > 0, p * q[t + 1], 0.0), axis=-1)
           - jnp.where(lam > 0, lam * metrics.kl_log(log_pi_new[t + 1], log_pi_old[t + 1]), 0.0)
           - jnp.where(tau > 0, tau * metrics.kl_log(log_pi_new[t + 1], log_ref[t + 1]), 0.0))
      out[t] = gamma * v.reshape(-1, V)
  return tuple(out)


# -----------------------------------------------------------------------------
# Best-of-N over sequences
# -----------------------------------------------------------------------------


@jax.jit
def bon_log_probs(log_ref: Array, reward: Array, *, num_samples: Any) -> Array:
  r"""The exact best-of-N law over sequences, ties split uniformly (THEORY.md §7.2).  [V^L] -> [V^L].

      π_N(y) = (F(r(y))^N − F⁻(r(y))^N) π_ref(y) / p_G,
      F(u) = P_{π_ref}(r ≤ u),  F⁻(u) = P_{π_ref}(r < u),  p_G = F − F⁻.

  Pure JAX (a sort and a cumulative log-sum-exp), in log space:
  log(F^N − F⁻^N) = N log F + log(−expm1(N (log F⁻ − log F))). N may be real
  and traced. Requires π_ref > 0 on every sequence (an LM's law).

  Args:
    log_ref: [Y] log π_ref(y).
    reward: [Y] r(y) (ties are exact equalities).
    num_samples: N >= 1.
  """
  n = jnp.asarray(num_samples, log_ref.dtype)
  order = jnp.argsort(reward)
  r_sorted = reward[order]
  log_cdf = jax.lax.cumlogsumexp(log_ref[order])
  hi = jnp.searchsorted(r_sorted, reward, side="right") - 1   # last index with r <= r(y)
  lo = jnp.searchsorted(r_sorted, reward, side="left") - 1    # last index with r < r(y)
  log_f = jnp.minimum(log_cdf[hi], 0.0)
  log_fm = jnp.where(lo >= 0, log_cdf[jnp.maximum(lo, 0)], -jnp.inf)
  log_ratio = jnp.minimum(log_fm - log_f, 0.0)                # log(F⁻/F) <= 0
  log_pg = log_f + jnp.log(-jnp.expm1(log_ratio))
  log_q = n * log_f + jnp.log(-jnp.expm1(n * log_ratio))
  return log_q + log_ref - log_pg


# -----------------------------------------------------------------------------
# Nash Mirror Prox over sequences
# -----------------------------------------------------------------------------


def preference_payoff(P: Array, log_pi: Array) -> Array:
  """P(y ≻ π) = Σ_{y'} π(y') P(y ≻ y') for every sequence y (THEORY.md §5.1).  ([Y, Y], [Y]) -> [Y]."""
  return P @ jnp.exp(log_pi)


def nash_prox_step(log_pi: Array, log_ref: Array, g: Array, *, beta: Any, eta: Any) -> Array:
  r"""The closed-form proximal step of Nash-MP over sequences (THEORY.md §5.2) [D]:

      log π' = log_softmax((log π_k + η log π_ref + (η/β) g) / (1 + η)),

  the argmin over π of −⟨π, g⟩ + β KL(π ‖ π_ref) + (β/η) KL(π ‖ π_k), with
  g = P(· ≻ π_{k+1/2}) for the update (g = P(· ≻ π_k) for the extrapolation).
  """
  return jax.nn.log_softmax((log_pi + eta * log_ref + (eta / beta) * g) / (1.0 + eta))


@jax.jit
def nash_mp_step(P: Array, log_pi: Array, log_ref: Array, *, beta: Any, eta: Any) -> tuple[Array, Array]:
  """One exact Nash Mirror-Prox iteration over sequences: (log π_{k+1/2}, log π_{k+1}).  [Y] -> ([Y], [Y])."""
  log_half = nash_prox_step(log_pi, log_ref, preference_payoff(P, log_pi), beta=beta, eta=eta)
  log_next = nash_prox_step(log_pi, log_ref, preference_payoff(P, log_half), beta=beta, eta=eta)
  return log_half, log_next


# -----------------------------------------------------------------------------
# The tree as a tabular MDP
# -----------------------------------------------------------------------------


def to_table(levels: Sequence[Array], *, terminal: Any = None) -> Array:
  """Stacks per-level arrays [V^t, ...] into a table [S, ...] with the terminal state as the last row.

  ``terminal`` fills the terminal row (default: uniform log-probabilities −log V
  for [V^t, V] levels, 0 for [V^t] levels).
  """
  body = jnp.concatenate(list(levels), axis=0)
  if terminal is None:
    V = levels[0].shape[-1]
    terminal = -jnp.log(V).astype(body.dtype) if body.ndim == 2 else 0.0
  row = jnp.full((1,) + body.shape[1:], terminal, body.dtype)
  return jnp.concatenate([body, row], axis=0)


def from_table(table: Array, V: int, L: int) -> Levels:
  """The inverse of :func:`to_table`: per-level arrays from a table [S, ...] (the terminal row is dropped)."""
  off = state_offsets(V, L)
  return tuple(table[int(off[t]):int(off[t + 1])] for t in range(L))


def to_mdp(reward: Any, *, vocab_size: int, length: int, gamma: Any, log_ref: Sequence[Array] | None = None,
           tau: Any = 0.0, dtype: Any = None) -> MDP:
  r"""The token MDP as a tabular :class:`MDP`: S = Σ_{t<L} V^t prefixes + 1 absorbing terminal state, A = V.

  State numbering: level t's prefixes at ``state_offsets(V, L)[t] + index``,
  the terminal state last. Transitions are deterministic (a sparse kernel with
  one successor): s → s·a below level L − 1, the last level → terminal, and
  terminal → terminal. The reward is r(s·a) on the last level's actions, 0
  elsewhere; μ_0 is the root.

  With ``log_ref`` and τ > 0, the reward is shifted to r̂(s, a) = r(s, a) +
  τ log π_ref(a|s) (π_ref uniform at the terminal state). Since
  −τ KL(π ‖ π_ref) = τ H(π) + τ ⟨π, log π_ref⟩, the KL-to-π_ref regularized
  problem is then exactly the entropy-regularized problem of THEORY.md §1.1
  on r̂, with q̂ = q + τ log π_ref: the tabular solvers
  (``solvers.optimum(mdp, regularizers.entropy(tau))``), MD-VI and the bounds of
  :mod:`mdptheory.bounds` (with r_max = max |r̂|) apply unchanged.

  Args:
    reward: [V^L] terminal rewards.
    vocab_size, length: V and L.
    gamma: per-token discount in [0, 1).
    log_ref: levels of log π_ref (needed when τ > 0).
    tau: KL-to-π_ref weight τ >= 0 folded into the reward.
    dtype: float32 or float64.
  """
  V, L = check_sizes(vocab_size, length)
  r = Vd.as_real_array("reward", reward, ndim=1)
  if r.shape != (V ** L,):
    raise ShapeError(f"reward must have shape (V^L,) = ({V ** L},), got {r.shape}")
  Vd.check_finite("reward", r)
  tau = Vd.check_positive("tau", tau, allow_zero=True)
  if tau > 0 and log_ref is None:
    raise ParameterError("tau > 0 folds tau log pi_ref into the reward; pass log_ref (the levels of log pi_ref)")
  off = state_offsets(V, L)
  S = int(off[-1]) + 1
  nxt = np.empty((S, V), np.int64)
  for t in range(L):
    n = V ** t
    idx = np.arange(n)[:, None] * V + np.arange(V)[None, :]
    nxt[off[t]:off[t + 1]] = (off[t + 1] + idx) if t < L - 1 else S - 1
  nxt[S - 1] = S - 1
  rew = np.zeros((S, V))
  rew[off[L - 1]:off[L]] = r.reshape(-1, V)
  if tau > 0:
    lr = np.concatenate([np.asarray(x, np.float64) for x in log_ref], axis=0)
    if lr.shape != (S - 1, V):
      raise ShapeError(f"log_ref must be L levels [V^t, V] for V={V}, L={L}; got {lr.shape[0]} prefix rows")
    Vd.check_finite("log_ref", lr)
    rew[:S - 1] += tau * lr
    rew[S - 1] += tau * -np.log(V)
  mu0 = np.zeros(S)
  mu0[0] = 1.0
  return MDP.from_sparse(nxt[..., None], np.ones((S, V, 1)), rew, gamma, mu0, dtype=dtype)


# -----------------------------------------------------------------------------
# Validation helpers (numpy)
# -----------------------------------------------------------------------------


def check_sequence_law(name: str, log_p: Any, V: int, L: int) -> np.ndarray:
  """A sequence law given as log-probabilities [V^L] that sums to 1 (validated in numpy)."""
  arr = Vd.as_real_array(name, log_p, ndim=1)
  if arr.shape != (V ** L,):
    raise ShapeError(f"{name} must have shape (V^L,) = ({V ** L},), got {arr.shape}")
  if np.isnan(arr).any() or np.isposinf(arr).any():
    i = int(np.argmax(np.isnan(arr) | np.isposinf(arr)))
    raise InvalidMDPError(f"{name}[{i}] = {arr[i]} is not a log-probability; pass finite values or -inf")
  total = float(np.exp(arr).sum())
  if abs(total - 1.0) > 1e-6:
    raise InvalidMDPError(f"{name} sums to {total:.10g} in probability, not 1; normalize it with log_softmax")
  return arr
