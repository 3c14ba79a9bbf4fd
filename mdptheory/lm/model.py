r"""A tiny causal transformer (nanoGPT layout, Equinox) and a synthetic source whose law is known exactly.

The model is the *parametrization* of the policy logits over the token tree
of :mod:`mdptheory.lm.tree` (LM_BRIDGE.md §0, §2.4; STYLE.md §5.11). Layout as
in nanoGPT's ``model.py``: token + position embeddings, ``n_layer`` pre-LN
blocks ``x = x + attn(ln1(x)); x = x + mlp(ln2(x))`` with causal
self-attention and a 4x GELU MLP, a final LayerNorm and a linear head. The
input of a sequence y is [BOS, y_0, …, y_{T−2}] (BOS = token V), so output
position t holds the logits of π(· | y_{<t}).

Every parameter is created with an explicit dtype (``TransformerConfig.dtype``,
float32 by default) so that x64 mode (on in the tests and the CLI) never
silently makes the model float64; measurements cast the logits to float64
(:func:`tree_log_probs`). The causal mask uses a large finite negative, not
−inf, so masked rows never produce NaN gradients (LM_BRIDGE.md §5.11).

:func:`tree_log_probs` evaluates the policy at every prefix of the tree with
one batched forward over the V^{L−1} leaf paths: by causality, position t of
any path extending a prefix s of length t holds log π(·|s), and the path that
extends s with zeros has index s · V^{L−1−t}.

The reference LM is trained from scratch on an order-2 Markov source
(:func:`markov2_source`): its exact law is known, so the pretraining error
KL(p_src ‖ π_ref) is itself an exact number. No downloads.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from mdptheory import validate as Vd
from mdptheory.errors import ParameterError
from mdptheory.lm import tree

Array = jax.Array

__all__ = ["Transformer", "TransformerConfig", "forward", "init", "init_numpy", "leaf_inputs", "leaf_logits",
           "markov2_source", "rows_to_levels", "tree_log_probs"]

_MASK = -1e9  # finite: an all-masked row never yields NaN gradients


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
  """Sizes of the tiny transformer (static: every field is part of the compile key)."""
  vocab_size: int = 4        # V: tokens 0..V−1; BOS is the extra token V
  length: int = 5            # L: positions (the tree's depth)
  width: int = 32            # d_model; 32 on the CPU, 128+ on a GPU (LM_BRIDGE.md §0.4)
  num_layers: int = 2        # transformer blocks
  num_heads: int = 2         # attention heads; width must be divisible by it
  dtype: str = "float32"     # every parameter's dtype (training precision)
  zero_head: bool = False    # zero-initialized head: the initial policy is exactly uniform

  def __post_init__(self):
    tree.check_sizes(self.vocab_size, self.length)
    Vd.check_int("width", self.width, minimum=1)
    Vd.check_int("num_layers", self.num_layers, minimum=1)
    Vd.check_int("num_heads", self.num_heads, minimum=1)
    if self.width % self.num_heads:
      raise ParameterError(f"width={self.width} must be divisible by num_heads={self.num_heads}")
    if self.dtype not in ("float32", "float64", "bfloat16"):
      raise ParameterError(f"dtype={self.dtype!r} must be 'float32', 'float64' or 'bfloat16'")


class CausalSelfAttention(eqx.Module):
  qkv: eqx.nn.Linear    # [d] -> [3d]
  proj: eqx.nn.Linear   # [d] -> [d]
  num_heads: int = eqx.field(static=True)

  def __init__(self, cfg: TransformerConfig, key: Array):
    k1, k2 = jax.random.split(key)
    dt = jnp.dtype(cfg.dtype)
    self.qkv = eqx.nn.Linear(cfg.width, 3 * cfg.width, key=k1, dtype=dt)
    self.proj = eqx.nn.Linear(cfg.width, cfg.width, key=k2, dtype=dt)
    self.num_heads = cfg.num_heads

  def __call__(self, x: Array) -> Array:
    T, d = x.shape
    h = self.num_heads
    q, k, v = jnp.split(jax.vmap(self.qkv)(x), 3, axis=-1)        # 3 x [T, d]
    q, k, v = (z.reshape(T, h, d // h).transpose(1, 0, 2) for z in (q, k, v))  # [h, T, d/h]
    att = q @ k.transpose(0, 2, 1) / math.sqrt(d // h)             # [h, T, T]
    causal = jnp.tril(jnp.ones((T, T), bool))
    att = jax.nn.softmax(jnp.where(causal, att, jnp.asarray(_MASK, att.dtype)), axis=-1)
    y = (att @ v).transpose(1, 0, 2).reshape(T, d)                 # [T, d]
    return jax.vmap(self.proj)(y)


class MLP(eqx.Module):
  fc: eqx.nn.Linear     # [d] -> [4d]
  proj: eqx.nn.Linear   # [4d] -> [d]

  def __init__(self, cfg: TransformerConfig, key: Array):
    k1, k2 = jax.random.split(key)
    dt = jnp.dtype(cfg.dtype)
    self.fc = eqx.nn.Linear(cfg.width, 4 * cfg.width, key=k1, dtype=dt)
    self.proj = eqx.nn.Linear(4 * cfg.width, cfg.width, key=k2, dtype=dt)

  def __call__(self, x: Array) -> Array:
    return jax.vmap(self.proj)(jax.nn.gelu(jax.vmap(self.fc)(x)))


class Block(eqx.Module):
  ln1: eqx.nn.LayerNorm
  attn: CausalSelfAttention
  ln2: eqx.nn.LayerNorm
  mlp: MLP

  def __init__(self, cfg: TransformerConfig, key: Array):
    k1, k2 = jax.random.split(key)
    dt = jnp.dtype(cfg.dtype)
    self.ln1 = eqx.nn.LayerNorm(cfg.width, dtype=dt)
    self.attn = CausalSelfAttention(cfg, k1)
    self.ln2 = eqx.nn.LayerNorm(cfg.width, dtype=dt)
    self.mlp = MLP(cfg, k2)

  def __call__(self, x: Array) -> Array:
    x = x + self.attn(jax.vmap(self.ln1)(x))
    return x + self.mlp(jax.vmap(self.ln2)(x))


class Transformer(eqx.Module):
  """The policy network: tokens [T] (starting with BOS) -> logits [T, V]."""
  tok: eqx.nn.Embedding   # [V + 1, d] (BOS = V)
  pos: eqx.nn.Embedding   # [L, d]
  blocks: tuple
  ln_f: eqx.nn.LayerNorm
  head: eqx.nn.Linear     # [d] -> [V]

  def __init__(self, cfg: TransformerConfig, key: Array):
    keys = jax.random.split(key, cfg.num_layers + 3)
    dt = jnp.dtype(cfg.dtype)
    self.tok = eqx.nn.Embedding(cfg.vocab_size + 1, cfg.width, key=keys[0], dtype=dt)
    self.pos = eqx.nn.Embedding(cfg.length, cfg.width, key=keys[1], dtype=dt)
    self.blocks = tuple(Block(cfg, k) for k in keys[3:])
    self.ln_f = eqx.nn.LayerNorm(cfg.width, dtype=dt)
    head = eqx.nn.Linear(cfg.width, cfg.vocab_size, key=keys[2], dtype=dt)
    if cfg.zero_head:
      head = eqx.tree_at(lambda m: (m.weight, m.bias), head,
                         (jnp.zeros_like(head.weight), jnp.zeros_like(head.bias)))
    self.head = head

  def __call__(self, tokens: Array) -> Array:
    T = tokens.shape[0]
    x = jax.vmap(self.tok)(tokens) + jax.vmap(self.pos)(jnp.arange(T))   # [T, d]
    for block in self.blocks:
      x = block(x)
    return jax.vmap(self.head)(jax.vmap(self.ln_f)(x))                 # [T, V]


def init(key: Array, cfg: TransformerConfig) -> Transformer:
  """A freshly initialized transformer (parameters in ``cfg.dtype``), built in one compiled call."""
  return _init(key, cfg)


@eqx.filter_jit
def _init(key, cfg):
  return Transformer(cfg, key)


def init_numpy(rng: Any, cfg: TransformerConfig) -> Transformer:
  """The same initialization law as :func:`init` drawn with a numpy Generator (nothing to compile).

  Equinox's defaults: Linear weights and biases ~ U(±1/sqrt(fan_in)), embeddings ~ N(0, 1), LayerNorm
  weight 1 and bias 0 (a zero head if ``cfg.zero_head``). Used for the reference LM, where compiling the
  JAX initializer would cost seconds on a CPU; :func:`init` remains the vmappable (per-key) path.
  """
  rng = np.random.default_rng(rng)
  dt = np.dtype(jnp.dtype(cfg.dtype))
  shape = eqx.filter_eval_shape(Transformer, cfg, jax.random.key(0))
  is_layer = lambda x: isinstance(x, (eqx.nn.Linear, eqx.nn.Embedding, eqx.nn.LayerNorm))

  def fill(layer):
    if isinstance(layer, eqx.nn.Linear):
      lim = 1.0 / math.sqrt(layer.in_features)
      w = rng.uniform(-lim, lim, layer.weight.shape)
      b = rng.uniform(-lim, lim, layer.bias.shape)
      return eqx.tree_at(lambda m: (m.weight, m.bias), layer, (jnp.asarray(w, dt), jnp.asarray(b, dt)))
    if isinstance(layer, eqx.nn.Embedding):
      return eqx.tree_at(lambda m: m.weight, layer, jnp.asarray(rng.standard_normal(layer.weight.shape), dt))
    return eqx.tree_at(lambda m: (m.weight, m.bias), layer,
                       (jnp.ones(layer.weight.shape, dt), jnp.zeros(layer.bias.shape, dt)))

  model = jax.tree_util.tree_map(fill, shape, is_leaf=is_layer)
  if cfg.zero_head:
    model = eqx.tree_at(lambda m: (m.head.weight, m.head.bias), model,
                        (jnp.zeros_like(model.head.weight), jnp.zeros_like(model.head.bias)))
  return model


@eqx.filter_jit
def forward(model: Transformer, tokens: Array) -> Array:
  """Logits [T, V] of one input sequence [T] (BOS first); ``jax.vmap`` it over a batch."""
  return model(tokens)


def leaf_inputs(V: int, L: int) -> np.ndarray:
  """[V^{L−1}, L] int32: the inputs [BOS, y_0..y_{L−2}] of every leaf path (BOS = V)."""
  paths = tree.sequences(V, L - 1) if L > 1 else np.zeros((1, 0), np.int32)
  return np.concatenate([np.full((paths.shape[0], 1), V, np.int32), paths], axis=1)


def leaf_logits(model: Transformer, V: int, L: int, *, chunk: int | None = None) -> Array:
  """Logits [V^{L−1}, L, V] of every leaf path, in the model's dtype (chunked over paths with ``lax.map``)."""
  return _leaf_logits(model, V, L, chunk)


@eqx.filter_jit
def _leaf_logits(model, V, L, chunk):
  x = jnp.asarray(leaf_inputs(V, L))
  R = x.shape[0]
  if chunk is None or chunk >= R:
    return jax.vmap(model)(x)
  if R % chunk:
    raise ParameterError(f"chunk={chunk} must divide the number of leaf paths V^(L-1) = {R}")
  out = jax.lax.map(jax.vmap(model), x.reshape(R // chunk, chunk, L))
  return out.reshape(R, L, V)


def rows_to_levels(rows: Array, V: int, L: int) -> tree.Levels:
  """Per-level arrays [V^t, ...] from per-leaf-path rows [V^{L−1}, L, ...] (position t of path s·V^{L−1−t})."""
  return tuple(rows[::V ** (L - 1 - t), t] for t in range(L))


def tree_log_probs(model: Transformer, V: int, L: int, *, dtype: Any = jnp.float64,
                   chunk: int | None = None) -> tree.Levels:
  """The model's policy at every prefix, log π_θ(·|s), as tree levels in ``dtype`` (float64 for measurement).

  The logits are computed in the model's dtype, then cast to ``dtype`` before
  the log-softmax: the measured policy is softmax(float64(logits)).
  """
  return _tree_log_probs(model, V, L, jnp.dtype(dtype), chunk)


@eqx.filter_jit
def _tree_log_probs(model, V, L, dtype, chunk):
  logits = leaf_logits(model, V, L, chunk=chunk).astype(dtype)
  return rows_to_levels(jax.nn.log_softmax(logits, axis=-1), V, L)


# -----------------------------------------------------------------------------
# The synthetic source
# -----------------------------------------------------------------------------


def markov2_source(rng: Any, vocab_size: int, length: int, *, scale: float = 2.0, dtype: Any = None) -> tree.Levels:
  """An order-2 Markov source over V^L with known law: levels of log p(y_t | y_{t−2}, y_{t−1}).

  Logits are ``scale`` x Gumbel draws (peaked but full support, LM_BRIDGE.md §3.2):
  one table for y_0, one for y_1 | y_0, and one shared table for y_t | y_{t−2}, y_{t−1}
  (t >= 2). Drawn with a numpy Generator, so the source does not depend on JAX's
  random streams.

  Args:
    rng: numpy Generator or seed.
    vocab_size, length: V and L.
    scale: logit scale (larger = more peaked).
    dtype: float dtype of the levels.
  """
  V, L = tree.check_sizes(vocab_size, length)
  scale = Vd.check_positive("scale", scale)
  dt = Vd.resolve_dtype(dtype)
  rng = np.random.default_rng(rng)
  t0 = scale * rng.gumbel(size=(V,))
  t1 = scale * rng.gumbel(size=(V, V))
  t2 = scale * rng.gumbel(size=(V, V, V))
  levels = []
  for t in range(L):
    pre = tree.prefixes(V, t)
    if t == 0:
      logits = t0[None]
    elif t == 1:
      logits = t1[pre[:, 0]]
    else:
      logits = t2[pre[:, t - 2], pre[:, t - 1]]
    lp = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
    levels.append(jnp.asarray(lp, dt))
  return tuple(levels)
