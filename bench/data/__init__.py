"""Dataset readers (one per on-disk format) and the synthetic data generator."""
