"""Shared test helpers: real servers on loopback and real OCI images made from files."""
