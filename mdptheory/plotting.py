"""Figures for studies: errors on a log scale with their bounds, heatmaps, fitted rates.

Every function takes a tidy long-form :class:`pandas.DataFrame` (setting
columns, a ``seed`` column, an iteration-like or parameter column, measured
columns and ``bound_<name>`` columns beside the measured ones) and builds a
:class:`matplotlib.figure.Figure` directly, without pyplot (no global state, no
display needed). :func:`save_figure` writes a PNG, a PDF and the CSV of the
data behind the figure, each atomically.

Conventions shared by the line plots:

* The line is the median over seeds. The band (``band="iqr"``: 25th to 75th
  percentile; ``band="bootstrap"``: a percentile-bootstrap confidence interval
  of the median) is drawn only where at least :data:`MIN_BAND_SEEDS` seeds have
  a finite value. A group with fewer seeds is drawn as its individual seed
  lines (thin when there are two, one ordinary line when there is one).
* On a log axis, points <= 0 cannot be drawn: they are masked, and the axes'
  title says how many were. Infinite values are dropped (also counted there);
  NaN means "not measured" and is dropped silently.
* Bounds are the median over seeds of the ``bound`` column, dashed, in the
  colour of the measured line.
* Each (facet, hue, seed, x) combination must appear at most once: rows that
  differ only in another setting column raise :class:`ParameterError`
  instead of being silently merged (filter those settings first).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Hashable, Mapping, NamedTuple, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib import colors as mcolors
from matplotlib.axes import Axes
from matplotlib.figure import Figure, SubFigure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import NullLocator

from mdptheory.errors import ParameterError

__all__ = [
    "FAILED_STATUSES", "MIN_BAND_SEEDS", "RateFit", "bootstrap_median_ci", "error_vs_iteration", "fit_rate",
    "heatmap", "rate_plot", "save_figure", "value_vs_parameter",
]

MIN_BAND_SEEDS = 3
"""A band (IQR or bootstrap CI) is never drawn from fewer seeds than this."""

FAILED_STATUSES = ("failed", "diverged")
"""Values of a ``status`` column (case-insensitive) that mark a heatmap cell as failed."""

BANDS = ("iqr", "bootstrap")
REDUCERS: dict[str, Callable[[np.ndarray], float]] = {
    "median": np.median, "mean": np.mean, "min": np.min, "max": np.max,
}
NORMS = ("auto", "log", "linear")

_HATCH = "///"
_HATCH_FACE = "0.82"
_HATCH_EDGE = "0.35"


# ----------------------------------------------------------------------------- validation


FigureLike = Figure | SubFigure


def panels(widths: Sequence[float], *, height: float = 3.6, title: str | None = None) -> tuple[Figure, list[SubFigure]]:
  """A figure split into side-by-side sub-figures, one per plot, for a study's multi-panel figure.

  Each builder here takes ``into=`` a sub-figure::

      fig, (left, right) = panels([8.4, 5.0], title="Theorem 2")
      error_vs_iteration(df, y="err", hue="beta", into=left)
      heatmap(final, x="tau", y="beta", value="err", into=right)

  Args:
    widths: width in inches of each sub-figure.
    height: figure height in inches.
    title: figure title.
  """
  if not widths or any(not (w > 0) for w in widths):
    raise ParameterError(f"widths={list(widths)!r} must be a non-empty list of positive widths (inches)")
  fig = Figure(figsize=(float(sum(widths)), height), layout="constrained")
  subs = list(np.atleast_1d(fig.subfigures(1, len(widths), width_ratios=list(widths))))
  if title:
    fig.suptitle(title, fontsize=10)
  return fig, subs


def _check_frame(df: Any, **columns: str | None) -> None:
  """Raises ParameterError unless ``df`` is a non-empty DataFrame holding every named column.

  Args:
    df: the data.
    **columns: role -> column name (``None`` means the role is unused).
  """
  if not isinstance(df, pd.DataFrame):
    raise ParameterError(f"df must be a pandas DataFrame, got {type(df).__name__}")
  if len(df) == 0:
    raise ParameterError("df has no rows to plot")
  for role, col in columns.items():
    if col is not None and col not in df.columns:
      raise ParameterError(f"{role}={col!r} is not a column of the data; columns are {list(df.columns)}")


def _check_numeric(df: pd.DataFrame, **columns: str | None) -> None:
  for role, col in columns.items():
    if col is not None and not pd.api.types.is_numeric_dtype(df[col]):
      raise ParameterError(f"{role}={col!r} must be a numeric column, got dtype {df[col].dtype}")


def _check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
  if value not in choices:
    raise ParameterError(f"{name}={value!r} is not valid; choose from {tuple(choices)}")


def _check_level(level: float) -> None:
  if not (isinstance(level, (int, float)) and 0.0 < float(level) < 1.0):
    raise ParameterError(f"level={level!r} must be a confidence level strictly between 0 and 1 (e.g. 0.95)")


def _check_unique(df: pd.DataFrame, keys: Sequence[str]) -> None:
  """Raises ParameterError if several rows share the same ``keys`` (another setting was not filtered)."""
  dup = df.duplicated(list(keys), keep=False)
  if dup.any():
    row = df.loc[dup, list(keys)].iloc[0].to_dict()
    raise ParameterError(
        f"{int(dup.sum())} rows share their ({', '.join(keys)}) values, e.g. {row}: another setting "
        f"column varies; filter it first or pass it as hue/facet")


def _with_seed(df: pd.DataFrame, seed: str | None) -> tuple[pd.DataFrame, str]:
  """Returns ``(df, seed column)``; with ``seed=None`` every row is its own (single) seed."""
  if seed is not None:
    return df, seed
  name = "__seed__"
  return df.assign(**{name: 0}), name


def _label(name: str, value: Any) -> str:
  return f"{name}={value:g}" if isinstance(value, (float, np.floating)) else f"{name}={value}"


def _groups(df: pd.DataFrame, col: str | None) -> list[tuple[Any, pd.DataFrame]]:
  """``[(value, rows)]`` sorted by value; one group ``(None, df)`` when ``col`` is None."""
  if col is None:
    return [(None, df)]
  return sorted(df.groupby(col, sort=False), key=lambda t: t[0])


# ----------------------------------------------------------------------------- statistics


def bootstrap_median_ci(values: np.ndarray, *, level: float = 0.95, n_resamples: int = 2000,
                        rng: np.random.Generator | int | None = 0) -> tuple[np.ndarray, np.ndarray]:
  """Percentile-bootstrap confidence interval of the median over axis 0 (seeds), NaN-aware.

  Seeds are resampled with replacement, jointly for every column, and the
  median of each resample is taken over its finite entries.

  Args:
    values: ``[num_seeds, num_points]`` (a 1-D array is one point); NaN marks a missing value.
    level: confidence level of the two-sided interval.
    n_resamples: number of bootstrap resamples.
    rng: a numpy Generator or a seed; the default seed 0 makes figures reproducible.

  Returns:
    ``(lo, hi)``, each ``[num_points]``; NaN where a column has no finite value.

  Raises:
    ParameterError: ``level`` outside (0, 1) or ``n_resamples`` < 1.
  """
  _check_level(level)
  if not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
    raise ParameterError(f"n_resamples={n_resamples!r} must be a positive integer")
  values = np.asarray(values, dtype=float)
  if values.ndim == 1:
    values = values[:, None]
  rng = np.random.default_rng(rng)
  n, m = values.shape
  idx = rng.integers(0, n, size=(n_resamples, n))
  alpha = (1.0 - float(level)) / 2.0
  lo, hi = np.full(m, np.nan), np.full(m, np.nan)
  chunk = max(1, 4_000_000 // max(1, n_resamples * n))    # bounds the [B, n, chunk] temporary
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)       # all-NaN resamples give NaN, by design
    for start in range(0, m, chunk):
      meds = np.nanmedian(values[idx, start:start + chunk], axis=1)   # [B, chunk]
      lo[start:start + chunk], hi[start:start + chunk] = np.nanquantile(meds, [alpha, 1.0 - alpha], axis=0)
  return lo, hi


def _summary(values: np.ndarray, *, band: str, level: float, n_resamples: int,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Median over seeds (axis 0) and the band; the band is NaN where fewer than MIN_BAND_SEEDS are finite."""
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    med = np.nanmedian(values, 0)
    if band == "iqr":
      lo, hi = np.nanpercentile(values, 25, 0), np.nanpercentile(values, 75, 0)
    else:
      lo, hi = bootstrap_median_ci(values, level=level, n_resamples=n_resamples, rng=rng)
  enough = np.isfinite(values).sum(0) >= MIN_BAND_SEEDS
  return med, np.where(enough, lo, np.nan), np.where(enough, hi, np.nan)


# ----------------------------------------------------------------------------- line drawing


@dataclasses.dataclass
class _Masked:
  """Counts of points that could not be drawn on one axes."""
  nonpositive: int = 0     # y <= 0 on a log y axis
  nonpositive_x: int = 0   # x <= 0 on a log x axis
  infinite: int = 0        # +-inf values

  def note(self, ax: Axes) -> None:
    """Appends the counts to the axes title (nothing when all are zero)."""
    def plural(n: int, what: str) -> str:
      return f"{n} {what}{'s' if n != 1 else ''}"
    parts = []
    if self.nonpositive:
      parts.append(f"{plural(self.nonpositive, 'point')} <= 0 masked (log axis)")
    if self.nonpositive_x:
      parts.append(f"{plural(self.nonpositive_x, 'point')} at x <= 0 masked (log x)")
    if self.infinite:
      parts.append(f"{plural(self.infinite, 'infinite value')} dropped")
    if parts:
      title = ax.get_title()
      ax.set_title((title + "\n" if title else "") + "; ".join(parts), fontsize=8)


def _finite(values: np.ndarray, masked: _Masked) -> np.ndarray:
  """``values`` with +-inf replaced by NaN (counted)."""
  inf = np.isinf(values)
  masked.infinite += int(inf.sum())
  return np.where(inf, np.nan, values)


def _drawable(xs: np.ndarray, ys: np.ndarray, *, logx: bool, logy: bool, masked: _Masked) -> np.ndarray:
  """``ys`` with the points a log axis cannot show set to NaN (each finite one counted)."""
  finite = np.isfinite(ys)
  bad_x = np.broadcast_to(xs <= 0, ys.shape) & finite if logx else np.zeros(ys.shape, bool)
  bad_y = (ys <= 0) & finite & ~bad_x if logy else np.zeros(ys.shape, bool)
  masked.nonpositive_x += int(bad_x.sum())
  masked.nonpositive += int(bad_y.sum())
  return np.where(bad_x | bad_y, np.nan, ys)


def _wide(grp: pd.DataFrame, *, seed: str, x: str, value: str) -> tuple[np.ndarray, np.ndarray]:
  """``(xs [K], values [num_seeds, K])`` of one group, x sorted; NaN where a seed lacks an x."""
  wide = grp.pivot(index=seed, columns=x, values=value).sort_index(axis=1)
  return wide.columns.to_numpy(dtype=float), wide.to_numpy(dtype=float)


def _draw_series(ax: Axes, xs: np.ndarray, values: np.ndarray, *, color: str, label: str, band: str,
                 level: float, n_resamples: int, rng: np.random.Generator, logx: bool, logy: bool,
                 masked: _Masked, marker: str = "", linestyle: str = "-") -> None:
  """Median line and band (>= MIN_BAND_SEEDS seeds) or the individual seed lines (fewer seeds)."""
  values = _finite(values, masked)
  num_seeds = values.shape[0]
  if num_seeds >= MIN_BAND_SEEDS:
    med, lo, hi = _summary(values, band=band, level=level, n_resamples=n_resamples, rng=rng)
    ax.plot(xs, _drawable(xs, med, logx=logx, logy=logy, masked=masked), color=color, label=label,
            marker=marker, ms=3, ls=linestyle)
    # A lower edge <= 0 is left to the log scale, which clips it to the bottom of the axes (the band
    # reaches zero); only positions where the whole band is <= 0 (or x <= 0 on a log x) are dropped.
    drop = ~np.isfinite(lo) | ~np.isfinite(hi)
    if logy:
      drop |= hi <= 0
    if logx:
      drop |= xs <= 0
    if not drop.all():
      ax.fill_between(xs, np.where(drop, np.nan, lo), np.where(drop, np.nan, hi), color=color, alpha=0.2,
                      linewidth=0)
    return
  # Too few seeds for a band: show every seed.
  lw, alpha = (0.8, 0.8) if num_seeds > 1 else (1.5, 1.0)
  suffix = f" ({num_seeds} seeds, no band)" if num_seeds > 1 else " (1 seed)"
  for i, row in enumerate(values):
    ax.plot(xs, _drawable(xs, row, logx=logx, logy=logy, masked=masked), color=color, lw=lw, alpha=alpha,
            marker=marker, ms=2, ls=linestyle, label=label + suffix if i == 0 else "_nolegend_")


def _draw_bound(ax: Axes, xs: np.ndarray, values: np.ndarray, *, color: str, logx: bool, logy: bool,
                masked: _Masked, marker: str = "") -> None:
  """The bound: median over seeds, dashed, in the measured line's colour."""
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    med = np.nanmedian(_finite(values, masked), 0)
  ax.plot(xs, _drawable(xs, med, logx=logx, logy=logy, masked=masked), color=color, ls="--", lw=1,
          marker=marker, ms=2, label="_nolegend_")


def _legend(ax: Axes, extra: Sequence[Any] = ()) -> None:
  handles, labels = ax.get_legend_handles_labels()
  handles = list(handles) + list(extra)
  if handles:
    ax.legend(handles=handles, fontsize=7)


def _bound_handle(name: str) -> Line2D:
  return Line2D([], [], color="0.3", ls="--", lw=1, label=f"{name} (dashed)")


# ----------------------------------------------------------------------------- line plots


def error_vs_iteration(df: pd.DataFrame, *, y: str, bound: str | None = None, hue: str | None = None,
                       facet: str | None = None, x: str = "iteration", seed: str | None = "seed",
                       logy: bool = True, ylabel: str | None = None, title: str | None = None,
                       logx: bool = False, band: str = "iqr", level: float = 0.95, n_resamples: int = 2000,
                       rng: np.random.Generator | int | None = 0, into: FigureLike | None = None) -> Figure:
  """Error against iteration: one line per ``hue`` value, one panel per ``facet`` value.

  The line is the median over seeds with a band (IQR or bootstrap CI of the
  median) where >= :data:`MIN_BAND_SEEDS` seeds are finite; with fewer seeds
  the individual seed lines are drawn. The bound is dashed in the same colour.
  Points that a log axis cannot show are masked and counted in the panel title.

  Args:
    df: tidy frame, at most one row per (facet, hue, seed, x).
    y: measured column.
    bound: bound column (usually ``"bound_" + y``), or None.
    hue: column with one line per value, or None for a single line.
    facet: column with one panel per value, or None.
    x: iteration-like numeric column.
    seed: seed column, or None when there is one row per x.
    logy: log y axis.
    ylabel: y label (default: ``y``).
    title: figure title.
    logx: log x axis too (points with x <= 0, e.g. iteration 0, are masked and counted).
    band: ``"iqr"`` or ``"bootstrap"`` (percentile bootstrap CI of the median).
    level: confidence level of the bootstrap band.
    n_resamples: bootstrap resamples.
    rng: numpy Generator or seed of the bootstrap (default 0: reproducible figures).
    into: draw into this (sub)figure instead of a new one (see :func:`panels`).

  Returns:
    The figure.

  Raises:
    ParameterError: a missing or non-numeric column, an invalid ``band``/``level``, or duplicate rows.
  """
  _check_frame(df, y=y, bound=bound, hue=hue, facet=facet, x=x, seed=seed)
  _check_numeric(df, y=y, bound=bound, x=x)
  _check_choice("band", band, BANDS)
  _check_level(level)
  df, seed = _with_seed(df, seed)
  _check_unique(df, [c for c in (facet, hue, seed, x) if c is not None])
  rng = np.random.default_rng(rng)
  panels = _groups(df, facet)
  fig = Figure(figsize=(4.2 * len(panels), 3.4), layout="constrained") if into is None else into
  axes = fig.subplots(1, len(panels), squeeze=False)[0]
  for ax, (fval, part) in zip(axes, panels):
    masked = _Masked()
    if logy:
      ax.set_yscale("log")
    if logx:
      ax.set_xscale("log")
    for i, (hval, grp) in enumerate(_groups(part, hue)):
      color = f"C{i % 10}"
      xs, vals = _wide(grp, seed=seed, x=x, value=y)
      _draw_series(ax, xs, vals, color=color, label=y if hue is None else _label(hue, hval), band=band,
                   level=level, n_resamples=n_resamples, rng=rng, logx=logx, logy=logy, masked=masked)
      if bound is not None:
        bxs, bvals = _wide(grp, seed=seed, x=x, value=bound)
        _draw_bound(ax, bxs, bvals, color=color, logx=logx, logy=logy, masked=masked)
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel or y)
    if fval is not None:
      ax.set_title(_label(facet, fval))
    masked.note(ax)
    _legend(ax, [_bound_handle(bound)] if bound is not None else [])
  if title:
    fig.suptitle(title, fontsize=10)
  return fig


def value_vs_parameter(df: pd.DataFrame, *, x: str, ys: Sequence[str], bounds: Sequence[str | None] | None = None,
                       hue: str, seed: str | None = "seed", logx: bool = True, logy: bool = True,
                       ylabel: str | None = None, title: str | None = None, band: str = "iqr",
                       level: float = 0.95, n_resamples: int = 2000,
                       rng: np.random.Generator | int | None = 0, into: FigureLike | None = None) -> Figure:
  """Measured quantities against a parameter, one panel per ``hue`` value, bounds dashed.

  Each measured column is the median over seeds with a band (as in
  :func:`error_vs_iteration`); its bound is the median over seeds of the bound
  column, dashed in the same colour.

  Args:
    df: tidy frame, at most one row per (hue, seed, x).
    x: numeric parameter column.
    ys: measured columns.
    bounds: one bound column (or None) per measured column; None for no bounds.
    hue: column with one panel per value.
    seed: seed column, or None.
    logx: log x axis.
    logy: log y axis.
    ylabel: y label (default ``"value"``).
    title: figure title.
    band: ``"iqr"`` or ``"bootstrap"``.
    level: confidence level of the bootstrap band.
    n_resamples: bootstrap resamples.
    rng: numpy Generator or seed of the bootstrap.
    into: draw into this (sub)figure instead of a new one (see :func:`panels`).

  Returns:
    The figure.

  Raises:
    ParameterError: a missing or non-numeric column, ``bounds`` of another length than ``ys``,
      an invalid ``band``/``level``, or duplicate rows.
  """
  ys = [ys] if isinstance(ys, str) else list(ys)
  bounds = [None] * len(ys) if bounds is None else ([bounds] if isinstance(bounds, str) else list(bounds))
  if len(bounds) != len(ys):
    raise ParameterError(f"bounds has {len(bounds)} entries but ys has {len(ys)}; give one bound (or None) per y")
  _check_frame(df, x=x, hue=hue, seed=seed, **{f"ys[{i}]": c for i, c in enumerate(ys)},
               **{f"bounds[{i}]": c for i, c in enumerate(bounds)})
  _check_numeric(df, x=x, **{f"ys[{i}]": c for i, c in enumerate(ys)},
                 **{f"bounds[{i}]": c for i, c in enumerate(bounds)})
  _check_choice("band", band, BANDS)
  _check_level(level)
  df, seed = _with_seed(df, seed)
  _check_unique(df, [hue, seed, x])
  rng = np.random.default_rng(rng)
  panels = _groups(df, hue)
  fig = Figure(figsize=(4.2 * len(panels), 3.4), layout="constrained") if into is None else into
  axes = fig.subplots(1, len(panels), squeeze=False)[0]
  for ax, (hval, grp) in zip(axes, panels):
    masked = _Masked()
    if logx:
      ax.set_xscale("log")
    if logy:
      ax.set_yscale("log")
    extra = []
    for i, (col, bcol) in enumerate(zip(ys, bounds)):
      color = f"C{i % 10}"
      xs, vals = _wide(grp, seed=seed, x=x, value=col)
      _draw_series(ax, xs, vals, color=color, label=col, band=band, level=level, n_resamples=n_resamples,
                   rng=rng, logx=logx, logy=logy, masked=masked, marker="o")
      if bcol is not None:
        bxs, bvals = _wide(grp, seed=seed, x=x, value=bcol)
        _draw_bound(ax, bxs, bvals, color=color, logx=logx, logy=logy, masked=masked)
        extra.append(Line2D([], [], color=color, ls="--", lw=1, label=bcol))
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel or "value")
    ax.set_title(_label(hue, hval))
    masked.note(ax)
    _legend(ax, extra)
  if title:
    fig.suptitle(title, fontsize=10)
  return fig


# ----------------------------------------------------------------------------- heatmap


def _axis_cells(values: Sequence[Any], *, log: bool, role: str, col: str) -> tuple[np.ndarray, np.ndarray, bool]:
  """Cell centres and edges of one heatmap axis.

  Numeric values sit at their own positions, with geometric (``log``) or
  arithmetic mid-points as cell edges; other values are categories at 0..n-1.

  Returns:
    ``(centres [n], edges [n + 1], categorical)``.
  """
  vals = np.asarray(values)
  if not np.issubdtype(vals.dtype, np.number) or np.issubdtype(vals.dtype, np.bool_):
    pos = np.arange(len(vals), dtype=float)
    return pos, np.arange(len(vals) + 1, dtype=float) - 0.5, True
  vals = vals.astype(float)
  if log:
    if (vals <= 0).any():
      raise ParameterError(f"log{role}=True needs positive {role} values but column {col!r} has "
                           f"{vals[vals <= 0][0]:g}; pass log{role}=False")
    t = np.log(vals)
  else:
    t = vals
  if len(t) == 1:
    half = np.array([np.log(10.0) / 2 if log else max(0.5, abs(t[0]) / 2)])
  else:
    d = np.diff(t) / 2
    half = np.concatenate([d[:1], d])
  mids = (t[:-1] + t[1:]) / 2
  edges = np.concatenate([[t[0] - half[0]], mids, [t[-1] + half[-1]]])
  return vals, (np.exp(edges) if log else edges), False


def _set_ticks(ax: Axes, which: str, centres: np.ndarray, values: Sequence[Any], categorical: bool) -> None:
  axis = ax.xaxis if which == "x" else ax.yaxis
  if categorical or len(centres) <= 12:
    labels = [f"{v:g}" if isinstance(v, (float, np.floating)) else str(v) for v in values]
    (ax.set_xticks if which == "x" else ax.set_yticks)(centres, labels=labels)
    axis.set_minor_locator(NullLocator())


def heatmap(df: pd.DataFrame, *, x: str, y: str, value: str, status: str | None = None, logx: bool = True,
            logy: bool = True, reduce: str = "median", seed: str | None = "seed",
            cmap: str | mcolors.Colormap = "viridis", title: str | None = None, norm: str = "auto", failed: Sequence[str] = FAILED_STATUSES,
            xlabel: str | None = None, ylabel: str | None = None, colorbar_label: str | None = None,
            into: FigureLike | None = None) -> Figure:
  """A 2-D grid of ``value`` (reduced over seeds) over two setting columns; failed cells hatched.

  A cell is *failed* when any of its rows has a ``status`` in ``failed``
  (case-insensitive) or a NaN/inf ``value``: it is drawn grey and hatched
  ``///`` (legend entry "failed/diverged"), never coloured, and it does not
  take part in the colour normalisation. Combinations with no rows are left
  blank (legend entry "no data"). Numeric setting columns sit at their
  values (log axes with geometric cell edges when ``logx``/``logy``, ticks at
  the values when there are at most 12); other columns are categorical axes.

  Args:
    df: tidy frame, at most one row per (x, y, seed).
    x: setting column on the x axis.
    y: setting column on the y axis.
    value: numeric measured column.
    status: column of run statuses (e.g. "ok", "failed", "diverged"), or None.
    logx: log x axis (numeric x only; values must be positive).
    logy: log y axis (numeric y only; values must be positive).
    reduce: ``"median"``, ``"mean"``, ``"min"`` or ``"max"`` over seeds.
    seed: seed column, or None for one row per cell.
    cmap: a matplotlib colormap or its name.
    title: axes title.
    norm: ``"auto"`` (log when the successful values are positive and span more than 2 decades),
      ``"log"`` or ``"linear"``.
    failed: status values that mark a failed run.
    xlabel: x label (default ``x``).
    ylabel: y label (default ``y``).
    colorbar_label: colorbar label (default ``"<reduce> of <value> over seeds"``).
    into: draw into this (sub)figure instead of a new one (see :func:`panels`).

  Returns:
    The figure; ``fig.axes[0].collections[0]`` is the QuadMesh and the hatched
    cells are the axes' :class:`~matplotlib.patches.Rectangle` patches.

  Raises:
    ParameterError: a missing column, non-numeric ``value``, invalid ``reduce``/``norm``/``cmap``,
      non-positive values on a log axis, ``norm="log"`` with non-positive values, or duplicate rows.
  """
  _check_frame(df, x=x, y=y, value=value, status=status, seed=seed)
  _check_numeric(df, value=value)
  _check_choice("reduce", reduce, tuple(REDUCERS))
  _check_choice("norm", norm, NORMS)
  if isinstance(failed, str):
    failed = (failed,)
  try:
    colormap = matplotlib.colormaps[cmap] if isinstance(cmap, str) else cmap
  except KeyError:
    raise ParameterError(f"cmap={cmap!r} is not a matplotlib colormap; e.g. 'viridis', 'magma', 'cividis'") from None
  df, seed = _with_seed(df, seed)
  _check_unique(df, [x, y, seed])

  vals = df[value].to_numpy(dtype=float)
  bad_row = ~np.isfinite(vals)
  if status is not None:
    st = df[status].astype("string").str.strip().str.lower()
    bad_row |= st.isin([s.lower() for s in failed]).fillna(False).to_numpy(dtype=bool)
  xv = np.sort(df[x].unique())
  yv = np.sort(df[y].unique())
  xc, xe, xcat = _axis_cells(xv, log=logx, role="x", col=x)
  yc, ye, ycat = _axis_cells(yv, log=logy, role="y", col=y)
  xi = pd.Index(xv).get_indexer(df[x])
  yi = pd.Index(yv).get_indexer(df[y])

  grid = np.full((len(yv), len(xv)), np.nan)
  is_bad = np.zeros(grid.shape, bool)
  present = np.zeros(grid.shape, bool)
  reducer = REDUCERS[reduce]
  cells = pd.DataFrame({"i": yi, "j": xi, "v": vals, "bad": bad_row})
  for (i, j), cell in cells.groupby(["i", "j"], sort=True):
    present[i, j] = True
    if cell["bad"].any():
      is_bad[i, j] = True
    else:
      grid[i, j] = reducer(cell["v"].to_numpy())

  good = grid[present & ~is_bad]
  if norm == "log" and good.size and (good <= 0).any():
    raise ParameterError(f"norm='log' needs positive {value!r} values in the successful cells; min is "
                         f"{good.min():g}; use norm='linear' or 'auto'")
  if good.size == 0:
    cnorm: mcolors.Normalize = mcolors.Normalize(0.0, 1.0)
  elif norm == "log" or (norm == "auto" and (good > 0).all() and good.max() / good.min() > 100.0):
    cnorm = mcolors.LogNorm(good.min(), good.max())
  else:
    cnorm = mcolors.Normalize(good.min(), good.max())

  fig = Figure(figsize=(5.0, 3.8), layout="constrained") if into is None else into
  ax = fig.subplots()
  if logx and not xcat:
    ax.set_xscale("log")
  if logy and not ycat:
    ax.set_yscale("log")
  mesh = ax.pcolormesh(xe, ye, np.ma.masked_array(grid, mask=~present | is_bad), cmap=colormap, norm=cnorm)
  for i, j in zip(*np.nonzero(is_bad)):
    ax.add_patch(Rectangle((xe[j], ye[i]), xe[j + 1] - xe[j], ye[i + 1] - ye[i], facecolor=_HATCH_FACE,
                           edgecolor=_HATCH_EDGE, hatch=_HATCH, linewidth=0, label="_nolegend_"))
  ax.set_xlim(xe[0], xe[-1])
  ax.set_ylim(ye[0], ye[-1])
  _set_ticks(ax, "x", xc, xv, xcat)
  _set_ticks(ax, "y", yc, yv, ycat)
  fig.colorbar(mesh, ax=ax, label=colorbar_label or f"{reduce} of {value} over seeds")
  handles = []
  if is_bad.any():
    handles.append(Patch(facecolor=_HATCH_FACE, edgecolor=_HATCH_EDGE, hatch=_HATCH,
                         label=f"failed/diverged ({int(is_bad.sum())} cell{'s' if is_bad.sum() != 1 else ''})"))
  if (~present).any():
    handles.append(Patch(facecolor="white", edgecolor="0.6", label=f"no data ({int((~present).sum())})"))
  if handles:
    ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=2,
              frameon=False)
  ax.set_xlabel(xlabel or x)
  ax.set_ylabel(ylabel or y)
  if title:
    ax.set_title(title, fontsize=10)
  return fig


# ----------------------------------------------------------------------------- rates


class RateFit(NamedTuple):
  """Least-squares fit of ``log y = intercept + slope * log x`` (or ``* x`` for a geometric rate).

  Logs are natural. ``stderr`` is the standard error of the slope (NaN with
  only 2 points); ``r2`` the coefficient of determination in log space (NaN
  when log y is constant); ``n`` the number of points used.
  """
  slope: float
  intercept: float
  stderr: float
  r2: float
  n: int

  def predict(self, x: np.ndarray | float, *, log_x: bool = True) -> np.ndarray:
    """The fitted curve ``exp(intercept) * x**slope`` (``exp(intercept + slope * x)`` when not ``log_x``)."""
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
      return np.exp(self.intercept + self.slope * (np.log(x) if log_x else x))


def fit_rate(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, *, log_x: bool = True) -> RateFit:
  """Fits a rate by least squares: log y against log x (power law) or against x (geometric).

  With ``log_x=True`` the slope is the exponent of ``y ~ C x^slope``; with
  ``log_x=False`` it is the log-rate of ``y ~ C exp(slope x)``, e.g.
  ``log(0.9)`` for ``y = 2 * 0.9**k``. Only points with finite positive y
  (and positive x when ``log_x``) are used.

  Args:
    x: abscissae.
    y: values.
    log_x: regress on log x (power law) rather than x (geometric rate).

  Returns:
    The :class:`RateFit`.

  Raises:
    ParameterError: ``x`` and ``y`` differ in length, fewer than 2 usable points, or no spread in x.
  """
  xa = np.asarray(x, dtype=float).ravel()
  ya = np.asarray(y, dtype=float).ravel()
  if xa.shape != ya.shape:
    raise ParameterError(f"x has {xa.size} values but y has {ya.size}; they must pair up")
  ok = np.isfinite(xa) & np.isfinite(ya) & (ya > 0)
  if log_x:
    ok &= xa > 0
  n = int(ok.sum())
  if n < 2:
    need = "finite x > 0 and y > 0" if log_x else "finite x and y > 0"
    raise ParameterError(f"fit_rate needs at least 2 usable points ({need}); got {n} of {xa.size}")
  u = np.log(xa[ok]) if log_x else xa[ok]
  v = np.log(ya[ok])
  du, dv = u - u.mean(), v - v.mean()
  sxx = float(du @ du)
  if sxx == 0.0:
    raise ParameterError(f"fit_rate needs at least 2 distinct x values; all usable x equal {xa[ok][0]:g}")
  slope = float(du @ dv) / sxx
  intercept = float(v.mean() - slope * u.mean())
  sse = float(np.sum((dv - slope * du) ** 2))
  sst = float(dv @ dv)
  stderr = float(np.sqrt(sse / (n - 2) / sxx)) if n > 2 else float("nan")
  r2 = 1.0 - sse / sst if sst > 0 else float("nan")
  return RateFit(slope, intercept, stderr, r2, n)


def rate_plot(df: pd.DataFrame, *, x: str, y: str, hue: str | None = None,
              theory_slope: float | Mapping[Hashable, float] | None = None, seed: str | None = "seed",
              log_x: bool = True, title: str | None = None, fit_range: tuple[float, float] | None = None,
              xlabel: str | None = None, ylabel: str | None = None, into: FigureLike | None = None) -> Figure:
  """Data (median over seeds, IQR band with >= 3 seeds) on log axes, the fitted rate and the theory slope.

  The rate is fitted by :func:`fit_rate` to the median curve (restricted to
  ``fit_range`` when given) and drawn as a solid line over the fitted range;
  the theory slope, when given, is a dotted line through the centre of the
  fitted points. The axes carry one annotation per hue value:
  ``"fitted slope s ± se vs theory t"`` (log-rate and per-step factor when
  ``log_x=False``).

  Args:
    df: tidy frame, at most one row per (hue, seed, x).
    x: numeric column (problem size, iteration, sample count...).
    y: numeric positive column (an error).
    hue: column with one line and one fit per value, or None.
    theory_slope: the predicted slope, or a mapping hue value -> slope, or None.
    seed: seed column, or None.
    log_x: log x axis and power-law fit; False: linear x and geometric fit (log y vs x).
    title: axes title.
    fit_range: ``(x_min, x_max)``, inclusive, of the points the fit uses.
    xlabel: x label (default ``x``).
    ylabel: y label (default ``y``).
    into: draw into this (sub)figure instead of a new one (see :func:`panels`).

  Returns:
    The figure.

  Raises:
    ParameterError: a missing or non-numeric column, a bad ``fit_range``, a ``theory_slope``
      mapping without an entry for a hue value, or duplicate rows.
  """
  _check_frame(df, x=x, y=y, hue=hue, seed=seed)
  _check_numeric(df, x=x, y=y)
  if fit_range is not None and (len(fit_range) != 2 or not fit_range[0] <= fit_range[1]):
    raise ParameterError(f"fit_range={fit_range!r} must be a pair (x_min, x_max) with x_min <= x_max")
  df, seed = _with_seed(df, seed)
  _check_unique(df, [c for c in (hue, seed, x) if c is not None])
  fig = Figure(figsize=(4.8, 3.6), layout="constrained") if into is None else into
  ax = fig.subplots()
  ax.set_yscale("log")
  if log_x:
    ax.set_xscale("log")
  masked = _Masked()
  notes = []
  rng = np.random.default_rng(0)
  for i, (hval, grp) in enumerate(_groups(df, hue)):
    color = f"C{i % 10}"
    name = y if hue is None else _label(hue, hval)
    xs, vals = _wide(grp, seed=seed, x=x, value=y)
    _draw_series(ax, xs, vals, color=color, label=name, band="iqr", level=0.95, n_resamples=1, rng=rng,
                 logx=log_x, logy=True, masked=masked, marker="o", linestyle="none")
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", RuntimeWarning)
      med = np.nanmedian(np.where(np.isfinite(vals), vals, np.nan), 0)
    use = np.ones(xs.shape, bool) if fit_range is None else (xs >= fit_range[0]) & (xs <= fit_range[1])
    if isinstance(theory_slope, Mapping):
      if hval not in theory_slope:
        raise ParameterError(f"theory_slope has no entry for {name}; keys are {list(theory_slope)}")
      theory = theory_slope[hval]
    else:
      theory = theory_slope
    try:
      fit = fit_rate(xs[use], med[use], log_x=log_x)
    except ParameterError as e:
      notes.append((color, f"{name + ': ' if hue else ''}no fit ({e})"))
      continue
    ok = use & np.isfinite(med) & (med > 0) & ((xs > 0) if log_x else True)
    xf = xs[ok]
    grid = np.geomspace(xf.min(), xf.max(), 50) if log_x else np.linspace(xf.min(), xf.max(), 50)
    ax.plot(grid, fit.predict(grid, log_x=log_x), color=color, lw=1.2, alpha=0.8, label="_nolegend_")
    if theory is not None:
      u = np.log(xf) if log_x else xf
      centre_u, centre_v = u.mean(), np.log(med[ok]).mean()
      gu = np.log(grid) if log_x else grid
      ax.plot(grid, np.exp(centre_v + float(theory) * (gu - centre_u)), color=color, ls=":", lw=1.2,
              label="_nolegend_")
    se = "n/a" if not np.isfinite(fit.stderr) else f"{fit.stderr:.3g}"
    text = f"{name + ': ' if hue else ''}fitted slope {fit.slope:.3f} ± {se}"
    if theory is not None:
      text += f" vs theory {float(theory):g}"
    if not log_x:
      text += f" (factor e^s = {np.exp(fit.slope):.4g}/unit x)"
    notes.append((color, text))
  for k, (color, text) in enumerate(notes):
    ax.text(0.02, 0.03 + 0.07 * k, text, transform=ax.transAxes, color=color, fontsize=7, va="bottom",
            bbox=dict(facecolor="white", alpha=0.8, edgecolor="none", pad=1))
  ax.set_xlabel(xlabel or x)
  ax.set_ylabel(ylabel or y)
  if title:
    ax.set_title(title, fontsize=10)
  masked.note(ax)
  extra = [Line2D([], [], color="0.3", lw=1.2, label="fit")]
  if theory_slope is not None:
    extra.append(Line2D([], [], color="0.3", ls=":", lw=1.2, label="theory slope"))
  _legend(ax, extra)
  return fig


# ----------------------------------------------------------------------------- output


_UMASK = os.umask(0o022)  # read the process umask once, so written files get the usual modes (not mkstemp's 0600)
os.umask(_UMASK)


def _atomic_write(path: Path, write: Callable[[Any], Any]) -> None:
  """Writes ``path`` through ``write(binary file)`` into a temporary sibling, then renames it into place.

  The temporary file is fsynced before ``os.replace`` and the folder after it, so ``path`` holds either
  its previous contents or the new ones, never a part; an interrupted write leaves no temporary file.
  A ``path`` that is a symlink is replaced by the new file, never written through.
  """
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      os.fchmod(f.fileno(), 0o666 & ~_UMASK)
      write(f)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise
  try:
    dfd = os.open(path.parent, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(dfd)
  except OSError:  # some file systems cannot fsync a folder; the file itself is complete
    pass
  finally:
    os.close(dfd)


# No dates and no version-dependent producer strings: the same figure gives the same bytes.
_PDF_METADATA = {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": "mdptheory"}
_PNG_METADATA = {"Software": None}


CSV_MAX_ROWS = 5000   # beyond this, the CSV keeps log-spaced iterations only (the full data stays in results/)


def thin_iterations(data: pd.DataFrame, max_rows: int | None = CSV_MAX_ROWS, *, column: str = "iteration") -> pd.DataFrame:
  """The rows of ``data`` at log-spaced values of ``column`` (first and last kept), at most ~``max_rows`` rows.

  Frames with at most ``max_rows`` rows, or without ``column``, are returned unchanged.
  """
  if max_rows is None or len(data) <= max_rows or column not in data.columns:
    return data
  its = np.sort(data[column].unique())
  per_value = len(data) / len(its)
  n_keep = max(2, int(max_rows // max(per_value, 1.0)))
  if n_keep >= len(its):
    return data
  idx = np.unique(np.round(np.geomspace(1, len(its), n_keep)).astype(int) - 1)
  return data[data[column].isin(its[idx])]


def save_figure(fig: Figure, data: pd.DataFrame, stem: str | os.PathLike, *, dpi: int = 130,
                max_csv_rows: int | None = CSV_MAX_ROWS) -> list[Path]:
  """Writes ``stem.png``, ``stem.pdf`` and ``stem.csv`` (the data behind the figure), each atomically.

  The PNG and PDF carry no timestamp or software version, so re-saving the
  same figure gives identical bytes. The CSV holds every column of ``data``
  (a non-default index becomes columns), with floats written in their
  shortest round-tripping form, and every row when there are at most
  ``max_csv_rows``; longer traces keep log-spaced iterations
  (:func:`thin_iterations`) so that committed CSVs stay small; the full data is
  in the results store.

  Args:
    fig: the figure.
    data: the data behind it.
    stem: output path without extension (any extension is replaced).
    dpi: PNG resolution.
    max_csv_rows: row budget of the CSV (None: every row).

  Returns:
    The three paths, PNG, PDF, CSV.

  Raises:
    ParameterError: ``fig`` is not a Figure, ``data`` not a DataFrame, or ``stem`` empty or with a NUL byte.
  """
  if not isinstance(fig, Figure):
    raise ParameterError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
  if not isinstance(data, pd.DataFrame):
    raise ParameterError(f"data must be a pandas DataFrame, got {type(data).__name__}")
  if not isinstance(stem, (str, os.PathLike)) or not str(stem).strip() or "\0" in str(stem):
    raise ParameterError(f"stem must be a non-empty path without NUL bytes, got {stem!r}")
  stem = Path(stem)
  paths = []
  for ext, meta in (("png", _PNG_METADATA), ("pdf", _PDF_METADATA)):
    p = stem.with_suffix(f".{ext}")
    _atomic_write(p, lambda f, ext=ext, meta=meta: fig.savefig(f, format=ext, dpi=dpi, metadata=meta))
    paths.append(p)
  if not isinstance(data.index, pd.RangeIndex) or data.index.name is not None:
    data = data.reset_index()
  data = thin_iterations(data, max_csv_rows)
  p = stem.with_suffix(".csv")
  _atomic_write(p, lambda f: f.write(data.to_csv(index=False).encode()))
  paths.append(p)
  return paths
