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
import warnings
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
    PrecisionWarning,
    ShapeError,
    SupportMismatchError,
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
  arr = as_real_array(name, x, ndim=1, keep_float32=True)
  in_dtype = arr.dtype  # a float32 distribution sums to 1 only up to float32 rounding
  arr = arr.astype(np.float64)
  if arr.shape != (size,):
    raise ShapeError(f"{name} must have shape ({size},), got {arr.shape}")
  check_finite(name, arr)
  if (arr < 0).any():
    i = int(np.argmax(arr < 0))
    raise InvalidMDPError(f"{name}[{i}] = {arr[i]:.6g} is negative; a distribution must be >= 0")
  s = float(arr.sum())
  if abs(s - 1.0) > _sum_atol(size, in_dtype):
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


def check_simplex(name: str, x: Any, *, index_names: tuple[str, ...] | None = None) -> np.ndarray:
  """A probability vector [A] or a batch of them [..., A] (rows on the simplex); returns the array unchanged.

  The sum tolerance follows the input's precision (a float32 input is checked as float32). ``index_names``
  names the leading axes in the message (default: ``s`` for [S, A], ``h, s`` for [H, S, A]).
  """
  arr = as_real_array(name, x, keep_float32=True)
  if arr.ndim == 0 or arr.shape[-1] == 0:
    raise ShapeError(f"{name} must have an action axis [..., A] with A >= 1, got shape {arr.shape}")
  if arr.ndim > 1:
    names = {2: ("s",), 3: ("h", "s")}.get(arr.ndim, ()) if index_names is None else index_names
    check_stochastic(name, arr, what="row", index_names=names)
    return arr
  check_finite(name, arr)
  if (arr < 0).any():
    i = int(np.argmax(arr < 0))
    raise InvalidMDPError(f"{name}[{i}] = {float(arr[i]):.6g} is negative; probabilities must be >= 0")
  total = float(arr.sum(dtype=np.float64))
  if not abs(total - 1.0) <= _sum_atol(arr.size, arr.dtype):
    raise InvalidMDPError(f"{name} sums to {total:.10g}, not 1; divide it by its sum")
  return arr


def check_support(pi: Any, ref: Any, *, name: str = "pi", ref_name: str = "pi_ref",
                  index_names: tuple[str, ...] = (), log: bool = False) -> None:
  """Refuses ``pi`` with mass where ``ref`` has none, where KL(pi || ref) would be +inf.

  Both are probabilities (or, with ``log``, log-probabilities with -inf off the support) that broadcast
  against each other. Traced values are not checked (jitted code keeps the +inf convention).

  Raises:
    SupportMismatchError: naming the first such entry, the mass there and the fix.
  """
  if is_traced(pi) or is_traced(ref):
    return
  p, q = np.broadcast_arrays(np.asarray(pi), np.asarray(ref))
  on = p > -np.inf if log else p > 0
  bad = on & ~(q > -np.inf if log else q > 0)
  if bad.any():
    idx = tuple(int(i) for i in np.argwhere(bad)[0])
    where = ", ".join(f"{n}={i}" for n, i in zip(index_names, idx)) if len(index_names) == len(idx) \
        else ", ".join(map(str, idx))
    mass = float(np.exp(p[idx]) if log else p[idx])
    raise SupportMismatchError(
        f"{ref_name} is 0 at ({where}) where {name} has mass {mass:.3g} ({int(bad.sum())} such entries), "
        f"so KL({name} || {ref_name}) is infinite; keep {name} inside the support of {ref_name}, or mix "
        f"{ref_name} with a little uniform mass, (1 - eps) * {ref_name} + eps / A")


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


# -- precision and range (before a run) ----------------------------------------

#: float32 is flagged when eps / (1 − γ), the relative accuracy of the values (the rounding of γ and of every
#: backup, amplified by the horizon 1/(1 − γ)), is worse than this.
_HORIZON_RTOL = 1e-3

#: Values must stay below finfo.max / (_RANGE_MARGIN · S · A): sums over states and actions (norms, the
#: normalized l1 error) and differences q − v must not overflow either.
_RANGE_MARGIN = 16.0


def _scalar_or_none(x: Any) -> float | None:
  """float(x) for a concrete real scalar; None for a tracer or an array of size > 1."""
  if x is None or is_traced(x) or isinstance(x, str) or np.ndim(x) != 0:
    return None
  try:
    return float(x)
  except (TypeError, ValueError):
    return None


def check_in_range(name: str, arr: np.ndarray, dtype: Any) -> None:
  """Refuses finite values that overflow to ±inf when cast to ``dtype`` (e.g. a reward of 1e300 in float32)."""
  dt = np.dtype(dtype)
  if not np.issubdtype(dt, np.floating) or arr.size == 0 or np.dtype(arr.dtype).itemsize <= dt.itemsize:
    return
  big = np.abs(arr) > np.finfo(dt).max
  if big.any():
    idx = tuple(int(i) for i in np.argwhere(big)[0]) if arr.ndim else ()
    raise NonFiniteError(
        f"{name}{list(idx)} = {float(arr[idx]):.6g} overflows {dt} (largest {float(np.finfo(dt).max):.3g}; "
        f"{int(big.sum())} such entries); rescale it or build the problem with dtype=float64")


def check_gamma_in_dtype(gamma: Any, dtype: Any) -> None:
  """Refuses a discount γ < 1 that rounds to 1 in ``dtype`` (1/(1 − γ) would be inf); tracers pass."""
  g = _scalar_or_none(gamma)
  dt = np.dtype(dtype)
  if g is None or not np.issubdtype(dt, np.floating) or not g < 1.0:
    return
  if float(np.asarray(g, dt)) >= 1.0:
    largest = float(np.nextafter(dt.type(1.0), dt.type(0.0)))
    raise ParameterError(
        f"gamma={g!r} rounds to 1 in {dt}, so 1/(1 - gamma) is infinite; build the MDP with dtype=float64 "
        f"(jax_enable_x64) or use gamma <= {largest!r}")


def check_positive_in_dtype(name: str, value: Any, dtype: Any, *, hint: str = "") -> None:
  """Refuses a concrete nonzero parameter outside the normal range of the compute ``dtype``.

  Below the smallest normal number it rounds to 0 (or is flushed to 0 by XLA) and a division by it gives
  inf or NaN (τ = 1e-300 in float32); above the largest finite value it is inf. Tracers pass.
  """
  v = _scalar_or_none(value)
  dt = np.dtype(dtype)
  if v is None or v == 0.0 or not math.isfinite(v) or not np.issubdtype(dt, np.floating):
    return
  fi = np.finfo(dt)
  if abs(v) < float(fi.tiny) or abs(v) > float(fi.max):
    to = "0" if abs(v) < float(fi.tiny) else "inf"
    raise ParameterError(
        f"{name}={v:g} is outside the range of {dt} (normal numbers {float(fi.tiny):.3g} to {float(fi.max):.3g}) "
        f"and would be computed as {to}; build the problem in float64 (jax_enable_x64 and dtype=float64){hint}")


def check_value_scale(r_max: Any, gamma: Any, dtype: Any, *, reg_range: float = 0.0, size: int = 1,
                      where: str = "") -> float | None:
  """Refuses a problem whose value scale (r_max + reg_range)/(1 − γ) would overflow ``dtype``.

  ``reg_range`` bounds the regularizer's contribution per step (τ log A for the entropy) and ``size``
  is S·A (sums over states and actions must not overflow either). Returns the scale, or None when
  an input is traced.
  """
  r, g, reg = _scalar_or_none(r_max), _scalar_or_none(gamma), _scalar_or_none(reg_range)
  if r is None or g is None or reg is None or not g < 1.0:
    return None
  dt = np.dtype(dtype)
  scale = (abs(r) + abs(reg)) / (1.0 - g)
  limit = float(np.finfo(dt).max) / (_RANGE_MARGIN * max(int(size), 1))
  if not scale <= limit:
    what = f"{where}: " if where else ""
    raise NonFiniteError(
        f"{what}the values of this problem reach (max|r| + regularization)/(1 - gamma) = "
        f"({abs(r):.3g} + {abs(reg):.3g})/(1 - {g!r}) = {scale:.3g}, which overflows {dt} "
        f"(values must stay below ~{limit:.3g}); rescale the rewards"
        + ("" if dt == np.float64 else " or build the MDP with dtype=float64"))
  return scale


def warn_if_precision_insufficient(dtype: Any, *, gamma: Any = None, value_scale: Any = None, tol: Any = None,
                                   where: str = "", stacklevel: int = 3) -> bool:
  """Warns (:class:`~mdptheory.errors.PrecisionWarning`) when ``dtype`` cannot deliver what is asked.

  Two cases, both decided before the run from concrete inputs (tracers pass silently):

  * γ so close to 1 that eps/(1 − γ) > 1e-3: the rounding of γ and of every backup is amplified by the
    horizon 1/(1 − γ), so values carry relative errors above 1e-3. In float32 (eps ≈ 1.2e-7) this is
    γ > 0.99988, e.g. γ = 0.9999; in float64 only γ within ~2e-13 of 1;
  * a stopping tolerance ``tol`` > 0 below 2 eps · ``value_scale``, the spacing of values of that size
    (float32 values ~1e10 are spaced ~1e3 apart): the residual may never get below it.

  The message names the quantity and, in float32, suggests float64. Returns True when a warning was emitted.
  """
  dt = np.dtype(dtype)
  if not np.issubdtype(dt, np.floating):
    return False
  eps = float(np.finfo(dt).eps)
  what = f"{where}: " if where else ""
  use64 = "build the problem in float64 (jax_enable_x64 and dtype=float64)" if dt.itemsize < 8 else ""
  warned = False
  g = _scalar_or_none(gamma)
  if g is not None and g < 1.0 and eps / (1.0 - g) > _HORIZON_RTOL:
    warnings.warn(
        f"{what}gamma={dt.type(g)!s} in {dt}: rounding errors are amplified by the horizon 1/(1 - gamma) = "
        f"{1.0 / (1.0 - g):.3g}, so values carry relative errors of ~{eps / (1.0 - g):.1g} or more "
        f"({dt} eps = {eps:.2g}); {use64 or 'use a smaller gamma'}", PrecisionWarning, stacklevel=stacklevel)
    warned = True
  t, scale = _scalar_or_none(tol), _scalar_or_none(value_scale)
  if t is not None and scale is not None and 0.0 < t < 2.0 * eps * scale:
    warnings.warn(
        f"{what}tol={t:.3g} is below the {dt} resolution of values of size ~{scale:.3g} (spacing "
        f"~{eps * scale:.2g}): the residual may never reach it and the run would end unconverged; "
        f"pass tol >= {2.0 * eps * scale:.2g}{' or ' + use64 if use64 else ''}", PrecisionWarning,
        stacklevel=stacklevel)
    warned = True
  return warned


def regularizer_range(reg: Any, num_actions: int) -> float:
  """An upper bound on the per-step regularization |Ω*(q) − max q| + |Ω(π)| of a concrete bundle.

  τ log A for the entropy and the Tsallis entropies (Ω_q <= log A), 0 for the hard max and the KL
  bundles (their soft max lies between the reference average and the max), 0 when unknown.
  """
  spec = getattr(reg, "spec", None)
  if not spec:
    return 0.0
  if spec[0] == "entropy":
    return abs(float(spec[1])) * math.log(max(num_actions, 1))
  if spec[0] == "tsallis":
    return abs(float(spec[2])) * math.log(max(num_actions, 1))
  return 0.0


def check_mdp_precision(mdp: Any, *, tol: Any = None, reg_range: Any = 0.0, where: str = "",
                        stacklevel: int = 4) -> None:
  """The range and precision checks of a concrete MDP before a solver runs (no-op for traced fields).

  Raises ParameterError when γ rounds to 1 in the MDP's dtype and NonFiniteError when the value scale
  (max|r| + reg_range)/(1 − γ) overflows it; then :func:`warn_if_precision_insufficient`.
  """
  r = getattr(mdp, "r", None)
  gamma = getattr(mdp, "gamma", None)
  if r is None or is_traced(r) or is_traced(gamma):
    return
  dt = np.dtype(r.dtype)
  if not np.issubdtype(dt, np.floating):
    return
  check_gamma_in_dtype(gamma, dt)
  r_max = float(np.max(np.abs(np.asarray(r)))) if r.size else 0.0  # numpy: no compilation per shape
  if not math.isfinite(r_max):
    raise NonFiniteError(f"{where + ': ' if where else ''}the MDP's reward contains NaN or inf (max |r| = "
                         f"{r_max}); build it with MDP.create, which validates r")
  scale = check_value_scale(r_max, gamma, dt, reg_range=reg_range, size=int(np.prod(r.shape)), where=where)
  warn_if_precision_insufficient(dt, gamma=gamma, value_scale=scale, tol=tol, where=where, stacklevel=stacklevel)
