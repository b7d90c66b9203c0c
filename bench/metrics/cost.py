"""What a prediction cost: ``fn(seconds, views, nfe) -> value`` per sample, measured by the runner.

``seconds`` is the wall-clock time of the pipeline's predict call for the sample's batch, shared
evenly by its samples; ``views`` the views the sample's prediction holds (targets × draws); ``nfe``
the network evaluations the pipeline reports spending on the sample (``Prediction.nfe``), or None.
Cost metrics are opt-in (list them in a suite): they are measurements of this machine, not of the
predictions, so a rerun gives other seconds (stored rows are reused on resume, as for any metric).
"""

from __future__ import annotations

from bench.metrics.base import metric


@metric("cost", higher_is_better=False)
def seconds_per_view(seconds: float, views: int, nfe: int | None) -> float:
    """Wall-clock seconds of prediction per generated view (target × draw), on the device the run used."""
    return seconds / views


@metric("cost", higher_is_better=False, needs_predicted=("nfe",))
def nfe_per_view(seconds: float, views: int, nfe: int | None) -> float:
    """Network evaluations per generated view (a diffusion sampler's steps, twice with guidance), as the pipeline reports."""
    if nfe is None:
        raise ValueError("the pipeline reported no network evaluations (Prediction.nfe)")
    return nfe / views
