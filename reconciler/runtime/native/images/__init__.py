"""The native engine's images: content store (blobs by digest), the layer extractor, ChainID
snapshots, the image store (pull, tags, records), garbage collection, save/load archives."""
