r"""Fitting the transformer to exact tree targets: optax train loops under ``lax.scan`` inside one jit.

The objective is exact (no sampling): a weighted sum of per-prefix KLs over
the whole tree (LM_BRIDGE.md §4(a), §6),

    ℓ(θ) = Σ_t Σ_{s ∈ level t} w_t(s) KL(p*(·|s) ‖ π_θ(·|s)),

evaluated through the V^{L−1} leaf paths of the tree (one causal forward
gives every level; :func:`mdptheory.lm.model.leaf_logits`). A prefix of
length t appears in V^{L−1−t} paths, so its weight is split evenly over them
(:func:`path_weights`). Two weightings matter:

* uniform per level (:func:`uniform_weights`, w_t(s) = 1/V^t): every prefix
  counts, which is what sup-norm theorems need (rare prefixes are fitted too);
* occupancy (:func:`occupancy_weights`, w_t(s) = d_{p*}(s)): then ℓ is exactly
  the sequence-level KL(p* ‖ π_θ) by the chain rule (used for Nash-MP and
  distillation).

Targets may contain zeros (−inf log-probabilities, e.g. an empirical law);
their terms are 0 (0 log 0 = 0). Behaviour cloning with the log-barrier of
Tiapkin et al. 2024 (arXiv 2310.17303, Remark 1) is this loss with the
add-one smoothed target and weights ∝ N(s) + V (see ``studies/lm_demonstrations.py``).

:func:`fit` is pure: parameters and the optax state go in and come out, the
``steps`` updates run in one ``lax.scan``, the learning rate is a traced
array (so a sweep over it does not recompile), and ``jax.vmap`` over models
(seeds), targets and learning rates works (:func:`fit_batched`). For large
V^L the paths are processed in chunks (``chunk``: a ``lax.scan`` that
accumulates the loss and gradient, with the forward rematerialized by
``jax.checkpoint``), so memory is O(chunk · L).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mdptheory import validate as Vd
from mdptheory.errors import ParameterError, ShapeError
from mdptheory.lm import model as lm_model
from mdptheory.lm import tree

Array = jax.Array

__all__ = ["FIT_BLOCK", "FitResult", "ReferenceLM", "exact_loss", "fit", "fit_batched", "init_opt_state", "occupancy_weights", "optimizer",
           "path_weights", "reference_lm", "target_rows", "train", "uniform_weights"]

CLIP_NORM = 1.0  # global gradient-norm clipping before Adam
FIT_BLOCK = 10   # Adam steps per compiled call of :func:`train` (every budget is a multiple of it)


def optimizer(lr: Any) -> optax.GradientTransformation:
  """Adam with global-norm clipping; ``lr`` may be a traced array (its state does not depend on lr)."""
  return optax.chain(optax.clip_by_global_norm(CLIP_NORM), optax.adam(lr))


@eqx.filter_jit
def init_opt_state(model: lm_model.Transformer) -> Any:
  """A fresh optimizer state for ``model``'s array leaves."""
  return optimizer(0.0).init(eqx.filter(model, eqx.is_array))


# -----------------------------------------------------------------------------
# Targets and weights on the leaf paths
# -----------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("V", "L"))
def target_rows(levels: Sequence[Array], V: int, L: int) -> Array:
  """Per-level target log-probs [V^t, V] -> per-path rows [V^{L−1}, L, V] (row r, position t: prefix r // V^{L−1−t})."""
  R = V ** (L - 1)
  return jnp.stack([jnp.repeat(levels[t], V ** (L - 1 - t), axis=0, total_repeat_length=R)
                    for t in range(L)], axis=1)


@functools.partial(jax.jit, static_argnames=("V", "L"))
def path_weights(level_weights: Sequence[Array], V: int, L: int) -> Array:
  """Per-prefix weights (levels [V^t]) -> per-path weights [V^{L−1}, L], each prefix's weight split over its paths."""
  R = V ** (L - 1)
  return jnp.stack([jnp.repeat(level_weights[t] / V ** (L - 1 - t), V ** (L - 1 - t), total_repeat_length=R)
                    for t in range(L)], axis=1)


def uniform_weights(V: int, L: int, dtype: Any = jnp.float32) -> Array:
  """w_t(s) = 1/V^t (every level weighs 1, uniformly over its prefixes) as path weights [V^{L−1}, L]."""
  return jnp.full((V ** (L - 1), L), 1.0 / V ** (L - 1), dtype)


@functools.partial(jax.jit, static_argnames=("V", "L"))
def occupancy_weights(levels: Sequence[Array], V: int, L: int) -> Array:
  """w_t(s) = d_p(s), the prefix law of ``levels``: the loss is then the sequence KL(p ‖ π_θ).  -> [V^{L−1}, L]."""
  d = tree.prefix_log_probs(levels)
  return path_weights([jnp.exp(d[t]) for t in range(L)], V, L)


# -----------------------------------------------------------------------------
# The exact loss and the train loop
# -----------------------------------------------------------------------------


def _path_kl(model: lm_model.Transformer, inputs: Array, target: Array) -> Array:
  """KL(target ‖ π_θ) at every (path, position): [P, L], computed in the model's dtype."""
  lq = jax.nn.log_softmax(jax.vmap(model)(inputs), axis=-1)
  target = target.astype(lq.dtype)
  p = jnp.exp(target)
  on = p > 0
  return jnp.sum(jnp.where(on, p * (jnp.where(on, target, 0.0) - lq), 0.0), axis=-1)


def exact_loss(model: lm_model.Transformer, target: Array, weights: Array) -> Array:
  """ℓ(θ) = Σ_{path, t} w[path, t] KL(target[path, t] ‖ π_θ(·|prefix)).  -> [] in the model's dtype."""
  dt = _param_dtype(model)
  return _exact_loss(model, jnp.asarray(target, dt), jnp.asarray(weights, dt))


@eqx.filter_jit
def _exact_loss(model, target, weights):
  V = target.shape[-1]
  L = target.shape[-2]
  inputs = jnp.asarray(lm_model.leaf_inputs(V, L))
  return jnp.sum(weights.astype(target.dtype) * _path_kl(model, inputs, target))


class FitResult(NamedTuple):
  """The fitted model, the optimizer state to continue from, and the loss before each step."""
  model: Any       # lm_model.Transformer
  opt_state: Any   # optax state
  losses: Array    # [steps]  ℓ(θ_i) for i = 0..steps−1 (the loss the i-th update starts from)


def _loss_and_grad(params, static, inputs, target, weights, chunk):
  def loss(p, x, tg, w):
    m = eqx.combine(p, static)
    return jnp.sum(w * _path_kl(m, x, tg))
  R = inputs.shape[0]
  if chunk is None or chunk >= R:
    return jax.value_and_grad(loss)(params, inputs, target, weights)
  n = R // chunk
  batches = (inputs.reshape(n, chunk, *inputs.shape[1:]), target.reshape(n, chunk, *target.shape[1:]),
             weights.reshape(n, chunk, *weights.shape[1:]))
  vg = jax.value_and_grad(jax.checkpoint(loss))

  def body(acc, b):
    val, g = vg(params, *b)
    return (acc[0] + val, jax.tree_util.tree_map(jnp.add, acc[1], g)), None

  zero = (jnp.zeros((), target.dtype), jax.tree_util.tree_map(jnp.zeros_like, params))
  (val, grads), _ = jax.lax.scan(body, zero, batches)
  return val, grads


def _fit_impl(model, opt_state, target, weights, lr, steps: int, chunk: int | None):
  params, static = eqx.partition(model, eqx.is_array)
  dt = jax.tree_util.tree_leaves(params)[0].dtype
  V, L = target.shape[-1], target.shape[-2]
  inputs = jnp.asarray(lm_model.leaf_inputs(V, L))
  target = target.astype(dt)
  weights = weights.astype(dt)
  opt = optimizer(lr)

  def step(carry, _):
    p, s = carry
    val, g = _loss_and_grad(p, static, inputs, target, weights, chunk)
    updates, s = opt.update(g, s, p)
    return (optax.apply_updates(p, updates), s), val

  (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), None, length=steps)
  return FitResult(eqx.combine(params, static), opt_state, losses)


def _param_dtype(model) -> Any:
  return jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array))[0].dtype


def _check_fit_args(target, weights, steps, chunk):
  steps = Vd.check_int("steps", steps, minimum=1)
  if not Vd.is_traced(target):
    if target.ndim != 3:
      raise ShapeError(f"target must be [V^(L-1), L, V] path rows (see target_rows), got shape {target.shape}")
    if weights.shape != target.shape[:2]:
      raise ShapeError(f"weights must have shape {target.shape[:2]} (paths, positions), got {weights.shape}")
  if chunk is not None:
    chunk = Vd.check_int("chunk", chunk, minimum=1)
    if target.shape[0] % chunk:
      raise ParameterError(f"chunk={chunk} must divide the number of leaf paths {target.shape[0]}")
  return steps, chunk


@eqx.filter_jit
def _fit_jit(model, opt_state, target, weights, lr, steps, chunk):
  return _fit_impl(model, opt_state, target, weights, lr, steps, chunk)


def fit(model: lm_model.Transformer, opt_state: Any, target: Array, weights: Array, *, lr: Any, steps: int,
        chunk: int | None = None) -> FitResult:
  """``steps`` Adam updates on the exact loss :func:`exact_loss`, in one jitted ``lax.scan``.

  Args:
    model: the transformer (its array leaves are trained, in their own dtype).
    opt_state: from :func:`init_opt_state` or a previous :class:`FitResult`.
    target: [V^{L−1}, L, V] target log-probs per path (:func:`target_rows`).
    weights: [V^{L−1}, L] path weights (:func:`uniform_weights`, :func:`occupancy_weights`).
    lr: learning rate (a float or a traced scalar; it is passed as an array, so changing it never recompiles).
    steps: number of updates (static).
    chunk: process the paths in chunks of this size (must divide V^{L−1}); None: all at once.
  """
  steps, chunk = _check_fit_args(target, weights, steps, chunk)
  dt = _param_dtype(model)   # one compiled loop per parameter dtype, whatever the targets' dtype
  return _fit_jit(model, opt_state, jnp.asarray(target, dt), jnp.asarray(weights, dt), jnp.asarray(lr, jnp.float32),
                  steps, chunk)


def train(model: lm_model.Transformer, opt_state: Any, target: Array, weights: Array, *, lr: Any, steps: int,
          block: int = FIT_BLOCK, chunk: int | None = None) -> FitResult:
  """``steps`` Adam updates as ``steps // block`` calls of :func:`fit` with ``steps=block``.

  Every training budget then shares one compiled loop (per model size and ``block``), which matters on a
  CPU where compiling the loop costs seconds and a quick study trains for a few hundred steps.

  Args:
    model, opt_state, target, weights, lr, chunk: as in :func:`fit`.
    steps: total updates, a multiple of ``block``.
    block: updates per compiled call.
  """
  steps = Vd.check_int("steps", steps, minimum=1)
  block = Vd.check_int("block", block, minimum=1)
  if steps % block:
    raise ParameterError(f"steps={steps} must be a multiple of block={block}")
  losses = []
  for _ in range(steps // block):
    model, opt_state, ls = fit(model, opt_state, target, weights, lr=lr, steps=block, chunk=chunk)
    losses.append(ls)
  return FitResult(model, opt_state, jnp.concatenate(losses))


@eqx.filter_jit
def _fit_batched_jit(models, opt_states, targets, weights, lrs, steps, chunk):
  def one(m, s, tg, w, lr):
    return _fit_impl(m, s, tg, w, lr, steps, chunk)
  return eqx.filter_vmap(one)(models, opt_states, targets, weights, lrs)


def fit_batched(models: Any, opt_states: Any, targets: Array, weights: Array, *, lrs: Any, steps: int,
                chunk: int | None = None) -> FitResult:
  """:func:`fit` vmapped over a leading batch axis of models (e.g. seeds), states, targets, weights and lrs.

  Build the stacked models with ``eqx.filter_vmap(lambda k: model.init(k, cfg))(keys)`` and the stacked
  states with ``eqx.filter_vmap(init_opt_state)(models)``. On a CPU this gains little (the cores are
  already busy); on a GPU it is how a sweep fills the card (LM_BRIDGE.md §5.6).
  """
  steps, chunk = _check_fit_args(targets[0], weights[0], steps, chunk)
  dt = _param_dtype(models)
  targets, weights = jnp.asarray(targets, dt), jnp.asarray(weights, dt)
  lrs = jnp.asarray(lrs, jnp.float32)
  if lrs.shape != (targets.shape[0],):
    raise ShapeError(f"lrs must have one learning rate per batch entry, shape ({targets.shape[0]},), got {lrs.shape}")
  return _fit_batched_jit(models, opt_states, targets, weights, lrs, steps, chunk)


# -----------------------------------------------------------------------------
# The reference LM
# -----------------------------------------------------------------------------


class ReferenceLM(NamedTuple):
  """A transformer trained from scratch on the order-2 Markov source, and its exact law."""
  model: Any             # lm_model.Transformer (float32 parameters)
  log_ref: tuple         # levels [V^t, V] of log π_ref, float64 (the policy the model represents)
  log_source: tuple      # levels of the source's log p_src, float64
  pretrain_kl: float     # KL(p_src ‖ π_ref) over V^L, exact (float64)
  losses: np.ndarray     # [steps] the training loss


@functools.lru_cache(maxsize=16)
def reference_lm(cfg: lm_model.TransformerConfig, *, seed: int = 0, steps: int = 400, block: int = FIT_BLOCK,
                 lr: float = 1e-2, source_scale: float = 2.0, chunk: int | None = None) -> ReferenceLM:
  """Trains the reference LM on the exact forward KL(p_src ‖ π_θ) over all prefixes (uniform per level).

  No sampling noise: the target is the source's law itself (LM_BRIDGE.md §3.2), so the pretraining error
  KL(p_src ‖ π_ref) is an exact number. Training runs through :func:`train` (sharing the compiled loop
  with the studies' fits of the same size). Cached per process (same arguments, same model).

  Args:
    cfg: the transformer's sizes (``cfg.zero_head`` is ignored: the reference starts from a random head).
    seed: seeds the source and the initialization (numpy, :func:`lm_model.init_numpy`).
    steps: total Adam steps (a multiple of ``block``).
    block: steps per compiled call.
    lr: learning rate.
    source_scale: logit scale of the Markov source.
    chunk: path chunk size of the loss.
  """
  V, L = cfg.vocab_size, cfg.length
  src = lm_model.markov2_source(np.random.default_rng([seed, 2024]), V, L, scale=source_scale,
                                dtype=np.float64)
  m = lm_model.init_numpy(np.random.default_rng([seed, 2025]), dataclasses.replace(cfg, zero_head=False))
  res = train(m, init_opt_state(m), target_rows(src, V, L), uniform_weights(V, L), lr=lr, steps=steps,
              block=block, chunk=chunk)
  log_ref = lm_model.tree_log_probs(res.model, V, L, chunk=chunk)
  kl = float(tree.sequence_kl(tree.sequence_log_probs(src), tree.sequence_log_probs(log_ref)))
  return ReferenceLM(res.model, log_ref, src, kl, np.asarray(res.losses))
