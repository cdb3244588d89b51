"""Tests for reconciler."""
