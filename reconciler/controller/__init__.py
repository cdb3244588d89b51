"""reconciler.controller."""
