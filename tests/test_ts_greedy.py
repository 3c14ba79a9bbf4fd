"""The ts_greedy study (TS-1, TS-2, TS-3, TS-6, TS-8; THEORY.md §4): its independent references and its checks.

The references (exhaustive face search, SLSQP, numpy sparsemax, the first-order coefficient of TS-1) are tested
against hand computations and grid searches; every claim's check is shown to fail on a corrupted quick frame
(the quick sweep is shared with tests/test_studies.py, computed once per session). Run with JAX x64
(tests/conftest.py).
"""

import dataclasses

import jax
import numpy as np
import pytest
from scipy import optimize
from scipy.special import softmax

from mdptheory.studies import ts_greedy as st
from test_studies import quick_frame


@pytest.fixture(autouse=True, scope="module")
def _require_x64():
  if not jax.config.jax_enable_x64:
    pytest.fail("these tests need float64: enable JAX x64 (tests/conftest.py or JAX_ENABLE_X64=1)")


# -- the independent references ---------------------------------------------------------------------------

def _grid_max(Q, q, *, tau=0.0, lam=0.0, mu=None, n=400):
  """max of the greedy objective over a regular grid of the 3-simplex (spacing 1/n): a crude, obvious reference."""
  i, j = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
  keep = i + j <= n
  pis = np.stack([i[keep], j[keep], n - i[keep] - j[keep]], axis=-1) / n            # [M, 3]
  val = pis @ Q + tau * (1.0 - np.sum(pis**q, axis=-1)) / (q * (q - 1.0))
  if lam > 0:
    m = mu > 0
    val = val - lam * (np.sum(pis[:, m]**q * mu[m]**(1.0 - q), axis=-1) - 1.0) / (q * (q - 1.0))
    val = np.where(np.any(pis[:, ~m] > 0, axis=-1), -np.inf, val)
  return float(val.max()), pis[np.argmax(val)]


@pytest.mark.parametrize("q", [1.5, 2.0, 3.0])
def test_exhaustive_face_search_is_the_maximiser_on_a_grid(q):
  """The exhaustive reference beats every point of a 1/400 grid of the simplex and lies within grid resolution
  of the grid's best (entropy step, and a Tsallis-KL step whose μ has a zero)."""
  rng = np.random.default_rng(0)
  for trial in range(3):
    Q = rng.normal(size=3)
    mu = np.array([0.5, 0.0, 0.5]) if trial else rng.dirichlet(np.ones(3))
    cases = [dict(tau=0.4), dict(tau=0.2, lam=0.5, mu=mu)]
    for kw in cases:
      pi = st.exhaustive_greedy(Q, q, **kw)
      assert abs(pi.sum() - 1.0) < 1e-14 and np.all(pi >= 0)
      ours = st._objective(pi, Q, q, **kw)
      grid, _ = _grid_max(Q, q, **kw)
      assert ours >= grid - 1e-12
      assert ours - grid < 5e-3                 # a grid point within 1/400 is that close (Lipschitz objective)
      if "mu" in kw:
        assert np.all(pi[kw["mu"] == 0] == 0)


def test_sparsemax_reference_by_hand():
  """sparsemax([1, 0.5, −1]): K = 2, θ = (1.5 − 1)/2 = 0.25, so [0.75, 0.25, 0] (Martins & Astudillo 2016)."""
  np.testing.assert_allclose(st.sparsemax_np(np.array([[1.0, 0.5, -1.0], [0.0, 0.0, 0.0]])),
                             [[0.75, 0.25, 0.0], [1 / 3, 1 / 3, 1 / 3]], rtol=0, atol=1e-15)


def test_exhaustive_at_q_two_is_sparsemax():
  rng = np.random.default_rng(1)
  for _ in range(5):
    Q, tau = rng.normal(size=5), 0.3
    np.testing.assert_allclose(st.exhaustive_greedy(Q, 2.0, tau=tau), st.sparsemax_np((Q / tau)[None])[0],
                               rtol=0, atol=1e-14)


def test_kkt_residual_is_zero_at_the_maximiser_and_positive_elsewhere():
  Q = np.array([0.3, -0.2, 1.1, 0.0])
  pi = st.exhaustive_greedy(Q, 1.5, tau=0.5)
  assert st.kkt_residual(pi, Q, 1.5, tau=0.5) < 1e-13
  assert st.kkt_residual(np.full(4, 0.25), Q, 1.5, tau=0.5) > 1e-2


def _exp_q_policy(z, q):
  """exp_q(z − ψ) with Σ = 1, written from the definition in numpy (ψ by brentq; log1p for q near 1)."""
  d = q - 1.0

  def pi_of(psi):
    x = z - psi
    inside = 1.0 + d * x > 0
    return np.where(inside, np.exp(np.log1p(np.where(inside, d * x, 0.0)) / d), 0.0)

  psi = optimize.brentq(lambda p: pi_of(p).sum() - 1.0, z.max() - 1.0, z.max() + np.log(len(z)) + 1.0,
                        xtol=1e-15, rtol=4 * np.finfo(float).eps)
  return pi_of(psi)


def test_first_order_coefficient_matches_a_finite_difference():
  """TS-1's derived constant lim ‖π_q − softmax‖/(q − 1) = ‖π/2 (<π, x²> − x²)‖ (x = ln π): checked against
  (π_{1+δ} − π_1)/δ at δ = 1e-5 computed from the definition of exp_q in numpy (not the library)."""
  rng = np.random.default_rng(2)
  z = rng.normal(size=(6, 5)) / 0.5
  pi1 = softmax(z, axis=-1)
  delta = 1e-5
  fd = np.max(np.abs(np.stack([_exp_q_policy(row, 1.0 + delta) for row in z]) - pi1)) / delta
  coef = st.first_order_coefficient(pi1, np.log(pi1))
  assert coef > 0.05
  np.testing.assert_allclose(fd, coef, rtol=1e-3)


def test_bonus_mass_at_the_clip_by_hand():
  """Two actions, τ = 0.5, l0 = −1: π = (1, 0) gives log bonus (0, −∞ → −1): all the mass at the clip;
  π = (0.9, 0.1): τ ln π = (−0.053, −1.151 → −1): 1/(1 + 0.053); the ln_2 bonus τ(π − 1) is never clipped."""
  pi = np.array([[[[1.0, 0.0]], [[0.9, 0.1]]]])[0]          # [K=2, S=1, A=2]
  frac = np.asarray(st._bonus_mass_at_clip(pi, 0.5, "log"))
  np.testing.assert_allclose(frac, [1.0, 1.0 / (1.0 - 0.5 * np.log(0.9))], rtol=1e-14)
  np.testing.assert_allclose(np.asarray(st._bonus_mass_at_clip(pi, 0.5, "support")), [0.0, 0.0], atol=0)


def test_bad_claim_is_refused():
  with pytest.raises(st.ParameterError, match="claim='TS-9'"):
    st.run(dataclasses.replace(st.Config.quick(), claim="TS-9"))


# -- the checks can fail ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def frame(tmp_path_factory):
  return quick_frame("ts_greedy", tmp_path_factory)


def _result(df, claim):
  """The check of one claim on (a corrupted copy of) the frame."""
  (res,) = st.check(df[df["claim"] == claim])
  assert res.id == claim
  return res


def test_the_quick_frame_passes(frame):
  results = st.check(frame)
  assert [r.id for r in results] == list(st.CLAIM_IDS)
  for r in results:
    print(r.id, f"{r.measured:.4g}", r.detail)
    assert r.passed, r


def _where(df, **eq):
  mask = np.ones(len(df), bool)
  for col, val in eq.items():
    mask &= np.isclose(df[col], val) if isinstance(val, float) else (df[col] == val).to_numpy()
  assert mask.any(), eq
  return mask


def test_ts1_check_fails(frame):
  bad = frame.copy()
  bad.loc[_where(bad, claim="TS-1", object="mvi_q", delta=1e-3, seed=0), "value"] *= 20.0   # gap > C (q − 1)
  assert not _result(bad, "TS-1").passed
  bad = frame.copy()
  bad.loc[_where(bad, claim="TS-1", object="tsallis_greedy", delta=1e-3, seed=3), "value"] *= 1.05   # not first order
  assert not _result(bad, "TS-1").passed
  bad = frame.copy()
  bad.loc[_where(bad, claim="TS-1", object="mvi_q", delta=1e-4, seed=1), "value"] *= 1.1     # not linear in δ
  assert not _result(bad, "TS-1").passed
  bad = frame.copy()
  bad.loc[_where(bad, claim="TS-1", object="mvi_q", delta=1e-2, seed=2), "value"] = np.nan
  assert not _result(bad, "TS-1").passed


def test_ts2_check_fails(frame):
  for measure, value in (("obj_gap", 1e-9), ("slsqp_excess", 1e-9), ("kkt", 1e-8), ("sparsemax_gap", 1e-12),
                         ("bisection_gap", 1e-9)):
    bad = frame.copy()
    rows = np.flatnonzero(_where(bad, claim="TS-2", measure=measure))
    bad.loc[rows[0], "value"] = value
    assert not _result(bad, "TS-2").passed, measure
  bad = frame.copy()
  bad.loc[np.flatnonzero(_where(bad, claim="TS-2", measure="support_drop"))[7], "value"] = 1.0   # support shrank
  assert not _result(bad, "TS-2").passed


def test_ts3_check_fails(frame):
  bad = frame.copy()
  bad.loc[np.flatnonzero(_where(bad, claim="TS-3", measure="revived"))[30], "value"] = 1.0      # a zero came back
  assert not _result(bad, "TS-3").passed
  bad = frame.copy()
  bad.loc[_where(bad, claim="TS-3", measure="created"), "value"] = 0.0                          # vacuous run
  assert not _result(bad, "TS-3").passed
  bad = frame.copy()
  bad.loc[np.flatnonzero(_where(bad, claim="TS-3", measure="outside_mass"))[0], "value"] = 1e-3
  assert not _result(bad, "TS-3").passed
  bad = frame.copy()
  bad.loc[np.flatnonzero(_where(bad, claim="TS-3", measure="obj_gap"))[0], "value"] = 1e-10
  assert not _result(bad, "TS-3").passed


def test_ts6_check_fails(frame):
  ts6 = frame[frame["claim"] == "TS-6"]
  i = ts6.index[ts6["iteration"] == 5][0]
  run = (ts6["q"] == ts6.loc[i, "q"]) & (ts6["tau"] == ts6.loc[i, "tau"]) & (ts6["seed"] == ts6.loc[i, "seed"])
  bad = frame.copy()
  bad.loc[i, "residual"] = bad.loc[i, "residual_prev"] * 0.95                                 # ratio 0.95 > γ
  assert not _result(bad, "TS-6").passed
  bad = frame.copy()
  bad.loc[ts6.index[run], "pair_ratio"] = 0.95                                               # ‖Tu − Tw‖ > γ‖u − w‖
  assert not _result(bad, "TS-6").passed
  bad = frame.copy()
  bad.loc[ts6.index[run & (ts6["iteration"] >= 5)], "residual"] = bad.loc[i, "residual"]       # stalls
  assert not _result(bad, "TS-6").passed


def test_ts8_check_fails(frame):
  bad = frame.copy()
  ts8 = _where(bad, claim="TS-8")
  log, lnq = ts8 & (bad["bonus"] == "log").to_numpy(), ts8 & (bad["bonus"] == "ln_q").to_numpy()
  err_log, err_lnq = bad.loc[log, "err_sup"].to_numpy(), bad.loc[lnq, "err_sup"].to_numpy()
  bad.loc[log, "err_sup"], bad.loc[lnq, "err_sup"] = err_lnq, err_log
  assert not _result(bad, "TS-8").passed                                                      # ln_q worse
  bad = frame.copy()
  bad.loc[log, "clip_mass_fraction"] = 0.1
  assert not _result(bad, "TS-8").passed                                                      # clip not dominant
  bad = frame.copy()
  bad = bad[~((bad["claim"] == "TS-8") & (bad["seed"] >= 10))]
  assert not _result(bad, "TS-8").passed                                                      # < 20 Garnets


@pytest.mark.slow
@pytest.mark.parametrize("claim", st.CLAIM_IDS)
def test_batched_cells_equal_cell_by_cell_runs_for_every_claim(claim):
  """run_batch equals run per cell for every claim (tests/test_studies.py covers the default claim only)."""
  base = dataclasses.replace(st.Config.quick(), claim=claim, num_states=8, num_actions=3, branching=2, num_iters=20)
  cells = [dataclasses.replace(base, seed=i) for i in range(3)]
  for cell, frame in zip(cells, st.run_batch(cells)):
    single = st.run(cell)
    assert frame.columns.tolist() == single.columns.tolist()
    np.testing.assert_allclose(frame.select_dtypes("number").to_numpy(float),
                               single.select_dtypes("number").to_numpy(float), rtol=1e-12, atol=1e-13)
