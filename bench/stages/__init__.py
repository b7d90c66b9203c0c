"""Pipeline stages: encoders, lifts, renderers, refiners, heads and pose inverters.

Each stage is registered by name in :mod:`bench.registry` and documented in its module.
"""
