"""The ``mdptheory`` command: list what exists, verify every claim."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path


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


def _format_table(rows) -> str:
  head = ["claim", "paper", "measured", "bound", "margin", "result"]
  body = [[r["id"], r["paper"][:44], f"{r['measured']:.4g}", f"{r['bound']:.4g}", f"{r['margin']:.3g}",
           "PASS" if r["passed"] else "FAIL"] for r in rows]
  widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
  fmt = "  ".join(f"{{:{w}s}}" for w in widths)
  return "\n".join([fmt.format(*head), fmt.format(*("-" * w for w in widths))] + [fmt.format(*b) for b in body])


def _format_markdown(rows) -> str:
  lines = ["| claim | paper | measured | bound | margin | result | detail |", "|---|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(f"| {r['id']} | {r['paper']} | {r['measured']:.4g} | {r['bound']:.4g} | {r['margin']:.3g} | "
                 f"{'PASS' if r['passed'] else 'FAIL'} | {r['detail']} |")
  return "\n".join(lines)


def verify(*, quick: bool, figures_dir: Path, studies: list[str] | None = None, log=print) -> list[dict]:
  """Runs every registered claim's study, saves its figure, and returns one row per claim."""
  from mdptheory.claims import CLAIMS
  from mdptheory.plotting import save_figure
  rows = []
  for name, module in _studies().items():
    if studies and name not in studies:
      continue
    study = importlib.import_module(module)
    cfg = study.Config.quick() if quick else study.Config()
    t0 = time.perf_counter()
    df = study.run(cfg)
    results = study.check(df)
    save_figure(study.plot(df), df, figures_dir / name)
    log(f"  {name}: {len(df)} rows in {time.perf_counter() - t0:.1f} s -> {figures_dir / name}.png")
    for res in results:
      claim = CLAIMS[res.id]
      rows.append(dict(id=res.id, paper=claim.paper, statement=claim.statement, study=name,
                       kind=claim.kind, note=claim.note, measured=res.measured, bound=res.bound,
                       margin=res.margin, passed=res.passed, detail=res.detail))
  return rows


def cmd_verify(args) -> int:
  _enable_x64(args.x64)
  figures_dir = Path(args.figures)
  log = (lambda *a, **k: print(*a, file=sys.stderr, **k)) if args.format == "json" else print
  log(f"verify ({'quick' if args.quick else 'full'} configurations, float{'64' if args.x64 else '32'}):")
  rows = verify(quick=args.quick, figures_dir=figures_dir, studies=args.study, log=log)
  if args.format == "json":
    print(json.dumps(rows, indent=2))
  elif args.format == "markdown":
    print(_format_markdown(rows))
  else:
    print(_format_table(rows))
  report = ["# mdptheory verify report", "",
            f"Mode: {'quick' if args.quick else 'full'}; {sum(r['passed'] for r in rows)}/{len(rows)} claims pass.",
            "", _format_markdown(rows), "", "Figures (PNG, PDF and the CSV behind each):", ""]
  report += [f"- `{r['study']}`: ![{r['study']}]({r['study']}.png)" for r in rows]
  figures_dir.mkdir(parents=True, exist_ok=True)
  from mdptheory.plotting import _atomic_write
  _atomic_write(figures_dir / "REPORT.md", lambda f: f.write(("\n".join(report) + "\n").encode()))
  failed = [r["id"] for r in rows if not r["passed"]]
  if failed:
    log(f"FAILED claims: {failed}")
    return 1
  return 0


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="mdptheory", description=__doc__)
  sub = parser.add_subparsers(dest="command", required=True)
  p = sub.add_parser("list", help="studies, claims and envs")
  p.set_defaults(func=cmd_list)
  p = sub.add_parser("verify", help="run every registered claim; exit non-zero if one fails")
  mode = p.add_mutually_exclusive_group()
  mode.add_argument("--quick", dest="quick", action="store_true", default=True,
                    help="quick configurations (the default)")
  mode.add_argument("--full", dest="quick", action="store_false", help="paper-scale configurations")
  p.add_argument("--format", choices=["table", "json", "markdown"], default="table")
  p.add_argument("--figures", default="figures", help="folder for figures and REPORT.md")
  p.add_argument("--study", action="append", help="only this study (repeatable)")
  p.add_argument("--x64", action=argparse.BooleanOptionalAction, default=True,
                 help="compute in float64 (default: on)")
  p.set_defaults(func=cmd_verify)
  args = parser.parse_args(argv)
  return args.func(args)


if __name__ == "__main__":
  sys.exit(main())
