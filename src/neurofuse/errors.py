"""Errors that reach the user.

Every error NeuroFuse raises on bad input is a :class:`NeuroFuseError`: one line that
names the file, says what is wrong and what to do about it. The command line and the
Snakefile print ``str(error)`` and exit non-zero instead of showing a traceback.
"""

from __future__ import annotations

from os import PathLike


class NeuroFuseError(Exception):
    """A problem the user can fix, described in one line.

    Parameters
    ----------
    problem:
        What is wrong, e.g. ``"RepetitionTime is missing from the sidecar"``.
    path:
        The file or folder concerned, if any.
    hint:
        What to do about it, e.g. ``"add RepetitionTime (seconds) to the JSON sidecar"``.
    """

    def __init__(self, problem: str, path: str | PathLike | None = None, hint: str | None = None):
        self.problem = problem
        self.path = None if path is None else str(path)
        self.hint = hint
        super().__init__(self.message)

    @property
    def message(self) -> str:
        text = f"{self.path}: {self.problem}" if self.path else self.problem
        if self.hint:
            text += f" -> {self.hint}"
        return text

    def __str__(self) -> str:  # one line, always
        return self.message.replace("\n", " ")


class BIDSError(NeuroFuseError):
    """The input dataset is not usable as it is."""


class ConfigError(NeuroFuseError):
    """The configuration is invalid."""


class StorageError(NeuroFuseError):
    """An output cannot be written: full disk, quota, read-only or unwritable folder."""


class ResourceLimitError(NeuroFuseError):
    """A job needed more memory than its rule was given."""
