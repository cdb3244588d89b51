"""The keys that open SOPS-encrypted files: what `--sops-age-key-file`, `SOPS_AGE_KEY`,
`GNUPGHOME` (or an agent's `decryption:`) configure, read before any manifest is loaded.

Kept apart from `reconciler.spec.sops` (the decryption itself, re-exporting these names) so
that a command which only configures the keys, and loads manifests that hold no encrypted
file, does not import the decryption (`reconcile --once` with nothing to do: #21).
"""

from __future__ import annotations

import os

from reconciler._dataclass import dataclass, field
from reconciler.errors import TerminalError

__all__ = ["KeyConfigError", "Keys", "SopsError", "load_keys", "read_age_identities"]


class SopsError(ValueError):
    """A SOPS file that cannot be decrypted; the message says why and what to do."""


class KeyConfigError(TerminalError):
    """The configured decryption keys cannot be read (a missing or malformed age key file)."""

    exit_code = 2


@dataclass(frozen=True)
class Keys:
    """What may open a data key: age identities (`AGE-SECRET-KEY-1...`) and, where gpg is
    installed, the secret keys of a GnuPG home (`gnupg_home`; None = gpg's default)."""

    age_identities: tuple[str, ...] = field(default=(), repr=False)
    gnupg_home: str | None = None
    use_gpg: bool | None = False     # None: whether gpg is installed, looked up when a PGP key is first met
    where: str = ""                 # what configured them, for messages ("age_key_file /etc/...")

    def gpg(self) -> bool:
        """Whether gpg is asked for PGP-encrypted data keys (`use_gpg` None: whether it is
        installed, looked up now: a load with no such key imports no shutil, #21)."""
        if self.use_gpg is None:
            import shutil

            return shutil.which("gpg") is not None
        return self.use_gpg


def read_age_identities(path: str) -> tuple[str, ...]:
    """The identities of an age key file (`age-keygen` output: `#` comments, one key a line)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(1 << 20)
    except (OSError, UnicodeDecodeError) as exc:
        raise SopsError(f"cannot read the age key file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not stripped.startswith("AGE-SECRET-KEY-"):
            raise SopsError(f"{path} line {number} is not an age identity (AGE-SECRET-KEY-1...); "
                            "make the file with age-keygen")
        out.append(stripped)
    if not out:
        raise SopsError(f"{path} holds no age identity; make it with `age-keygen -o {path}`")
    return tuple(out)


def load_keys(age_key_file: str | None = None, *, age_key: str | None = None, gnupg_home: str | None = None,
              use_gpg: bool | None = False, where: str = "") -> Keys:
    """Keys from an age key file and/or identities given inline (SOPS_AGE_KEY), and whether gpg
    (with `gnupg_home`, else its default home) is asked for PGP-encrypted data keys."""
    identities: tuple[str, ...] = ()
    try:
        if age_key_file:
            identities += read_age_identities(age_key_file)
        if age_key:
            identities += tuple(line.strip() for line in age_key.splitlines()
                                if line.strip().startswith("AGE-SECRET-KEY-"))
    except SopsError as exc:
        raise KeyConfigError(str(exc), hint="point age_key_file (or --sops-age-key-file, "
                             "SOPS_AGE_KEY_FILE) at the file age-keygen wrote") from None
    if gnupg_home and not os.path.isdir(gnupg_home):
        raise KeyConfigError(f"gnupg_home {gnupg_home} is not a directory",
                             hint="import the PGP secret key there: gpg --homedir DIR --import KEY.asc")
    return Keys(age_identities=identities, gnupg_home=gnupg_home, use_gpg=True if gnupg_home else use_gpg,
                where=where or (f"age_key_file {age_key_file}" if age_key_file else "decryption"))
