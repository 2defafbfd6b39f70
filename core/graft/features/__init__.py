"""The on-disk cache of a frozen extractor's features: when a stage may use it, its entries, and the store."""
