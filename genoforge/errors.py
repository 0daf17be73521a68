"""The error hierarchy. Every error a user can cause is a GenoforgeError.

The CLI turns one of these into a single red line on stderr and exit code 1; library code raises
them with a message that says what was found, where, and what to do, e.g.
``genes.gff3:1042: CDS end 5120 < start 5300 (seqid chr2); fix the row or drop it``.
"""

from __future__ import annotations

from pathlib import Path


class GenoforgeError(Exception):
    """Base class of every error caused by input, configuration or environment."""


class InputError(GenoforgeError):
    """A user-supplied file is missing, unreadable or malformed."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.path = str(path) if path is not None else None
        self.line = line
        where = ""
        if self.path is not None:
            where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        super().__init__(where + message)


class FastaFormatError(InputError):
    """A FASTA file breaks the accepted format."""


class GffFormatError(InputError):
    """A GFF3 file breaks the accepted format."""


class TargetParseError(InputError):
    """A target token sequence or text does not follow the target grammar (docs/target-format.md)."""


class ShardFormatError(InputError):
    """A packed shard or its manifest is corrupt, truncated or of an unknown version."""


class TokenizerError(InputError):
    """A tokenizer file is missing, malformed, or does not match what an artifact expects."""


class ConfigError(GenoforgeError):
    """A configuration value or file is invalid."""


class CheckpointError(GenoforgeError):
    """A model directory or training checkpoint is missing, corrupt or of an unknown version."""


class DependencyError(GenoforgeError):
    """An optional dependency or device is not available."""


class DeviceMemoryError(GenoforgeError):
    """The accelerator ran out of memory; the message says which knobs lower the need."""
