"""What the agent takes in an exec's body (`POST /v1/containers/NAME/exec`): `argv`, and `user`,
`workdir`, `env` as `reconcile exec -u/-w/-e` sends them; anything else is refused by name, so a
field the agent does not know is never dropped (a newer CLI's option ignored could run the
command as another user)."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.agent.daemon import _check_exec
from reconciler.api import errors as apierr


@pytest.mark.parametrize("body", [
    {"argv": ["true"]},
    {"argv": ["id"], "user": "app:app", "workdir": "/tmp", "env": ["X=1", "GONE"]},
    {"argv": ["id"], "user": None, "workdir": None},
])
def test_an_exec_body_is_taken(body: dict[str, Any]) -> None:
    _check_exec(body)


@pytest.mark.parametrize(("body", "said"), [
    ({"argv": ["id"], "privileged": True}, "exec does not take privileged"),
    ({"argv": []}, "POST a JSON object"),
    ({"argv": ["id"], "user": 0}, "POST a JSON object"),
    ({"argv": ["id"], "env": "X=1"}, "POST a JSON object"),
    ({"argv": ["id"], "env": ["=1"]}, "POST a JSON object"),
])
def test_an_exec_body_is_refused_saying_why(body: dict[str, Any], said: str) -> None:
    with pytest.raises(apierr.BadRequest) as refused:
        _check_exec(body)
    assert said in refused.value.message
