r"""The β-regularised Nash equilibrium of a preference game (Tiapkin et al. 2025, *Nash Mirror Prox*, arXiv 2505.19731 v1).

THEORY.md §5.1 and §5.5, claim NP-1 (NE characterisation, [D][N]). π*_β is computed by Nash
Mirror Prox with η = 2β to the §5.1 fixed point π* ∝ π_ref exp(P(·≻π*)/β), certified by a
residual max |ln π* − ln BR_β(π*)| <= 1e-12 (float64), on random instances of every family of
§5.5 (random intransitive at scales 1 and 0.3, Bradley–Terry, mixtures of three BT models with
Condorcet cycles), with 1 or 2 contexts, n from 3 to 1000, β from 0.01 to 1, and π_ref
uniform or softmax(N(0, σ²)) with σ ∈ {1, 3}.

Claim NP-1, checked as three results:

* Gap_β(π*_β) = 0: |Gap_β(π*)| <= 1e-12 in both the KL form and the logsumexp form of
  :mod:`mdptheory.games`, with every equilibrium certified (residual <= 1e-12).
* Gap_β(π) > 0 for π ≠ π*: at random perturbations π = (1 − t) π* + t q, q ~ Dirichlet(1)
  per context, t ∈ [1e-2, 1] (t = 1: a random policy), Gap_β(π) >= β KL_ρ(π‖π*_β) > 0.
  (Mixtures, not logit noise: a logit perturbation of a near-deterministic π* moves almost no
  mass, and its Gap sits at the float64 rounding level.) The lower bound is derived here [D]:
  J_β(π*, π) − 1/2 = β KL_ρ(π‖π*) exactly (use ln π* = ln π_ref + P(·≻π*)/β − ln Z and
  ⟨π, P(·≻π)⟩ = 1/2), and Gap_β(π) >= J_β(π*, π) − 1/2; in fact
  Gap_β(π) = β KL_ρ(π‖π*) + β KL_ρ(π*‖BR_β(π)), so the bound is nearly tight when the best
  response barely moves (large β, or a dominant response).
* KL_ρ(π*_β‖π_ref) <= 1/(2β) on every instance (KL = 1/(2β) − E_x ln Z_x, ln Z_x >= 0).

Gap_β is the derived normalisation max_π' J_β(π', π) − 1/2 of THEORY.md §5.1; the paper's exact
normalisation is UNCONFIRMED. The preference tensor depends only on (family, n, contexts, seed),
so the β and σ cells of a seed share it (π_ref and the perturbation directions are drawn on the
host from the seed).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator

from mdptheory import games
from mdptheory.claims import ClaimResult
from mdptheory.envs.preference import preference_tensor_np
from mdptheory.errors import ParameterError
from mdptheory.plotting import panels
from mdptheory.types import PreferenceGame

NAME = "np_equilibrium"
VERSION = "2"
TOL = 1e-12          # certification threshold on the fixed-point residual and on |Gap_β(π*)|
KL_ATOL = 1e-14      # rounding allowance on β KL(π‖π*) <= Gap_β(π) (absolute, float64 sums of ~n terms)
PAD = 4              # run_batch pads its batch to a multiple of PAD: fewer compiled programs

# family -> (sampler, instance scale): THEORY.md §5.5. Every family of one (n, contexts) shares
# a compiled program.
FAMILIES: dict[str, tuple[str, float]] = {
    "intransitive": ("intransitive", 1.0),
    "intransitive_0.3": ("intransitive", 0.3),
    "bradley_terry": ("bradley_terry", 1.0),
    "bt_mixture": ("bt_mixture", 3.0),
}
BT_COMPONENTS = 3


@dataclasses.dataclass(frozen=True)
class Config:
  """One instance (family, n, contexts, seed) with one π_ref spread σ, solved at one β."""
  family: str = "intransitive"  # a key of FAMILIES
  n: int = 12                   # number of responses |Y|
  contexts: int = 2             # X, independent instances per context, uniform ρ
  beta: float = 0.1             # regularisation β
  ref_sigma: float = 1.0        # π_ref = softmax(N(0, σ²)) per context; uniform at 0
  num_perturb: int = 8          # perturbations (1 − t) π* + t q, t log-spaced in [1e-2, 1]
  seed: int = 0

  @classmethod
  def quick(cls) -> "Config":
    return cls()


GRID = {"family": tuple(FAMILIES), "n": (3, 10, 50, 200, 1000), "contexts": (1, 2),
        "beta": (0.01, 0.03, 0.1, 0.3, 1.0), "ref_sigma": (0.0, 1.0, 3.0)}
# Every family, two sizes; batches of 8 cells, so the quick sweep compiles twice.
QUICK_GRID = {"family": tuple(FAMILIES), "n": (3, 12), "beta": (0.05, 0.5), "ref_sigma": (0.0, 3.0)}
# NP-1 is an inequality on every instance, not a statistical claim: 3 instances per setting
# (1800 certified equilibria) keep the n = 1000 cells within minutes.
SEEDS, QUICK_SEEDS = 3, 2
# β is left out so that a batch (which runs until its slowest member is certified) does not make
# large-β cells wait for β = 0.01.
BATCH = ("family", "ref_sigma", "seed")
MAX_BATCH = 12   # a (n, contexts, beta) group of the default grid is 36 cells: 3 batches, no padding
MONITOR = ("residual", "gap_star", "kl_ref", "gap")


@jax.jit
def _run(P, betas, ref_noise, q, mix):
  def one(P_, beta, ref_noise_, q_):
    contexts = P_.shape[0]
    # π_ref = softmax(σ N(0, I)) with the normal draw made on the host (ref_noise_ = σ z_ref).
    game = PreferenceGame(P=P_, rho=jnp.full((contexts,), 1.0 / contexts, P_.dtype),
                          pi_ref=jax.nn.softmax(ref_noise_, axis=-1))
    eq = games.nash_equilibrium(game, beta=beta, tol=TOL)
    gap_star = games.exploitability(game, eq.pi, beta=beta)
    gap_star_lse = games.exploitability_lse(game, eq.pi, beta=beta)
    kl_ref = games.kl_log(game, eq.log_pi, jnp.log(game.pi_ref))
    gap_ref = games.exploitability(game, game.pi_ref, beta=beta)

    def perturbed(t, q_):
      pi = (1.0 - t) * eq.pi + t * q_
      return games.exploitability(game, pi, beta=beta), beta * games.kl_log(game, jnp.log(pi), eq.log_pi)

    gap, gap_lower = jax.vmap(perturbed)(mix, q_)
    return (eq.residual, eq.iterations, eq.certified, gap_star, gap_star_lse, kl_ref, gap_ref, gap, gap_lower)

  return jax.vmap(one)(P, betas, ref_noise, q)


def _mix(num_perturb: int) -> np.ndarray:
  return np.logspace(-2.0, 0.0, num_perturb)


def run_batch(cfgs: list[Config]) -> list[pd.DataFrame]:
  """Cells that differ only in (family, ref_sigma, seed), in one compiled call (padded to PAD cells)."""
  c = cfgs[0]
  for x in cfgs:
    if x.family not in FAMILIES:
      raise ParameterError(f"family={x.family!r} is not one of {list(FAMILIES)}")
  padded = cfgs + [cfgs[-1]] * (-len(cfgs) % PAD)
  dt = np.float64 if jax.config.jax_enable_x64 else np.float32
  # Host-side draws from the cell's seed (numpy: compiling JAX's threefry for every shape costs
  # more than the draws). The preference tensor uses the stream [seed, 0] and depends on
  # (family, n, contexts, seed) only; π_ref noise and perturbation directions use [seed, 1].
  P, ref_noise, q = [], [], []
  for x in padded:
    sampler, scale = FAMILIES[x.family]
    P.append(preference_tensor_np([x.seed, 0], sampler, c.n, scale=scale, contexts=c.contexts,
                                  components=BT_COMPONENTS))
    r = np.random.default_rng([x.seed, 1])
    ref_noise.append(x.ref_sigma * r.standard_normal((c.contexts, c.n)))
    q.append(r.dirichlet(np.ones(c.n), (c.num_perturb, c.contexts)))
  mix = _mix(c.num_perturb)
  out = _run(jnp.asarray(np.stack(P), dt), jnp.asarray([x.beta for x in padded], dt),
             jnp.asarray(np.stack(ref_noise), dt), jnp.asarray(np.stack(q), dt), jnp.asarray(mix, dt))
  residual, iters, certified, gap_star, gap_star_lse, kl_ref, gap_ref, gap, gap_lower = (np.asarray(o) for o in out)
  frames = []
  for i, x in enumerate(cfgs):
    frames.append(pd.DataFrame({
        "study": NAME, "env": f"preference_{x.family}", "family": x.family, "n": x.n,
        "contexts": x.contexts, "beta": x.beta, "ref_sigma": x.ref_sigma, "seed": x.seed,
        "perturbation": np.arange(x.num_perturb), "mix": mix,
        # The certificate and Gap_β at the equilibrium (bounds: the tolerance).
        "residual": float(residual[i]), "bound_residual": TOL, "iterations": int(iters[i]),
        "certified": bool(certified[i]),
        "gap_star": abs(float(gap_star[i])), "bound_gap_star": TOL,
        "gap_star_lse": abs(float(gap_star_lse[i])), "bound_gap_star_lse": TOL,
        # KL_ρ(π*‖π_ref) <= 1/(2β).
        "kl_ref": float(kl_ref[i]), "bound_kl_ref": 1.0 / (2.0 * x.beta),
        "kl_ref_scaled": 2.0 * x.beta * float(kl_ref[i]),
        "gap_ref": float(gap_ref[i]),
        # Gap_β at the perturbations; bound_gap = β KL_ρ(π‖π*) is a LOWER bound.
        "gap": gap[i], "bound_gap": gap_lower[i],
    }))
  return frames


def run(cfg: Config) -> pd.DataFrame:
  """One row per perturbation of π*_β; the equilibrium's columns are repeated on every row."""
  return run_batch([cfg])[0]


def check(df: pd.DataFrame) -> list[ClaimResult]:
  df = df.reset_index(drop=True)
  cells = df[df["perturbation"] == 0]
  n_cells = len(cells)
  certified = bool(cells["certified"].all()) and bool((cells["residual"] <= TOL).all())
  worst_gap = float(np.nanmax(np.maximum(cells["gap_star"], cells["gap_star_lse"]).to_numpy()))
  r_zero = ClaimResult.compare("NP-1", worst_gap, TOL, detail=(
      f"Gap_beta(pi*) = 0: max |Gap| over {n_cells} equilibria = {cells['gap_star'].max():.2e} (KL form), "
      f"{cells['gap_star_lse'].max():.2e} (logsumexp form); {int(cells['certified'].sum())}/{n_cells} certified, "
      f"max residual {cells['residual'].max():.2e} <= {TOL:g}; "
      f"Nash-MP iterations {int(cells['iterations'].min())}-{int(cells['iterations'].max())}"))
  if not certified:
    r_zero = r_zero._replace(passed=False)

  # β KL(π‖π*) <= Gap_β(π), with an absolute rounding allowance on the two KL sums.
  ratio = ((df["bound_gap"] - KL_ATOL) / df["gap"]).to_numpy()
  positive = bool((df["gap"] > 0).all())
  worst_ratio = float(np.nanmax(np.where(df["gap"] > 0, ratio, np.inf)))
  r_pos = ClaimResult.compare("NP-1", worst_ratio, 1.0, detail=(
      f"Gap_beta(pi) > 0 off the equilibrium: at {len(df)} perturbations (1-t) pi* + t q, q ~ Dirichlet(1), "
      f"t in [{df['mix'].min():.2g}, {df['mix'].max():.2g}], min Gap = {df['gap'].min():.2e} (min beta KL(pi||pi*) "
      f"= {df['bound_gap'].min():.2e}), and "
      f"max (beta KL(pi||pi*) - {KL_ATOL:g})/Gap(pi) = {worst_ratio:.8f} <= 1 (derived lower bound [D])"))
  if not positive:
    r_pos = r_pos._replace(passed=False)

  worst_kl = float(cells["kl_ref_scaled"].max())
  at = cells.loc[cells["kl_ref_scaled"].idxmax()]
  r_kl = ClaimResult.compare("NP-1", worst_kl, 1.0, detail=(
      f"KL(pi*||pi_ref) <= 1/(2 beta): max 2 beta KL over {n_cells} equilibria = {worst_kl:.4f} "
      f"(at {at['family']}, n={int(at['n'])}, beta={at['beta']:g}, sigma={at['ref_sigma']:g})"))
  return [r_zero, r_pos, r_kl]


def _beta_ticks(ax, betas) -> None:
  values = np.sort(np.unique(betas))
  ax.set_xticks(values, [f"{b:g}" for b in values])
  ax.xaxis.set_minor_locator(NullLocator())


def plot(df: pd.DataFrame) -> Figure:
  """2β KL(π*‖π_ref) against β (worst instance per family and n; bound 1), the certificates, and
  Gap_β at perturbations against its lower bound β KL(π‖π*)."""
  df = df.assign(family=[f"{f} (X={x})" if x > 1 else f for f, x in zip(df["family"], df["contexts"])])
  cells = df[df["perturbation"] == 0]
  fig, (left, mid, right) = panels([5.4, 4.2, 4.2], height=3.9, title=(
      "NP-1: the beta-regularised Nash equilibrium of preference games (Nash-MP, eta = 2 beta, float64)"))
  ns = sorted(cells["n"].unique())
  fams = list(dict.fromkeys(cells["family"]))
  markers = dict(zip(fams, "osD^v<>ph*"))
  ax = left.subplots()
  worst = cells.groupby(["family", "n", "beta"], as_index=False)["kl_ref_scaled"].max()
  for i, n in enumerate(ns):
    for fam in fams:
      part = worst[(worst["n"] == n) & (worst["family"] == fam)].sort_values("beta")
      if len(part):
        ax.plot(part["beta"], part["kl_ref_scaled"], color=f"C{i % 10}", marker=markers[fam], ms=3.5, lw=0.8)
  ax.axhline(1.0, color="k", ls="--", lw=1)
  ax.set_xscale("log")
  ax.set_yscale("log")
  _beta_ticks(ax, cells["beta"])
  ax.set_xlabel("beta")
  ax.set_ylabel(r"$2\beta\,\mathrm{KL}(\pi^*_\beta\|\pi_{ref})$  (max over seeds, $\sigma$)")
  ax.set_ylim(top=30.0)
  handles = [Line2D([], [], color=f"C{i % 10}", lw=1.5, label=f"n={n}") for i, n in enumerate(ns)]
  handles += [Line2D([], [], color="0.3", marker=markers[f], ls="", label=f) for f in fams]
  handles += [Line2D([], [], color="k", ls="--", lw=1, label="bound 1")]
  ax.legend(handles=handles, fontsize=6, ncol=3, loc="upper center")
  ax.set_title("KL to the reference vs its bound 1/(2 beta)", fontsize=9)

  ax = mid.subplots()
  floor = 1e-18  # exact zeros drawn at the floor of the log axis
  for j, (col, label, mk) in enumerate((("residual", "fixed-point residual", "o"),
                                        ("gap_star", r"$|\mathrm{Gap}_\beta(\pi^*)|$", "s"))):
    ax.scatter(cells["beta"] * (1.0 + 0.06 * (2 * j - 1)), np.maximum(cells[col], floor), s=5, marker=mk,
               color=f"C{j}", alpha=0.5, label=label)
  ax.axhline(TOL, color="k", ls="--", lw=1, label=f"tolerance {TOL:g}")
  ax.set_xscale("log")
  ax.set_yscale("log")
  _beta_ticks(ax, cells["beta"])
  ax.set_xlabel("beta")
  ax.set_ylabel(f"certificate (exact zeros at {floor:g})")
  ax.legend(fontsize=7, loc="center left")
  ax.set_title(f"certified equilibria ({len(cells)} cells)", fontsize=9)

  ax = right.subplots()
  betas = np.sort(df["beta"].unique())
  for i, b in enumerate(betas):
    part = df[df["beta"] == b]
    ax.scatter(part["bound_gap"], part["gap"], s=4, alpha=0.4, color=f"C{i % 10}", label=f"beta={b:g}")
  lo = max(float(min(df["bound_gap"].min(), df["gap"].min())), 1e-18)
  hi = float(max(df["bound_gap"].max(), df["gap"].max()))
  ax.plot([lo, hi], [lo, hi], color="k", ls="--", lw=1, label=r"Gap = $\beta$ KL (lower bound)")
  ax.set_xscale("log")
  ax.set_yscale("log")
  ax.set_xlabel(r"$\beta\,\mathrm{KL}_\rho(\pi\|\pi^*_\beta)$")
  ax.set_ylabel(r"$\mathrm{Gap}_\beta(\pi)$")
  ax.legend(fontsize=6, loc="upper left", markerscale=2)
  ax.set_title("Gap > 0 off the equilibrium (perturbations)", fontsize=9)
  return fig
