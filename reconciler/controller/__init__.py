"""The controller loop and its parts (controller-runtime's contract, in threads).

- `triggers`: a coalescing, delaying, suspendable queue of keys (one key per source).
- `backoff`: per-key exponential backoff, reset by a success.
- `loop`: `ControllerLoop(reconcile)` with `Request`, `Result(requeue_after)` and the
  TerminalError / retry classification.
"""
