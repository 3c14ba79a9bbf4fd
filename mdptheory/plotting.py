"""Figures for studies: errors on a log scale with the theoretical bound overlaid.

Functions build and return :class:`matplotlib.figure.Figure` objects without
pyplot (no global state, no display needed); :func:`save_figure` writes a PNG,
a PDF and the CSV of the data behind the figure, each atomically.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def _band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Median and interquartile range over seeds (axis 0)."""
  return (np.nanmedian(values, 0), np.nanpercentile(values, 25, 0), np.nanpercentile(values, 75, 0))


def error_vs_iteration(df: pd.DataFrame, *, y: str, bound: str | None = None, hue: str,
                       facet: str | None = None, x: str = "iteration", seed: str = "seed",
                       logy: bool = True, ylabel: str | None = None, title: str | None = None) -> Figure:
  """One line per ``hue`` value: the median over seeds with an IQR band (only with >= 3 seeds).

  The bound column, when given, is drawn dashed in the same colour (median over seeds).
  With ``facet``, one panel per value of that column.
  """
  facets = [None] if facet is None else sorted(df[facet].unique())
  fig = Figure(figsize=(4.2 * len(facets), 3.4), layout="constrained")
  axes = fig.subplots(1, len(facets), squeeze=False)[0]
  for ax, fval in zip(axes, facets):
    part = df if fval is None else df[df[facet] == fval]
    for i, (hval, grp) in enumerate(sorted(part.groupby(hue), key=lambda t: t[0])):
      color = f"C{i}"
      wide = grp.pivot_table(index=seed, columns=x, values=y, aggfunc="first")
      xs = wide.columns.to_numpy()
      med, lo, hi = _band(wide.to_numpy())
      ax.plot(xs, med, color=color, label=f"{hue}={hval:g}" if isinstance(hval, float) else f"{hue}={hval}")
      if wide.shape[0] >= 3:
        ax.fill_between(xs, lo, hi, color=color, alpha=0.2, linewidth=0)
      if bound is not None:
        bwide = grp.pivot_table(index=seed, columns=x, values=bound, aggfunc="first")
        ax.plot(bwide.columns.to_numpy(), np.nanmedian(bwide.to_numpy(), 0), color=color, ls="--", lw=1)
    if logy:
      ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel or y)
    if fval is not None:
      ax.set_title(f"{facet}={fval}")
    ax.legend(fontsize=7)
  if title:
    fig.suptitle(title, fontsize=10)
  return fig


def value_vs_parameter(df: pd.DataFrame, *, x: str, ys: Sequence[str], bounds: Sequence[str | None],
                       hue: str, seed: str = "seed", logx: bool = True, logy: bool = True,
                       ylabel: str | None = None, title: str | None = None) -> Figure:
  """Measured quantities (median over seeds, IQR band with >= 3 seeds) against a parameter, bounds dashed."""
  hues = sorted(df[hue].unique())
  fig = Figure(figsize=(4.2 * len(hues), 3.4), layout="constrained")
  axes = fig.subplots(1, len(hues), squeeze=False)[0]
  for ax, hval in zip(axes, hues):
    grp = df[df[hue] == hval]
    for i, (col, bcol) in enumerate(zip(ys, bounds)):
      wide = grp.pivot_table(index=seed, columns=x, values=col, aggfunc="max")
      xs = wide.columns.to_numpy()
      med, lo, hi = _band(wide.to_numpy())
      ax.plot(xs, med, "o-", color=f"C{i}", label=col, ms=3)
      if wide.shape[0] >= 3:
        ax.fill_between(xs, lo, hi, color=f"C{i}", alpha=0.2, linewidth=0)
      if bcol is not None:
        b = grp.groupby(x)[bcol].max()
        ax.plot(b.index.to_numpy(), b.to_numpy(), "--", color=f"C{i}", lw=1, label=bcol)
    if logx:
      ax.set_xscale("log")
    if logy:
      ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel or "value")
    ax.set_title(f"{hue}={hval}")
    ax.legend(fontsize=7)
  if title:
    fig.suptitle(title, fontsize=10)
  return fig


def _atomic_write(path: Path, write) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def save_figure(fig: Figure, data: pd.DataFrame, stem: str | os.PathLike) -> list[Path]:
  """Writes ``stem.png``, ``stem.pdf`` and ``stem.csv`` (the data behind the figure), atomically."""
  stem = Path(stem)
  paths = []
  for ext in ("png", "pdf"):
    p = stem.with_suffix(f".{ext}")
    _atomic_write(p, lambda f, ext=ext: fig.savefig(f, format=ext, dpi=130,
                                                    metadata={"CreationDate": None} if ext == "pdf" else None))
    paths.append(p)
  p = stem.with_suffix(".csv")
  _atomic_write(p, lambda f: f.write(data.to_csv(index=False, float_format="%.10g").encode()))
  paths.append(p)
  return paths
