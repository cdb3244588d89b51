"""RegistryClient: the OCI Distribution API (pull, push, tags) over one pooled httpx.Client.

See the package docstring for the contract. The client is three parts, one module each:
`session.py` (the HTTP client, auth, errors and retries), `pull.py` (manifests, blobs, tags)
and `push.py` (uploads); this class puts them together.
"""

from __future__ import annotations

from reconciler.registry_client.pull import Pulling
from reconciler.registry_client.push import Pushing

__all__ = ["RegistryClient"]


class RegistryClient(Pulling, Pushing):
    """A client for OCI / Docker v2 registries. Use as a context manager (or call close()).

    Thread-safe: one httpx.Client with a connection pool serves all threads, so several
    fetch_blob calls may run concurrently.

    Args:
        credentials: a CredentialStore (None: anonymous unless a registry asks and the
            default store has credentials; pass `CredentialStore(static={})` to force anonymous).
        transport: an httpx transport to use instead of the network one (tests, proxies).
        timeout: seconds for connect/read/write of each request.
        retries: extra attempts after the first for retryable failures.
        backoff: base delay in seconds; attempt n waits backoff * 2**(n-1), capped at max_backoff.
        sleep: called with the delay (inject a recorder in tests).
        insecure_hosts: hosts spoken to over plain http; loopback hosts (127.0.0.0/8,
            localhost, [::1]) always are.
        max_retry_after: a 429 whose Retry-After exceeds this is raised, not waited for.
        max_manifest_size: manifests larger than this are refused.
        max_connections: size of the connection pool.
        download_concurrency: default parallel downloads of fetch_blobs (docker's default: 3).
        clock: monotonic clock for token expiry.
    """
