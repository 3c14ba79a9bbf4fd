r"""Identities, fixed points and limits of MD-VI / DA-VI (*Leverage the Average*, Vieillard et al., NeurIPS 2020).

Vieillard, Kozuno, Scherrer, Pietquin, Munos & Geist, *Leverage the Average: an
Analysis of KL Regularization in Reinforcement Learning*, NeurIPS 2020 (arXiv
2003.14089); THEORY.md §2.1–2.3, §2.6, §2.10. Each cell checks one claim
(``Config.check``; LA-10 and LA-11 share a cell, and their optima); the rows of
every claim share one schema: ``measured`` is the checked quantity,
``bound_measured`` the bound or tolerance it must not exceed, ``quantity``
says what it is, and ``value`` / ``target`` / ``aux`` carry the numbers behind it. Garnets are built with
:func:`mdptheory.envs.tabular.garnet_mdp` from keys derived from ``seed``.

Claims checked:

* LA-1 (Proposition 1 [P][D][N]): MD-VI(λ, τ) and DA-VI(λ, τ) driven by the *same* errors (N2, σ = 0.5)
  have the same policies, on Garnet(20, 4, 3), γ = 0.9, (λ, τ) ∈ {(0.5, 0), (0.2, 0.05), (1, 0.3)} and the
  small-λ run (0.01, 0), K = 300 (the first 60 iterations are THEORY's setup). Tolerance 1e-10, scaled for
  τ = 0 as THEORY.md §2.10 says (DA-VI's softmax((k + 1) h_k / λ) amplifies round-off by k ‖q‖ / λ):
  tol_k = max(1e-10, 10 k max_{j≤k}‖q_j‖_∞ ε_mach / λ). That both runs saw the same errors is checked too
  (CVI, the reparameterization of §2.8, is checked against MD-VI in ``tests/test_mdmpi.py``).
* LA-2 (closed-form greedy [P][D]): ln π = log_softmax(β ln μ + q/(λ + τ)) (:func:`md_greedy`) maximizes
  <π, q> − λ KL(π‖μ) + τ H(π): scipy's SLSQP, a generic simplex solver, never finds a better point
  (SLSQP − closed form <= 1e-10), and the closed-form value (λ + τ) lse(β ln μ + q/(λ + τ)) equals the
  objective at the closed-form policy (<= 1e-10). Random q ~ N(0, 1), μ ~ Dirichlet(1), |A| ∈ {2, 3, 5, 8}.
* LA-9 (EMA variance [D]): with N2 errors (σ = 0.5), Var(E^β_K) → σ² (1 − β)/(1 + β), E^β_K MD-VI's recorded
  ``ema``, within 3% for β ∈ {0, 0.5, 0.9, 0.99} (τ = 0.1, λ = βτ/(1 − β), K = 400: the finite-K variance
  σ²(1 − β)(1 − β^{2K})/(1 + β) is within 0.04% of the limit, 1 − 0.99^800 = 0.9997). The
  draws are the S·A entries of one run on a sparse Garnet (N2 is i.i.d. over (s, a)), ``num_draws`` = 4·10⁴
  per β: the relative standard error of a variance is √(2/n), 1.4% at n = 10⁴ (so 3% would be a 2σ test)
  and 0.7% at 4·10⁴ (a 4σ test). The z-score is reported.
* LA-10 (no KL bias [P]): without errors, MD-VI(λ, τ > 0) converges to q*_τ (the fixed point does not depend
  on λ): ‖q*_τ − q^τ_{π_k}‖_∞ < 1e-8 at K = 400, and it stays below g_2(k) (Theorem 2 without errors) at every
  k; MD-VI(λ, 0) converges to q* at rate O(1/k): the error is below the deterministic part of Theorem 1,
  g^1(k) = 4 (r_max + λ ln|A|)/((1 − γ)² k), at every k. Garnet(20, 4, 3), λ ∈ {0.05, 0.1, 1}, τ ∈ {0, 0.1};
  references by policy iteration (an independent method, cross-checked against the LP in
  ``tests/test_solvers.py``).
* LA-11 (entropy bias [P], citing Geist et al. 2019): ‖q* − q^{π*_τ}‖_∞ <= τ ln|A|/(1 − γ), exact (policy
  iteration and a linear solve), on the LA-10 Garnets for τ ∈ {1e-3, 1e-2, 0.1, 1, 10}.
* LA-12 (λ → 0 [P]): MD-VI(1e-6, 0)'s policies equal AVI's greedy policies for K = 50 on small Garnets
  (10, 3, 3) with non-degenerate action gaps, started from q_0 = q^{π_0} (π_0 uniform; a Garnet's reward
  ignores the action, so q_0 = 0 would tie every action). The statement holds on its premise: AVI's greedy
  action never changes along the run and every action gap of q_k is >= 1e-3 (a fraction of the candidate
  Garnets; the count is reported). When AVI's greedy action switches, MD-VI(λ, 0) = DA-VI(λ, 0) follows
  softmax(Σ_{j≤k} q_j / λ), the argmax of the *summed* q's, which lags behind AVI's argmax of the last one:
  the trajectory limits differ there (reported, not a failure). Likewise the paper's "DA-VI → speedy
  Q-learning as λ → 0" concerns the rewritten DA recursion: the limits λ → 0 and "MD form ↔ DA form" do not
  commute (THEORY.md §2.3, §2.10), and for every fixed λ > 0 the MD and DA trajectories are identical (LA-1);
  the speedy Q-learning limit is tested in ``tests/test_mdmpi.py``.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.optimize import minimize
from scipy.special import xlogy

from mdptheory import bounds, metrics, noise, solvers
from mdptheory import regularizers as R
from mdptheory.algorithms.mdmpi import da_mpi, evaluate_entropy, md_greedy, md_mpi
from mdptheory.claims import ClaimResult
from mdptheory.envs.tabular import garnet, garnet_mdp
from mdptheory.errors import ParameterError
from mdptheory.plotting import error_vs_iteration, value_vs_parameter

NAME = "la_identities"
VERSION = "1"
CHECKS = ("LA-1", "LA-2", "LA-9", "LA-10", "LA-11", "LA-12")

SIGMA = 0.5                                                         # N2 errors of LA-1 and LA-9
LA1_PAIRS = ((0.5, 0.0), (0.2, 0.05), (1.0, 0.3), (0.01, 0.0))      # THEORY's three + a small-lambda run
LA1_SHAPE, LA1_ITERS, LA1_TOL = (20, 4, 3), 300, 1e-10
LA2_PAIRS = ((0.5, 0.0), (0.2, 0.05), (1.0, 0.3), (0.0, 0.4), (0.05, 0.01))
LA2_ACTIONS, LA2_TOL = (2, 3, 5, 8), 1e-10
LA9_BETAS, LA9_TAU, LA9_ITERS, LA9_ACTIONS, LA9_TOL = (0.0, 0.5, 0.9, 0.99), 0.1, 400, 4, 0.03
LA10_LAMS, LA10_SOFT_TAU, LA10_SHAPE, LA10_ITERS, LA10_FINAL_TOL = (0.05, 0.1, 1.0), 0.1, (20, 4, 3), 400, 1e-8
LA10_TAUS = (0.0, LA10_SOFT_TAU)
LA11_TAUS = (1e-3, 1e-2, 0.1, 1.0, 10.0)     # on the LA-10 Garnets; contains LA10_SOFT_TAU
LA12_LAM, LA12_SHAPE, LA12_ITERS, LA12_MIN_GAP, LA12_TOL = 1e-6, (10, 3, 3), 50, 1e-3, 1e-9
LA12_CANDIDATES, LA12_MIN_PREMISE = 40, 3   # candidates per instance; the premise holds on ~5-10% of them
ATOL = 1e-9   # inequalities: lhs <= rhs + 1e-9 (THEORY.md §9)


@dataclasses.dataclass(frozen=True)
class Config:
  """One cell (``check``: a claim, or "LA-10+11", which share their optima) on the instances of ``seed``."""
  check: str = "LA-1"
  gamma: float = 0.9
  num_instances: int = 10     # Garnets (LA-1, LA-10, LA-11), random (q, mu) per (|A|, lam, tau) (LA-2);
                              # LA-12 scans LA12_CANDIDATES x this many candidate Garnets
  num_draws: int = 40_000     # LA-9: i.i.d. draws of E^beta_K per beta (the S*A entries of one run)
  seed: int = 0

  @classmethod
  def quick(cls) -> "Config":
    return cls(num_instances=3)


GRID = {"check": ("LA-1", "LA-2", "LA-9", "LA-10+11", "LA-12")}
QUICK_GRID = GRID
SEEDS, QUICK_SEEDS = 1, 1     # every cell already covers num_instances instances
BATCH = ("seed",)
MONITOR = ("measured",)


def _keys(seed: int, n: int, salt: int) -> jax.Array:
  return jax.random.split(jax.random.fold_in(jax.random.key(seed), salt), n)


def _frame(cfg: Config, quantity: str, **cols) -> pd.DataFrame:
  """The shared schema; absent columns are NaN (floats) or 0 (iteration, instance)."""
  n = max(len(v) for v in cols.values() if np.ndim(v) == 1)
  base = {"study": NAME, "claim": cfg.check, "quantity": quantity, "case": "", "gamma": cfg.gamma,
          "seed": cfg.seed, "instance": 0, "iteration": 0, "lam": np.nan, "tau": np.nan, "beta": np.nan,
          "num_actions": 0, "measured": np.nan, "bound_measured": np.nan, "value": np.nan, "target": np.nan,
          "aux": np.nan}
  base.update(cols)
  out = pd.DataFrame({k: [v] * n if np.ndim(v) == 0 else np.asarray(v) for k, v in base.items()})
  return out.astype({"instance": int, "iteration": int, "num_actions": int})


# ----------------------------------------------------------------------------- LA-1


def _run_la1(cfg: Config) -> pd.DataFrame:
  S, A, B = LA1_SHAPE
  K = LA1_ITERS
  lams, taus = (jnp.asarray(x) for x in zip(*LA1_PAIRS))
  errors = noise.gaussian(SIGMA)

  def one(key, lam, tau):
    mdp = garnet_mdp(key, S, A, B, cfg.gamma)
    kw = dict(num_iters=K, noise=errors, key=jax.random.fold_in(key, 1), record_iterates=True, record_eps=True)
    md, da = (f(mdp, lam=lam, tau=tau, **kw) for f in (md_mpi, da_mpi))
    gap = jnp.max(jnp.abs(jnp.exp(md.trace.log_pi) - jnp.exp(da.trace.log_pi)), axis=(1, 2))   # [K]
    # The same errors drove both: N2 does not depend on the iterate, so ε_k must agree to round-off.
    eps_gap = jnp.max(jnp.abs(md.trace.eps - da.trace.eps), axis=(1, 2))
    return gap, eps_gap, jax.lax.cummax(md.trace.q_sup)

  per_key = jax.vmap(one, in_axes=(None, 0, 0))
  gap_da, eps_gap, q_run = (np.asarray(x) for x in jax.jit(jax.vmap(per_key, in_axes=(0, None, None)))(
      _keys(cfg.seed, cfg.num_instances, 1), lams, taus))            # [N, pairs, K]
  k = np.arange(1, K + 1)
  eps = np.finfo(np.float64).eps
  frames = []
  for i in range(cfg.num_instances):
    for j, (lam, tau) in enumerate(LA1_PAIRS):
      tol = np.full(K, LA1_TOL) if tau > 0 else np.maximum(LA1_TOL, 10 * k * q_run[i, j] * eps / lam)
      frames.append(_frame(cfg, "max |pi_MD - pi_DA| (aux: max |eps_MD - eps_DA|; value: max_j<=k ||q_j||)",
                           case=f"lam={lam:g}, tau={tau:g}", instance=i, iteration=k, lam=lam, tau=tau, beta=lam / (lam + tau),
                           num_actions=A, measured=gap_da[i, j], bound_measured=tol, aux=eps_gap[i, j],
                           value=q_run[i, j]))
  return pd.concat(frames, ignore_index=True)


# ----------------------------------------------------------------------------- LA-2


def _objective(p: np.ndarray, q: np.ndarray, log_mu: np.ndarray, lam: float, tau: float) -> float:
  """<π, q> − λ KL(π‖μ) + τ H(π) in numpy (0 ln 0 = 0), the function SLSQP maximizes."""
  return float(p @ q - lam * (np.sum(xlogy(p, p)) - p @ log_mu) - tau * np.sum(xlogy(p, p)))


def _slsqp(q: np.ndarray, log_mu: np.ndarray, lam: float, tau: float) -> float:
  """max over the simplex by SLSQP from the uniform point; returns the objective at its solution."""
  A = q.shape[0]
  res = minimize(lambda p: -_objective(np.clip(p, 0.0, 1.0), q, log_mu, lam, tau), np.full(A, 1.0 / A),
                 method="SLSQP", bounds=[(0.0, 1.0)] * A,
                 constraints=[{"type": "eq", "fun": lambda p: p.sum() - 1.0}],
                 options={"ftol": 1e-15, "maxiter": 1000})
  p = np.clip(res.x, 0.0, 1.0)
  return _objective(p / p.sum(), q, log_mu, lam, tau)


def _run_la2(cfg: Config) -> pd.DataFrame:
  rows = []
  rng = np.random.default_rng([cfg.seed, 2])
  for A in LA2_ACTIONS:
    for lam, tau in LA2_PAIRS:
      q = rng.normal(size=(cfg.num_instances, A))
      log_mu = np.log(rng.dirichlet(np.ones(A), size=cfg.num_instances))
      log_pi, v = (np.asarray(x) for x in md_greedy(jnp.asarray(log_mu), jnp.asarray(q), lam=lam, tau=tau))
      for i in range(cfg.num_instances):
        closed = _objective(np.exp(log_pi[i]), q[i], log_mu[i], lam, tau)
        best = _slsqp(q[i], log_mu[i], lam, tau)
        rows.append(dict(case=f"lam={lam:g}, tau={tau:g}", instance=i, num_actions=A, lam=lam, tau=tau,
                         beta=lam / (lam + tau), measured=best - closed, value=closed, target=best,
                         aux=abs(float(v[i]) - closed)))
  df = pd.DataFrame(rows)
  return _frame(cfg, "SLSQP objective - closed-form objective (aux: |closed-form value - objective|)",
                bound_measured=LA2_TOL, **{c: df[c].to_numpy() for c in df.columns})


# ----------------------------------------------------------------------------- LA-9


def _run_la9(cfg: Config) -> pd.DataFrame:
  A = LA9_ACTIONS
  S = -(-cfg.num_draws // A)
  mdp = garnet(cfg.seed, num_states=S, num_actions=A, branching=2, gamma=cfg.gamma, sparse=True)
  betas = jnp.asarray(LA9_BETAS)
  lams = betas * LA9_TAU / (1.0 - betas)                              # β = λ/(λ + τ)
  errors = noise.gaussian(SIGMA)
  key = jax.random.fold_in(jax.random.key(cfg.seed), 9)
  ema = jax.jit(jax.vmap(lambda lam: md_mpi(mdp, lam=lam, tau=LA9_TAU, num_iters=LA9_ITERS, noise=errors,
                                            key=key).ema))(lams)
  ema = np.asarray(ema).reshape(len(LA9_BETAS), -1)                   # [betas, S*A] i.i.d. draws
  n = ema.shape[1]
  var = ema.var(axis=1, ddof=1)
  b = np.asarray(LA9_BETAS)
  limit = SIGMA ** 2 * (1 - b) / (1 + b)
  z = (var / limit - 1) / math.sqrt(2.0 / (n - 1))                    # ≈ N(0, 1) for Gaussian draws
  return _frame(cfg, "|Var(E^beta_K) / (sigma^2 (1-beta)/(1+beta)) - 1| (aux: z-score)", case="N2",
                instance=np.arange(len(b)), iteration=LA9_ITERS, lam=np.asarray(lams), tau=LA9_TAU, beta=b,
                num_actions=A, measured=np.abs(var / limit - 1), bound_measured=LA9_TOL, value=var,
                target=limit, aux=z, num_draws=n)


# ----------------------------------------------------------------------------- LA-10


def _run_la10_la11(cfg: Config) -> pd.DataFrame:
  """LA-10 and LA-11 on the same Garnets, so that the optima are computed (and compiled) once."""
  S, A, B = LA10_SHAPE
  K = LA10_ITERS
  pairs = [(lam, tau) for tau in LA10_TAUS for lam in LA10_LAMS]
  lams, taus = (jnp.asarray(x) for x in zip(*pairs))
  soft_taus = jnp.asarray(LA11_TAUS)
  i_soft = LA11_TAUS.index(LA10_SOFT_TAU)

  def one(key):
    mdp = garnet_mdp(key, S, A, B, cfg.gamma)
    hard = solvers.optimum(mdp)
    soft = jax.vmap(lambda t: solvers.optimum(mdp, R.entropy(t)))(soft_taus)          # [T] optima
    # LA-11: the unregularized value of π*_τ against q*.
    q_pi = jax.vmap(lambda pi: evaluate_entropy(mdp, pi, 0.0))(soft.pi)                # [T, S, A]
    bias_gap = jnp.max(jnp.abs(hard.q - q_pi), axis=(1, 2))
    bias_low = jnp.min(hard.q - q_pi, axis=(1, 2))
    # LA-10: noiseless MD-VI(λ, τ) against its own reference (q* for τ = 0, q*_τ for τ > 0).
    soft_ref = jax.tree.map(lambda x: x[i_soft], soft)
    r_max = bounds.r_max_of(mdp)
    i = jnp.arange(K)

    def run_pair(lam, tau):
      ref = jax.tree.map(lambda h, s: jnp.where(tau > 0, s, h), hard, soft_ref)
      res = md_mpi(mdp, lam=lam, tau=tau, num_iters=K, reference=ref)
      # Entry i bounds π_{i+1}: Theorem 1 with k = i + 1; Theorem 2 (π_{k+1}) with k = i. No errors.
      g1 = bounds.theorem1_g1(i + 1, gamma=cfg.gamma, r_max=r_max, lam=lam, num_actions=A)
      g2 = bounds.theorem2_g2(i, gamma=cfg.gamma, beta=lam / (lam + tau), tau=tau, r_max=r_max, num_actions=A)
      return res.trace.err_sup, jnp.where(tau > 0, g2, g1)

    err, bnd = jax.vmap(run_pair)(lams, taus)
    return err, bnd, bias_gap, bias_low, jnp.all(soft.converged) & hard.converged

  err, bnd, gap, low, conv = (np.asarray(x) for x in jax.jit(jax.vmap(one))(_keys(cfg.seed, cfg.num_instances, 10)))
  if not conv.all():
    raise RuntimeError("LA-10/LA-11: policy iteration did not converge on a reference; raise its num_iters")
  k = np.arange(1, K + 1)
  frames = []
  for n in range(cfg.num_instances):
    for j, (lam, tau) in enumerate(pairs):
      frames.append(_frame(cfg, "||q*_tau - q^tau_{pi_k}|| (bound: g1(k) for tau=0, g2(k-1) for tau>0)",
                           claim="LA-10", case=f"lam={lam:g}, tau={tau:g}", instance=n, iteration=k, lam=lam,
                           tau=tau, beta=lam / (lam + tau), num_actions=A, measured=err[n, j],
                           bound_measured=bnd[n, j]))
  t = np.tile(np.asarray(LA11_TAUS), cfg.num_instances)
  frames.append(_frame(cfg, "||q* - q^{pi*_tau}||_inf (aux: min(q* - q^{pi*_tau}) >= 0)", claim="LA-11",
                       case=[f"tau={x:g}" for x in t], instance=np.repeat(np.arange(cfg.num_instances), len(LA11_TAUS)),
                       tau=t, num_actions=A, measured=gap.ravel(), aux=low.ravel(),
                       bound_measured=np.asarray(bounds.entropy_bias(t, A, cfg.gamma))))
  return pd.concat(frames, ignore_index=True)


# ----------------------------------------------------------------------------- LA-12


def _run_la12(cfg: Config) -> pd.DataFrame:
  S, A, B = LA12_SHAPE
  K = LA12_ITERS
  n = LA12_CANDIDATES * cfg.num_instances

  def one(key):
    mdp = garnet_mdp(key, S, A, B, cfg.gamma)
    q0 = evaluate_entropy(mdp, jnp.full((S, A), 1.0 / A, mdp.r.dtype), 0.0)   # q^{π_0}
    # MD-VI(1e-6, 0) and AVI = MD-VI(0, 0) in one vmapped call (λ traced: one compilation).
    both = jax.vmap(lambda lam: md_mpi(mdp, lam=lam, tau=0.0, num_iters=K, q0=q0, record_iterates=True))(
        jnp.asarray([LA12_LAM, 0.0]))
    md, av = (jax.tree.map(lambda x, i=i: x[i], both) for i in (0, 1))
    greedy = jnp.argmax(av.trace.log_pi, -1)                                   # [K, S]
    q_used = jnp.concatenate([q0[None], av.trace.q[:-1]])                      # q_{k-1} -> π_k
    gap = jnp.max(jnp.abs(jnp.exp(md.trace.log_pi) - jnp.exp(av.trace.log_pi)), axis=(1, 2))
    return gap, jnp.all(greedy == greedy[0]), jnp.min(metrics.action_gap(q_used))

  gap, stable, min_gap = (np.asarray(x) for x in jax.jit(jax.vmap(one))(_keys(cfg.seed, n, 12)))
  premise = stable & (min_gap >= LA12_MIN_GAP)
  k = np.arange(1, K + 1)
  frames = [_frame(cfg, "max |pi_MD(1e-6, 0) - pi_AVI| (value: 1 if AVI's greedy never changes and gaps >= 1e-3)",
                   case="premise holds" if premise[i] else "greedy switches or gap < 1e-3", instance=i,
                   iteration=k, lam=LA12_LAM, tau=0.0, beta=1.0, num_actions=A, measured=gap[i],
                   bound_measured=LA12_TOL if premise[i] else np.nan, value=float(premise[i]), aux=min_gap[i])
            for i in range(n)]
  return pd.concat(frames, ignore_index=True)


_RUNS = {"LA-1": _run_la1, "LA-2": _run_la2, "LA-9": _run_la9, "LA-10+11": _run_la10_la11, "LA-12": _run_la12}
CELLS = tuple(_RUNS)


def run(cfg: Config) -> pd.DataFrame:
  """The rows of one claim: ``measured`` against ``bound_measured`` (see the module docstring)."""
  if cfg.check not in _RUNS:
    raise ParameterError(f"check={cfg.check!r} is not a cell of this study; use one of {CELLS}")
  if cfg.num_instances < 1 or cfg.num_draws < 100:
    raise ParameterError(f"num_instances={cfg.num_instances} must be >= 1 and num_draws={cfg.num_draws} >= 100 "
                         f"(LA-9 needs thousands of draws for a 3% variance check)")
  return _RUNS[cfg.check](cfg)


# ----------------------------------------------------------------------------- check


def _worst(part: pd.DataFrame) -> tuple[float, float]:
  """(max measured − bound, max measured / bound over finite bounds)."""
  excess = float((part["measured"] - part["bound_measured"]).max())
  fin = part[np.isfinite(part["bound_measured"])]
  return excess, float((fin["measured"] / fin["bound_measured"]).max())


def _check_la1(part):
  excess, _ = _worst(part)
  small = part[part["lam"] < 0.1]
  detail = (f"max |pi_MD - pi_DA| = {part['measured'].max():.2e} over {part['instance'].nunique()} Garnets x "
            f"{part['case'].nunique()} (lam, tau) x {part['iteration'].max()} iterations (N2 sigma={SIGMA}); "
            f"max |eps_MD - eps_DA| = {part['aux'].max():.2e} (same errors); tolerance 1e-10, scaled for tau = 0 to "
            f"10 k max||q|| eps/lam (largest used {part['bound_measured'].max():.2e}; "
            f"lam=0.01: max gap {small['measured'].max():.2e})")
  # Measured: the largest gap relative to its tolerance; every row must hold and the CVI gap too.
  ratio = float((part["measured"] / part["bound_measured"]).max())
  ok = excess <= 0 and float(part["aux"].max()) <= LA1_TOL
  res = ClaimResult.compare("LA-1", ratio, 1.0, detail="max gap/tolerance; " + detail)
  return res if ok else res._replace(passed=False)


def _check_la2(part):
  identity = float(part["aux"].max())
  res = ClaimResult.compare("LA-2", float(part["measured"].max()), LA2_TOL, detail=(
      f"max (SLSQP - closed form) objective over {len(part)} random (q, mu), "
      f"|A| in {sorted(int(a) for a in part['num_actions'].unique())}, "
      f"(lam, tau) in {LA2_PAIRS}: {part['measured'].max():.2e} (SLSQP short of the closed form by up to "
      f"{-part['measured'].min():.2e}); closed-form value identity max error {identity:.2e}"))
  return res if identity <= LA2_TOL else res._replace(passed=False)


def _check_la9(part):
  rows = ", ".join(f"beta={r.beta:g}: Var={r.value:.5f} vs {r.target:.5f} ({r.measured:+.2%}, z={r.aux:+.2f})"
                   .replace("+", "") for r in part.itertuples())
  return ClaimResult.compare("LA-9", float(part["measured"].max()), LA9_TOL, detail=(
      f"max relative deviation of Var(E^beta_K) from sigma^2 (1-beta)/(1+beta) over {int(part['num_draws'].min())} "
      f"draws per beta (K={int(part['iteration'].max())}): {rows}"))


def _check_la10(part):
  excess, _ = _worst(part)
  above = part[part["bound_measured"] > ATOL]          # err/bound is meaningless where both are round-off
  ratio = float((above["measured"] / above["bound_measured"]).max())
  k_last = part["iteration"].max()
  last = part[part["iteration"] == k_last]
  soft = last[last["tau"] > 0]
  hard = last[last["tau"] == 0]
  final = float(soft["measured"].max()) if len(soft) else 0.0
  res = ClaimResult.compare("LA-10", final, LA10_FINAL_TOL, detail=(
      f"tau>0: max ||q*_tau - q^tau_pi_K|| at K={k_last} = {final:.2e} (< 1e-8) over "
      f"{soft['instance'].nunique()} Garnets, lam in {LA10_LAMS}; every k: max err/bound = {ratio:.3g} where "
      f"bound > 1e-9 "
      f"(g1(k) for tau=0, g2(k-1) for tau>0), max err - bound = {excess:.2e}; tau=0 final errors "
      f"{hard['measured'].min():.2e}..{hard['measured'].max():.2e} (O(1/k))"))
  return res if excess <= ATOL else res._replace(passed=False)


def _check_la11(part):
  excess, ratio = _worst(part)
  per_tau = part.assign(r=part["measured"] / part["bound_measured"]).groupby("tau")["r"].max()
  res = ClaimResult.compare("LA-11", ratio, 1.0, detail=(
      f"max ||q* - q^pi*_tau|| / (tau ln|A|/(1-gamma)) over {part['instance'].nunique()} Garnets: "
      + ", ".join(f"tau={t:g}: {r:.3g}" for t, r in per_tau.items())
      + f"; max excess {excess:.2e}; min(q* - q^pi*_tau) = {part['aux'].min():.1e} (>= -1e-9)"))
  return res if (excess <= ATOL and part["aux"].min() >= -ATOL) else res._replace(passed=False)


def _check_la12(part):
  inst = part.groupby("instance").agg(premise=("value", "max"), gap=("measured", "max"))
  held = inst[inst["premise"] > 0]
  other = inst[inst["premise"] == 0]
  worst = float(held["gap"].max()) if len(held) else float("nan")
  res = ClaimResult.compare("LA-12", worst, LA12_TOL, detail=(
      f"premise (AVI's greedy action never changes over K={part['iteration'].max()}, action gaps >= "
      f"{LA12_MIN_GAP:g}) holds on {len(held)}/{len(inst)} Garnets{LA12_SHAPE}: there max |pi_MD(1e-6,0) - "
      f"pi_AVI| = {worst:.1e}; where AVI's greedy switches MD-VI follows the argmax of the summed q's "
      f"(policies differ on {int((other['gap'] > 0.5).sum())}/{len(other)}, max gap "
      f"{(other['gap'].max() if len(other) else 0.0):.2f}): limits do not commute"))
  return res if len(held) >= LA12_MIN_PREMISE else res._replace(passed=False)


_CHECKS = {"LA-1": _check_la1, "LA-2": _check_la2, "LA-9": _check_la9, "LA-10": _check_la10,
           "LA-11": _check_la11, "LA-12": _check_la12}


def check(df: pd.DataFrame) -> list[ClaimResult]:
  """One ClaimResult per claim present in the frame, in the order of CHECKS."""
  df = df.reset_index(drop=True)
  return [_CHECKS[c](df[df["claim"] == c]) for c in CHECKS if (df["claim"] == c).any()]


# ----------------------------------------------------------------------------- plot


def plot(df: pd.DataFrame) -> Figure:
  """Six panels, one per claim: each measured quantity with its bound or tolerance (dashed)."""
  fig = Figure(figsize=(15.5, 7.6), layout="constrained")
  fig.suptitle("Leverage the Average: identities, fixed points and limits (LA-1, 2, 9, 10, 11, 12)", fontsize=10)
  subs = fig.subfigures(2, 3).ravel()
  present = [c for c in CHECKS if (df["claim"] == c).any()]
  for sub, claim in zip(subs, present):
    part = df[df["claim"] == claim]
    if claim == "LA-1":
      error_vs_iteration(part, y="measured", bound="bound_measured", hue="case", seed="instance", logx=True,
                         ylabel=r"$\max|\pi_{MD} - \pi_{DA}|$", into=sub)
      sub.axes[0].set_ylim(1e-18, 1e-8)   # tiny probabilities differ by far less than round-off of 1
      sub.suptitle("LA-1: MD-VI = DA-VI under N2 errors (round-off; tolerance dashed)", fontsize=9)
    elif claim == "LA-2":
      # Per (|A|, instance), SLSQP's largest shortfall over the (lam, tau) settings: closed form - SLSQP.
      short = part.assign(shortfall=-part["measured"]).groupby(["num_actions", "instance"], as_index=False)[
          "shortfall"].max()
      value_vs_parameter(short.assign(claim="LA-2"), x="num_actions", ys=["shortfall"], hue="claim",
                         seed="instance", logx=False, ylabel="objective: closed form - SLSQP", into=sub)
      sub.suptitle(f"LA-2: SLSQP never beats the closed form (max SLSQP - closed = "
                   f"{part['measured'].max():.1e})", fontsize=9)
    elif claim == "LA-9":
      value_vs_parameter(part, x="beta", ys=["value"], bounds=["target"], hue="claim", seed=None, logx=False,
                         ylabel=r"Var$(E^\beta_K)$; dashed: $\sigma^2(1-\beta)/(1+\beta)$", into=sub)
      sub.suptitle(f"LA-9: EMA variance, N2 sigma={SIGMA}, {int(part['num_draws'].min())} draws", fontsize=9)
    elif claim == "LA-10":
      error_vs_iteration(part, y="measured", bound="bound_measured", hue="case", seed="instance", logx=True,
                         ylabel=r"$\|q^\tau_* - q^\tau_{\pi_k}\|_\infty$", into=sub)
      sub.suptitle("LA-10: no KL bias (no errors); dashed: g1(k) / g2(k-1)", fontsize=9)
    elif claim == "LA-11":
      value_vs_parameter(part, x="tau", ys=["measured"], bounds=["bound_measured"], hue="claim", seed="instance",
                         ylabel=r"$\|q_* - q^{\pi^\tau_*}\|_\infty$; dashed: $\tau\ln|A|/(1-\gamma)$", into=sub)
      sub.suptitle(f"LA-11: entropy bias, Garnet{LA10_SHAPE}", fontsize=9)
    elif claim == "LA-12":
      mean = part.groupby(["case", "iteration"], as_index=False)["measured"].mean()
      counts = part.groupby("case")["instance"].nunique()
      mean["case"] = mean["case"].map(lambda c: f"{c} ({counts[c]} Garnets)")
      error_vs_iteration(mean, y="measured", hue="case", seed=None, logy=False, into=sub,
                         ylabel=r"mean over Garnets of $\max|\pi_{MD(10^{-6},0)} - \pi_{AVI}|$")
      sub.suptitle("LA-12: lam -> 0 gives AVI only where AVI's greedy is stable", fontsize=9)
  return fig
