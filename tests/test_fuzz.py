"""Property-based fuzzing of the public constructors and algorithm entry points (hypothesis).

Every call gets random shapes (S, A in 1..5 for the constructors), input dtypes (float64, float32, int,
bool) and values that include NaN, ±inf, huge (1e300; 1e30 in float32) and tiny (1e-300, subnormals)
numbers. The property is the library's contract for bad input: a call either raises a subclass of
:class:`mdptheory.errors.MDPTheoryError`, or returns finite outputs that satisfy the basic invariants
(policies on the simplex, values within (r_max + regularization range)/(1 − γ), exploitability >= 0,
KL >= 0). Any other exception, a NaN or a +inf fails the test (log-probabilities may be −inf: a
probability below the float range).

JAX compiles one program per shape, dtype and static argument, and compiling dominates the cost, so the
algorithms run on a few fixed shapes and the examples vary the values (and the traced hyperparameters)
within them. ``derandomize=True`` makes the examples the same on every run.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mdptheory import alignment, games
from mdptheory import operators as ops
from mdptheory import regularizers as R
from mdptheory import solvers
from mdptheory.algorithms import demonstrations as D
from mdptheory.algorithms import mdmpi, munchausen, nash, tsallis_mvi
from mdptheory.errors import MDPTheoryError, PrecisionWarning
from mdptheory.types import MDP, Bandit, FiniteHorizonMDP, PreferenceGame

NAN, INF = float("nan"), float("inf")
#: Special values mixed into otherwise moderate arrays: NaN, ±inf, huge, tiny and subnormal numbers.
SPECIAL = (NAN, INF, -INF, 1e300, -1e300, 1e30, -1e30, 1e6, -1e6, 1e-300, -1e-300, 5e-324, 1e-45, 0.0, -0.0)
#: The finite ones (an algorithm fuzz wants mostly valid problems).
FINITE_SPECIAL = tuple(x for x in SPECIAL if math.isfinite(x))
#: Scalar hyperparameters: the special values plus the wrong types.
SCALARS = SPECIAL + (0.5, 1.0, 2.0, -1.0, 1e-8, 1e3, True, "0.1", None, np.float32(0.1), np.array([0.1, 0.2]))
GAMMAS = (0.0, 1e-300, 0.5, 0.9, 0.99, 0.9999, 1.0 - 1e-16, 1.0, -0.1, 1.5, NAN, INF, True, "0.9",
          np.float32(0.9), np.array(0.9))
KINDS = ("float64", "float32", "int", "bool")

FUZZ = settings(derandomize=True, deadline=None, database=None, max_examples=25,
                suppress_health_check=(HealthCheck.too_slow, HealthCheck.data_too_large))

# Absolute tolerances of the invariants, per compute dtype (scaled by the value scale where it matters).
ATOL = {np.dtype(np.float64): 1e-9, np.dtype(np.float32): 1e-4}
RTOL = {np.dtype(np.float64): 1e-9, np.dtype(np.float32): 1e-4}


# -----------------------------------------------------------------------------
# Strategies
# -----------------------------------------------------------------------------


def _cast(a: np.ndarray, kind: str) -> np.ndarray:
  if kind == "bool":
    return np.where(np.isnan(a), False, a != 0)
  if kind == "int":
    return np.nan_to_num(np.clip(a, -5, 5), nan=0.0).astype(np.int64)
  with np.errstate(over="ignore", under="ignore"):
    return a.astype(kind)


@st.composite
def arrays(draw, shape: tuple[int, ...], *, specials=SPECIAL, lo: float = -1.0, hi: float = 1.0,
           max_special: int = 2, kinds=KINDS) -> np.ndarray:
  """A moderate float64 array in [lo, hi] with up to ``max_special`` special entries, cast to a drawn kind."""
  a = draw(hnp.arrays(np.float64, shape, elements=st.floats(lo, hi)))
  if a.size:
    for _ in range(draw(st.integers(0, max_special))):
      a.flat[draw(st.integers(0, a.size - 1))] = draw(st.sampled_from(specials))
  return _cast(a, draw(st.sampled_from(kinds)))


@st.composite
def kernels(draw, shape: tuple[int, ...], *, corrupt: bool = True) -> np.ndarray:
  """A stochastic array along the last axis (dense, sparse, deterministic or with tiny entries), maybe corrupted."""
  style = draw(st.sampled_from(("dense", "sparse", "deterministic", "tiny")))
  n = shape[-1]
  if style == "deterministic":
    idx = draw(hnp.arrays(np.int64, shape[:-1], elements=st.integers(0, n - 1)))
    P = np.eye(n)[idx]
  else:
    P = draw(hnp.arrays(np.float64, shape, elements=st.floats(0.0, 1.0)))
    if style == "sparse":
      P = np.where(draw(hnp.arrays(np.bool_, shape)), P, 0.0)
    if style == "tiny":
      P = np.where(P < 0.3, 1e-300, P)
    sums = P.sum(-1, keepdims=True)
    P = np.where(sums > 0, P / np.where(sums > 0, sums, 1.0), 1.0 / n)
  mode = draw(st.sampled_from(("none", "none", "none", "entry", "scale", "kind"))) if corrupt else "none"
  if mode == "entry" and P.size:
    P.flat[draw(st.integers(0, P.size - 1))] = draw(st.sampled_from(SPECIAL + (-0.1, 1.1)))
  elif mode == "scale":
    P = P * draw(st.sampled_from((0.5, 1.0 + 1e-6, 2.0, 1e300)))
  elif mode == "kind":
    P = _cast(P, draw(st.sampled_from(("float32", "int", "bool"))))
  return P


def scalars(*extra):
  return st.sampled_from(SCALARS + extra)


# -----------------------------------------------------------------------------
# The contract
# -----------------------------------------------------------------------------


def attempt(fn: Callable, *args, **kw) -> Any:
  """fn(*args, **kw), or None when it raises one of the library's errors; any other exception propagates."""
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", PrecisionWarning)  # warned before the run; the result must still be sane
      out = fn(*args, **kw)
      jax.block_until_ready(out)
      return out
  except MDPTheoryError:
    return None


def _np(x) -> np.ndarray:
  return np.asarray(x, dtype=np.float64) if np.asarray(x).dtype != bool else np.asarray(x)


def assert_finite(tree: Any, *, log_fields: tuple[str, ...] = (), where: str = "") -> None:
  """Every float leaf finite; leaves whose field name is in ``log_fields`` may be −inf (never NaN or +inf)."""
  def visit(x, path):
    if x is None:
      return
    if hasattr(x, "_fields"):
      for name in x._fields:
        visit(getattr(x, name), f"{path}.{name}")
      return
    if isinstance(x, dict):
      for name, v in x.items():
        visit(v, f"{path}[{name!r}]")
      return
    if isinstance(x, (tuple, list)):
      for i, v in enumerate(x):
        visit(v, f"{path}[{i}]")
      return
    a = np.asarray(x)
    if not np.issubdtype(a.dtype, np.floating):
      return
    if path.rsplit(".", 1)[-1] in log_fields:
      assert not np.isnan(a).any() and not np.isposinf(a).any(), f"{where}{path} has NaN or +inf: {a}"
    else:
      assert np.isfinite(a).all(), f"{where}{path} is not finite: {a}"
  visit(tree, "")


def assert_simplex(pi, *, atol: float, where: str = "") -> None:
  p = _np(pi)
  assert np.isfinite(p).all(), f"{where} policy not finite: {p}"
  assert (p >= -atol).all(), f"{where} negative probability: {p.min()}"
  np.testing.assert_allclose(p.sum(-1), 1.0, rtol=0, atol=atol * p.shape[-1], err_msg=where)


def value_bound(mdp: MDP, reg_range: float = 0.0) -> float:
  """(r_max + reg_range)/(1 − γ), with a relative slack for rounding."""
  dt = np.dtype(mdp.dtype)
  g = float(mdp.gamma)
  r_max = float(np.max(np.abs(_np(mdp.r))))
  scale = (r_max + reg_range) / (1.0 - g)
  # Rounding of each backup accumulates over the horizon: a few eps per step, 1/(1 − γ) steps.
  return scale * (1.0 + 64 * float(np.finfo(dt).eps) / (1.0 - g)) + ATOL[dt]


# -----------------------------------------------------------------------------
# Constructors
# -----------------------------------------------------------------------------

dims = st.integers(1, 5)
dtypes = st.sampled_from((None, np.float32, np.float64, "float32", np.float16, np.int32, "nonsense"))


def _check_mdp(mdp: MDP, S: int, A: int) -> None:
  dt = np.dtype(mdp.dtype)
  assert dt in (np.float32, np.float64)
  P = _np(mdp.P.probs if mdp.is_sparse else mdp.P)  # (S, A, B) sparse: its rows sum to 1 as well
  assert P.shape[:2] == (S, A) and mdp.r.shape == (S, A) and mdp.mu0.shape == (S,)
  if mdp.is_sparse:
    ns = np.asarray(mdp.P.next_states)
    assert ns.shape == P.shape and ((ns >= 0) & (ns < S)).all()
  assert (P >= 0).all()
  np.testing.assert_allclose(P.sum(-1), 1.0, rtol=0, atol=S * ATOL[dt])
  assert np.isfinite(_np(mdp.r)).all()
  assert 0.0 <= float(mdp.gamma) < 1.0
  assert_simplex(mdp.mu0, atol=ATOL[dt], where="mu0")


@FUZZ
@given(data=st.data(), S=dims, A=dims)
def test_mdp_create(data, S, A):
  P = data.draw(kernels((S, A, S)))
  r = data.draw(arrays((S, A)))
  gamma = data.draw(st.sampled_from(GAMMAS))
  mu0 = data.draw(st.one_of(st.none(), kernels((S,))))
  dtype = data.draw(dtypes)
  mdp = attempt(MDP.create, P, r, gamma, mu0, dtype=dtype)
  if mdp is not None:
    _check_mdp(mdp, S, A)
  # The same data in pymdptoolbox's layout, with the reward as (S, A), (S,) or (A, S, S).
  R_ = data.draw(st.sampled_from(("sa", "s", "ass")))
  Rarr = {"sa": r, "s": np.asarray(r)[:, 0], "ass": np.broadcast_to(np.asarray(r).T[:, :, None], (A, S, S))}[R_]
  mdp = attempt(MDP.from_ass, np.swapaxes(np.asarray(P), 0, 1), Rarr, gamma, dtype=dtype)
  if mdp is not None:
    _check_mdp(mdp, S, A)


@FUZZ
@given(data=st.data(), S=dims, A=dims, B=st.integers(1, 3))
def test_mdp_from_sparse(data, S, A, B):
  ns = data.draw(hnp.arrays(np.int64, (S, A, B), elements=st.integers(-1, S)))  # -1 and S are out of range
  ns = ns.astype(data.draw(st.sampled_from((np.int64, np.int32, np.float64))))
  probs = data.draw(kernels((S, A, B)))
  r = data.draw(arrays((S, A)))
  gamma = data.draw(st.sampled_from(GAMMAS))
  mdp = attempt(MDP.from_sparse, ns, probs, r, gamma, dtype=data.draw(dtypes))
  if mdp is not None:
    _check_mdp(mdp, S, A)


@FUZZ
@given(data=st.data(), H=st.integers(1, 3), S=dims, A=dims)
def test_finite_horizon_create(data, H, S, A):
  stationary = data.draw(st.booleans())
  P = data.draw(kernels((S, A, S) if stationary else (H, S, A, S)))
  r = data.draw(arrays((S, A) if data.draw(st.booleans()) else (H, S, A)))
  horizon = data.draw(st.sampled_from((H, None, 0, -1, 2.0, "3")))
  fmdp = attempt(FiniteHorizonMDP.create, P, r, horizon=horizon, dtype=data.draw(dtypes))
  if fmdp is not None:
    Hh = fmdp.horizon
    assert fmdp.P.shape == (Hh, S, A, S) and fmdp.r.shape == (Hh, S, A)
    np.testing.assert_allclose(_np(fmdp.P).sum(-1), 1.0, rtol=0, atol=S * ATOL[np.dtype(fmdp.r.dtype)])
    assert np.isfinite(_np(fmdp.r)).all()


@FUZZ
@given(data=st.data(), X=st.integers(1, 3), n=dims)
def test_preference_game_create(data, X, n):
  U = data.draw(hnp.arrays(np.float64, (X, n, n), elements=st.floats(-0.5, 0.5)))
  P = 0.5 + (U - np.swapaxes(U, 1, 2)) / 2  # complementary, diagonal 1/2
  if data.draw(st.booleans()) and P.size:
    P.flat[data.draw(st.integers(0, P.size - 1))] = data.draw(st.sampled_from(SPECIAL + (-0.1, 1.1, 0.6)))
  P = _cast(P, data.draw(st.sampled_from(("float64", "float32"))))
  rho = data.draw(st.one_of(st.none(), kernels((X,))))
  pi_ref = data.draw(st.one_of(st.none(), kernels((X, n)), kernels((n,))))
  game = attempt(PreferenceGame.create, P if X > 1 or data.draw(st.booleans()) else P[0], rho, pi_ref,
                 dtype=data.draw(dtypes), require_full_support=data.draw(st.booleans()))
  if game is not None:
    Pm = _np(game.P)
    assert Pm.shape == (X, n, n) and ((Pm >= 0) & (Pm <= 1)).all()
    np.testing.assert_allclose(Pm + np.swapaxes(Pm, 1, 2), 1.0, rtol=0, atol=1e-6)
    assert_simplex(game.rho, atol=1e-6)
    assert_simplex(game.pi_ref, atol=1e-6)


@FUZZ
@given(data=st.data(), M=dims)
def test_bandit_create(data, M):
  p = data.draw(kernels((M,)))
  bandit = attempt(Bandit.create, p, data.draw(arrays((M,))),
                   gold=data.draw(st.one_of(st.none(), arrays((M,)))),
                   features=data.draw(st.one_of(st.none(), arrays((M, 2)))), dtype=data.draw(dtypes))
  if bandit is not None:
    assert_simplex(bandit.pi_ref, atol=1e-6)
    assert_finite(bandit)


# -----------------------------------------------------------------------------
# The algorithm fuzzes: a quick default version and a fuller one marked slow
# -----------------------------------------------------------------------------
#
# Each family has a body ``_fuzz_<family>(data, full)``. The default run draws from the float64 programs
# (plus a float32 one where it is cheap) and a subset of the static choices; ``-m slow`` runs every dtype,
# every static choice and more examples. The float32 numerics are also covered by
# tests/test_numerical_stress.py.

QUICK = settings(FUZZ, max_examples=10)
FULL = settings(FUZZ, max_examples=60)


def _dtype(data, full: bool):
  return data.draw(st.sampled_from((np.float64, np.float32) if full else (np.float64,)))


# -- regularizers: constructors, then Ω*, ∇Ω*, log ∇Ω* on random q ------------


def _bundle(kind: str, p1, p2, ref):
  if kind == "none":
    return R.none()
  if kind == "entropy":
    return R.entropy(p1)
  if kind == "kl":
    return R.kl(ref, p1)
  if kind == "kl_entropy":
    return R.kl_entropy(p1, p2, ref)
  return R.tsallis(p2, p1)


def _fuzz_regularizers(data, full: bool) -> None:
  kind = data.draw(st.sampled_from(("none", "entropy", "kl", "kl_entropy", "tsallis")))
  # (Quick: the shapes of tests/test_numerical_stress.py, whose eager programs are then compiled once.)
  A, dtype = data.draw(st.sampled_from(((3, np.float64), (3, np.float32), (1, np.float64), (1, np.float32))
                                       if full else ((3, np.float64), (3, np.float32))))
  p1 = data.draw(st.sampled_from((1e-300, 1e-8, 0.05, 1.0, 1e3, 1e30) + SCALARS))
  p2 = data.draw(st.sampled_from((0.0, 0.1, 1.0, 1.0 + 1e-12, 1.5, 5.0) + ((2.0,) if full else ()) + SCALARS))
  ref = data.draw(kernels((4, A), corrupt=False))
  reg = attempt(_bundle, kind, p1, p2, ref)
  if reg is None:
    return
  # q: finite values up to 1e300 in float64 (1e30 in float32), so that |q|/τ overflows for small τ.
  big = (1e300, -1e300, 1e30, -1e30) if dtype == np.float64 else (1e30, -1e30, 1e6)
  q = jnp.asarray(data.draw(arrays((4, A), specials=big + (1e-300, 5e-324, 0.0), lo=-10, hi=10,
                                   kinds=("float64",))).astype(dtype))
  out = attempt(lambda: (reg.smax(q), reg.argmax(q), reg.log_argmax(q)))
  if out is None:  # only a temperature whose τ log A overflows the dtype is refused here
    temp = float(p1) + (float(p2) if kind == "kl_entropy" else 0.0)
    assert temp * max(1.0, math.log(A)) > float(np.finfo(dtype).max) / 16
    return
  v, pi, log_pi = (_np(x) for x in out)
  where = f"{kind}({p1!r}, {p2!r}) on q={np.asarray(q)!r}"
  assert np.isfinite(v).all(), where
  assert_simplex(pi, atol=ATOL[np.dtype(dtype)], where=where)
  assert not np.isnan(log_pi).any() and (log_pi <= 1e-6).all(), where
  qn = _np(q)
  support = _np(ref) > 0 if kind in ("kl", "kl_entropy") and float(p1) > 0 else np.ones_like(qn, bool)
  q_max = np.max(np.where(support, qn, -np.inf), -1)
  # Ω*(q) lies between max q (entropies) or min q over the support (KL) and max q + τ log A.
  tau = {"none": 0.0, "kl": 0.0, "kl_entropy": float(p2) if kind == "kl_entropy" else 0.0}.get(kind, None)
  tau = float(p1) if tau is None else tau
  # The rounding of log Σ π_ref e^{...} (~eps, 0 exactly only in exact arithmetic) is scaled by the temperature.
  temp = float(p1) + tau if kind in ("kl", "kl_entropy") else tau
  dt = np.dtype(dtype)
  slack = RTOL[dt] * (np.maximum(1.0, np.abs(q_max)) + temp * max(1.0, math.log(A))) + ATOL[dt]
  low = q_max if kind in ("none", "entropy", "tsallis") else np.min(np.where(support, qn, np.inf), -1)
  assert (v >= low - slack).all() and (v <= q_max + tau * math.log(A) + slack).all(), where


@QUICK
@given(data=st.data())
def test_regularizers_smax_and_greedy(data):
  _fuzz_regularizers(data, full=False)


@pytest.mark.slow
@FULL
@given(data=st.data())
def test_regularizers_smax_and_greedy_full(data):
  _fuzz_regularizers(data, full=True)


# -- solvers and exact evaluation (fixed shape; values, γ and regularizer drawn) --

S0, A0 = 3, 2
TAU = 0.05
#: One bundle object per kind, so that the jitted solvers compile once per kind and dtype.
REGS = {"none": None, "entropy": R.entropy(TAU), "tsallis": R.tsallis(1.5, TAU)}


@st.composite
def mdps(draw, dtype, S: int = S0, A: int = A0) -> MDP | None:
  """A valid MDP of shape (S, A) with extreme (finite) rewards and discounts, or None if create refused it."""
  P = draw(kernels((S, A, S), corrupt=False))
  scale = draw(st.sampled_from((1.0, 1e6, 1e30, 1e300, 1e-300)))
  with np.errstate(over="ignore"):
    r = draw(arrays((S, A), specials=FINITE_SPECIAL, kinds=("float64",))) * scale
  gamma = draw(st.sampled_from((0.0, 0.5, 0.9, 0.99, 0.9999, 1.0 - 1e-12)))
  return attempt(MDP.create, P, r, gamma, dtype=dtype)


def _fuzz_solvers(data, full: bool) -> None:
  mdp = data.draw(mdps(_dtype(data, full)))
  if mdp is None:
    return
  kind = data.draw(st.sampled_from(tuple(REGS) if full else ("entropy",)))
  reg = REGS[kind]
  dt = np.dtype(mdp.dtype)
  bound = value_bound(mdp, 0.0 if reg is None else TAU * math.log(A0))
  for name, fn in (("value_iteration", lambda: solvers.value_iteration(mdp, reg, num_iters=30)),
                   ("optimum", lambda: solvers.optimum(mdp, reg, num_iters=30))):
    res = attempt(fn)
    if res is None:
      continue
    assert_finite(res, where=name)
    assert (np.abs(_np(res.v)) <= bound).all(), f"{name}: |v| = {np.abs(_np(res.v)).max()} > {bound}"
    assert_simplex(res.pi, atol=ATOL[dt], where=name)
  values = attempt(ops.evaluate, mdp, data.draw(kernels((S0, A0))), reg)
  if values is not None:
    assert_finite(values, where="evaluate")
    # The exact solve is accurate to cond(I − γ P_π) · eps ~ eps/(1 − γ) only.
    slack = 1.0 + 8 * float(np.finfo(dt).eps) / (1.0 - float(mdp.gamma))
    assert (np.abs(_np(values.v)) <= bound * slack).all()


@QUICK
@given(data=st.data())
def test_solvers(data):
  _fuzz_solvers(data, full=False)


@pytest.mark.slow
@FULL
@given(data=st.data())
def test_solvers_full(data):
  _fuzz_solvers(data, full=True)


# -- approximate DP: MD-MPI, DA-MPI, M-VI, MVI(q), Tsallis-KL MD-VI -----------

K = 6
HYPER = (0.0, 1e-8, 0.03, 1.0, 1e3)


def _fuzz_md_mpi(data, full: bool) -> None:
  mdp = data.draw(mdps(_dtype(data, full)))
  lam, tau = data.draw(st.sampled_from(HYPER)), data.draw(st.sampled_from(HYPER))
  fn = data.draw(st.sampled_from((mdmpi.md_mpi, mdmpi.da_mpi)))
  if mdp is None:
    return
  res = attempt(fn, mdp, lam=lam, tau=tau, num_iters=K)
  if res is None:  # da_mpi with lam = tau = 0, or a value scale that overflows the dtype
    return
  dt = np.dtype(mdp.dtype)
  tr = res.trace
  # kl_max is +inf when a hard greedy policy switches action; the action gap is +inf with one action.
  assert_finite(res._replace(trace=tr._replace(kl_max=None, action_gap_mean=None)), log_fields=("log_pi",),
                where=fn.__name__)
  kl_max = _np(tr.kl_max)
  assert not np.isnan(kl_max).any() and (kl_max >= -ATOL[dt]).all()
  if lam + tau > 0:
    assert np.isfinite(kl_max).all()
  assert_simplex(np.exp(_np(res.log_pi)), atol=ATOL[dt])
  assert (_np(tr.q_sup) <= value_bound(mdp, tau * math.log(A0))).all()


@QUICK
@given(data=st.data())
def test_md_mpi_and_da_mpi(data):
  _fuzz_md_mpi(data, full=False)


@pytest.mark.slow
@FULL
@given(data=st.data())
def test_md_mpi_and_da_mpi_full(data):
  _fuzz_md_mpi(data, full=True)


def _fuzz_mvi(data, full: bool) -> None:
  mdp = data.draw(mdps(_dtype(data, full)))
  alpha = data.draw(st.sampled_from((0.0, 0.5, 0.9, 1.0) + SCALARS))
  tau = data.draw(st.sampled_from(HYPER))
  clip_min = data.draw(st.sampled_from((None, -1.0, 0.0, -1e300) if full else (None, 0.5, "x")))
  if mdp is None:
    return
  res = attempt(munchausen.mvi, mdp, alpha=alpha, tau=tau, num_iters=K, clip_min=clip_min)
  if res is None:
    return
  assert_finite(res, log_fields=("log_pi",), where="mvi")
  assert_simplex(np.exp(_np(res.log_pi)), atol=ATOL[np.dtype(mdp.dtype)])
  # The bonus is <= 0 and τ lse(q/τ) <= max q + τ log A, so q_k <= (r_max + τ log A)/(1 − γ), clipped or not.
  tau_log_a = float(tau) * math.log(A0)
  assert (_np(res.q) <= value_bound(mdp, tau_log_a)).all()
  if clip_min is None:
    # q'_k = q_k − ατ ln π_k is the MD-VI(ατ, (1 − α)τ) iterate from q'_0 = ατ ln A (THEORY.md §3.3).
    bound = value_bound(mdp, (1.0 - float(alpha)) * tau_log_a) + float(alpha) * tau_log_a
    assert (np.abs(_np(res.q_prime)) <= bound).all()


@QUICK
@given(data=st.data())
def test_mvi(data):
  _fuzz_mvi(data, full=False)


@pytest.mark.slow
@FULL
@given(data=st.data())
def test_mvi_full(data):
  _fuzz_mvi(data, full=True)


def _fuzz_tsallis(data, full: bool) -> None:
  mdp = data.draw(mdps(_dtype(data, full)))
  q = data.draw(st.sampled_from((1.0 + 1e-12, 1.5, 5.0, 0.5, NAN, "2") + ((1.0, 2.0) if full else ())))
  alpha = data.draw(st.sampled_from((0.0, 0.9, 1.0)))
  tau = data.draw(st.sampled_from(HYPER))
  bonus = data.draw(st.sampled_from(("support", "gap", "policy_gap", "log", "bogus") if full else ("support", "bogus")))
  kl_mdvi = full and data.draw(st.booleans())
  if mdp is None:
    return
  ref = np.ones((S0, A0))  # an explicit reference: the traces' reference optimum is tested elsewhere
  if kl_mdvi:
    res = attempt(tsallis_mvi.tsallis_kl_mdvi, mdp, lam=tau, q=q, num_iters=K, tau_prime=alpha * tau,
                  reference=ref)
  else:
    res = attempt(tsallis_mvi.mvi_q, mdp, alpha=alpha, tau=tau, q=q, num_iters=K, bonus=bonus,
                  clip_min=-1.0 if bonus == "log" else None, reference=ref)
  if res is None:
    return
  assert_finite(res, where="tsallis_kl_mdvi" if kl_mdvi else "mvi_q")
  assert_simplex(res.pi, atol=ATOL[np.dtype(mdp.dtype)])
  assert (_np(res.trace.divergence_max if kl_mdvi else res.trace.entropy_mean) >= -ATOL[np.dtype(mdp.dtype)]).all()


@QUICK
@given(data=st.data())
def test_tsallis_entry_points(data):
  _fuzz_tsallis(data, full=False)


@pytest.mark.slow
@FULL
@given(data=st.data())
def test_tsallis_entry_points_full(data):
  _fuzz_tsallis(data, full=True)


# -- games: Nash-MP and the baselines; exploitability and KL ------------------

X0, N0 = 2, 3


@st.composite
def preference_games(draw) -> PreferenceGame | None:
  U = draw(hnp.arrays(np.float64, (X0, N0, N0), elements=st.sampled_from((-0.5, -0.25, 0.0, 1e-300, 0.25, 0.5))))
  P = 0.5 + (U - np.swapaxes(U, 1, 2)) / 2
  return attempt(PreferenceGame.create, P, draw(kernels((X0,), corrupt=False)),
                 draw(kernels((X0, N0), corrupt=False)), require_full_support=False)


ALGOS = ("nash_mp", "nash_mp_approx", "nash_md", "self_play_mwu", "regularized_omd", "mmd", "extragradient",
         "proximal_point")


def _fuzz_nash(data, full: bool) -> None:
  game = data.draw(preference_games())
  algo = data.draw(st.sampled_from(ALGOS if full else ("nash_mp", "self_play_mwu")))
  beta = data.draw(st.sampled_from((1e-4, 0.1, 0.5, 1e3) + SCALARS))
  eta = data.draw(st.sampled_from((None, 1e-3, 0.2, 1.0, 1e3, -1.0, NAN)))
  pi0 = data.draw(st.one_of(st.none(), kernels((X0, N0))))
  if game is None:
    return
  kw = dict(num_iters=4, pi0=pi0)
  if algo == "nash_mp_approx":
    kw.update(num_samples=4, key=0, inner_steps=2)
  if algo == "proximal_point":
    kw.update(inner_steps=3)
  if algo == "nash_md" and eta is None:
    kw.update(schedule="harmonic")
  if algo == "self_play_mwu":
    kw.update(eta=0.1 if eta is None else eta)
  else:
    kw.update(beta=beta)
    if eta is not None or algo in ("regularized_omd", "mmd", "extragradient"):
      kw.update(eta=0.1 if eta is None else eta)
  res = attempt(getattr(nash, algo), game, **kw)
  if res is None:
    return
  # (KL(π_k‖π_ref) is +inf for self-play MWU, which may leave the support of a π_ref with zeros.)
  assert_finite((res.pi_avg, res.trace.gap, res.trace.win_rate), where=algo)
  assert not np.isnan(_np(res.trace.kl_ref)).any()
  if algo != "self_play_mwu":
    assert np.isfinite(_np(res.trace.kl_ref)).all()
  assert not np.isnan(_np(res.log_pi)).any() and not np.isposinf(_np(res.log_pi)).any()
  assert_simplex(np.exp(_np(res.log_pi)), atol=1e-9, where=algo)
  assert (_np(res.trace.gap) >= -1e-9).all(), f"{algo}: exploitability {np.min(_np(res.trace.gap))} < 0"
  assert (_np(res.trace.kl_ref) >= -1e-9).all()
  assert ((_np(res.trace.win_rate) >= -1e-9) & (_np(res.trace.win_rate) <= 1 + 1e-9)).all()


@QUICK
@given(data=st.data())
def test_nash_algorithms(data):
  _fuzz_nash(data, full=False)


@pytest.mark.slow
@FULL
@given(data=st.data())
def test_nash_algorithms_full(data):
  _fuzz_nash(data, full=True)


@settings(FUZZ, max_examples=20)
@given(game=preference_games(), pi=kernels((X0, N0), corrupt=False), pi2=kernels((X0, N0), corrupt=False),
       beta=st.sampled_from((1e-4, 0.01, 0.5, 10.0)))
def test_exploitability_and_kl_are_non_negative(game, pi, pi2, beta):
  if game is None:
    return
  pi, pi2 = jnp.asarray(pi), jnp.asarray(pi2)
  gap = attempt(games.exploitability, game, pi, beta=beta)  # SupportMismatchError where pi leaves supp pi_ref
  assert gap is None or float(gap) >= -1e-12
  # (XLA flushes subnormal probabilities to 0, so a subnormal pi_ref entry counts as a zero.)
  tiny = np.finfo(np.float64).tiny
  assert gap is not None or bool(((_np(pi) > 0) & (_np(game.pi_ref) < tiny)).any())
  for a, b in ((pi, pi2), (pi, pi), (pi, game.pi_ref)):
    kl = attempt(games.kl, game, a, b)  # SupportMismatchError where a leaves the support of b
    assert kl is None or float(kl) >= -1e-12
    assert kl is not None or bool(((_np(a) > 0) & (_np(b) < tiny)).any())


# -----------------------------------------------------------------------------
# Alignment closed forms
# -----------------------------------------------------------------------------


@FUZZ
@given(data=st.data(), M=st.sampled_from((1, 4)))
def test_posterior_and_best_of_n(data, M):
  p = data.draw(kernels((M,)))
  r = data.draw(arrays((M,), lo=-5, hi=5))
  beta = data.draw(st.sampled_from((1e-8, 1e-4, 0.1, 0.5, 1e3) + SCALARS))
  post = attempt(alignment.posterior, p, r, beta=beta)
  if post is not None:
    atol = ATOL[np.dtype(post.log_pi.dtype)]
    assert_finite(post, log_fields=("log_pi",), where="posterior")
    assert_simplex(np.exp(_np(post.log_pi)), atol=atol)
    assert float(post.kl) >= -atol
    on = _np(p) > 0
    rr = _np(r)[on] if on.any() else _np(r)
    slack = RTOL[np.dtype(post.log_pi.dtype)] * np.abs(rr).max() + atol
    assert rr.min() - slack <= float(post.expected_reward) <= rr.max() + slack
  N = data.draw(st.sampled_from((1, 2, 16, 1e300, 0.5, 0, NAN, INF, True, "4")))
  law = attempt(alignment.bon_law, p, r, num_samples=N)
  if law is not None:
    atol = ATOL[np.dtype(law.log_pi.dtype)]
    assert_finite(law, log_fields=("log_pi",), where="bon_law")
    assert_simplex(np.exp(_np(law.log_pi)), atol=atol)
    n = float(N)
    assert -atol <= float(law.kl) <= float(alignment.bon_kl_bound(n)) + atol
    assert float(law.win_rate) <= n / (n + 1.0) + atol


# -----------------------------------------------------------------------------
# Demonstrations: behaviour cloning and the KL-regularized solve
# -----------------------------------------------------------------------------

H0 = 2


@settings(QUICK, max_examples=6)
@given(data=st.data(), N=st.integers(1, 3))
def test_behavior_cloning_and_regularized_solution(data, N):
  states = data.draw(arrays((N, H0), lo=-1, hi=S0, specials=(NAN, 1.5, 1e300), kinds=("int", "float64")))
  actions = data.draw(arrays((N, H0), lo=-1, hi=A0, specials=(NAN, -1, A0), kinds=("int", "float64")))
  if states.dtype.kind == "f":
    states = np.where(np.isfinite(states) & (np.abs(states) < 10), np.round(states), states)
  demos = attempt(D.Demonstrations.create, states, actions, num_states=S0, num_actions=A0)
  fmdp = attempt(FiniteHorizonMDP.create, data.draw(kernels((S0, A0, S0), corrupt=False)),
                 data.draw(arrays((S0, A0), specials=FINITE_SPECIAL, kinds=("float64",))), horizon=H0)
  if demos is None or fmdp is None:
    return
  kappa = data.draw(st.sampled_from((0.0, 1.0, 1e-300, 1e300, -1.0, NAN)))
  pi_bc = attempt(D.behavior_cloning, demos, S0, A0, kappa=kappa)
  if pi_bc is None:
    return
  assert_simplex(pi_bc, atol=1e-9, where="behavior_cloning")
  prior = pi_bc if data.draw(st.booleans()) else data.draw(kernels((H0, S0, A0)))
  lam = data.draw(st.sampled_from((1e-8, 0.1, 1e3) + SCALARS))
  sol = attempt(D.regularized_solution, fmdp, prior, lam=lam)
  if sol is None:
    return
  assert_finite(sol, where="regularized_solution")
  assert_simplex(sol.pi, atol=1e-9)
  r_max = float(np.max(np.abs(_np(fmdp.r))))
  assert (np.abs(_np(sol.v)) <= H0 * r_max * (1 + 1e-9) + 1e-9).all()
