"""One healthcheck rule, two readers: `base.healthcheck_of` (the native records, the fake, the
Podman variant) and `summaries.image_healthcheck` (what `ps` reads from the state DB's rows
without a dataclass) merge a container's healthcheck over its image's as dockerd does."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.runtime import base
from reconciler.runtime.native.containers import summaries

NS = 10**9
IMAGE = {"Test": ["CMD", "check"], "Interval": 120 * NS, "Timeout": 3 * NS, "Retries": 5, "StartPeriod": 10 * NS,
         "StartInterval": NS // 2}


@pytest.mark.parametrize(("own", "image", "merged"), [
    (None, None, None),
    (None, {"Test": ["NONE"]}, None),
    (base.Healthcheck(("NONE",)), IMAGE, None),
    (None, {"Test": ["CMD", "check"]}, base.Healthcheck(("CMD", "check"))),               # Docker's defaults
    (None, IMAGE, base.Healthcheck(("CMD", "check"), 120, 3, 5, 10, 0.5)),
    # an empty test and the timings of 0 are the image's (moby's daemon merge)
    (base.Healthcheck((), 1, 0, 0, 0, 0), IMAGE, base.Healthcheck(("CMD", "check"), 1, 3, 5, 10, 0.5)),
    (base.Healthcheck((), 0, 0, 0, 60, 0.2), None, None),                                 # no test anywhere
    (base.Healthcheck(("CMD", "mine"), 30, 30, 3, 0, 0), IMAGE,
     base.Healthcheck(("CMD", "mine"), 30, 30, 3, 10, 0.5)),
    (base.Healthcheck(("CMD", "mine"), 5, 1, 2, 0, 0), {}, base.Healthcheck(("CMD", "mine"), 5, 1, 2, 0, 0)),
])
def test_both_readers_merge_as_dockerd(own: base.Healthcheck | None, image: dict[str, Any] | None,
                                       merged: base.Healthcheck | None) -> None:
    assert base.healthcheck_of(own, image) == merged
    as_json = None if own is None else base.config_to_json(base.ContainerConfig(name="c", image="i",
                                                                                healthcheck=own))["healthcheck"]
    row = summaries.image_healthcheck({"Healthcheck": image} if image else {}, as_json)
    if merged is None:
        assert row is None or not summaries.probes(row["test"])
    else:
        config = base.config_to_json(base.ContainerConfig(name="c", image="i", healthcheck=merged))
        assert row == {**config["healthcheck"], "test": merged.test}
