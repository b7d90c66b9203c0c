"""3DiM's stochastic conditioning (Watson et al. 2022, ../shared/seeds/002, "3D consistency via stochastic conditioning").

Views of a trajectory are generated one after the other. A pool holds the views available so far, the
input views and then every view already generated; while a view is denoised, each denoising step draws
its conditioning view at random from the pool, so the generated views agree with all of them rather than
with one. Each finished view joins the pool for the views after it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from bench.sampling.diffusion.samplers import ddpm_ancestral

#: ``denoise(x_t (B,C,H,W), λ, target index j, conditioning images (B,C,H,W), their pool indices (B,)) -> x̂_0``;
#: pool index i < number of inputs is input view i, larger ones are the views generated so far, in order.
ConditionedDenoiser = Callable[[Tensor, Tensor, int, Tensor, Tensor], Tensor]


def sample_with_stochastic_conditioning(denoise: ConditionedDenoiser, inputs: list[Tensor], n_targets: int, logsnrs: Tensor,
                                        generator: torch.Generator | None = None) -> tuple[list[Tensor], int]:
    """Generate ``n_targets`` views in order by DDPM ancestral sampling with stochastic conditioning.

    Args:
        inputs: the input views, each (B, C, H, W) (one conditioning view per sample of the batch).
        logsnrs: the sampler's λ sequence (:func:`bench.sampling.diffusion.samplers.ddpm_ancestral`).

    Returns:
        the generated views, each (B, C, H, W), and the number of denoiser evaluations.
    """
    pool, generated, nfe = list(inputs), [], 0
    batch = inputs[0].shape[0]
    for j in range(n_targets):
        stacked = torch.stack(pool)  # (P, B, C, H, W)

        def conditioned(x: Tensor, lam: Tensor, j: int = j, stacked: Tensor = stacked) -> Tensor:
            index = torch.randint(len(stacked), (batch,), generator=generator, device=x.device)
            images = stacked[index, torch.arange(batch, device=x.device)]
            return denoise(x, lam, j, images, index)

        x = torch.randn(inputs[0].shape, generator=generator, dtype=inputs[0].dtype, device=inputs[0].device)
        view, steps = ddpm_ancestral(conditioned, x, logsnrs, generator)
        nfe += steps
        generated.append(view)
        pool.append(view)
    return generated, nfe
