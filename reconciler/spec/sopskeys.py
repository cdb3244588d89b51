"""The keys that open SOPS-encrypted files: what `--sops-age-key-file`, `SOPS_AGE_KEY`,
`GNUPGHOME` (or an agent's `decryption:`) configure, read before any manifest is loaded.

Kept apart from `reconciler.spec.sops` (the decryption itself, re-exporting these names) so
that a command which only configures the keys, and loads manifests that hold no encrypted
file, does not import the decryption (`reconcile --once` with nothing to do: #21).

Also the digests that stand for decrypted values (`Keys.digest`): what the spec hash, the
records and the state DB compare instead of the plaintext. A file encrypted again with the same
values (`sops updatekeys`, a new recipient, a rotated data key: new ciphertext, IVs and MAC)
has the same digest, so nothing is replaced; a changed value changes it. It is HMAC-SHA256
under a key of the state root (`<root>/secret-digest.key`, 32 random bytes, mode 0600, made
the first time a SOPS file is met there), so a digest in a label, a record or an answer of the
API cannot be used to guess a short secret without that file.
"""

from __future__ import annotations

import os

from reconciler._dataclass import dataclass, field, replace
from reconciler.errors import TerminalError

__all__ = ["DIGEST_KEY_FILE", "KeyConfigError", "Keys", "SopsError", "at_root", "digest_key", "load_keys",
           "read_age_identities"]

DIGEST_KEY_FILE = "secret-digest.key"      # under the state root: the key of the decrypted values' digests
_DIGEST_KEY_BYTES = 32


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
    # the state root's key file of the digests that stand for decrypted values (`at_root`);
    # "": none (`validate`, which has no root: the digest of the file as stored stands for them)
    digest_key_file: str = ""

    def digest(self, plain: bytes, stored: bytes) -> str:
        """What stands for a decrypted file's values (`plain`, its plaintext as sops prints it)
        in the spec hash, the records and the state DB: `hmac-sha256:<hex>` under the state
        root's key, so the same values encrypted again digest the same; without a root, the
        digest of the file as stored (`stored`). SopsError when the root's key cannot be had."""
        import hashlib

        if not self.digest_key_file:
            return "sha256:" + hashlib.sha256(stored).hexdigest()
        import hmac

        return "hmac-sha256:" + hmac.new(digest_key(self.digest_key_file), plain, hashlib.sha256).hexdigest()

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


def at_root(keys: Keys | None, root: str | os.PathLike[str]) -> Keys | None:
    """`keys` digesting decrypted values under the key of the state root `root` (Keys.digest)."""
    return None if keys is None else replace(keys, digest_key_file=os.path.join(os.fspath(root), DIGEST_KEY_FILE))


def digest_key(path: str) -> bytes:
    """The key in `path` (a state root's `secret-digest.key`), made when there is none: 32
    random bytes written to a file of mode 0600 and linked into place, so two processes making it
    at once (an agent and an apply) end up with the one that landed first. SopsError when it
    cannot be read or made, or is not a key this made."""
    try:
        key = _read_key(path)
    except FileNotFoundError:
        key = _make_key(path)
    if len(key) != _DIGEST_KEY_BYTES:
        raise SopsError(f"{path} is not the {_DIGEST_KEY_BYTES}-byte key reconciler makes for the digests of "
                        "decrypted values; remove it (a new one is made, and the containers using SOPS files "
                        "are replaced once)")
    return key


def _read_key(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(_DIGEST_KEY_BYTES + 1)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise SopsError(f"cannot read {path}, the state root's key for the digests of decrypted values: "
                        f"{exc.strerror or exc}; run as the user that owns the state root") from None


def _make_key(path: str) -> bytes:
    import secrets

    directory = os.path.dirname(path) or "."
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        os.makedirs(directory, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, secrets.token_bytes(_DIGEST_KEY_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)          # never over a key another process made meanwhile
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    except OSError as exc:
        raise SopsError(f"cannot make {path}, the state root's key for the digests of decrypted values: "
                        f"{exc.strerror or exc}; run as the user that owns the state root") from None
    return _read_key(path)
