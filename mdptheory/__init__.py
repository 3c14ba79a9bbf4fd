"""mdptheory: theorems about regularized reinforcement learning, run as code.

The math core is pure JAX functions over NamedTuple pytrees; it never enables
JAX's x64 mode on import (tests and ``mdptheory verify`` do).

Glossary (STYLE.md §5.4; THEORY.md §1.1):

======================================  ================  ==============
quantity                                name              shape
======================================  ================  ==============
states, actions, stored successors      S, A, B
transition kernel P(s'|s, a)            ``P``             [S, A, S] (or a SparseKernel [S, A, B])
reward                                  ``r``             [S, A]
discount                                ``gamma``         []
initial distribution                    ``mu0``           [S]
policy (reference: ``pi_ref``)          ``pi``            [S, A]
values; optimal values                  ``v``, ``q``; ``v_star``, ``q_star``  [S], [S, A]
entropy temperature / KL weight         ``tau``, ``lam``  []
Tsallis entropic index                  ``q`` (in ``tsallis(q, tau)``)  []
iteration index, budget                 ``k``, ``num_iters``
finite horizon                          ``H``; ``P[h, s, a, s']``, ``r[h, s, a]``
PRNG                                    ``key`` (JAX), ``rng`` (numpy)
======================================  ================  ==============
"""

from mdptheory import errors, operators, qexp, regularizers, solvers, validate
from mdptheory.errors import (DTypeError, InvalidGameError, InvalidMDPError, MemoryBudgetError, NonFiniteError,
                              ParameterError, PrecisionWarning, ShapeError, SupportMismatchError)
from mdptheory.operators import (Values, bellman_evaluation_q, bellman_evaluation_v,
                                 bellman_optimality_q, bellman_optimality_v, evaluate, expect, greedy,
                                 policy_kernel, q_from_v, span, sup_norm)
from mdptheory.regularizers import Regularizer, entropy, kl, kl_entropy, none, tsallis
from mdptheory.solvers import (FiniteHorizonResult, Optimum, PIResult, VIResult, backward_induction,
                               evaluate_finite, lp_optimum, optimum, policy_iteration, value_iteration)
from mdptheory.types import MDP, FiniteHorizonMDP, SparseKernel

__version__ = "0.1.0"

__all__ = [
    "DTypeError", "FiniteHorizonMDP", "FiniteHorizonResult", "InvalidGameError", "InvalidMDPError", "MDP", "MemoryBudgetError",
    "NonFiniteError", "Optimum", "PIResult", "ParameterError", "PrecisionWarning", "Regularizer", "ShapeError", "SparseKernel",
    "SupportMismatchError", "VIResult", "Values", "backward_induction", "bellman_evaluation_q",
    "bellman_evaluation_v", "bellman_optimality_q", "bellman_optimality_v", "entropy", "errors", "evaluate",
    "evaluate_finite", "expect", "greedy", "kl", "kl_entropy", "lp_optimum", "none", "operators", "optimum",
    "policy_iteration", "policy_kernel", "q_from_v", "qexp", "regularizers", "solvers", "span", "sup_norm", "tsallis",
    "validate", "value_iteration",
]
