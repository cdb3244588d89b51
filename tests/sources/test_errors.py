"""Source errors are classified for the controller loop by their type alone."""

from __future__ import annotations

import pytest

from reconciler.controller import backoff, loop
from reconciler.errors import ReconcilerError, TemporaryError, TerminalError
from reconciler.sources import errors
from tests.controller.clocks import wait_for


def test_the_tree() -> None:
    assert issubclass(errors.SourceError, ReconcilerError)
    assert issubclass(errors.SourceUnavailable, errors.SourceError)
    assert issubclass(errors.SourceUnavailable, TemporaryError)
    assert issubclass(errors.SourceInvalid, errors.SourceError)
    assert issubclass(errors.SourceInvalid, TerminalError)
    assert errors.SourceUnavailable("x", delay=3).delay == 3


@pytest.mark.parametrize(
    ("error", "outcome", "scheduled"),
    [
        (errors.SourceUnavailable("git fetch: connection refused"), loop.Outcome.ERROR, True),
        (errors.SourceInvalid("branch nope not found"), loop.Outcome.TERMINAL, False),
    ],
)
def test_the_loop_retries_unavailable_sources_and_waits_on_invalid_ones(
    error: errors.SourceError, outcome: loop.Outcome, scheduled: bool
) -> None:
    def reconcile(request: loop.Request) -> loop.Result:
        raise error

    policy = backoff.BackoffPolicy(base=3600.0)  # a retry would be scheduled, far away
    with loop.ControllerLoop(reconcile, backoff=backoff.Backoff(policy)) as ctl:
        ctl.trigger("src")
        wait_for(lambda: ctl.status("src").passes == 1, what="the pass")
        status = ctl.status("src")
    assert status.last_outcome is outcome
    assert (status.next_in is not None) is scheduled
