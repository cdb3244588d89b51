"""The native engine's named volumes: their records and data directories."""
