"""Diffusion sampling: noise schedules (:mod:`.schedules`), what a network predicts and how it is
preconditioned (:mod:`.parameterization`), samplers (:mod:`.samplers`) and classifier-free guidance
(:mod:`.guidance`). Training losses are in :mod:`bench.train.losses.diffusion`.

Two forms of the forward process are used, each by the methods that were published with it:

- variance preserving (VP; 3DiM, DDPM/DDIM): ``x_t = α_t x_0 + σ_t ε`` with ``α² + σ² = 1``, indexed
  by the log signal-to-noise ratio ``λ = log(α² / σ²)``; a VP denoiser is ``denoise(x_t, λ) -> x̂_0``;
- variance exploding (VE; EDM, GeNVS): ``x = x_0 + σ ε``, indexed by σ; an EDM denoiser is
  ``denoise(x, σ) -> x̂_0``.

Tensors are any shape (B, ...), noise levels are (B,) or scalars broadcast over the batch.
"""
