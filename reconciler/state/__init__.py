"""reconciler.state."""
