"""Pose inverters: stages that estimate target cameras (``pred_poses``) from images."""
