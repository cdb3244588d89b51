"""An exec's environment over the container's, as dockerd's ReplaceOrAppendEnvValues makes it:
a KEY=VALUE replaces the key's entry where it is or is appended, a KEY alone removes it."""

from __future__ import annotations

from reconciler.runtime.native.containers.execs import _env_over


def test_entries_replace_in_place_append_or_unset() -> None:
    container = ["PATH=/bin", "HOSTNAME=abc", "A=1", "B=2"]
    assert _env_over(container, ["A=one", "C=3", "B"]) == ["PATH=/bin", "HOSTNAME=abc", "A=one", "C=3"]
    assert _env_over(container, ["B", "B=again"]) == ["PATH=/bin", "HOSTNAME=abc", "A=1", "B=again"]
    assert _env_over(container, ["C=3", "C"]) == ["PATH=/bin", "HOSTNAME=abc", "A=1", "B=2"]
    assert _env_over(container, ["NOPE", "A==x"]) == ["PATH=/bin", "HOSTNAME=abc", "A==x", "B=2"]
    assert _env_over(container, []) == container
