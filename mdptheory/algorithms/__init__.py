"""Approximate (regularized) dynamic programming algorithms with per-update error traces.

:mod:`mdptheory.algorithms.mdmpi` holds MD-MPI / DA-MPI (*Leverage the Average*,
THEORY.md §2), CVI and the baselines (AVI, API, advantage learning, speedy
Q-learning), plus the shared engine :func:`run_adp` and the result types
:class:`ADPResult` / :class:`ADPTrace` that other algorithm modules reuse.
:mod:`mdptheory.algorithms.nash` holds the preference-game algorithms (Nash Mirror-Prox
and its baselines, THEORY.md §5).
"""

from mdptheory.algorithms.mdmpi import (ADPResult, ADPTrace, Update, advantage_learning, api, avi, cvi, da_mpi,
                                        evaluate_entropy, md_greedy, md_mpi, noisy_backup, resolvent_q, run_adp,
                                        speedy_q_learning)
from mdptheory.algorithms.nash import (NashResult, NashTrace, extragradient, mmd, nash_md, nash_mp, nash_mp_approx,
                                       proximal_point, regularized_omd, self_play_mwu)

__all__ = [
    "ADPResult", "ADPTrace", "Update", "advantage_learning", "api", "avi", "cvi", "da_mpi", "evaluate_entropy",
    "md_greedy", "md_mpi", "noisy_backup", "resolvent_q", "run_adp", "speedy_q_learning",
    "NashResult", "NashTrace", "extragradient", "mmd", "nash_md", "nash_mp", "nash_mp_approx", "proximal_point",
    "regularized_omd", "self_play_mwu",
]
