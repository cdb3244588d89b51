"""How the Engine API reads a create body where the docker CLI and dockerd give a field a meaning
of its own (tests/api/test_engine_api_lifecycle.py runs them through the CLI)."""

from __future__ import annotations

from reconciler.api.engine import config_from_create


def test_an_entrypoint_of_one_empty_string_is_none_not_the_images() -> None:
    """`docker run --entrypoint "" IMG CMD` sends [""]: dockerd runs CMD alone."""
    reset = config_from_create("c", {"Image": "i", "Entrypoint": [""], "Cmd": ["echo", "hi"]})
    assert (reset.command, reset.args) == ((), ("echo", "hi"))
    assert config_from_create("c", {"Image": "i", "Entrypoint": ["/bin/sh", "-c"]}).command == ("/bin/sh", "-c")
    assert config_from_create("c", {"Image": "i"}).command is None              # the image's
