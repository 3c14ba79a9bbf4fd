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


class ShapeError(MDPTheoryError):
  """An array has the wrong rank, shape or layout."""


class ParameterError(MDPTheoryError, TypeError):
  """A hyperparameter is out of range or of the wrong type (gamma, tau, ...)."""


class SupportMismatchError(MDPTheoryError):
  """A policy puts mass where a reference policy has none (an infinite KL)."""


class NonFiniteError(MDPTheoryError):
  """An input contains NaN or inf."""


class MemoryBudgetError(MDPTheoryError, MemoryError):
  """A dense array would exceed the memory budget; raised before allocation."""


class DTypeError(MDPTheoryError, TypeError):
  """An array has a dtype that cannot hold probabilities or values."""
