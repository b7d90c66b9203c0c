"""Sampling algorithms that are not stages: noise schedules, samplers and ODE solvers, each a short
function named after the algorithm it implements, called by the generative refiners in
:mod:`bench.stages.refine`. :mod:`bench.sampling.diffusion` holds the diffusion ones (schedules,
ε / v / x_0 parameterizations and EDM preconditioning, DDPM, DDIM, Euler and Heun samplers,
classifier-free guidance), tested against diffusers' schedulers."""
