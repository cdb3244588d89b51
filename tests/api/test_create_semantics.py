"""How the Engine API reads a create body where the docker CLI and dockerd give a field a meaning
of its own (tests/api/test_engine_api_lifecycle.py runs them through the CLI)."""

from __future__ import annotations

from reconciler.api.engine import config_from_create, create_settings


def test_an_entrypoint_of_one_empty_string_is_none_not_the_images() -> None:
    """`docker run --entrypoint "" IMG CMD` sends [""]: dockerd runs CMD alone."""
    reset = config_from_create("c", {"Image": "i", "Entrypoint": [""], "Cmd": ["echo", "hi"]})
    assert (reset.command, reset.args) == ((), ("echo", "hi"))
    assert config_from_create("c", {"Image": "i", "Entrypoint": ["/bin/sh", "-c"]}).command == ("/bin/sh", "-c")
    assert config_from_create("c", {"Image": "i"}).command is None              # the image's


def test_publish_all_publishes_every_exposed_port_its_bindings_do_not_name() -> None:
    """`docker run -P --expose 7070 -p 127.0.0.1::8080 IMG` (IMG: EXPOSE 8080 9090/udp 5000/sctp)."""
    from reconciler.runtime import base
    from reconciler.runtime.native.containers import records

    body = {"Image": "i", "ExposedPorts": {"7070/tcp": {}, "8080/tcp": {}},
            "HostConfig": {"PublishAllPorts": True, "PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1"}]}}}
    settings = create_settings(body)
    assert (settings["exposed"], settings["publish_all"]) == (("7070/tcp", "8080/tcp"), True)
    config = config_from_create("c", body)
    image = {"ExposedPorts": {"8080/tcp": {}, "9090/udp": {}, "5000/sctp": {}}}
    assert records.exposed_ports(config, image, settings["exposed"]) == \
        ["7070/tcp", "8080/tcp", "9090/udp", "5000/sctp"]
    assert records.published_ports(config, image, settings["exposed"], True) == (
        base.PortMapping(container_port=8080, host_port=0, host_ip="127.0.0.1"),      # as bound, not again
        base.PortMapping(container_port=7070, host_port=0),
        base.PortMapping(container_port=9090, host_port=0, protocol="udp"))           # no sctp: not published
    assert records.published_ports(config, image, settings["exposed"], False) == config.ports


def test_env_a_bare_name_is_left_out_and_a_name_has_one_value() -> None:
    """`docker run -e UNSET -e PATH=/bin -e MINE=1 IMG` (UNSET unset where the CLI runs; IMG has
    PATH and FROM_IMAGE): UNSET is in no environment, the user's PATH replaces the image's."""
    from reconciler.runtime.native.containers import bundle, summaries

    config = config_from_create("c", {"Image": "i", "Env": ["UNSET", "PATH=/bin", "MINE=1", "EMPTY="]})
    assert dict(config.env) == {"PATH": "/bin", "MINE": "1", "EMPTY": ""}
    image_env = ["PATH=/usr/local/bin:/bin", "FROM_IMAGE=image"]
    assert summaries.config_env(image_env, config.env) == ["PATH=/bin", "MINE=1", "EMPTY=", "FROM_IMAGE=image"]
    assert bundle.merge_env(image_env, config.env, hostname="h", home="/root") == (
        "PATH=/bin", "HOSTNAME=h", "MINE=1", "EMPTY=", "FROM_IMAGE=image", "HOME=/root")
