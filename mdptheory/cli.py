"""The ``mdptheory`` command: list, run a study's sweep, verify every claim, redraw figures.

    mdptheory list
    mdptheory run STUDY [--quick] [--set k=v1,v2 ...] [--seeds N] [--backend local|ray] [--address A]
                        [--workers N] [--max-batch N] [--out DIR] [--figures DIR] [--force]
    mdptheory verify [--quick|--full] [--format table|json|markdown] [--study NAME ...]
    mdptheory plot STUDY [--quick] [--set ...] [--seeds N] [--out DIR] [--figures DIR]

Results go to ``results/<study>/<cell-hash>/`` and are reused on the next run;
figures (PNG, PDF and the CSV behind them) and ``REPORT.md`` go to ``figures/`` for the default
(paper-scale) configurations and to ``figures/quick/`` for ``--quick`` ones, so a quick run never
overwrites the paper-scale figures.
Computations run in float64 unless ``--no-x64`` is given. The same command gives bit-identical
results on the CPU whatever ``--workers`` and however often it is interrupted and resumed (the
batches depend only on the cells and ``--max-batch``); each cell's ``meta.json`` records the command.
Nothing is written outside ``--out`` and ``--figures``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from mdptheory.errors import MDPTheoryError


def _enable_x64(on: bool) -> None:
  import jax
  jax.config.update("jax_enable_x64", bool(on))


def _studies() -> dict[str, str]:
  from mdptheory.studies import STUDIES
  return STUDIES


def cmd_list(args) -> int:
  from mdptheory import envs
  from mdptheory.claims import CLAIMS
  print("studies:")
  for name in _studies():
    print(f"  {name}")
  print("claims:")
  for c in CLAIMS.values():
    print(f"  {c.id:6s} [{c.kind}] {c.statement}  (study: {c.study}; {c.paper})")
  print("envs:")
  for name in envs.registered():
    print(f"  {name}")
  return 0


def _claim_rows(study_name: str, results) -> list[dict]:
  from mdptheory.claims import CLAIMS
  rows = []
  for res in results:
    claim = CLAIMS[res.id]
    rows.append(dict(id=res.id, paper=claim.paper, statement=claim.statement, study=study_name,
                     kind=claim.kind, note=claim.note, measured=res.measured, bound=res.bound,
                     margin=res.margin, passed=res.passed, detail=res.detail))
  return rows


def _format_table(rows) -> str:
  head = ["claim", "paper", "measured", "bound", "margin", "result"]
  body = [[r["id"], r["paper"][:44], f"{r['measured']:.4g}", f"{r['bound']:.4g}", f"{r['margin']:.3g}",
           "PASS" if r["passed"] else "FAIL"] for r in rows]
  widths = [max([len(h)] + [len(b[i]) for b in body]) for i, h in enumerate(head)]
  fmt = "  ".join(f"{{:{w}s}}" for w in widths)
  return "\n".join([fmt.format(*head), fmt.format(*("-" * w for w in widths))] + [fmt.format(*b) for b in body])


def _format_markdown(rows) -> str:
  lines = ["| claim | paper | measured | bound | margin | result | detail |", "|---|---|---|---|---|---|---|"]
  for r in rows:
    detail = r["detail"].replace("|", "\\|")
    lines.append(f"| {r['id']} | {r['paper']} | {r['measured']:.4g} | {r['bound']:.4g} | {r['margin']:.3g} | "
                 f"{'PASS' if r['passed'] else 'FAIL'} | {detail} |")
  return "\n".join(lines)


def _sweep(name: str, args, *, quick: bool, log) -> tuple[object, object]:
  """Expands and runs one study's sweep through the results store; returns (study module, summary)."""
  from mdptheory.runner import expand, parse_set, resolve_study, run_sweep
  study = resolve_study(name)
  cells = expand(study, quick=quick, overrides=parse_set(getattr(args, "set", None) or []),
                 seeds=getattr(args, "seeds", None))
  summary = run_sweep(study, cells, out=args.out, backend=args.backend, workers=args.workers,
                      address=args.address, force=getattr(args, "force", False), progress=not args.no_progress,
                      max_batch=getattr(args, "max_batch", None), invocation=_invocation(args))
  return study, summary


def _invocation(args) -> dict:
  """What meta.json records about the request: the command line and the x64 mode."""
  return {"command": "mdptheory " + shlex.join(getattr(args, "argv", None) or []), "x64": bool(args.x64)}


def _check_folders(args) -> None:
  """Refuses an unusable ``--out`` or ``--figures`` (empty, NUL byte, an existing file) before any work."""
  from mdptheory.runner.paths import check_folder
  check_folder(args.out, "--out")
  check_folder(_figures_dir(args), "--figures")


def _check_and_plot(study, df, figures: Path, log) -> list[dict]:
  from mdptheory.plotting import save_figure
  if len(df) == 0:
    log(f"  {study.NAME}: no results to check")
    return []
  rows = _claim_rows(study.NAME, study.check(df))
  paths = save_figure(study.plot(df), df, figures / study.NAME)
  log(f"  {study.NAME}: figure -> {paths[0]}")
  return rows


def cmd_run(args) -> int:
  _check_folders(args)
  _enable_x64(args.x64)
  study, summary = _sweep(args.study, args, quick=args.quick, log=print)
  rows = _check_and_plot(study, summary.frame, _figures_dir(args), print)
  if rows:
    print(_format_table(rows))
  return 0 if (not summary.failed and not summary.diverged and all(r["passed"] for r in rows)) else 1


def cmd_plot(args) -> int:
  from mdptheory.plotting import save_figure
  from mdptheory.runner import expand, load_results, parse_set, resolve_study
  _check_folders(args)
  _enable_x64(args.x64)
  study = resolve_study(args.study)
  cells = expand(study, quick=args.quick, overrides=parse_set(args.set or []), seeds=args.seeds)
  df = load_results(study, cells, args.out, include_diverged=True)
  if len(df) == 0:
    raise MDPTheoryError(f"no stored results for {study.NAME} under {args.out}; run "
                         f"'mdptheory run {study.NAME}{' --quick' if args.quick else ''}' first")
  paths = save_figure(study.plot(df), df, _figures_dir(args) / study.NAME)
  print(f"{study.NAME}: {len(df)} rows from {args.out} -> {paths[0]}")
  return 0


def _figures_dir(args) -> Path:
  """``--figures`` if given, else ``figures/`` (default configurations) or ``figures/quick/`` (``--quick``)."""
  if args.figures is not None:
    return Path(args.figures)
  return Path("figures") / "quick" if getattr(args, "quick", False) else Path("figures")


def cmd_verify(args) -> int:
  _check_folders(args)
  _enable_x64(args.x64)
  figures = _figures_dir(args)
  log = (lambda *a, **k: print(*a, file=sys.stderr, **k)) if args.format == "json" else print
  log(f"verify ({'quick' if args.quick else 'full'} configurations, float{'64' if args.x64 else '32'}):")
  t0 = time.perf_counter()
  rows, failed_cells = [], []
  for name in (args.study or list(_studies())):
    study, summary = _sweep(name, args, quick=args.quick, log=log)
    failed_cells += [(name, h) for h, _, _ in list(summary.failed) + list(summary.diverged)]
    rows += _check_and_plot(study, summary.frame, figures, log)
  if args.format == "json":
    print(json.dumps(rows, indent=2))
  elif args.format == "markdown":
    print(_format_markdown(rows))
  else:
    print(_format_table(rows))
  report = ["# mdptheory verify report", "",
            f"Mode: {'quick' if args.quick else 'full'} configurations, "
            f"float{'64' if args.x64 else '32'}; {sum(r['passed'] for r in rows)}/{len(rows)} claims pass "
            f"({time.perf_counter() - t0:.0f} s).", "", _format_markdown(rows), "",
            "Figures (each with the PDF and the CSV of the data behind it):", ""]
  for name in dict.fromkeys(r["study"] for r in rows):
    report.append(f"- `{name}`: ![{name}]({name}.png)")
  from mdptheory.plotting import _atomic_write
  figures.mkdir(parents=True, exist_ok=True)
  _atomic_write(figures / "REPORT.md", lambda f: f.write(("\n".join(report) + "\n").encode()))
  failed = [r["id"] for r in rows if not r["passed"]]
  if failed or failed_cells:
    log(f"FAILED claims: {failed}; failed or diverged cells: {failed_cells}")
    return 1
  return 0


def _add_sweep_args(p, *, force: bool = True) -> None:
  p.add_argument("--set", action="append", metavar="KEY=V1,V2",
                 help="sweep a Config field over comma-separated values (repeatable)")
  p.add_argument("--seeds", type=int, help="number of seeds per setting (default: the study's)")
  p.add_argument("--out", default="results", help="results folder (default: results)")
  p.add_argument("--figures", default=None, help="figures folder (default: figures, or figures/quick with --quick)")
  p.add_argument("--x64", action=argparse.BooleanOptionalAction, default=True,
                 help="compute in float64 (default: on)")


def _add_exec_args(p) -> None:
  p.add_argument("--backend", choices=["local", "ray"], default="local")
  p.add_argument("--address", help="Ray cluster address (default: start an embedded local cluster)")
  p.add_argument("--workers", type=int, default=1, help="local worker processes (default: 1, in-process)")
  p.add_argument("--max-batch", type=int, default=None, metavar="N",
                 help="at most N cells per batched call (default: the study's); part of what makes a result "
                      "bit-identical, so keep it when re-running")
  p.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(argv: list[str] | None = None) -> int:
  from mdptheory._xla import avoid_cpu_pool_deadlock
  avoid_cpu_pool_deadlock()  # before the first computation creates the XLA CPU backend
  parser = argparse.ArgumentParser(prog="mdptheory", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest="command", required=True)

  p = sub.add_parser("list", help="studies, claims and envs")
  p.set_defaults(func=cmd_list)

  p = sub.add_parser("run", help="run one study's sweep (resumable), check its claims, draw its figure")
  p.add_argument("study")
  p.add_argument("--quick", action="store_true", help="the study's quick configuration")
  p.add_argument("--force", action="store_true", help="recompute cells that are already stored")
  _add_sweep_args(p)
  _add_exec_args(p)
  p.set_defaults(func=cmd_run)

  p = sub.add_parser("verify", help="run every registered claim; exit non-zero if one fails")
  mode = p.add_mutually_exclusive_group()
  mode.add_argument("--quick", dest="quick", action="store_true", default=True,
                    help="quick configurations (the default)")
  mode.add_argument("--full", dest="quick", action="store_false", help="paper-scale configurations")
  p.add_argument("--format", choices=["table", "json", "markdown"], default="table")
  p.add_argument("--study", action="append", help="only this study (repeatable)")
  p.add_argument("--out", default="results", help="results folder (default: results)")
  p.add_argument("--figures", default=None, help="figures folder (default: figures, or figures/quick with --quick)")
  p.add_argument("--x64", action=argparse.BooleanOptionalAction, default=True,
                 help="compute in float64 (default: on)")
  _add_exec_args(p)
  p.set_defaults(func=cmd_verify)

  p = sub.add_parser("plot", help="redraw a study's figure from stored results (no recomputation)")
  p.add_argument("study")
  p.add_argument("--quick", action="store_true")
  _add_sweep_args(p)
  p.set_defaults(func=cmd_plot)

  argv = list(sys.argv[1:] if argv is None else argv)
  args = parser.parse_args(argv)
  args.argv = argv
  from mdptheory.runner.store import StoreError
  try:
    return args.func(args)
  except MDPTheoryError as e:
    print(f"mdptheory: error: {e}", file=sys.stderr)
    return 2
  except StoreError as e:  # a full disk, a locked results folder: the stored cells are intact
    print(f"mdptheory: error: {e.strerror or e}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print("mdptheory: interrupted; completed cells are stored and a re-run resumes", file=sys.stderr)
    return 130


if __name__ == "__main__":
  sys.exit(main())
