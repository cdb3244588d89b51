"""Load + validate 1,000 Container documents across 100 files (issue 2: "well under a second").

No peer tool loads this manifest language, so it prints the absolute time and the time per
document (best of several runs; the cold first run, which compiles the schema validators, is
what a CLI invocation pays), and as a floor the time libyaml alone takes to parse the same
files, with the ratio.

    .venv/bin/python bench/bench_spec_load.py [--files 100] [--per-file 10] [--runs 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml

from reconciler import spec

CONTAINER = """\
---
apiVersion: reconciler/v1
kind: Container
metadata:
  name: c{f}-{i}
  labels: {{app: bench, shard: "s{f}"}}
spec:
  image: 127.0.0.1:5000/bench/app:{i}
  command: ["/bin/app", "--port", "80"]
  env: {{LOG_LEVEL: info, SHARD: "{f}", INDEX: {i}}}
  envFiles: [common.env]
  ports: ["127.0.0.1:{port}:80/tcp"]
  networks: [net{net}]
  volumes: ["data{net}:/var/lib/app/{i}", "./app.conf:/etc/app.conf:ro"]
  restart: on-failure:3
  healthcheck: {{test: ["CMD", "/bin/check"], interval: 10s, timeout: 3s, retries: 3}}
  resources: {{memory: 256Mi, cpus: 0.5, pids: 256}}
  dependsOn: [{dep}]
  update: {{order: start-first, healthTimeout: 1m30s}}
"""

SHARED = """\
apiVersion: reconciler/v1
kind: Network
metadata: {{name: net{n}}}
spec: {{subnet: 10.210.{n}.0/24}}
---
apiVersion: reconciler/v1
kind: Volume
metadata: {{name: data{n}}}
"""


def generate(root: Path, files: int, per_file: int) -> int:
    (root / "common.env").write_text("A=1\nB=two\n# comment\n")
    (root / "app.conf").write_text("listen = 80\n")
    for n in range(10):
        (root / f"shared-{n}.yaml").write_text(SHARED.format(n=n))
    count = 0
    for f in range(files):
        docs = []
        for i in range(per_file):
            text = CONTAINER.format(f=f, i=i, port=20000 + f * per_file + i, net=f % 10, dep=f"c{f}-{i - 1}")
            docs.append(text if i else text.replace(f"  dependsOn: [c{f}--1]\n", ""))
            count += 1
        (root / f"apps-{f:03}.yaml").write_text("".join(docs))
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--per-file", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-spec-") as tmp:
        root = Path(tmp)
        generate(root, opts.files, opts.per_file)
        t0, c0 = time.perf_counter(), time.process_time()
        desired = spec.load(root)
        cold, cold_cpu = time.perf_counter() - t0, time.process_time() - c0
        n = len(desired.containers)
        runs = []
        for _ in range(opts.runs):
            t0, c0 = time.perf_counter(), time.process_time()
            spec.load(root)
            runs.append((time.process_time() - c0, time.perf_counter() - t0))
        best_cpu, best_wall = min(runs)
        # the floor: parsing the same files with libyaml alone (no positions, schema, checks, hashes)
        texts = [p.read_text() for p in sorted(root.glob("*.yaml"))]
        floor = []
        for _ in range(opts.runs):
            c0 = time.process_time()
            for text in texts:
                list(yaml.load_all(text, Loader=yaml.CSafeLoader))
            floor.append(time.process_time() - c0)
        files = len(desired.sources)
        print(f"spec.load: {n} Container documents (+{len(desired.networks)} networks, "
              f"{len(desired.volumes)} volumes) in {files} files")
        print("  (CPU time of this process is the stable number on a busy machine; wall time shown too)")
        print(f"  cold (first load, compiles validators): cpu {cold_cpu * 1000:7.1f} ms  wall {cold * 1000:7.1f} ms"
              f"  {cold_cpu / n * 1e6:6.1f} us/document")
        print(f"  warm (best of {opts.runs}):                   cpu {best_cpu * 1000:7.1f} ms  wall {best_wall * 1000:7.1f} ms"
              f"  {best_cpu / n * 1e6:6.1f} us/document")
        print(f"  yaml.load_all(CSafeLoader) alone:       cpu {min(floor) * 1000:7.1f} ms"
              f"  -> spec.load costs {best_cpu / min(floor):.2f}x bare parsing")
        print(f"  target: well under 1000 ms -> {'OK' if best_cpu < 1.0 else 'TOO SLOW'}")

if __name__ == "__main__":
    main()
