"""reconciler.runtime.native."""
