"""Auxiliary heads: outputs besides the image (depth, segmentation) and their baselines."""
