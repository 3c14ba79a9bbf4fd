"""Figures: fitted rates, seed bands, hatched heatmap cells, bounds, log-axis masking and saved files."""

import io

import numpy as np
import pandas as pd
import pytest
from matplotlib import colors as mcolors
from matplotlib.collections import PolyCollection, QuadMesh
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from mdptheory.errors import ParameterError
from mdptheory import plotting as P


def traces(num_seeds: int, *, num_iters: int = 30, taus=(0.1,), gamma: float = 0.9, seed: int = 0) -> pd.DataFrame:
  """Tidy VI-like residual traces: residual_k = c_seed * gamma^k * noise, bound = 2 gamma^k."""
  rng = np.random.default_rng(seed)
  rows = []
  for tau in taus:
    for s in range(num_seeds):
      c = rng.uniform(0.5, 1.5)
      for k in range(num_iters):
        rows.append(dict(tau=tau, seed=s, iteration=k, residual=c * gamma**k * np.exp(0.1 * rng.standard_normal()),
                         bound_residual=2.0 * gamma**k))
  return pd.DataFrame(rows)


def bands(ax) -> list[PolyCollection]:
  return [c for c in ax.collections if isinstance(c, PolyCollection)]


def render(fig: Figure) -> None:
  """Draws the figure fully (catches errors that only appear at draw time)."""
  fig.savefig(io.BytesIO(), format="png", dpi=40)


# ----------------------------------------------------------------------------- fit_rate


def test_fit_rate_recovers_a_power_law_slope_under_multiplicative_noise():
  rng = np.random.default_rng(1)
  x = np.geomspace(10, 1e4, 30)
  y = 3.0 * x**-1.5 * np.exp(0.05 * rng.standard_normal(x.size))
  fit = P.fit_rate(x, y)
  assert abs(fit.slope + 1.5) < 0.05
  assert 0 < fit.stderr < 0.02
  assert abs(fit.intercept - np.log(3.0)) < 0.1
  assert fit.r2 > 0.99 and fit.n == 30
  np.testing.assert_allclose(fit.predict(x), 3.0 * x**-1.5, rtol=0.1)


def test_fit_rate_geometric_slope_is_the_log_rate():
  k = np.arange(40)
  fit = P.fit_rate(k, 2.0 * 0.9**k, log_x=False)
  np.testing.assert_allclose(fit.slope, np.log(0.9), rtol=1e-12)
  np.testing.assert_allclose(fit.intercept, np.log(2.0), rtol=1e-12)
  assert fit.stderr < 1e-12 and fit.r2 == pytest.approx(1.0) and fit.n == 40
  # On log x the same data is not a power law: the fitted exponent is far from log(0.9).
  assert abs(P.fit_rate(k, 2.0 * 0.9**k).slope - np.log(0.9)) > 0.5


def test_fit_rate_uses_only_finite_positive_points():
  x = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 0.0, 32.0, 64.0, -1.0])
  y = np.array([1.0, 0.5, 0.25, 0.125, 0.0625, 7.0, 0.0, np.inf, 5.0])
  fit = P.fit_rate(x, y)                 # x=0, x=-1 (log x), y=0, y=inf dropped
  assert fit.n == 5
  np.testing.assert_allclose(fit.slope, -1.0, rtol=1e-12)
  assert P.fit_rate(x, y, log_x=False).n == 7      # x <= 0 usable on a linear x


@pytest.mark.parametrize("x, y, match", [
    ([1.0, 2.0, 3.0], [1.0, 0.0, -2.0], "at least 2 usable points"),
    ([1.0, 2.0], [1.0, np.nan], "at least 2 usable points"),
    ([2.0, 2.0, 2.0], [1.0, 2.0, 3.0], "distinct x"),
    ([1.0, 2.0, 3.0], [1.0, 2.0], "x has 3 values but y has 2"),
])
def test_fit_rate_rejects_unusable_input(x, y, match):
  with pytest.raises(ParameterError, match=match):
    P.fit_rate(x, y)


def test_fit_rate_with_two_points_has_no_stderr():
  fit = P.fit_rate([1.0, 10.0], [1.0, 0.1])
  assert fit.slope == pytest.approx(-1.0) and np.isnan(fit.stderr) and fit.n == 2


# ----------------------------------------------------------------------------- bands


@pytest.mark.parametrize("num_seeds, num_bands, num_lines", [(1, 0, 1), (2, 0, 2), (3, 1, 1), (5, 1, 1)])
def test_band_needs_three_seeds_else_seed_lines_are_drawn(num_seeds, num_bands, num_lines):
  fig = P.error_vs_iteration(traces(num_seeds), y="residual", hue="tau")
  ax = fig.axes[0]
  assert len(bands(ax)) == num_bands
  assert len(ax.lines) == num_lines              # one median line, or one line per seed
  if num_seeds == 2:
    assert all(line.get_linewidth() < 1.0 for line in ax.lines)     # thin
    assert "2 seeds, no band" in ax.get_legend().get_texts()[0].get_text()
  render(fig)


def test_band_is_dropped_where_fewer_than_three_seeds_are_finite():
  df = traces(3, num_iters=10)
  df.loc[(df["seed"] == 0) & df["iteration"].between(4, 5), "residual"] = np.nan
  (band,) = bands(P.error_vs_iteration(df, y="residual", hue="tau").axes[0])
  xs = np.unique(np.round(np.concatenate([p.vertices[:, 0] for p in band.get_paths()]), 9))
  assert 4 not in xs and 5 not in xs and {0, 3, 6, 9} <= set(xs)
  assert len(band.get_paths()) == 2                                     # split at the gap


def _band_range(band: PolyCollection, x: float) -> tuple[float, float]:
  v = np.concatenate([p.vertices for p in band.get_paths()])
  ys = v[np.isclose(v[:, 0], x), 1]
  return ys.min(), ys.max()


@pytest.mark.parametrize("band", ["iqr", "bootstrap"])
def test_band_contains_the_median(band):
  df = traces(7, num_iters=12, seed=3)
  ax = P.error_vs_iteration(df, y="residual", hue="tau", band=band).axes[0]
  (line,), (poly,) = ax.lines, bands(ax)
  wide = df.pivot(index="seed", columns="iteration", values="residual").to_numpy()
  np.testing.assert_allclose(line.get_ydata(), np.median(wide, 0))
  widths = []
  for x, med in zip(line.get_xdata(), line.get_ydata()):
    lo, hi = _band_range(poly, x)
    assert lo <= med <= hi
    widths.append((lo, hi))
  lo, hi = np.array(widths).T
  if band == "iqr":
    np.testing.assert_allclose(lo, np.percentile(wide, 25, 0))
    np.testing.assert_allclose(hi, np.percentile(wide, 75, 0))
  else:          # a bootstrap CI of the median, not the IQR
    assert not np.allclose(lo, np.percentile(wide, 25, 0))


def test_bootstrap_median_ci_is_reproducible_nested_and_shrinks_with_more_seeds():
  rng = np.random.default_rng(0)
  small, large = rng.lognormal(size=(8, 5)), rng.lognormal(size=(400, 5))
  lo, hi = P.bootstrap_median_ci(small, rng=1)
  lo2, hi2 = P.bootstrap_median_ci(small, rng=1)
  np.testing.assert_array_equal(lo, lo2)
  np.testing.assert_array_equal(hi, hi2)
  med = np.median(small, 0)
  assert (lo <= med).all() and (med <= hi).all() and (lo < hi).all()
  lo50, hi50 = P.bootstrap_median_ci(small, level=0.5, rng=1)
  assert (lo <= lo50).all() and (hi50 <= hi).all()
  llo, lhi = P.bootstrap_median_ci(large, rng=1)
  assert ((lhi - llo) < (hi - lo)).all()
  # Median of a lognormal(0, 1) is 1: the large-sample 95% CI covers it in every column.
  assert (llo < 1.0).all() and (1.0 < lhi).all()
  with pytest.raises(ParameterError, match="level"):
    P.bootstrap_median_ci(small, level=95)


# ----------------------------------------------------------------------------- bounds, log axes


def test_the_bound_is_a_dashed_line_with_the_bound_data():
  df = traces(3, num_iters=15, taus=(0.1, 1.0))
  ax = P.error_vs_iteration(df, y="residual", bound="bound_residual", hue="tau").axes[0]
  dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
  assert len(dashed) == 2                                        # one per hue value
  for line in dashed:
    np.testing.assert_allclose(line.get_xdata(), np.arange(15))
    np.testing.assert_allclose(line.get_ydata(), 2.0 * 0.9 ** np.arange(15))
  solid = [line for line in ax.lines if line.get_linestyle() == "-"]
  assert [line.get_color() for line in solid] == [line.get_color() for line in dashed]
  assert any("bound_residual" in t.get_text() for t in ax.get_legend().get_texts())


def test_value_vs_parameter_draws_bounds_and_bands_as_before():
  rng = np.random.default_rng(0)
  rows = [dict(reg=reg, tau=tau, seed=s, gap=tau * rng.uniform(0.2, 0.8), bound_gap=tau)
          for reg in ("entropy", "kl") for tau in (0.01, 0.1, 1.0) for s in range(3)]
  fig = P.value_vs_parameter(pd.DataFrame(rows), x="tau", ys=["gap"], bounds=["bound_gap"], hue="reg")
  assert len(fig.axes) == 2
  for ax in fig.axes:
    assert len(bands(ax)) == 1 and ax.get_xscale() == "log" and ax.get_yscale() == "log"
    (dashed,) = [line for line in ax.lines if line.get_linestyle() == "--"]
    np.testing.assert_allclose(dashed.get_ydata(), [0.01, 0.1, 1.0])
  render(fig)


def test_log_axes_with_zero_and_inf_do_not_raise_and_are_reported():
  df = traces(1, num_iters=10)
  df.loc[df["iteration"] == 4, "residual"] = 0.0
  df.loc[df["iteration"] == 6, "residual"] = -1e-3
  df.loc[df["iteration"] == 8, "residual"] = np.inf
  fig = P.error_vs_iteration(df, y="residual", bound="bound_residual", hue="tau", logx=True)
  ax = fig.axes[0]
  render(fig)
  title = ax.get_title()
  assert "2 points <= 0 masked" in title            # 0 and -1e-3
  assert "at x <= 0 masked" in title                 # iteration 0 on the log x axis
  assert "1 infinite value dropped" in title
  (line,) = [line for line in ax.lines if line.get_linestyle() == "-"]
  y = np.asarray(line.get_ydata(), float)
  assert np.isnan(y[[0, 4, 6, 8]]).all() and np.isfinite(np.delete(y, [0, 4, 6, 8])).all()
  # A clean frame gets no note.
  assert P.error_vs_iteration(traces(3), y="residual", hue="tau").axes[0].get_title() == ""


def test_median_band_with_zero_seeds_does_not_raise():
  df = traces(3, num_iters=10)
  df.loc[df["iteration"] >= 5, "residual"] = 0.0            # converged exactly
  fig = P.error_vs_iteration(df, y="residual", hue="tau", band="bootstrap")
  render(fig)
  assert "5 points <= 0 masked" in fig.axes[0].get_title()


# ----------------------------------------------------------------------------- heatmap


def grid_frame(*, failed_cell=(0.01, 100), nan_cell=(1.0, 10), num_seeds: int = 3) -> pd.DataFrame:
  rows = []
  for a in (0.001, 0.01, 1.0):          # uneven log spacing on purpose
    for n in (10, 100, 1000):
      for s in range(num_seeds):
        value, status = a * n * (1.0 + 0.1 * s), "ok"
        if (a, n) == failed_cell:
          value, status = 1e30, "failed"      # a huge value that must not reach the colour scale
        if (a, n) == nan_cell:
          value = np.nan
        rows.append(dict(alpha=a, n=n, seed=s, err=value, status=status))
  return pd.DataFrame(rows)


def _cell_of(rect: Rectangle, xs, ys) -> tuple[float, float]:
  """The (x, y) grid values whose cell holds the rectangle's centre (log axes)."""
  (x0, y0), w, h = rect.get_xy(), rect.get_width(), rect.get_height()
  cx, cy = np.sqrt(x0 * (x0 + w)), np.sqrt(y0 * (y0 + h))
  return xs[np.argmin(np.abs(np.log(xs) - np.log(cx)))], ys[np.argmin(np.abs(np.log(ys) - np.log(cy)))]


def test_heatmap_hatches_exactly_the_failed_and_nan_cells():
  df = grid_frame()
  fig = P.heatmap(df, x="alpha", y="n", value="err", status="status")
  ax = fig.axes[0]
  hatched = [p for p in ax.patches if p.get_hatch()]
  assert len(hatched) == 2
  xs, ys = np.array([0.001, 0.01, 1.0]), np.array([10, 100, 1000])
  assert sorted(_cell_of(p, xs, ys) for p in hatched) == [(0.01, 100), (1.0, 10)]
  (mesh,) = [c for c in ax.collections if isinstance(c, QuadMesh)]
  arr = mesh.get_array()
  assert arr.shape == (3, 3)
  assert arr.mask[1, 1] and arr.mask[0, 2] and arr.mask.sum() == 2      # [row=n, col=alpha]
  # Colour limits from the 7 successful cells only (median over seeds = 1.1 a n).
  good = [1.1 * a * n for a in (0.001, 0.01, 1.0) for n in (10, 100, 1000) if (a, n) not in
          [(0.01, 100), (1.0, 10)]]
  assert mesh.norm.vmin == pytest.approx(min(good)) and mesh.norm.vmax == pytest.approx(max(good))
  assert isinstance(mesh.norm, mcolors.LogNorm)                 # positive, spans > 2 decades
  assert any("failed/diverged" in t.get_text() for t in ax.get_legend().get_texts())
  assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
  np.testing.assert_allclose(ax.get_xticks(), xs)                # ticks at the grid values
  render(fig)


def test_heatmap_hatches_a_cell_with_one_diverged_seed_and_ignores_status_case():
  df = grid_frame(failed_cell=None, nan_cell=None)
  df.loc[(df["alpha"] == 0.001) & (df["n"] == 10) & (df["seed"] == 2), "status"] = " Diverged"
  ax = P.heatmap(df, x="alpha", y="n", value="err", status="status", norm="linear").axes[0]
  (rect,) = [p for p in ax.patches if p.get_hatch()]
  assert _cell_of(rect, np.array([0.001, 0.01, 1.0]), np.array([10, 100, 1000])) == (0.001, 10)
  assert type(ax.collections[0].norm) is mcolors.Normalize


def test_heatmap_linear_norm_for_a_narrow_range_and_categorical_axes():
  rows = [dict(reg=reg, gamma=g, seed=s, err=1.0 + g + 0.01 * s) for reg in ("entropy", "kl")
          for g in (0.9, 0.99) for s in range(3)]
  fig = P.heatmap(pd.DataFrame(rows), x="reg", y="gamma", value="err", logy=False, reduce="mean")
  ax = fig.axes[0]
  mesh = ax.collections[0]
  assert type(mesh.norm) is mcolors.Normalize and not [p for p in ax.patches if p.get_hatch()]
  assert mesh.norm.vmin == pytest.approx(1.91) and mesh.norm.vmax == pytest.approx(2.0)
  assert [t.get_text() for t in ax.get_xticklabels()] == ["entropy", "kl"]
  render(fig)


def test_heatmap_leaves_missing_cells_blank_and_unhatched():
  df = grid_frame(failed_cell=None, nan_cell=None)
  df = df[~((df["alpha"] == 1.0) & (df["n"] == 1000))]
  ax = P.heatmap(df, x="alpha", y="n", value="err").axes[0]
  assert not [p for p in ax.patches if p.get_hatch()]
  assert ax.collections[0].get_array().mask[2, 2]
  assert any("no data" in t.get_text() for t in ax.get_legend().get_texts())


# ----------------------------------------------------------------------------- rate plot


def rate_frame() -> pd.DataFrame:
  rng = np.random.default_rng(2)
  return pd.DataFrame([dict(method=m, seed=s, n=n, err=3.0 * n**slope * np.exp(0.05 * rng.standard_normal()))
                       for m, slope in (("a", -1.5), ("b", -0.5)) for s in range(4)
                       for n in (10, 20, 40, 80, 160, 320)])


def test_rate_plot_fits_each_hue_and_annotates_against_theory():
  fig = P.rate_plot(rate_frame(), x="n", y="err", hue="method", theory_slope={"a": -1.5, "b": -0.5})
  ax = fig.axes[0]
  assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
  texts = sorted(t.get_text() for t in ax.texts)
  assert len(texts) == 2 and all("fitted slope" in t for t in texts)
  assert "vs theory -1.5" in texts[0] and "vs theory -0.5" in texts[1]
  slopes = [float(t.split("fitted slope ")[1].split(" ")[0]) for t in texts]
  assert abs(slopes[0] + 1.5) < 0.05 and abs(slopes[1] + 0.5) < 0.05
  fit_lines = [line for line in ax.lines if line.get_linestyle() == "-"]
  theory_lines = [line for line in ax.lines if line.get_linestyle() == ":"]
  assert len(fit_lines) == 2 and len(theory_lines) == 2
  render(fig)


def test_rate_plot_geometric_rate_and_single_seed():
  k = np.arange(30)
  df = pd.DataFrame(dict(k=k, err=2.0 * 0.9**k))
  ax = P.rate_plot(df, x="k", y="err", seed=None, log_x=False, theory_slope=float(np.log(0.9))).axes[0]
  assert ax.get_xscale() == "linear"
  (text,) = [t.get_text() for t in ax.texts]
  assert f"fitted slope {np.log(0.9):.3f}" in text and "0.9" in text


def test_rate_plot_with_too_few_points_annotates_instead_of_raising():
  df = pd.DataFrame(dict(n=[10, 20, 40], err=[0.0, 0.1, -1.0]))
  fig = P.rate_plot(df, x="n", y="err", seed=None)
  render(fig)
  assert "no fit" in fig.axes[0].texts[0].get_text()


# ----------------------------------------------------------------------------- save_figure


def test_save_figure_writes_three_files_and_the_csv_round_trips(tmp_path):
  df = traces(3, num_iters=8)
  df["label"] = "x"
  df.loc[0, "residual"] = 0.1 + 0.2                 # not exactly representable in short decimal
  fig = P.error_vs_iteration(df, y="residual", bound="bound_residual", hue="tau")
  paths = P.save_figure(fig, df, tmp_path / "sub" / "fig")
  assert [p.name for p in paths] == ["fig.png", "fig.pdf", "fig.csv"]
  assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert paths[1].read_bytes()[:5] == b"%PDF-"
  back = pd.read_csv(paths[2])
  pd.testing.assert_frame_equal(back, df, check_dtype=False, check_exact=True)
  assert not [p for p in (tmp_path / "sub").iterdir() if p.name.endswith(".tmp")]


def test_save_figure_is_byte_for_byte_deterministic(tmp_path):
  df = traces(3, num_iters=8)
  fig = P.error_vs_iteration(df, y="residual", hue="tau")
  a = P.save_figure(fig, df, tmp_path / "a")
  b = P.save_figure(fig, df, tmp_path / "b")
  for pa, pb in zip(a, b):
    assert pa.read_bytes() == pb.read_bytes(), pa.name
  assert b"CreationDate" not in a[1].read_bytes()


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize("call, match", [
    (lambda df: P.error_vs_iteration(df, y="nope", hue="tau"), "y='nope' is not a column"),
    (lambda df: P.error_vs_iteration(df, y="residual", hue="tau", bound="bound_nope"), "bound='bound_nope'"),
    (lambda df: P.error_vs_iteration(df, y="residual", hue="temperature"), "hue='temperature'"),
    (lambda df: P.error_vs_iteration(df, y="residual", hue="tau", seed="run"), "seed='run'"),
    (lambda df: P.error_vs_iteration(df, y="residual", hue="tau", band="ci"), r"band='ci'.*'iqr', 'bootstrap'"),
    (lambda df: P.value_vs_parameter(df, x="tau", ys=["residual", "gap"], bounds=[None, None], hue="seed"),
     r"ys\[1\]='gap'"),
    (lambda df: P.value_vs_parameter(df, x="tau", ys=["residual"], bounds=[None, None], hue="seed"),
     "bounds has 2 entries"),
    (lambda df: P.heatmap(df, x="tau", y="iteration", value="residual", status="state"), "status='state'"),
    (lambda df: P.heatmap(df, x="tau", y="iteration", value="residual", reduce="avg"), "reduce='avg'"),
    (lambda df: P.heatmap(df, x="tau", y="iteration", value="residual", cmap="nocmap"), "cmap='nocmap'"),
    (lambda df: P.rate_plot(df, x="size", y="residual"), "x='size'"),
    (lambda df: P.rate_plot(df, x="iteration", y="residual", theory_slope={0.5: -1.0}, hue="tau"),
     "theory_slope has no entry"),
    # Rows that differ only in another setting column are not silently merged.
    (lambda df: P.error_vs_iteration(df, y="residual"), "rows share their"),
    # iteration 0 cannot sit on a log y axis of cells.
    (lambda df: P.heatmap(df, x="tau", y="iteration", value="residual"), "logy=True needs positive y"),
])
def test_bad_arguments_raise_parameter_error_naming_them(call, match):
  df = traces(3, num_iters=5, taus=(0.1, 1.0))
  with pytest.raises(ParameterError, match=match):
    call(df)


def test_non_numeric_and_empty_inputs_are_rejected():
  df = traces(3, num_iters=5)
  df["note"] = "a"
  with pytest.raises(ParameterError, match="y='note' must be a numeric column"):
    P.error_vs_iteration(df, y="note", hue="tau")
  with pytest.raises(ParameterError, match="no rows"):
    P.error_vs_iteration(df.iloc[:0], y="residual", hue="tau")
  with pytest.raises(ParameterError, match="DataFrame"):
    P.save_figure(Figure(), [1, 2], "x")


def test_panels_hold_several_builders_in_one_figure():
  df = traces(5, taus=(0.1, 0.3))
  fig, (left, mid, right) = P.panels([4.2, 5.0, 4.8], title="three panels")
  assert P.error_vs_iteration(df, y="residual", bound="bound_residual", hue="tau", into=left) is left
  P.heatmap(df[df["iteration"] == 29], x="tau", y="seed", value="residual", seed=None, logy=False, into=mid)
  P.rate_plot(df[df["tau"] == 0.1], x="iteration", y="residual", log_x=False, theory_slope=np.log(0.9), into=right)
  assert len(fig.subfigs) == 3 and fig.get_suptitle() == "three panels"
  assert len(left.axes) == 1 and len(mid.axes) == 2  # the heatmap's axes and its colorbar
  assert fig.get_size_inches()[0] == pytest.approx(14.0)
  fig.savefig(io.BytesIO(), format="png", dpi=100)


@pytest.mark.parametrize("widths", [[], [1.0, 0.0], [-2.0]])
def test_panels_reject_non_positive_widths(widths):
  with pytest.raises(ParameterError, match="widths"):
    P.panels(widths)


def test_long_traces_are_thinned_to_log_spaced_iterations_in_the_csv(tmp_path):
  df = traces(4, num_iters=1000)                        # 4000 rows
  thin = P.thin_iterations(df, 400)
  its = np.sort(thin["iteration"].unique())
  assert len(thin) <= 400 + 4 and its[0] == 0 and its[-1] == 999
  assert np.all(np.diff(its) >= 1) and (thin.groupby("iteration").size() == 4).all()   # whole iterations kept
  assert P.thin_iterations(df, None) is df and P.thin_iterations(df.drop(columns="iteration"), 10).shape[0] == 4000
  fig = P.error_vs_iteration(df, y="residual", hue="tau")
  back = pd.read_csv(P.save_figure(fig, df, tmp_path / "f", max_csv_rows=400)[2])
  pd.testing.assert_frame_equal(back, thin.reset_index(drop=True), check_dtype=False, check_exact=True)
