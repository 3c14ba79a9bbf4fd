"""Smoke test of the benchmarks: every kernel against the numpy reference at tiny sizes (no timing asserted)."""

import numpy as np
import pytest

from benchmarks import vi_peers


@pytest.mark.parametrize("branching", [None, vi_peers.QUICK_B], ids=["dense", "sparse"])
def test_every_kernel_agrees_with_the_numpy_reference(branching):
  rows = vi_peers.check_kernels(S=vi_peers.QUICK_S, B=branching, K=vi_peers.QUICK_K)
  ours = {(name, dt) for name, dt, _ in rows if name in vi_peers.OURS}
  assert ours == {(n, d) for n in vi_peers.OURS for d in ("float64", "float32")}
  assert all(np.isfinite(err) for _, _, err in rows)


def test_the_numpy_reference_is_value_iteration():
  # Independent of the kernels: the reference VI reaches the LP optimum's fixed point on a tiny Garnet.
  from mdptheory import solvers
  pb = vi_peers.garnet(8, 8, seed=3)
  v = vi_peers.numpy_reference("vi", pb, 3000)
  lp = solvers.lp_optimum(vi_peers.build_mdp(pb, "float64"))
  np.testing.assert_allclose(v, np.asarray(lp.v), rtol=0, atol=1e-6)


def test_a_wrong_kernel_is_caught(monkeypatch):
  real = vi_peers.numpy_reference
  monkeypatch.setattr(vi_peers, "numpy_reference", lambda name, pb, K: real(name, pb, K) + 1e-6)
  with pytest.raises(RuntimeError, match="differs from numpy"):
    vi_peers.check_kernels(S=6, K=2, dtypes=("float64",))


def test_quick_run_of_every_section(capsys):
  rows = vi_peers.main(["--quick"])
  text = capsys.readouterr().out
  for heading in ("Per iteration", "End to end", "Batched sweeps", "Large sparse", "refused before allocation"):
    assert heading in text
  assert {r.get("section") for r in rows} >= {"e2e", "batch", "large"}
  assert all(np.isfinite(r["ms"]) and r["ms"] > 0 for r in rows if "ms" in r)
