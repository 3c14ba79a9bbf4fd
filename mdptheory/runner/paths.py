"""Path checks for the results store and the figures: nothing is read or written outside the chosen folder.

Three kinds of input become paths:

* a *name* (a study's ``NAME``, a figure's stem): one path component, checked by :func:`check_name`;
* a *cell key* (a 16-hex-digit hash): checked by ``store.check_cell_key``;
* a *folder* the user chooses (``--out``, ``--figures``, ``run_sweep(out=...)``): any path, checked by
  :func:`check_folder` (not empty, no NUL byte, not an existing file).

:func:`inside` then checks that a path below a folder, with every symlink resolved, stays inside it, so
a study folder or cell folder that is a symlink leading elsewhere is refused rather than followed. Every
check raises :class:`~mdptheory.errors.UnsafePathError` (a ``ParameterError``) before anything is written.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from mdptheory.errors import UnsafePathError

NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,99}$")


def check_name(name: Any, what: str) -> str:
  """Returns ``name`` if it is one safe path component, else raises UnsafePathError.

  A safe name is 1 to 100 characters among letters, digits, ``_`` and ``-``, not starting with ``-``:
  no path separator, no ``.`` or ``..``, no leading dot (hidden and temporary files of the store start
  with one), no NUL byte, no spaces.

  Args:
    name: the candidate.
    what: what it names, for the message (e.g. ``"study NAME"``).
  """
  if not isinstance(name, str):
    raise UnsafePathError(f"{what} must be a str, got {type(name).__name__} {name!r}")
  if not NAME_RE.match(name):
    why = ("contains a NUL byte" if "\0" in name else
           "contains a path separator" if ("/" in name or "\\" in name or os.sep in name) else
           "is empty" if not name else
           "is a relative path component" if name in (".", "..") else
           "starts with a dot" if name.startswith(".") else
           "has characters other than letters, digits, '_' and '-', or is longer than 100")
    raise UnsafePathError(f"{what} {name!r} {why}; it names a single folder or file, so use 1-100 letters, "
                          f"digits, '_' or '-' (e.g. 'rb_contraction')")
  return name


def check_folder(folder: Any, what: str) -> Path:
  """Returns ``folder`` as a Path if it can be a folder to write into, else raises UnsafePathError.

  Any absolute or relative path is accepted (it is the folder the user chose); refused are an empty
  string, a NUL byte, a value that is not a str or PathLike, and a path that exists and is not a folder.
  """
  if not isinstance(folder, (str, os.PathLike)):
    raise UnsafePathError(f"{what} must be a folder path (str or PathLike), got {type(folder).__name__} "
                          f"{folder!r}")
  text = os.fspath(folder)
  if isinstance(text, bytes):
    raise UnsafePathError(f"{what} must be a str path, got bytes {text!r}")
  if not text.strip():
    raise UnsafePathError(f"{what} is empty; give a folder, e.g. {what}=results")
  if "\0" in text:
    raise UnsafePathError(f"{what} {text!r} contains a NUL byte; give a plain folder path")
  path = Path(text)
  if path.exists() and not path.is_dir():
    raise UnsafePathError(f"{what} {text!r} exists and is not a folder; give a folder (it is created if missing)")
  return path


def inside(root: Path, path: Path, what: str) -> Path:
  """Returns ``path`` if it stays inside ``root`` once every symlink is resolved, else raises UnsafePathError.

  ``path`` need not exist; a missing path is inside iff its nearest existing ancestor resolves inside.
  """
  real_root = Path(os.path.realpath(root))
  real = Path(os.path.realpath(path))
  if real != real_root and real_root not in real.parents:
    below = [p for p in (path, *path.parents) if Path(root) in p.parents]   # the components under root
    link = next((p for p in below if p.is_symlink()), None)
    how = f" ({link} is a symlink to {os.readlink(link)})" if link is not None else ""
    raise UnsafePathError(f"{what} {path} resolves to {real}, outside {real_root}{how}; refusing to follow it. "
                          f"Remove the link or choose another folder")
  return path
