"""A pass with nothing to do, for 50 and 500 declared containers (issue 7's benchmark, first half).

Prints, per size, the median of several runs of:
  load     spec.load of the generated manifests (one file per container)
  plan     planning.plan() alone (pure)
  pass     the whole no-op pass as `reconcile --once` runs it after loading: digest lookups
           (cached), one observe, plan, empty execute, inventory record
  total    load + pass: what `reconcile --once` spends after start-up
Goal (DESIGN §9, issue 7): total < 0.2 s for 50 and < 1 s for 500. The engine here is the
in-memory runtime, so this measures the reconciler's own cost; the comparison with
`docker compose up -d` on an up-to-date project needs the native runtime (bench later).

Usage: .venv/bin/python bench/bench_plan.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reconciler import spec
from reconciler._sqlite import Database
from reconciler.execution import observing, passes
from reconciler.planning import planner
from reconciler.runtime.fake import FakeRuntime
from reconciler.state import inventory

IMAGE = "127.0.0.1:5000/bench/busybox:1"
GOALS = {50: 0.2, 500: 1.0}


def manifests(root: Path, n: int) -> Path:
    d = root / f"m{n}"
    d.mkdir()
    (d / "net.yaml").write_text("apiVersion: reconciler/v1\nkind: Network\nmetadata: {name: bench}\nspec: {subnet: 10.99.0.0/22}\n")
    for i in range(n):
        (d / f"c{i:03d}.yaml").write_text(
            "apiVersion: reconciler/v1\nkind: Container\n"
            f"metadata: {{name: c{i:03d}, labels: {{app: bench}}}}\n"
            f"spec:\n  image: {IMAGE}\n  command: [sleep, '3600']\n"
            f"  env: {{INDEX: '{i}', LOG_LEVEL: info}}\n"
            f"  ports: ['127.0.0.1:{20000 + i}:80']\n  networks: [bench]\n  restart: always\n")
    return d


def median_time(fn, runs: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    print(f"{'containers':>10}  {'load s':>8}  {'plan s':>8}  {'pass s':>8}  {'total s':>8}  {'goal s':>7}  ok")
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for n, goal in GOALS.items():
            m = manifests(root, n)
            t_load = median_time(lambda m=m: spec.load(m), args.runs)
            desired = spec.load(m)
            rt = FakeRuntime()
            rt.publish(IMAGE)
            db = Database(root / f"state{n}.db")
            options = passes.PassOptions(owner="bench", digest_ttl=3600)
            first = passes.run_pass(desired, rt, db, options)        # converge once
            assert first.converged, first.plan.render()
            again = passes.run_pass(desired, rt, db, options)
            assert again.plan.is_empty(), again.plan.render()
            obs = observing.observe(rt, resolved={IMAGE: rt.resolve_digest(IMAGE)})
            inv = inventory.InventoryStore(db, "bench").load()
            popts = planner.PlanOptions(owner="bench")
            t_plan = median_time(lambda d=desired, o=obs, i=inv, p=popts: planner.plan(d, o, i, p), args.runs)
            t_pass = median_time(lambda d=desired, r=rt, b=db, p=options: passes.run_pass(d, r, b, p), args.runs)
            total = t_load + t_pass
            ok = total < goal
            failed |= not ok
            print(f"{n:>10}  {t_load:8.3f}  {t_plan:8.4f}  {t_pass:8.3f}  {total:8.3f}  {goal:7.1f}  "
                  f"{'yes' if ok else 'NO'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
