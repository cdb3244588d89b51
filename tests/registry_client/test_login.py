"""`reconcile login` / `logout` against real registries on 127.0.0.1 (htpasswd Basic, and token
auth), each test with its own DOCKER_CONFIG (and HOME) under its tmp dir: the registry is asked
first, what is kept is what `docker login` keeps (the engine's pull with `docker --config DIR`
works with it), in the file (0600, its other keys kept) or through a credential helper (a real
executable speaking the helper protocol), and logout removes it."""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.registry_client import Credential, CredentialStore, RegistryClient, credentials
from tests.helpers.host import Host
from tests.helpers.registry import RegistryServer
from tests.helpers.token_server import TokenServer
from tests.registry_client.conftest import USERS
from tests.registry_client.imagegen import make_image

pytestmark = pytest.mark.registry

REPO = Path(__file__).resolve().parents[2]
PASSWORD = USERS["alice"]


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The environment of a `reconcile` and a `docker` run: DOCKER_CONFIG and HOME in tmp_path,
    no DOCKER_AUTH_CONFIG, no Podman auth file of the host's."""
    home = tmp_path / "home"
    home.mkdir()
    out = {k: v for k, v in os.environ.items() if k not in ("DOCKER_AUTH_CONFIG", "XDG_RUNTIME_DIR", "DOCKER_CONTEXT")}
    return {**out, "DOCKER_CONFIG": str(tmp_path / "docker"), "HOME": str(home),
            "REGISTRY_AUTH_FILE": str(tmp_path / "podman-auth.json"), "PYTHONPATH": str(REPO)}


def reconcile(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconciler", *args], input=stdin, capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=120, check=False)


def config_of(env: dict[str, str]) -> Path:
    return Path(env["DOCKER_CONFIG"]) / "config.json"


def seed_config(env: dict[str, str], doc: dict[str, object]) -> Path:
    path = config_of(env)
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(doc))
    path.chmod(0o644)
    return path


def push_image(registry: RegistryServer, repo: str) -> str:
    """`registry/repo:1`, pushed with alice's credentials (none kept anywhere)."""
    ref = f"{registry.host}/{repo}:1"
    store = CredentialStore(static={registry.host: Credential("alice", PASSWORD)}, docker_config=Path("/nonexistent"),
                            env={})
    with RegistryClient(credentials=store) as c:
        m, blobs = make_image()
        c.push_image(ref, m, lambda d: blobs[d.digest])
    return ref


@pytest.fixture
def docker_cli() -> Iterator[list[str]]:
    """The docker CLI talking to the host's dockerd; the images the test pulled, removed after."""
    if shutil.which("docker") is None or not os.path.exists("/var/run/docker.sock"):
        pytest.skip("needs the docker CLI and dockerd")
    pulled: list[str] = []
    yield pulled
    for ref in pulled:
        subprocess.run(["docker", "rmi", "-f", ref], capture_output=True, timeout=60, check=False)


def docker_pull(env: dict[str, str], pulled: list[str], ref: str) -> subprocess.CompletedProcess[str]:
    """`docker --config DOCKER_CONFIG pull ref`: dockerd pulls with what the CLI reads there."""
    pulled.append(ref)
    subprocess.run(["docker", "rmi", "-f", ref], capture_output=True, env=env, timeout=60, check=False)
    return subprocess.run(["docker", "--config", env["DOCKER_CONFIG"], "pull", ref], capture_output=True, text=True,
                          env=env, timeout=120, check=False)


def test_a_wrong_password_is_refused_by_the_registry_and_nothing_is_kept(
        basic_registry: RegistryServer, env: dict[str, str]) -> None:
    refused = reconcile(env, "login", basic_registry.host, "-u", "alice", "--password-stdin", stdin="wrong\n")
    assert refused.returncode == 1, refused.stderr
    assert "unauthorized: incorrect username or password" in refused.stderr
    assert "wrong" not in refused.stderr + refused.stdout
    assert "Login Succeeded" not in refused.stdout
    assert not Path(env["DOCKER_CONFIG"]).exists()                   # nothing made

    before = seed_config(env, {"auths": {"other.example:5000": {"auth": b64("x:y")}}, "detachKeys": "ctrl-x"})
    text = before.read_text()
    refused = reconcile(env, "login", basic_registry.host, "-u", "alice", "--password-stdin", stdin="wrong\n")
    assert refused.returncode == 1
    assert before.read_text() == text                                  # untouched


def test_login_keeps_what_dockers_pull_uses_and_logout_removes_it(
        basic_registry: RegistryServer, env: dict[str, str], docker_cli: list[str]) -> None:
    ref = push_image(basic_registry, "login/file")
    path = seed_config(env, {"auths": {"other.example:5000": {"auth": b64("x:y")}}, "detachKeys": "ctrl-x",
                             "proxies": {"default": {"noProxy": "127.0.0.1"}}})
    assert docker_pull(env, docker_cli, ref).returncode != 0           # no credentials yet

    done = reconcile(env, "login", basic_registry.host, "-u", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Login Succeeded\n"
    assert f"WARNING! Your credentials are stored unencrypted in '{path}'." in done.stderr
    doc = json.loads(path.read_text())
    assert doc["auths"][basic_registry.host] == {"auth": b64(f"alice:{PASSWORD}")}
    assert doc["auths"]["other.example:5000"] == {"auth": b64("x:y")}   # every other key kept
    assert doc["detachKeys"] == "ctrl-x"
    assert doc["proxies"] == {"default": {"noProxy": "127.0.0.1"}}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    pulled = docker_pull(env, docker_cli, ref)
    assert pulled.returncode == 0, pulled.stderr                        # docker reads what login kept
    assert CredentialStore(docker_config=path, env={}).get(basic_registry.host) == Credential("alice", PASSWORD)

    again = reconcile(env, "login", basic_registry.host)                # no -u: the kept ones are tried
    assert again.returncode == 0, again.stderr
    assert "Authenticating with existing credentials... [Username: alice]" in again.stderr
    assert again.stdout == "Login Succeeded\n"

    out = reconcile(env, "logout", basic_registry.host)
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"Removing login credentials for {basic_registry.host}\n"
    doc = json.loads(path.read_text())
    assert basic_registry.host not in doc["auths"]
    assert doc["auths"]["other.example:5000"] == {"auth": b64("x:y")}
    assert doc["detachKeys"] == "ctrl-x"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert docker_pull(env, docker_cli, ref).returncode != 0           # gone for docker too
    again = reconcile(env, "logout", basic_registry.host)               # not logged in: docker's words, exit 0
    assert (again.returncode, again.stdout) == (0, f"Removing login credentials for {basic_registry.host}\n")
    no_tty = reconcile(env, "login", basic_registry.host)               # nothing kept, nothing to ask on
    assert no_tty.returncode == 1
    assert "cannot perform an interactive login from a non TTY device" in no_tty.stderr


def test_the_password_options_are_dockers(basic_registry: RegistryServer, env: dict[str, str]) -> None:
    on_line = reconcile(env, "login", basic_registry.host, "-u", "alice", "-p", PASSWORD)
    assert on_line.returncode == 0, on_line.stderr
    assert "WARNING! Using --password via the CLI is insecure. Use --password-stdin." in on_line.stderr
    both = reconcile(env, "login", basic_registry.host, "-u", "alice", "-p", PASSWORD, "--password-stdin", stdin="x")
    assert both.returncode == 2
    assert "cannot specify both --password and --password-stdin" in both.stderr
    no_user = reconcile(env, "login", basic_registry.host, "--password-stdin", stdin=PASSWORD)
    assert no_user.returncode == 2
    assert "requires --username" in no_user.stderr


HELPER = """#!{python}
# a credential helper (docker-credential-helpers' protocol) keeping its secrets in a JSON file
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
path, log = os.path.join(here, "secrets.json"), os.path.join(here, "calls.log")
op, given = sys.argv[1], sys.stdin.read()
data = json.load(open(path)) if os.path.exists(path) else {{}}
with open(log, "a") as f:
    f.write(json.dumps([op, given]) + "\\n")
if op == "store":
    d = json.loads(given)
    data[d["ServerURL"]] = {{"Username": d["Username"], "Secret": d["Secret"]}}
elif op in ("get", "erase"):
    key = given.strip()
    if key not in data:
        print("credentials not found in native keychain")
        sys.exit(1)
    if op == "get":
        print(json.dumps({{"ServerURL": key, **data[key]}}))
    else:
        del data[key]
json.dump(data, open(path, "w"))
"""


@pytest.mark.parametrize("how", ["credsStore", "credHelpers"])
def test_a_credential_helper_keeps_them_when_one_is_configured(
        basic_registry: RegistryServer, env: dict[str, str], tmp_path: Path, docker_cli: list[str], how: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-testfs"
    helper.write_text(HELPER.format(python=sys.executable))
    helper.chmod(0o755)
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    ref = push_image(basic_registry, f"login/helper-{how.lower()}")
    path = seed_config(env, {"credsStore": "testfs"} if how == "credsStore" else
                       {"credHelpers": {basic_registry.host: "testfs"}, "auths": {basic_registry.host: {"auth": b64("old:pw")}}})

    done = reconcile(env, "login", basic_registry.host, "-u", "alice", "--password-stdin", stdin=PASSWORD)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Login Succeeded\n"
    assert "unencrypted" not in done.stderr
    secrets = json.loads((bin_dir / "secrets.json").read_text())
    assert secrets == {basic_registry.host: {"Username": "alice", "Secret": PASSWORD}}
    doc = json.loads(path.read_text())
    assert doc["auths"] == {basic_registry.host: {}}                    # docker's bookkeeping entry, no secret
    assert PASSWORD not in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    pulled = docker_pull(env, docker_cli, ref)                          # docker asks the helper
    assert pulled.returncode == 0, pulled.stderr

    out = reconcile(env, "logout", basic_registry.host)
    assert out.returncode == 0, out.stderr
    assert json.loads((bin_dir / "secrets.json").read_text()) == {}
    calls = [json.loads(line) for line in (bin_dir / "calls.log").read_text().splitlines()]
    assert ["erase", basic_registry.host] in calls
    assert json.loads(path.read_text())["auths"] == {}
    assert docker_pull(env, docker_cli, ref).returncode != 0


def test_a_token_servers_refresh_token_is_kept_as_identitytoken(
        token_registry: RegistryServer, token_server: TokenServer, env: dict[str, str], docker_cli: list[str]) -> None:
    token_server.offline_tokens = True
    token_server.acl = {"alice": ("pull", "push")}                     # no anonymous pulls
    ref = push_image(token_registry, "login/token")
    refused = reconcile(env, "login", token_registry.host, "-u", "alice", "--password-stdin", stdin="wrong")
    assert refused.returncode == 1
    assert "unauthorized: incorrect username or password" in refused.stderr
    assert not config_of(env).exists()

    token_server.requests.clear()
    done = reconcile(env, "login", token_registry.host, "-u", "alice", "--password-stdin", stdin=PASSWORD)
    assert done.returncode == 0, done.stderr
    assert any(r.offline and r.user == "alice" for r in token_server.requests)
    entry = json.loads(config_of(env).read_text())["auths"][token_registry.host]
    assert set(entry) == {"auth", "identitytoken"}
    assert base64.b64decode(entry["auth"]).decode() == "alice:"         # the password is not kept
    assert token_server.refresh_tokens[entry["identitytoken"]] == "alice"
    assert "unencrypted" not in done.stderr

    token_server.requests.clear()
    store = CredentialStore(docker_config=config_of(env), env={})
    with RegistryClient(credentials=store) as c:                        # reconciler pulls with it
        assert c.resolve(ref).digest.startswith("sha256:")
    assert {(r.method, r.grant_type, r.user) for r in token_server.requests} == {("POST", "refresh_token", "alice")}
    pulled = docker_pull(env, docker_cli, ref)                          # and so does docker
    assert pulled.returncode == 0, pulled.stderr


def test_login_asks_on_a_terminal_without_echoing_the_password(
        basic_registry: RegistryServer, env: dict[str, str]) -> None:
    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "reconciler", "login", basic_registry.host], cwd=REPO, env=env,
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    shown, answered = b"", set()
    deadline = time.monotonic() + 60
    try:
        while proc.poll() is None or select.select([master], [], [], 0)[0]:
            assert time.monotonic() < deadline, shown
            if select.select([master], [], [], 0.1)[0]:
                try:
                    shown += os.read(master, 4096)
                except OSError:
                    break
            for prompt, answer in ((b"Username: ", b"alice\r"), (b"Password: ", PASSWORD.encode() + b"\r")):
                if prompt in shown and prompt not in answered:
                    os.write(master, answer)
                    answered.add(prompt)
        assert proc.wait(timeout=30) == 0, shown
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert b"Login Succeeded" in shown
    assert PASSWORD.encode() not in shown                               # typed without echo
    assert CredentialStore(docker_config=config_of(env), env={}).get(basic_registry.host) == Credential("alice", PASSWORD)


def test_logout_without_a_server_is_docker_hubs(
        env: dict[str, str]) -> None:
    path = seed_config(env, {"auths": {"https://index.docker.io/v1/": {"auth": b64("hub:pw")},
                                       "docker.io": {"auth": b64("hub:old")},
                                       "127.0.0.1:5999": {"auth": b64("x:y")}}})
    out = reconcile(env, "logout")
    assert (out.returncode, out.stdout) == (0, "Removing login credentials for https://index.docker.io/v1/\n")
    assert json.loads(path.read_text())["auths"] == {"127.0.0.1:5999": {"auth": b64("x:y")}}
    assert credentials.login_registry(None) == "docker.io"
    assert credentials.server_key(credentials.login_registry("index.docker.io")) == credentials.DOCKER_HUB_KEY
    assert credentials.login_registry("http://127.0.0.1:5000/v2/") == "127.0.0.1:5000"


def test_the_config_is_replaced_whole_through_a_symlink_and_its_owner_kept(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "docker.json"
    real.parent.mkdir()
    real.write_text(json.dumps({"auths": {}, "currentContext": "x"}))
    if os.geteuid() == 0:
        os.chown(real, 1234, 1234)
    link = tmp_path / "docker" / "config.json"
    link.parent.mkdir()
    link.symlink_to(real)
    store = CredentialStore(docker_config=link, env={})
    saved = store.save("127.0.0.1:5999", Credential("alice", "pw"))
    assert saved.in_clear
    assert saved.where == str(link)
    assert link.is_symlink()                                            # the target replaced, the link kept
    assert json.loads(real.read_text()) == {"auths": {"127.0.0.1:5999": {"auth": b64("alice:pw")}},
                                            "currentContext": "x"}
    assert stat.S_IMODE(real.stat().st_mode) == 0o600
    if os.geteuid() == 0:
        assert (real.stat().st_uid, real.stat().st_gid) == (1234, 1234)
    assert [p.name for p in real.parent.iterdir()] == ["docker.json"]   # no temporary file left
    assert not store.save("127.0.0.1:5999", Credential("alice", "pw")).in_clear   # unchanged: not written again
    store.erase("127.0.0.1:5999")
    assert json.loads(real.read_text())["auths"] == {}


def test_logout_with_a_helper_that_is_missing_warns_and_still_drops_the_files_entries(env: dict[str, str]) -> None:
    path = seed_config(env, {"credsStore": "absent-helper", "auths": {"127.0.0.1:5999": {"auth": b64("x:y")}}})
    out = reconcile(env, "logout", "127.0.0.1:5999")
    assert (out.returncode, out.stdout) == (0, "Removing login credentials for 127.0.0.1:5999\n")   # as docker's
    assert out.stderr.startswith("WARNING: could not erase credentials:\n127.0.0.1:5999: ")
    assert "docker-credential-absent-helper is not installed" in out.stderr
    assert json.loads(path.read_text()) == {"credsStore": "absent-helper", "auths": {}}


def test_logout_whose_helper_cannot_erase_warns_and_exits_0_as_dockers(env: dict[str, str], tmp_path: Path) -> None:
    """A credential helper whose `erase` fails (a locked keyring): docker logout prints its
    warning and exits 0 (docker 28); so does ours, with the helper's words; it exited 1."""
    if shutil.which("docker") is None:
        pytest.skip("needs the docker CLI")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-locked"
    helper.write_text("#!/bin/sh\ncat >/dev/null\n[ \"$1\" = erase ] && { echo 'the keyring is locked'; exit 1; }\n"
                      "echo '{}'\n")
    helper.chmod(0o755)
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    doc = {"credsStore": "locked", "auths": {"127.0.0.1:5999": {}}}
    seed_config(env, doc)
    # (SERVER/: docker 28 warns only when every form it erased failed, and it counts SERVER twice
    # when given as its hostname, so that it says nothing then; its exit is 0 either way)
    theirs = subprocess.run(["docker", "logout", "127.0.0.1:5999/"], capture_output=True, text=True, env=env,
                            timeout=60, check=False)
    assert (theirs.returncode, theirs.stdout) == (0, "Removing login credentials for 127.0.0.1:5999\n")
    assert theirs.stderr.startswith("WARNING: could not erase credentials:\n")
    assert "the keyring is locked" in theirs.stderr
    seed_config(env, doc)
    ours = reconcile(env, "logout", "127.0.0.1:5999")
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout)
    assert ours.stderr.startswith("WARNING: could not erase credentials:\n127.0.0.1:5999: docker-credential-locked "
                                  "could not erase the credentials for 127.0.0.1:5999: ")
    assert "the keyring is locked" in ours.stderr


@pytest.mark.root
def test_docker_login_through_the_engine_api_keeps_the_refresh_token(
        token_registry: RegistryServer, token_server: TokenServer, env: dict[str, str], docker_cli: list[str],
        host: Host, tmp_path: Path) -> None:
    """`docker login` against the native engine's Engine API: the refresh token the token server
    gave the engine's check goes back as IdentityToken, and the docker CLI keeps it in place of
    the password, as it does with dockerd."""
    from tests.api.test_engine_api import serving

    token_server.offline_tokens = True
    with serving(host, tmp_path / "engine.sock") as sock:
        docker_env = {**env, "DOCKER_HOST": f"unix://{sock}"}
        done = subprocess.run(["docker", "login", token_registry.host, "-u", "alice", "--password-stdin"],
                              input=PASSWORD, capture_output=True, text=True, env=docker_env, timeout=120,
                              check=False)
    assert done.returncode == 0, done.stderr
    assert "Login Succeeded" in done.stdout
    entry = json.loads(config_of(env).read_text())["auths"][token_registry.host]
    assert token_server.refresh_tokens[entry["identitytoken"]] == "alice"
    assert base64.b64decode(entry["auth"]).decode() == "alice:"         # the password is not kept
