r"""Averaging against accumulation under five error models (*Leverage the Average*, Vieillard et al., NeurIPS 2020).

MD-VI(λ, 0) (= DA-VI(λ, 0), Theorem 1) against AVI (λ = 0) on Garnet(30, 4, 4) MDPs, γ = 0.9, K = 800,
with every error model of :mod:`mdptheory.noise` (THEORY.md §1.3, §2.5, §2.7, §2.10 LA-5):

* N1 generative sampling (one s' per (s, a) and iteration; the paper's model);
* N2 i.i.d. Gaussian, σ = 0.5;
* N3 biased, ε_k = b + N2, with a fixed b(s, a) = ±``bias`` (random signs per Garnet, ‖b‖_∞ = ``bias``): a
  constant b would shift every action alike and change no greedy policy, so the signs vary over (s, a);
* N4 heavy-tailed, ``t_scale`` · t_ν with ν = ``t_df`` = 2.5 (finite variance, infinite fourth moment);
* N5 alternating, ε_k = (−1)^k c with c(s, a) = ±``alt`` (random signs per Garnet, as for N3).

Every iterate is clipped to [−v_max, v_max] (Theorem 1's hypothesis ‖q_k‖_∞ <= v_max, THEORY.md §2.5); the
clipping is folded into the recorded ε. Under N1 it never binds (LA-3).

Claim checked, LA-5b ([P] for the form of the bounds, [D][N] for the comparisons):

* under N1, N2, N4 and N5, MD-VI(λ, 0)'s median final error ‖q* − q^{π_K}‖_∞ over >= 20 Garnets is below
  0.1 × AVI's, for every λ > 0 of the sweep, and MD-VI beats AVI on significantly many Garnets (paired
  one-sided sign test, p < 0.01): the bound of Theorem 1 carries the norm of the *average* error, which
  vanishes for zero-mean errors, while AVI's carries Σ_j γ^{k−j}‖ε_j‖, which does not;
* under N3 the error floor does not vanish and stays below the bound term. Derivation [D]: with ε_k = b + ξ_k,
  MD-VI(λ, 0) on (r, P) is MD-VI(λ, 0) on (r + b, P) with the zero-mean errors ξ_k, so its policies tend to
  π_b = π*_{r+b} (Theorem 1 on the biased MDP) and its error to the exact floor
  E_b = ‖q* − q^{π_b}‖_∞ (policy iteration on r + b, then exact evaluation on r: an independent computation).
  Since q^{π_b} + (I − γP_{π_b})^{-1} b >= q* + (I − γP_{π*})^{-1} b, E_b <= 2‖b‖_∞/(1 − γ). Checks: the median
  over Garnets of final / E_b is >= 0.5 (the error tends to E_b, it does not vanish); the median final error is
  >= 0.5 ‖b‖_∞ (a clear fraction of ‖b‖: E_b >= 1.5 ‖b‖ on every Garnet of the default sweep); every final
  error is <= 2‖b‖_∞/(1 − γ) + 4(r_max + λ ln|A|)/((1 − γ)² K);
* Theorem 1 (ℓ∞, the λ-version of the constant, [S][N]) holds at every iteration of every MD-VI run under
  every model, on the measured errors:
  ‖q* − q^{π_k}‖_∞ <= 2/(1−γ)‖(1/k) Σ_{j<=k} ε_j‖_∞ + 4(r_max + λ ln|A|)/((1−γ)² k).
  AVI's derived bound 2γ/(1−γ)(Σ_j γ^{k−j}‖ε_j‖_∞ + γ^k‖q* − q_0‖_∞) (THEORY.md §2.7) is reported too.

Implementation notes. One compiled ``jit(vmap)`` call runs every (model, λ, seed) cell: the error model is a
traced index into the five models of :mod:`mdptheory.noise`. The Student-t errors of N4 have the law of
``noise.student_t(t_df, t_scale)`` but are drawn with numpy (``Generator.standard_t``, seeded by the Garnet's
seed) and replayed through ``noise.sequence``: ``jax.random.t``'s rejection sampler (through
``jax.random.gamma``) costs about 10 s of compilation and 15 s per 2·10⁶ float64 draws on a 2-core CPU, more
than the whole sweep. The Garnet, b, c, the t draws and the key of the other models depend only on the seed, so
comparisons across λ (and AVI) are paired.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from scipy.stats import binomtest

from mdptheory import bounds, noise, solvers
from mdptheory.algorithms.mdmpi import evaluate_entropy, md_mpi
from mdptheory.claims import ClaimResult
from mdptheory.envs.tabular import garnet_mdp
from mdptheory.errors import ParameterError
from mdptheory.plotting import error_vs_iteration

NAME = "la_noise"
VERSION = "1"
MODELS = ("N1", "N2", "N3", "N4", "N5")
ZERO_MEAN = ("N1", "N2", "N4", "N5")
RATIO, P_MAX = 0.1, 0.01            # MD-VI / AVI median final error; sign-test level
FLOOR_FRACTION = 0.5                # N3: final / E_b and final / ||b|| medians must reach this
ATOL = 1e-9


@dataclasses.dataclass(frozen=True)
class Config:
  """One run of MD-VI(lam, 0) (lam = 0: AVI) under error model ``noise`` on the Garnet of ``seed``."""
  noise: str = "N1"
  lam: float = 0.1
  gamma: float = 0.9
  num_states: int = 30
  num_actions: int = 4
  branching: int = 4
  num_iters: int = 800
  sigma: float = 0.5        # N2, and the Gaussian part of N3
  bias: float = 0.1         # N3: ||b||_inf, b(s, a) = +-bias
  t_df: float = 2.5         # N4: degrees of freedom
  t_scale: float = 0.3      # N4: scale
  alt: float = 0.5          # N5: ||c||_inf, c(s, a) = +-alt
  seed: int = 0

  @classmethod
  def quick(cls) -> "Config":
    return cls(num_iters=300)


GRID = {"noise": MODELS, "lam": (0.0, 0.01, 0.1, 1.0)}
QUICK_GRID = {"noise": MODELS, "lam": (0.0, 0.1)}
SEEDS, QUICK_SEEDS = 20, 20       # the statistical claim needs >= 20 Garnets, also in quick mode
BATCH = ("noise", "lam", "seed")
MAX_BATCH = 512                   # the default sweep (400 cells) is one compiled call
PAD = 8                           # batches are padded to a multiple of this many cells
MONITOR = ("err_sup",)


def _signs(key, shape, salt: int):
  """±1 per (s, a), from the Garnet's key."""
  return jnp.where(jax.random.bernoulli(jax.random.fold_in(key, salt), 0.5, shape), 1.0, -1.0)


def _student_t(cfg: Config, seed: int) -> np.ndarray:
  """N4 errors ε_k = t_scale · t_ν, [K, S, A], from numpy's generator seeded by the Garnet's seed."""
  rng = np.random.default_rng([seed, 4])
  return cfg.t_scale * rng.standard_t(cfg.t_df, size=(cfg.num_iters, cfg.num_states, cfg.num_actions))


@functools.partial(jax.jit, static_argnames=("c",))
def _run(seeds, lams, models, t_eps, t_index, *, c: Config):
  """All cells of a batch; ``c`` (with seed, lam and noise reset) is static, so batches of one shape share a
  compilation."""
  S, A, B, K, gamma = c.num_states, c.num_actions, c.branching, c.num_iters, c.gamma

  def one(seed, lam, model, t_i):
    key = jax.random.key(seed)
    mdp = garnet_mdp(key, S, A, B, gamma)
    b = c.bias * _signs(key, (S, A), 5)
    alt = c.alt * _signs(key, (S, A), 6)
    # The five models of mdptheory.noise; the cell's model is selected by a traced index.
    models_ = (noise.generative(), noise.gaussian(c.sigma), noise.biased(b, c.sigma),
               noise.sequence(t_eps[t_i]), noise.alternating(alt))

    def errors(key_k, k, mdp_, v):
      return jnp.stack([m(key_k, k, mdp_, v) for m in models_])[model]

    # q* of (r, P) and of the biased (r + b, P) in one batched policy iteration.
    both = jax.tree.map(lambda x, y: jnp.stack([x, y]), mdp, mdp._replace(r=mdp.r + b))
    opt = jax.vmap(solvers.optimum)(both)
    ref = jax.tree.map(lambda x: x[0], opt)
    floor = jnp.max(jnp.abs(ref.q - evaluate_entropy(mdp, opt.pi[1], 0.0)))       # E_b
    r_max = bounds.r_max_of(mdp)
    v_max = bounds.v_max(r_max=r_max, gamma=gamma)
    res = md_mpi(mdp, lam=lam, tau=0.0, num_iters=K, noise=errors, key=jax.random.fold_in(key, 2),
                 reference=ref, clip=v_max)
    tr = res.trace
    thm1 = bounds.theorem1_linf(tr.avg_eps_sup, jnp.arange(1, K + 1), gamma=gamma, r_max=r_max, lam=lam,
                                num_actions=A)                                  # π_k with ε_1..ε_k
    avi = bounds.avi_bound(tr.eps_sup, jnp.arange(K), gamma=gamma, q0_err=jnp.max(jnp.abs(ref.q)))   # π_{k+1}
    return (tr.err_sup, tr.err_l1, jnp.where(lam > 0, thm1, avi), tr.eps_sup, tr.avg_eps_sup, tr.q_sup,
            floor, r_max)

  return jax.vmap(one)(seeds, lams, models, t_index)


def _check_config(c: Config) -> None:
  if c.noise not in MODELS:
    raise ParameterError(f"noise={c.noise!r} is not an error model of this study; use one of {MODELS}")
  if not c.lam >= 0:
    raise ParameterError(f"lam={c.lam} must be >= 0 (lam = 0 is AVI)")
  if c.t_df <= 0 or c.t_scale < 0 or c.sigma < 0 or c.bias < 0 or c.alt < 0:
    raise ParameterError(f"noise parameters must be nonnegative and t_df > 0, got sigma={c.sigma}, "
                         f"bias={c.bias}, t_df={c.t_df}, t_scale={c.t_scale}, alt={c.alt}")


def run_batch(cfgs: list[Config]) -> list[pd.DataFrame]:
  """Cells that differ only in (noise, lam, seed), in one compiled call."""
  for x in cfgs:
    _check_config(x)
  c = cfgs[0]
  uniq = sorted({x.seed for x in cfgs})
  # Pad the batch, and the seeds of the t draws, to multiples of PAD (copies, dropped below): small batches
  # of one shape (run() and the few-cell batches of the tests) then share one compilation.
  t_eps = jnp.asarray(np.stack([_student_t(c, s) for s in uniq + uniq[:1] * (-len(uniq) % PAD)]))  # [.., K, S, A]
  padded = list(cfgs) + [c] * (-len(cfgs) % PAD)
  out = _run(jnp.asarray([x.seed for x in padded]), jnp.asarray([x.lam for x in padded]),
             jnp.asarray([MODELS.index(x.noise) for x in padded]), t_eps,
             jnp.asarray([uniq.index(x.seed) for x in padded]), c=dataclasses.replace(c, seed=0, lam=0.0, noise="N1"))
  err_sup, err_l1, bound, eps_sup, avg_eps_sup, q_sup, floor, r_max = (np.asarray(o)[:len(cfgs)] for o in out)
  frames = []
  for i, x in enumerate(cfgs):
    biased = x.noise == "N3"
    frames.append(pd.DataFrame({
        "study": NAME, "env": f"garnet({x.num_states},{x.num_actions},{x.branching})", "noise": x.noise,
        "algorithm": "MD-VI" if x.lam > 0 else "AVI", "lam": x.lam, "tau": 0.0, "gamma": x.gamma, "seed": x.seed,
        "iteration": np.arange(1, x.num_iters + 1),   # row k: pi_k (MD-VI: Theorem 1, k; AVI bound: k - 1)
        "err_sup": err_sup[i], "bound_err_sup": bound[i], "err_l1": err_l1[i],
        "eps_sup": eps_sup[i], "avg_eps_sup": avg_eps_sup[i], "q_sup": q_sup[i],
        "bias_norm": x.bias if biased else 0.0,
        "floor_exact": floor[i] if biased else np.nan,                                  # E_b
        "floor_bound": 2.0 / (1.0 - x.gamma) * x.bias if biased else np.nan,            # 2 ||b|| / (1 - gamma)
        "r_max": r_max[i], "num_actions": x.num_actions,
    }))
  return frames


def run(cfg: Config) -> pd.DataFrame:
  """One row per iteration k = 1..K: the error of π_k, its bound (Theorem 1 or AVI's), the measured errors."""
  return run_batch([cfg])[0]


# ----------------------------------------------------------------------------- check


def _sign_test(wins: int, n: int) -> float:
  return float(binomtest(wins, n, 0.5, alternative="greater").pvalue) if n else 1.0


def check(df: pd.DataFrame) -> list[ClaimResult]:
  df = df.reset_index(drop=True)
  k_last = int(df["iteration"].max())
  last = df[df["iteration"] == k_last]
  ok, parts, worst = True, [], -np.inf

  # 1. Zero-mean models: MD-VI's median final error below 0.1 x AVI's, paired sign test.
  for model in [m for m in ZERO_MEAN if (last["noise"] == m).any()]:
    final = last[last["noise"] == model].pivot_table(index="seed", columns="lam", values="err_sup")
    if 0.0 not in final.columns or len(final.columns) < 2:
      ok = False
      parts.append(f"{model}: needs AVI (lam=0) and MD-VI runs")
      continue
    avi = final[0.0]
    items = []
    for lam in [l for l in final.columns if l > 0]:
      ratio = float(final[lam].median() / avi.median())
      p = _sign_test(int((final[lam] < avi).sum()), len(avi))
      worst = max(worst, ratio)
      ok &= ratio < RATIO and p < P_MAX
      items.append(f"lam={lam:g}: {ratio:.3g} (p={p:.1g})")
    parts.append(f"{model}: AVI median {avi.median():.3g}, MD-VI/AVI " + ", ".join(items))

  # 2. Biased errors: the floor does not vanish and stays below 2||b||/(1-gamma) + g1(K).
  n3 = last[(last["noise"] == "N3") & (last["lam"] > 0)]
  if len(n3):
    g1 = pd.Series(np.asarray(bounds.theorem1_g1(k_last, gamma=n3["gamma"].to_numpy(), r_max=n3["r_max"].to_numpy(),
                                                 lam=n3["lam"].to_numpy(), num_actions=n3["num_actions"].to_numpy())),
                   index=n3.index)
    items = []
    for lam, grp in n3.groupby("lam"):
      to_floor = float((grp["err_sup"] / grp["floor_exact"]).median())
      to_bias = float((grp["err_sup"] / grp["bias_norm"]).median())
      excess = float((grp["err_sup"] - grp["floor_bound"] - g1[grp.index]).max())
      ok &= to_floor >= FLOOR_FRACTION and to_bias >= FLOOR_FRACTION and excess <= 0
      items.append(f"lam={lam:g}: median final/E_b {to_floor:.3g}, final/||b|| {to_bias:.3g}, "
                   f"max final - (2||b||/(1-gamma) + g1(K)) {excess:.3g}")
    eb = n3.drop_duplicates("seed")["floor_exact"] / n3.drop_duplicates("seed")["bias_norm"]
    parts.append(f"N3 (||b||={n3['bias_norm'].iloc[0]:g}, 2||b||/(1-gamma)={n3['floor_bound'].iloc[0]:.3g}; "
                 f"E_b/||b|| in [{eb.min():.2f}, {eb.max():.2f}]): " + "; ".join(items))

  # 3. Theorem 1 at every iteration of every MD-VI run; AVI's bound reported.
  md = df[df["lam"] > 0]
  thm = []
  for model, grp in md.groupby("noise"):
    excess = float((grp["err_sup"] - grp["bound_err_sup"]).max())
    ratio = float((grp["err_sup"] / grp["bound_err_sup"]).max())
    ok &= excess <= ATOL
    thm.append(f"{model} {ratio:.3g}")
  avi_rows = df[df["lam"] == 0]
  avi_ratio = float((avi_rows["err_sup"] / avi_rows["bound_err_sup"]).max()) if len(avi_rows) else float("nan")
  parts.append("Theorem 1 max lhs/rhs at every k: " + ", ".join(thm) + f"; AVI bound max lhs/rhs {avi_ratio:.3g}")

  res = ClaimResult.compare("LA-5b", worst, RATIO, detail=(
      f"worst MD-VI/AVI ratio of median final sup errors (K={k_last}, {df['seed'].nunique()} Garnets) under "
      f"zero-mean errors; " + " | ".join(parts)))
  return [res if ok and np.isfinite(worst) else res._replace(passed=False)]


# ----------------------------------------------------------------------------- plot


MODEL_LABELS = {"N1": "N1 generative", "N2": "N2 Gaussian", "N3": "N3 bias + Gaussian", "N4": "N4 Student-t",
                "N5": "N5 alternating"}


def plot(df: pd.DataFrame) -> Figure:
  """Error against k per error model (one panel each): AVI and MD-VI(λ) medians with IQR bands over Garnets,
  MD-VI's Theorem 1 bound on the measured errors (dashed), for N3 the term 2‖b‖/(1−γ) and the exact floor E_b;
  a last panel with the MD-VI / AVI ratio of the median final errors against the claimed 0.1."""
  data = df.assign(
      model=df["noise"].map(MODEL_LABELS),
      method=np.where(df["lam"] > 0, "MD-VI lam=" + df["lam"].map(lambda x: f"{x:g}"), "AVI"),
      # AVI's bound is two orders of magnitude above the errors: keep the panels readable.
      bound_err_sup=df["bound_err_sup"].where(df["lam"] > 0))
  fig = Figure(figsize=(14.5, 7.8), layout="constrained")
  fig.suptitle("Averaging vs accumulation: MD-VI(lam, 0) and AVI under each error model, Garnet(30,4,4), "
               "gamma=0.9 (median and IQR over Garnets; dashed: Theorem 1 on the measured errors)", fontsize=10)
  subs = fig.subfigures(2, 3).ravel()
  models = [m for m in MODELS if (df["noise"] == m).any()]
  for sub, model in zip(subs, models):
    part = data[data["noise"] == model]
    error_vs_iteration(part, y="err_sup", bound="bound_err_sup", hue="method", logx=True, into=sub,
                       ylabel=r"$\|q_* - q^{\pi_k}\|_\infty$")
    sub.suptitle(MODEL_LABELS[model], fontsize=9)
    if model == "N3":
      ax = sub.axes[0]
      b_term = float(part["floor_bound"].median())
      floor = float(part.drop_duplicates("seed")["floor_exact"].median())
      ax.axhline(b_term, color="k", lw=1.2, ls="-.")
      ax.axhline(floor, color="0.4", lw=1.0, ls=":")
      handles, _ = ax.get_legend_handles_labels()
      handles += [Line2D([], [], color="0.3", ls="--", lw=1, label="bound_err_sup (dashed)"),
                  Line2D([], [], color="k", ls="-.", lw=1.2, label=rf"$2\|b\|/(1-\gamma)$ = {b_term:.3g}"),
                  Line2D([], [], color="0.4", ls=":", lw=1.0, label=f"exact floor E_b (median) = {floor:.3g}")]
      ax.legend(handles=handles, fontsize=7)
  ax = subs[-1].subplots()
  last = df[df["iteration"] == df["iteration"].max()]
  med = last.groupby(["noise", "lam"])["err_sup"].median().unstack("lam")
  lams = [l for l in med.columns if l > 0]
  width = 0.8 / max(len(lams), 1)
  for j, lam in enumerate(lams):
    ax.bar(np.arange(len(med)) + (j - (len(lams) - 1) / 2) * width, med[lam] / med[0.0], width,
           color=f"C{j + 1}", label=f"MD-VI lam={lam:g}")
  ax.axhline(RATIO, color="k", ls="--", lw=1, label=f"claim: < {RATIO:g} (not for N3)")
  ax.set_yscale("log")
  ax.set_xticks(np.arange(len(med)), list(med.index))
  ax.set_ylabel("median final error: MD-VI / AVI")
  ax.set_title(f"k = {int(df['iteration'].max())}, {df['seed'].nunique()} Garnets", fontsize=9)
  ax.legend(fontsize=7)
  return fig
