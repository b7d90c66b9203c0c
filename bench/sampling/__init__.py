"""Sampling algorithms that are not stages: noise schedules, samplers and ODE solvers, each a short
function named after the algorithm it implements, called by the generative refiners in
:mod:`bench.stages.refine`."""
