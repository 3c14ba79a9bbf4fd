"""Behaviour cloning converges at rate 1/N^E in trajectory KL (Tiapkin et al., *Demonstration-Regularized RL*).

Paper: Tiapkin, Belomestny, Calandriello, Moulines, Munos, Naumov, Perrault, Valko & Ménard, arXiv 2310.17303,
§3 (behaviour cloning), Remark 1 (the add-one estimator), Corollary 1 (upper bound), Corollary 4 (lower bound);
THEORY.md §6.2, §6.7.

Setup (THEORY.md §6.7, DR-1): S = 6, A = 4, H = 5; every stage has its own Garnet(6, 4, 3) kernel (THEORY.md
§1.2), rewards r_h(s, a) ~ U(0, 1) i.i.d., uniform initial state; the expert is soft-optimal at temperature
τ = 0.05 (ε_E computed exactly). N^E expert trajectories, π^BC_h(a|s) = (N_h(s, a) + 1)/(N_h(s) + A), and the
exact KL_traj(π^E ‖ π^BC) (occupancy recursion). The datasets are nested: the first n trajectories of a seed
are the same for every N^E (``sample_demonstrations`` keys trajectory i by ``fold_in``).

Claim checked:

* DR-1 (BC rate) [P-order][N]: the slope of log E KL_traj(π^E‖π^BC) against log N^E over N^E in [10, 3000]
  is in [−1.1, −0.85] (E over the seeds' MDPs and datasets); the values stay below S A H / N^E, and below
  Corollary 1's right-hand side 6SAH log(2e⁴N) log(12HN²/δ)/N + 18AH/N (a 1 − δ statement, δ = 0.05; it
  holds very loosely). The lower bound of Corollary 4, HSA/(128 N log(e²/γ)) with γ = 1/(2A), is a minimax
  statement over instances, drawn for its order only.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.stats import binomtest

from mdptheory.envs.tabular import garnet_fh_numpy
from mdptheory import bounds
from mdptheory.algorithms import demonstrations as D
from mdptheory.claims import ClaimResult
from mdptheory.plotting import fit_rate, rate_plot
from mdptheory.types import FiniteHorizonMDP

NAME = "dr_bc"
VERSION = "1"
SLOPE_WINDOW = (-1.1, -0.85)   # THEORY.md §6.7, DR-1
FIT_RANGE = (10, 3000)


@dataclasses.dataclass(frozen=True)
class Config:
  """One dataset size N^E on the MDP and dataset of ``seed``."""
  n_expert: int = 100
  tau_expert: float = 0.05
  kappa: float = 1.0
  delta: float = 0.05
  num_states: int = 6
  num_actions: int = 4
  branching: int = 3
  horizon: int = 5
  seed: int = 0

  @classmethod
  def quick(cls) -> "Config":
    return cls()


GRID = {"n_expert": (10, 30, 100, 300, 1000, 3000)}
QUICK_GRID = GRID
SEEDS, QUICK_SEEDS = 50, 20
BATCH = ("n_expert", "seed")
MONITOR = ("kl",)


def _instance(seed: int, S: int, A: int, B: int, H: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The finite-horizon Garnet of ``seed`` (:func:`mdptheory.envs.tabular.garnet_fh_numpy`), start uniform."""
  return garnet_fh_numpy(seed, S, A, B, H, start=None)


N_CAP = 3000   # demonstrations drawn per seed; the datasets of every N^E <= N_CAP are nested in them


# Small runs are dominated by XLA's compile time: compile them without backend optimizations (about half the
# compile time, a slower run); large runs get the default optimizations.
_FAST_COMPILE = {"xla_backend_optimization_level": 0}


@functools.lru_cache(maxsize=None)
def _compiled(S: int, A: int, tau: float, n_max: int):
  """jit(vmap) of one cell, compiled once per static setting (and padded batch size)."""
  def one(P, r, mu0, seed, n, kappa):
    mdp = FiniteHorizonMDP(P, r, mu0)
    expert = D.soft_expert(mdp, tau=tau)
    demos = D.sample_demonstrations(jax.random.key(seed), mdp, expert.pi, n_max)
    pi_bc = D.behavior_cloning(demos, S, A, kappa=kappa, num_used=n)
    return D.trajectory_kl(mdp, expert.pi, pi_bc), expert.subopt
  return jax.jit(jax.vmap(one), compiler_options=_FAST_COMPILE)


def _run(cfgs: list[Config]) -> tuple[np.ndarray, np.ndarray]:
  c = cfgs[0]
  padded = cfgs + [cfgs[-1]] * (-len(cfgs) % 4)          # batch sizes in steps of 4: fewer compilations
  inst = [_instance(x.seed, c.num_states, c.num_actions, c.branching, c.horizon) for x in padded]
  f = _compiled(c.num_states, c.num_actions, c.tau_expert, max(N_CAP, *(x.n_expert for x in cfgs)))
  kl, eps_e = f(*(jnp.asarray(np.stack([m[k] for m in inst])) for k in range(3)),
                jnp.asarray([x.seed for x in padded]), jnp.asarray([x.n_expert for x in padded]),
                jnp.asarray([x.kappa for x in padded], float))
  return np.asarray(kl)[:len(cfgs)], np.asarray(eps_e)[:len(cfgs)]


def run_batch(cfgs: list[Config]) -> list[pd.DataFrame]:
  """Cells that differ only in (n_expert, seed), in one compiled call (nested datasets of the largest N^E)."""
  S, A, H = cfgs[0].num_states, cfgs[0].num_actions, cfgs[0].horizon
  kl, eps_e = _run(cfgs)
  out = []
  for i, x in enumerate(cfgs):
    n = float(x.n_expert)
    out.append(pd.DataFrame({
        "study": [NAME], "env": f"garnet_fh({S},{A},{x.branching},H={H})", "expert": f"soft(tau={x.tau_expert:g})",
        "n_expert": x.n_expert, "kappa": x.kappa, "delta": x.delta, "seed": x.seed, "eps_e": eps_e[i],
        "kl": kl[i],
        "bound_kl": float(bounds.dr_bc_corollary1(n, num_states=S, num_actions=A, horizon=H, delta=x.delta)),
        "sah_over_n": S * A * H / n,
        "lower_bound": float(bounds.dr_bc_lower_bound(n, num_states=S, num_actions=A, horizon=H)),
    }))
  return out


def run(cfg: Config) -> pd.DataFrame:
  """One row: KL_traj(π^E‖π^BC) for the cell's N^E, with Corollary 1's bound and the reference orders."""
  return run_batch([cfg])[0]


def _window(claim_id: str, value: float, lo: float, hi: float, detail: str) -> ClaimResult:
  margin = min(value - lo, hi - value)
  bound = lo if value - lo < hi - value else hi
  return ClaimResult(claim_id, float(value), float(bound), float(margin), bool(lo <= value <= hi), detail)


def check(df: pd.DataFrame) -> list[ClaimResult]:
  df = df.reset_index(drop=True)
  mean = df.groupby("n_expert")["kl"].mean()
  use = mean[(mean.index >= FIT_RANGE[0]) & (mean.index <= FIT_RANGE[1])]
  fit = fit_rate(use.index.to_numpy(float), use.to_numpy())
  wide = df.pivot_table(index="seed", columns="n_expert", values="kl")
  per_seed = [fit_rate(wide.columns.to_numpy(float), row.to_numpy()).slope for _, row in wide.iterrows()]
  n_lo, n_hi = wide.columns.min(), wide.columns.max()
  p = float(binomtest(int((wide[n_hi] < wide[n_lo]).sum()), len(wide), 0.5, alternative="greater").pvalue)
  ratio_sah = float((mean / df.groupby("n_expert")["sah_over_n"].first()).max())
  over = df["kl"] > df["bound_kl"]
  detail = (f"slope of log E KL vs log N^E over N^E in {list(use.index)}: {fit.slope:.3f} +- {fit.stderr:.3f} "
            f"(window {list(SLOPE_WINDOW)}, theory -1); median per-seed slope {np.median(per_seed):.3f} over "
            f"{len(per_seed)} seeds; E KL {mean.iloc[0]:.3g} -> {mean.iloc[-1]:.3g}; KL(N={n_hi}) < KL(N={n_lo}) sign "
            f"test p={p:.2g}; max E KL/(SAH/N) = {ratio_sah:.3f} (<= 1); Corollary 1 (delta={df['delta'].iloc[0]:g}) "
            f"violated in {int(over.sum())}/{len(df)} runs, max KL/bound = {(df['kl'] / df['bound_kl']).max():.2e}")
  res = _window("DR-1", fit.slope, *SLOPE_WINDOW, detail)
  ok = res.passed and ratio_sah <= 1.0 and over.mean() <= df["delta"].iloc[0] and p < 0.01
  return [res._replace(passed=bool(ok))]


def plot(df: pd.DataFrame) -> Figure:
  """E KL_traj(π^E‖π^BC) against N^E on log-log axes: median over seeds with IQR, the fitted slope, the −1
  reference, Corollary 1's bound (dashed), the order SAH/N and Corollary 4's minimax lower bound (dotted)."""
  title = (f"DR-1: add-one behaviour cloning, {df['env'].iloc[0]},\nexpert {df['expert'].iloc[0]}, "
           f"{df['seed'].nunique()} seeds (median, IQR)")
  fig = rate_plot(df, x="n_expert", y="kl", theory_slope=-1.0, fit_range=FIT_RANGE, title=title,
                  xlabel="N^E (expert trajectories)", ylabel=r"KL$_{traj}(\pi^E\|\pi^{BC})$")
  fig.set_size_inches(6.4, 4.6)
  ax = fig.axes[0]
  ref = df.groupby("n_expert")[["bound_kl", "sah_over_n", "lower_bound"]].median()
  lines = [ax.plot(ref.index, ref["bound_kl"], "k--", lw=1, label="Corollary 1 bound (delta = "
                   f"{df['delta'].iloc[0]:g})")[0],
           ax.plot(ref.index, ref["sah_over_n"], color="0.4", ls="-.", lw=1, label="SAH/N")[0],
           ax.plot(ref.index, ref["lower_bound"], color="0.6", ls=":", lw=1,
                   label="Corollary 4 lower bound (minimax)")[0]]
  old = ax.get_legend()
  handles = (list(old.legend_handles) if old else []) + lines
  ax.legend(handles, [h.get_label() for h in handles], fontsize=7, loc="upper right")
  return fig
