"""reconciler.runtime.docker."""
