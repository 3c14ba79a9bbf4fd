"""Approximate (regularized) dynamic programming algorithms with per-update error traces.

:mod:`mdptheory.algorithms.mdmpi` holds MD-MPI / DA-MPI (*Leverage the Average*,
THEORY.md §2), CVI and the baselines (AVI, API, advantage learning, speedy
Q-learning), plus the shared engine :func:`run_adp` and the result types
:class:`ADPResult` / :class:`ADPTrace` that other algorithm modules reuse.
"""

from mdptheory.algorithms.mdmpi import (ADPResult, ADPTrace, Update, advantage_learning, api, avi, cvi, da_mpi,
                                        evaluate_entropy, md_greedy, md_mpi, noisy_backup, resolvent_q, run_adp,
                                        speedy_q_learning)

__all__ = [
    "ADPResult", "ADPTrace", "Update", "advantage_learning", "api", "avi", "cvi", "da_mpi", "evaluate_entropy",
    "md_greedy", "md_mpi", "noisy_backup", "resolvent_q", "run_adp", "speedy_q_learning",
]
