"""The runner: samples -> pipelines -> metrics -> results database -> summary.

For each pipeline it scores only the samples the database does not already cover under
the same run key (so a rerun resumes), one batch per transaction. A pipeline that raises
on a batch is retried sample by sample so the failing sample is recorded under
``failures`` and the rest still count; a non-finite metric value is a failure too, never
averaged in. Under torchrun the batches are shared out among the ranks
(:mod:`bench.distributed`, :class:`bench.runner.plan.Plan`).

Modules, in the order a run uses them: :mod:`~bench.runner.plan` (what is missing, batches, prefetch),
:mod:`~bench.runner.execute` (predict, score, store a batch; :func:`~bench.runner.execute.run`) and
:mod:`~bench.runner.summary` (statistics, the table, ``summary.json``).
"""
