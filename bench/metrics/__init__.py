"""Metrics by family: image, depth, pose, segmentation, consistency; and statistics over samples."""
