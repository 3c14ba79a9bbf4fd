"""Input checks for the public boundary, in numpy, before anything is jitted.

Each check either returns a cleaned value or raises one of the error classes of
:mod:`mdptheory.errors` with a message that names the offending index or value
and says how to fix it. Values that are JAX tracers (a hyperparameter swept
with ``jax.vmap``) cannot be inspected and are passed through unchanged: the
concrete values of a sweep are validated where the sweep is built.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mdptheory.errors import (
    DTypeError,
    InvalidMDPError,
    MemoryBudgetError,
    NonFiniteError,
    ParameterError,
    ShapeError,
)

#: Default budget for one dense array built by the library, in bytes (2 GiB).
DEFAULT_MEMORY_BUDGET = 2 * 1024**3

# Rows of P and policies must sum to 1 within this tolerance (scaled by the
# number of summands and the input's precision); accepted rows are renormalized.
_SUM_RTOL64 = 1e-9


def is_traced(x: Any) -> bool:
  """True when ``x`` is a JAX tracer whose value is unknown at trace time."""
  return isinstance(x, jax.core.Tracer)


def x64_enabled() -> bool:
  return bool(jax.config.jax_enable_x64)


def resolve_dtype(dtype: Any = None) -> np.dtype:
  """The floating dtype to build arrays in.

  ``None`` gives JAX's default float (float64 when x64 is enabled, else
  float32). Asking for float64 while x64 is off raises instead of silently
  computing in float32.
  """
  if dtype is None:
    return np.dtype(np.float64 if x64_enabled() else np.float32)
  try:
    dt = np.dtype(dtype)
  except TypeError as e:
    raise DTypeError(f"dtype={dtype!r} is not a numpy dtype; use float32 or float64") from e
  if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
    raise DTypeError(f"dtype={dt} is not supported; use float32 or float64")
  if dt == np.float64 and not x64_enabled():
    raise ParameterError(
        "float64 was requested but JAX x64 is off, so JAX would silently compute in float32; "
        "call jax.config.update('jax_enable_x64', True) at program start (or pass dtype=float32)")
  return dt


def _sum_atol(n_terms: int, dtype: np.dtype) -> float:
  if np.dtype(dtype) == np.float32:
    # float32 input summed in float64: only the entries' own rounding (a random walk of n steps of eps/2) and
    # the float32 normalization that produced them remain, so sqrt(n) scaling, not the worst case n.
    return max(_SUM_RTOL64, 16 * math.sqrt(n_terms) * float(np.finfo(np.float32).eps))
  eps = np.finfo(dtype).eps if np.issubdtype(dtype, np.floating) else np.finfo(np.float64).eps
  return max(_SUM_RTOL64, 16 * n_terms * float(eps))


def as_real_array(name: str, x: Any, *, ndim: int | None = None, keep_float32: bool = False) -> np.ndarray:
  """Converts ``x`` to a float64 numpy array, refusing complex/object/str dtypes.

  With ``keep_float32`` a float32 array stays float32 (no copy): large kernels are checked in their own
  precision instead of being doubled in memory first.
  """
  if isinstance(x, jax.Array) and is_traced(x):
    raise ParameterError(f"{name} is a traced JAX value; build the problem outside jit/vmap")
  try:
    arr = np.asarray(x)
  except Exception as e:  # ragged lists and the like
    raise ShapeError(f"{name} cannot be converted to an array ({e}); pass a rectangular numeric array") from e
  if arr.dtype == object or arr.dtype.kind in "USVO":
    raise DTypeError(f"{name} has dtype {arr.dtype}; pass a real numeric array (float32 or float64)")
  if arr.dtype.kind == "c":
    raise DTypeError(f"{name} has complex dtype {arr.dtype}; pass its real part explicitly if that is intended")
  if arr.dtype.kind not in "biuf":
    raise DTypeError(f"{name} has dtype {arr.dtype}; pass a real numeric array")
  if ndim is not None and arr.ndim != ndim:
    raise ShapeError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
  if keep_float32 and arr.dtype == np.float32:
    return arr
  return arr.astype(np.float64, copy=False) if arr.dtype.kind == "f" else arr.astype(np.float64)


def check_finite(name: str, arr: np.ndarray) -> None:
  bad = ~np.isfinite(arr)
  if bad.any():
    idx = tuple(int(i) for i in np.argwhere(bad)[0])
    raise NonFiniteError(
        f"{name}{list(idx)} = {arr[idx]} is not finite ({int(bad.sum())} non-finite entries); "
        f"replace NaN/inf before building the problem")


def check_stochastic(name: str, arr: np.ndarray, *, what: str = "row",
                     index_names: tuple[str, ...] = (), dtype: Any = None) -> np.ndarray:
  """Checks that ``arr`` is non-negative and sums to 1 along its last axis.

  Returns a new array (``dtype``, default the input's), renormalized along the
  last axis (a row that sums to 1 up to rounding, such as ten entries of 0.1,
  is accepted), allocated aligned so that :func:`adopt` hands it to JAX
  without another copy. The checks are two reductions over ``arr`` (row sums
  and the minimum) with no temporaries of its size; the slower searches that
  name the offending entry run only when a check fails.
  """
  sums = arr.sum(-1, dtype=np.float64)
  if not np.all(np.isfinite(sums)):
    check_finite(name, arr)  # names the first NaN/inf; an overflowing sum is reported below
  if arr.size and arr.min() < 0:
    neg = arr < 0
    idx = tuple(int(i) for i in np.argwhere(neg)[0])
    raise InvalidMDPError(
        f"{name}{list(idx)} = {arr[idx]:.6g} is negative; probabilities must be >= 0")
  atol = _sum_atol(arr.shape[-1] if arr.ndim else 1, arr.dtype)
  off = ~(np.abs(sums - 1.0) <= atol)
  if np.any(off):
    idx = tuple(int(i) for i in np.argwhere(np.atleast_1d(off))[0]) if arr.ndim > 1 else ()
    where = ", ".join(f"{n}={i}" for n, i in zip(index_names, idx)) if index_names else str(list(idx))
    s = float(np.atleast_1d(sums)[idx] if idx else sums)
    raise InvalidMDPError(
        f"{name} {what} at ({where}) sums to {s:.10g}, not 1 "
        f"({int(np.sum(off))} such {what}s); normalize it, e.g. P / P.sum(-1, keepdims=True)")
  out = aligned_empty(arr.shape, arr.dtype if dtype is None else dtype)
  np.divide(arr, sums[..., None], out=out, casting="same_kind")
  return out


#: Alignment (bytes) of the arrays handed to JAX without a copy (XLA's CPU client needs 64).
_ALIGN = 64


def aligned_empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
  """An uninitialized C-contiguous numpy array whose data is 64-byte aligned."""
  dtype = np.dtype(dtype)
  nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
  buf = np.empty(nbytes + _ALIGN, np.uint8)
  offset = (-buf.ctypes.data) % _ALIGN
  return buf[offset:offset + nbytes].view(dtype).reshape(shape)


def adopt(arr: np.ndarray, dtype: Any = None) -> jax.Array:
  """A JAX array of ``arr``, sharing its memory when possible (on the CPU, for an aligned contiguous array).

  Only for arrays the library allocated itself (:func:`check_stochastic`, :func:`aligned_empty`): the caller
  must not write to ``arr`` afterwards. Anything else is copied, as ``jnp.asarray`` does.
  """
  dt = arr.dtype if dtype is None else np.dtype(dtype)
  if (arr.dtype == dt and arr.size and arr.flags.c_contiguous and arr.ctypes.data % _ALIGN == 0
      and jax.default_backend() == "cpu"):
    try:
      return jnp.from_dlpack(arr)
    except Exception:  # an exotic array or runtime: fall back to the copy
      pass
  return jnp.asarray(arr, dt)


def check_distribution(name: str, x: Any, size: int) -> np.ndarray:
  arr = as_real_array(name, x, ndim=1)
  if arr.shape != (size,):
    raise ShapeError(f"{name} must have shape ({size},), got {arr.shape}")
  check_finite(name, arr)
  if (arr < 0).any():
    i = int(np.argmax(arr < 0))
    raise InvalidMDPError(f"{name}[{i}] = {arr[i]:.6g} is negative; a distribution must be >= 0")
  s = float(arr.sum())
  if abs(s - 1.0) > _sum_atol(size, arr.dtype):
    raise InvalidMDPError(f"{name} sums to {s:.10g}, not 1; divide it by its sum")
  return arr / s


def check_real_scalar(name: str, value: Any) -> float | jax.Array:
  """A real, finite scalar; bools, strings and arrays of size > 1 are refused."""
  if is_traced(value):
    return value
  if isinstance(value, (bool, np.bool_)):
    raise ParameterError(f"{name}={value!r} is a bool; pass a number")
  if isinstance(value, str):
    raise ParameterError(f"{name}={value!r} is a string; pass a number, e.g. {name}=0.9")
  if isinstance(value, (np.ndarray, jax.Array)):
    if value.shape != ():
      raise ParameterError(f"{name} must be a scalar, got an array of shape {value.shape}")
    if value.dtype.kind not in "iuf":
      raise ParameterError(f"{name} has dtype {value.dtype}; pass a real number")
    value = float(value)
  if not isinstance(value, numbers.Real):
    raise ParameterError(f"{name}={value!r} of type {type(value).__name__} is not a real number")
  value = float(value)
  if math.isnan(value):
    raise ParameterError(f"{name} is NaN; pass a finite number")
  return value


def check_gamma(gamma: Any, *, allow_one: bool = False) -> float | jax.Array:
  g = check_real_scalar("gamma", gamma)
  if is_traced(g):
    return g
  if g == 1.0 and not allow_one:
    raise ParameterError(
        "gamma=1 makes the discounted problem ill-posed without a horizon; use a discount in [0, 1) "
        "or a finite-horizon problem (FiniteHorizonMDP.create(P, r, horizon=H))")
  if not 0.0 <= g < 1.0 and not (allow_one and g == 1.0):
    raise ParameterError(f"gamma={g} is outside [0, 1); pass a discount such as gamma=0.9")
  return g


def check_positive(name: str, value: Any, *, allow_zero: bool = False,
                   hint: str = "") -> float | jax.Array:
  v = check_real_scalar(name, value)
  if is_traced(v):
    return v
  if math.isinf(v):
    raise ParameterError(f"{name}={v} is infinite; pass a finite value{hint}")
  if v < 0 or (v == 0 and not allow_zero):
    bound = ">= 0" if allow_zero else "> 0"
    raise ParameterError(f"{name}={v} must be {bound}{hint}")
  return v


def check_int(name: str, value: Any, *, minimum: int = 1) -> int:
  if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
    raise ParameterError(
        f"{name}={value!r} must be an integer >= {minimum}"
        + (f", e.g. {name}={int(value)}" if isinstance(value, float) and value.is_integer() else ""))
  value = int(value)
  if value < minimum:
    raise ParameterError(f"{name}={value} must be an integer >= {minimum}")
  return value


def check_dense_budget(name: str, shape: tuple[int, ...], dtype: Any,
                       budget: int | None = None, *, hint: str = "") -> None:
  """Refuses to allocate a dense array larger than ``budget`` bytes."""
  budget = DEFAULT_MEMORY_BUDGET if budget is None else budget
  nbytes = int(np.prod([int(s) for s in shape], dtype=object)) * np.dtype(dtype).itemsize
  if nbytes > budget:
    raise MemoryBudgetError(
        f"a dense {name} of shape {tuple(shape)} in {np.dtype(dtype)} needs {nbytes / 2**30:.3g} GiB, "
        f"over the memory budget of {budget / 2**30:.3g} GiB"
        + (hint or "; use the sparse kernel (next-state indices and probabilities) instead, "
                   "or raise memory_budget if the machine really has the memory"))


def check_policy(pi: Any, num_states: int, num_actions: int, *, name: str = "pi") -> np.ndarray:
  """A stochastic policy [S, A], or deterministic action indices [S] made one-hot."""
  if is_traced(pi):
    return pi
  arr = np.asarray(pi)
  if arr.ndim == 1 and arr.dtype.kind in "iu":
    if arr.shape != (num_states,):
      raise ShapeError(f"deterministic {name} must have shape ({num_states},), got {arr.shape}")
    bad = (arr < 0) | (arr >= num_actions)
    if bad.any():
      s = int(np.argmax(bad))
      raise ShapeError(
          f"{name}[{s}] = {int(arr[s])} is not an action index in [0, {num_actions}); "
          f"actions are numbered 0..{num_actions - 1}")
    return np.eye(num_actions)[arr]
  arr = as_real_array(name, pi)
  if arr.shape != (num_states, num_actions):
    raise ShapeError(f"{name} must have shape (S, A) = ({num_states}, {num_actions}), got {arr.shape}")
  return check_stochastic(name, arr, what="row", index_names=("s",))


def check_key(key: Any) -> Any:
  """A JAX PRNG key from an int seed, a typed key or a raw uint32[2] key; traced keys pass through."""
  if is_traced(key):
    return key
  if isinstance(key, (bool, np.bool_)):
    raise ParameterError(f"key={key!r} is a bool; pass an int seed or jax.random.key(seed)")
  if isinstance(key, (int, np.integer)):
    return jax.random.key(int(key))
  if isinstance(key, (jax.Array, np.ndarray)):
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ():
      return key
    if key.dtype == np.uint32 and key.shape == (2,):
      return jax.random.wrap_key_data(jnp.asarray(key))
  raise ParameterError(f"key={key!r} is not an int seed or a single JAX PRNG key")
