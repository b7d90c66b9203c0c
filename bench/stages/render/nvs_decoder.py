"""The image decoder of the depth-guided method (../shared/seeds/001): the target image from the
transformed latent and depth-warped source features."""

from __future__ import annotations

from torch import Tensor

from bench.nets.decoder import UpsamplingDecoder
from bench.stages.base import Stage


class NVSDecoder(Stage):
    """A CNN decoder with skip features: the target image from the transformed latent and the
    depth-warped source features (Hou et al. 2021; ../shared/seeds/001 "NVSDecoder").

    An :class:`UpsamplingDecoder` with three output channels, read as ``0.5 + x`` with no
    squashing, and clamped to [0, 1] only for ``pred_image``. A sigmoid output (the usual choice)
    stalls training here: on white-background objects an L1 loss under Adam drives the logits of
    the background past saturation (measured: logits above 17 after 600 steps, even with Mip-NeRF's
    widened sigmoid), where the gradient vanishes and the output stays all white. Provides
    ``pred_image_scales`` (list over levels, coarsest first, of (B, T, 3, h_k, w_k), unclamped)
    and ``pred_image`` (B, T, 1, 3, H, W), the finest level clamped to [0, 1].
    """

    requires = ("target_latent", "warped_features", "target_size")
    provides = ("pred_image_scales", "pred_image")

    def __init__(self, points: int = 64, channels: tuple[int, ...] = (32, 32, 32, 16, 16),
                 skip_channels: tuple[int, ...] = (64, 32, 16, 0), grid: int = 4):
        super().__init__()
        self.decoder = UpsamplingDecoder(points * 3, channels, skip_channels, 3, grid)

    def forward(self, state: dict[str, Tensor]) -> dict:
        size = tuple(int(x) for x in state["target_size"])
        latent = state["target_latent"]
        b, t = latent.shape[:2]
        raw = self.decoder(latent.flatten(0, 1).flatten(1), size, [f.flatten(0, 1) for f in state["warped_features"]])
        scales = [(0.5 + r).reshape(b, t, *r.shape[1:]) for r in raw]
        return {"pred_image_scales": scales, "pred_image": scales[-1][:, :, None].clamp(0, 1)}
