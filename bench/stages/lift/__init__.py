"""Lifts: pixels or features placed in 3D or moved to the target cameras (``unproject_depth``, the
pixel-aligned field and the frustum volume, seed 001's latent transform and depth warp)."""
