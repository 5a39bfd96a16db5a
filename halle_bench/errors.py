"""Exception types shared across halle-bench.

`ConfigError` is for anything wrong before work starts (config, manifest, usage):
the CLI turns it into exit code 2 with the file and line. `UtteranceError` is for
one utterance's problem (corrupt wav, empty text...): the runner records it as a
failed row with the message and goes on.
"""

from __future__ import annotations

from pathlib import Path


class HalleBenchError(Exception):
    """Base class of halle-bench's own errors."""


class ConfigError(HalleBenchError):
    """A malformed config, manifest or argument. Carries file and line when known."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        where = ""
        if self.path is not None:
            where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        super().__init__(where + message)


class UtteranceError(HalleBenchError):
    """A problem with one utterance (input audio, text, a system's output)."""


class MissingModelError(HalleBenchError):
    """A model weight file is absent; the message says which file and how to provide it."""


class ChecksumError(HalleBenchError):
    """A weight file exists but its sha256 differs from the registered one."""


class CheckpointError(HalleBenchError):
    """A weight file that is corrupt, or whose keys/shapes do not fit the model it
    should build (missing, unexpected or mis-shaped tensors are listed)."""
