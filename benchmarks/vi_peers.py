"""Value iteration against the peer libraries and against the memory-bandwidth roof, in one process.

Every row is measured in the same run on the same MDP (a Garnet with A actions and B successors per (s, a);
B = S is a dense kernel), so the ratios compare like with like:

* **per iteration** (``--sections iter``): hard VI, soft VI (entropy, τ = 0.1), MD-VI (λ = 0.1, τ = 0.01) and
  M-VI (α = 0.9, τ = 0.1) from this library, each a jitted ``lax.scan`` of K iterations timed as one call and
  divided by K; pymdptoolbox's ``ValueIteration`` loop (dense (A, S, S) arrays, or per-action scipy CSR
  matrices for B < S); mushroom-rl's ``value_iteration`` (one sweep, dense only); rlberry's Bellman operator
  (``rlberry_scool.agents.dynprog.utils.bellman_operator``, pure Python loops, dense only and small S); and plain
  vectorized numpy (one GEMV, or a gather for B < S). Ratios are peer time / our hard-VI time (> 1: faster).
  The roof column is the bytes of the kernel read per iteration (S A S or S A B (itemsize + 4)) divided by the
  time, as a fraction of the streaming bandwidth this script measures (a large numpy copy, bytes read +
  written). A dense kernel above the memory budget (S = 20000: 32 GB in float64) is refused before allocation,
  and the refusal is printed.
* **end to end** (``--sections e2e``): construction and validation of the MDP plus a fixed number of iterations
  (200 dense at S = 5000, 1000 sparse), compiles included, against pymdptoolbox's constructor (its checks and
  its iteration bound) plus its loop.
* **batched sweeps** (``--sections batch``): C ∈ {64, 256, 1024} soft-VI / MD-VI (τ, γ, λ) configurations in one
  ``jit(vmap)`` call against a Python loop of single-configuration calls and against pymdptoolbox looped over
  the same configurations (its per-iteration loop, construction excluded).
* **large sparse** (``--sections large``): S up to 10^6 with B = 10: construction, memory, per-iteration time,
  fraction of the roof, against scipy CSR (the kernel of pymdptoolbox's sparse path, whose constructor is
  too slow to run at this size) and numpy's gather.

Peers are optional (``pip install -e ".[bench]"`` and the ``--no-deps`` installs in the Makefile's ``bench``
target); a missing one is reported as such. Every kernel is checked against the numpy reference before it
is timed (``check_kernels``, also run by the test suite on tiny sizes).

    python -m benchmarks vi_peers [--sections iter,e2e,batch,large] [--sizes 100,1000,5000,20000]
                                  [--large 100000,1000000] [--repeats 5] [--quick] [--memory-budget-gib G]
    JAX_PLATFORMS=cuda python -m benchmarks vi_peers --memory-budget-gib 60     # the GPU path

On a GPU the same sections run on the device (dense up to the budget, sparse to S = 10^6, batched sweeps,
float32), and the roof is the device's bandwidth measured by a jitted elementwise pass.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import platform
import resource
import time
import warnings
from dataclasses import dataclass
from typing import Callable

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from mdptheory import regularizers as R  # noqa: E402
from mdptheory import solvers  # noqa: E402
from mdptheory import validate as V  # noqa: E402
from mdptheory.algorithms.mdmpi import md_mpi  # noqa: E402
from mdptheory.algorithms.munchausen import mvi  # noqa: E402
from mdptheory.errors import MemoryBudgetError  # noqa: E402
from mdptheory.types import MDP, SparseKernel  # noqa: E402

A = 10
GAMMA = 0.99
TAU, LAM, ALPHA, MVI_TAU = 0.1, 0.1, 0.9, 0.1  # soft VI τ; MD-VI (λ, τ = 0.01); M-VI (α, τ)
MDVI_TAU = 0.01
OURS = ("vi", "soft_vi", "md_vi", "m_vi")
REFUSED_S = 20000  # a dense kernel of this size (32 GB in float64) is over the default memory budget
QUICK_S, QUICK_B, QUICK_K = 12, 10, 7  # --quick: the sizes of the correctness check, so compiles are shared
PEERS = ("pymdptoolbox", "mushroom-rl", "rlberry", "numpy")


# -- problems ---------------------------------------------------------------------------------------------

@dataclass
class Problem:
  """A Garnet in the layouts every library wants (host numpy arrays; the dense ones only when B = S)."""
  S: int
  B: int
  r: np.ndarray                      # [S, A] float64
  P: np.ndarray | None = None        # [S, A, S] dense (B = S)
  ns: np.ndarray | None = None       # [S, A, B] int32 successors (B < S)
  probs: np.ndarray | None = None    # [S, A, B]

  @property
  def dense(self) -> bool:
    return self.P is not None


def garnet(S: int, B: int, seed: int = 0) -> Problem:
  """Random kernel: B distinct-or-not successors per (s, a) with uniform-then-normalized weights."""
  rng = np.random.default_rng(seed)
  r = rng.random((S, A))
  if B >= S:
    P = rng.random((S, A, S))
    P /= P.sum(-1, keepdims=True)
    return Problem(S, S, r, P=P)
  ns = rng.integers(0, S, (S, A, B), dtype=np.int32)
  probs = rng.random((S, A, B))
  probs /= probs.sum(-1, keepdims=True)
  return Problem(S, B, r, ns=ns, probs=probs)


MEMORY_BUDGET: int | None = None  # bytes for one dense kernel; None: the library's default (2 GiB)


def build_mdp(pb: Problem, dtype) -> MDP:
  if pb.dense:
    return MDP.create(pb.P, pb.r, GAMMA, dtype=dtype, memory_budget=MEMORY_BUDGET)
  return MDP.from_sparse(pb.ns, pb.probs, pb.r, GAMMA, dtype=dtype)


def kernel_bytes(pb: Problem, itemsize: int) -> int:
  """Bytes of the transition kernel one iteration reads."""
  return pb.S * A * pb.S * itemsize if pb.dense else pb.S * A * pb.B * (itemsize + 4)


# -- our kernels: K iterations in one compiled call -----------------------------------------------------------

def our_runner(name: str, mdp: MDP, K: int) -> Callable[[], jax.Array]:
  """A zero-argument call that runs K iterations of ``name`` from 0 and returns the final value-like array."""
  if name == "vi":
    return lambda: solvers.value_iteration(mdp, num_iters=K).v
  if name == "soft_vi":
    reg = R.entropy(TAU)
    return lambda: solvers.value_iteration(mdp, reg, num_iters=K).v
  if name == "md_vi":
    return lambda: md_mpi(mdp, lam=LAM, tau=MDVI_TAU, num_iters=K, record_trace=False).q
  if name == "m_vi":
    return lambda: mvi(mdp, alpha=ALPHA, tau=MVI_TAU, num_iters=K, record_trace=False).q
  raise ValueError(f"unknown kernel {name!r}")


# -- references in plain numpy (float64): the correctness check of every kernel ------------------------------

def np_expect(pb: Problem, v: np.ndarray) -> np.ndarray:
  if pb.dense:
    return (pb.P.reshape(pb.S * A, pb.S) @ v).reshape(pb.S, A)
  return np.sum(pb.probs * v[pb.ns], axis=-1)


def _lse(q: np.ndarray, tau: float) -> np.ndarray:
  m = q.max(1)
  return m + tau * np.log(np.exp((q - m[:, None]) / tau).sum(1))


def numpy_reference(name: str, pb: Problem, K: int) -> np.ndarray:
  """K iterations of ``name`` in float64 numpy, from the published updates (THEORY.md §1, §2.1, §3.2)."""
  S = pb.S
  if name in ("vi", "soft_vi"):
    v = np.zeros(S)
    for _ in range(K):
      q = pb.r + GAMMA * np_expect(pb, v)
      v = q.max(1) if name == "vi" else _lse(q, TAU)
    return v
  if name == "md_vi":  # q_{k+1} = r + γ P (<π_{k+1}, q_k> − λ KL(π_{k+1}‖π_k) + τ H(π_{k+1}))
    q, logpi = np.zeros((S, A)), np.full((S, A), -np.log(A))
    temp, beta = LAM + MDVI_TAU, LAM / (LAM + MDVI_TAU)
    for _ in range(K):
      z = beta * logpi + q / temp
      lognew = z - _lse(z, 1.0)[:, None]
      p = np.exp(lognew)
      v = (p * (q - LAM * (lognew - logpi) - MDVI_TAU * lognew)).sum(1)
      q, logpi = pb.r + GAMMA * np_expect(pb, v), lognew
    return q
  if name == "m_vi":  # q_{k+1} = r + α τ ln π_{k+1} + γ P τ lse(q_k/τ)
    q = np.zeros((S, A))
    for _ in range(K):
      v = _lse(q, MVI_TAU)
      q = pb.r + ALPHA * (q - v[:, None]) + GAMMA * np_expect(pb, v)
    return q
  raise ValueError(name)


# -- peers --------------------------------------------------------------------------------------------------

def available(peer: str) -> bool:
  module = {"pymdptoolbox": "mdptoolbox", "mushroom-rl": "mushroom_rl", "rlberry": "rlberry_scool",
            "numpy": "numpy"}[peer]
  return importlib.util.find_spec(module) is not None


def _rlberry_utils():
  """rlberry's dynamic-programming module, loaded from its file: the package ``__init__`` imports rlberry's
  experiment manager, which needs gymnasium < 1.0 (this project uses gymnasium >= 1.0); the module itself
  only imports numpy."""
  spec = importlib.util.find_spec("rlberry_scool")
  path = os.path.join(spec.submodule_search_locations[0], "agents", "dynprog", "utils.py")
  loader_spec = importlib.util.spec_from_file_location("_rlberry_dynprog_utils", path)
  module = importlib.util.module_from_spec(loader_spec)
  loader_spec.loader.exec_module(module)
  return module


def pymdptoolbox_object(pb: Problem, *, construct: bool):
  """pymdptoolbox's ValueIteration on this problem.

  ``construct=True`` runs its constructor (validation of P and R, and its iteration bound, which reads every
  column of P). ``construct=False`` fills in the attributes its loop reads and skips the constructor, for
  per-iteration timings at sizes where the constructor alone takes minutes (its Bellman operator and loop
  are the library's own code either way).
  """
  import mdptoolbox.mdp
  import scipy.sparse as sp
  if pb.dense:
    P = np.ascontiguousarray(pb.P.transpose(1, 0, 2))  # pymdptoolbox's (A, S, S)
  else:
    rows = np.repeat(np.arange(pb.S), pb.B)
    P = [sp.csr_matrix((pb.probs[:, a].ravel(), (rows, pb.ns[:, a].ravel())), shape=(pb.S, pb.S))
         for a in range(A)]
  if construct:
    with warnings.catch_warnings():  # its checks use a numpy idiom that warns on scipy sparse matrices
      warnings.simplefilter("ignore")
      vi = mdptoolbox.mdp.ValueIteration(P, pb.r, GAMMA, epsilon=1e-12)
  else:
    vi = object.__new__(mdptoolbox.mdp.ValueIteration)
    vi.S, vi.A, vi.discount, vi.verbose = pb.S, A, GAMMA, False
    vi.P = tuple(P[a] for a in range(A))
    vi.R = tuple(np.ascontiguousarray(pb.r[:, a]) for a in range(A))
  return vi


def pymdptoolbox_run(vi, K: int) -> np.ndarray:
  """K iterations of pymdptoolbox's own loop (``run``) from V = 0, never stopping early."""
  vi.V = np.zeros(vi.S)
  vi.iter, vi.max_iter, vi.thresh = 0, K, -1.0
  vi.run()
  return np.asarray(vi.V)


def peer_runner(peer: str, pb: Problem, K: int) -> Callable[[], np.ndarray] | None:
  """A zero-argument call that runs K hard-VI iterations with the peer, or None where it does not apply."""
  S = pb.S
  if peer == "numpy":
    P2 = pb.P.reshape(S * A, S) if pb.dense else None

    def run():
      v = np.zeros(S)
      for _ in range(K):
        pv = (P2 @ v).reshape(S, A) if pb.dense else np.sum(pb.probs * v[pb.ns], axis=-1)
        v = (pb.r + GAMMA * pv).max(1)
      return v
    return run
  if peer == "pymdptoolbox":
    vi = pymdptoolbox_object(pb, construct=False)
    return lambda: pymdptoolbox_run(vi, K)
  if not pb.dense:
    return None  # mushroom-rl and rlberry take dense (S, A, S) arrays only
  if peer == "mushroom-rl":
    from mushroom_rl.solvers.dynamic_programming import value_iteration
    reward = np.broadcast_to(pb.r[:, :, None], (S, A, S))  # its reward is r(s, a, s'); a view, no memory

    def run():
      # eps = inf stops after one sweep; its API has no initial value, so one call is one iteration from 0.
      return value_iteration(pb.P, reward, GAMMA, np.inf)
    return run if K == 1 else None
  if peer == "rlberry":
    utils = _rlberry_utils()

    def run():
      Q = np.zeros((S, A))
      for _ in range(K):
        Q = utils.bellman_operator(Q, pb.r, pb.P, GAMMA)
      return Q.max(1)
    return run
  raise ValueError(peer)


# -- timing -------------------------------------------------------------------------------------------------

def timed(fn: Callable, repeats: int) -> float:
  """Median wall time of ``repeats`` calls after one warm-up call (compiles excluded)."""
  jax.block_until_ready(fn())
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return float(np.median(times))


def stream_bandwidth(nbytes: int = 2 * 1024**3, repeats: int = 5) -> float:
  """Bytes per second of a large numpy copy (bytes read + bytes written), both buffers already touched."""
  src = np.ones(nbytes // 8)
  dst = np.empty_like(src)
  dst[:] = 0.0
  best = timed(lambda: np.copyto(dst, src), repeats)
  return 2 * src.nbytes / best


def device_bandwidth(nbytes: int = 2 * 1024**3, repeats: int = 5) -> float:
  """Bytes per second of a jitted elementwise pass over a large device array (read + write): the GPU's roof."""
  x = jnp.ones(nbytes // 4, jnp.float32)
  f = jax.jit(lambda x: x * 1.0001)
  return 2 * x.nbytes / timed(lambda: f(x), repeats)


def choose_iterations(seconds_per_iter: float, target: float = 0.3, cap: int = 1000) -> int:
  return int(max(3, min(cap, target / max(seconds_per_iter, 1e-7))))


# -- correctness --------------------------------------------------------------------------------------------

def check_kernels(S: int = 24, B: int | None = None, *, dtypes=("float64", "float32"), K: int = 7,
                  peers=PEERS) -> list[tuple[str, str, float]]:
  """Runs every kernel on a small Garnet against the numpy reference.

  Returns (kernel, dtype, max abs error) rows; raises ``RuntimeError`` naming the kernel on a mismatch
  (atol 1e-10 in float64, 2e-3 in float32).
  """
  pb = garnet(S, S if B is None else B, seed=1)
  rows = []
  for dt in dtypes:
    mdp = build_mdp(pb, dt)
    atol = 1e-10 if dt == "float64" else 2e-3
    for name in OURS:
      got = np.asarray(our_runner(name, mdp, K)(), np.float64)
      err = float(np.max(np.abs(got - numpy_reference(name, pb, K))))
      rows.append((name, dt, err))
      if not err <= atol:
        raise RuntimeError(f"{name} ({dt}, {'dense' if pb.dense else 'sparse'}) differs from numpy by {err:.3g}")
  ref1, refK = numpy_reference("vi", pb, 1), numpy_reference("vi", pb, K)
  for peer in peers:
    if not available(peer):
      continue
    run_k = peer_runner(peer, pb, K)  # mushroom-rl has no initial value: it is checked on one sweep from 0
    run, want = (run_k, refK) if run_k is not None else (peer_runner(peer, pb, 1), ref1)
    if run is None:
      continue
    err = float(np.max(np.abs(np.asarray(run(), np.float64) - want)))
    rows.append((peer, "float64", err))
    if not err <= 1e-10:
      raise RuntimeError(f"peer {peer} differs from numpy by {err:.3g}")
  return rows


# -- sections -----------------------------------------------------------------------------------------------

def section_iter(sizes, dtypes, repeats, bw, out, *, fixed_K: int | None = None):
  print("\n## Per iteration (median ms; ratio = peer / our hard VI; roof = kernel bytes read / time / bandwidth)")
  print("| S | B | dtype | kernel | ms/iter | ratio | roof |")
  print("|---|---|---|---|---|---|---|")
  for S in sizes:
    for B in (S, QUICK_B):
      pb = None
      for dt in dtypes:
        itemsize = np.dtype(dt).itemsize
        layout = "dense" if B == S else f"{B}"
        try:
          if B == S:
            V.check_dense_budget("transition kernel P", (S, A, S), dt, MEMORY_BUDGET)
        except MemoryBudgetError as e:
          print(f"| {S} | {layout} | {dt} | all | refused | | |  <!-- {e} -->")
          out.append(dict(S=S, B=B, dtype=dt, kernel="all", refused=str(e)))
          continue
        if pb is None:
          pb = garnet(S, B)
        mdp = build_mdp(pb, dt)
        K = fixed_K or choose_iterations(timed(our_runner("vi", mdp, 3), 1) / 3)
        base = None
        for name in OURS:
          t = timed(our_runner(name, mdp, K), repeats) / K
          base = t if name == "vi" else base
          frac = kernel_bytes(pb, itemsize) / t / bw
          print(f"| {S} | {layout} | {dt} | ours: {name} | {1e3 * t:.3f} | {t / base:.2f}x VI | {frac:.0%} |")
          out.append(dict(S=S, B=B, dtype=dt, kernel=name, ms=1e3 * t, K=K, roof=frac))
        del mdp
        gc.collect()
        if dt != "float64":
          continue  # the peers compute in float64 whatever they are given
        for peer in PEERS:
          if not available(peer):
            print(f"| {S} | {layout} | float64 | {peer} | not installed | | |")
            continue
          if peer == "rlberry" and S > 1000:
            print(f"| {S} | {layout} | float64 | {peer} | not run (pure Python, ~S^2 A) | | |")
            continue
          Kp = 1 if peer in ("mushroom-rl", "rlberry") else max(3, min(K, 50))
          run = peer_runner(peer, pb, Kp)
          if run is None:
            continue
          t = timed(run, 1 if peer == "rlberry" and S >= 1000 else min(repeats, 3)) / Kp
          frac = kernel_bytes(pb, 8) / t / bw
          print(f"| {S} | {layout} | float64 | {peer} | {1e3 * t:.3f} | {t / base:.2f} | {frac:.0%} |")
          out.append(dict(S=S, B=B, dtype="float64", kernel=peer, ms=1e3 * t, K=Kp, roof=frac,
                          ratio_to_ours=t / base))
      del pb
      gc.collect()


def section_e2e(repeats, out, *, S=5000, dense_iters=200, sparse_iters=1000, dtypes=("float64", "float32")):
  print(f"\n## End to end (seconds: construction + validation + iterations, compiles included), S = {S}")
  print("| kernel | iterations | library | seconds | ratio |")
  print("|---|---|---|---|---|")
  for B, K in ((S, dense_iters), (10, sparse_iters)):
    pb = garnet(S, B)
    layout = "dense" if B == S else f"B = {B}"
    if available("pymdptoolbox"):
      t0 = time.perf_counter()
      vi = pymdptoolbox_object(pb, construct=True)
      t_ctor = time.perf_counter() - t0
      t0 = time.perf_counter()
      pymdptoolbox_run(vi, K)
      peer = t_ctor + time.perf_counter() - t0
      del vi
      print(f"| {layout} | {K} | pymdptoolbox (constructor {t_ctor:.2f} s) | {peer:.2f} | 1.00 |")
      out.append(dict(section="e2e", B=B, K=K, library="pymdptoolbox", seconds=peer, ctor=t_ctor))
    else:
      peer = None
    for dt in dtypes:
      solvers._value_iteration.clear_cache()  # the compile is part of a first run
      t0 = time.perf_counter()
      mdp = build_mdp(pb, dt)
      jax.block_until_ready(mdp)
      t_build = time.perf_counter() - t0
      jax.block_until_ready(solvers.value_iteration(mdp, num_iters=K).v)
      ours = time.perf_counter() - t0
      ratio = f"{peer / ours:.2f}" if peer else "n/a"
      print(f"| {layout} | {K} | ours, {dt} (construction {t_build:.2f} s) | {ours:.2f} | {ratio} |")
      out.append(dict(section="e2e", B=B, K=K, library=f"ours {dt}", seconds=ours, ctor=t_build))
      del mdp
      gc.collect()
    del pb
    gc.collect()


SPARSE_CHUNK = 16


def _configs(C: int, seed: int = 0):
  rng = np.random.default_rng(seed)
  return (10 ** rng.uniform(-2, 0, C), rng.uniform(0.9, 0.99, C), 10 ** rng.uniform(-2, 0, C))


def section_batch(repeats, out, *, cases=((5000, 5000, (64,)), (1000, 1000, (64, 256, 1024)),
                                         (5000, 10, (64, 256))), K=20, loop_configs=4,
                  dtypes=("float64", "float32")):
  print(f"\n## Batched sweeps ({K} iterations per configuration; configurations / second; ratio to the loops; "
        f"dense: jit(vmap), sparse: jit(lax.map(batch_size={SPARSE_CHUNK})))")
  print("| S | B | dtype | algorithm | C | one call (s) | configs/s | vs our loop | vs pymdptoolbox loop |")
  print("|---|---|---|---|---|---|---|---|---|")
  for S, B, counts in cases:
    pb = garnet(S, B)
    peer_per_config = None
    if available("pymdptoolbox"):  # its loop at one discount, K iterations; its construction excluded
      vi = pymdptoolbox_object(pb, construct=False)
      peer_per_config = timed(lambda: pymdptoolbox_run(vi, K), min(repeats, 3))
      del vi
    for dt in dtypes:
      mdp = build_mdp(pb, dt)
      for algo in ("soft_vi", "md_vi"):
        def one(tau, gamma, lam, algo=algo, mdp=mdp):
          m = mdp._replace(gamma=gamma)
          if algo == "soft_vi":
            return solvers.value_iteration(m, R.entropy(tau), num_iters=K).v
          return md_mpi(m, lam=lam, tau=tau, num_iters=K).q
        single = jax.jit(one)
        taus, gammas, lams = (jnp.asarray(x, mdp.dtype) for x in _configs(loop_configs))
        loop = timed(lambda: [single(taus[i], gammas[i], lams[i]) for i in range(loop_configs)], 1) / loop_configs
        if B == S:
          batched = jax.jit(jax.vmap(one))
        else:
          # A vmapped gather materializes C·S·A·B values (4 GB per iteration at C = 1024, S = 5000); vmap over
          # chunks of 16 configurations, one chunk after the other, keeps batching's gain at any C.
          batched = jax.jit(lambda *xs, one=one: jax.lax.map(lambda x: one(*x), xs, batch_size=SPARSE_CHUNK))
        for C in counts:
          taus, gammas, lams = (jnp.asarray(x, mdp.dtype) for x in _configs(C))
          t = timed(lambda: batched(taus, gammas, lams), 1 if C >= 256 else min(repeats, 3))
          peer = f"{peer_per_config * C / t:.1f}x" if peer_per_config else "n/a"
          print(f"| {S} | {'dense' if B == S else B} | {dt} | {algo} | {C} | {t:.2f} | {C / t:.1f} | "
                f"{loop * C / t:.1f}x | {peer} |")
          out.append(dict(section="batch", S=S, B=B, dtype=dt, algo=algo, C=C, seconds=t,
                          loop_per_config=loop, peer_per_config=peer_per_config))
      del mdp
      gc.collect()
    del pb
    gc.collect()


def _rss_gib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def section_large(sizes, repeats, bw, out, *, B=10, dtypes=("float64", "float32")):
  import scipy.sparse as sp
  print(f"\n## Large sparse kernels (B = {B}; ms per iteration; memory = kernel bytes / process max RSS)")
  print("| S | dtype | kernel | construction (s) | ms/iter | roof | memory |")
  print("|---|---|---|---|---|---|---|")
  for S in sizes:
    pb = garnet(S, B, seed=2)
    for dt in dtypes:
      t0 = time.perf_counter()
      mdp = build_mdp(pb, dt)
      jax.block_until_ready(mdp)
      t_build = time.perf_counter() - t0
      itemsize = np.dtype(dt).itemsize
      nbytes = mdp.P.next_states.nbytes + mdp.P.probs.nbytes
      t = timed(our_runner("vi", mdp, 5), repeats) / 5
      print(f"| {S} | {dt} | ours: vi | {t_build:.2f} | {1e3 * t:.2f} | {kernel_bytes(pb, itemsize) / t / bw:.0%} "
            f"| {nbytes / 2**30:.2f} GiB / {_rss_gib():.2f} GiB |")
      out.append(dict(section="large", S=S, dtype=dt, kernel="vi", ms=1e3 * t, build=t_build, bytes=nbytes))
      del mdp
      gc.collect()
    rows = np.repeat(np.arange(S * A), B)
    t0 = time.perf_counter()
    csr = sp.csr_matrix((pb.probs.ravel(), (rows, pb.ns.ravel())), shape=(S * A, S))
    t_csr = time.perf_counter() - t0
    del rows
    v = np.zeros(S)

    def csr_iter():
      return (pb.r + GAMMA * (csr @ v).reshape(S, A)).max(1)
    t = timed(csr_iter, repeats)
    print(f"| {S} | float64 | scipy CSR (pymdptoolbox's kernel) | {t_csr:.2f} | {1e3 * t:.2f} | "
          f"{kernel_bytes(pb, 8) / t / bw:.0%} | |")
    out.append(dict(section="large", S=S, dtype="float64", kernel="scipy_csr", ms=1e3 * t, build=t_csr))
    del csr
    t = timed(peer_runner("numpy", pb, 1), min(repeats, 3))
    print(f"| {S} | float64 | numpy gather | | {1e3 * t:.2f} | {kernel_bytes(pb, 8) / t / bw:.0%} | |")
    out.append(dict(section="large", S=S, dtype="float64", kernel="numpy", ms=1e3 * t))
    del pb
    gc.collect()
  # The dense request that cannot fit is refused before anything is allocated.
  S = REFUSED_S
  kernel = SparseKernel(jnp.zeros((S, A, 1), jnp.int32), jnp.ones((S, A, 1)))
  try:
    kernel.to_dense()
  except MemoryBudgetError as e:
    print(f"\nDense S = {S}: refused before allocation: {e}")


def main(argv=None) -> list[dict]:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--sections", default="iter,e2e,batch,large")
  parser.add_argument("--sizes", default="100,1000,5000,20000")
  parser.add_argument("--large", default="100000,1000000")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of every section")
  parser.add_argument("--memory-budget-gib", type=float, default=None,
                      help="bytes allowed for one dense kernel (default: the library's 2 GiB); on a large GPU, e.g. 60")
  args = parser.parse_args(argv)
  global MEMORY_BUDGET
  MEMORY_BUDGET = None if args.memory_budget_gib is None else int(args.memory_budget_gib * 2**30)
  jax.config.update("jax_enable_x64", True)
  sections = args.sections.split(",")
  sizes = [int(s) for s in args.sizes.split(",")]
  large = [int(s) for s in args.large.split(",")]
  if args.quick:
    sizes, large, args.repeats = [QUICK_S], [3000], 1

  print(f"# vi_peers: value iteration against pymdptoolbox, mushroom-rl, rlberry and numpy (A = {A}, "
        f"gamma = {GAMMA})")
  print(f"machine: {platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} on "
        f"{jax.default_backend()}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; "
        f"{time.strftime('%Y-%m-%d')}")
  print("peers: " + ", ".join(f"{p} {'yes' if available(p) else 'missing'}" for p in PEERS))
  S_check = QUICK_S if args.quick else 24
  rows = check_kernels(S_check, K=QUICK_K) + check_kernels(S_check, QUICK_B, K=QUICK_K)
  print(f"correctness: {len(rows)} kernel runs agree with the numpy reference "
        f"(max error {max(r[2] for r in rows if r[1] == 'float64'):.1e} in float64)")
  nbytes = 64 * 1024**2 if args.quick else 2 * 1024**3
  if jax.default_backend() == "cpu":
    bw = stream_bandwidth(nbytes)
    print(f"streaming bandwidth (numpy copy, read + write): {bw / 1e9:.1f} GB/s")
  else:
    bw = device_bandwidth(nbytes)
    print(f"device bandwidth (jitted elementwise pass, read + write): {bw / 1e9:.1f} GB/s; host peers still run on "
          f"the CPU, so their roof column is against the device's bandwidth")
  out: list[dict] = []
  if "iter" in sections:
    section_iter(sizes, ("float64", "float32"), args.repeats, bw, out, fixed_K=QUICK_K if args.quick else None)
  if "e2e" in sections:
    if args.quick:
      section_e2e(args.repeats, out, S=QUICK_S, dense_iters=QUICK_K, sparse_iters=QUICK_K, dtypes=("float64",))
    else:
      section_e2e(args.repeats, out)
  if "batch" in sections:
    if args.quick:
      section_batch(args.repeats, out, cases=((QUICK_S, QUICK_S, (4,)), (QUICK_S, QUICK_B, (4,))), K=QUICK_K,
                    loop_configs=2, dtypes=("float64",))
    else:
      section_batch(args.repeats, out)
  if "large" in sections:
    section_large(large, args.repeats, bw, out, dtypes=("float64",) if args.quick else ("float64", "float32"))
  return out


if __name__ == "__main__":
  main()
