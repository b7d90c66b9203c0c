"""Classifier-free guidance (Ho & Salimans 2022) as a wrapper of any denoiser."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor


def classifier_free_guidance(conditional: Callable[..., Tensor], unconditional: Callable[..., Tensor], weight: float
                             ) -> Callable[..., Tensor]:
    """The guided denoiser ``(1 + w) D_c − w D_u`` of a conditional and an unconditional one.

    Ho & Salimans 2022 combine ε-predictions as (1 + w) ε_c − w ε_u; at one x_t the x̂_0 of an
    ε-prediction is affine in it, so combining x̂_0 with the same weights is the same guidance.
    3DiM (../shared/seeds/002) guides this way; ``weight`` 0 is the conditional denoiser. Both
    denoisers take the same arguments (``x`` and a noise level); the unconditional one is usually
    the same network with its conditioning dropped.
    """

    def guided(x: Tensor, level: Tensor) -> Tensor:
        if weight == 0:
            return conditional(x, level)
        return (1 + weight) * conditional(x, level) - weight * unconditional(x, level)

    return guided
