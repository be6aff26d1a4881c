"""Exceptions of the empirical companion (clear messages, standard bases)."""

from __future__ import annotations


class EmpiricalError(Exception):
    """Base class of every error raised on purpose by ``twolayer.empirical``."""


class _MessageKeyError(KeyError):
    """KeyError whose ``str`` is the message itself (KeyError quotes it)."""

    def __str__(self) -> str:  # pragma: no cover - trivial
        return str(self.args[0]) if self.args else ""


class DataNotFoundError(EmpiricalError, FileNotFoundError):
    """A data bundle, folder or torchvision dataset is missing."""


class UnknownDatasetError(EmpiricalError, _MessageKeyError):
    """A dataset (shift) name that is not registered."""


class UnknownArchError(EmpiricalError, _MessageKeyError):
    """A backbone architecture name that is not registered."""


class CheckpointError(EmpiricalError, ValueError):
    """A checkpoint file that cannot be used (format, shapes)."""


class CheckpointKeyError(CheckpointError, _MessageKeyError):
    """A checkpoint whose parameter names do not match the network."""

    def __str__(self) -> str:  # KeyError first in the MRO of _MessageKeyError
        return str(self.args[0]) if self.args else ""


class ResultsSchemaError(EmpiricalError, ValueError):
    """A results record that does not follow the documented schema."""
