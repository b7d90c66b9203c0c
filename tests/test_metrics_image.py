"""Image metrics against scikit-image / torchmetrics and closed forms (agreement within 1e-4)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from bench.metrics.image import l1, ms_ssim, mse, psnr, psnr_fg, psnr_masked, ssim, ssim_uniform7


def _pair(n: int = 3, h: int = 40, w: int = 52, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(n, 3, h, w, generator=g, dtype=torch.float64)
    pred = (target + 0.1 * torch.randn(n, 3, h, w, generator=g, dtype=torch.float64)).clamp(0, 1)
    return pred, target


def test_psnr_and_ssim_match_scikit_image():
    pred, target = _pair()
    ours_psnr, ours_ssim = psnr(pred, target), ssim(pred, target)
    for i in range(pred.shape[0]):
        p, t = pred[i].permute(1, 2, 0).numpy(), target[i].permute(1, 2, 0).numpy()
        assert ours_psnr[i].item() == pytest.approx(peak_signal_noise_ratio(t, p, data_range=1.0), abs=1e-4)
        ref = structural_similarity(t, p, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=2)
        assert ours_ssim[i].item() == pytest.approx(ref, abs=1e-4)


@pytest.mark.parametrize("smooth", [False, True])
@pytest.mark.parametrize("size", [(7, 7), (40, 52), (128, 128)])
def test_ssim_uniform7_is_scikit_images_default_ssim(size, smooth):
    """pixelNeRF's / SSDNeRF's SSIM: structural_similarity with only data_range and the channel axis given."""
    pred, target = _pair(2, *size)
    if smooth:  # low local contrast (a blurred target), where c2 and the 49/48 factor weigh more, and a small error
        target = F.avg_pool2d(target, 5, stride=1, padding=2, count_include_pad=False)
        pred = (target + 0.02 * (pred - target)).clamp(0, 1)
    ours = ssim_uniform7(pred, target)
    for i in range(2):
        ref = structural_similarity(target[i].numpy(), pred[i].numpy(), channel_axis=0, data_range=1.0)
        assert ours[i].item() == pytest.approx(ref, abs=1e-6)
    torch.testing.assert_close(ssim_uniform7(pred.float(), target.float()).double(), ours, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="ssim_uniform7 needs images at least 7 px on each side, got \\(6, 40\\)"):
        ssim_uniform7(*_pair(1, 6, 40))


def test_ssim_float32_matches_float64():
    pred, target = _pair()
    torch.testing.assert_close(ssim(pred.float(), target.float()).double(), ssim(pred, target), atol=1e-4, rtol=0)


def _ms_ssim_reference(pred: np.ndarray, target: np.ndarray) -> float:
    """Wang et al. 2003 with scipy's Gaussian filter, valid windows at every scale, channels averaged."""
    from scipy.ndimage import gaussian_filter

    def moments(x):  # (3, H, W) -> filtered, valid region (5 px border dropped)
        return np.stack([gaussian_filter(c, 1.5, truncate=3.5, mode="reflect") for c in x])[:, 5:-5, 5:-5]

    weights = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]
    value = 1.0
    for scale, w in enumerate(weights):
        mx, my = moments(pred), moments(target)
        vx, vy, cxy = moments(pred * pred) - mx**2, moments(target * target) - my**2, moments(pred * target) - mx * my
        cs = (2 * cxy + 0.03**2) / (vx + vy + 0.03**2)
        term = cs if scale < 4 else cs * (2 * mx * my + 0.01**2) / (mx**2 + my**2 + 0.01**2)
        value *= max(term.mean(), 0.0) ** w
        h, w_ = pred.shape[1] // 2 * 2, pred.shape[2] // 2 * 2
        pred = pred[:, :h, :w_].reshape(3, h // 2, 2, w_ // 2, 2).mean((2, 4))
        target = target[:, :h, :w_].reshape(3, h // 2, 2, w_ // 2, 2).mean((2, 4))
    return value


def test_ms_ssim_matches_reference_and_torchmetrics():
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure as tm_ms_ssim

    pred, target = _pair(2, 176, 194)
    ours = ms_ssim(pred, target)
    for i in range(2):
        assert ours[i].item() == pytest.approx(_ms_ssim_reference(pred[i].numpy(), target[i].numpy()), abs=1e-4)
        # torchmetrics averages the last scale's SSIM over a reflection-padded full image
        # instead of the valid region: a border effect of a few 1e-4
        ref = tm_ms_ssim(pred[i : i + 1], target[i : i + 1], data_range=1.0)
        assert ours[i].item() == pytest.approx(ref.item(), abs=1e-3)
    with pytest.raises(ValueError, match="larger than 160"):
        ms_ssim(*_pair(1, 128, 128))


def test_ssim_of_images_smaller_than_the_window_is_refused_and_the_window_size_itself_is_scored():
    with pytest.raises(ValueError, match="at least 11 px on each side, got \\(8, 40\\)"):
        ssim(*_pair(1, 8, 40))
    with pytest.raises(ValueError, match="at least 11 px"):
        ssim(*_pair(1, 40, 10))
    pred, target = _pair(1, 11, 11)  # one valid window position: compare with scikit-image
    ref = structural_similarity(target[0].permute(1, 2, 0).numpy(), pred[0].permute(1, 2, 0).numpy(), gaussian_weights=True,
                                sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=2)
    assert ssim(pred, target).item() == pytest.approx(ref, abs=1e-6)


def test_closed_forms():
    target = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    assert ssim(target, target).tolist() == pytest.approx([1.0, 1.0])
    assert l1(target, target).tolist() == [0.0, 0.0]
    assert torch.isinf(psnr(target, target)).all()
    shifted = (target * 0.5) + 0.1  # offset of +0.1 on a half-range image: constant error
    const = target * 0.5
    assert mse(shifted, const).tolist() == pytest.approx([0.01, 0.01])
    assert l1(shifted, const).tolist() == pytest.approx([0.1, 0.1])
    assert psnr(shifted, const).tolist() == pytest.approx([20.0, 20.0])


def test_masked_psnr_variants():
    target = torch.full((1, 3, 4, 4), 0.5, dtype=torch.float64)
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[:, :2] = True  # top half is foreground
    pred = target.clone()
    pred[:, :, 2:] = 0.0  # predicts black background exactly, perfect foreground
    assert torch.isinf(psnr_masked(pred, target, mask)).all()  # CO3D: target x mask
    pred[:, :, :2] += 0.1  # foreground off by 0.1 everywhere
    assert psnr_fg(pred, target, mask).item() == pytest.approx(20.0)
    assert psnr_masked(pred, target, mask).item() == pytest.approx(-10 * math.log10(0.01 / 2))
    assert np.isnan(psnr_fg(pred, target, torch.zeros_like(mask)).item())


def test_chunked_batches_equal_one_image_at_a_time():
    """Image metrics split large batches into cache-sized chunks; values must not depend on it."""
    pred, target = _pair(20, 64, 64)  # 8 images per chunk at 64x64: three chunks
    for metric in (psnr, ssim, ssim_uniform7, l1, mse):
        batched = metric(pred, target)
        single = torch.cat([metric(pred[i : i + 1], target[i : i + 1]) for i in range(20)])
        torch.testing.assert_close(batched, single, atol=1e-12, rtol=0)
    mask = torch.rand(20, 64, 64) > 0.5
    torch.testing.assert_close(psnr_fg(pred, target, mask), torch.cat([psnr_fg(pred[i:i + 1], target[i:i + 1], mask[i:i + 1]) for i in range(20)]))


@pytest.mark.parametrize("grey", [0.3, 0.5, 0.7, 0.9])
def test_ssim_family_on_flat_grey_float32_images_matches_scikit_image_to_1e6(grey):
    """Flat backgrounds neither black nor white: float32 window statistics were up to 1e-4 off scikit-image."""
    g = torch.Generator().manual_seed(0)
    target = torch.full((1, 3, 64, 64), grey)
    target[..., 20:30, 20:30] = grey + 0.05
    pred = (target + 0.01 * torch.randn(1, 3, 64, 64, generator=g)).clamp(0, 1)
    t, p = (x[0].permute(1, 2, 0).double().numpy() for x in (target, pred))  # what scikit-image sees: the same float32 values
    gaussian = structural_similarity(t, p, data_range=1, channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert ssim(pred, target).item() == pytest.approx(gaussian, abs=1e-6)
    assert ssim_uniform7(pred, target).item() == pytest.approx(structural_similarity(t, p, data_range=1, channel_axis=2), abs=1e-6)
    big_t, big_p = target.repeat(1, 1, 3, 3), pred.repeat(1, 1, 3, 3)  # ms_ssim needs more than 160 px
    ref = _ms_ssim_reference(big_p[0].double().numpy(), big_t[0].double().numpy())
    assert ms_ssim(big_p, big_t).item() == pytest.approx(ref, abs=1e-6)
