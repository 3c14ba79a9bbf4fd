"""The claims registry: every checkable claim, the paper it comes from, and the study that checks it.

A claim is checked by a study (a file in ``studies/``) whose ``check(df)``
returns one :class:`ClaimResult` per claim: the measured value, the bound or
target it is compared with, the margin and PASS/FAIL. ``kind`` says how to read
it: an ``inequality`` holds at every observation, an ``identity`` holds to a
stated tolerance, a ``rate`` compares a fitted slope with the theoretical one,
and a ``statistical`` claim is a test over seeds.
"""

from __future__ import annotations

import math
from typing import NamedTuple


class Claim(NamedTuple):
  id: str         # e.g. "RB-1" (THEORY.md §11)
  paper: str      # short citation
  statement: str  # the claim in one line
  study: str      # the study in studies/ that checks it
  kind: str       # "inequality" | "identity" | "rate" | "statistical"
  note: str = ""  # e.g. "derived form; the printed constant is UNCONFIRMED"


class ClaimResult(NamedTuple):
  id: str
  measured: float  # the worst observed value (e.g. max lhs/rhs)
  bound: float     # what it is compared with
  margin: float    # bound − measured for "<=", measured − bound for ">="; >= 0 means it holds
  passed: bool
  detail: str = ""

  @classmethod
  def compare(cls, claim_id: str, measured: float, bound: float, *, sense: str = "<=",
              atol: float = 0.0, detail: str = "") -> "ClaimResult":
    """PASS iff ``measured <= bound + atol`` (or ``>=`` with ``sense='>='``); NaN never passes."""
    measured, bound = float(measured), float(bound)
    if sense == "<=":
      margin = bound - measured
    elif sense == ">=":
      margin = measured - bound
    else:
      raise ValueError(f"sense={sense!r} must be '<=' or '>='")
    passed = not (math.isnan(measured) or math.isnan(bound)) and margin >= -atol
    return cls(claim_id, measured, bound, margin, bool(passed), detail)


CLAIMS: dict[str, Claim] = {c.id: c for c in [
    Claim("RB-1", "Geist, Scherrer & Pietquin 2019 (arXiv 1901.11275)",
          "Every regularized Bellman operator is a gamma-contraction: soft VI residuals shrink by "
          "at least gamma per iteration (none, entropy, KL, Tsallis)",
          "rb_contraction", "inequality", "derived [D]"),
    Claim("RB-3", "Geist et al. 2019; Vieillard et al. 2020 (arXiv 2003.14089)",
          "Bias of the regularized optimum: 0 <= q*_tau - q* <= gamma tau ln|A|/(1-gamma), "
          "||q* - q^{pi*_tau}|| <= tau ln|A|/(1-gamma); Tsallis-2 and KL-to-prior analogues",
          "rb_bias", "inequality", "entropy policy gap [P]; the rest derived [D]"),
    Claim("RB-2", "Bertsekas & Tsitsiklis 1996; Vieillard et al. 2020 (arXiv 2003.14089) §2.7",
          "AVI bound: ||q* - q^{pi_(k+1)}|| <= 2 gamma/(1-gamma) (sum_j gamma^(k-j) ||eps_j|| + gamma^k ||q* - q_0||) "
          "at every k under N1",
          "la_averaging", "inequality", "derived form with ||q* - q_0|| [D]; the paper's printed numerators are [S]"),
    Claim("LA-3", "Vieillard et al. 2020 (arXiv 2003.14089)",
          "Boundedness: ||q_k|| <= v_max at every k for MD-VI(lam, 0) under N1 sampling, without clipping",
          "la_averaging", "inequality", "[P] without errors; [D] under N1"),
    Claim("LA-4", "Vieillard et al. 2020 (arXiv 2003.14089), Theorem 1",
          "||q* - q^{pi_k}|| <= 2/(1-gamma) ||mean_j eps_j|| + 4 (r_max + lam ln|A|)/((1-gamma)^2 k) at every k "
          "(MD-VI(lam, 0), N1, Garnet(30,4,4))",
          "la_averaging", "inequality", "l-inf form [S][N]; the lam-version of the constant (the gamma-lam variant "
                                        "is UNCONFIRMED)"),
    Claim("LA-5", "Vieillard et al. 2020 (arXiv 2003.14089)",
          "Averaging beats accumulation: median final normalized l1 error of MD-VI(lam in [0.01, 1]) < 0.1 x AVI's "
          "(20 Garnets, paired sign test)",
          "la_averaging", "statistical", "[P][N]"),
    Claim("LA-6", "Vieillard et al. 2020 (arXiv 2003.14089)",
          "Larger lam slows early convergence: error at k=10 larger for lam=1 than for lam=0.1 (20 Garnets, sign test)",
          "la_averaging", "statistical", "[P]"),
    Claim("LA-7", "Vieillard et al. 2020 (arXiv 2003.14089), Theorem 2",
          "||q*_tau - q^tau_{pi_(k+1)}|| <= 2/(1-gamma) sum_j gamma^(k-j) ||E^beta_j|| + g_2(k) at every k "
          "(MD-VI(lam, tau > 0), N1)",
          "la_theorem2", "inequality", "l-inf corollary [S][D]; the component-wise display is UNCONFIRMED"),
    Claim("LA-8", "Vieillard et al. 2020 (arXiv 2003.14089)",
          "beta trade-off: the median final error decreases as beta = lam/(lam+tau) grows (20 Garnets, sign test)",
          "la_theorem2", "statistical", "[P][N]"),
    Claim("MV-1", "Vieillard, Pietquin & Geist 2020 (arXiv 2007.14430), Theorem 1",
          "M-VI(alpha, tau) with q' = q - alpha tau ln pi equals MD-VI(alpha tau, (1-alpha) tau) under the same "
          "errors, to 1e-10 at every iteration",
          "mv_munchausen", "identity", "[C][D][N]"),
    Claim("MV-4", "Vieillard, Pietquin & Geist 2020 (arXiv 2007.14430), Theorem 2",
          "M-VI's limit widens every action gap by exactly 1/(1-alpha)",
          "mv_munchausen", "identity", "derived 1/(1-alpha) [D][N]; the printed (1+alpha)/(1-alpha) is UNCONFIRMED"),
    Claim("TS-4", "Zhu, Chen, Schlegel & White 2023 (arXiv 2301.11476)",
          "Tsallis-KL greedy iterations depend on the order of the Q sequence iff q != 1 (not simply averaging)",
          "ts_tsallis", "identity", "[D][N]; the paper's display is UNCONFIRMED"),
    Claim("TS-5", "Zhu, Chen, Schlegel & White 2023 (arXiv 2301.11476)",
          "MVI(q) is not Tsallis-KL MD-VI for q != 1: max policy gap > 0.05 at q in {1.5, 2, 3} (measured value "
          "reported)",
          "ts_tsallis", "inequality", "[D][N]; the paper's 'negligible at q=2' is UNCONFIRMED"),
    Claim("TS-7", "Zhu, Chen, Schlegel & White 2023 (arXiv 2301.11476)",
          "The first-order threshold approximation is exact at q=2 and its error grows with |q-2|",
          "ts_tsallis", "inequality", "[S]"),
    Claim("MV-2", "Vieillard, Pietquin & Geist 2020 (arXiv 2007.14430)",
          "The lse form of M-VI equals its ln-pi form (also clipped) and alpha=0 equals soft VI, to 1e-10 at every "
          "iteration; at tau=1e-6 one M-VI step is Advantage Learning's within max(alpha, gamma) tau ln|A| (N1)",
          "mv_robustness", "identity", "[D]; AL trajectories reported, not bounded (AL is not a contraction)"),
    Claim("MV-3", "Vieillard, Pietquin & Geist 2020 (arXiv 2007.14430); Vieillard et al. 2020 (arXiv 2003.14089), "
                  "Theorem 1",
          "alpha=1: ||q* - q^{pi_k}|| <= 2/(1-gamma) ||mean_j eps_j|| + 4 (r_max + tau ln|A|)/((1-gamma)^2 k) at "
          "every k (M-VI(1, tau) = MD-VI(tau, 0), N1, Garnet(30,4,4))",
          "mv_robustness", "inequality", "[D]; derived form (Theorem 1 with lam = tau); the printed constants "
                                         "are UNCONFIRMED"),
    Claim("MV-5", "Vieillard, Pietquin & Geist 2020 (arXiv 2007.14430)",
          "Clipped M-VI (l0=-1) equals MD-VI(alpha tau, (1-alpha) tau) to 1e-10 until the clip first binds, and "
          "departs from it afterwards (policy gap vs clipped fraction reported)",
          "mv_robustness", "identity", "[D]"),
    Claim("MV-6", "Vieillard, Pietquin & Geist 2020 (arXiv 2007.14430)",
          "Under N1, M-VI(alpha, tau'/(1-alpha)) with alpha in {0.9, 0.99} reaches a lower final error against "
          "q*_tau' than soft VI (alpha=0) at the same tau' (median over 20 Garnets, sign test p < 0.01)",
          "mv_robustness", "statistical", "[D] from Theorem 2 of arXiv 2003.14089 with beta = alpha"),
    Claim("TS-1", "Zhu, Chen, Schlegel & White 2023 (arXiv 2301.11476)",
          "Continuity at q=1: at q=1+1e-3 the Tsallis and Tsallis-KL greedy steps and MVI(q) policies are within "
          "C (q-1) of the Shannon ones (C=10); greedy gaps/(q-1) match the derived first-order coefficient to 1%, "
          "MVI(q) vs MD-VI gaps are linear in q-1",
          "ts_greedy", "inequality", "[D][N]; the MVI(q) definition is the spec's (THEORY.md 4.4, UNCONFIRMED)"),
    Claim("TS-2", "Zhu, Chen, Schlegel & White 2023 (arXiv 2301.11476)",
          "The Tsallis greedy step exp_q(Q/tau - psi) is the maximiser: objective gap <= 1e-12 to exhaustive face "
          "search and to SLSQP (q in {1.5, 2, 3}), KKT residual <= 1e-10; q=2 is sparsemax(Q/tau) to 1e-14; "
          "support size non-decreasing in tau",
          "ts_greedy", "identity", "[D][N]; 1/q normalisation (papers without it use q tau)"),
    Claim("TS-3", "Zhu, Chen, Schlegel & White 2023 (arXiv 2301.11476)",
          "The Tsallis-KL greedy closed form matches exhaustive face search and SLSQP (objective gap <= 1e-12); "
          "zeros are absorbing: supp pi_(k+1) within supp pi_k at every update of Tsallis-KL MD-VI (N2 errors)",
          "ts_greedy", "identity", "[D][N]"),
    Claim("TS-6", "Zhu, Chen, Schlegel & White 2023 (arXiv 2301.11476); Geist, Scherrer & Pietquin 2019 "
                  "(arXiv 1901.11275)",
          "Value iteration with tau Omega_q is a gamma-contraction: residual ratios <= gamma at every iteration "
          "and on random pairs, geometric convergence to v*_Omega (q in {1.1, 1.5, 2, 3, 5}, several tau)",
          "ts_greedy", "inequality", "[D]; the paper's q=2 Tsallis-KL convergence theorem is UNCONFIRMED and "
                                     "not tested"),
    Claim("TS-8", "Zhu, Chen, Uchibe & Matsubara 2022 (arXiv 2205.07467)",
          "Sparsemax MVI with a ln bonus clipped at l0=-1: most bonus mass sits at the clip, and it ends farther "
          "from q*_Omega than the ln_q bonus (alpha=0.5, 20 Garnets, sign test p < 0.01)",
          "ts_greedy", "statistical", "[P abstract]; tabular exact-update reading of a qualitative claim; "
                                      "alpha=0.9 reported only"),
    Claim("NP-1", "Tiapkin et al. 2025 (arXiv 2505.19731)",
          "The fixed point pi* ~ pi_ref exp(P(.>pi*)/beta) is the beta-regularised Nash equilibrium: "
          "Gap_beta(pi*) = 0 (<= 1e-12, certified residual), Gap_beta(pi) >= beta KL(pi||pi*) > 0 at perturbations, "
          "KL(pi*||pi_ref) <= 1/(2 beta) on all instances",
          "np_equilibrium", "inequality", "[D][N]; the paper's exact Gap normalisation is UNCONFIRMED"),
    Claim("CF-1", "Korbak, Perez & Buckley 2022 (arXiv 2205.11275); Yang et al. 2024 (arXiv 2404.01730)",
          "The maximizer of E r - beta KL(pi||pi_ref) is pi* ~ pi_ref exp(r/beta): its objective equals beta log Z "
          "and E r = beta log Z + beta KL to 1e-12, it beats 2000 random policies, and the KL-constrained form's root "
          "solve at Delta = KL(pi*) returns lambda = 1/beta",
          "cf_posterior", "identity", "[D][N]"),
    Claim("CF-2", "Beirami et al. 2024 (arXiv 2401.01879)",
          "log N - (N-1)/N is an upper bound on KL(pi_N||pi_ref), not its value: strict for every N >= 2 with atoms, "
          "and for a uniform reference on M distinct rewards the gap shrinks strictly as M grows",
          "cf_bon", "inequality", "[P] bound; [N] gaps (1.3e-2, 2.1e-4, 3.6e-8 at N=2, M=5, 50, 5000)"),
    Claim("CF-3", "Beirami et al. 2024 (arXiv 2401.01879)",
          "The exact best-of-N law with ties, (F^N - F_-^N) pi_ref/p_G, matches Monte-Carlo best-of-N (Kolmogorov "
          "distance below the DKW radius at alpha=1e-6) and its KL stays below log N - (N-1)/N",
          "cf_bon", "statistical", "[D][N]; 20,000 draws (THEORY.md: tol 0.02 at 3000 draws)"),
    Claim("CF-4", "Beirami et al. 2024 (arXiv 2401.01879)",
          "The win rate of best-of-N against pi_ref (ties count 1/2) is at most N/(N+1), with the gap shrinking "
          "strictly as M grows for distinct rewards",
          "cf_bon", "inequality", "[P] bound; [D] limit"),
    Claim("CF-5", "Beirami et al. 2024 (arXiv 2401.01879); Yang et al. 2024 (arXiv 2404.01730)",
          "On the (KL, E r) plane every best-of-N point lies on or below the tilted frontier "
          "{(KL(phi_l||p), E_phi_l r)}, phi_l ~ p exp(l r)",
          "cf_posterior", "inequality", "[D]"),
    Claim("CF-6", "Yang, Salamatian, Sun, Suresh & Beirami 2024 (arXiv 2404.01730)",
          "Memoryless reference, additive reward, BoN with N = e^(n Delta) vs the per-token tilt with KL Delta: the "
          "per-token reward gap, KL gap and KL(BoN||tilt)/n decrease strictly to 0 in n (n up to 4096, exact)",
          "cf_asymptotics", "rate", "[N]; the exact theorem statement and normalization are UNCONFIRMED (derived "
                                    "form tested)"),
    Claim("CF-7", "Gao, Schulman & Hilton 2023 (arXiv 2210.10760)",
          "Gold reward vs d = sqrt(KL) under a Bradley-Terry proxy: d(a - b d) (BoN) and d(a - b log d) (KL-RL) fit "
          "(median R^2 >= 0.9), their peaks are d* = a/(2b) and e^(a/b - 1), and the gold reward falls past the "
          "peak (sign test over 20 instances)",
          "cf_overopt", "statistical", "[S] forms (paper text not read); [D] peaks; miniature with a linear proxy"),
    Claim("LA-1", "Vieillard et al. 2020 (arXiv 2003.14089), Proposition 1",
          "MD-VI(lam, tau) and DA-VI(lam, tau) driven by the same errors (N2, sigma=0.5) have the same policies at "
          "every iteration: max |pi_MD - pi_DA| <= 1e-10 (scaled by k ||q|| eps/lam for tau = 0)",
          "la_identities", "identity", "[P][D][N]"),
    Claim("LA-2", "Vieillard et al. 2020 (arXiv 2003.14089)",
          "The closed-form greedy step pi ~ mu^beta exp(q/(lam+tau)) maximizes <pi,q> - lam KL(pi||mu) + tau H(pi): "
          "SLSQP never beats it by more than 1e-10, and (lam+tau) lse(beta ln mu + q/(lam+tau)) is its value",
          "la_identities", "identity", "[P][D]"),
    Claim("LA-9", "Vieillard et al. 2020 (arXiv 2003.14089)",
          "Under i.i.d. N(0, sigma^2) errors Var(E^beta_k) -> sigma^2 (1-beta)/(1+beta), within 3%",
          "la_identities", "statistical", "[D]; 4e4 draws per beta (the 3% tolerance is 2 standard errors at 1e4)"),
    Claim("LA-10", "Vieillard et al. 2020 (arXiv 2003.14089)",
          "No KL bias: without errors MD-VI(lam, tau > 0) converges to q*_tau (< 1e-8 at K=400, below g_2(k) at "
          "every k); MD-VI(lam, 0) stays below 4 (r_max + lam ln|A|)/((1-gamma)^2 k) at every k",
          "la_identities", "inequality", "[P]"),
    Claim("LA-11", "Vieillard et al. 2020 (arXiv 2003.14089), citing Geist et al. 2019",
          "Entropy bias: ||q* - q^{pi*_tau}|| <= tau ln|A|/(1-gamma), exact, on Garnets for tau in [1e-3, 10]",
          "la_identities", "inequality", "[P]"),
    Claim("LA-12", "Vieillard et al. 2020 (arXiv 2003.14089)",
          "lam -> 0: MD-VI(1e-6, 0) has AVI's greedy policies (K=50) on Garnets where AVI's greedy action never "
          "changes and the action gaps are >= 1e-3; elsewhere the limits do not commute (reported)",
          "la_identities", "identity", "[P]; tested on its premise (the trajectory-level statement fails when "
                                         "AVI's greedy action switches)"),
    Claim("LA-5b", "Vieillard et al. 2020 (arXiv 2003.14089), Theorem 1",
          "Averaging vs accumulation under N1, N2, N4 (Student-t), N5 (alternating): MD-VI(lam, 0)'s median final "
          "error < 0.1 x AVI's (20 Garnets, sign test p < 0.01); under N3 (bias b) the floor does not vanish "
          "(-> ||q* - q^{pi*_(r+b)}||) and stays below 2||b||/(1-gamma) + g1(K); Theorem 1 at every k",
          "la_noise", "statistical", "[P] bound form; [D] floor derivation; [N] comparisons"),
    Claim("NP-2", "Tiapkin et al. 2025 (arXiv 2505.19731)",
          "Nash-MP's log-space half and full steps solve the two proximal argmins: objective <= SLSQP's + 1e-10 and "
          "stationarity residual <= 1e-10 (policies agree to the optimiser's ~1e-8)",
          "np_baselines", "identity", "[D] (THEORY.md 5.2); tolerance on objective/KKT, not on policies"),
    Claim("NP-3", "Tiapkin et al. 2025 (arXiv 2505.19731)",
          "Nash-MP (eta = 2 beta): KL(pi*||pi_k) <= (1+2 beta)^(-k) KL(pi*||pi_ref) at every k until the 1e-11 floor, "
          "fitted per-iteration factor <= 1/(1+2 beta) + 1e-3, on >= 20 random instances",
          "np_rates", "rate", "[P] order; the constant 1 is our observation [N] (THEORY.md 5.7)"),
    Claim("NP-4", "Tiapkin et al. 2025 (arXiv 2505.19731)",
          "Exploitability Gap_beta(pi_k) and the span of ln pi_k - ln pi* decay linearly at the same order: fitted "
          "log-rate >= 0.5 ln(1+2 beta) on every instance (slope tested, not the constant; observed span ratios "
          "0.72-1.1, gap about 2)",
          "np_rates", "rate", "[P][N]; which iterate carries which bound is UNCONFIRMED (pi_k tested); the Gap "
                              "normalisation is UNCONFIRMED"),
    Claim("NP-5", "Tiapkin et al. 2025 (arXiv 2505.19731)",
          "|Y|-independence: iterations to KL <= 1e-6 stay below ln(1/(2 beta 1e-6))/ln(1+2 beta) for every n "
          "in {3, ..., 1000}",
          "np_rates", "inequality", "[P][D] (from KL_0 <= 1/(2 beta) and NP-3)"),
    Claim("NP-6", "Munos et al. 2023 (arXiv 2312.00886), Theorem 1",
          "Nash-MD: KL(pi*||pi_(t+1)) <= (1 - eta_t beta) KL(pi*||pi_t) + 2 eta_t^2 at every step, fixed eta "
          "(eta beta <= 1) and eta_t = 2/(beta(t+2))",
          "np_baselines", "inequality", "[P][N]"),
    Claim("NP-7", "Standard (self-play MWU; THEORY.md 5.4)",
          "Rock-paper-scissors: unregularised MWU's last iterate moves away from the equilibrium while the averaged "
          "iterate's exploitability falls below 0.25 x the last iterate's (second half)",
          "np_baselines", "inequality", "[standard][N]"),
    Claim("NP-8", "Tiapkin et al. 2025 (arXiv 2505.19731); Munos et al. 2023 (arXiv 2312.00886)",
          "Query efficiency at theory step sizes: Nash-MP's KL is log-linear in queries under (1+2 beta)^(-N/2) KL_0 "
          "down to the 1e-11 floor; fixed-eta Nash-MD stays on a floor (> 1e-10) under (1-eta beta)^T KL_0 + "
          "2 eta/beta; scheduled Nash-MD stays under 8/(beta^2 (T+1))",
          "np_baselines", "inequality", "[P-qualitative][N]; MMD/OMD step sizes are our reading (UNCONFIRMED)"),
    Claim("DR-1", "Tiapkin et al. 2024 (arXiv 2310.17303), Corollary 1",
          "Add-one behaviour cloning: the slope of log E KL_traj(pi_E||pi_BC) vs log N^E over N^E in [10, 3000] is in "
          "[-1.1, -0.85] (S=6, A=4, H=5, soft expert tau=0.05), values below SAH/N^E and Corollary 1's bound",
          "dr_bc", "rate", "THEORY.md 6.2, 6.7 [P-order][N]; Corollary 1 [P] holds loosely"),
    Claim("DR-2", "Tiapkin et al. 2024 (arXiv 2310.17303), Theorem 2",
          "V* - V^pi_hat <= eps_E + lam KL_traj(pi_E||pi_BC) + eps_opt at every N^E, lam, seed: exact soft backward "
          "induction (eps_opt = 0) and UCBVI-Ent+ at a fixed budget (eps_opt its exact regularized gap)",
          "dr_decomposition", "inequality", "THEORY.md 6.3 [P][D][N]"),
    Claim("DR-3", "Tiapkin et al. 2024 (arXiv 2310.17303)",
          "Soft backward induction with pi_BC as prior equals the brute-force maximum of V^pi - lam KL_traj(pi||pi_BC) "
          "(trajectory enumeration, grid + L-BFGS-B) on S=A=H=2 to 1e-6",
          "dr_decomposition", "identity", "THEORY.md 6.3 [D]"),
    Claim("DR-4", "Tiapkin et al. 2024 (arXiv 2310.17303), Theorems 3 and 5",
          "UCBVI-Ent+ with lam = c eps N^E/(SAH): median episodes to the stopping rule vs N^E has a fitted log-log "
          "slope in [-1.3, -0.7] over lam <= H (20 seeds, paired sign test)",
          "dr_exploration", "rate", "THEORY.md 6.4, 6.7 [P-order]; bonus threshold scaled by bonus_scale (paper: 1)"),
    Claim("DR-5", "Tiapkin et al. 2024 (arXiv 2310.17303)",
          "lam -> 0 recovers the unregularized optimum (V* - V^pi_lam <= lam KL_traj(pi*||pi_BC)); lam -> inf returns "
          "pi_BC (KL_traj(pi_lam||pi_BC) <= (V^pi_lam - V^pi_BC)/lam <= H/lam); both monotone in lam",
          "dr_decomposition", "inequality", "THEORY.md 6.3, 6.7 [D]"),
    Claim("DR-6", "Tiapkin et al. 2024 (arXiv 2310.17303), Algorithm 2 and Theorem 8",
          "Demonstration-regularized RLHF: at a fixed preference budget the suboptimality falls with N^E (median over "
          "20 seeds, paired sign test) and beats the no-demonstration pipeline",
          "dr_rlhf", "statistical", "THEORY.md 6.5, 6.7 [P-qualitative]; Theorem 8's terms reported, the eps_RM "
                                    "definition is UNCONFIRMED"),
    # The LM policy bridge (mdptheory/lm, LM_BRIDGE.md §4): the tabular claims re-checked with a transformer.
    Claim("LM-a1", "Vieillard et al. 2020 (arXiv 2003.14089), Theorems 1-2; Vieillard, Pietquin & Geist 2020 "
                   "(arXiv 2007.14430)",
          "Re-checks LA-4, LA-7 and MV-3 with a transformer fitting every greedy step of MD-VI / M-VI on the token "
          "tree (KL to pi_ref = entropy on r + tau log pi_ref): the exact ||q*_tau - q^tau_{pi_k}|| stays below the "
          "Theorem 1 (tau = 0) / Theorem 2 l-inf bound evaluated on the measured eps_k at every k, with "
          "||q_hat_k|| <= v_max verified",
          "lm_mdvi", "inequality", "l-inf forms as in LA-4/LA-7 (printed constants UNCONFIRMED); eps_k measured "
                                   "exactly from the transformer's logits, centred per state"),
    Claim("LM-a2", "Vieillard et al. 2020 (arXiv 2003.14089); Vieillard, Pietquin & Geist 2020 (arXiv 2007.14430)",
          "Re-checks LA-5/LA-8 and MV-6 on the transformer: at the same fitting budget and tau, MD-VI and M-VI with "
          "beta = alpha = 0.9 end below soft VI (beta = 0) under perturbed targets (median over 20 seeds, sign "
          "test p < 0.01)",
          "lm_mdvi", "statistical", "[P] qualitative; controlled N(0, sigma^2) target perturbation (LM_BRIDGE.md 4a)"),
    Claim("LM-b1", "Tiapkin et al. 2025 (arXiv 2505.19731 v1)",
          "Re-checks NP-3 and NP-1 on a preference game over the V^L sequences (reference LM as pi_ref): exact "
          "Nash-MP (eta = 2 beta) has KL(pi*||pi_k) <= (1+2 beta)^-k KL(pi*||pi_ref) at every k, and "
          "KL(pi*||pi_ref) <= 1/(2 beta)",
          "lm_nash", "inequality", "constant 1 is THEORY.md's observation [N], not a quoted theorem"),
    Claim("LM-b2", "Tiapkin et al. 2025 (arXiv 2505.19731 v1)",
          "Re-checks NP-3 under function approximation: Nash-MP with a transformer proximal step; the exact step from "
          "every transformer iterate contracts KL(pi*||.) by 1/(1+2 beta), so KL(pi*||pi^theta_k) <= (1+2 beta)^-k "
          "KL_0 + sum_j (1+2 beta)^-(k-j) delta_j with the measured fitting errors delta_j, at every k",
          "lm_nash", "inequality", "derived form of the approximate Nash-MP statement (its constants UNCONFIRMED, "
                                   "THEORY.md 5.3)"),
    Claim("LM-c1", "Beirami et al. 2024 (arXiv 2401.01879); Korbak et al. 2022 (arXiv 2205.11275)",
          "Re-checks CF-1, CF-2, CF-4, CF-5 over sequences of the token MDP: the token-by-token optimum equals the "
          "sequence posterior to 1e-12; the pure-JAX BoN law equals alignment.bon_laws to 1e-10; KL(pi_N||pi_ref) "
          "<= log N - (N-1)/N, win rate <= N/(N+1) and every BoN point lies on or below the exact KL-RL frontier",
          "lm_bon", "identity", "[P] bounds; [D] identities"),
    Claim("LM-c2", "Beirami et al. 2024 (arXiv 2401.01879); Yang et al. 2024 (arXiv 2404.01730)",
          "Re-checks CF-5 for transformer laws: the best-of-N law and the KL-RL optimum at the same KL, distilled "
          "into the transformer, land on or below the exact reward-KL frontier (distillation KL reported)",
          "lm_bon", "inequality", "[D]"),
    Claim("LM-c3", "Gao, Schulman & Hilton 2023 (arXiv 2210.10760)",
          "Re-checks CF-7 on sequences: under a Bradley-Terry proxy learned from pi_ref samples, the exact gold "
          "reward of BoN and of KL-RL falls past its peak on [0, sqrt(log|Y|/2)] (20 instances, sign test p < 0.01); "
          "Gao et al.'s forms and R^2 reported",
          "lm_bon", "statistical", "[S] forms (paper text not read); linear proxy on token frequencies"),
    Claim("LM-d1", "Tiapkin et al. 2024 (arXiv 2310.17303), Corollary 1",
          "Re-checks DR-1 on the token tree: the exact KL_traj(pi_E||pi_BC) of add-one BC falls with N^E at a fitted "
          "log-log slope in [-1.3, -0.5], and so does the transformer trained on the same log-barrier objective "
          "(slope < 0, 20 seeds, sign test p < 0.01)",
          "lm_demonstrations", "rate", "[P-order]; S = prefixes, A = V, H = L"),
    Claim("LM-d2", "Tiapkin et al. 2024 (arXiv 2310.17303), Theorem 2",
          "Re-checks DR-2 on the token tree: V* - V^pi <= eps_E + lam KL_traj(pi_E||pi_BC) + eps_opt for the exact "
          "demonstration-regularized optimum (tabular and transformer BC prior) and for the transformer RL policy "
          "(eps_opt measured), at every N^E and seed; its sub-optimality falls with N^E (sign test p < 0.01)",
          "lm_demonstrations", "inequality", "THEORY.md 6.3 [P][D]"),
]}


def claims_of(study: str) -> list[Claim]:
  return [c for c in CLAIMS.values() if c.study == study]
