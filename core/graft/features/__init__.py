"""The on-disk cache of a frozen extractor's features: when a stage may use it, its entries, the digests that
prove them, and the store."""
