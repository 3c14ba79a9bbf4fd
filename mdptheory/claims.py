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
]}


def claims_of(study: str) -> list[Claim]:
  return [c for c in CLAIMS.values() if c.study == study]
