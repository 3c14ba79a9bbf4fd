r"""LM bridge (b): Nash Mirror Prox over full sequences with a transformer proximal step.

*Accelerating Nash Learning from Human Feedback via Mirror Prox* (Tiapkin, Calandriello, Belomestny, Moulines,
Naumov, Rasul, Valko & Ménard, arXiv 2505.19731 v1; THEORY.md §5), re-checked on the token MDP with a
transformer policy (LM_BRIDGE.md §4(b); DESIGN.md §5).

Setting. Responses are the V^L sequences of the token tree; the reference π_ref is a transformer trained from
scratch on an order-2 Markov source (``lm.fit.reference_lm``). Preferences are intransitive:
P(y ≻ y') = σ(r(y) − r(y') + κ S(y, y')) with S(y, y') = u(y)ᵀ A u(y'), A skew-symmetric (so P + Pᵀ = 1), r the
fraction of token 0 plus a random part, u ~ N(0, I) features, all from the seed. The β-regularized Nash
equilibrium π*_β is computed exactly over the enumerated sequences (``games.solve_nash_equilibrium``, certified
fixed-point residual <= 1e-12).

Algorithm (η = 2β, the prescribed step; π^θ_0 = π_ref, the transformer itself). Iteration k:

1. the extrapolation π_{k+1/2} = argmin P(π^θ_k ≻ π) + β KL(π ‖ π_ref) + (β/η) KL(π ‖ π^θ_k), in closed form
   over the sequences from the transformer's exact law (``tree.nash_prox_step``, no fit);
2. the exact proximal update π̂_{k+1} (the same step with P(· ≻ π_{k+1/2}));
3. the transformer takes ``fit_steps`` steps on the exact sequence-level KL(π̂_{k+1} ‖ π_θ) (occupancy weights,
   ``lm.fit``), giving π^θ_{k+1}; its fitting error as seen from the equilibrium is
   δ_{k+1} = KL(π*_β ‖ π^θ_{k+1}) − KL(π*_β ‖ π̂_{k+1}) (signed, exact).

Claims checked:

* LM-b1 (re-checks NP-3 on the token game): exact Nash-MP over the sequences from π_ref satisfies
  KL(π*_β ‖ π_k) <= (1 + 2β)^{−k} KL(π*_β ‖ π_ref) at every k above the 1e-11 floor, and
  KL(π*_β ‖ π_ref) <= 1/(2β) (NP-1); constant 1 is the observation of THEORY.md §5.7, not a quoted theorem.
* LM-b2 (the approximate Nash-MP statement with measured per-step errors; derived form, UNCONFIRMED:
  THEORY.md §5.3 marks the paper's approximate version and constants UNCONFIRMED): from every transformer
  iterate the exact step contracts, KL(π*_β ‖ π̂_{k+1}) <= KL(π*_β ‖ π^θ_k)/(1 + 2β), hence at every k
  KL(π*_β ‖ π^θ_k) <= (1 + 2β)^{−k} KL(π*_β ‖ π_ref) + Σ_{j<=k} (1 + 2β)^{−(k−j)} δ_j.
  Exploitability Gap_β(π^θ_k) and the distance to the fitting floor are reported.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import special

from mdptheory import games
from mdptheory.claims import ClaimResult
from mdptheory.lm import fit as lm_fit
from mdptheory.lm import model as lm_model
from mdptheory.lm import tree
from mdptheory.plotting import error_vs_iteration, panels
from mdptheory.types import PreferenceGame

NAME = "lm_nash"
VERSION = "1"

KL_FLOOR = 1e-11      # NP-3 is checked above this floor (THEORY.md §5.7)
REL_TOL = 1e-9        # relative slack of the f64 inequalities


@dataclasses.dataclass(frozen=True)
class Config:
  """One preference game over the V^L sequences (``seed``) and one transformer Nash-MP run."""
  beta: float = 0.1          # regularization β <= 1/2; η = 2β
  kappa: float = 1.0         # weight of the skew-symmetric (intransitive) part
  num_features: int = 4      # dimension of u(y)
  num_iters: int = 10        # K transformer Nash-MP iterations
  fit_steps: int = 20        # Adam steps per proximal fit (a multiple of lm.fit.FIT_BLOCK)
  lr: float = 3e-3
  vocab_size: int = 4
  length: int = 5
  width: int = 32
  num_layers: int = 2
  ref_steps: int = 400
  seed: int = 0

  @classmethod
  def quick(cls) -> "Config":
    return cls(vocab_size=3, length=4, num_iters=8, ref_steps=200)


GRID = {"beta": (0.05, 0.1, 0.2)}
QUICK_GRID = {"beta": (0.1,)}
SEEDS, QUICK_SEEDS = 20, 5
BATCH = ("seed",)
MONITOR = ("kl_star", "kl_exact")


def model_config(cfg: Config) -> lm_model.TransformerConfig:
  return lm_model.TransformerConfig(vocab_size=cfg.vocab_size, length=cfg.length, width=cfg.width,
                                    num_layers=cfg.num_layers)


def preference_matrix(seed: int, V: int, L: int, *, kappa: float, num_features: int) -> np.ndarray:
  """P(y ≻ y') = σ(r(y) − r(y') + κ u(y)ᵀ A u(y')), A skew-symmetric: P + Pᵀ = 1, P(y ≻ y) = ½ (numpy)."""
  rng = np.random.default_rng([seed, 41])
  ys = tree.sequences(V, L)
  r = 2.0 * (ys == 0).mean(axis=1) + rng.standard_normal(V ** L)
  u = rng.standard_normal((V ** L, num_features))
  b = rng.standard_normal((num_features, num_features))
  skew = (b - b.T) / np.sqrt(2 * num_features)
  logits = r[:, None] - r[None, :] + kappa * (u @ skew @ u.T)
  return special.expit(logits)


@functools.partial(jax.jit, static_argnames=("num_iters",))
def _exact_nash_mp(P, lp_ref, lp_star, beta, *, num_iters: int):
  """KL(π* ‖ π_k), k = 0..K, of exact Nash-MP over the sequences from π_ref (η = 2β)."""
  def body(lp, _):
    _, lp = tree.nash_mp_step(P, lp, lp_ref, beta=beta, eta=2.0 * beta)
    return lp, tree.sequence_kl(lp_star, lp)
  _, kls = jax.lax.scan(body, lp_ref, None, length=num_iters)
  return jnp.concatenate([tree.sequence_kl(lp_star, lp_ref)[None], kls])


@functools.partial(jax.jit, static_argnames=("V", "L"))
def _step(levels, P, lp_ref, lp_star, game, beta, V: int, L: int):
  """Measures the transformer iterate π^θ_k (its tree levels) and builds the exact proximal target π̂_{k+1}."""
  lp = tree.sequence_log_probs(levels)
  eta = 2.0 * beta
  _, lp_hat = tree.nash_mp_step(P, lp, lp_ref, beta=beta, eta=eta)
  target = tree.conditionals(lp_hat, V, L)
  pi = jnp.exp(lp)[None]
  metrics = jnp.stack([
      tree.sequence_kl(lp_star, lp),                               # KL(π* ‖ π^θ_k)
      tree.sequence_kl(lp_star, lp_hat),                           # KL(π* ‖ π̂_{k+1})
      games.exploitability(game, pi, beta=beta),                   # Gap_β(π^θ_k)
      games.span_distance(lp[None], lp_star[None]),                # span of log π^θ_k − log π*
      tree.sequence_kl(lp, lp_ref),                                # KL(π^θ_k ‖ π_ref)
  ])
  return lp, lp_hat, lm_fit.target_rows(target, V, L), lm_fit.occupancy_weights(target, V, L), metrics


def run(cfg: Config) -> pd.DataFrame:
  """One row per k = 0..K: exact and transformer Nash-MP distances to π*_β, the measured δ_k and the bound."""
  V, L, K = cfg.vocab_size, cfg.length, cfg.num_iters
  ref = lm_fit.reference_lm(model_config(cfg), steps=cfg.ref_steps)
  lp_ref = tree.sequence_log_probs(ref.log_ref)
  P_np = preference_matrix(cfg.seed, V, L, kappa=cfg.kappa, num_features=cfg.num_features)
  game = PreferenceGame.create(P_np, pi_ref=np.exp(np.asarray(lp_ref)), dtype=np.float64)
  eq = games.solve_nash_equilibrium(game, beta=cfg.beta, tol=1e-12)
  lp_star = eq.log_pi[0]
  P = game.P[0]
  beta = jnp.asarray(cfg.beta, jnp.float64)
  exact = np.asarray(_exact_nash_mp(P, lp_ref, lp_star, beta, num_iters=K))

  model, opt_state = ref.model, lm_fit.init_opt_state(ref.model)
  metrics, fit_kl = [], []
  lp_hat_prev = None
  for k in range(K + 1):
    lp, lp_hat, rows, weights, m = _step(lm_model.tree_log_probs(model, V, L), P, lp_ref, lp_star, game, beta,
                                         V=V, L=L)
    metrics.append(m)
    fit_kl.append(np.nan if lp_hat_prev is None else float(tree.sequence_kl(lp_hat_prev, lp)))
    if k == K:
      break
    model, opt_state, _ = lm_fit.train(model, opt_state, rows, weights, lr=cfg.lr, steps=cfg.fit_steps)
    lp_hat_prev = lp_hat
  kl_star, kl_hat, gap, span, kl_ref = np.asarray(jnp.stack(metrics)).T
  rho = 1.0 / (1.0 + 2.0 * cfg.beta)
  # δ_k = KL(π* ‖ π^θ_k) − KL(π* ‖ π̂_k) for k >= 1 (π̂_k is the target fitted at iteration k − 1).
  delta = np.concatenate([[0.0], kl_star[1:] - kl_hat[:-1]])
  bound = np.empty(K + 1)
  acc = kl_star[0]
  for k in range(K + 1):
    acc = kl_star[0] if k == 0 else rho * acc + delta[k]
    bound[k] = acc
  # The per-step contraction of the exact step from the transformer iterate: KL(π* ‖ π̂_{k+1}) <= ρ KL(π* ‖ π^θ_k).
  step_ratio = np.concatenate([kl_hat[:-1] / kl_star[:-1], [np.nan]])
  ks = np.arange(K + 1)
  return pd.DataFrame({
      "study": NAME, "env": f"token_tree(V={V},L={L})", "beta": cfg.beta, "eta": 2 * cfg.beta, "kappa": cfg.kappa,
      "fit_steps": cfg.fit_steps, "seed": cfg.seed, "iteration": ks,
      "kl_exact": exact, "bound_kl_exact": rho ** ks * exact[0],
      "kl_star": kl_star, "bound_kl_star": bound,
      "kl_hat_next": kl_hat, "step_ratio": step_ratio, "bound_step_ratio": rho,
      "delta": delta, "fit_kl": fit_kl, "gap": gap, "span": span, "kl_ref": kl_ref,
      "kl0": exact[0], "bound_kl0": 1.0 / (2.0 * cfg.beta), "residual": float(eq.residual),
      "pretrain_kl": ref.pretrain_kl,
  })


def check(df: pd.DataFrame) -> list[ClaimResult]:
  df = df.reset_index(drop=True)
  runs = df.groupby(["beta", "seed"]).ngroups
  above = df[(df["kl_exact"] > KL_FLOOR) & (df["iteration"] > 0)]   # k = 0 is KL_0 <= KL_0
  r1 = float((above["kl_exact"] / above["bound_kl_exact"]).max())
  kl0 = float((df["kl0"] / df["bound_kl0"]).max())
  b1 = ClaimResult.compare("LM-b1", max(r1, kl0), 1.0 + REL_TOL, detail=(
      f"exact Nash-MP over {df['env'].iloc[0]} sequences, {runs} games: max KL_k/((1+2beta)^-k KL_0) = {r1:.4g} "
      f"(k <= {df['iteration'].max()}, above {KL_FLOOR:g}); max KL(pi*||pi_ref)/(1/(2 beta)) = {kl0:.3g}; "
      f"equilibrium residual <= {df['residual'].max():.1e}"))
  out = [b1 if df["residual"].max() <= 1e-12 else b1._replace(passed=False)]

  steps = df.dropna(subset=["step_ratio"])
  worst_step = float((steps["step_ratio"] / steps["bound_step_ratio"]).max())
  later = df[df["iteration"] > 0]
  worst_bound = float((later["kl_star"] / later["bound_kl_star"]).max())
  last = df[df["iteration"] == df["iteration"].max()]
  b2 = ClaimResult.compare("LM-b2", max(worst_step, worst_bound), 1.0 + REL_TOL, detail=(
      f"transformer Nash-MP, {runs} runs: max KL(pi*||pi_hat_(k+1)) / (KL(pi*||pi^theta_k)/(1+2beta)) = "
      f"{worst_step:.4g}; max KL(pi*||pi^theta_k) / measured-error bound = {worst_bound:.4g}; final "
      f"KL(pi*||pi^theta_K)/KL_0 median {(last['kl_star'] / last['kl0']).median():.3g} vs exact "
      f"{(last['kl_exact'] / last['kl0']).median():.3g}; median fit KL {df['fit_kl'].median():.2g}; final "
      f"exploitability median {last['gap'].median():.3g} (initial {df[df['iteration'] == 0]['gap'].median():.3g})"))
  out.append(b2)
  return out


def plot(df: pd.DataFrame) -> Figure:
  """KL(π*_β ‖ π_k) against k: exact Nash-MP with (1+2β)^{−k} KL_0 (dashed), the transformer iterates with the
  measured-error bound (dashed), and the exploitability of the transformer iterates."""
  fig, (left, mid, right) = panels([4.4, 4.4, 4.2], height=3.8, title=(
      f"Nash-MP over {df['env'].iloc[0]} sequences (eta = 2 beta): exact vs transformer proximal steps"))
  error_vs_iteration(df, y="kl_exact", bound="bound_kl_exact", hue="beta", into=left,
                     ylabel=r"KL$(\pi^*_\beta \| \pi_k)$, exact Nash-MP")
  left.suptitle("exact: bound (1+2 beta)^-k KL_0", fontsize=9)
  error_vs_iteration(df, y="kl_star", bound="bound_kl_star", hue="beta", into=mid,
                     ylabel=r"KL$(\pi^*_\beta \| \pi^\theta_k)$")
  mid.suptitle("transformer: bound with measured fitting errors", fontsize=9)
  error_vs_iteration(df, y="gap", hue="beta", into=right, ylabel=r"Gap$_\beta(\pi^\theta_k)$")
  right.suptitle("exploitability of the transformer iterate", fontsize=9)
  return fig
