"""`reconcile agent`: the daemon that assembles sources, the controller loop, the executor,
supervision of native containers and the API.

- `config`: the agent's YAML configuration, validated (`AgentConfig`, `load_config`).
- `daemon`: `Agent` (one process: sources → loop → passes; status, events, metrics, rollback)
  and `run_agent(config)` (signals: SIGTERM stops after the action in flight, SIGHUP reloads).
- `supervise`: the native engine's restart policies and healthchecks, with a flap limit.
- `metrics`: the Prometheus collectors.
- `heap`: glibc malloc's arena limit (at start) and trim (after each pass): memory at rest.

Import modules, not names: `from reconciler.agent import daemon`.
"""
