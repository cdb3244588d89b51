"""reconciler.planning."""
