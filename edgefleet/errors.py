"""The one exception hierarchy of edgefleet, with what each error means for the command line.

* EdgefleetError
  x ConfigError              bad settings or bad input given by the user (exit 2)
  x InputError               a file, option or dataset the user gave is unusable (exit 2)
  x PackageError             a model package was refused (exit 1)
    + ManifestError          the manifest breaks the schema or disagrees with the archive
    + SignatureError         missing, malformed or wrong signature
      - UntrustedKeyError    signed by a key this reader does not trust
      - KeyListError         a signing-key list that is not root-signed, malformed or expired
    + UnsafeArchiveError     a member that could escape the target or exhaust the disk
    + IntegrityError         a file whose size or sha256 differs from the manifest
    + DowngradeError         an older version than the installed one, without an explicit rollback
  x ExportError              exporting or quantizing a model failed (exit 1)
  x AgentError               the edge agent cannot go on (exit 1)
    + UpdateError            an update step failed; ``reason`` names why in a word, for the "failed" event
      - DownloadError        a package download failed or was refused (endless data, slow retrieval, ...)
  x ServerError              the fleet server cannot start or serve (exit 1)
"""

from __future__ import annotations

__all__ = [
    "AgentError",
    "ConfigError",
    "DowngradeError",
    "DownloadError",
    "EdgefleetError",
    "ExportError",
    "GateError",
    "InputError",
    "IntegrityError",
    "KeyListError",
    "ManifestError",
    "PackageError",
    "ServerError",
    "SignatureError",
    "UnsafeArchiveError",
    "UnsupportedModelError",
    "UntrustedKeyError",
    "UpdateError",
]


class EdgefleetError(Exception):
    """Root of every error edgefleet raises on purpose.

    ``message`` says what happened, with the values; ``hint`` says what to do next.
    ``exit_code`` follows the command-line contract: 1 for a failed check, 2 for bad input.
    """

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(EdgefleetError):
    exit_code = 2


class InputError(EdgefleetError):
    exit_code = 2


class PackageError(EdgefleetError):
    pass


class ManifestError(PackageError):
    pass


class SignatureError(PackageError):
    pass


class UntrustedKeyError(SignatureError):
    pass


class KeyListError(SignatureError):
    """A signing-key list was refused: not signed by a root key, malformed, expired, or it names no such key."""


class UnsafeArchiveError(PackageError):
    pass


class IntegrityError(PackageError):
    pass


class DowngradeError(PackageError):
    pass


class ExportError(EdgefleetError):
    pass


class UnsupportedModelError(ExportError):
    """The model holds something the target format or runtime cannot take: the user must change the input."""

    exit_code = 2


class GateError(ExportError):
    """An exported artifact missed a parity or accuracy gate."""


class AgentError(EdgefleetError):
    pass


class UpdateError(AgentError):
    """An update step failed; ``reason`` is a short machine-readable word (``"hash-mismatch"``) for the event."""

    def __init__(self, message: str, *, reason: str, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.reason = reason


class DownloadError(UpdateError):
    """A package download failed or was refused; ``reason`` names the fault or attack (``"endless-data"``)."""


class ServerError(EdgefleetError):
    pass
