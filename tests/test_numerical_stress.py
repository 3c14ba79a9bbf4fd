"""Numerical stress at the extremes, in float32 and float64, against independent numpy references.

Temperatures τ from 1e-8 to 1e3 (soft max and greedy, entropy VI, MD-VI, M-VI), discounts up to 0.9999,
rewards up to 1e6 in magnitude, Tsallis indices q from 1 + 1e-12 to 5, KL weights β from 1e-4 to 0.5
(Nash-MP, the KL-regularized bandit optimum) and near-deterministic policies in the Munchausen terms
(τ ln π with π ~ 1e-300 and below, log-policies near −inf, clip_min). Every result and trace must be free
of NaN and inf, and match a float64 numpy reference (written independently: plain loops, max-shifted
log-sum-exp) within a tolerance stated per dtype. Where float32 cannot deliver the accuracy (γ = 0.9999, a
tolerance below the spacing of the values) the library warns before the run: tested here, together with
its silence in float64 and in benign float32 settings.

Sweeps over τ, λ, α and β are one ``jax.vmap`` each (one compilation per dtype).
"""

from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mdptheory import alignment
from mdptheory import regularizers as R
from mdptheory import solvers
from mdptheory import validate as V
from mdptheory.algorithms import mdmpi, munchausen, nash, tsallis_mvi
from mdptheory.errors import NonFiniteError, ParameterError, PrecisionWarning
from mdptheory.qexp import tsallis_regularizer
from mdptheory.types import MDP, PreferenceGame

DTYPES = [np.float64, np.float32]
EPS = {np.float64: float(np.finfo(np.float64).eps), np.float32: float(np.finfo(np.float32).eps)}
TAUS = (1e-8, 1e-6, 1e-4, 1e-2, 1.0, 1e2, 1e3)
GAMMAS = (0.5, 0.9, 0.99, 0.9999)
R_MAX = 1e6
S, A = 3, 2
K = 6  # iterations of the approximate-DP runs (the same static budget as tests/test_fuzz.py)


def _problem(dtype, r_max: float = R_MAX, gamma: float = 0.99) -> MDP:
  """A fixed (3, 2) MDP with rewards of magnitude up to r_max, including ties and tiny gaps."""
  P = np.array([[[0.7, 0.2, 0.1], [0.0, 0.0, 1.0]],
                [[1.0 / 3, 1.0 / 3, 1.0 / 3], [0.5, 0.5, 0.0]],
                [[0.0, 1.0, 0.0], [0.05, 0.05, 0.9]]])
  r = r_max * np.array([[1.0, 1.0 - 1e-6], [-1.0, 0.25], [0.5, 0.5]])
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", PrecisionWarning)
    return MDP.create(P, r, gamma, dtype=dtype)


def _np64(mdp: MDP) -> tuple[np.ndarray, np.ndarray]:
  """The MDP's arrays as the library sees them (after rounding to its dtype), in float64."""
  return np.asarray(mdp.P, np.float64), np.asarray(mdp.r, np.float64)


def _to_numpy(tree):
  """A result pytree as numpy arrays: indexing it then compiles nothing."""
  return jax.tree_util.tree_map(np.asarray, tree)


def _assert_finite(tree, *, allow_neg_inf: tuple[str, ...] = (), where: str = "") -> None:
  """No NaN or inf in any float leaf; fields named in ``allow_neg_inf`` may be −inf (log-probabilities)."""
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  for path, leaf in leaves:
    a = np.asarray(leaf)
    if not np.issubdtype(a.dtype, np.floating):
      continue
    name = jax.tree_util.keystr(path)
    if any(name.endswith(f".{f}") or name.endswith(f"'{f}']") for f in allow_neg_inf):
      assert not np.isnan(a).any() and not np.isposinf(a).any(), f"{where}{name}: NaN or +inf"
    else:
      assert np.isfinite(a).all(), f"{where}{name} is not finite: {a}"


# -----------------------------------------------------------------------------
# numpy float64 references
# -----------------------------------------------------------------------------


def np_lse(x: np.ndarray) -> np.ndarray:
  m = np.max(x, axis=-1, keepdims=True)
  m = np.where(np.isfinite(m), m, 0.0)
  with np.errstate(divide="ignore"):
    return (m + np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True)))[..., 0]


def np_soft(q: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray]:
  """(τ lse(q/τ), softmax(q/τ)), max-shifted before the division."""
  m = q.max(-1, keepdims=True)
  z = (q - m) / tau
  e = np.exp(z)
  return m[..., 0] + tau * np.log(e.sum(-1)), e / e.sum(-1, keepdims=True)


def np_value_iteration(P, r, gamma, tau, num_iters):
  v = np.zeros(r.shape[0])
  for _ in range(num_iters):
    v = np_soft(r + gamma * P @ v, tau)[0] if tau > 0 else (r + gamma * P @ v).max(-1)
  return v


def np_soft_optimum(P, r, gamma, tau, num_iters=100):
  """Soft policy iteration (exact evaluation with τ H(π), then softmax) until the policy is stable."""
  S_, A_ = r.shape
  pi = np.full((S_, A_), 1.0 / A_)
  for _ in range(num_iters):
    with np.errstate(divide="ignore", invalid="ignore"):
      ent = -np.sum(np.where(pi > 0, pi * np.log(np.where(pi > 0, pi, 1.0)), 0.0), -1)
    v = np.linalg.solve(np.eye(S_) - gamma * np.einsum("sat,sa->st", P, pi), (pi * r).sum(-1) + tau * ent)
    q = r + gamma * P @ v
    new = np_soft(q, tau)[1]
    if np.array_equal(new, pi):
      break
    pi = new
  return v


def np_md_vi(P, r, gamma, lam, tau, num_iters):
  """MD-VI(λ, τ) in log space: ln π_{k+1} = log_softmax(β ln π_k + q_k/(λ + τ)), q_{k+1} = r + γ P v."""
  S_, A_ = r.shape
  q, log_pi = np.zeros((S_, A_)), np.full((S_, A_), -math.log(A_))
  temp, beta = lam + tau, lam / (lam + tau)
  for _ in range(num_iters):
    m = q.max(-1, keepdims=True)
    logits = beta * log_pi + (q - m) / temp
    lse = np_lse(logits)
    log_pi, v = logits - lse[:, None], m[:, 0] + temp * lse
    q = r + gamma * P @ v
  return q


def np_mvi(P, r, gamma, alpha, tau, num_iters, q0=None, clip_min=None):
  """M-VI(α, τ): q_{k+1} = r + α clip(q_k − v_k, l0, 0) + γ P v_k with v_k = τ lse(q_k/τ)."""
  q = np.zeros_like(r) if q0 is None else q0.astype(np.float64)
  for _ in range(num_iters):
    v = np_soft(q, tau)[0]
    bonus = q - v[:, None]
    if clip_min is not None:
      bonus = np.clip(bonus, clip_min, 0.0)
    q = r + alpha * bonus + gamma * P @ v
  return q


def np_tsallis_greedy(z: np.ndarray, q: float) -> np.ndarray:
  """exp_q(z − ψ) with Σ = 1, by plain bisection on ψ with the power formula (q > 1 away from 1)."""
  def mass(psi):
    base = np.maximum(0.0, 1.0 + (q - 1.0) * (z - psi[:, None]))
    return base ** (1.0 / (q - 1.0))
  lo, hi = z.max(-1) - 1.0, z.max(-1) + 1.0 / (q - 1.0)
  for _ in range(200):
    mid = 0.5 * (lo + hi)
    above = mass(mid).sum(-1) > 1.0
    lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
  pi = mass(0.5 * (lo + hi))
  return pi / pi.sum(-1, keepdims=True)


def _scale(mdp: MDP, reg_range: float = 0.0) -> float:
  """The value scale (max|r| + reg_range)/(1 − γ) of the problem, for tolerances."""
  _, r = _np64(mdp)
  return (np.abs(r).max() + reg_range) / (1.0 - float(mdp.gamma))


# -----------------------------------------------------------------------------
# The soft max and the greedy step across temperatures
# -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_soft_max_and_greedy_across_temperatures(dtype):
  # Rows with gaps of 2e6, 1 and 1e-3, ties, and values at 1e6 (r/τ = 1e14 at τ = 1e-8).
  q = jnp.asarray([[R_MAX, R_MAX - 1.0, -R_MAX], [0.0, 1e-3, -1e-3], [5.0, 5.0, 5.0], [-R_MAX, 0.0, 3.0]], dtype)
  qn = np.asarray(q, np.float64)
  eps = EPS[dtype]
  for tau in TAUS:
    reg = R.entropy(tau)
    v, pi, log_pi = (np.asarray(x, np.float64) for x in (reg.smax(q), reg.argmax(q), reg.log_argmax(q)))
    assert np.isfinite(v).all() and np.isfinite(pi).all() and np.isfinite(log_pi).all(), tau
    v_ref, pi_ref = np_soft(qn, tau)
    # Ω*(q) = m + τ lse((q − m)/τ): the rounding of m dominates (a few ulps of |q|) plus that of the τ term.
    for row in range(len(qn)):
      np.testing.assert_allclose(v[row], v_ref[row], rtol=0, atol=4 * eps * (np.abs(qn[row]).max() + tau * math.log(3)),
                                 err_msg=f"tau={tau}, row {row}")
    np.testing.assert_allclose(pi, pi_ref, rtol=0, atol=8 * eps, err_msg=f"tau={tau}")
    np.testing.assert_allclose(pi.sum(-1), 1.0, rtol=0, atol=4 * eps)
    # The hard max is the limit: max q <= Ω*(q) <= max q + τ log A.
    q_max = qn.max(-1)
    slack = 4 * eps * (np.abs(q_max) + tau * math.log(3))
    assert (v >= q_max - slack).all() and (v <= q_max + tau * math.log(3) + slack).all(), tau
    # log π exactly as (q − Ω*(q))/τ, never log(softmax): finite down to gaps of 2e6/1e-8 = 2e14.
    np.testing.assert_allclose(log_pi, (qn - v_ref[:, None]) / tau, rtol=8 * eps,
                               atol=4 * eps * np.abs(qn).max() / tau + 8 * eps, err_msg=f"tau={tau}")
  # τ = 1e-8: the greedy policy is the argmax, ties split evenly (row 3), within 1e-300.
  pi = np.asarray(R.entropy(1e-8).argmax(q), np.float64)
  np.testing.assert_allclose(pi, [[1, 0, 0], [0, 1, 0], [1 / 3, 1 / 3, 1 / 3], [0, 0, 1]], rtol=0, atol=8 * eps)


def test_kl_bundles_with_tiny_weights_and_a_float64_reference():
  """kl / kl_entropy at λ down to 1e-8 on q ~ 1e6, with a float64 π_ref on a float32 problem: no overflow of
  q/λ, results in q's dtype, and the soft max between the reference average and the max (float64 q: in
  tests/test_fuzz.py)."""
  dtype = np.float32
  q = jnp.asarray([[R_MAX, R_MAX - 1.0, -R_MAX], [0.0, 1e-3, -1e-3], [5.0, 5.0, 5.0], [-R_MAX, 0.0, 3.0]], dtype)
  ref = np.array([[0.5, 0.0, 0.5], [0.2, 0.3, 0.5], [0.0, 0.0, 1.0], [1 / 3, 1 / 3, 1 / 3]])  # zeros: π stays off
  for lam in (1e-8, 1e-2, 1e3):
    for reg in (R.kl(ref, lam), R.kl_entropy(lam, 1e-3, ref)):
      v, pi = reg.smax(q), reg.argmax(q)
      assert v.dtype == dtype and pi.dtype == dtype
      v, pi = np.asarray(v, np.float64), np.asarray(pi, np.float64)
      assert np.isfinite(v).all() and np.isfinite(pi).all(), lam
      np.testing.assert_allclose(pi.sum(-1), 1.0, rtol=0, atol=8 * EPS[dtype])
      if reg.name == "kl":
        assert pi[0, 1] == 0.0  # supp π ⊆ supp π_ref
      # Between the reference average and the max over the reference's support (+ τ log A).
      qn = np.asarray(q, np.float64)
      on = ref > 0 if reg.name == "kl" else np.ones_like(ref, bool)
      top = np.where(on, qn, -np.inf).max(-1)
      avg = (ref * qn).sum(-1)
      slack = 8 * EPS[dtype] * np.abs(qn).max(-1) + 1e-3 * math.log(3)
      assert (v <= top + slack).all() and (v >= avg - slack).all(), (reg.name, lam)


# -----------------------------------------------------------------------------
# Entropy VI and the regularized optimum: τ from 1e-8 to 1e3, γ up to 0.9999, |r| up to 1e6
# -----------------------------------------------------------------------------


def _grid(*axes):
  mesh = np.meshgrid(*axes, indexing="ij")
  return [m.ravel() for m in mesh]


@pytest.mark.parametrize("dtype", DTYPES)
def test_entropy_value_iteration_across_temperatures_and_discounts(dtype):
  mdp = _problem(dtype)
  P, r = _np64(mdp)
  G, T = _grid(np.asarray(GAMMAS), np.asarray(TAUS))
  num_iters = 30

  def run(g, t):
    return solvers.value_iteration(mdp._replace(gamma=g), R.entropy(t), num_iters=num_iters)

  res = _to_numpy(jax.vmap(run)(np.asarray(G, dtype), np.asarray(T, dtype)))
  _assert_finite(res, where="value_iteration")
  for i, (g, t) in enumerate(zip(G, T)):
    g32, t32 = float(np.asarray(g, dtype)), float(np.asarray(t, dtype))
    v_ref = np_value_iteration(P, r, g32, t32, num_iters)
    scale = (np.abs(r).max() + t32 * math.log(A)) * min(num_iters, 1.0 / (1.0 - g32))
    np.testing.assert_allclose(np.asarray(res.v[i], np.float64), v_ref, rtol=0,
                               atol=8 * num_iters * EPS[dtype] * scale, err_msg=f"gamma={g}, tau={t}")
    np.testing.assert_allclose(np.asarray(res.pi[i], np.float64).sum(-1), 1.0, rtol=0, atol=8 * EPS[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_regularized_optimum_up_to_gamma_0_9999(dtype):
  """Soft policy iteration (solvers.optimum) against numpy soft PI; float32 is as good as eps/(1 − γ) allows."""
  mdp = _problem(dtype)
  P, r = _np64(mdp)
  G, T = _grid(np.asarray(GAMMAS), np.asarray((1e-8, 1e-2, 1.0, 1e3)))

  def run(g, t):
    return solvers.optimum(mdp._replace(gamma=g), R.entropy(t), num_iters=30)

  res = _to_numpy(jax.vmap(run)(np.asarray(G, dtype), np.asarray(T, dtype)))
  _assert_finite(res, where="optimum")
  for i, (g, t) in enumerate(zip(G, T)):
    g32, t32 = float(np.asarray(g, dtype)), float(np.asarray(t, dtype))
    v_ref = np_soft_optimum(P, r, g32, t32)
    scale = (np.abs(r).max() + t32 * math.log(A)) / (1.0 - g32)
    err = np.abs(np.asarray(res.v[i], np.float64) - v_ref).max()
    # The certificate holds (up to the rounding of the values themselves) ...
    assert err <= float(res.error_bound[i]) + 4 * EPS[dtype] * scale, (g, t, err, float(res.error_bound[i]))
    # ... and where the library does not warn (eps/(1 − γ) <= 1e-3) the error is a few eps/(1 − γ): the solve's
    # rounding amplified by cond(I − γ P_π) ~ 1/(1 − γ). At γ = 0.9999 float32 is off by up to ~15% (warned).
    if EPS[dtype] / (1.0 - g32) <= 1e-3:
      assert err <= 4 * EPS[dtype] / (1.0 - g32) * scale, (g, t, err / scale)


# -----------------------------------------------------------------------------
# MD-VI and M-VI: tiny and huge temperatures, near-deterministic policies
# -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_md_vi_across_kl_and_entropy_weights(dtype):
  mdp = _problem(dtype)
  P, r = _np64(mdp)
  L, T = _grid(np.asarray((1e-8, 1e-3, 1.0, 1e3)), np.asarray((1e-8, 1e-3, 1.0, 1e3)))
  res = _to_numpy(jax.vmap(lambda lam, tau: mdmpi.md_mpi(mdp, lam=lam, tau=tau, num_iters=K))(
      np.asarray(L, dtype), np.asarray(T, dtype)))
  _assert_finite(res, allow_neg_inf=("log_pi",), where="md_mpi")
  g = float(mdp.gamma)
  for i, (lam, tau) in enumerate(zip(L, T)):
    l32, t32 = float(np.asarray(lam, dtype)), float(np.asarray(tau, dtype))
    q_ref = np_md_vi(P, r, g, l32, t32, K)
    scale = (np.abs(r).max() + t32 * math.log(A)) * K
    np.testing.assert_allclose(np.asarray(res.q[i], np.float64), q_ref, rtol=0, atol=16 * K * EPS[dtype] * scale,
                               err_msg=f"lam={lam}, tau={tau}")
    np.testing.assert_allclose(np.exp(np.asarray(res.log_pi[i], np.float64)).sum(-1), 1.0, rtol=0,
                               atol=8 * EPS[dtype])


def test_md_greedy_from_log_policies_near_minus_infinity():
  """ln π_k with −inf (off the support), −1e300 and −1e14 entries: finite values, the support kept."""
  log_pi = jnp.asarray([[0.0, -jnp.inf, -1e300], [-1e14, 0.0, -jnp.inf]])
  q = jnp.asarray([[1.0, 1e6, 2.0], [R_MAX, -R_MAX, 0.0]])
  for lam, tau in ((1e-8, 0.0), (1.0, 1e-8), (1e3, 1e3), (0.0, 1e-8)):
    lp, v = mdmpi.md_greedy(log_pi, q, lam=lam, tau=tau)
    lp, v = np.asarray(lp), np.asarray(v)
    assert np.isfinite(v).all() and not np.isnan(lp).any() and not np.isposinf(lp).any(), (lam, tau)
    np.testing.assert_allclose(np.exp(lp).sum(-1), 1.0, rtol=0, atol=1e-12)
    if lam > 0:  # zeros of π_k stay zeros (β > 0)
      assert np.isneginf(lp[0, 1]) and np.isneginf(lp[1, 2])
    # v = max_π <π, q> − λ KL(π‖π_k) + τ H(π) lies in [<π_new, q>, max over the support of q + τ log A].
    on = np.isfinite(np.asarray(log_pi)) if lam > 0 else np.ones_like(lp, bool)
    assert (v <= np.where(on, np.asarray(q), -np.inf).max(-1) + tau * math.log(3) + 1e-9 * R_MAX).all()


ALPHAS = (0.0, 0.5, 0.9, 0.99, 1.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_munchausen_vi_across_temperatures_and_near_deterministic_policies(dtype):
  """M-VI over α ∈ [0, 1] × τ ∈ [1e-8, 1e3], unclipped (l0 = −3e38, never binding) and clipped at l0 = −1,
  from q_0 = 0 and from q_0 with gaps that make π_1 ~ 1e-300 (τ ln π = −690.8 at τ = 1), ~exp(−6.9e3) and
  exp(−1e9):
  the Munchausen bonus τ ln π is q − τ lse(q/τ), never computed from π, so it stays finite. One vmapped call."""
  mdp = _problem(dtype)
  P, r = _np64(mdp)
  starts = {"zero": (None, np.zeros((S, A))),
            "pi~1e-300": (1.0, np.array([[0.0, -690.8], [-690.8, 0.0], [0.0, 0.0]])),
            "pi~exp(-6.9e3)": (1e-3, np.array([[0.0, -6.9], [-6.9, 0.0], [0.0, 0.0]])),
            "pi~exp(-1e9)": (1e-3, np.array([[0.0, -1e6], [-1e6, 0.0], [0.0, 0.0]]))}
  rows = []  # (alpha, tau, clip_min, q0, label)
  for clip_min in (-3e38, -1.0):
    rows += [(al, t, clip_min, starts["zero"][1], "zero") for al in ALPHAS for t in TAUS]
    rows += [(0.9, t, clip_min, q0, label) for label, (t, q0) in starts.items() if t is not None]
  Al, T, C = (np.asarray([row[i] for row in rows], dtype) for i in range(3))
  Q0 = np.asarray(np.stack([row[3] for row in rows]), dtype)
  reference = np.broadcast_to(np.asarray(r, dtype), (len(rows), S, A))  # any finite reference [S, A]

  def run(alpha, tau, clip_min, q0, ref):
    return munchausen.mvi(mdp, alpha=alpha, tau=tau, num_iters=K, clip_min=clip_min, q0=q0, reference=ref,
                          record_iterates=True)

  res = _to_numpy(jax.vmap(run)(Al, T, C, Q0, reference))
  # ln π may be −inf where π is below the float range (τ = 1e-8 with gaps of 1e6).
  _assert_finite(res, allow_neg_inf=("log_pi",), where="mvi")
  g = float(mdp.gamma)
  for i, (alpha, tau, clip_min, q0, label) in enumerate(rows):
    a32, t32, c32 = (float(np.asarray(x, dtype)) for x in (alpha, tau, clip_min))
    q0_32 = np.asarray(Q0[i], np.float64)
    q_ref = np_mvi(P, r, g, a32, t32, K, q0=q0_32, clip_min=c32)
    scale = (np.abs(r).max() + t32 * math.log(A) + np.abs(q0_32).max()) * K * (1 + 2 * a32)
    np.testing.assert_allclose(np.asarray(res.q[i], np.float64), q_ref, rtol=0, atol=16 * K * EPS[dtype] * scale,
                               err_msg=f"alpha={alpha}, tau={tau}, clip_min={clip_min}, q0: {label}")
    # ln π_1 = (q_0 − τ lse(q_0/τ))/τ from the log-sum-exp form: −gap/τ, however small π_1 is.
    lp1 = np.asarray(res.trace.log_pi[i, 0], np.float64)
    d = (q0_32[0, 1] - q0_32[0, 0]) / t32  # <= 0
    np.testing.assert_allclose(lp1[0, 1], d - np.log1p(np.exp(d)), rtol=8 * EPS[dtype], atol=8 * EPS[dtype],
                               err_msg=label)
    np.testing.assert_allclose(np.exp(np.asarray(res.log_pi[i], np.float64)).sum(-1), 1.0, rtol=0,
                               atol=8 * EPS[dtype])
  cf = np.asarray(res.trace.clip_fraction)
  clipped = np.asarray([row[2] == -1.0 for row in rows])
  assert ((cf >= 0) & (cf <= 1)).all() and cf[~clipped].max() == 0 and cf[clipped].max() > 0
  # The hidden MD-VI iterate from a log-policy of −inf: α = 0 leaves q unchanged (no 0 · inf = NaN).
  q = jnp.ones((S, A), dtype)
  lp = jnp.asarray([[0.0, -jnp.inf]] * S, dtype)
  np.testing.assert_array_equal(np.asarray(munchausen.munchausen_q_prime(q, lp, alpha=0.0, tau=0.5)), np.ones((S, A)))


# -----------------------------------------------------------------------------
# Tsallis: q from 1 + 1e-12 to 5
# -----------------------------------------------------------------------------

QS = (1.0 + 1e-12, 1.0 + 1e-6, 1.01, 1.5, 3.0, 5.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_tsallis_greedy_and_soft_max_across_q(dtype):
  z = np.array([[R_MAX, R_MAX - 1.0, -R_MAX], [0.3, 0.1, -0.2], [5.0, 5.0, 5.0], [1e-3, 0.0, 2e-3]])
  q_in = jnp.asarray(z, dtype)
  zn = np.asarray(q_in, np.float64)
  eps = EPS[dtype]
  shannon_v, shannon_pi = np_soft(zn, 1.0)
  for qq in QS:
    reg = tsallis_regularizer(qq, 1.0)
    v, pi, log_pi = (np.asarray(x, np.float64) for x in (reg.smax(q_in), reg.argmax(q_in), reg.log_argmax(q_in)))
    assert np.isfinite(v).all() and np.isfinite(pi).all(), qq
    assert not np.isnan(log_pi).any() and not np.isposinf(log_pi).any(), qq
    np.testing.assert_allclose(pi.sum(-1), 1.0, rtol=0, atol=8 * eps)
    # max Q <= Ω*(Q) <= max Q + τ (1 − A^(1−q))/(q(q − 1)) (the Tsallis entropy of the uniform policy).
    cap = -math.expm1(-(qq - 1.0) * math.log(3)) / (qq * (qq - 1.0))
    slack = 4 * eps * np.abs(zn).max(-1) + 1e-6
    assert (v >= zn.max(-1) - slack).all() and (v <= zn.max(-1) + cap + slack).all(), qq
    if qq - 1.0 < 1e-5:
      # The Shannon limit q -> 1: |π_q − softmax| and |Ω*_q − lse| are O(q − 1) (plus rounding).
      tol = 20 * (qq - 1.0) + 64 * eps
      np.testing.assert_allclose(pi, shannon_pi, rtol=0, atol=tol, err_msg=f"q={qq}")
      for row in range(len(zn)):
        np.testing.assert_allclose(v[row], shannon_v[row], rtol=0, atol=tol + 4 * eps * np.abs(zn[row]).max(),
                                   err_msg=f"q={qq}, row {row}")
    else:
      # A plain-bisection reference on the rows away from float32's absolute resolution of |z| = 1e6.
      rows = slice(1, None) if dtype == np.float32 else slice(None)
      np.testing.assert_allclose(pi[rows], np_tsallis_greedy(zn[rows], qq), rtol=0,
                                 atol=1e-9 if dtype == np.float64 else 1e-4, err_msg=f"q={qq}")


def test_mvi_q_tends_to_munchausen_vi_as_q_tends_to_1():
  """MVI(q) at q = 1 + 1e-12 (the bisection path, q − 1 kept in float64) against M-VI, and finite runs up to q = 5."""
  mdp = _problem(np.float64)
  _, r = _np64(mdp)
  ref = jnp.asarray(r)
  base = munchausen.mvi(mdp, alpha=0.9, tau=0.5, num_iters=K, reference=ref)
  scale = _scale(mdp, 0.5 * math.log(A))
  for qq in QS:
    res = tsallis_mvi.mvi_q(mdp, alpha=0.9, tau=0.5, q=qq, num_iters=K, reference=ref)
    _assert_finite(res, where=f"mvi_q(q={qq})")
    np.testing.assert_allclose(np.asarray(res.pi).sum(-1), 1.0, rtol=0, atol=1e-12)
    # (Only where the support boundary x = −1/(q − 1) lies beyond the scores: at q = 1 + 1e-6 the actions with
    # Q/τ gaps of 4e6 are genuinely off the Tsallis support, with bonus −τ/(q − 1), unlike M-VI's τ ln π.)
    if qq - 1.0 <= 1e-9:
      np.testing.assert_allclose(np.asarray(res.q), np.asarray(base.q), rtol=0,
                                 atol=100 * (qq - 1.0) * scale + 1e-9 * scale, err_msg=f"q={qq}")
      np.testing.assert_allclose(np.asarray(res.pi), np.exp(np.asarray(base.log_pi)), rtol=0,
                                 atol=100 * (qq - 1.0) + 1e-9, err_msg=f"q={qq}")


# -----------------------------------------------------------------------------
# β from 1e-4 to 0.5: Nash-MP and the KL-regularized bandit optimum
# -----------------------------------------------------------------------------

BETAS = (1e-4, 1e-3, 1e-2, 0.1, 0.5)


def _game(dtype) -> PreferenceGame:
  U = np.array([[[0.0, 0.4, -0.3], [-0.4, 0.0, 0.45], [0.3, -0.45, 0.0]],
                [[0.0, 0.5, 0.5], [-0.5, 0.0, 0.0], [-0.5, 0.0, 0.0]]])
  return PreferenceGame.create(0.5 + U, pi_ref=np.array([[0.2, 0.3, 0.5], [0.6, 0.4 - 1e-12, 1e-12]]), dtype=dtype)


def _np_nash_mp_step(P, lr, lp, beta, eta):
  def g(l):
    return np.einsum("xij,xj->xi", P, np.exp(l))

  def prox(u):
    z = (lp + eta * lr + (eta / beta) * u) / (1.0 + eta)
    return z - np_lse(z)[:, None]
  return prox(g(prox(g(lp))))


@pytest.mark.parametrize("dtype", DTYPES)
def test_nash_mp_across_beta(dtype):
  game = _game(dtype)
  num_iters = 40
  res = jax.vmap(lambda b: nash.nash_mp(game, beta=b, num_iters=num_iters, record_iterates=True))(
      np.asarray(BETAS, dtype))
  res = _to_numpy(res)
  # kl/span/kl_avg/gap_avg are NaN without a reference (documented); kl_half and inner_error at k = 0.
  _assert_finite((res.log_pi, res.pi_avg, res.trace.gap, res.trace.kl_ref, res.trace.win_rate), where="nash_mp")
  eps = EPS[dtype]
  assert (np.asarray(res.trace.gap) >= -64 * eps).all()
  assert (np.asarray(res.trace.kl_ref) >= -64 * eps).all()
  P = np.asarray(game.P, np.float64)
  lr = np.log(np.asarray(game.pi_ref, np.float64))
  for i, beta in enumerate(BETAS):
    b32 = float(np.asarray(beta, dtype))
    lp1 = _np_nash_mp_step(P, lr, lr, b32, 2 * b32)
    np.testing.assert_allclose(np.asarray(res.trace.log_pi[i, 1], np.float64), lp1, rtol=64 * eps,
                               atol=64 * eps * (1.0 + np.abs(lr).max()), err_msg=f"beta={beta}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_kl_regularized_bandit_optimum_across_beta(dtype):
  """π* ∝ π_ref e^{r/β} with |r| up to 1e6 and β down to 1e-4 (r/β = 1e10): exact against numpy float64."""
  p = np.array([0.2, 0.3, 0.4, 0.1 - 1e-7, 1e-7], dtype)
  r = np.array([R_MAX, R_MAX - 1.0, -R_MAX, 0.0, 3.0], dtype)
  res = _to_numpy(jax.vmap(lambda b: alignment.posterior(p, r, beta=b))(np.asarray(BETAS, dtype)))
  _assert_finite(res, where="posterior")
  pn, rn = np.asarray(p, np.float64), np.asarray(r, np.float64)
  pn = pn / pn.sum()
  eps = EPS[dtype]
  for i, beta in enumerate(BETAS):
    b = float(np.asarray(beta, dtype))
    logits = np.log(pn) + (rn - rn.max()) / b
    log_pi = logits - np_lse(logits)
    np.testing.assert_allclose(np.asarray(res.log_pi[i], np.float64), log_pi, rtol=16 * eps,
                               atol=16 * eps * (1.0 + 1.0 / b), err_msg=f"beta={beta}")
    value = rn.max() + b * np_lse(logits)  # β log Z
    np.testing.assert_allclose(float(res.value[i]), value, rtol=0, atol=8 * eps * R_MAX)
    pi = np.exp(log_pi)
    er = float(np.sum(pi * rn))
    assert rn.min() <= float(res.expected_reward[i]) <= rn.max() * (1 + 4 * eps)
    np.testing.assert_allclose(float(res.expected_reward[i]), er, rtol=0, atol=8 * eps * R_MAX)
    kl = float(np.sum(pi * (log_pi - np.log(pn))))
    np.testing.assert_allclose(float(res.kl[i]), kl, rtol=1e-3 if dtype == np.float32 else 1e-9, atol=8 * eps)


# -----------------------------------------------------------------------------
# Precision: warned before the run where float32 cannot deliver, silent otherwise
# -----------------------------------------------------------------------------


def _entry_points(mdp, tol=None):
  """The public entry points that take γ / tol / rewards with a dtype, as zero-argument calls."""
  return {
      "value_iteration": lambda: solvers.value_iteration(mdp, num_iters=30, tol=0.0 if tol is None else tol),
      "policy_iteration": lambda: solvers.policy_iteration(mdp, num_iters=30, tol=0.0 if tol is None else tol),
      "optimum": lambda: solvers.optimum(mdp, num_iters=30, tol=tol),
      "md_mpi": lambda: mdmpi.md_mpi(mdp, lam=0.03, tau=0.03, num_iters=K),
      "mvi": lambda: munchausen.mvi(mdp, alpha=0.9, tau=0.03, num_iters=K),
      "mvi_q": lambda: tsallis_mvi.mvi_q(mdp, alpha=0.9, tau=0.03, q=1.5, num_iters=K),
      "tsallis_kl_mdvi": lambda: tsallis_mvi.tsallis_kl_mdvi(mdp, lam=0.03, q=1.5, num_iters=K),
  }


@pytest.mark.parametrize("name", list(_entry_points(None)))
def test_float32_with_gamma_0_9999_is_warned_before_the_run(name):
  mdp = _problem(np.float32, gamma=0.9999)
  with warnings.catch_warnings():
    warnings.simplefilter("error", PrecisionWarning)  # raised at the warning: nothing has run yet
    with pytest.raises(PrecisionWarning, match=rf"{name}: gamma=0.9999 in float32.*horizon.*float64"):
      _entry_points(mdp)[name]()


def test_float32_tolerance_below_the_value_spacing_is_warned():
  # Values ~1e6/(1 − 0.99) = 1e8 are spaced ~12 apart in float32: tol = 1 cannot be certified.
  mdp = _problem(np.float32, gamma=0.99)
  for name in ("value_iteration", "policy_iteration", "optimum"):
    with warnings.catch_warnings():
      warnings.simplefilter("error", PrecisionWarning)
      with pytest.raises(PrecisionWarning, match=rf"{name}: tol=1 is below the float32 resolution.*float64"):
        _entry_points(mdp, tol=1.0)[name]()


@pytest.mark.parametrize("name, setting", [(n, "float64, gamma=0.9999") for n in ("value_iteration", "md_mpi")]
                         + [(n, "float32, gamma=0.9, |r| <= 1, tol=1e-4") for n in ("value_iteration", "md_mpi")])
def test_no_precision_warning_in_float64_or_benign_float32(name, setting):
  mdp = _problem(np.float64, gamma=0.9999) if setting.startswith("float64") else _problem(np.float32, 1.0, 0.9)
  with warnings.catch_warnings():
    warnings.simplefilter("error", PrecisionWarning)
    out = _entry_points(mdp, tol=1e-4 if setting.startswith("float32") else None)[name]()
  _assert_finite(out, allow_neg_inf=("log_pi",), where=name)


def test_the_helper_names_the_quantity_and_stays_silent_for_tracers():
  with pytest.warns(PrecisionWarning, match=r"gamma=0.9999 in float32.*relative errors of ~0.001"):
    assert V.warn_if_precision_insufficient(np.float32, gamma=0.9999)
  with pytest.warns(PrecisionWarning, match=r"tol=0.001 is below the float32 resolution of values of size ~1e\+10"):
    V.warn_if_precision_insufficient(np.float32, value_scale=1e10, tol=1e-3)
  with warnings.catch_warnings():
    warnings.simplefilter("error", PrecisionWarning)
    assert not V.warn_if_precision_insufficient(np.float64, gamma=0.9999, value_scale=1e10, tol=1e-3)
    assert not V.warn_if_precision_insufficient(np.float32, gamma=0.999, value_scale=10.0, tol=1e-4)
    jax.vmap(lambda g: V.warn_if_precision_insufficient(np.float32, gamma=g))(jnp.asarray([0.9999]))


def test_unrepresentable_problems_are_refused_before_the_run():
  P = _np64(_problem(np.float64))[0]
  r = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
  with pytest.raises(ParameterError, match=r"gamma=0.99999999.*rounds to 1 in float32.*float64"):
    MDP.create(P, r, 0.99999999, dtype=np.float32)
  with pytest.raises(NonFiniteError, match=r"r\[0, 0\] = 1e\+39 overflows float32.*float64"):
    MDP.create(P, 1e39 * r, 0.9, dtype=np.float32)
  # Values (max|r| + reg)/(1 − γ) beyond the dtype: refused by the solvers instead of returning inf.
  big32 = MDP.create(P, 1e36 * r, 0.9999, dtype=np.float32)
  big64 = MDP.create(P, 1e306 * r, 0.99)
  for mdp in (big32, big64):
    for name in ("value_iteration", "optimum", "md_mpi", "mvi"):
      with pytest.raises(NonFiniteError, match=rf"{name}: the values of this problem reach .* overflows"):
        with warnings.catch_warnings():
          warnings.simplefilter("ignore", PrecisionWarning)
          _entry_points(mdp)[name]()
  # A temperature below float32's normal range would be computed as 0 (and 0/0 = NaN).
  small = _problem(np.float32, 1.0, 0.9)
  with pytest.raises(ParameterError, match=r"tau=1e-300 is outside the range of float32.*float64"):
    mdmpi.md_mpi(small, lam=0.0, tau=1e-300, num_iters=K)
  with pytest.raises(ParameterError, match=r"tau=1e-300 is outside the range of float32"):
    munchausen.mvi(small, alpha=0.5, tau=1e-300, num_iters=K)
  # ... while a bundle evaluated directly treats it as the limit τ -> 0 (the hard max).
  q = jnp.asarray([[1.0, 2.0], [3.0, 3.0]], jnp.float32)
  np.testing.assert_allclose(np.asarray(R.entropy(1e-300).smax(q)), [2.0, 3.0], rtol=0, atol=0)
  np.testing.assert_allclose(np.asarray(R.entropy(1e-300).argmax(q)), [[0, 1], [0.5, 0.5]], rtol=0, atol=0)
