"""3DiM (Watson et al. 2022, "Novel View Synthesis with Diffusion Models", ../shared/seeds/002): the ``three_dim`` stage.

A pose-conditional diffusion model on image pairs: the X-UNet (:mod:`bench.nets.xunet`) denoises a
target view given a clean conditioning view and both cameras (as per-pixel rays). Images are used in
[−1, 1]; the VP process runs on 3DiM's cosine log-SNR schedule.

- **Training** (``self.training``, with ``target_image`` in the state, which only ``nvsbench train``
  adds): per sample a time t ~ U[0, 1), λ = cosine log-SNR(t), x_t = α x_0 + σ ε for the target view;
  the first source view conditions with the clean level λ_max, dropped (zeros, camera rays zeroed)
  with probability ``cond_dropout`` for classifier-free guidance. Provides ``denoise_pred`` and
  ``denoise_target`` (B, 3, H, W) for the ``diffusion_mse`` loss (target ε, v or x_0 as ``prediction``
  says), and ``pred_image`` (x̂_0 of the target, for logs).
- **Sampling**: the views of a sample are generated in order by DDPM ancestral sampling over ``steps``
  levels with stochastic conditioning (:mod:`bench.sampling.diffusion.stochastic_conditioning`): the
  pool holds the source views and every view generated so far, and each step conditions on one drawn
  at random; classifier-free guidance with ``guidance_weight`` (0: none); x̂_0 clipped to [−1, 1] at
  each step, as 3DiM does. the suite's ``draws`` independent draws fill the draw axis; the random draws come from
  a generator seeded with the batch's first sample seed (the runner gives every sample the same batch
  companions on every run, so a seed gives the same draws, resumed or not).

Provides ``pred_image`` (B, T, D, 3, H, W) in [0, 1] and ``pred_nfe`` (B,): ``steps`` network evaluations
per target view and draw (twice that with guidance), for the ``nfe_per_view`` metric.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from bench.nets.xunet import XUNet
from bench.sampling.diffusion.guidance import classifier_free_guidance
from bench.sampling.diffusion.parameterization import target_of, x0_from
from bench.sampling.diffusion.schedules import alpha_sigma, cosine_logsnr
from bench.sampling.diffusion.stochastic_conditioning import sample_with_stochastic_conditioning
from bench.stages.base import Stage
from bench.stages.render.volume import pixel_rays
from bench.train.losses.diffusion import uniform_times


def camera_rays(K: Tensor, cam2world: Tensor, size: tuple[int, int]) -> Tensor:
    """(N, 6, H, W) per-pixel ray origin and unit direction (world frame) of N cameras: 3DiM's pose conditioning."""
    origins, directions = pixel_rays(K, cam2world, size)
    rays = torch.cat([origins, torch.nn.functional.normalize(directions, dim=-1)], dim=-1)  # (N, HW, 6)
    return rays.transpose(1, 2).reshape(K.shape[0], 6, *size)


class ThreeDiM(Stage):
    """3DiM's pose-conditional X-UNet diffusion model (see the module docstring)."""

    requires = ("source_image", "source_K", "source_cam2world", "target_K", "target_cam2world", "target_size", "seed", "draws")
    provides = ("pred_image", "pred_nfe", "denoise_pred", "denoise_target")
    sampling_params = ("steps", "guidance_weight")

    def __init__(
        self,
        channels: int = 32,
        mults: tuple[int, ...] = (1, 2, 2),
        attention_levels: tuple[int, ...] = (2,),
        heads: int = 4,
        ray_frequencies: int = 4,
        prediction: Literal["eps", "v", "x0"] = "eps",
        cond_dropout: float = 0.1,
        steps: int = 64,
        guidance_weight: float = 0.0,
        logsnr_min: float = -20.0,
        logsnr_max: float = 20.0,
    ):
        super().__init__()
        if steps < 1 or not 0 <= cond_dropout < 1:
            raise ValueError(f"three_dim: steps must be at least 1 and cond_dropout in [0, 1), got {steps}, {cond_dropout}")
        self.net = XUNet(channels, tuple(mults), tuple(attention_levels), heads, ray_frequencies)
        self.prediction, self.cond_dropout = prediction, cond_dropout
        self.steps, self.guidance_weight = steps, guidance_weight
        self.logsnr_min, self.logsnr_max = logsnr_min, logsnr_max

    def forward(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        if self.training and "target_image" in state:
            return self._train_step(state)
        return self._sample(state)

    def _rays(self, K: Tensor, cam2world: Tensor, size: tuple[int, int]) -> Tensor:
        """(B, V, 6, H, W) rays of (B, V) cameras."""
        b, v = K.shape[:2]
        return camera_rays(K.flatten(0, 1), cam2world.flatten(0, 1), size).reshape(b, v, 6, *size)

    def _predict_x0(self, x_t: Tensor, lam: Tensor, cond: Tensor, cond_rays: Tensor, rays: Tensor, keep: Tensor | None) -> Tensor:
        """x̂_0 (B, 3, H, W) of the noisy view ``x_t`` at log-SNR ``lam`` given a clean conditioning view, clipped to [−1, 1]."""
        b = x_t.shape[0]
        levels = torch.stack([torch.full((b,), self.logsnr_max, device=x_t.device), torch.as_tensor(lam, device=x_t.device).expand(b)], 1)
        out = self.net(torch.stack([cond, x_t], 1), levels.float(), torch.stack([cond_rays, rays], 1), keep)
        alpha, sigma = alpha_sigma(levels[:, 1].to(x_t.dtype))
        return x0_from(self.prediction, out, x_t, alpha, sigma).clamp(-1, 1)

    def _train_step(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        x0 = state["target_image"][:, 0] * 2 - 1  # (B, 3, H, W), the first target of each pair
        cond = state["source_image"][:, 0] * 2 - 1
        b, size = x0.shape[0], tuple(x0.shape[-2:])
        lam = cosine_logsnr(uniform_times(b, device=x0.device), self.logsnr_min, self.logsnr_max)
        alpha, sigma = alpha_sigma(lam)
        eps = torch.randn_like(x0)
        x_t = alpha.view(b, 1, 1, 1) * x0 + sigma.view(b, 1, 1, 1) * eps
        keep = (torch.rand(b, device=x0.device) >= self.cond_dropout).float()
        rays = self._rays(torch.stack([state["source_K"][:, 0], state["target_K"][:, 0]], 1),
                          torch.stack([state["source_cam2world"][:, 0], state["target_cam2world"][:, 0]], 1), size)
        levels = torch.stack([torch.full_like(lam, self.logsnr_max), lam], 1)
        pred = self.net(torch.stack([cond, x_t], 1), levels, rays, keep)
        x0_hat = x0_from(self.prediction, pred, x_t, alpha, sigma)
        t = state["target_K"].shape[1]
        return {
            "denoise_pred": pred, "denoise_target": target_of(self.prediction, x0, eps, alpha, sigma),
            "pred_image": ((x0_hat.clamp(-1, 1) + 1) / 2)[:, None, None].expand(-1, t, 1, -1, -1, -1),
        }

    def _sample(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        sources = state["source_image"] * 2 - 1  # (B, S, 3, H, W)
        b, s = sources.shape[:2]
        t = state["target_K"].shape[1]
        size = tuple(int(x) for x in state["target_size"])
        d = int(state["draws"])  # the suite's draws
        # every draw is a row of one batch of B * D: rows of a sample are consecutive
        rep = lambda x: x.repeat_interleave(d, 0)  # noqa: E731
        cameras_K = rep(torch.cat([state["source_K"], state["target_K"]], 1))  # (BD, S + T, 3, 3): pool cameras, then targets
        cameras_c2w = rep(torch.cat([state["source_cam2world"], state["target_cam2world"]], 1))
        rays = self._rays(cameras_K, cameras_c2w, size)  # (BD, S + T, 6, H, W)
        rows = torch.arange(b * d, device=sources.device)
        generator = torch.Generator(device=sources.device).manual_seed(int(state["seed"][0]))

        def denoise(x: Tensor, lam: Tensor, j: int, cond: Tensor, index: Tensor) -> Tensor:
            cond_rays = rays[rows, index]  # pool entry i < S is source i; S + k is generated target k
            target_rays = rays[:, s + j]

            def conditional(x_: Tensor, lam_: Tensor) -> Tensor:
                return self._predict_x0(x_, lam_, cond, cond_rays, target_rays, None)

            def unconditional(x_: Tensor, lam_: Tensor) -> Tensor:  # the conditioning view dropped, as in training
                return self._predict_x0(x_, lam_, cond, cond_rays, target_rays, torch.zeros(b * d, device=x_.device))

            return classifier_free_guidance(conditional, unconditional, self.guidance_weight)(x, lam)

        logsnrs = torch.cat([cosine_logsnr(torch.linspace(1, 0, self.steps + 1, device=sources.device), self.logsnr_min,
                                           self.logsnr_max)[:-1], torch.tensor([math.inf], device=sources.device)])
        views, nfe = sample_with_stochastic_conditioning(denoise, [rep(sources[:, i]) for i in range(s)], t, logsnrs, generator)
        images = (torch.stack(views, 1).clamp(-1, 1) + 1) / 2  # (BD, T, 3, H, W)
        per_sample = nfe * (2 if self.guidance_weight else 1) * d  # one evaluation per row of the batch and step, two with guidance
        return {"pred_image": images.reshape(b, d, t, 3, *size).transpose(1, 2),
                "pred_nfe": torch.full((b,), per_sample, dtype=torch.int64, device=sources.device)}
