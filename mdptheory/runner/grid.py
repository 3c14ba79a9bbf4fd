"""Studies as grids of cells: resolve a study, expand its grid, name each cell by a hash.

A *study* is a module that follows the protocol below (DESIGN.md §4;
STYLE.md §5.9). A *cell* is one ``Config`` instance: one point of the study's
grid with one seed. Cells are named by :func:`cell_hash`, a hash of canonical
JSON of the study's name and version, the package version and every Config
field, so a stored result is found again exactly when nothing it depends on
changed.

The protocol:

* ``NAME: str`` (one folder name: letters, digits, ``_``, ``-``) and ``VERSION: str`` (bump VERSION
  when the results change);
* ``Config``: a frozen dataclass whose fields are scalars (int, float, str,
  bool) with defaults, one of them ``seed: int``; ``Config.quick()`` returns
  the base Config of quick mode;
* ``GRID`` and ``QUICK_GRID``: ``dict[field, tuple of values]``, the default
  sweeps (never over ``seed``); ``SEEDS`` and ``QUICK_SEEDS``: how many seeds;
* ``BATCH``: the fields (always including ``"seed"``) whose values may differ
  among the cells passed to one ``run_batch`` call;
* ``run(cfg) -> DataFrame``, optionally ``run_batch(cfgs) -> list[DataFrame]``
  (equal to ``[run(c) for c in cfgs]``, in one ``jit(vmap(...))`` call) and
  ``MONITOR`` (columns watched for NaN/inf; default: every float column not
  starting with ``bound_``), ``check(df)`` and ``plot(df)``;
* optional runner hints: ``MAX_BATCH`` (the most cells per ``run_batch`` call,
  default 256) and ``ITERATION`` (the index column a diverged cell is cut
  back along, default ``"iteration"``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import itertools
import json
import math
import numbers
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from mdptheory.errors import ParameterError
from mdptheory.runner import paths

ScalarType = type[int] | type[float] | type[str] | type[bool]
_SCALAR_TYPES = (bool, int, float, str)
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
_REQUIRED = ("NAME", "VERSION", "Config", "GRID", "QUICK_GRID", "SEEDS", "QUICK_SEEDS", "BATCH", "run")


def resolve_study(study: str | types.ModuleType) -> types.ModuleType:
  """Returns the study module for a module or a registry name, checked against the protocol.

  Args:
    study: a study module, or a name registered in ``mdptheory.studies.STUDIES``.

  Returns:
    The module.

  Raises:
    ParameterError: the name is not registered (the message lists the
      registered names), or the module does not follow the study protocol.
  """
  if isinstance(study, str):
    from mdptheory.studies import STUDIES
    try:
      path = STUDIES[study]
    except KeyError:
      raise ParameterError(f"unknown study {study!r}; registered studies: {sorted(STUDIES)}") from None
    study = importlib.import_module(path)
  if not isinstance(study, types.ModuleType):
    raise ParameterError(f"study must be a module or a registered name, got {type(study).__name__} {study!r}")
  validate_study(study)
  return study


def validate_study(study: types.ModuleType) -> None:
  """Raises ParameterError unless ``study`` follows the study protocol (see the module docstring)."""
  where = getattr(study, "__name__", repr(study))
  missing = [a for a in _REQUIRED if not hasattr(study, a)]
  if missing:
    raise ParameterError(f"study module {where} lacks {missing}; a study defines {list(_REQUIRED)} "
                         f"(and optionally run_batch, MONITOR)")
  paths.check_name(study.NAME, f"{where}.NAME")  # it names the study's results folder and figure files
  if not isinstance(study.VERSION, str) or not study.VERSION:
    raise ParameterError(f"{where}.VERSION must be a non-empty str, got {study.VERSION!r}")
  cfg = study.Config
  if not (isinstance(cfg, type) and dataclasses.is_dataclass(cfg) and cfg.__dataclass_params__.frozen):
    raise ParameterError(f"{where}.Config must be a frozen dataclass, got {cfg!r}")
  if not callable(getattr(cfg, "quick", None)):
    raise ParameterError(f"{where}.Config must define a quick() classmethod returning the quick-mode Config")
  ftypes = field_types(cfg)  # checks scalar types and defaults
  if ftypes.get("seed") is not int:
    raise ParameterError(f"{where}.Config must have a field `seed: int = 0`; fields: {list(ftypes)}")
  for attr in ("GRID", "QUICK_GRID"):
    grid = getattr(study, attr)
    if not isinstance(grid, Mapping):
      raise ParameterError(f"{where}.{attr} must be a dict field -> tuple of values, got {type(grid).__name__}")
    _check_keys(grid, ftypes, f"{where}.{attr}")
  for attr in ("SEEDS", "QUICK_SEEDS"):
    _check_seeds(getattr(study, attr), f"{where}.{attr}")
  batch = study.BATCH
  if isinstance(batch, str) or not isinstance(batch, Sequence) or "seed" not in batch:
    raise ParameterError(f"{where}.BATCH must be a tuple of Config fields including 'seed', got {batch!r}")
  unknown = [b for b in batch if b not in ftypes]
  if unknown:
    raise ParameterError(f"{where}.BATCH names unknown fields {unknown}; Config fields: {list(ftypes)}")
  monitor = getattr(study, "MONITOR", None)
  if monitor is not None and (isinstance(monitor, str) or not isinstance(monitor, Sequence)):
    raise ParameterError(f"{where}.MONITOR must be a tuple of column names, got {monitor!r}")
  for attr in ("run", "run_batch"):
    if hasattr(study, attr) and not callable(getattr(study, attr)):
      raise ParameterError(f"{where}.{attr} must be a function")


def field_types(config_cls: type) -> dict[str, ScalarType]:
  """Returns ``{field: type}`` for a study Config, in declaration order.

  Raises:
    ParameterError: a field has no default or is not an int, float, str or bool.
  """
  try:
    hints = typing.get_type_hints(config_cls)
  except Exception:  # unresolvable annotations: fall back on the defaults' types below
    hints = {}
  out = {}
  for f in dataclasses.fields(config_cls):
    if f.default is dataclasses.MISSING:
      raise ParameterError(f"{config_cls.__qualname__}.{f.name} has no default; every Config field needs one")
    t = hints.get(f.name, type(f.default))
    if t not in _SCALAR_TYPES:
      raise ParameterError(f"{config_cls.__qualname__}.{f.name} has type {t!r}; Config fields must be one of "
                           f"int, float, str, bool (sweep over tuples with GRID instead)")
    out[f.name] = t
  return out


def parse_set(items: Sequence[str] | None) -> dict[str, list[str]]:
  """Parses ``--set`` arguments into grid overrides.

  Example: ``parse_set(["tau=0.01,0.1", "gamma=0.9"]) == {"tau": ["0.01", "0.1"], "gamma": ["0.9"]}``.
  The values stay strings; :func:`expand` converts them to the fields' types.

  Args:
    items: strings ``field=v1,v2,...``.

  Returns:
    ``{field: [values]}`` in the order given.

  Raises:
    ParameterError: an item lacks ``=``, names no field, has no value, or a
      field is given twice.
  """
  out: dict[str, list[str]] = {}
  for item in items or ():
    key, sep, value = str(item).partition("=")
    key = key.strip()
    if not sep or not key:
      raise ParameterError(f"--set {item!r}: expected field=value[,value...], e.g. tau=0.01,0.1")
    if key in out:
      raise ParameterError(f"--set {key} is given twice ({out[key]} and {value!r}); list all values once: "
                           f"{key}=v1,v2")
    values = [v.strip() for v in value.split(",")]
    if value.strip() == "" or any(v == "" for v in values):
      raise ParameterError(f"--set {item!r}: empty value; expected {key}=v1,v2,...")
    out[key] = values
  return out


def expand(study: str | types.ModuleType, *, quick: bool, overrides: Mapping[str, str | Sequence] | None = None,
           seeds: int | None = None) -> list[Any]:
  """Returns the study's cells: the grid's product times seeds ``0..seeds-1``, in canonical order.

  The base is ``Config.quick()`` if ``quick`` else ``Config()``; the grid is
  ``QUICK_GRID`` or ``GRID`` updated by ``overrides``. The canonical order
  loops over the grid's fields in Config declaration order (the first field
  outermost), each field's values in the order listed, and the seed innermost.

  Args:
    study: a study module or registered name.
    quick: quick mode (``Config.quick()``, ``QUICK_GRID``, ``QUICK_SEEDS``).
    overrides: ``{field: values}``; values are a list of values or of strings,
      or one string ``"v1,v2"`` (as from the CLI's ``--set``), converted to the
      field's type.
    seeds: the number of seeds; default ``QUICK_SEEDS`` or ``SEEDS``.

  Returns:
    A list of ``study.Config``, one per cell.

  Raises:
    ParameterError: an unknown field, ``seed`` in the overrides, a value of the
      wrong type, an empty value list, duplicate values or ``seeds < 1``.
  """
  study = resolve_study(study)
  ftypes = field_types(study.Config)
  base = study.Config.quick() if quick else study.Config()
  if not isinstance(base, study.Config):
    raise ParameterError(f"{study.__name__}.Config.quick() must return a Config, got {base!r}")
  which = "QUICK_GRID" if quick else "GRID"
  grid: dict[str, tuple] = {}
  for key, values in getattr(study, which).items():
    grid[key] = _parse_values(key, values, ftypes, f"{study.__name__}.{which}")
  if overrides:
    _check_keys(overrides, ftypes, "--set", overrides=True)
    for key, values in overrides.items():
      grid[key] = _parse_values(key, values, ftypes, "--set")
  n_seeds = (study.QUICK_SEEDS if quick else study.SEEDS) if seeds is None else seeds
  _check_seeds(n_seeds, "seeds")
  fields = [f for f in ftypes if f in grid]
  cells = []
  for combo in itertools.product(*(grid[f] for f in fields)):
    point = dataclasses.replace(base, **dict(zip(fields, combo)))
    for seed in range(int(n_seeds)):
      cells.append(dataclasses.replace(point, seed=seed))
  return cells


def config_dict(cfg: Any) -> dict[str, Any]:
  """Returns the Config's fields as plain Python scalars of the declared types (floats stay floats)."""
  ftypes = field_types(type(cfg))
  out = {}
  for name, t in ftypes.items():
    value = getattr(cfg, name)
    if hasattr(value, "item") and not isinstance(value, _SCALAR_TYPES):  # numpy scalars
      value = value.item()
    if t is float and isinstance(value, numbers.Real) and not isinstance(value, bool):
      value = float(value)
    out[name] = value
  return out


def cell_payload(study: types.ModuleType, cfg: Any) -> dict[str, Any]:
  """The identity of a cell: the study's NAME and VERSION, the package version, the float precision
  (JAX x64 on or off: float32 and float64 results are different results) and every Config field."""
  import jax

  import mdptheory
  return {"study": study.NAME, "version": study.VERSION, "package": mdptheory.__version__,
          "dtype": "float64" if jax.config.jax_enable_x64 else "float32", "config": config_dict(cfg)}


def canonical_json(payload: Mapping[str, Any]) -> str:
  """JSON with sorted keys and no whitespace; floats are written by ``repr`` (0.1 stays 0.1)."""
  return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True)


def payload_hash(payload: Mapping[str, Any]) -> str:
  """The first 16 hex digits of the SHA-256 of :func:`canonical_json`."""
  return hashlib.sha256(canonical_json(payload).encode("ascii")).hexdigest()[:16]


def cell_hash(study: types.ModuleType, cfg: Any) -> str:
  """The name of a cell's folder: a hash of :func:`cell_payload`."""
  return payload_hash(cell_payload(study, cfg))


def _check_keys(mapping: Mapping, ftypes: Mapping[str, type], where: str, overrides: bool = False) -> None:
  for key in mapping:
    if key == "seed":
      hint = "use seeds (--seeds N) to choose the number of seeds" if overrides else "seeds come from SEEDS"
      raise ParameterError(f"{where}: `seed` cannot be swept; {hint}")
    if key not in ftypes:
      valid = [f for f in ftypes if f != "seed"]
      raise ParameterError(f"{where}: unknown field {key!r}; valid fields: {valid}")


def _check_seeds(n: Any, where: str) -> None:
  if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
    raise ParameterError(f"{where}={n!r} must be an integer >= 1")


def _parse_values(key: str, values: Any, ftypes: Mapping[str, type], where: str) -> tuple:
  if isinstance(values, str):
    values = [v.strip() for v in values.split(",")] if values.strip() else []
  elif not isinstance(values, (Sequence, set, frozenset)):
    values = [values]
  values = list(values)
  if not values:
    raise ParameterError(f"{where}: {key} has no values; give at least one, e.g. {key}=v1,v2")
  parsed = tuple(_parse_value(key, v, ftypes[key], where) for v in values)
  seen = []
  for v in parsed:
    if any(v == s and type(v) is type(s) for s in seen):
      raise ParameterError(f"{where}: {key} lists {v!r} more than once ({list(values)}); list each value once")
    seen.append(v)
  return parsed


def _parse_value(key: str, value: Any, t: type, where: str) -> Any:
  def bad() -> ParameterError:
    return ParameterError(f"{where}: {key}={value!r} is not a valid {t.__name__} (field {key} has type "
                          f"{t.__name__}" + ("; use one of true/false/yes/no/1/0)" if t is bool else ")"))
  if hasattr(value, "item") and not isinstance(value, (*_SCALAR_TYPES, str)):  # numpy scalars
    value = value.item()
  if isinstance(value, str):
    s = value.strip()
    if t is str:
      if not s:
        raise bad()
      return s
    if t is bool:
      if s.lower() in _TRUE:
        return True
      if s.lower() in _FALSE:
        return False
      raise bad()
    try:
      out = int(s) if t is int else float(s)
    except ValueError:
      raise bad() from None
    if t is float and math.isnan(out):
      raise bad()
    return out
  if t is bool:
    if isinstance(value, bool):
      return value
    raise bad()
  if isinstance(value, bool):
    raise bad()
  if t is int:
    if isinstance(value, numbers.Integral):
      return int(value)
    raise bad()
  if t is float:
    if isinstance(value, numbers.Real) and not math.isnan(value):
      return float(value)
    raise bad()
  if t is str and isinstance(value, str):
    return value
  raise bad()
