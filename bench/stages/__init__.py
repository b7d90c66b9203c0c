"""Pipeline stages, grouped by the role they play in a pipeline (``docs/ARCHITECTURE.md``):
:mod:`.encode`, :mod:`.lift`, :mod:`.render`, :mod:`.refine`, :mod:`.heads` and :mod:`.pose`.

Each stage is registered by name in :mod:`bench.registry` and documented in its module; the
contract is :class:`bench.stages.base.Stage`.
"""
