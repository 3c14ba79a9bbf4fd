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
]}


def claims_of(study: str) -> list[Claim]:
  return [c for c in CLAIMS.values() if c.study == study]
