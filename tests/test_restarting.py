"""The one restart rule (`reconciler.restarting`): Docker's policies, at an exit and on resume."""

from __future__ import annotations

import pytest

from reconciler import restarting
from reconciler.runtime import base
from reconciler.spec import models

EXIT, RESUME = restarting.Moment.EXIT, restarting.Moment.RESUME


@pytest.mark.parametrize(("policy", "code", "count", "by_hand", "moment", "start"), [
    ("always", 1, 0, False, EXIT, True),
    ("always", 0, 0, True, EXIT, False),            # docker stop cancels even `always`
    ("always", 0, 0, True, RESUME, True),           # ... until the engine starts again
    ("unless-stopped", 0, 0, False, EXIT, True),
    ("unless-stopped", 137, 0, True, RESUME, False),  # remembers the stop by hand
    ("on-failure", 1, 99, False, EXIT, True),       # max 0: unlimited
    ("on-failure:3", 1, 3, False, EXIT, False),     # gave up
    ("on-failure:3", 1, 2, False, RESUME, True),
    ("on-failure", 0, 0, False, RESUME, False),     # a clean exit is not a failure
    ("on-failure", 137, 0, True, EXIT, False),
    ("on-failure", 137, 0, True, RESUME, True),     # as Docker at daemon start
    ("on-failure", None, 0, False, RESUME, True),   # an unknown exit is not a clean one
    ("no", 1, 0, False, EXIT, False),
    ("no", 1, 0, False, RESUME, False),
])
def test_decide(policy: str, code: int | None, count: int, by_hand: bool, moment: restarting.Moment,
                start: bool) -> None:
    name, _, n = policy.partition(":")
    for value in (models.RestartPolicy(name, int(n or 0)), base.RestartPolicy(name, int(n or 0))):
        d = restarting.decide(value, exit_code=code, restart_count=count, manually_stopped=by_hand, moment=moment)
        assert d.start is start, d.why


def test_the_reason_says_why() -> None:
    def why(policy: str, max_retries: int = 0, code: int = 1, count: int = 0, by_hand: bool = False) -> str:
        return restarting.decide(base.RestartPolicy(policy, max_retries), exit_code=code, restart_count=count,
                                 manually_stopped=by_hand, moment=RESUME).why

    assert why("always") == "exited (code 1); restart policy always"
    assert why("unless-stopped", by_hand=True) == "stopped by hand; restart policy unless-stopped keeps it stopped"
    assert why("on-failure", 3, count=3) == "exited (code 1) after 3 restarts; on-failure:3 gave up"
    assert why("no", code=0) == "exited (code 0); restart policy no leaves it stopped"
