"""3DiM's X-UNet and stochastic conditioning: shapes, what each input reaches, and the growing pool."""

from __future__ import annotations

import math

import torch

from bench.nets.xunet import XUNet, positional_encoding
from bench.sampling.diffusion.schedules import cosine_logsnr
from bench.sampling.diffusion.stochastic_conditioning import sample_with_stochastic_conditioning

B, H = 2, 16


def inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, 2, 3, H, H, generator=g), torch.tensor([[20.0, 0.5]] * B), torch.randn(B, 2, 6, H, H, generator=g)


def trained_like(net: XUNet) -> XUNet:
    """Give the zero-initialised output layer weights, so that every input can reach the output."""
    torch.manual_seed(1)
    for p in net.out.parameters():
        torch.nn.init.normal_(p, std=0.1)
    return net.eval()


def test_xunet_predicts_the_noisy_frame_and_starts_at_zero():
    torch.manual_seed(0)
    net = XUNet(channels=16, mults=(1, 2), attention_levels=(1,))
    frames, lam, rays = inputs()
    out = net(frames, lam, rays)
    assert out.shape == (B, 3, H, H) and torch.equal(out, torch.zeros_like(out))  # zero-initialised last layer
    assert sum(p.numel() for p in XUNet().parameters()) < 3_000_000  # the default fits the CPU training budget


def test_the_conditioning_frame_its_camera_and_the_noise_level_all_reach_the_prediction():
    torch.manual_seed(0)
    net = trained_like(XUNet(channels=16, mults=(1, 2), attention_levels=(1,)))
    frames, lam, rays = inputs()
    with torch.no_grad():
        base = net(frames, lam, rays)
        other_cond = frames.clone()
        other_cond[:, 0] = torch.randn(B, 3, H, H)
        assert not torch.allclose(net(other_cond, lam, rays), base)  # through cross-attention: the frames share no conv
        other_rays = rays.clone()
        other_rays[:, 0] += 1.0
        assert not torch.allclose(net(frames, lam, other_rays), base)
        assert not torch.allclose(net(frames, lam + torch.tensor([0.0, 3.0]), rays), base)
        dropped = net(frames, lam, rays, cond_mask=torch.zeros(B))
        zeroed = frames.clone()
        zeroed[:, 0] = 0
        zero_rays = rays.clone()
        zero_rays[:, 0] = 0
        torch.testing.assert_close(dropped, net(zeroed, lam, zero_rays))
        # one sample of the batch does not affect another
        torch.testing.assert_close(net(frames[:1], lam[:1], rays[:1]), base[:1], atol=1e-5, rtol=0)


def test_positional_encoding_layout():
    x = torch.tensor([[0.25, -0.5]])
    out = positional_encoding(x, 2)
    assert out.shape == (1, 2 * 5)
    torch.testing.assert_close(out[0, :2], x[0])
    torch.testing.assert_close(out[0, 2:4], torch.sin(math.pi * x[0]))  # k = 0, both coordinates
    torch.testing.assert_close(out[0, 6:8], torch.cos(math.pi * x[0]))


def test_stochastic_conditioning_draws_from_the_growing_pool():
    """A denoiser that records what it was conditioned on: view j sees only the inputs and the views generated
    before it, all of them over its 40 steps, and is handed the pool entry it names."""
    seen: dict[int, set[int]] = {}
    inputs_ = [torch.full((B, 1, 2, 2), 10.0, dtype=torch.float64), torch.full((B, 1, 2, 2), 20.0, dtype=torch.float64)]

    def denoise(x, lam, j, images, index):
        seen.setdefault(j, set()).update(index.tolist())
        for i, k in enumerate(index.tolist()):  # inputs first, then view k - 2 (which denoised to 100 + k - 2)
            expected = inputs_[k][i] if k < 2 else torch.full_like(images[i], 100.0 + k - 2)
            torch.testing.assert_close(images[i], expected)
        return torch.full_like(x, 100.0 + j)  # view j denoises to the constant 100 + j

    lam = torch.cat([cosine_logsnr(torch.linspace(1, 0, 41, dtype=torch.float64))[:-1], torch.tensor([math.inf]).double()])
    views, nfe = sample_with_stochastic_conditioning(denoise, inputs_, 3, lam, torch.Generator().manual_seed(0))
    assert nfe == 3 * 40 and len(views) == 3
    assert seen == {0: {0, 1}, 1: {0, 1, 2}, 2: {0, 1, 2, 3}}
    for j, view in enumerate(views):  # the last ancestral step ends at the posterior mean, x̂_0 itself
        torch.testing.assert_close(view, torch.full_like(view, 100.0 + j))
