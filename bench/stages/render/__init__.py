"""Renderers: target images (and depth) from lifted features (points, volumes, CNN decoders, the identity copy)."""
