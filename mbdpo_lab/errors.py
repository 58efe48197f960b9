"""Errors that are the user's to fix: bad input, a missing file, a machine without GL.

Each message says what to do. The CLI prints them as one line with exit status 2 (3 for rendering),
and the widgets show them in place; anything else is a bug and keeps its traceback. This module
imports nothing, so the CLI can catch them without loading torch.
"""


class ConfigError(ValueError):
    """A configuration key or value that cannot be used (the message says what to do)."""


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupt, tampered with or does not fit; says what to do."""


class UnknownTaskError(ValueError):
    """The task name is not a DMControl suite task; the message lists the valid ones."""


class RenderingUnavailable(RuntimeError):
    """No working headless GL backend; the message says which packages to install."""


class UsageError(Exception):
    """Bad input from the command line; printed as one line, exit status 2."""


class ObservationError(ValueError):
    """An observation the agent cannot use (wrong size, NaN or infinite entries); names the entries."""


class LessonFailed(RuntimeError):
    """A lesson notebook showed an error while the course book was built; names the notebook and the error."""


class TrainingDiverged(FloatingPointError):
    """An update produced a non-finite loss; the run stops and keeps its last good checkpoint."""
