"""Training losses of the depth-guided skip NVS method (Minelli 2022, ../shared/seeds/001 section 2.3):
``L_tot = α L_recon + β L_VGG + γ L_smooth + δ L_skip``, with L_recon the multiscale L1 of the NVS
decoder plus the photometric reprojection loss of the depth decoder. Weights live in the
pipeline YAML (``pipelines/depth_guided.yaml``).

Shapes: ``target["image"]`` is (B, T, 3, H, W); depth scales are lists (coarsest first) of
(B, T, h, w) z-depth; image scales lists of (B, T, 3, h, w).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.cameras import relative_pose
from bench.metrics.perceptual import VGG16_FILE, weights_dir
from bench.stages.lift.warp import inverse_warp, pair_cameras, scale_intrinsics
from bench.train.losses import loss, per_draw

#: relu1_2, relu2_2, relu3_3, relu4_3 of torchvision's ``vgg16().features`` (Johnson et al. 2016).
VGG_LAYERS = (3, 8, 15, 22)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    """(..., C, h, w) maps area-averaged (down) or bilinearly resized (up) to ``size``."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    flat = x.reshape(-1, *x.shape[-3:])
    mode = "area" if size[0] < x.shape[-2] else "bilinear"
    out = F.interpolate(flat, size=size, mode=mode, **({} if mode == "area" else {"align_corners": False}))
    return out.reshape(*x.shape[:-2], *size)


@loss(requires=("pred_image_scales",))
def multiscale_l1(state: dict[str, Any], target: dict[str, Tensor], weights: tuple[float, ...] | None = None) -> Tensor:
    """Multiscale reconstruction loss of the NVS decoder (seed section 2.3).

    Every output scale is upsampled (bilinear) to the target's size and compared with it by
    L1; the weighted sum over scales is returned. ``weights`` (coarsest first) default to
    ``2**-(L-1-k)`` for scale k of L (finest 1, each coarser one half the next): the seed weights
    scales "according to the importance of its resolution" without giving values.
    """
    scales = state["pred_image_scales"]
    weights = weights or tuple(2.0 ** -(len(scales) - 1 - k) for k in range(len(scales)))
    if len(weights) != len(scales):
        raise ValueError(f"multiscale_l1 has {len(weights)} weights for {len(scales)} scales")
    gt = target["image"]
    return sum(w * (_resize(p, gt.shape[-2:]) - gt).abs().mean() for w, p in zip(weights, scales))


def _ssim_dissimilarity(a: Tensor, b: Tensor) -> Tensor:
    """(N, C, h, w) -> (N, h, w): (1 - SSIM) / 2 over a 3x3 window, channel mean (Godard et al. 2017)."""
    from kornia.metrics import ssim

    return ((1 - ssim(a, b, window_size=3)) / 2).mean(1)


@loss(requires=("pred_depth_scales", "source_image", "source_K", "source_cam2world", "target_K", "target_cam2world"))
def photometric_reprojection(
    state: dict[str, Any], target: dict[str, Tensor], ssim_weight: float = 0.85, max_angle_deg: float = 180.0
) -> Tensor:
    """Photometric reprojection loss of the depth decoder (seed section 2.3; Zhou et al. 2017; Godard et al. 2019).

    At each skip depth scale, the first source image and the target image are resized to the
    scale (area averaging), the source is inverse-warped into the target by that depth
    (:func:`bench.stages.lift.warp.inverse_warp`, intrinsics scaled with the image) and compared with
    the target by ``ssim_weight * (1 - SSIM) / 2 + (1 - ssim_weight) * L1`` (Monodepth's 0.85 by
    default; 0 gives the seed's L1), averaged over pixels whose warp lands inside the source,
    of the (source, target) pairs whose relative rotation is at most ``max_angle_deg``: the seed
    trains on pairs within 40° of azimuth (section 3.1), and across wider baselines occlusion
    makes the true depth no better than a wrong one. Returns the mean over scales (0 when no
    pair of the batch is close enough).
    """
    gt = target["image"]
    b, t = gt.shape[:2]
    src_K, src_pose, tgt_K, tgt_pose = pair_cameras(state)
    rotation = relative_pose(src_pose, tgt_pose)[:, :3, :3]
    cos_angle = (rotation.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    close = (cos_angle >= math.cos(math.radians(max_angle_deg)) - 1e-6)[:, None, None]
    src_size, tgt_size = tuple(state["source_image"].shape[-2:]), tuple(gt.shape[-2:])
    source = state["source_image"][:, :1].expand(b, t, -1, -1, -1).reshape(b * t, 3, *src_size)
    terms = []
    for depth in state["pred_depth_scales"]:
        size = tuple(depth.shape[-2:])
        warped, valid = inverse_warp(
            _resize(source, size), depth.reshape(b * t, *size),
            scale_intrinsics(src_K, src_size, size), src_pose, scale_intrinsics(tgt_K, tgt_size, size), tgt_pose,
        )
        reference = _resize(gt.reshape(b * t, 3, *tgt_size), size)
        error = (1 - ssim_weight) * (warped - reference).abs().mean(1)
        if ssim_weight > 0:
            error = error + ssim_weight * _ssim_dissimilarity(warped, reference)
        valid = valid & close
        terms.append((error * valid).sum() / valid.sum().clamp(min=1))
    return torch.stack(terms).mean()


@functools.cache
def _vgg16_features(path: Path, device: str) -> nn.Module:
    """torchvision VGG16's ``features[:23]`` (built alone, without the classifier) with weights read from ``path``."""
    from torchvision.models.vgg import cfgs, make_layers

    from bench.train.checkpoint import load_checkpoint

    net = make_layers(cfgs["D"])[: VGG_LAYERS[-1] + 1]
    state = {k.removeprefix("features."): v for k, v in load_checkpoint(path, mmap=True).items() if k.startswith("features.")}
    net.load_state_dict({k: v for k, v in state.items() if int(k.split(".")[0]) <= VGG_LAYERS[-1]})
    return net.eval().requires_grad_(False).to(device)


def _vgg_path() -> Path:
    return weights_dir() / VGG16_FILE


def _perceptual_description() -> str:
    path = _vgg_path()
    if path.is_file():
        return f"vgg16 relu1_2/relu2_2/relu3_3/relu4_3 L1 ({path})"
    return f"substitute: sobel_l1 (missing {path})"


def _vgg_l1(pred: Tensor, gt: Tensor, net: nn.Module) -> Tensor:
    """Sum over VGG_LAYERS of the mean L1 distance of (N, 3, H, W) images' features."""
    mean, std = pred.new_tensor(IMAGENET_MEAN)[:, None, None], pred.new_tensor(IMAGENET_STD)[:, None, None]
    x = (torch.cat([pred, gt]) - mean) / std
    total = pred.new_zeros(())
    for i, layer in enumerate(net):
        x = layer(x)
        if i in VGG_LAYERS:
            a, b = x.chunk(2)
            total = total + (a - b).abs().mean()
    return total


def _sobel_l1(pred: Tensor, gt: Tensor) -> Tensor:
    """Mean L1 distance of the (normalised) Sobel gradients of (N, 3, H, W) images."""
    from kornia.filters import spatial_gradient

    return (spatial_gradient(pred, mode="sobel") - spatial_gradient(gt, mode="sobel")).abs().mean()


@loss(requires=("pred_image",), description=_perceptual_description)
def perceptual_vgg16(state: dict[str, Any], target: dict[str, Tensor]) -> Tensor:
    """VGG perceptual loss (seed section 2.3, after Hou et al. 2021; Johnson et al. 2016).

    Sum over relu1_2, relu2_2, relu3_3 and relu4_3 of ImageNet-pretrained VGG16 of the mean L1
    distance between the features of ``pred_image`` and the target (ImageNet normalisation).
    The weights are read from ``$NVSBENCH_WEIGHTS/vgg16-397923af.pth``
    (:func:`bench.metrics.perceptual.weights_dir`); without that file a substitute runs, the L1
    distance of the Sobel gradients of the two images (an edge loss that, like the perceptual
    loss, penalises blur), and the checkpoint records which one ran.
    """
    pred = state["pred_image"]
    gt = per_draw(pred, target["image"])
    pred, gt = pred.flatten(0, 2), gt.flatten(0, 2)
    path = _vgg_path()
    if path.is_file():
        return _vgg_l1(pred, gt, _vgg16_features(path, str(pred.device)))
    return _sobel_l1(pred, gt)


@loss(requires=("pred_depth_scales",))
def edge_aware_smoothness(state: dict[str, Any], target: dict[str, Tensor]) -> Tensor:
    """Edge-aware smoothness of the skip depth scales (Godard et al. 2017; seed section 2.3).

    At each scale, with the target image resized to it and the depth divided by its mean
    (Godard et al. 2019): ``mean |∂x d*| e^{-|∂x I|} + mean |∂y d*| e^{-|∂y I|}``, image
    gradients averaged over channels; scale k of L (finest last) is weighted ``2**-(L-1-k)``
    as in Monodepth2. Returns the sum over scales.
    """
    gt = target["image"]
    scales = state["pred_depth_scales"]
    total = gt.new_zeros(())
    for k, depth in enumerate(scales):
        image = _resize(gt, depth.shape[-2:])
        d = depth / depth.mean((-2, -1), keepdim=True).clamp(min=1e-6)
        dx, dy = (d[..., :, 1:] - d[..., :, :-1]).abs(), (d[..., 1:, :] - d[..., :-1, :]).abs()
        ix = (image[..., :, 1:] - image[..., :, :-1]).abs().mean(-3)
        iy = (image[..., 1:, :] - image[..., :-1, :]).abs().mean(-3)
        total = total + ((dx * torch.exp(-ix)).mean() + (dy * torch.exp(-iy)).mean()) * 2.0 ** -(len(scales) - 1 - k)
    return total


@loss(requires=("depth_unskip_scales", "pred_depth_scales", "encode_images", "decode_depth"))
def skip_consistency(state: dict[str, Any], target: dict[str, Tensor]) -> Tensor:
    """L_skip of the seed (section 2.3): the depths from the source agree with those from the target itself.

    The target image is encoded (``encode_images``: z_b, z_b^F) and decoded by the skip pass
    (``decode_depth``: ``DepDec_skip(z_b, z_b^F)``, the target's own features need no warp);
    the loss is ``|DepDec_unskip(z_a2b) - DepDec_skip(z_b, z_b^F)| +
    |DepDec_skip(z_a2b, z_a2b^F) - DepDec_skip(z_b, z_b^F)|``, mean L1 per scale, averaged over
    scales. Gradients reach both paths (the seed does not stop either).
    """
    latent, features = state["encode_images"](target["image"])
    reference = state["decode_depth"](latent, features)
    pairs = zip(state["depth_unskip_scales"], state["pred_depth_scales"], reference)
    return torch.stack([(u - r).abs().mean() + (s - r).abs().mean() for u, s, r in pairs]).mean()
