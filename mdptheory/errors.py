"""Error classes raised at the public boundary of mdptheory.

Every error names the offending value (an index, a shape, a parameter) and
says how to fix it. All of them subclass :class:`ValueError`; the ones that
can be caused by a value of the wrong type also subclass :class:`TypeError`,
so ``except ValueError`` catches every validation failure.
"""

from __future__ import annotations


class MDPTheoryError(ValueError):
  """Base class of every validation error raised by mdptheory."""


class InvalidMDPError(MDPTheoryError):
  """The transition kernel, reward or initial distribution is not a valid MDP.

  Examples: a row of P that does not sum to 1, a negative probability, an
  initial distribution that does not sum to 1.
  """


class InvalidGameError(InvalidMDPError):
  """A preference game is invalid: preferences outside [0, 1], P[i, j] + P[j, i] != 1, a diagonal
  other than 1/2, or context weights / a reference policy off the simplex.

  Subclasses :class:`InvalidMDPError`, so ``except InvalidMDPError`` still catches it.
  """


class ShapeError(MDPTheoryError):
  """An array has the wrong rank, shape or layout."""


class ParameterError(MDPTheoryError, TypeError):
  """A hyperparameter is out of range or of the wrong type (gamma, tau, ...)."""


class UnsafePathError(ParameterError):
  """A study name, cell key or folder would read or write outside the chosen results folder.

  Examples: a name with a path separator, ``..``, a NUL byte or a leading dot, an empty folder name, or a
  study folder that is a symlink leading out of the results folder. Raised before anything is written.
  """


class SupportMismatchError(MDPTheoryError):
  """A policy puts mass where a reference policy has none (an infinite KL)."""


class NonFiniteError(MDPTheoryError):
  """An input contains NaN or inf."""


class MemoryBudgetError(MDPTheoryError, MemoryError):
  """A dense array would exceed the memory budget; raised before allocation."""


class DTypeError(MDPTheoryError, TypeError):
  """An array has a dtype that cannot hold probabilities or values."""


class PrecisionWarning(UserWarning):
  """The requested accuracy is beyond what the dtype can represent (e.g. float32 with gamma close to 1).

  Emitted before the run by :func:`mdptheory.validate.warn_if_precision_insufficient`; the message names
  the quantity and suggests float64. Turn it into an error with
  ``warnings.simplefilter("error", PrecisionWarning)``.
  """
