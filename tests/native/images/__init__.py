"""Tests of native images: content store, extractor, snapshots, mounts, pull, GC."""
