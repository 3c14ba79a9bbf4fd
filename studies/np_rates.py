"""Nash Mirror-Prox converges linearly, at a rate independent of the number of responses (Tiapkin et al. 2025).

*Accelerating Nash Learning from Human Feedback via Mirror Prox*, arXiv 2505.19731 v1 (THEORY.md §5.2,
§5.3, §5.7). Nash-MP with exact proximal steps and the theory step size η = 2β, from π_0 = π_ref, on random
intransitive preference games P = 1/2 + (U − Uᵀ)/2 (THEORY.md §5.5 (i)) with X contexts and a random
reference softmax(N(0, σ²)); β ∈ {0.01, ..., 0.5}, n ∈ {3, ..., 1000}. π*_β comes from
:func:`mdptheory.games.nash_equilibrium` and is certified (fixed-point residual <= 1e-12) before use.

Claims checked:

* NP-3 (linear rate; the constant 1 is our observation [N], the order is the paper's [P]): at every
  iteration k >= 1 until KL first drops below the 1e-11 floor,
  KL_ρ(π*_β‖π_k) <= (1 + 2β)^(−k) KL_ρ(π*_β‖π_ref) (``bound_kl``), and the per-iteration factor fitted to
  log KL over those iterations is <= 1/(1 + 2β) + 1e-3, on >= 20 instances. Observed [N]: worst KL/bound
  0.98 (at k = 1), and fitted factors close to 1/(1 + 2β)², KL being quadratic in the logit error, which
  contracts by about 1/(1 + 2β) per iteration (the proximal-point factor 1/(1 + η)).
* NP-4 (exploitability and span [P][N]): Gap_β(π_k) and max_x ‖ln π_k − ln π*_β‖_span decay linearly at the
  same order: the log-rate fitted from each one's peak to its floor (1e-13 for the gap; 1e-8 for the span,
  10^4 times the certified accuracy of π*; or to the last iteration) is at least 0.5 ln(1 + 2β) on every
  instance ("same order": within a factor 2). The slope is tested, not the constant (the span starts above
  its (1 + 2β)^(−k) line on many instances). Observed [N]: the gap and the KL, quadratic in the logit error,
  decay at about twice the rate (gap: median ratio 2.03, range 2.0–5.8); the span at about the rate itself
  (median ratio 0.99, range 0.72–1.09 over the 250 paper-scale instances), but
  a window fit can fall well below it: in the linearization at π* the logits of responses with π*(y) → 0
  contract by exactly 1/(1 + η) per iteration while being driven by the other responses' errors, which decay
  at about the same rate, so the span behaves like k (1 + 2β)^(−k) for a while, and the response that
  attains the max changes over time (bumps); the lowest ratio is at β = 0.01, K = 600. Which iterate carries
  which bound in the paper is UNCONFIRMED; π_k is tested.
* NP-5 (|Y|-independence [P][D]): the iterations to reach KL <= 1e-6 stay below
  ln(1/(2β · 1e-6))/ln(1 + 2β) (``bound_iters_to_tol``; from KL_0 <= 1/(2β) and NP-3) for every n.

The game depends only on (seed, n, family, contexts, σ): cells that differ in β are paired.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mdptheory import games
from mdptheory.algorithms.nash import nash_mp
from mdptheory.claims import ClaimResult
from mdptheory.envs.preference import sample_game
from mdptheory.plotting import error_vs_iteration, fit_rate, panels

NAME = "np_rates"
VERSION = "1"

KL_FLOOR = 1e-11      # THEORY.md §5.7 NP-3: float64 KL floor
GAP_FLOOR = 1e-13     # below, the exploitability is rounding
SPAN_FLOOR = 1e-8     # 1e4 x the accuracy of the certified π* (residual <= 1e-12), which the span sees
FACTOR_ATOL = 1e-3    # THEORY.md §5.7 NP-3: fitted factor <= 1/(1 + 2β) + 1e-3
MIN_RATE_RATIO = 0.5  # NP-4: fitted log-rate >= 0.5 ln(1 + 2β), "the same order" (observed min 0.72, median 0.99)
MIN_INSTANCES = 20


@dataclasses.dataclass(frozen=True)
class Config:
  """Nash-MP(η = 2β) on the random intransitive game of ``seed``."""
  beta: float = 0.1
  n: int = 10
  family: str = "intransitive"
  scale: float = 1.0
  ref_sigma: float = 1.0
  contexts: int = 2
  num_iters: int = 600
  tol: float = 1e-6
  seed: int = 0

  @classmethod
  def quick(cls) -> "Config":
    return cls(num_iters=200)


GRID = {"beta": (0.01, 0.03, 0.1, 0.3, 0.5), "n": (3, 10, 50, 200, 1000)}
QUICK_GRID = {"beta": (0.05, 0.2), "n": (3, 300)}
SEEDS, QUICK_SEEDS = 10, 5   # 10 seeds x 25 (beta, n) = 250 instances; quick: 20
BATCH = ("beta", "seed")
MAX_BATCH = 16  # n = 1000: 16 lanes x 2 contexts x 1e6 entries of P in float64 = 256 MB
LANES = 8       # run_batch pads to a multiple of this, so batches of 1..8 cells share one compiled program
MONITOR = ("kl", "gap", "span")


def iterations_bound(beta, tol) -> float:
  """ln(1/(2β tol))/ln(1 + 2β): iterations after which (1 + 2β)^(−k)/(2β) <= tol (THEORY.md §5.7 NP-5)."""
  return math.log(1.0 / (2.0 * beta * tol)) / math.log1p(2.0 * beta)


@functools.partial(jax.jit, static_argnames=("n", "family", "scale", "ref_sigma", "contexts", "num_iters"))
def _run(seeds, betas, *, n, family, scale, ref_sigma, contexts, num_iters):
  def one(seed, beta):
    game = sample_game(jax.random.key(seed), family, n, scale=scale, ref_sigma=ref_sigma, contexts=contexts)
    eq = games.nash_equilibrium(game, beta=beta)
    res = nash_mp(game, beta=beta, num_iters=num_iters, reference=eq)
    return res.trace, eq
  return jax.vmap(one)(seeds, betas)


def run_batch(cfgs: list[Config]) -> list[pd.DataFrame]:
  """Cells that differ only in (beta, seed), in one compiled call (padded to a multiple of LANES cells)."""
  c = cfgs[0]
  padded = cfgs + [cfgs[-1]] * (-len(cfgs) % LANES)
  trace, eq = _run(jnp.asarray([x.seed for x in padded]), jnp.asarray([x.beta for x in padded]), n=c.n,
                   family=c.family, scale=c.scale, ref_sigma=c.ref_sigma, contexts=c.contexts,
                   num_iters=c.num_iters)
  games.require_certified(eq)   # the reference must be verified before any rate is measured
  tr = {f: np.asarray(getattr(trace, f)) for f in ("kl", "kl_half", "gap", "span", "kl_ref", "win_rate",
                                                   "n_queries")}
  residual = np.asarray(eq.residual)
  k = np.arange(c.num_iters + 1)
  frames = []
  for i, x in enumerate(cfgs):
    kl = tr["kl"][i]
    hit = np.flatnonzero(kl <= x.tol)
    frames.append(pd.DataFrame({
        "study": NAME, "env": f"{x.family}(n={x.n}, X={x.contexts}, sigma={x.ref_sigma:g})",
        "algorithm": "nash_mp", "beta": x.beta, "eta": 2 * x.beta, "n": x.n, "seed": x.seed, "iteration": k,
        "n_queries": tr["n_queries"][i], "kl": kl, "bound_kl": (1 + 2 * x.beta) ** (-k.astype(float)) * kl[0],
        "kl_half": tr["kl_half"][i], "gap": tr["gap"][i], "span": tr["span"][i], "kl_ref": tr["kl_ref"][i],
        "win_rate": tr["win_rate"][i],
        "iters_to_tol": float(hit[0]) if hit.size else np.inf,
        "bound_iters_to_tol": iterations_bound(x.beta, x.tol),
        "eq_residual": residual[i],
    }))
  return frames


def run(cfg: Config) -> pd.DataFrame:
  """One row per iteration k = 0..K: the §5.6 traces of π_k, the NP-3 line, and the cell's NP-5 numbers."""
  return run_batch([cfg])[0]


# ----------------------------------------------------------------------------- checks

_CELL = ["beta", "n", "seed", "env"]


def _before(values: np.ndarray, floor: float) -> int:
  """Number of leading entries above ``floor`` (the iterations before the value first reaches it)."""
  below = np.flatnonzero(~(values > floor))
  return int(below[0]) if below.size else len(values)


def _factor(k: np.ndarray, values: np.ndarray) -> float:
  """exp(slope) of log(values) against k (NaN with fewer than 3 points)."""
  if len(k) < 3:
    return float("nan")
  return math.exp(fit_rate(k, values, log_x=False).slope)


def _rate_ratio(k: np.ndarray, values: np.ndarray, floor: float, beta: float) -> float:
  """The log-rate fitted from the peak to the floor, over ln(1 + 2β) (1: the theory's rate; NaN: < 3 points)."""
  end = _before(values, floor)
  peak = int(np.argmax(values[:end])) if end else 0
  return -math.log(_factor(k[peak:end], values[peak:end])) / math.log1p(2 * beta)


def rate_table(df: pd.DataFrame) -> pd.DataFrame:
  """Per cell: the worst KL/bound before the floor, the fitted KL factor, and the gap and span rate ratios."""
  rows = []
  for key, cell in df.sort_values("iteration").groupby(_CELL):
    k = cell["iteration"].to_numpy(float)
    kl, gap, span = (cell[c].to_numpy(float) for c in ("kl", "gap", "span"))
    m = _before(kl, KL_FLOOR)
    ratio = kl[1:m] / cell["bound_kl"].to_numpy(float)[1:m]
    beta = key[0]
    line = (1 + 2 * beta) ** -k
    g, s = _before(gap, GAP_FLOOR), _before(span, SPAN_FLOOR)
    rows.append(dict(zip(_CELL, key), kl_ratio=float(ratio.max()) if ratio.size else float("nan"),
                     kl_points=m, kl_factor=_factor(k[:m], kl[:m]), theory=1 / (1 + 2 * beta),
                     gap_rate=_rate_ratio(k, gap, GAP_FLOOR, beta), span_rate=_rate_ratio(k, span, SPAN_FLOOR, beta),
                     gap_const=float(np.max(gap[:g] / (gap[0] * line[:g]))) if g else float("nan"),
                     span_const=float(np.max(span[:s] / (span[0] * line[:s]))) if s else float("nan")))
  return pd.DataFrame(rows)


def check(df: pd.DataFrame) -> list[ClaimResult]:
  df = df.reset_index(drop=True)
  t = rate_table(df)
  count = len(t)
  excess = t["kl_factor"] - t["theory"]
  by_beta = t.groupby("beta").agg(kl=("kl_factor", "median"), theory=("theory", "first"))
  np3 = ClaimResult.compare("NP-3", t["kl_ratio"].max(), 1.0, detail=(
      f"max KL_k/((1+2b)^-k KL_0) over k >= 1 before the {KL_FLOOR:g} floor, {count} instances; fitted factor "
      f"- 1/(1+2b): max {excess.max():.3g} (allowed {FACTOR_ATOL:g}); median fitted factors "
      + ", ".join(f"b={b:g}: {r.kl:.4f} (1/(1+2b)={r.theory:.4f})" for b, r in by_beta.iterrows())))
  if not (excess.max() <= FACTOR_ATOL and count >= MIN_INSTANCES and t["kl_factor"].notna().all()):
    np3 = np3._replace(passed=False, detail=np3.detail + f"; needs >= {MIN_INSTANCES} instances with a fit")

  worst = float(np.min([t["gap_rate"].min(), t["span_rate"].min()]))
  np4 = ClaimResult.compare("NP-4", worst, MIN_RATE_RATIO, sense=">=", detail=(
      f"min over {count} instances of the log-rate fitted from the peak to the floor / ln(1+2b): gap "
      f"{t['gap_rate'].min():.3f} (median {t['gap_rate'].median():.3f}), span {t['span_rate'].min():.3f} "
      f"(median {t['span_rate'].median():.3f}); constants (not tested): max Gap_k/((1+2b)^-k Gap_0) = "
      f"{t['gap_const'].max():.3g}, span {t['span_const'].max():.3g}"))
  if not (t["gap_rate"].notna().all() and t["span_rate"].notna().all()):
    np4 = np4._replace(passed=False, detail=np4.detail + "; a cell had too few points before the floor to fit")

  cells = df[df["iteration"] == 0]
  ratio = cells["iters_to_tol"] / cells["bound_iters_to_tol"]
  spread = cells.groupby("beta").agg(lo=("iters_to_tol", "min"), hi=("iters_to_tol", "max"),
                                     bound=("bound_iters_to_tol", "first"), ns=("n", "nunique"))
  np5 = ClaimResult.compare("NP-5", ratio.max(), 1.0, detail=(
      "max iterations to KL <= 1e-6 / ln(1/(2b 1e-6))/ln(1+2b); per beta, range over n "
      + "; ".join(f"b={b:g}: {r.lo:.0f}-{r.hi:.0f} over {int(r.ns)} values of n (bound {r.bound:.0f})"
                  for b, r in spread.iterrows())))
  return [np3, np4, np5]


# ----------------------------------------------------------------------------- figure


def plot(df: pd.DataFrame) -> Figure:
  """KL with its (1 + 2β)^(−k) line, the exploitability and the span at the largest n; iterations to 1e-6 vs n."""
  df = df.reset_index(drop=True)
  top = df[df["n"] == df["n"].max()].copy()
  for c in ("kl", "bound_kl", "gap", "span"):
    top[c] = top[c].clip(lower=1e-16)  # the float64 floor, drawn at 1e-16 instead of masked
  last = int(top.loc[top["kl"] > KL_FLOOR, "iteration"].max()) + 5
  top = top[top["iteration"] <= last]
  fig, (a, b, c, d) = panels([4.4, 4.0, 4.0, 4.4], height=3.6, title=(
      f"NP-3/4/5: Nash-MP, eta = 2 beta, {df['env'].iloc[0].split('(')[0]} games (n = {df['n'].max()} in the "
      f"first three panels; median, IQR over {df['seed'].nunique()} seeds)"))
  error_vs_iteration(top, y="kl", bound="bound_kl", hue="beta", ylabel=r"KL$_\rho(\pi^*_\beta\|\pi_k)$", into=a)
  error_vs_iteration(top, y="gap", hue="beta", ylabel=r"Gap$_\beta(\pi_k)$", into=b)
  error_vs_iteration(top, y="span", hue="beta", ylabel=r"$\max_x\|\ln\pi_k-\ln\pi^*_\beta\|_{span}$", into=c)
  cells = df[df["iteration"] == 0]
  error_vs_iteration(cells, x="n", y="iters_to_tol", bound="bound_iters_to_tol", hue="beta", logx=True,
                     ylabel="iterations to KL <= 1e-6", into=d)
  for sub, loc in ((a, "upper right"), (d, "lower left")):
    ax = sub.axes[0]
    if loc == "lower left":
      ax.set_ylim(bottom=0.3)
    ax.legend(handles=ax.get_legend().legend_handles, fontsize=6, loc=loc, ncol=2)
  return fig
