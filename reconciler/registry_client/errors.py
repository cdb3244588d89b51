"""The registry client's one error tree (it stands alone: no other reconciler import).

    RegistryError(code, hint, status, temporary)   root; `code` is the OCI error code or ours
    ├── InvalidReference        a name, tag or reference string that cannot be used
    ├── InvalidDigest           a digest string that is not sha256:<64 hex> / sha512:<128 hex>
    ├── Unauthorized            401 UNAUTHORIZED: no or wrong credentials ("run docker login HOST")
    ├── Denied                  403 DENIED, or a token without the needed action
    ├── NotFound                404: NAME_UNKNOWN, MANIFEST_UNKNOWN, BLOB_UNKNOWN, tag not found
    ├── TooManyRequests         429 TOOMANYREQUESTS (`retry_after` seconds when the server said)
    ├── Unavailable             transport errors, 5xx, 408 after the retries ran out (temporary)
    ├── ManifestError           unsupported (schema1), oversized, wrong Content-Type, bad JSON,
    │                           digest of the bytes differs from the one asked for
    ├── DigestMismatch          a blob's bytes do not hash to its descriptor's digest
    ├── SizeMismatch            a blob is longer or shorter than its descriptor says
    ├── PlatformNotFound        an index has no manifest for the wanted platform
    ├── UploadError             a push step failed (BLOB_UPLOAD_INVALID, MANIFEST_INVALID, ...)
    └── CredentialError         a credential helper or auth file failed (not "not found")

Callers map `temporary` to their own retry policy (reconciler: TemporaryError vs TerminalError).
Messages never include secrets.
"""

from __future__ import annotations

__all__ = [
    "CredentialError",
    "Denied",
    "DigestMismatch",
    "InvalidDigest",
    "InvalidReference",
    "ManifestError",
    "NotFound",
    "PlatformNotFound",
    "RegistryError",
    "SizeMismatch",
    "TooManyRequests",
    "Unauthorized",
    "Unavailable",
    "UploadError",
]


class RegistryError(Exception):
    """Root of the registry client's errors. `code` is the OCI error code when the registry sent
    one (MANIFEST_UNKNOWN, DENIED, ...), else a code of ours; `hint` says what to do next."""

    default_code = "UNKNOWN"
    temporary = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        hint: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.hint = hint
        self.status = status

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class InvalidReference(RegistryError, ValueError):
    default_code = "NAME_INVALID"


class InvalidDigest(RegistryError, ValueError):
    default_code = "DIGEST_INVALID"


class Unauthorized(RegistryError):
    default_code = "UNAUTHORIZED"


class Denied(RegistryError):
    default_code = "DENIED"


class NotFound(RegistryError):
    default_code = "NAME_UNKNOWN"


class TooManyRequests(RegistryError):
    default_code = "TOOMANYREQUESTS"
    temporary = True

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        code: str | None = None,
        hint: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message, code=code, hint=hint, status=status)
        self.retry_after = retry_after


class Unavailable(RegistryError):
    default_code = "UNAVAILABLE"
    temporary = True


class ManifestError(RegistryError):
    default_code = "MANIFEST_INVALID"


class DigestMismatch(RegistryError):
    default_code = "DIGEST_INVALID"


class SizeMismatch(RegistryError):
    default_code = "SIZE_INVALID"


class PlatformNotFound(RegistryError):
    default_code = "PLATFORM_UNKNOWN"


class UploadError(RegistryError):
    default_code = "BLOB_UPLOAD_INVALID"


class CredentialError(RegistryError):
    default_code = "CREDENTIALS"
