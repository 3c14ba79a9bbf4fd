"""A catalogue of bad inputs: each row names the call, the error class it must raise and a message fragment.

One table, one parametrized test. A row is ``Case(id, call, error, match)``: ``call`` performs the bad call
with no arguments; it must raise exactly ``error`` (the most specific class of :mod:`mdptheory.errors`, not a
parent), and ``match`` (a regex) must occur in the message, showing that it names the offending value or index
and the fix. CLI rows expect ``SystemExit`` with a non-zero code and match the text written to stderr.

The rows favour layouts that are easy to confuse (gymnasium's ``P[s][a]`` lists, pymdptoolbox's (A, S, S),
sparse successor lists with duplicates), inputs that used to slip through to a NaN, an inf or a raw
numpy/JAX exception, and the runner and CLI; the per-module tests (``test_validation.py`` and the others)
hold the rest. Every row fails in the numpy validation before any solve or iteration runs, so the table
runs in a few seconds.
"""

from __future__ import annotations

import re
from typing import Any, Callable, NamedTuple

import jax.numpy as jnp
import numpy as np
import pytest

import _toy_study as toy
from mdptheory import bounds, cli, errors, games, runner
from mdptheory import operators as ops
from mdptheory import regularizers as R
from mdptheory import solvers
from mdptheory import alignment as al
from mdptheory.algorithms import demonstrations as D
from mdptheory.algorithms import nash as N
from mdptheory.algorithms.mdmpi import cvi, da_mpi, md_mpi
from mdptheory.algorithms.munchausen import mvi
from mdptheory.algorithms.tsallis_mvi import mvi_q, tsallis_kl_mdvi
from mdptheory.errors import (DTypeError, InvalidGameError, InvalidMDPError, MemoryBudgetError, NonFiniteError,
                              ParameterError, ShapeError, SupportMismatchError)
from mdptheory.noise import gaussian
from mdptheory.types import MDP, Bandit, FiniteHorizonMDP, PreferenceGame


class Case(NamedTuple):
  id: str                      # short name, the pytest id
  call: Callable[[], Any]      # performs the bad call
  error: type[BaseException]   # the exact class it must raise (SystemExit for the CLI)
  match: str                   # regex that must occur in the message (stderr for SystemExit)


# ----------------------------------------------------------------------------- builders (valid unless changed)

S, A = 3, 2


def _P(S: int = S, A: int = A) -> np.ndarray:
  """A valid dense kernel [S, A, S]: action a moves from s to (s + a) mod S with probability 0.8."""
  P = np.full((S, A, S), 0.2 / (S - 1))
  for s in range(S):
    for a in range(A):
      P[s, a, (s + a) % S] = 0.8
  return P


def _r(S: int = S, A: int = A) -> np.ndarray:
  return np.arange(S * A, dtype=float).reshape(S, A) / (S * A)


def _with(arr: np.ndarray, idx: tuple, value: Any) -> np.ndarray:
  out = np.array(arr, dtype=float)
  out[idx] = value
  return out


def _mdp(gamma: float = 0.9) -> MDP:
  return MDP.create(_P(), _r(), gamma)


def _bare(mdp: MDP, **fields) -> MDP:
  """The unchecked NamedTuple with some fields replaced (what ``mdp._replace`` builds)."""
  return mdp._replace(**{k: jnp.asarray(v, mdp.dtype) for k, v in fields.items()})


def _absorbing_mdp() -> MDP:
  """S = 3, A = 2: state 2 absorbs with reward 0; action 0 moves 0 -> 1 -> 2, action 1 stays put with reward 1."""
  P = np.zeros((3, 2, 3))
  P[0, 0, 1] = P[1, 0, 2] = P[2, :, 2] = 1.0
  P[0, 1, 0] = P[1, 1, 1] = 1.0
  r = np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
  return MDP.create(P, r, 0.9)


class _ToyText:
  """A toy-text style env: only the table ``P[s][a] = [(prob, next_state, reward, terminated)]`` and nS, nA."""

  def __init__(self, table: dict, nS: int, nA: int):
    self.P, self.nS, self.nA = table, nS, nA


def _table(S: int = 4, A: int = 2) -> dict:
  """A valid table: action a moves s to (s + a) mod S surely, reward 1 when it lands on 0."""
  return {s: {a: [(1.0, (s + a) % S, float((s + a) % S == 0), False)] for a in range(A)} for s in range(S)}


def _gym(edit: Callable[[dict], None], S: int = 4, A: int = 2) -> MDP:
  table = _table(S, A)
  edit(table)
  return MDP.from_gymnasium(_ToyText(table, S, A), 0.9)


def _fh_P(H: int = 2) -> np.ndarray:
  return np.broadcast_to(_P(), (H, S, A, S)).copy()


def _fmdp(H: int = 2) -> FiniteHorizonMDP:
  return FiniteHorizonMDP.create(_fh_P(H), np.broadcast_to(_r(), (H, S, A)))


def _pi_fh(H: int = 2) -> np.ndarray:
  return np.full((H, S, A), 1.0 / A)


def _demos(H: int = 2) -> D.Demonstrations:
  return D.Demonstrations.create([[0, 1, 2][:H], [2, 2, 1][:H]], [[0, 1, 1][:H], [1, 0, 0][:H]],
                                 num_states=S, num_actions=A)


# A valid one-context preference game on 3 responses (P[i, j] + P[j, i] = 1, diagonal 1/2).
_PREF = np.array([[0.5, 0.7, 0.2],
                  [0.3, 0.5, 0.6],
                  [0.8, 0.4, 0.5]])


def _game() -> PreferenceGame:
  return PreferenceGame.create(_PREF)


def _bare_game(P=_PREF, pi_ref=None) -> PreferenceGame:
  """The unchecked NamedTuple, as jitted code builds it: no validation on construction."""
  P = np.asarray(P, float)[None]
  n = P.shape[-1]
  ref = np.full((1, n), 1.0 / n) if pi_ref is None else np.asarray(pi_ref, float)[None]
  return PreferenceGame(P=jnp.asarray(P), rho=jnp.ones(1), pi_ref=jnp.asarray(ref))


def _cli(*argv: str) -> None:
  """Runs the CLI; a returned exit code becomes SystemExit, so every CLI row expects SystemExit."""
  raise SystemExit(cli.main(list(argv)))


_CLI_RUN = ("run", "rb_bias", "--quick", "--no-progress", "--out", "res", "--figures", "fig")


# ----------------------------------------------------------------------------- the catalogue

CASES: list[Case] = [
    # --- dense MDPs -----------------------------------------------------------------------------------------
    Case("mdp_row_sums_to_1.4", lambda: MDP.create(_with(_P(), (1, 0, 2), 0.5), _r(), 0.9),
         InvalidMDPError, r"row P\[s, a, :\] at \(s=1, a=0\) sums to 1\.4.*normalize it"),
    Case("mdp_negative_probability", lambda: MDP.create(_with(_with(_P(), (2, 1, 0), -0.1), (2, 1, 1), 0.9), _r(),
                                                        0.9),
         InvalidMDPError, r"P\[2, 1, 0\] = -0\.1 is negative; probabilities must be >= 0"),
    Case("mdp_nan_in_P", lambda: MDP.create(_with(_P(), (0, 1, 2), np.nan), _r(), 0.9),
         NonFiniteError, r"P\[0, 1, 2\] = nan is not finite.*replace NaN/inf"),
    Case("mdp_inf_in_r", lambda: MDP.create(_P(), _with(_r(), (2, 0), -np.inf), 0.9),
         NonFiniteError, r"r\[2, 0\] = -inf is not finite"),
    Case("mdp_pymdptoolbox_ass_layout", lambda: MDP.create(np.full((2, 4, 4), 0.25), np.zeros((4, 2)), 0.9),
         ShapeError, r"pymdptoolbox's \(A, S, S\) layout with A=2, S=4; use MDP\.from_ass"),
    Case("mdp_from_ass_names_the_transposed_row", lambda: MDP.from_ass(
        _with(np.full((2, 4, 4), 0.25), (1, 3, 0), 0.5), np.zeros((4, 2)), 0.9),
         InvalidMDPError, r"at \(s=3, a=1\) sums to 1\.25"),
    Case("mdp_from_ass_reward_shape", lambda: MDP.from_ass(np.full((2, 4, 4), 0.25), np.zeros((2, 4)), 0.9),
         ShapeError, r"R must have shape \(S, A\) = \(4, 2\), \(S,\) or \(A, S, S\); got \(2, 4\)"),
    Case("mdp_r_transposed", lambda: MDP.create(_P(), _r().T, 0.9),
         ShapeError, r"r has shape \(2, 3\) = \(A, S\); expected \(S, A\) = \(3, 2\): pass r\.T"),
    Case("mdp_gamma_one", lambda: MDP.create(_P(), _r(), 1.0),
         ParameterError, r"gamma=1 makes the discounted problem ill-posed.*FiniteHorizonMDP\.create"),
    Case("mdp_gamma_nan", lambda: MDP.create(_P(), _r(), float("nan")), ParameterError, r"gamma is NaN"),
    Case("mdp_gamma_negative", lambda: MDP.create(_P(), _r(), -0.1),
         ParameterError, r"gamma=-0\.1 is outside \[0, 1\)"),
    Case("mdp_gamma_string", lambda: MDP.create(_P(), _r(), "0.9"),
         ParameterError, r"gamma='0\.9' is a string; pass a number"),
    Case("mdp_mu0_wrong_length", lambda: MDP.create(_P(), _r(), 0.9, mu0=[0.5, 0.5]),
         ShapeError, r"mu0 must have shape \(3,\), got \(2,\)"),
    Case("mdp_mu0_negative", lambda: MDP.create(_P(), _r(), 0.9, mu0=[1.5, -0.5, 0.0]),
         InvalidMDPError, r"mu0\[1\] = -0\.5 is negative"),
    Case("mdp_empty_action_set", lambda: MDP.create(np.zeros((3, 0, 3)), np.zeros((3, 0)), 0.9),
         ShapeError, r"empty dimension.*S >= 1 and A >= 1"),
    Case("mdp_string_dtype", lambda: MDP.create(_P().astype(str), _r(), 0.9),
         DTypeError, r"P has dtype <U\d+; pass a real numeric array"),
    Case("mdp_over_memory_budget", lambda: MDP.create(_P(), _r(), 0.9, memory_budget=64),
         MemoryBudgetError, r"needs .* GiB, over the memory budget"),

    # --- gymnasium P[s][a] lists ----------------------------------------------------------------------------
    Case("gym_probabilities_sum_to_0.9", lambda: _gym(lambda t: t[1].__setitem__(0, [(0.6, 2, 0.0, False),
                                                                                     (0.3, 3, 0.0, False)])),
         InvalidMDPError, r"env\.P\[1\]\[0\] \(s=1, a=0\) sum to 0\.9, not 1"),
    Case("gym_duplicate_entries_sum_to_1.2", lambda: _gym(lambda t: t[2].__setitem__(1, [(0.6, 3, 0.0, False),
                                                                                         (0.6, 3, 0.0, False)])),
         InvalidMDPError, r"env\.P\[2\]\[1\] \(s=2, a=1\) sum to 1\.2"),
    Case("gym_next_state_out_of_range", lambda: _gym(lambda t: t[3].__setitem__(1, [(1.0, 4, 0.0, False)])),
         ShapeError, r"env\.P\[3\]\[1\] has next_state 4, outside the state range \[0, 4\)"),
    Case("gym_missing_action", lambda: _gym(lambda t: t[2].pop(1)),
         InvalidMDPError, r"env\.P\[2\] has no entry for action a=1.*add env\.P\[2\]\[1\]"),
    Case("gym_missing_state", lambda: _gym(lambda t: t.pop(3)),
         InvalidMDPError, r"env\.P has no entry for state s=3"),
    Case("gym_float_next_state", lambda: _gym(lambda t: t[0].__setitem__(0, [(1.0, 1.0, 0.0, False)])),
         ShapeError, r"env\.P\[0\]\[0\] has next_state 1\.0, which is not an int state index"),
    Case("gym_entry_without_terminated_flag", lambda: _gym(lambda t: t[0].__setitem__(1, [(1.0, 1, 0.0)])),
         ShapeError, r"env\.P\[0\]\[1\] has the entry \(1\.0, 1, 0\.0\); each entry must be \(prob, next_state"),

    # --- sparse kernels -------------------------------------------------------------------------------------
    Case("sparse_duplicate_successors_sum_above_1", lambda: MDP.from_sparse(
        [[[0, 1]], [[1, 1]]], [[[0.5, 0.5]], [[0.7, 0.7]]], np.zeros((2, 1)), 0.9),
         InvalidMDPError, r"successor list probs\[s, a, :\] at \(s=1, a=0\) sums to 1\.4"),
    Case("sparse_negative_index", lambda: MDP.from_sparse(
        [[[0, 1]], [[1, -1]]], [[[0.5, 0.5]], [[0.5, 0.5]]], np.zeros((2, 1)), 0.9),
         ShapeError, r"next_states\[1, 0, 1\] = -1 is not a state index in \[0, 2\)"),
    Case("sparse_float_indices", lambda: MDP.from_sparse(
        [[[0.0, 1.0]], [[1.0, 0.0]]], [[[0.5, 0.5]], [[0.5, 0.5]]], np.zeros((2, 1)), 0.9),
         ShapeError, r"next_states must be an integer array, got dtype float64.*astype"),

    # --- finite-horizon MDPs --------------------------------------------------------------------------------
    Case("fh_row_sum_names_the_stage", lambda: FiniteHorizonMDP.create(_with(_fh_P(), (1, 0, 1, 0), 0.5), _r()),
         InvalidMDPError, r"row P\[h, s, a, :\] at \(h=1, s=0, a=1\) sums to 1\.4"),
    Case("fh_stationary_kernel_without_horizon", lambda: FiniteHorizonMDP.create(_P(), _r()),
         ShapeError, r"stationary P of shape \(S, A, S\) needs horizon=H"),
    Case("fh_stages_disagree_with_horizon", lambda: FiniteHorizonMDP.create(_fh_P(3), _r(), horizon=2),
         ShapeError, r"P has 3 stages but horizon=2"),
    Case("fh_evaluate_policy_row_off_simplex", lambda: solvers.evaluate_finite(
        _fmdp(), _with(_pi_fh(), (1, 2, 0), 0.9)),
         InvalidMDPError, r"pi\[1\] row at \(s=2\) sums to 1\.4"),

    # --- policies in operators.evaluate ---------------------------------------------------------------------
    Case("policy_negative_entry", lambda: ops.evaluate(_mdp(), [[0.5, 0.5], [1.5, -0.5], [0.5, 0.5]]),
         InvalidMDPError, r"pi\[1, 1\] = -0\.5 is negative"),
    Case("policy_transposed_shape", lambda: ops.evaluate(_mdp(), np.full((A, S), 1.0 / A)),
         ShapeError, r"pi must have shape \(S, A\) = \(3, 2\), got \(2, 3\)"),
    Case("policy_negative_action_index", lambda: ops.evaluate(_mdp(), np.array([0, -1, 1])),
         ShapeError, r"pi\[1\] = -1 is not an action index in \[0, 2\)"),
    Case("policy_nan_entry", lambda: ops.evaluate(_mdp(), [[0.5, 0.5], [np.nan, 0.5], [0.5, 0.5]]),
         NonFiniteError, r"pi\[1, 0\] = nan is not finite"),

    # --- regularizers ---------------------------------------------------------------------------------------
    Case("entropy_tau_infinite", lambda: R.entropy(np.inf), ParameterError, r"tau=inf is infinite"),
    Case("kl_lam_negative", lambda: R.kl(np.full(A, 1.0 / A), -0.1), ParameterError, r"lam=-0\.1 must be > 0"),
    Case("kl_lam_nan", lambda: R.kl(np.full(A, 1.0 / A), float("nan")), ParameterError, r"lam is NaN"),
    Case("kl_reference_off_the_simplex", lambda: R.kl([[0.5, 0.5], [0.9, 0.6]], 0.1),
         InvalidMDPError, r"pi_ref row at \(s=1\) sums to 1\.5, not 1.*normalize it"),
    Case("kl_entropy_anchor_negative", lambda: R.kl_entropy(0.1, 0.1, [1.2, -0.2]),
         InvalidMDPError, r"pi_prev\[1\] = -0\.2 is negative"),
    Case("tsallis_q_below_one", lambda: R.tsallis(0.5, 0.1),
         ParameterError, r"q=0\.5: q in \(0, 1\) is not supported"),
    Case("tsallis_q_nan", lambda: R.tsallis(float("nan"), 0.1), ParameterError, r"q is NaN"),
    Case("tsallis_tau_zero", lambda: R.tsallis(2.0, 0.0), ParameterError, r"tau=0\.0 must be > 0"),

    # --- KL toward a reference with zeros where the policy has mass ----------------------------------------
    Case("evaluate_kl_reference_zero_under_policy_mass", lambda: ops.evaluate(
        _mdp(), np.full((S, A), 0.5), R.kl(np.array([[0.5, 0.5], [1.0, 0.0], [0.5, 0.5]]), 0.1)),
         SupportMismatchError, r"Omega\(pi\) of the kl regularizer is infinite at state s=1.*KL\(pi \|\| pi_ref\)"),
    Case("games_kl_reference_with_zeros", lambda: games.kl(
        _game(), jnp.full((1, 3), 1 / 3), jnp.asarray([[0.5, 0.5, 0.0]])),
         SupportMismatchError, r"pi2 is 0 at \(x=0, y=2\) where pi has mass 0\.333.*KL\(pi \|\| pi2\) is infinite"),
    Case("games_kl_log_reference_with_zeros", lambda: games.kl_log(
        _game(), jnp.log(jnp.full((1, 3), 1 / 3)), jnp.log(jnp.asarray([[0.0, 0.5, 0.5]]))),
         SupportMismatchError, r"pi2 is 0 at \(x=0, y=0\) where pi has mass 0\.333"),
    Case("trajectory_kl_bc_with_zeros", lambda: D.trajectory_kl(
        _fmdp(), _pi_fh(), _with(_with(_pi_fh(), (0, 0, 0), 1.0), (0, 0, 1), 0.0)),
         SupportMismatchError, r"pi_ref\[h=0, s=0, a=1\] = 0.*kappa > 0"),

    # --- log-policy clipping bounds in the wrong order ------------------------------------------------------
    Case("mvi_clip_min_above_upper_bound_0", lambda: mvi(_mdp(), alpha=0.9, tau=0.1, num_iters=3, clip_min=0.5),
         ParameterError, r"clip_min=0\.5 must be <= 0: the bonus tau\*ln\(pi\) is clipped to \[clip_min, 0\]"),
    Case("mvi_clip_min_nan", lambda: mvi(_mdp(), alpha=0.9, tau=0.1, num_iters=3, clip_min=float("nan")),
         ParameterError, r"clip_min is NaN"),
    Case("mvi_q_clip_min_above_0", lambda: mvi_q(_mdp(), alpha=0.9, tau=0.1, q=2.0, num_iters=3, clip_min=1.0),
         ParameterError, r"clip_min=1\.0 must be <= 0"),

    # --- undiscounted problems (gamma = 1) and improper policies --------------------------------------------
    Case("evaluate_gamma_1_policy_never_terminates", lambda: ops.evaluate(
        _bare(_absorbing_mdp(), gamma=1.0), np.array([0, 1, 0])),
         ParameterError, r"gamma=1 \(undiscounted\): under pi, state s=0 never reaches a terminal state.*improper "
                         r"\(2 such states, 1 terminal states\)"),
    Case("evaluate_gamma_1_without_terminal_state", lambda: ops.evaluate(_bare(_mdp(), gamma=1.0),
                                                                         np.full((S, A), 0.5)),
         ParameterError, r"gamma=1.*state s=0 never reaches"),
    Case("evaluate_gamma_1_entropy_at_the_terminal_state", lambda: ops.evaluate(
        _bare(_absorbing_mdp(), gamma=1.0), np.array([[1.0, 0.0], [1.0, 0.0], [0.5, 0.5]]), R.entropy(0.1)),
         ParameterError, r"gamma=1.*never reaches a terminal state.*\(3 such states, 0 terminal states\)"),
    Case("evaluate_gamma_above_1", lambda: ops.evaluate(_bare(_mdp(), gamma=1.5), np.full((S, A), 0.5)),
         ParameterError, r"gamma=1\.5 is outside \[0, 1\)"),
    Case("policy_iteration_gamma_1", lambda: solvers.policy_iteration(_bare(_absorbing_mdp(), gamma=1.0)),
         ParameterError, r"gamma=1.*policy_iteration.*FiniteHorizonMDP"),

    # --- MD-MPI / DA-MPI / CVI ------------------------------------------------------------------------------
    Case("md_mpi_lam_negative", lambda: md_mpi(_mdp(), lam=-0.1, tau=0.0, num_iters=3),
         ParameterError, r"lam=-0\.1 must be >= 0; lam is the KL weight of md_mpi"),
    Case("da_mpi_num_iters_fractional", lambda: da_mpi(_mdp(), lam=0.1, tau=0.1, num_iters=2.5),
         ParameterError, r"num_iters=2\.5 must be an integer >= 1"),
    Case("cvi_tau_negative", lambda: cvi(_mdp(), lam=0.1, tau=-1.0, num_iters=3),
         ParameterError, r"tau=-1\.0 must be >= 0"),
    Case("md_mpi_num_iters_zero", lambda: md_mpi(_mdp(), lam=0.1, tau=0.0, num_iters=0),
         ParameterError, r"num_iters=0 must be an integer >= 1"),
    Case("md_mpi_noise_without_key", lambda: md_mpi(_mdp(), lam=0.1, tau=0.0, num_iters=3, noise=gaussian(0.1)),
         ParameterError, r"error model but no key; pass key=jax\.random\.key"),
    Case("md_mpi_bad_key", lambda: md_mpi(_mdp(), lam=0.1, tau=0.0, num_iters=3, noise=gaussian(0.1), key="seed"),
         ParameterError, r"key='seed' is not an int seed or a single JAX PRNG key"),

    # --- M-VI and MVI(q) ------------------------------------------------------------------------------------
    Case("mvi_alpha_above_1", lambda: mvi(_mdp(), alpha=1.5, tau=0.1, num_iters=3),
         ParameterError, r"alpha=1\.5 must be in \[0, 1\]"),
    Case("mvi_bad_key", lambda: mvi(_mdp(), alpha=0.9, tau=0.1, num_iters=3, noise=gaussian(0.1), key=[1, 2, 3]),
         ParameterError, r"key=\[1, 2, 3\] is not an int seed"),
    Case("mvi_q_index_nan", lambda: mvi_q(_mdp(), alpha=0.9, tau=0.1, q=float("nan"), num_iters=3),
         ParameterError, r"q is NaN"),
    Case("tsallis_kl_mdvi_q_below_one", lambda: tsallis_kl_mdvi(_mdp(), lam=0.1, q=0.9, num_iters=3),
         ParameterError, r"q=0\.9: q in \(0, 1\) is not supported"),

    # --- preference games, Nash-MP and baselines ------------------------------------------------------------
    Case("game_not_complementary", lambda: PreferenceGame.create(_with(_PREF, (0, 1), 0.8)),
         InvalidGameError, r"P\[x, i, j\] \+ P\[x, j, i\] at \(x, i, j\) = \(0, 0, 1\) is 1\.1, not 1"),
    Case("game_diagonal_not_one_half", lambda: PreferenceGame.create(_with(_PREF, (2, 2), 1.0)),
         InvalidGameError, r"P\[x, i, i\] at \(x, i\) = \(0, 2\) is 1, not 1/2"),
    Case("game_pi_ref_off_the_simplex", lambda: PreferenceGame.create(_PREF, pi_ref=[0.5, 0.5, 0.5]),
         InvalidGameError, r"pi_ref row pi_ref\[x, :\] at \(x=0\) sums to 1\.5"),
    Case("nash_mp_unchecked_game_not_complementary", lambda: N.nash_mp(
        _bare_game(_with(_PREF, (0, 1), 0.8)), beta=0.1, num_iters=3),
         InvalidGameError, r"game\.P\[x, i, j\] \+ game\.P\[x, j, i\] at \(x, i, j\) = \(0, 0, 1\) is 1\.1"),
    Case("mmd_unchecked_game_probability_above_1", lambda: N.mmd(
        _bare_game(_with(_with(_PREF, (0, 2), 1.3), (2, 0), -0.3)), beta=0.1, eta=0.1, num_iters=3),
         InvalidGameError, r"game\.P\[x, i, j\] at \(x, i, j\) = \(0, 0, 2\) is 1\.3, outside \[0, 1\]"),
    Case("solve_nash_unchecked_game_not_complementary", lambda: games.solve_nash_equilibrium(
        _bare_game(_with(_PREF, (1, 2), 0.9)), beta=0.1),
         InvalidGameError, r"at \(x, i, j\) = \(0, 1, 2\) is 1\.3"),
    Case("nash_md_beta_zero", lambda: N.nash_md(_game(), beta=0.0, eta=0.1, num_iters=3),
         ParameterError, r"beta=0\.0 must be > 0"),
    Case("self_play_mwu_eta_negative", lambda: N.self_play_mwu(_game(), eta=-0.5, num_iters=3),
         ParameterError, r"eta=-0\.5 must be > 0"),
    Case("nash_mp_unchecked_pi_ref_off_the_simplex", lambda: N.nash_mp(
        _bare_game(pi_ref=[0.2, 0.2, 0.2]), beta=0.1, num_iters=3),
         InvalidGameError, r"game\.pi_ref row at \(x=0\) sums to 0\.6"),

    # --- demonstrations -------------------------------------------------------------------------------------
    Case("demos_action_out_of_range", lambda: D.Demonstrations.create([[0, 1]], [[0, 2]], num_states=S,
                                                                      num_actions=A),
         ShapeError, r"actions\[0, 1\] \(trajectory 0, step 1\) = 2 is not an action index in \[0, 2\)"),
    Case("demos_state_negative", lambda: D.Demonstrations.create([[0, -1]], [[0, 1]], num_states=S, num_actions=A),
         ShapeError, r"states\[0, 1\] \(trajectory 0, step 1\) = -1 is not a state index in \[0, 3\)"),
    Case("demos_wrong_horizon", lambda: D.Demonstrations.create([[0, 1, 2]], [[0, 1, 0]], num_states=S,
                                                                num_actions=A, horizon=2),
         ShapeError, r"trajectories of length 3 but the horizon is H = 2"),
    Case("demos_empty", lambda: D.Demonstrations.create([], [], num_states=S, num_actions=A),
         ShapeError, r"states is empty \(0 trajectories\)"),
    Case("bc_demos_from_a_larger_mdp", lambda: D.behavior_cloning(_demos(), 2, A),
         ShapeError, r"demos\.states\[1, 0\] = 2 is not a state index in \[0, 2\).*num_states=2 is wrong"),
    Case("rlhf_demos_with_the_wrong_horizon", lambda: D.rlhf(
        0, _fmdp(2), D.Expert(jnp.asarray(_pi_fh(2)), jnp.asarray(0.0)), _demos(3), num_pairs=4, lam=3.0),
         ShapeError, r"demos have horizon 3 but the MDP has H = 2"),
    Case("sample_demonstrations_bad_key", lambda: D.sample_demonstrations("k", _fmdp(), _pi_fh(), 2),
         ParameterError, r"key='k' is not an int seed"),

    # --- bandits and alignment ------------------------------------------------------------------------------
    Case("bandit_pi_ref_sums_to_0.9", lambda: Bandit.create([0.4, 0.5], [0.0, 1.0]),
         InvalidMDPError, r"pi_ref sums to 0\.9, not 1"),
    Case("best_of_n_with_n_below_1", lambda: al.bon_law([0.5, 0.5], [0.0, 1.0], num_samples=0.5),
         ParameterError, r"num_samples N=0\.5 must be a finite number >= 1"),
    Case("posterior_beta_zero", lambda: al.posterior([0.5, 0.5], [0.0, 1.0], beta=0.0),
         ParameterError, r"beta=0\.0 must be > 0"),
    Case("objective_policy_off_the_simplex", lambda: al.regularized_objective(
        [0.7, 0.7], [0.5, 0.5], [0.0, 1.0], beta=0.1),
         InvalidMDPError, r"pi sums to 1\.4, not 1; divide it by its sum"),

    # --- bounds ---------------------------------------------------------------------------------------------
    Case("bound_r_max_below_max_abs_r", lambda: bounds.theorem1_linf(
        jnp.zeros(3), jnp.arange(1, 4), gamma=0.9, r_max=0.5, lam=0.1, num_actions=A, mdp=_mdp()),
         ParameterError,
         r"r_max=0\.5 is smaller than max \|r\| = 0\.833333 of the MDP \(at index \(2, 1\)\).*r_max_of"),
    Case("v_max_r_max_below_max_abs_r", lambda: bounds.v_max(r_max=0.1, gamma=0.9, mdp=_mdp()),
         ParameterError, r"r_max=0\.1 is smaller than max \|r\| = 0\.8333"),
    Case("bound_r_max_negative", lambda: bounds.theorem2_g2(3, gamma=0.9, beta=0.5, tau=0.1, r_max=-1.0,
                                                           num_actions=A),
         ParameterError, r"r_max=-1 must be >= 0"),

    # --- the study runner -----------------------------------------------------------------------------------
    Case("runner_duplicate_grid_values", lambda: runner.expand(toy, quick=True, overrides={"rate": "0.5,5e-1"}),
         ParameterError, r"rate lists 0\.5 more than once"),
    Case("runner_unknown_key", lambda: runner.expand(toy, quick=True, overrides={"rtae": "0.5"}),
         ParameterError, r"unknown field 'rtae'; valid fields: \['rate', 'length'"),
    Case("runner_int_field_given_a_float", lambda: runner.expand(toy, quick=True, overrides={"length": [3.5]}),
         ParameterError, r"length=3\.5 is not a valid int"),
    Case("runner_bool_field_given_a_word", lambda: runner.expand(toy, quick=True, overrides={"flag": "maybe"}),
         ParameterError, r"flag='maybe' is not a valid bool"),
    Case("runner_unknown_study", lambda: runner.expand("no_such_study", quick=True),
         ParameterError, r"unknown study 'no_such_study'; registered studies: \["),
    Case("runner_set_without_equals", lambda: runner.parse_set(["rate:0.5"]),
         ParameterError, r"--set 'rate:0\.5': expected field=value"),

    # --- the CLI --------------------------------------------------------------------------------------------
    Case("cli_unknown_study", lambda: _cli("run", "no_such_study", "--quick", "--out", "res"),
         SystemExit, r"mdptheory: error: unknown study 'no_such_study'"),
    Case("cli_set_duplicate_values", lambda: _cli(*_CLI_RUN, "--set", "tau=0.1,0.1"),
         SystemExit, r"tau lists 0\.1 more than once"),
    Case("cli_set_unknown_key", lambda: _cli(*_CLI_RUN, "--set", "temperature=0.1"),
         SystemExit, r"unknown field 'temperature'; valid fields"),
    Case("cli_set_invalid_number", lambda: _cli(*_CLI_RUN, "--set", "gamma=0.9.1"),
         SystemExit, r"gamma='0\.9\.1' is not a valid float"),
    Case("cli_set_without_equals", lambda: _cli(*_CLI_RUN, "--set", "tau"),
         SystemExit, r"--set 'tau': expected field=value"),
    Case("cli_seeds_not_an_int", lambda: _cli(*_CLI_RUN, "--seeds", "two"),
         SystemExit, r"--seeds: invalid int value: 'two'"),
    Case("cli_seeds_zero", lambda: _cli(*_CLI_RUN, "--seeds", "0"),
         SystemExit, r"seeds=0 must be an integer >= 1"),
    Case("cli_workers_zero", lambda: _cli(*_CLI_RUN, "--workers", "0"),
         SystemExit, r"workers=0 must be an integer >= 1"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_raises_the_named_error_with_a_clear_message(case: Case, capsys, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # a CLI row that got past validation would write here, not into the checkout
  with pytest.raises(BaseException) as info:
    case.call()
  if case.error is SystemExit:
    assert type(info.value) is SystemExit, repr(info.value)
    assert info.value.code not in (0, None), info.value.code
    text = capsys.readouterr().err
  else:
    assert type(info.value) is case.error, f"expected {case.error.__name__}, got {info.value!r}"
    text = str(info.value)
  assert re.search(case.match, text), f"{case.match!r} not in: {text}"


def test_the_catalogue_is_broad():
  """At least 50 rows with unique ids, exercising every input-validation error class and the CLI's exit."""
  assert len(CASES) >= 50
  ids = [c.id for c in CASES]
  assert len(set(ids)) == len(ids)
  expected = {DTypeError, InvalidGameError, InvalidMDPError, MemoryBudgetError, NonFiniteError, ParameterError,
              ShapeError, SupportMismatchError, SystemExit}
  assert expected <= {c.error for c in CASES}, expected - {c.error for c in CASES}
  assert all(issubclass(c.error, errors.MDPTheoryError) or c.error is SystemExit for c in CASES)


def test_a_terminating_policy_gets_its_undiscounted_value_where_an_improper_one_is_refused():
  """The counterpart of the gamma = 1 rows: a proper policy has the stochastic-shortest-path value.

  In ``_absorbing_mdp`` under pi: from s = 1, stay (reward 1) w.p. 0.3 or move to the terminal s = 2, so
  v(1) = 0.3 (1 + v(1)), v(1) = 3/7; from s = 0, stay (reward 1) w.p. 1/2 or move to s = 1, so
  v(0) = 1/2 (1 + v(0)) + 1/2 v(1), v(0) = 1 + 3/7. q = r + P v.
  """
  pi = np.array([[0.5, 0.5], [0.7, 0.3], [1.0, 0.0]])
  values = ops.evaluate(_bare(_absorbing_mdp(), gamma=1.0), pi)
  np.testing.assert_allclose(values.v, [10 / 7, 3 / 7, 0.0], rtol=0, atol=1e-13)
  np.testing.assert_allclose(values.q, [[3 / 7, 17 / 7], [0.0, 10 / 7], [0.0, 0.0]], rtol=0, atol=1e-13)
  # and it is the gamma -> 1 limit of the discounted values (error O(1 - gamma))
  near = ops.evaluate(_bare(_absorbing_mdp(), gamma=1.0 - 1e-9), pi)
  np.testing.assert_allclose(near.v, values.v, rtol=0, atol=1e-7)
