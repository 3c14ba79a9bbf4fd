"""The results store: one folder per cell, written so that a killed run leaves no partial cell.

Layout (DESIGN.md §4)::

  <out>/<study NAME>/
    .lock                  fcntl lock: one writer per study folder (holds the writer's pid)
    index.parquet          one row per cell folder (hash, status, config fields); rebuilt after each run
    <cell-hash>/           16 hex digits, see grid.cell_hash
      config.json          the cell's identity: study, version, package, config, hash
      result.parquet       the cell's tidy frame (empty for a failed cell)
      meta.json            status, message/traceback, versions, dtype, device, seed, git commit, wall time
    .tmp-<hash>-XXXX/      a cell being assembled (invisible; removed by the next run)
    .old-<hash>-XXXX/      a cell being replaced (invisible; removed by the next run)

Write protocol: every file is written to a temp file in its folder, fsynced
and moved into place with ``os.replace``; a cell's three files are first
assembled in a hidden temp folder in the study folder, which is then renamed
to ``<cell-hash>`` (an existing folder is first renamed aside), and the study
folder is fsynced. A cell folder is therefore either absent or complete.
Only one process at a time writes a study folder (:class:`StudyLock`).

Paths: the study folder is ``<out>/<NAME>`` with NAME a single safe name, cell folders are named by
their hash only, and a study folder, cell folder or lock file that is a symlink leading out of the
results folder is refused (:class:`~mdptheory.errors.UnsafePathError`), never followed (runner.paths).
"""

from __future__ import annotations

import contextlib
import errno as errno_
import fcntl
import io
import json
import os
import re
import shutil
import socket
import tempfile
import types
import uuid
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from mdptheory.errors import UnsafePathError
from mdptheory.runner import grid, paths

STATUSES = ("complete", "failed", "diverged")
FILES = ("config.json", "result.parquet", "meta.json")
TMP_PREFIX = ".tmp-"
OLD_PREFIX = ".old-"
LOCK_NAME = ".lock"
INDEX_NAME = "index.parquet"
_CELL_RE = re.compile(r"^[0-9a-f]{16}$")
_UMASK = os.umask(0o022)  # read the process umask (once, at import) so stored files get the usual modes
os.umask(_UMASK)


class StoreError(OSError):
  """A results folder could not be written (disk full, permissions, ...); stored cells are intact."""


class StoreLockedError(StoreError):
  """Another process is writing the same study folder."""


class StoredCell(NamedTuple):
  """A cell read back from the store."""
  hash: str
  status: str                 # one of STATUSES
  frame: pd.DataFrame         # the stored rows (empty for a failed cell)
  config: dict[str, Any]      # the contents of config.json
  meta: dict[str, Any]        # the contents of meta.json


def study_dir(out: str | os.PathLike, study: types.ModuleType) -> Path:
  """``<out>/<study.NAME>``, checked: nothing written there can land outside ``out``.

  Raises:
    UnsafePathError: ``out`` is empty, holds a NUL byte or is an existing file; NAME is not a single
      safe name (see runner.paths.check_name); or ``<out>/<NAME>`` is a symlink leading out of ``out``.
  """
  out = paths.check_folder(out, "out")
  root = out / paths.check_name(study.NAME, "study NAME")
  return paths.inside(out, root, "the study folder")


def check_cell_key(h: Any) -> str:
  """Returns ``h`` if it is a cell key (16 lowercase hex digits), else raises UnsafePathError."""
  if not isinstance(h, str) or not _CELL_RE.match(h):
    raise UnsafePathError(f"cell key {h!r} is not 16 lowercase hex digits (as made by runner.cell_hash); "
                          f"a cell key names one folder of the study folder")
  return h


def cell_dir(root: Path, h: str) -> Path:
  """``root/<h>`` for a valid cell key, refused if it is a symlink leading out of ``root``."""
  return paths.inside(root, root / check_cell_key(h), "cell folder")


def is_cell_dir(path: Path) -> bool:
  """Whether ``path`` is a visible cell folder (named by a 16-hex-digit hash; symlinks are not)."""
  return bool(_CELL_RE.match(path.name)) and path.is_dir() and not path.is_symlink()


def _write_file(path: Path, data: bytes) -> None:
  """Writes ``data`` to ``path`` atomically: temp file in the same folder, fsync, os.replace."""
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      os.fchmod(f.fileno(), 0o666 & ~_UMASK)  # mkstemp creates 0600
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.unlink(tmp)
    raise


def _fsync_dir(path: Path) -> None:
  fd = os.open(path, os.O_RDONLY)
  try:
    os.fsync(fd)
  except OSError as e:  # some file systems cannot fsync a directory
    if e.errno not in (errno_.EINVAL, errno_.ENOTSUP, errno_.EBADF):
      raise
  finally:
    os.close(fd)


def frame_to_parquet(frame: pd.DataFrame) -> bytes:
  """The parquet bytes of a frame (without its index)."""
  buf = io.BytesIO()
  frame.reset_index(drop=True).to_parquet(buf, index=False)
  return buf.getvalue()


def parquet_to_frame(data: bytes) -> pd.DataFrame:
  return pd.read_parquet(io.BytesIO(data))


def _json_text(obj: Any, indent: str = "") -> str:
  """JSON with sorted keys, two-space indents, and each list of scalars on one line."""
  inner = indent + "  "
  if isinstance(obj, Mapping) and obj:
    items = [f"{inner}{json.dumps(str(k))}: {_json_text(v, inner)}"
             for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))]
    return "{\n" + ",\n".join(items) + "\n" + indent + "}"
  if isinstance(obj, (list, tuple)) and obj and any(isinstance(v, (Mapping, list, tuple)) for v in obj):
    return "[\n" + ",\n".join(inner + _json_text(v, inner) for v in obj) + "\n" + indent + "]"
  return json.dumps(obj, default=str)


def _json_bytes(obj: Any) -> bytes:
  return (_json_text(obj) + "\n").encode()


def write_cell(root: Path, payload: Mapping[str, Any], frame_bytes: bytes, meta: Mapping[str, Any]) -> Path:
  """Stores one cell under ``root/<hash>`` so that it is either absent or complete.

  Args:
    root: the study folder.
    payload: the cell's identity (grid.cell_payload); its hash names the folder.
    frame_bytes: the result frame as parquet (frame_to_parquet).
    meta: the contents of meta.json.

  Returns:
    The cell folder.

  Raises:
    StoreError: a write failed (e.g. ENOSPC); the cell is not visible and the
      other cells are untouched (a replaced cell is restored where possible).
  """
  h = grid.payload_hash(payload)
  final = cell_dir(root, h)
  tmp = old = None
  try:
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{h}-", dir=root))
    os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp creates 0700
    _write_file(tmp / "result.parquet", frame_bytes)
    _write_file(tmp / "meta.json", _json_bytes(dict(meta)))
    _write_file(tmp / "config.json", _json_bytes({**payload, "hash": h}))
    _fsync_dir(tmp)
    if final.exists():
      old = root / f"{OLD_PREFIX}{h}-{uuid.uuid4().hex[:8]}"
      os.replace(final, old)
    os.replace(tmp, final)
    tmp = None
    _fsync_dir(root)
  except BaseException as e:
    if tmp is not None:
      shutil.rmtree(tmp, ignore_errors=True)
    if old is not None and not final.exists():
      with contextlib.suppress(OSError):
        os.replace(old, final)
    if isinstance(e, OSError) and not isinstance(e, StoreError):
      raise StoreError(e.errno, f"could not store cell {h} ({payload.get('config')}) under {root}: "
                                f"{e.strerror or e}. The cells stored so far are intact; fix the cause "
                                f"(e.g. free disk space) and re-run the same command to resume") from e
    raise
  if old is not None:
    _remove(old)
  return final


def _remove(path: Path) -> None:
  """Removes a folder, or only the link if it is a symlink (never what it points to)."""
  if path.is_symlink():
    with contextlib.suppress(OSError):
      path.unlink()
  else:
    shutil.rmtree(path, ignore_errors=True)


def read_cell(root: Path, h: str, expected: Mapping[str, Any] | None = None) -> StoredCell | None:
  """Reads ``root/<h>``; returns None if it is missing, unreadable or stale.

  Stale means: config.json does not hash to the folder's name, or differs
  from ``expected`` (the payload the caller wants), or the status is unknown.

  Raises:
    UnsafePathError: ``h`` is not a cell key, or ``root/h`` is a symlink leading out of ``root``.
  """
  folder = cell_dir(root, h)
  if not folder.is_dir():
    return None
  try:
    config = json.loads((folder / "config.json").read_text())
    meta = json.loads((folder / "meta.json").read_text())
    stored = {k: v for k, v in config.items() if k != "hash"}
    if config.get("hash") != h or grid.payload_hash(stored) != h:
      return None
    if expected is not None and grid.canonical_json(stored) != grid.canonical_json(expected):
      return None
    status = meta.get("status")
    if status not in STATUSES:
      return None
    frame = pd.read_parquet(folder / "result.parquet")
  except Exception:  # missing or corrupt files (OSError, JSON and pyarrow errors): recompute the cell
    return None
  return StoredCell(h, status, frame, config, meta)


def clean_temp(root: Path) -> list[Path]:
  """Removes temp folders and files left by killed runs; call only while holding the lock.

  A cell renamed aside for replacement (``.old-<hash>-*``) whose replacement
  never arrived is moved back (it is then checked like any stored cell).
  """
  removed = []
  if not root.is_dir():
    return removed
  for p in sorted(root.iterdir()):
    name = p.name
    if name.startswith((TMP_PREFIX, OLD_PREFIX)) and p.is_symlink():  # never ours: drop the link only
      with contextlib.suppress(OSError):
        p.unlink()
        removed.append(p)
      continue
    if name.startswith(OLD_PREFIX) and p.is_dir():
      h = name[len(OLD_PREFIX):].split("-")[0]
      if _CELL_RE.match(h) and not (root / h).exists():
        with contextlib.suppress(OSError):
          os.replace(p, root / h)
          continue
    if name.startswith((TMP_PREFIX, OLD_PREFIX)) and p.is_dir():
      shutil.rmtree(p, ignore_errors=True)
      removed.append(p)
    elif name.startswith(".") and name.endswith(".tmp") and p.is_file():
      with contextlib.suppress(OSError):
        p.unlink()
        removed.append(p)
  return removed


def rebuild_index(root: Path) -> Path | None:
  """Rewrites ``root/index.parquet`` from the cell folders (one row per cell); returns its path.

  The index is a convenience for browsing; nothing reads it. Returns None
  (with a warning) if it cannot be written.
  """
  rows = []
  for p in sorted(root.iterdir()) if root.is_dir() else ():
    if not is_cell_dir(p):
      continue
    row: dict[str, Any] = {"hash": p.name}
    try:
      config = json.loads((p / "config.json").read_text())
      meta = json.loads((p / "meta.json").read_text())
      row.update(status=str(meta.get("status")), study=config.get("study"), version=config.get("version"),
                 package=config.get("package"), wall_time_s=meta.get("wall_time_s"))
      for k, v in (config.get("config") or {}).items():
        row.setdefault(k, v)
    except (OSError, ValueError):
      row["status"] = "unreadable"
    rows.append(row)
  frame = pd.DataFrame(rows, columns=None if rows else ["hash", "status"])
  try:
    data = frame_to_parquet(frame)
  except Exception:  # columns whose type changed between versions: store them as text
    frame = frame.astype({c: "str" for c in frame.columns if frame[c].dtype == object})
    try:
      data = frame_to_parquet(frame)
    except Exception as e:
      warnings.warn(f"could not build {root / INDEX_NAME}: {e}", stacklevel=2)
      return None
  try:
    _write_file(root / INDEX_NAME, data)
  except OSError as e:
    warnings.warn(f"could not write {root / INDEX_NAME}: {e}", stacklevel=2)
    return None
  return root / INDEX_NAME


def load_results(study: str | types.ModuleType, cells: Sequence[Any], out: str | os.PathLike = "results", *,
                 include_diverged: bool = False) -> pd.DataFrame:
  """Concatenates the stored frames of the complete cells among ``cells``, in the order of ``cells``.

  Missing, stale and failed cells are skipped (diverged ones too unless
  ``include_diverged``). Nothing is computed or written.

  Args:
    study: the study module or registered name.
    cells: the cells (``study.Config`` instances), e.g. from grid.expand.
    out: the results root.
    include_diverged: also include the finite prefix kept for diverged cells.

  Returns:
    The concatenated frame (empty if no cell is stored).

  Raises:
    UnsafePathError: ``out`` is unusable, or the study folder or a cell folder is a symlink leading out.
  """
  study = grid.resolve_study(study)
  root = study_dir(out, study)
  wanted = ("complete", "diverged") if include_diverged else ("complete",)
  frames = []
  for cfg in cells:
    payload = grid.cell_payload(study, cfg)
    cell = read_cell(root, grid.payload_hash(payload), payload)
    if cell is not None and cell.status in wanted:
      frames.append(cell.frame)
  return concat_frames(frames)


def concat_frames(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
  frames = list(frames)
  if not frames:
    return pd.DataFrame()
  nonempty = [f for f in frames if len(f.columns)] or frames[:1]
  return pd.concat(nonempty, ignore_index=True)


class StudyLock:
  """An exclusive, non-blocking ``fcntl.flock`` on ``<study folder>/.lock``.

  The lock is released by the kernel when the holding process dies, so a
  killed run never leaves the folder locked. Use as a context manager.
  """

  def __init__(self, root: str | os.PathLike):
    self.root = Path(root)
    self.path = self.root / LOCK_NAME
    self._fd: int | None = None

  def acquire(self) -> "StudyLock":
    """Takes the lock or raises StoreLockedError naming the folder and the holder's pid."""
    self.root.mkdir(parents=True, exist_ok=True)
    try:  # O_NOFOLLOW: a lock file that is a symlink would make the truncate below write elsewhere
      fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as e:
      if e.errno != errno_.ELOOP:
        raise
      raise UnsafePathError(f"lock file {self.path} is a symlink; refusing to follow it. Remove it (the runner "
                            f"creates a plain file) and re-run") from None
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      os.close(fd)
      if e.errno not in (errno_.EWOULDBLOCK, errno_.EAGAIN, errno_.EACCES):
        raise
      holder = self.holder()
      who = f"pid {holder}" if holder else "another process (pid unknown)"
      raise StoreLockedError(errno_.EWOULDBLOCK,
                             f"results folder {self.root} is being written by {who}; wait for that run to "
                             f"finish (or stop it), or use another --out folder. Lock file: {self.path}") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
    self._fd = fd
    return self

  def holder(self) -> str | None:
    """The pid (and host) written by the current holder, if readable."""
    try:
      text = self.path.read_text().strip()
    except OSError:
      return None
    if not text:
      return None
    pid, _, host = text.partition(" ")
    return f"{pid} on {host}" if host and host != socket.gethostname() else pid

  def release(self) -> None:
    if self._fd is None:
      return
    fd, self._fd = self._fd, None
    try:
      with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
      fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
      os.close(fd)

  @property
  def held(self) -> bool:
    return self._fd is not None

  def __enter__(self) -> "StudyLock":
    return self.acquire()

  def __exit__(self, *exc) -> None:
    self.release()
