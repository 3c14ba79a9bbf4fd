r"""Reward over-optimization in miniature: gold reward against d = sqrt(KL) for BoN and KL-RL on a fitted proxy.

Gao, Schulman & Hilton, *Scaling Laws for Reward Model Overoptimization*, ICML 2023, arXiv 2210.10760
(THEORY.md §7.4). The functional forms R_bon(d) = d(α − β d) and R_RL(d) = d(α − β log d) are known to us
from consistent secondary sources only [S]; their peaks are derived here [D]: d* = α/(2β), R* = α²/(4β)
and d* = e^{α/β − 1}, R* = β e^{α/β − 1}.

Setting (``envs/bandits.py: overoptimization_bandit``): M = 4096 responses with features x ~ N(0, I_8),
uniform π_ref, gold reward r* = x_1 + 2 x_2 − 2 x_2² (x_2 is good only in moderation). A linear proxy
r̂ = w·x is fitted by Bradley–Terry maximum likelihood on ``num_pairs`` pairs drawn from π_ref and labelled
by the gold BT model; BoN (N = 1..M) and the KL-regularized optimum π ∝ π_ref e^{r̂/β} then optimize the
proxy, and their exact gold gain E_π r* − E_{π_ref} r* is measured against d = sqrt(KL(π ‖ π_ref))
(exact KL, not the analytic log N − (N−1)/N, which overstates it for discrete rewards, THEORY.md §7.2).
The forms are fitted by least squares (they are linear in α, β) on d <= d_fit = sqrt(½ log M), the range
where the laws still spread over about sqrt(M) responses (beyond, the finite response set saturates the
curves at the single argmax of the proxy).

Claim checked (CF-7 [D] for the peaks, [S] for the forms), over 20 instances (seeds) per data size:

* the peak formulas equal a numerical maximization of every fitted curve (relative 1e-6);
* the forms describe the curves: median R² >= 0.9 for the BoN form on BoN and the RL form on KL-RL;
* over-optimization: the gold gain at d_fit is below the gold gain at d_fit / 2 on significantly many
  (instance, data size) pairs, for BoN and for KL-RL (one-sided sign test, p < 0.01);
* reported, not gated: the fitted peaks against the measured ones, and whether more proxy data raises
  the gold peak (Gao et al.'s trend; a paired sign test between the smallest and the largest data size).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import optimize
from scipy.stats import binomtest

from mdptheory import alignment as al
from mdptheory.claims import ClaimResult
from mdptheory.envs.bandits import overoptimization_bandit

NAME = "cf_overopt"
VERSION = "1"

MAX_PAIRS = 1000          # pairs are drawn once per instance; a data size uses the first num_pairs of them
R2_MIN = 0.9
SIGN_P = 0.01
PEAK_RTOL = 1e-6
NUM_RL_POINTS = 41


@dataclasses.dataclass(frozen=True)
class Config:
  """One instance (``seed``) and one proxy data size ``num_pairs`` (<= 1000)."""
  num_pairs: int = 1000
  num_responses: int = 4096
  num_features: int = 8
  lure: float = 2.0
  goodhart: float = 2.0
  l2: float = 1e-3
  seed: int = 0

  @classmethod
  def quick(cls) -> "Config":
    return cls()


GRID = {"num_pairs": (30, 100, 300, 1000)}
QUICK_GRID = {"num_pairs": (30, 1000)}
SEEDS, QUICK_SEEDS = 20, 20
BATCH = ("seed",)
MONITOR = ("d", "gold_gain")


def d_fit(num_responses: int) -> float:
  """The fit range d <= sqrt(½ log M)."""
  return math.sqrt(0.5 * math.log(num_responses))


def _peak_numeric(alpha: float, beta: float, form: str, d_max: float) -> float:
  """argmax of the fitted curve on (0, d_max] by bounded scalar minimization (a check of the peak formulas)."""
  f = (lambda d: -(alpha * d - beta * d * d)) if form == "bon" else (lambda d: -(alpha * d - beta * d * math.log(d)))
  res = optimize.minimize_scalar(f, bounds=(1e-12, d_max), method="bounded", options={"xatol": 1e-12})
  return float(res.x)


def run(cfg: Config) -> pd.DataFrame:
  """One row per curve point (method ∈ {bon, rl}); the cell's fits and summaries repeated on every row."""
  if cfg.num_pairs > MAX_PAIRS:
    raise ValueError(f"num_pairs={cfg.num_pairs} exceeds the {MAX_PAIRS} pairs drawn per instance")
  bandit = overoptimization_bandit(cfg.seed, cfg.num_responses, cfg.num_features, lure=cfg.lure,
                                   goodhart=cfg.goodhart)
  x, p, gold = np.asarray(bandit.features), bandit.pi_ref, bandit.gold
  first, second, wins = al.sample_preferences(np.random.default_rng([cfg.seed, 13]), p, gold, num_pairs=MAX_PAIRS)
  n = cfg.num_pairs
  w = al.bradley_terry_mle(x, first[:n], second[:n], wins[:n], l2=cfg.l2)
  proxy = x @ w
  M, dmax = cfg.num_responses, d_fit(cfg.num_responses)
  ns = np.unique(np.round(np.geomspace(1, M, 60)))
  # KL-RL points: λ = 1/β on a log grid in units of the proxy's spread (from π_ref up to near the argmax).
  lams = np.concatenate([[0.0], np.geomspace(0.02, 20.0, NUM_RL_POINTS - 1)]) / np.std(proxy)
  c = al.overoptimization_curves(p, proxy, gold, num_samples=ns, lams=lams)
  frames = []
  for method, d, g, pr, param in (("bon", c.bon_d, c.bon_gold, c.bon_proxy, ns),
                                  ("rl", c.rl_d, c.rl_gold, c.rl_proxy, lams)):
    d, g, pr = (np.asarray(v, np.float64) for v in (d, g, pr))
    inside = d <= dmax + 1e-12
    fit = al.fit_gao(d[inside], g[inside], form=method)
    k = int(np.argmax(np.where(inside, g, -np.inf)))
    # The search interval is 4x wider than the claimed peak, so a wrong formula would be caught.
    peak_num = (_peak_numeric(fit.alpha, fit.beta, method, 4.0 * max(fit.peak_d, 1.0))
                if 0 < fit.peak_d < 1e6 else np.nan)
    frames.append(pd.DataFrame({
        "method": method, "param": param, "d": d, "kl": d * d, "gold_gain": g, "proxy_gain": pr,
        "in_fit": inside, "fitted_gain": (fit.alpha * d - fit.beta * (d * d if method == "bon" else
                                                                     d * np.log(np.where(d > 0, d, 1.0)))),
        "d_analytic": np.sqrt(np.asarray(al.bon_kl_bound(param))) if method == "bon" else np.nan,
        "alpha": fit.alpha, "beta_fit": fit.beta, "r2": fit.r2, "peak_d_fit": fit.peak_d,
        "peak_gain_fit": fit.peak_gain, "peak_d_numeric": peak_num,
        "peak_d_measured": d[k], "peak_gain_measured": g[k],
        "gain_half": float(np.interp(dmax / 2, d, g)), "gain_end": float(np.interp(dmax, d, g)), "d_fit": dmax,
    }))
  df = pd.concat(frames, ignore_index=True)
  meta = {"study": NAME, "env": "bandit_overoptimization", "num_pairs": n, "num_responses": M,
          "num_features": cfg.num_features, "lure": cfg.lure, "goodhart": cfg.goodhart, "seed": cfg.seed,
          "w_1": w[0], "w_2": w[1]}
  return df.assign(**meta)[list(meta) + list(df.columns)]


def _cells(df: pd.DataFrame) -> pd.DataFrame:
  """One row per (num_pairs, seed, method) with the cell's summaries."""
  keys = ["num_pairs", "seed", "method"]
  return df.groupby(keys, as_index=False).first()


def check(df: pd.DataFrame) -> list[ClaimResult]:
  cells = _cells(df.reset_index(drop=True))
  peaked = cells[np.isfinite(cells["peak_d_numeric"])]
  peak_err = float((np.abs(peaked["peak_d_fit"] - peaked["peak_d_numeric"]) / peaked["peak_d_numeric"]).max()) \
      if len(peaked) else 0.0
  parts, ok = [], peak_err <= PEAK_RTOL
  worst_r2 = np.inf
  for method, grp in cells.groupby("method"):
    med_r2 = float(grp["r2"].median())
    worst_r2 = min(worst_r2, med_r2)
    drops = int((grp["gain_end"] < grp["gain_half"]).sum())
    p = float(binomtest(drops, len(grp), 0.5, alternative="greater").pvalue)
    ok &= med_r2 >= R2_MIN and p < SIGN_P
    fit_vs_meas = np.abs(grp["peak_d_fit"] / grp["peak_d_measured"] - 1.0)
    by_n = "; ".join(
        f"{int(n)} pairs: d* meas {g['peak_d_measured'].median():.2f} fit {g['peak_d_fit'].median():.2f}, "
        f"R* meas {g['peak_gain_measured'].median():.2f} fit {g['peak_gain_fit'].median():.2f}"
        for n, g in grp.groupby("num_pairs"))
    sizes = sorted(grp["num_pairs"].unique())
    trend = ""
    if len(sizes) > 1:
      lo = grp[grp["num_pairs"] == sizes[0]].set_index("seed")["peak_gain_measured"]
      hi = grp[grp["num_pairs"] == sizes[-1]].set_index("seed")["peak_gain_measured"]
      both = lo.index.intersection(hi.index)
      wins = int((hi[both] > lo[both]).sum())
      trend = (f"; gold peak higher with {sizes[-1]} than {sizes[0]} pairs on {wins}/{len(both)} instances "
               f"(sign test p={binomtest(wins, len(both), 0.5, alternative='greater').pvalue:.2g}, reported only)")
    parts.append(
        f"{method}: median R^2 {med_r2:.3f} (min {grp['r2'].min():.2f}); gain(d_fit) < gain(d_fit/2) on "
        f"{drops}/{len(grp)} (p={p:.2g}); median |d*_fit/d*_meas - 1| = {fit_vs_meas.median():.2f}; {by_n}{trend}")
  res = ClaimResult.compare("CF-7", worst_r2, R2_MIN, sense=">=", detail=(
      f"worst median R^2 over methods (>= {R2_MIN}); peak formulas vs numerical argmax of the {len(peaked)} "
      f"fitted curves with a peak below 1e6: max rel. error {peak_err:.1e} (<= {PEAK_RTOL:g}); d_fit = {cells['d_fit'].iloc[0]:.3f}; "
      + " | ".join(parts)))
  return [res if ok else res._replace(passed=False)]


def plot(df: pd.DataFrame) -> Figure:
  """Gold (solid) and proxy (dotted) gains against d for each data size: BoN and KL-RL, median over instances."""
  sizes = sorted(df["num_pairs"].unique())
  fig = Figure(figsize=(3.3 * len(sizes), 5.6), layout="constrained")
  axes = fig.subplots(2, len(sizes), squeeze=False, sharey="row")
  grid = np.linspace(0.0, df["d"].max(), 80)
  for col, n in enumerate(sizes):
    for row, method in enumerate(("bon", "rl")):
      ax = axes[row, col]
      part = df[(df["num_pairs"] == n) & (df["method"] == method)]
      golds, proxies, fits = [], [], []
      for _, cell in part.groupby("seed"):
        cell = cell.sort_values("d")
        golds.append(np.interp(grid, cell["d"], cell["gold_gain"]))
        proxies.append(np.interp(grid, cell["d"], cell["proxy_gain"]))
        a, b = cell["alpha"].iloc[0], cell["beta_fit"].iloc[0]
        g = np.where(grid > 0, grid, 1.0)
        fits.append(a * grid - b * (grid * grid if method == "bon" else grid * np.log(g)))
      gold = np.median(golds, 0)
      ax.fill_between(grid, *np.percentile(golds, [25, 75], 0), color="C0", alpha=0.2, lw=0)
      ax.plot(grid, gold, color="C0", label="gold (median, IQR)")
      ax.plot(grid, np.median(proxies, 0), color="C1", ls=":", label="proxy")
      dfit = part["d_fit"].iloc[0]
      inside = grid <= dfit
      ax.plot(grid[inside], np.median(fits, 0)[inside], color="k", ls="--", lw=1,
              label="d(a - b d)" if method == "bon" else "d(a - b log d)")
      ax.axvline(dfit, color="0.6", lw=0.8)
      ax.axhline(0.0, color="0.8", lw=0.6)
      ax.set_title(f"{'BoN' if method == 'bon' else 'KL-RL'}, {n} pairs", fontsize=9)
      ax.set_xlabel(r"$d = \sqrt{KL(\pi \| \pi_{ref})}$")
      if col == 0:
        ax.set_ylabel("gain over pi_ref")
        ax.legend(fontsize=6, loc="lower left")
      ax.set_ylim(min(-2.5, float(gold.min()) - 0.2), None)
  fig.suptitle("CF-7: gold vs proxy gain when optimizing a Bradley-Terry proxy\n"
               f"median over {df['seed'].nunique()} instances; forms fitted left of the grey line", fontsize=10)
  return fig
