"""Exceptions raised at lamina's public boundary.

Every error a user can cause by bad input is an :class:`InputError` (also a :class:`ValueError`) whose message
names the argument and the accepted range; a checkpoint that cannot be trusted raises :class:`CheckpointError`.
The CLI turns any :class:`LaminaError` into one line on stderr and exit code 2.
"""

from __future__ import annotations


class LaminaError(Exception):
    """Base class of the errors lamina raises on purpose."""


class InputError(LaminaError, ValueError):
    """An argument, file or table does not meet the documented contract."""


class CheckpointError(LaminaError):
    """A checkpoint is missing, corrupt, of another version, or of another kind of model."""


class OutOfDomainWarning(UserWarning):
    """A model was called on inputs outside the box it was constructed or trained for (lamina.seq)."""


class LipschitzWarning(UserWarning):
    """A Lipschitz constant passed by the user is below the target's own (proven) bound (lamina.seq)."""
