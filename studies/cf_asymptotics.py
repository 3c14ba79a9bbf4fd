r"""Best-of-N and KL-RL are asymptotically equivalent on long memoryless sequences (Yang et al. 2024).

Yang, Salamatian, Sun, Suresh & Beirami, *Asymptotics of Language Model Alignment*, arXiv 2404.01730
(THEORY.md §7.3). A memoryless reference draws n i.i.d. tokens from p = (0.5, 0.3, 0.2) with token
rewards 0, 1, 2 (the note's 3-token law); the sequence reward is their sum. KL-RL at budget nΔ is the
per-token tilt φ_λ ∝ p e^{λ r} with KL(φ_λ ‖ p) = Δ (Brent root solve), whose product is the
KL-constrained optimum over sequences; best-of-N uses N = e^{nΔ}. Everything is exact: the law of the
summed reward is the n-fold convolution of the token law in log space, and the BoN law on it is
computed with log1p tails (naive F**N loses all precision for n ≳ 1000), for n up to 4096
(N = e^{204.8} at Δ = 0.05).

Claim checked (CF-6 [N]; the exact theorem statement and normalization are UNCONFIRMED, so the derived
form is tested): for each Δ, the per-token reward gap E_{φ_λ} r − E_BoN R / n and the per-token KL gap
Δ − KL(BoN ‖ p^n) / n are positive and decrease strictly as n grows (observed 0.128 → 0.002 for the
reward, THEORY.md §10), and so does the normalized KL(BoN ‖ φ_λ^n) / n. Also checked on the way: BoN's
per-token reward is below the tilt's (the frontier, ``bound_reward_bon``), its per-token KL below
(log N − (N−1)/N)/n (``bound_kl_bon``), and the tilt's reward computed from the convolution equals the
per-token closed form to 1e-9.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mdptheory import alignment as al
from mdptheory.claims import ClaimResult
from mdptheory.envs.bandits import TOKEN_LEVELS, TOKEN_PROBS
from mdptheory.plotting import panels, rate_plot

NAME = "cf_asymptotics"
VERSION = "1"
IDENTITY_TOL = 1e-9


@dataclasses.dataclass(frozen=True)
class Config:
  """Sequences of ``length`` i.i.d. tokens from the 3-token law; per-token KL budget ``kl_per_token``."""
  length: int = 256
  kl_per_token: float = 0.05
  seed: int = 0   # the computation is exact: the seed is unused

  @classmethod
  def quick(cls) -> "Config":
    return cls()


GRID = {"length": (16, 64, 256, 1024, 4096), "kl_per_token": (0.02, 0.05, 0.2)}
QUICK_GRID = {"length": (16, 64, 256, 1024), "kl_per_token": (0.05, 0.2)}
SEEDS, QUICK_SEEDS = 1, 1
BATCH = ("seed",)
MONITOR = ("reward_bon", "kl_bon")


def run(cfg: Config) -> pd.DataFrame:
  """One row: per-token rewards and KLs of BoN (N = e^{nΔ}) and of the tilt, and their gaps."""
  res = al.bon_vs_kl_rl(TOKEN_PROBS, TOKEN_LEVELS, length=cfg.length, kl_per_token=cfg.kl_per_token)
  return pd.DataFrame({
      "study": NAME, "env": "bandit_tokens", "length": [cfg.length], "kl_per_token": cfg.kl_per_token,
      "seed": cfg.seed, "log_num_samples": res.log_num_samples, "lam": res.lam,
      "reward_bon": res.reward_bon, "bound_reward_bon": res.reward_tilted, "reward_tilted": res.reward_tilted,
      "reward_tilted_convolution": res.reward_tilted_convolution,
      "kl_bon": res.kl_bon, "bound_kl_bon": res.kl_bound, "kl_tilted": res.kl_tilted,
      "reward_gap": res.reward_tilted - res.reward_bon, "kl_gap": res.kl_tilted - res.kl_bon,
      "kl_bon_tilted": res.kl_bon_tilted,
  })


def check(df: pd.DataFrame) -> list[ClaimResult]:
  df = df.reset_index(drop=True).sort_values(["kl_per_token", "length"])
  worst_step, details, positive = -np.inf, [], True
  for delta, part in df.groupby("kl_per_token"):
    steps = {}
    for col in ("reward_gap", "kl_gap", "kl_bon_tilted"):
      v = part[col].to_numpy()
      positive &= bool((v > 0).all())
      steps[col] = float(np.max(v[1:] / v[:-1])) if len(v) > 1 else np.nan
    worst_step = max(worst_step, *steps.values())
    n = part["length"].to_numpy()
    details.append(
        f"Delta={delta:g} (n={n.min()}..{n.max()}): reward gap {part['reward_gap'].iloc[0]:.3g} -> "
        f"{part['reward_gap'].iloc[-1]:.3g}, KL gap {part['kl_gap'].iloc[0]:.3g} -> {part['kl_gap'].iloc[-1]:.3g}, "
        f"KL(BoN||tilt)/n {part['kl_bon_tilted'].iloc[0]:.3g} -> {part['kl_bon_tilted'].iloc[-1]:.3g}; "
        f"BoN reward {part['reward_bon'].iloc[-1]:.4f} vs tilt {part['reward_tilted'].iloc[-1]:.4f}")
  over_reward = float((df["reward_bon"] - df["bound_reward_bon"]).max())
  over_kl = float((df["kl_bon"] - df["bound_kl_bon"]).max())
  identity = float((df["reward_tilted_convolution"] - df["reward_tilted"]).abs().max())
  res = ClaimResult.compare("CF-6", worst_step, 1.0, detail=(
      "worst ratio gap(n_next)/gap(n) over consecutive n, for the reward gap, the KL gap and KL(BoN||tilt)/n "
      "(must be < 1: strictly decreasing); " + "; ".join(details)
      + f"; max BoN - tilt reward {over_reward:.2g}, max BoN KL - bound {over_kl:.2g} (<= 0); "
        f"convolution vs closed-form tilt reward {identity:.2g} (<= {IDENTITY_TOL:g})"))
  ok = (worst_step < 1.0 and positive and over_reward <= 1e-12 and over_kl <= 1e-12 and identity <= IDENTITY_TOL)
  return [res if ok else res._replace(passed=False)]


def plot(df: pd.DataFrame) -> Figure:
  """Per-token reward gap, KL gap and KL(BoN ‖ tilt)/n against n, log-log, with fitted slopes."""
  fig, (left, mid, right) = panels([4.4, 4.4, 4.4], title="CF-6: BoN with N = exp(n Delta) vs the KL-constrained "
                                                          "optimum, per token (memoryless 3-token reference)")
  rate_plot(df, x="length", y="reward_gap", hue="kl_per_token", seed=None, into=left,
            xlabel="sequence length n", ylabel=r"$E_{\phi_\lambda} r - E_{BoN} R / n$", title="reward gap")
  rate_plot(df, x="length", y="kl_gap", hue="kl_per_token", seed=None, into=mid,
            xlabel="sequence length n", ylabel=r"$\Delta - KL(BoN \| p^n) / n$", title="KL gap")
  rate_plot(df, x="length", y="kl_bon_tilted", hue="kl_per_token", seed=None, into=right,
            xlabel="sequence length n", ylabel=r"$KL(BoN \| \phi_\lambda^n) / n$", title="KL between them")
  return fig
