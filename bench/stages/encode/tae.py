"""The transforming auto-encoder's encoder: an image to a point-set latent and multi-scale features."""

from __future__ import annotations

from torch import Tensor, nn

from bench.stages.base import Stage
from bench.stages.encode.resnet import ResNetEncoder


class TAEEncoder(Stage):
    """Encoder of the depth-guided method (../shared/seeds/001 section 2.2, after Chen et al. 2019).

    A ResNet-style CNN (:class:`bench.stages.encode.resnet.ResNetEncoder`) gives features at 1/2,
    1/4, ... of the image size; its coarsest map is reduced by a 1x1 convolution, average-pooled
    to a ``pool x pool`` grid (so any image size works) and mapped by a fully connected layer to
    the dense latent, read as ``points`` 3D points in the source camera's frame so that a rigid
    transform can act on it (Chen et al. 2019; the seed's FC replaces ResNet's last pooling and
    gives a 1x1x600 code, i.e. 200 points).

    Provides

    - ``latent``: (B, S, N, 3) points, N = ``points``;
    - ``source_features``: list over scales of (B, S, C_k, ceil(H / 2**(k+1)), ceil(W / 2**(k+1)))
      (the mid features z_S^F of the seed, same contract as ``resnet_encoder``);
    - ``encode_images``: this encoder as a function of (B, V, 3, H, W) images returning
      ``(latent, features)``, for losses that encode the target views (the seed's L_skip).
    """

    requires = ("source_image",)
    provides = ("latent", "source_features", "encode_images")

    def __init__(self, channels: tuple[int, ...] = (16, 32, 64, 64), points: int = 64, reduce: int = 16, pool: int = 4):
        super().__init__()
        self.points = points
        self.backbone = ResNetEncoder(channels)
        self.head = nn.Sequential(
            nn.Conv2d(channels[-1], reduce, 1), nn.LeakyReLU(0.2), nn.AdaptiveAvgPool2d(pool), nn.Flatten(),
            nn.Linear(reduce * pool * pool, points * 3),
        )

    def encode(self, images: Tensor) -> tuple[Tensor, list[Tensor]]:
        """(B, V, 3, H, W) images -> latent (B, V, N, 3) and features, a list of (B, V, C_k, h_k, w_k)."""
        b, v = images.shape[:2]
        features = self.backbone({"source_image": images})["source_features"]
        latent = self.head(features[-1].flatten(0, 1)).reshape(b, v, self.points, 3)
        return latent, features

    def forward(self, state: dict[str, Tensor]) -> dict:
        latent, features = self.encode(state["source_image"])
        return {"latent": latent, "source_features": features, "encode_images": self.encode}
