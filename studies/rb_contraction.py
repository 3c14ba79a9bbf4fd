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
from mdptheory.envs.tabular import garnet_arrays
from mdptheory.plotting import error_vs_iteration
from mdptheory.types import MDP

NAME = "rb_contraction"
REGULARIZERS = ("none", "entropy", "kl", "tsallis2")


@dataclasses.dataclass(frozen=True)
class Config:
  """Garnet(num_states, num_actions, branching) MDPs, one per seed."""
  num_states: int = 30
  num_actions: int = 4
  branching: int = 4
  gammas: tuple[float, ...] = (0.9, 0.99)
  taus: tuple[float, ...] = (0.01, 0.1, 1.0)   # temperature (entropy, Tsallis) or KL weight
  regularizers: tuple[str, ...] = REGULARIZERS
  num_seeds: int = 20
  num_iters: int = 300

  @classmethod
  def quick(cls) -> "Config":
    return cls(gammas=(0.9,), num_seeds=3, num_iters=80)


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


def run(cfg: Config) -> pd.DataFrame:
  """One row per (regularizer, gamma, tau, seed, iteration): the VI residual and its γ^k bound."""
  S, A, B = cfg.num_states, cfg.num_actions, cfg.branching
  keys = jax.vmap(jax.random.key)(jnp.arange(cfg.num_seeds))
  P, r = jax.vmap(lambda k: garnet_arrays(k, S, A, B))(keys)                      # [N, S, A, S], [N, S, A]
  priors = jax.vmap(lambda k: jax.nn.softmax(jax.random.normal(jax.random.fold_in(k, 1), (S, A))))(keys)
  frames = []
  for name in cfg.regularizers:
    taus = (0.0,) if name == "none" else cfg.taus
    G, T = np.meshgrid(np.asarray(cfg.gammas), np.asarray(taus), indexing="ij")

    def residuals(P, r, prior, gamma, tau, name=name):
      mdp = MDP(P=P, r=r, gamma=gamma, mu0=jnp.full(S, 1.0 / S, r.dtype))
      return solvers.value_iteration(mdp, _regularizer(name, tau, prior), num_iters=cfg.num_iters).residuals

    over_grid = jax.vmap(residuals, in_axes=(None, None, None, 0, 0))
    over_seeds = jax.vmap(over_grid, in_axes=(0, 0, 0, None, None))
    res = np.asarray(jax.jit(over_seeds)(P, r, priors, jnp.asarray(G.ravel()), jnp.asarray(T.ravel())))
    # res: [N, G*T, K]
    N, C, K = res.shape
    idx = pd.MultiIndex.from_product([range(N), range(C), range(K)], names=["seed", "cell", "iteration"])
    frame = idx.to_frame(index=False)
    frame["gamma"] = G.ravel()[frame["cell"]]
    frame["tau"] = T.ravel()[frame["cell"]]
    frame["regularizer"] = name
    frame["residual"] = res.ravel()
    k = frame["iteration"].to_numpy()
    frame["bound_residual"] = frame["gamma"] ** k * np.repeat(res[:, :, 0].ravel(), K)
    prev = np.concatenate([np.full((N, C, 1), np.nan), res[:, :, :-1]], -1).ravel()
    frame["residual_prev"] = prev
    # The ratio is reported where the previous residual is far above rounding noise.
    meaningful = prev > 1e-7 * np.maximum(1.0, np.repeat(res[:, :, 0].ravel(), K))
    frame["step_ratio"] = np.where(meaningful, res.ravel() / np.where(meaningful, prev, 1.0), np.nan)
    frame["bound_step_ratio"] = frame["gamma"]
    frames.append(frame.drop(columns="cell"))
  df = pd.concat(frames, ignore_index=True)
  df.insert(0, "study", NAME)
  df.insert(1, "env", f"garnet({S},{A},{B})")
  return df[["study", "env", "regularizer", "gamma", "tau", "seed", "iteration",
             "residual", "bound_residual", "residual_prev", "step_ratio", "bound_step_ratio"]]


def check(df: pd.DataFrame) -> list[ClaimResult]:
  """RB-1 holds iff at every k, residual_{k+1} <= γ residual_k and residual_k <= γ^k residual_0.

  Both are checked absolutely with atol = 1e-12 (float64 rounding of values of
  order 1/(1 − γ)); the reported measure is the worst one-step ratio
  residual_{k+1} / (γ residual_k) where residual_k is far above rounding noise.
  """
  atol = 1e-12
  over = (df["residual"] - df["bound_residual"]).max()
  step_over = (df["residual"] - df["gamma"] * df["residual_prev"]).max()
  ratio = (df["step_ratio"] / df["bound_step_ratio"]).max()
  worst = df.loc[(df["step_ratio"] / df["bound_step_ratio"]).idxmax()]
  detail = (f"max residual_(k+1)/(gamma residual_k) over {df.groupby(['regularizer', 'gamma', 'tau', 'seed']).ngroups} "
            f"runs (worst: {worst['regularizer']}, gamma={worst['gamma']}, tau={worst['tau']}); "
            f"max residual - gamma^k residual_0 = {over:.2e}; max residual_(k+1) - gamma residual_k = {step_over:.2e}")
  res = ClaimResult.compare("RB-1", ratio, 1.0, atol=1e-9, detail=detail)
  return [res if (over <= atol and step_over <= atol) else res._replace(passed=False)]


def plot(df: pd.DataFrame) -> Figure:
  """Soft VI residual against the γ^k bound (dashed) on a log scale, for several τ."""
  part = df[(df["regularizer"] == "entropy") & (df["gamma"] == df["gamma"].min())]
  return error_vs_iteration(part, y="residual", bound="bound_residual", hue="tau",
                            ylabel=r"$\|T_\tau v_k - v_k\|_\infty$",
                            title=f"RB-1: soft VI residual vs the $\\gamma^k$ bound (dashed)\n"
                                  f"gamma={part['gamma'].min():g}, median and IQR over {part['seed'].nunique()} Garnets")
