"""Encoders: source images to features (``resnet_encoder``, seed 001's ``tae_encoder``; the VQ and VAE encoders of seeds 000 and 003 go here)."""
