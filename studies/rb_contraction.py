"""RB-1: regularized value iteration contracts by gamma (Geist, Scherrer & Pietquin, ICML 2019).

Every regularized Bellman optimality operator T_Ω v = Ω*(r + γ P v) is a
γ-contraction in the sup norm (arXiv 1901.11275, Prop. 2; THEORY.md §8), so
along value iteration v_{k+1} = T_Ω v_k

    ‖T_Ω v_{k+1} − v_{k+1}‖_∞ <= γ ‖T_Ω v_k − v_k‖_∞      and hence
    ‖T_Ω v_k − v_k‖_∞ <= γ^k ‖T_Ω v_0 − v_0‖_∞.

Claim checked (RB-1): both inequalities at every iteration, for the hard max,
the entropy, a KL to a fixed random prior and the Tsallis (q = 2, sparsemax)
regularizers, over Garnet MDPs (THEORY.md §1.2), discounts and temperatures.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mdptheory import regularizers as R
from mdptheory import solvers
from mdptheory.claims import ClaimResult
from mdptheory.envs.tabular import garnet_mdp
from mdptheory.plotting import error_vs_iteration

NAME = "rb_contraction"
VERSION = "2"
REGULARIZERS = ("none", "entropy", "kl", "tsallis2")


@dataclasses.dataclass(frozen=True)
class Config:
  """One cell: a regularizer at (gamma, tau) on the Garnet(num_states, num_actions, branching) of ``seed``.

  ``tau`` is the temperature (entropy, Tsallis) or the KL weight; it is ignored by "none".
  The Garnet and the KL prior depend only on ``seed``, so runs are paired across settings.
  """
  regularizer: str = "entropy"
  gamma: float = 0.9
  tau: float = 0.1
  num_states: int = 30
  num_actions: int = 4
  branching: int = 4
  num_iters: int = 300
  seed: int = 0

  @classmethod
  def quick(cls) -> "Config":
    return cls(num_iters=80)


GRID = {"regularizer": REGULARIZERS, "gamma": (0.9, 0.99), "tau": (0.01, 0.1, 1.0)}
QUICK_GRID = {"regularizer": REGULARIZERS, "gamma": (0.9,), "tau": (0.01, 0.1, 1.0)}
SEEDS, QUICK_SEEDS = 20, 3
BATCH = ("gamma", "tau", "seed")   # fields one vmapped call may vary
MONITOR = ("residual",)            # NaN/inf here marks a cell diverged


def _regularizer(name: str, tau, prior) -> R.Regularizer:
  if name == "none":
    return R.none()
  if name == "entropy":
    return R.entropy(tau)
  if name == "kl":
    return R.kl(prior, tau)
  if name == "tsallis2":
    return R.tsallis(2.0, tau)
  raise ValueError(f"unknown regularizer {name!r}; choose from {REGULARIZERS}")


def _residual_traces(name, S, A, B, num_iters, seeds, gammas, taus):
  """VI residual traces [C, K] and value scales ‖v_K‖_∞ [C] for C cells, in one jit(vmap) call."""
  def one(seed, gamma, tau):
    key = jax.random.key(seed)
    mdp = garnet_mdp(key, S, A, B, gamma)
    prior = jax.nn.softmax(jax.random.normal(jax.random.fold_in(key, 1), (S, A)))
    res = solvers.value_iteration(mdp, _regularizer(name, tau, prior), num_iters=num_iters)
    return res.residuals, jnp.max(jnp.abs(res.v))
  return jax.jit(jax.vmap(one))(seeds, gammas, taus)


def run_batch(cfgs: list[Config]) -> list[pd.DataFrame]:
  """Cells that differ only in (gamma, tau, seed), in one compiled call."""
  c0 = cfgs[0]
  res, scale = _residual_traces(
      c0.regularizer, c0.num_states, c0.num_actions, c0.branching, c0.num_iters,
      jnp.asarray([c.seed for c in cfgs]), jnp.asarray([c.gamma for c in cfgs]),
      jnp.asarray([c.tau for c in cfgs]))
  # Rounding noise of one residual: a few ulps of the values it is computed from.
  noise = 32 * np.finfo(np.asarray(res).dtype).eps * np.maximum(1.0, np.asarray(scale))
  return [_frame(c, trace, n) for c, trace, n in zip(cfgs, np.asarray(res), noise)]


def run(cfg: Config) -> pd.DataFrame:
  """One row per iteration: the VI residual ‖T_Ω v_k − v_k‖_∞, its γ^k bound and the one-step ratio."""
  return run_batch([cfg])[0]


def _frame(cfg: Config, res: np.ndarray, noise: float) -> pd.DataFrame:
  K = res.shape[0]
  k = np.arange(K)
  prev = np.concatenate([[np.nan], res[:-1]])
  # The ratio is reported where the previous residual is 10^6 times its rounding noise
  # (so rounding moves the ratio by at most ~1e-6).
  meaningful = prev > 1e6 * noise
  return pd.DataFrame({
      "study": NAME, "env": f"garnet({cfg.num_states},{cfg.num_actions},{cfg.branching})",
      "regularizer": cfg.regularizer, "gamma": cfg.gamma, "tau": cfg.tau, "seed": cfg.seed, "iteration": k,
      "residual": res, "bound_residual": cfg.gamma ** k * res[0], "residual_prev": prev,
      "step_ratio": np.where(meaningful, res / np.where(meaningful, prev, 1.0), np.nan),
      "bound_step_ratio": cfg.gamma, "rounding_noise": noise,
  })


def check(df: pd.DataFrame) -> list[ClaimResult]:
  """RB-1 holds iff at every k, residual_{k+1} <= γ residual_k and residual_k <= γ^k residual_0.

  Both are checked up to floating-point rounding: one residual is exact to a
  few ulps of the values it is computed from (``rounding_noise`` = 32 eps
  max(1, ‖v‖_∞)), and the γ^k bound accumulates at most noise / (1 − γ). The
  reported measure is the worst one-step ratio residual_{k+1} / (γ residual_k)
  over the iterations where residual_k exceeds 10^6 times the noise; it must
  be <= 1 + 1e-6.
  """
  noise = df["rounding_noise"]
  over = (df["residual"] - df["bound_residual"] - noise / (1 - df["gamma"])).max()
  step_over = (df["residual"] - df["gamma"] * df["residual_prev"] - 2 * noise).max()
  ratios = (df["step_ratio"] / df["bound_step_ratio"]).to_numpy()
  ratio = float(np.nanmax(ratios))
  worst = df.iloc[int(np.nanargmax(ratios))]
  detail = (f"max residual_(k+1)/(gamma residual_k) over {df.groupby(['regularizer', 'gamma', 'tau', 'seed']).ngroups} "
            f"runs (worst: {worst['regularizer']}, gamma={worst['gamma']}, tau={worst['tau']}); "
            f"beyond rounding: max residual - gamma^k residual_0 = {over:.2e}, "
            f"max residual_(k+1) - gamma residual_k = {step_over:.2e} (must be <= 0)")
  res = ClaimResult.compare("RB-1", ratio, 1.0, atol=1e-6, detail=detail)
  return [res if (over <= 0 and step_over <= 0) else res._replace(passed=False)]


def plot(df: pd.DataFrame) -> Figure:
  """Soft VI residual against the γ^k bound (dashed) on a log scale, for several τ."""
  part = df[(df["regularizer"] == "entropy") & (df["gamma"] == df["gamma"].min())]
  return error_vs_iteration(part, y="residual", bound="bound_residual", hue="tau",
                            ylabel=r"$\|T_\tau v_k - v_k\|_\infty$",
                            title=f"RB-1: soft VI residual vs the $\\gamma^k$ bound (dashed)\n"
                                  f"gamma={part['gamma'].min():g}, median and IQR over {part['seed'].nunique()} Garnets")
