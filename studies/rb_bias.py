"""RB-3: the bias of the regularized optimum (Geist et al. 2019; Vieillard et al. 2020).

For a regularizer Ω whose negative −Ω ranges over [0, U] on the simplex
(entropy: U = τ ln|A|; Tsallis q = 2 with Ω = τ(Σπ² − 1)/2: U = τ(|A| − 1)/(2|A|)),
the regularized optimum satisfies (THEORY.md §8)

    0 <= q*_Ω − q* <= γ U / (1 − γ)                       [D]
    ‖q* − q^{π*_Ω}‖_∞ <= τ ln|A| / (1 − γ)   (entropy)     [P] (Vieillard et al. 2020, citing Geist et al. 2019)
    ‖q* − q^{π*_Ω}‖_∞ <= γ U / (1 − γ)        (Tsallis)    [D]

and for a KL penalty λ KL(π‖μ) toward a fixed full-support prior μ

    −γ λ ln(1/μ_min) / (1 − γ) <= q*_λ − q* <= 0.          [D]

Claim checked (RB-3): every inequality, computed exactly (policy iteration to
machine precision and exact policy evaluation) on Garnet MDPs.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mdptheory import operators as ops
from mdptheory import regularizers as R
from mdptheory import solvers
from mdptheory.claims import ClaimResult
from mdptheory.envs.tabular import garnet_mdp
from mdptheory.plotting import value_vs_parameter

NAME = "rb_bias"
VERSION = "1"
REGULARIZERS = ("entropy", "tsallis2", "kl")


@dataclasses.dataclass(frozen=True)
class Config:
  """One cell: the bias of a regularizer at (gamma, tau) on the Garnet of ``seed`` (paired across settings)."""
  regularizer: str = "entropy"
  gamma: float = 0.9
  tau: float = 0.1
  num_states: int = 30
  num_actions: int = 4
  branching: int = 4
  seed: int = 0

  @classmethod
  def quick(cls) -> "Config":
    return cls()


GRID = {"regularizer": REGULARIZERS, "gamma": (0.9, 0.99), "tau": (1e-3, 1e-2, 0.1, 1.0)}
QUICK_GRID = {"regularizer": REGULARIZERS, "gamma": (0.9,), "tau": (1e-2, 0.1, 1.0)}
SEEDS, QUICK_SEEDS = 20, 3
BATCH = ("gamma", "tau", "seed")


def _one(seed, gamma, tau, name, S, A, B):
  key = jax.random.key(seed)
  mdp = garnet_mdp(key, S, A, B, gamma)
  prior = jax.nn.softmax(jax.random.normal(jax.random.fold_in(key, 1), (S, A)))
  reg = {"entropy": lambda: R.entropy(tau), "tsallis2": lambda: R.tsallis(2.0, tau),
         "kl": lambda: R.kl(prior, tau)}[name]()
  hard = solvers.optimum(mdp)
  soft = solvers.optimum(mdp, reg)
  bias = soft.q - hard.q
  policy_gap = jnp.max(jnp.abs(hard.q - ops.evaluate(mdp, soft.pi).q))
  if name == "entropy":
    U = tau * jnp.log(A)
    bounds = (0.0 * U, gamma * U / (1 - gamma), U / (1 - gamma))
  elif name == "tsallis2":
    U = tau * (A - 1) / (2 * A)
    bounds = (0.0 * U, gamma * U / (1 - gamma), gamma * U / (1 - gamma))
  else:
    L = tau * jnp.log(1.0 / jnp.min(prior))
    bounds = (-gamma * L / (1 - gamma), 0.0 * L, gamma * L / (1 - gamma))
  return (jnp.min(bias), jnp.max(bias), policy_gap, *bounds, hard.converged & soft.converged)


def run_batch(cfgs: list[Config]) -> list[pd.DataFrame]:
  """Cells that differ only in (gamma, tau, seed), in one compiled call."""
  c0 = cfgs[0]
  f = jax.jit(jax.vmap(lambda s, g, t: _one(s, g, t, c0.regularizer, c0.num_states, c0.num_actions,
                                             c0.branching)))
  out = [np.asarray(o) for o in f(jnp.asarray([c.seed for c in cfgs]), jnp.asarray([c.gamma for c in cfgs]),
                                  jnp.asarray([c.tau for c in cfgs]))]
  names = ("bias_min", "bias_max", "policy_gap", "bound_bias_min", "bound_bias_max", "bound_policy_gap",
           "converged")
  frames = []
  for i, c in enumerate(cfgs):
    row = {"study": NAME, "env": f"garnet({c.num_states},{c.num_actions},{c.branching})",
           "regularizer": c.regularizer, "gamma": c.gamma, "tau": c.tau, "seed": c.seed}
    row.update({n: (bool(o[i]) if n == "converged" else float(o[i])) for n, o in zip(names, out)})
    frames.append(pd.DataFrame([row]))
  return frames


def run(cfg: Config) -> pd.DataFrame:
  """One row: min/max of q*_Ω − q*, the policy gap ‖q* − q^{π*_Ω}‖_∞, and their bounds."""
  return run_batch([cfg])[0]


def check(df: pd.DataFrame) -> list[ClaimResult]:
  """RB-3: all three inequalities on every row (atol 1e-9); measured = worst ratio to the bound."""
  eps = 1e-12
  lower_ok = (df["bias_min"] >= df["bound_bias_min"] - 1e-9).all()
  upper_ok = (df["bias_max"] <= df["bound_bias_max"] + 1e-9).all()
  gap_ratio = (df["policy_gap"] / (df["bound_policy_gap"] + eps)).max()
  pos = df[df["bound_bias_max"] > 0]
  bias_ratio = (pos["bias_max"] / pos["bound_bias_max"]).max()
  neg = df[df["bound_bias_min"] < 0]
  kl_ratio = (neg["bias_min"] / neg["bound_bias_min"]).max() if len(neg) else 0.0
  worst = max(gap_ratio, bias_ratio, kl_ratio)
  ok = bool(lower_ok and upper_ok and df["converged"].all())
  detail = (f"max bias/bound {bias_ratio:.3f} (entropy, Tsallis), max |KL bias|/bound {kl_ratio:.3f}, "
            f"max policy gap/bound {gap_ratio:.3f}; sign conditions {'hold' if lower_ok and upper_ok else 'FAIL'}; "
            f"optima certified: {bool(df['converged'].all())}")
  res = ClaimResult.compare("RB-3", worst, 1.0, atol=1e-9, detail=detail)
  return [res if ok else res._replace(passed=False)]


def plot(df: pd.DataFrame) -> Figure:
  part = df[df["gamma"] == df["gamma"].min()].copy()
  part["abs_bias"] = np.maximum(np.abs(part["bias_max"]), np.abs(part["bias_min"]))
  part["bound_abs_bias"] = np.maximum(np.abs(part["bound_bias_max"]), np.abs(part["bound_bias_min"]))
  return value_vs_parameter(part, x="tau", ys=["abs_bias", "policy_gap"],
                            bounds=["bound_abs_bias", "bound_policy_gap"], hue="regularizer",
                            ylabel="sup-norm gap",
                            title=f"RB-3: bias of the regularized optimum vs its bound (gamma={part['gamma'].min():g})")
