"""reconciler.runtime."""
