"""The stage contract: an ``nn.Module`` that reads named fields of the pipeline state and adds others."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn


class Stage(nn.Module):
    """A building block of a pipeline.

    ``requires`` names the state fields it reads (see :mod:`bench.types` for the shared
    ones); ``provides`` the fields its ``forward`` returns. A pipeline checks when it is
    loaded that every requirement is met by the suite or by an earlier stage.
    """

    requires: ClassVar[tuple[str, ...]] = ()
    provides: ClassVar[tuple[str, ...]] = ()
    #: Parameters that change how a trained model is sampled, not the model (steps, guidance weight, draws): a
    #: checkpoint fits whatever their values; they still enter the run key, so each setting is its own run.
    sampling_params: ClassVar[tuple[str, ...]] = ()

    def forward(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        raise NotImplementedError
