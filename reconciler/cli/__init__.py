"""The `reconcile` command: argument parsing and output formatting only, no logic.

Each subcommand is a module here with `register(subparsers)` and `run(args) -> int`. Modules
import only the standard library at top level; heavy imports happen inside `run`, so that
`reconcile --version`, `ps` and `logs` answer fast.
"""
