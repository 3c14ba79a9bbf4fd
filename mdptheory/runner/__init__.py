"""The sweep runner: study grid -> cells -> batched execution -> stored cells -> one tidy frame.

Typical use (what ``mdptheory run`` does)::

  from mdptheory import runner
  study = runner.resolve_study("rb_contraction")
  cells = runner.expand(study, quick=True, overrides=runner.parse_set(["tau=0.01,0.1"]), seeds=5)
  summary = runner.run_sweep(study, cells, out="results", backend="local", workers=2)
  print(summary.report())          # computed N, reused M, failed/diverged cells
  results = study.check(summary.frame)

Modules: :mod:`~mdptheory.runner.grid` (the study protocol, grids, cell
hashes), :mod:`~mdptheory.runner.store` (the on-disk layout, atomic writes,
the lock), :mod:`~mdptheory.runner.backends` (in-process, process pool, Ray),
:mod:`~mdptheory.runner.execute` (:func:`run_sweep`, :func:`rerun_cell`) and
:mod:`~mdptheory.runner.paths` (names and folders that stay inside the results folder).
"""

from mdptheory.runner.backends import BACKENDS
from mdptheory.runner.execute import SweepSummary, rerun_cell, run_sweep
from mdptheory.runner.grid import (cell_hash, cell_payload, config_dict, expand, field_types, parse_set,
                                   resolve_study, validate_study)
from mdptheory.runner.store import (STATUSES, StoreError, StoredCell, StoreLockedError, StudyLock, load_results,
                                    read_cell, study_dir)

__all__ = [
    "BACKENDS", "STATUSES", "StoreError", "StoreLockedError", "StoredCell", "StudyLock", "SweepSummary",
    "cell_hash", "cell_payload", "config_dict", "expand", "field_types", "load_results", "parse_set",
    "read_cell", "rerun_cell", "resolve_study", "run_sweep", "study_dir", "validate_study",
]
