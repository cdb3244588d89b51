"""Image builds on the native engine: Dockerfile parser, build context, layer diffs, builder."""
