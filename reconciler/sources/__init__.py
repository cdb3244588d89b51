"""Where manifests come from: the `Source` contract and its implementations.

- `base`: `Revision(id, path, origin)`, the `Source` protocol (`fetch`, `watch`, `retain`).
- `errors`: `SourceError` → `SourceUnavailable` (temporary) / `SourceInvalid` (terminal).
- `directory`: a drop-in directory, watched with inotify (watchdog) plus a re-list.
- `git`: one ref and sub-path of a git repository through the git CLI, polled with ls-remote.
- `webhook`: an HMAC-verified push-webhook listener that wakes the loop for git sources.

Import modules, not names: `from reconciler.sources import git` then `git.GitSource(...)`.
"""
