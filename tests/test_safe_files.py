"""Safe files: no unpickling or code evaluation, nothing written outside the chosen folder, atomic writes.

* The package reads its files with json (and parquet through pyarrow) only: no pickle, yaml, eval or exec
  (an AST scan of mdptheory/, envs/ and studies/). Process pools and Ray pickle tasks in transit; nothing
  pickled is written to or read from disk.
* A study NAME, a cell key, ``out``/``--out`` or ``--figures`` that would write outside the chosen folder
  (``../x``, absolute paths, ``a/../../b``, NUL bytes, separators in a name, symlinks leading out) is
  refused with :class:`mdptheory.errors.UnsafePathError` (a ``ParameterError``) before anything is written.
* Figures and the CSV behind them are written atomically (temp file, fsync, ``os.replace``): an
  interrupted save leaves the previous file and no temp file, and a symlink in the way is replaced, never
  written through. The store's own kill/interrupt/full-disk tests are in tests/test_faults.py.
"""

from __future__ import annotations

import ast
import os
import stat
import sys
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure

import _toy_study as toy
from mdptheory import cli, plotting
from mdptheory.errors import ParameterError, UnsafePathError
from mdptheory.runner import cell_hash, expand, load_results, read_cell, run_sweep, store, study_dir
from mdptheory.runner.paths import check_folder, check_name
from mdptheory.studies import STUDIES

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIRS = ("mdptheory", "envs", "studies")
FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal", "yaml",
                     "ruamel", "torch"}
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__", "execfile", "input"}
FORBIDDEN_ATTRS = {"read_pickle", "to_pickle", "load_pickle", "unsafe_load", "full_load"}
BAD_NAMES = ["../x", "/abs/x", "a/../../b", "a/b", "a\\b", "a\0b", "", ".", "..", ".hidden", "-rf", "a b",
             "x" * 101]


def sweep(cells, out, **kwargs):
  kwargs.setdefault("progress", False)
  kwargs.setdefault("log", None)
  return run_sweep(toy, cells, out=out, **kwargs)


def files_under(path: Path) -> list[Path]:
  return sorted(path.rglob("*")) if path.exists() else []


# ----------------------------------------------------------------------------- no pickle, no eval


def _violations(path: Path) -> list[str]:
  tree = ast.parse(path.read_text(), filename=str(path))
  found = []
  for node in ast.walk(tree):
    where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
    if isinstance(node, ast.Import):
      found += [f"{where} import {a.name}" for a in node.names if a.name.split(".")[0] in FORBIDDEN_MODULES]
    elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in FORBIDDEN_MODULES:
      found.append(f"{where} from {node.module} import ...")
    elif isinstance(node, ast.Call):
      if isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS:
        found.append(f"{where} {node.func.id}(...)")
      for kw in node.keywords:
        if kw.arg == "allow_pickle" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
          found.append(f"{where} allow_pickle={ast.unparse(kw.value)}")
      if isinstance(node.func, ast.Attribute) and node.func.attr == "load" and \
         isinstance(node.func.value, ast.Name) and node.func.value.id in ("np", "numpy"):
        found.append(f"{where} np.load(...) (may unpickle object arrays)")
    elif isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRS:
      found.append(f"{where} .{node.attr}")
  return found


def test_the_package_never_unpickles_or_evaluates_code():
  sources = [p for d in PACKAGE_DIRS for p in sorted((ROOT / d).rglob("*.py"))]
  assert len(sources) > 40 and any(p.name == "store.py" for p in sources)  # the scan sees the package
  violations = [v for p in sources for v in _violations(p)]
  assert violations == [], "\n".join(violations)


def test_the_scan_catches_each_forbidden_pattern(tmp_path, monkeypatch):
  """The scan above can fail: each pattern in a scratch file is reported."""
  bad = tmp_path / "bad.py"
  bad.write_text("import pickle\nfrom yaml import load\nimport numpy as np\nimport pandas as pd\n"
                 "eval('1')\nexec('x = 1')\nnp.load('a.npy', allow_pickle=True)\npd.read_pickle('a')\n")
  monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
  found = " | ".join(_violations(bad))
  for fragment in ("import pickle", "from yaml", "eval(", "exec(", "allow_pickle=True", "np.load", ".read_pickle"):
    assert fragment in found, found


# ----------------------------------------------------------------------------- names, keys, folders


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_a_study_name_that_is_not_one_safe_folder_name_is_refused_before_anything_is_written(
    name, tmp_path, monkeypatch):
  cells = expand(toy, quick=True)
  monkeypatch.setattr(toy, "NAME", name)
  out = tmp_path / "results"
  with pytest.raises(UnsafePathError, match=r"NAME .* (contains|is empty|is a relative|starts with|has char)"):
    sweep(cells, out)
  with pytest.raises(ParameterError):  # UnsafePathError is a ParameterError
    study_dir(out, toy)
  assert files_under(tmp_path) == []   # not even the results folder
  assert not Path("/abs/x").exists()


def test_safe_names_pass_and_the_messages_say_why_others_fail():
  for name in ("rb_contraction", "toy", "np-rates_2", "_private", "x" * 100):
    assert check_name(name, "study NAME") == name
  for name, why in (("../x", "path separator"), ("a\0b", "NUL byte"), ("", "is empty"), ("..", "relative path"),
                    (".lock", "starts with a dot"), ("a b", "other than letters")):
    with pytest.raises(UnsafePathError, match=why):
      check_name(name, "study NAME")
  with pytest.raises(UnsafePathError, match="must be a str"):
    check_name(b"toy", "study NAME")


@pytest.mark.parametrize("key", ["../x", "/etc", "0123456789abcdef/../../x", "0123456789ABCDEF", "", "0" * 15,
                                 "0" * 17, None])
def test_cell_keys_must_be_16_hex_digits(key, tmp_path):
  with pytest.raises(UnsafePathError, match="is not 16 lowercase hex digits"):
    read_cell(tmp_path, key)
  assert files_under(tmp_path) == []


@pytest.mark.parametrize("out, match", [("", "is empty"), ("res\0ults", "NUL byte"), (b"results", "str"),
                                        (42, "folder path")])
def test_an_unusable_out_folder_is_refused(out, match, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  with pytest.raises(UnsafePathError, match=match):
    sweep(expand(toy, quick=True), out)
  assert files_under(tmp_path) == []


def test_an_out_folder_that_is_a_file_is_refused(tmp_path):
  (tmp_path / "results").write_text("not a folder")
  with pytest.raises(UnsafePathError, match="exists and is not a folder"):
    sweep(expand(toy, quick=True), tmp_path / "results")
  assert [p.name for p in files_under(tmp_path)] == ["results"]


# ----------------------------------------------------------------------------- symlinks leading out


@pytest.fixture
def outside(tmp_path) -> Path:
  """A folder beside the results folder, with one file, that nothing may touch."""
  p = tmp_path / "outside"
  p.mkdir()
  (p / "keep.txt").write_text("untouched")
  return p


def assert_untouched(outside: Path) -> None:
  assert [p.name for p in files_under(outside)] == ["keep.txt"]
  assert (outside / "keep.txt").read_text() == "untouched"


def test_a_study_folder_that_is_a_symlink_leading_out_is_refused(tmp_path, outside):
  out = tmp_path / "results"
  out.mkdir()
  (out / toy.NAME).symlink_to(outside, target_is_directory=True)
  with pytest.raises(UnsafePathError, match=r"outside .*is a symlink to .*refusing to follow"):
    sweep(expand(toy, quick=True), out)
  assert_untouched(outside)


def test_a_cell_folder_that_is_a_symlink_leading_out_is_refused_even_with_force(tmp_path, outside):
  cells = expand(toy, quick=True)
  assert sweep(cells, tmp_path / "results").computed == 4
  root = study_dir(tmp_path / "results", toy)
  h = cell_hash(toy, cells[1])
  for f in store.FILES:  # a copy of the cell outside, then the cell folder replaced by a link to it
    (outside / f).write_bytes((root / h / f).read_bytes())
  store._remove(root / h)
  (root / h).symlink_to(outside, target_is_directory=True)
  before = {p.name: p.read_bytes() for p in files_under(outside)}
  for force in (False, True):
    with pytest.raises(UnsafePathError, match=rf"cell folder .*{h}.* outside"):
      sweep(cells, tmp_path / "results", force=force)
  with pytest.raises(UnsafePathError):
    load_results(toy, cells, tmp_path / "results")
  assert {p.name: p.read_bytes() for p in files_under(outside)} == before
  assert not store.is_cell_dir(root / h)  # a symlink is never taken for a cell (e.g. by the index)


def test_a_lock_file_that_is_a_symlink_is_refused_and_its_target_kept(tmp_path, outside):
  root = study_dir(tmp_path / "results", toy)
  root.mkdir(parents=True)
  (root / store.LOCK_NAME).symlink_to(outside / "keep.txt")
  with pytest.raises(UnsafePathError, match="lock file .* is a symlink"):
    sweep(expand(toy, quick=True), tmp_path / "results")
  assert_untouched(outside)


def test_leftover_temp_symlinks_and_a_symlinked_index_are_replaced_not_followed(tmp_path, outside):
  root = study_dir(tmp_path / "results", toy)
  root.mkdir(parents=True)
  (root / f"{store.TMP_PREFIX}0123456789abcdef-x").symlink_to(outside, target_is_directory=True)
  (root / f"{store.OLD_PREFIX}0123456789abcdef-x").symlink_to(outside, target_is_directory=True)
  (root / store.INDEX_NAME).symlink_to(outside / "keep.txt")
  assert sweep(expand(toy, quick=True), tmp_path / "results").computed == 4
  assert_untouched(outside)
  assert not [p for p in root.iterdir() if p.name.startswith((store.TMP_PREFIX, store.OLD_PREFIX))]
  assert not (root / store.INDEX_NAME).is_symlink() and (root / store.INDEX_NAME).stat().st_size > 0


# ----------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize("extra, fragment", [
    (["--out", ""], "--out is empty"),
    (["--out", "res\0ults"], "NUL byte"),
    (["--figures", "fig\0s"], "NUL byte"),
    (["--out", "afile"], "exists and is not a folder"),
])
def test_the_cli_refuses_unusable_folders_before_any_work(extra, fragment, tmp_path, monkeypatch, capsys):
  monkeypatch.chdir(tmp_path)
  Path("afile").write_text("x")
  monkeypatch.setattr(toy, "CALLS", {"run": 0, "run_batch": 0, "batch_sizes": []})
  monkeypatch.setitem(STUDIES, "toy", "_toy_study")   # the runner's synthetic study, registered
  code = cli.main(["run", "toy", "--quick", "--no-progress"] + extra)
  err = capsys.readouterr().err
  assert code == 2 and "mdptheory: error:" in err and fragment in err, err
  assert toy.CALLS["run"] == toy.CALLS["run_batch"] == 0
  assert [p.name for p in files_under(tmp_path)] == ["afile"]


@pytest.mark.parametrize("study", ["../toy", "/tmp/toy", "toy/../../x"])
def test_the_cli_takes_only_registered_study_names(study, tmp_path, monkeypatch, capsys):
  monkeypatch.chdir(tmp_path)
  assert cli.main(["run", study, "--quick", "--no-progress"]) == 2
  assert f"unknown study {study!r}; registered studies:" in capsys.readouterr().err
  assert files_under(tmp_path) == []


# ----------------------------------------------------------------------------- atomic figure writes


def _figure(title: str) -> Figure:
  fig = Figure(figsize=(2, 2))
  fig.add_subplot().set_title(title)
  return fig


def test_an_interrupted_save_keeps_the_previous_files_and_leaves_no_temp_file(tmp_path, monkeypatch):
  data = pd.DataFrame({"iteration": [0, 1], "value": [1.0, 0.5]})
  stem = tmp_path / "figs" / "study"
  first = plotting.save_figure(_figure("first"), data, stem)
  old = {p.name: p.read_bytes() for p in first}
  real = Figure.savefig

  def killed_during_pdf(self, fname, *args, format=None, **kwargs):
    if format == "pdf":
      fname.write(b"%PDF-1.4 half a fi")   # some bytes reach the temp file, then the run is interrupted
      raise KeyboardInterrupt
    return real(self, fname, *args, format=format, **kwargs)

  monkeypatch.setattr(Figure, "savefig", killed_during_pdf)
  with pytest.raises(KeyboardInterrupt):
    plotting.save_figure(_figure("second"), data.assign(value=[2.0, 1.0]), stem)
  names = sorted(p.name for p in (tmp_path / "figs").iterdir())
  assert names == ["study.csv", "study.pdf", "study.png"]                  # no .tmp file left
  assert (stem.with_suffix(".pdf")).read_bytes() == old["study.pdf"]         # the previous PDF, whole
  assert (stem.with_suffix(".csv")).read_bytes() == old["study.csv"]         # not reached: previous CSV
  monkeypatch.undo()
  again = plotting.save_figure(_figure("second"), data.assign(value=[2.0, 1.0]), stem)   # re-running completes
  assert again[1].read_bytes()[:5] == b"%PDF-" and b"2.0" in again[2].read_bytes()


def test_saved_files_get_the_usual_permissions_and_replace_symlinks(tmp_path, outside):
  (tmp_path / "figs").mkdir()
  (tmp_path / "figs" / "study.png").symlink_to(outside / "keep.txt")
  paths = plotting.save_figure(_figure("x"), pd.DataFrame({"a": [1]}), tmp_path / "figs" / "study")
  assert_untouched(outside)
  umask = os.umask(0)
  os.umask(umask)
  for p in paths:
    assert not p.is_symlink() and stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask, p
  with pytest.raises(ParameterError, match="NUL"):
    plotting.save_figure(_figure("x"), pd.DataFrame({"a": [1]}), tmp_path / "fi\0g")


def test_check_folder_accepts_any_path_the_user_chooses(tmp_path):
  assert check_folder(tmp_path / "new" / "results", "--out") == tmp_path / "new" / "results"
  assert check_folder(str(tmp_path), "--out") == tmp_path
  assert check_folder("relative/results", "--out") == Path("relative/results")
