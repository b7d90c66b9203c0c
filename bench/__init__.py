"""nvsbench: an evaluation-and-benchmark harness for novel view synthesis."""

__version__ = "0.1.0"
