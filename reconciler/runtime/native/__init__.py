"""The native engine: images/, containers/, network/ and volumes/ are its parts; backend.py,
transfer.py, commit.py and build/ compose them; config.py, journal.py and openat2.py are the
ground every part stands on. docs/architecture.md has the map, pyproject.toml the contracts."""
