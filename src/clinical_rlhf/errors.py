"""User-facing errors. Each carries one clear sentence (what is wrong, how to fix it) and the
exit code the CLI ends with; the CLI prints the message, never a traceback."""

from __future__ import annotations


class ClinicalRLHFError(Exception):
    """Base of errors that are the user's to fix. `exit_code` is what the CLI returns."""

    exit_code = 1


class ConfigError(ClinicalRLHFError):
    """Malformed YAML, a wrong type, an unknown key, a bad override."""

    exit_code = 2


class ModelNotFoundError(ClinicalRLHFError):
    """Unknown registry id, or a model that is neither cached nor reachable."""

    exit_code = 2


class InputDataError(ClinicalRLHFError):
    """A malformed JSONL line, a missing input file."""

    exit_code = 2


class CheckpointError(ClinicalRLHFError):
    """A checkpoint that is missing, corrupt or incompatible with the config."""

    exit_code = 3


class AuditIntegrityError(ClinicalRLHFError):
    """The audit log's hash chain is broken (altered, deleted, inserted, reordered or torn)."""

    exit_code = 4


class EmergencyStop(ClinicalRLHFError):
    """Training stopped because the unsafe ratio crossed `safety.max_unsafe_ratio`."""

    exit_code = 10
