r"""The KL-regularized optimum is a Bayesian posterior, and it bounds best-of-N on the reward–KL plane.

Korbak, Perez & Buckley 2022 (arXiv 2205.11275) for the posterior form; Yang, Salamatian, Sun, Suresh &
Beirami 2024 (arXiv 2404.01730) for the KL-constrained form; Beirami et al. 2024 (arXiv 2401.01879) for
the best-of-N law (THEORY.md §7.1, §7.2). Random bandits: π_ref ~ Dirichlet(1) on M responses, rewards
U(0, 1) (``num_levels = 0``) or on L equally spaced levels with ties.

Claims checked:

* CF-1 [D][N] (posterior form): for β from 1e-3 to 1e2, π* ∝ π_ref e^{r/β} (computed in log space) has
  objective E r − β KL equal to β log Z to 1e-12, satisfies E_{π*} r = β log Z + β KL(π* ‖ π_ref) to
  1e-12, beats 2000 random policies (half Dirichlet(1) draws, half perturbations of π* itself), and the
  constrained form's Brent root solve at the budget Δ = KL(π*_β ‖ π_ref) returns π*_β: λ = 1/β (relative
  1e-8, where KL(π*_β) is resolvably below KL_max = −log π_ref(argmax r)) and the same expected reward
  (1e-8).
* CF-5 [D] (frontier): every best-of-N point (KL(π_N ‖ π_ref), E_{π_N} r), N = 1..1024, lies on or
  below the tilted frontier: E_{π_N} r <= E_{φ_Δ} r at Δ = KL(π_N ‖ π_ref), where φ_Δ is the
  KL-constrained optimum (the ``bound_expected_reward`` column), up to 1e-10.

The bandit depends only on the seed.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from scipy.special import xlogy

from mdptheory import alignment as al
from mdptheory.claims import ClaimResult
from mdptheory.envs.bandits import random_bandit

NAME = "cf_posterior"
VERSION = "1"

BETAS = tuple(float(b) for b in np.geomspace(1e-3, 1e2, 21))
BON_NS = tuple(2 ** k for k in range(11))   # 1 .. 1024
IDENTITY_TOL = 1e-12
ROOT_RTOL = 1e-8
FRONTIER_ATOL = 1e-10
FRONTIER_POINTS = 120


@dataclasses.dataclass(frozen=True)
class Config:
  """One random bandit (Dirichlet π_ref, rewards with ``num_levels`` ties or continuous) of ``seed``."""
  num_responses: int = 100
  num_levels: int = 0
  num_random: int = 2000
  seed: int = 0

  @classmethod
  def quick(cls) -> "Config":
    return cls()


GRID = {"num_responses": (10, 100, 1000), "num_levels": (0, 5)}
QUICK_GRID = {"num_responses": (10, 100), "num_levels": (0, 5)}
SEEDS, QUICK_SEEDS = 20, 2
BATCH = ("seed",)
MONITOR = ("kl", "expected_reward")   # finite on every row (other columns are NaN where they do not apply)


@jax.jit
def _posterior_sweep(p, r, betas):
  """The posterior π*_β for every β in one compiled call ([B] leading axis on every field)."""
  return jax.vmap(lambda beta: al.posterior(p, r, beta=beta))(betas)


def _objective(pi: np.ndarray, p: np.ndarray, r: np.ndarray, beta: float) -> np.ndarray:
  """J(π) = E_π r − β KL(π ‖ π_ref) for a batch [K, M], in numpy (independent of the library)."""
  return pi @ r - beta * np.sum(xlogy(pi, pi) - xlogy(pi, p), axis=-1)


def run(cfg: Config) -> pd.DataFrame:
  """Rows ``policy = "tilted"`` (one per β: the posterior) and ``policy = "bon"`` (one per N)."""
  bandit = random_bandit(cfg.seed, cfg.num_responses, cfg.num_levels)
  p, r = np.asarray(bandit.pi_ref, np.float64), np.asarray(bandit.reward, np.float64)
  M = cfg.num_responses
  post = jax.tree_util.tree_map(np.asarray, _posterior_sweep(bandit.pi_ref, bandit.reward,
                                                             jnp.asarray(BETAS, bandit.reward.dtype)))
  betas = np.asarray(BETAS)
  # Competitors: Dirichlet(1) policies, and perturbations of π*_β itself (the sharpest ones).
  rng = np.random.default_rng([cfg.seed, 7])
  half = cfg.num_random // 2
  random_pi = rng.dirichlet(np.ones(M), cfg.num_random - half)
  er_rand = random_pi @ r
  neg_kl_rand = -np.sum(xlogy(random_pi, random_pi) - xlogy(random_pi, p), axis=-1)
  eps = 1e-3 * rng.standard_normal((half, M))
  best_random = np.empty(len(BETAS))
  for i, beta in enumerate(BETAS):
    logits = post.log_pi[i] + eps
    near = np.exp(logits - logits.max(-1, keepdims=True))
    near /= near.sum(-1, keepdims=True)
    best_random[i] = max(np.max(er_rand + beta * neg_kl_rand), np.max(_objective(near, p, r, beta)))
  objective = post.expected_reward - betas * post.kl
  lam_error, constrained_error = [], []
  for beta, kl, er in zip(BETAS, post.kl, post.expected_reward):
    opt = al.constrained_optimum(p, r, kl_budget=float(kl))
    constrained_error.append(abs(opt.expected_reward - er))
    # λ is resolvable only while KL(π*_β) is distinguishable from KL_max (else π*_β is the argmax to rounding).
    lam_error.append(abs(opt.lam * beta - 1.0) if opt.kl_max - kl > 1e-8 else np.nan)
  tilted = pd.DataFrame({
      "policy": "tilted", "param": BETAS, "beta": BETAS, "num_samples": np.nan,
      "kl": post.kl, "expected_reward": post.expected_reward, "bound_expected_reward": np.nan,
      "value": post.value, "identity_residual": np.abs(post.expected_reward - post.value - betas * post.kl),
      "optimality_residual": np.abs(objective - post.value), "random_gap": best_random - post.value,
      "lam_error": lam_error, "constrained_error": constrained_error,
  })
  ns = np.asarray(BON_NS, np.float64)
  bon = al.bon_laws(p, r, ns)
  bon_kl, bon_er = np.asarray(bon.kl), np.asarray(bon.expected_reward)
  frontier = [al.constrained_optimum(p, r, kl_budget=max(float(k), 0.0)).expected_reward for k in bon_kl]
  points = pd.DataFrame({
      "policy": "bon", "param": ns, "beta": np.nan, "num_samples": ns, "kl": bon_kl, "expected_reward": bon_er,
      "bound_expected_reward": frontier, "kl_formula": al.bon_kl_bound(ns),
  })
  # A dense sweep of the tilted family for drawing the frontier (λ = 1/β from 0 to 10^3).
  lams = np.concatenate([[0.0], np.geomspace(1e-2, 1e3, FRONTIER_POINTS - 1)])
  front = jax.tree_util.tree_map(np.asarray, al.reward_kl_frontier(bandit.pi_ref, bandit.reward, lams))
  curve = pd.DataFrame({"policy": "frontier", "param": lams, "beta": np.nan, "num_samples": np.nan,
                        "kl": front.kl, "expected_reward": front.expected_reward})
  df = pd.concat([tilted, points, curve], ignore_index=True)
  meta = {"study": NAME, "env": "bandit_random", "num_responses": M, "num_levels": cfg.num_levels,
          "num_random": cfg.num_random, "seed": cfg.seed}
  return df.assign(**meta)[list(meta) + list(df.columns)]


def check(df: pd.DataFrame) -> list[ClaimResult]:
  df = df.reset_index(drop=True)
  cells = df.groupby(["num_responses", "num_levels", "seed"]).ngroups
  t = df[df["policy"] == "tilted"]
  ident, opt = float(t["identity_residual"].max()), float(t["optimality_residual"].max())
  gap, lam_err = float(t["random_gap"].max()), float(t["lam_error"].max())
  con_err = float(t["constrained_error"].max())
  cf1 = ClaimResult.compare("CF-1", max(ident, opt), IDENTITY_TOL, detail=(
      f"{cells} bandits x {t['beta'].nunique()} betas in [{t['beta'].min():g}, {t['beta'].max():g}]: "
      f"max |E r - beta log Z - beta KL| = {ident:.2e}, max |J(pi*) - beta log Z| = {opt:.2e}; "
      f"best of {int(df['num_random'].iloc[0])} random/perturbed policies minus beta log Z: max {gap:.2e} "
      f"(must be <= {IDENTITY_TOL:g}); constrained form at Delta = KL(pi*_beta): |lam beta - 1| max "
      f"{lam_err:.2e} over {int(t['lam_error'].notna().sum())} resolvable budgets (must be <= {ROOT_RTOL:g}), "
      f"|E_phi r - E_pi* r| max {con_err:.2e} over all (must be <= {ROOT_RTOL:g})"))
  ok = gap <= IDENTITY_TOL and lam_err <= ROOT_RTOL and con_err <= ROOT_RTOL
  out = [cf1 if ok else cf1._replace(passed=False)]

  b = df[df["policy"] == "bon"]
  excess = (b["expected_reward"] - b["bound_expected_reward"]).to_numpy()
  worst = float(np.max(excess))
  slack = -excess[b["num_samples"].to_numpy() > 1]
  out.append(ClaimResult.compare("CF-5", worst, 0.0, atol=FRONTIER_ATOL, detail=(
      f"max over {cells} bandits x N in 1..{int(b['num_samples'].max())} of E_BoN r - frontier(KL_BoN) "
      f"(must be <= {FRONTIER_ATOL:g}); for N >= 2 the BoN point sits {np.median(slack):.3g} (median) and "
      f"{np.min(slack):.3g} (min) below the frontier")))
  return out


def plot(df: pd.DataFrame) -> Figure:
  """The reward–KL plane: the tilted frontier (line) and best-of-N points (dots) for seed 0 of each setting."""
  part = df[df["seed"] == df["seed"].min()]
  sizes, levels = sorted(part["num_responses"].unique()), sorted(part["num_levels"].unique())
  fig = Figure(figsize=(3.6 * len(sizes), 3.0 * len(levels) + 0.5), layout="constrained")
  grid = fig.subplots(len(levels), len(sizes), squeeze=False)
  axes = grid.ravel()
  settings = [((M, L), part[(part["num_responses"] == M) & (part["num_levels"] == L)])
              for L in levels for M in sizes]
  for ax, ((M, L), grp) in zip(axes, settings):
    if grp.empty:
      ax.set_axis_off()
      continue
    t = grp[grp["policy"] == "frontier"].sort_values("kl")
    b = grp[grp["policy"] == "bon"].sort_values("num_samples")
    ax.plot(t["kl"], t["expected_reward"], color="C0", lw=1.5)
    ax.plot(b["kl"], b["expected_reward"], "o", color="C3", ms=4)
    ax.plot(b["kl_formula"], b["expected_reward"], "x", color="0.5", ms=4)
    for _, row in b[b["num_samples"].isin([2, 8, 64])].iterrows():
      ax.annotate(f"N={int(row['num_samples'])}", (row["kl"], row["expected_reward"]), fontsize=6,
                  xytext=(4, -9), textcoords="offset points")
    ax.set_xlim(0, 1.05 * max(b["kl"].max(), t["kl"].max()))
    ax.set_xlabel(r"KL$(\pi \| \pi_{ref})$")
    ax.set_ylabel(r"$E_\pi r$")
    ax.set_title(f"M={M}, " + ("continuous r" if L == 0 else f"{L} reward levels"), fontsize=9)
  axes[0].legend(handles=[Line2D([], [], color="C0", label=r"tilted frontier $\pi \propto \pi_{ref} e^{r/\beta}$"),
                          Line2D([], [], color="C3", marker="o", ls="none", label="best-of-N (exact KL)"),
                          Line2D([], [], color="0.5", marker="x", ls="none", label=r"at $\log N - (N-1)/N$")],
                 fontsize=7, loc="lower right")
  fig.suptitle("CF-1/CF-5: the KL-regularized optimum is the frontier; best-of-N lies on or below it", fontsize=10)
  return fig
