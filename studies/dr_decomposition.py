"""The demonstration-regularized objective: its exact solution, Theorem 2's decomposition and the λ limits.

Paper: Tiapkin, Belomestny, Calandriello, Moulines, Munos, Naumov, Perrault, Valko & Ménard,
*Demonstration-Regularized RL* (ICLR 2024, arXiv 2310.17303), Theorem 2 (decomposition) and §4 (UCBVI-Ent+);
THEORY.md §6.3, §6.4, §6.7.

Setup: S = 3, A = 2, H = 3, a Garnet(3, 2, 2) kernel per stage (THEORY.md §1.2), rewards r_h(s, a) ~ U(0, 1),
fixed initial state s_1 = 0 (the paper's setting); expert soft-optimal at τ = 0.05; π^BC add-one from the
first N^E of one nested dataset per seed. For every λ: π^λ = argmax V^π_1 − λ KL_traj(π‖π^BC) by soft backward
induction with π^BC as prior, and UCBVI-Ent+ run for a fixed budget of episodes (ε = 0, so it never stops)
whose output π̂ has the exact regularized gap ε_RL and the algorithm's own certificate G_1. The bonus
threshold β^KL is scaled by ``bonus_scale`` = 0.01 (the paper's constants are ``bonus_scale = 1``; see
``dr_exploration`` for the cost) — the figure says so.

Claims checked:

* DR-2 (decomposition, [D][N]): V*_1 − V^{π^λ}_1 <= ε_E + λ KL_traj(π^E‖π^BC) (exact solution, ε_opt = 0) at
  every N^E, λ and seed; and for the learner's output V*_1 − V^{π̂}_1 <= ε_E + λ KL_traj(π^E‖π^BC) + ε_RL with
  ε_RL its exact regularized gap. The figure draws the three terms of Theorem 2 against λ — ε_E, λ KL and the
  learner's certified ε_RL (G_1 after the budget, ∝ 1/λ) — whose sum is U-shaped (λ* ≈ √(ε_RL λ / KL)).
* DR-3 (solution form, [D]): on a tiny MDP (S = 2, A = 2, H = 2, uniform start, a random full-support prior
  with Dirichlet(1) rows in the role of π^BC) the soft backward induction value equals the maximum of
  V^π − λ KL_traj(π‖π^BC) found by brute force — the objective computed by enumerating all trajectories,
  maximized by a grid search over the H S = 4 free probabilities (11 points each) refined with scipy's
  L-BFGS-B — to 1e-6, and no policy does better (brute-force maximum <= value + 1e-9); the enumeration also
  evaluates π^λ itself. Every λ, on the tiny instances of the first 5 seeds.
* DR-5 (limits, [D]): λ → 0 recovers the unregularized optimum, V*_1 − V^{π^λ}_1 <= λ KL_traj(π*‖π^BC) → 0;
  λ → ∞ returns π^BC, KL_traj(π^λ‖π^BC) <= (V^{π^λ}_1 − V^{π^BC}_1)/λ <= H/λ → 0; both at every cell, and
  along λ (per seed) V^{π^λ} is non-increasing and KL_traj(π^λ‖π^BC) non-increasing.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.optimize import minimize

from mdptheory import solvers
from mdptheory.algorithms import demonstrations as D
from mdptheory.claims import ClaimResult
from mdptheory.plotting import panels, value_vs_parameter
from mdptheory.types import FiniteHorizonMDP

NAME = "dr_decomposition"
VERSION = "1"
TINY = (2, 2, 2)        # (S, A, H) of the DR-3 brute-force instance (THEORY.md §6.7)
GRID_POINTS = 11        # per free probability in the DR-3 grid search
BRUTE_FORCE_SEEDS = 5   # DR-3 (an identity, not a statistic) is brute-forced on the tiny instances of seeds 0..4


@dataclasses.dataclass(frozen=True)
class Config:
  """One (N^E, λ) on the MDP and dataset of ``seed``; UCBVI-Ent+ for ``budget`` episodes."""
  n_expert: int = 30
  lam: float = 1.0
  tau_expert: float = 0.05
  kappa: float = 1.0
  budget: int = 10000
  bonus_scale: float = 0.01
  delta: float = 0.1
  num_states: int = 3
  num_actions: int = 2
  branching: int = 2
  horizon: int = 3
  seed: int = 0

  @classmethod
  def quick(cls) -> "Config":
    return cls(budget=2000)


GRID = {"n_expert": (10, 100, 1000), "lam": (1e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0, 1e3)}
QUICK_GRID = {"n_expert": (10, 1000), "lam": (1e-3, 0.1, 1.0, 10.0, 1e3)}
SEEDS, QUICK_SEEDS = 20, 5   # DR-2, DR-3, DR-5 are exact inequalities and identities, checked on every seed
BATCH = ("n_expert", "lam", "seed")
MONITOR = ("subopt", "subopt_learner", "kl_solution")


def _instance(seed: int, S: int, A: int, B: int, H: int, *, uniform_start: bool, salt: int = 0
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """A Garnet(S, A, B) kernel per stage (THEORY.md §1.2) and U(0, 1) rewards r_h(s, a), built in numpy.

  Each row P_h(·|s, a): B distinct successors uniformly without replacement, probabilities the spacings of
  B − 1 sorted uniforms. Starts in state 0 (the paper's s_1) or uniformly.  -> (P [H, S, A, S], r, mu0).
  """
  rng = np.random.default_rng([seed, salt])
  P = np.zeros((H, S, A, S))
  succ = np.argsort(rng.random((H, S, A, S)), axis=-1)[..., :B]
  cuts = np.sort(rng.random((H, S, A, B - 1)), axis=-1)
  probs = np.diff(np.concatenate([np.zeros((H, S, A, 1)), cuts, np.ones((H, S, A, 1))], axis=-1), axis=-1)
  np.put_along_axis(P, succ, probs, axis=-1)
  r = rng.random((H, S, A))
  mu0 = np.full(S, 1.0 / S) if uniform_start else np.eye(S)[0]
  return P, r, mu0


N_CAP = 1000            # demonstrations drawn per seed (the datasets of every N^E <= N_CAP are nested in them)


# Small runs are dominated by XLA's compile time: compile them without backend optimizations (about half the
# compile time, a slower run); large runs get the default optimizations.
_FAST_COMPILE = {"xla_backend_optimization_level": 0}


@functools.lru_cache(maxsize=None)
def _compiled(S: int, A: int, H: int, tau: float, kappa: float, budget: int, bonus_scale: float, delta: float,
              n_max: int):
  """jit(vmap) of one cell, compiled once per static setting (and padded batch size)."""
  def one(P, r, mu0, tP, tr, tmu0, t_prior, seed, n, lam):
    key = jax.random.key(seed)
    mdp = FiniteHorizonMDP(P, r, mu0)
    expert = D.soft_expert(mdp, tau=tau)
    demos = D.sample_demonstrations(jax.random.fold_in(key, 1), mdp, expert.pi, n_max)
    pi_bc = D.behavior_cloning(demos, S, A, kappa=kappa, num_used=n)
    opt = solvers.backward_induction(mdp)                          # V* and π*, once
    sol = D.regularized_solution(mdp, pi_bc, lam=lam)              # π^λ and the regularized optimum, once
    v_star, v_reg_star = mu0 @ opt.v[0], mu0 @ sol.v[0]
    v_lam, v_bc = D.policy_value(mdp, sol.pi), D.policy_value(mdp, pi_bc)
    res = D.ucbvi_ent_plus(jax.random.fold_in(key, 2), mdp, pi_bc, lam=lam, eps=0.0, delta=delta,
                           bonus_scale=bonus_scale, max_episodes=budget, chunk=budget)
    tiny = FiniteHorizonMDP(tP, tr, tmu0)
    t_sol = D.regularized_solution(tiny, t_prior, lam=lam)
    return dict(
        eps_e=expert.subopt, kl=D.trajectory_kl(mdp, expert.pi, pi_bc), kl_opt=D.trajectory_kl(mdp, opt.pi, pi_bc),
        subopt=v_star - v_lam, v_lam=v_lam, v_bc=v_bc, kl_solution=D.trajectory_kl(mdp, sol.pi, pi_bc),
        subopt_learner=v_star - D.policy_value(mdp, res.pi),
        eps_rl=v_reg_star - D.regularized_value(mdp, res.pi, pi_bc, lam=lam), certificate=res.certificate,
        tiny_value=tiny.mu0 @ t_sol.v[0], tiny_pi=t_sol.pi)
  return jax.jit(jax.vmap(one), compiler_options=_FAST_COMPILE if budget <= 5000 else None)


def _run(cfgs: list[Config]) -> dict[str, np.ndarray]:
  c = cfgs[0]
  S, A, B, H = c.num_states, c.num_actions, c.branching, c.horizon
  n_max = max(N_CAP, *(x.n_expert for x in cfgs))
  padded = cfgs + [cfgs[-1]] * (-len(cfgs) % 4)          # batch sizes in steps of 4: fewer compilations
  main = [_instance(x.seed, S, A, B, H, uniform_start=False) for x in padded]
  tiny = [_instance(x.seed, TINY[0], TINY[1], TINY[0], TINY[2], uniform_start=True, salt=1) for x in padded]
  priors = []
  for x in padded:                                          # a random full-support prior, Dirichlet(1) rows
    w = np.random.default_rng([x.seed, 2]).exponential(size=(TINY[2], TINY[0], TINY[1]))
    priors.append(w / w.sum(-1, keepdims=True))
  stack = lambda xs: jnp.asarray(np.stack(xs))             # noqa: E731
  f = _compiled(S, A, H, c.tau_expert, c.kappa, c.budget, c.bonus_scale, c.delta, n_max)
  out = f(*(stack([m[k] for m in main]) for k in range(3)), *(stack([m[k] for m in tiny]) for k in range(3)),
          stack(priors), jnp.asarray([x.seed for x in padded]), jnp.asarray([x.n_expert for x in padded]),
          jnp.asarray([x.lam for x in padded], float))
  out = {k: np.asarray(v)[:len(cfgs)] for k, v in out.items()}
  out["tiny"] = (np.stack([m[0] for m in tiny]), np.stack([m[1] for m in tiny]), np.stack([m[2] for m in tiny]),
                 np.stack(priors))
  return out


def _brute_force(P, r, mu0, pi_ref, lam, v_soft, pi_soft) -> tuple[float, float, float, float]:
  """max_π V^π − λ KL_traj(π‖π_ref) on a tiny A = 2 instance, by trajectory enumeration + grid + L-BFGS-B.

  Returns (|max − v_soft|, max − v_soft, |J(π_soft) − v_soft|, max |π_bf − π_soft|).
  """
  H, S, A = r.shape
  trajs = np.array(list(itertools.product(range(S), range(A), repeat=H)))      # [T, 2H]: s_0, a_0, s_1, ...
  s, a = trajs[:, 0::2], trajs[:, 1::2]
  hs = np.arange(H)[None, :]
  base = mu0[s[:, 0]] * np.prod(P[hs[:, :-1], s[:, :-1], a[:, :-1], s[:, 1:]], axis=1)   # law of the dynamics
  ret = r[hs, s, a].sum(1)
  log_ref = np.log(pi_ref[hs, s, a]).sum(1)
  col = hs * S + s                                                               # [T, H] free coordinate (h, s)

  def objective(x):                                                              # x [K, H S] = π_h(a = 0 | s)
    x = np.atleast_2d(x)
    probs = np.where(a[None] == 0, x[:, col], 1.0 - x[:, col])                   # [K, T, H]
    p_pi = np.prod(probs, axis=2)
    log_ratio = np.sum(np.log(np.where(probs > 0, probs, 1.0)), axis=2) - log_ref[None]
    p = base[None] * p_pi
    return np.sum(p * ret[None], 1) - lam * np.sum(np.where(p > 0, p * log_ratio, 0.0), 1)

  grid = np.array(list(itertools.product(np.linspace(0.0, 1.0, GRID_POINTS), repeat=H * S)))
  values = np.concatenate([objective(g) for g in np.array_split(grid, 8)])
  x0 = grid[np.argmax(values)]
  res = minimize(lambda x: -objective(x)[0], x0, method="L-BFGS-B", bounds=[(0.0, 1.0)] * (H * S),
                 options={"ftol": 1e-14, "gtol": 1e-11, "maxiter": 500})
  best_x, best = (res.x, -float(res.fun)) if -res.fun >= values.max() else (x0, float(values.max()))
  j_soft = float(objective(pi_soft[..., 0].reshape(-1))[0])
  return (abs(best - v_soft), best - v_soft, abs(j_soft - v_soft),
          float(np.max(np.abs(best_x - pi_soft[..., 0].reshape(-1)))))


def run_batch(cfgs: list[Config]) -> list[pd.DataFrame]:
  """Cells that differ only in (n_expert, lam, seed): one compiled call, then the DR-3 brute force per cell."""
  out = _run(cfgs)
  tiny = out.pop("tiny")
  frames, brute = [], {}
  for i, x in enumerate(cfgs):
    if x.seed >= BRUTE_FORCE_SEEDS:
      bf = (np.nan,) * 4
    elif (x.seed, x.lam) not in brute:   # the tiny instance and prior depend on the seed only
      brute[x.seed, x.lam] = bf = _brute_force(*(t[i] for t in tiny), x.lam, float(out["tiny_value"][i]),
                                               out["tiny_pi"][i])
    else:
      bf = brute[x.seed, x.lam]
    kl = out["kl"][i]
    frames.append(pd.DataFrame({
        "study": [NAME], "env": f"garnet_fh({x.num_states},{x.num_actions},{x.branching},H={x.horizon})",
        "expert": f"soft(tau={x.tau_expert:g})", "n_expert": x.n_expert, "lam": x.lam, "kappa": x.kappa,
        "horizon": x.horizon, "budget": x.budget, "bonus_scale": x.bonus_scale, "seed": x.seed,
        "eps_e": out["eps_e"][i], "kl": kl, "lam_kl": x.lam * kl, "kl_opt": out["kl_opt"][i],
        "subopt": out["subopt"][i], "bound_subopt": out["eps_e"][i] + x.lam * kl,
        "subopt_learner": out["subopt_learner"][i],
        "bound_subopt_learner": out["eps_e"][i] + x.lam * kl + out["eps_rl"][i],
        "eps_rl": out["eps_rl"][i], "certificate": out["certificate"][i],
        "certified_total": out["eps_e"][i] + x.lam * kl + out["certificate"][i],
        "v_lam": out["v_lam"][i], "v_bc": out["v_bc"][i],
        "kl_solution": out["kl_solution"][i],
        "bound_kl_solution": (out["v_lam"][i] - out["v_bc"][i]) / x.lam,
        "bf_gap": bf[0], "bf_excess": bf[1], "bf_eval_gap": bf[2], "bf_policy_gap": bf[3],
    }))
  return frames


def run(cfg: Config) -> pd.DataFrame:
  """One row: the exact solution's and the learner's suboptimality with Theorem 2's terms, the λ-limit
  quantities and the DR-3 brute-force gaps."""
  return run_batch([cfg])[0]


def check(df: pd.DataFrame) -> list[ClaimResult]:
  df = df.reset_index(drop=True)
  n_cells = len(df)
  # DR-2
  ex_exact = float((df["subopt"] - df["bound_subopt"]).max())
  ex_learn = float((df["subopt_learner"] - df["bound_subopt_learner"]).max())
  excess2 = max(ex_exact, ex_learn)
  valid = float((df["eps_rl"] <= df["certificate"] + 1e-12).mean())
  med = df.groupby(["n_expert", "lam"])["certified_total"].median()
  u_shape = []
  for n, part in med.groupby(level="n_expert"):
    vals = part.to_numpy()
    k = int(np.argmin(vals))
    u_shape.append(f"N^E={n}: min {vals[k]:.3g} at lam={part.index[k][1]:g} (ends {vals[0]:.3g}, {vals[-1]:.3g})")
  ratio = float(max((df["subopt"] / df["bound_subopt"]).max(),
                    (df["subopt_learner"] / df["bound_subopt_learner"]).max()))
  dr2 = ClaimResult.compare("DR-2", ratio, 1.0, detail=(
      f"max (V* - V^pi)/(eps_E + lam KL + eps_opt) over {n_cells} cells: exact pi^lam (eps_opt = 0) "
      f"{(df['subopt'] / df['bound_subopt']).max():.3f}, learner (eps_opt its exact gap) "
      f"{(df['subopt_learner'] / df['bound_subopt_learner']).max():.3f}; max lhs - rhs: exact {ex_exact:.3g}, "
      f"learner {ex_learn:.3g} (<= 1e-9); certificate G_1 >= true eps_RL in "
      f"{valid:.0%} of runs (bonus_scale={df['bonus_scale'].iloc[0]:g}); U shape of eps_E + lam KL + G_1 "
      f"(median): " + "; ".join(u_shape)))
  dr2 = dr2._replace(passed=bool(dr2.passed and excess2 <= 1e-9))
  # DR-3
  bf = df.dropna(subset=["bf_gap"]).drop_duplicates(["seed", "lam"])
  gap, excess = float(bf["bf_gap"].max()), float(bf["bf_excess"].max())
  dr3 = ClaimResult.compare("DR-3", gap, 1e-6, detail=(
      f"max |brute-force max - soft backward induction| = {gap:.2e} over {len(bf)} (seed, lam) instances on "
      f"S=A=H=2; max (brute force - value) = {excess:.2e} (<= 1e-9); enumeration of pi^lam's own objective "
      f"off by <= {df['bf_eval_gap'].max():.2e}; max |pi_bf - pi^lam| = {df['bf_policy_gap'].max():.2e}"))
  dr3 = dr3 if len(bf) and excess <= 1e-9 and bf["bf_eval_gap"].max() <= 1e-9 else dr3._replace(passed=False)
  # DR-5: both limits as ratios to their bounds (<= 1), the H/λ bound, and monotonicity along λ per seed.
  lam_kl_opt = df["lam"] * df["kl_opt"]
  r0 = np.where(lam_kl_opt > 1e-12, df["subopt"] / lam_kl_opt.where(lam_kl_opt > 1e-12, 1.0),
                np.where(df["subopt"] <= 1e-12, 0.0, np.inf))
  den = df["bound_kl_solution"]
  r1 = np.where(den > 1e-12, df["kl_solution"] / den.where(den > 1e-12, 1.0),
                np.where(df["kl_solution"] <= 1e-12, 0.0, np.inf))
  h_over_lam = float((df["bound_kl_solution"] - df["horizon"] / df["lam"]).max())
  mono_v, mono_kl = -np.inf, -np.inf
  for _, part in df.sort_values("lam").groupby(["n_expert", "seed"]):
    mono_v = max(mono_v, float(np.diff(part["v_lam"].to_numpy()).max(initial=-np.inf)))
    mono_kl = max(mono_kl, float(np.diff(part["kl_solution"].to_numpy()).max(initial=-np.inf)))
  lo, hi = df["lam"].min(), df["lam"].max()
  dr5 = ClaimResult.compare("DR-5", float(max(np.max(r0), np.max(r1))), 1.0, detail=(
      f"max over {n_cells} cells of (V*-V^(pi^lam))/(lam KL(pi*||pi_BC)) = {np.max(r0):.3f} and of "
      f"KL(pi^lam||pi_BC)/((V^(pi^lam) - V^BC)/lam) = {np.max(r1):.3f} (both <= 1); max of that bound - H/lam = "
      f"{h_over_lam:.2e} (<= 0); largest increase along lam of V^(pi^lam) {mono_v:.2e} and of KL(pi^lam||pi_BC) "
      f"{mono_kl:.2e} (<= 1e-9); at lam={lo:g} median V*-V^(pi^lam) = {df[df['lam'] == lo]['subopt'].median():.2e}; "
      f"at lam={hi:g} median KL(pi^lam||pi_BC) = {df[df['lam'] == hi]['kl_solution'].median():.2e}"))
  ok = dr5.passed and h_over_lam <= 1e-9 and mono_v <= 1e-9 and mono_kl <= 1e-9
  dr5 = dr5._replace(passed=bool(ok))
  return [dr2, dr3, dr5]


def plot(df: pd.DataFrame) -> Figure:
  """Left: Theorem 2's three terms against λ, one panel per N^E (median and IQR over seeds): ε_E, λ KL and
  the learner's certified ε_RL (G_1 after the budget), their U-shaped sum, and the measured V*−V^{π̂} of the
  learner. Right: the λ limits at the largest N^E — V*−V^{π^λ} under λ KL(π*‖π^BC) and KL(π^λ‖π^BC) under
  (V^{π^λ}−V^{π^BC})/λ (dashed)."""
  scale, budget = df["bonus_scale"].iloc[0], int(df["budget"].iloc[0])
  n_panels = df["n_expert"].nunique()
  fig, (left, right) = panels([4.0 * n_panels, 4.4], height=4.0, title=(
      f"DR-2/DR-5: demonstration-regularized objective, {df['env'].iloc[0]}; UCBVI-Ent+ for {budget} episodes, "
      f"bonus_scale={scale:g} (paper: 1); median and IQR over {df['seed'].nunique()} seeds"))
  terms = pd.DataFrame({
      "lam": df["lam"], "n_expert": df["n_expert"], "seed": df["seed"], "eps_E": df["eps_e"],
      "lam KL(pi_E||pi_BC)": df["lam_kl"], "eps_RL certified (G_1)": df["certificate"],
      "sum of the three": df["certified_total"], "V* - V^(learner)": df["subopt_learner"]})
  value_vs_parameter(terms, x="lam", ys=list(terms.columns[3:]), hue="n_expert", ylabel="Theorem 2 terms",
                     into=left)
  n_hi = df["n_expert"].max()
  part = df[df["n_expert"] == n_hi]
  lim = pd.DataFrame({
      "lam": part["lam"], "seed": part["seed"], "setting": f"lam limits, N^E = {n_hi}",
      "V* - V^(pi_lam)": part["subopt"], "bound: lam KL(pi*||pi_BC)": part["lam"] * part["kl_opt"],
      "KL(pi_lam||pi_BC)": part["kl_solution"], "bound: (V^pi_lam - V^pi_BC)/lam": part["bound_kl_solution"]})
  value_vs_parameter(lim, x="lam", ys=["V* - V^(pi_lam)", "KL(pi_lam||pi_BC)"],
                     bounds=["bound: lam KL(pi*||pi_BC)", "bound: (V^pi_lam - V^pi_BC)/lam"], hue="setting",
                     ylabel="value", into=right)
  for ax in (*left.axes, *right.axes):
    ax.set_ylim(bottom=1e-6)
  return fig
