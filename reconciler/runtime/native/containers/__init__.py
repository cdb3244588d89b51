"""The native engine's containers: records (all that `ps`, `inspect` and `logs` read), the
lifecycle (create, start, stop, remove), exec and attach, the OCI bundle with its seccomp
profile, conmon and the OCI runtime, cgroups, mounts, logs, restarts, health checks, stats,
`docker cp`, and start-up crash recovery."""
