"""reconciler.execution."""
