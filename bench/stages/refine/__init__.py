"""Generative refiners: stages that sample the target image (diffusion, flow matching, autoregressive
transformers, test-time guidance). Their networks live in :mod:`bench.nets`, the sampling algorithms
they call in :mod:`bench.sampling`."""
