"""``python -m bench`` is ``nvsbench`` (also the target of ``torchrun -m bench``)."""

from bench.cli import entry

entry()
