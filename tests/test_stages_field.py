"""Neural-field stages: volume rendering, pixelNeRF's pixel-aligned field, GeNVS's frustum volume."""

from __future__ import annotations

import json
import math

import pytest
import torch

from bench.cameras import look_at, project
from bench.stages.encode.resnet import ResNetEncoder
from bench.stages.lift.field import FrustumVolume, PixelAlignedField, project_to_sources, sample_frustum, sample_pixel_features
from bench.stages.render.volume import FeatureToRGB, FeatureVolumeRenderer, VolumeRenderer, pixel_rays
from bench.train.losses.regression import ray_mse


def _camera(size: tuple[int, int], centre=(1.5, -0.7, 0.4)) -> tuple[torch.Tensor, torch.Tensor]:
    h, w = size
    K = torch.tensor([[[1.1 * w, 0, (w - 1) / 2 + 0.3], [0, 1.1 * w, (h - 1) / 2 - 0.2], [0, 0, 1]]])
    return K, look_at(torch.tensor([centre]))


def _point_at(u: float, v: float, z: float, K: torch.Tensor, c2w: torch.Tensor) -> torch.Tensor:
    """(1, 1, 3) world point seen at pixel (u, v) with z-depth z (bilinear-free: depth map of one pixel)."""
    ray = torch.linalg.inv(K[0]) @ torch.tensor([u, v, 1.0])
    return (c2w[0, :3, :3] @ (ray * z) + c2w[0, :3, 3])[None, None]


def _state(b: int, t: int, s: int, size: tuple[int, int], near: float = 0.5, far: float = 2.5) -> dict:
    centres = torch.tensor([[1.5, 0.2, 0.3], [0.3, 1.4, 0.5], [-1.2, 0.8, 0.2]])
    K, _ = _camera(size)
    h, w = size
    return {
        "source_image": torch.rand(b, s, 3, h, w),
        "source_K": K.expand(b, s, 3, 3),
        "source_cam2world": look_at(centres[:s]).expand(b, s, 4, 4),
        "target_K": K.expand(b, t, 3, 3),
        "target_cam2world": look_at(centres[s - 1 : s - 1 + t] * 1.1).expand(b, t, 4, 4),
        "target_size": torch.tensor(size),
        "near": torch.full((b,), near),
        "far": torch.full((b,), far),
        "background": torch.tensor([1.0, 1.0, 1.0]),
    }


# --------------------------------------------------------------------------- volume rendering


def test_pixel_rays_pass_through_our_pixel_centres():
    """The ray of pixel (i, j) at z-depth z hits the point that ``project`` maps to (u=j, v=i) at depth z."""
    size = (6, 8)
    K, c2w = _camera(size)
    origins, directions = pixel_rays(K, c2w, size)
    uv, z = project(origins + 1.7 * directions, K, c2w)
    v, u = torch.meshgrid(torch.arange(6.0), torch.arange(8.0), indexing="ij")
    torch.testing.assert_close(uv[0], torch.stack([u, v], -1).reshape(-1, 2), atol=1e-4, rtol=0)
    torch.testing.assert_close(z, torch.full_like(z, 1.7))


def test_volume_renderer_slab_matches_analytic_opacity_colour_and_z_depth():
    """A slab of constant density sigma and colour c between z = 1.4 and 2.0 in front of the camera.

    20 bins of 0.1 in z between near and far, sampled at their midpoints: 6 of them (1.45 .. 1.95)
    tile the slab on every ray, a world length L = 0.6 |d| (|d| the ray's length per unit of z):
    opacity 1 - exp(-sigma L) exactly, colour c opacity + background (1 - opacity), and expected
    z-depth from the discrete weights. The wide field of view (|d| up to 1.6) separates z-depth
    from distance along the ray.
    """
    h, w, sigma = 7, 9, 1.5
    K = torch.tensor([[5.0, 0, 4.0], [0, 5.0, 3.0], [0, 0, 1]]).expand(2, 1, 3, 3)
    c2w = torch.eye(4).expand(2, 1, 4, 4)
    colour, background = torch.tensor([0.2, 0.6, 0.9]), torch.tensor([1.0, 0.5, 0.0])

    def slab(points, directions):
        inside = ((points[..., 2:] > 1.4) & (points[..., 2:] < 2.0)).float()
        return sigma * inside, colour.expand(*points.shape[:-1], 3)

    # the two samples have different near/far with the same 0.1 bins
    state = {"field": slab, "target_K": K, "target_cam2world": c2w, "target_size": torch.tensor([h, w]),
             "near": torch.tensor([1.0, 0.5]), "far": torch.tensor([3.0, 2.5]), "background": background}
    out = VolumeRenderer(n_samples=20).eval()(state)

    v, u = torch.meshgrid(torch.arange(float(h)), torch.arange(float(w)), indexing="ij")
    d_len = torch.stack([(u - 4.0) / 5.0, (v - 3.0) / 5.0, torch.ones_like(u)], -1).norm(dim=-1)  # (H, W)
    opacity = 1 - torch.exp(-sigma * 0.6 * d_len)
    alpha = 1 - torch.exp(-sigma * 0.1 * d_len)
    weights = torch.stack([alpha * (1 - alpha) ** k for k in range(6)])
    depth = (weights * (1.45 + 0.1 * torch.arange(6.0))[:, None, None]).sum(0) / weights.sum(0)
    image = colour[:, None, None] * opacity + background[:, None, None] * (1 - opacity)

    assert out["pred_image"].shape == (2, 1, 1, 3, h, w)
    assert out["pred_depth"].shape == out["pred_opacity"].shape == (2, 1, 1, h, w)
    for i in range(2):
        torch.testing.assert_close(out["pred_opacity"][i, 0, 0], opacity, atol=1e-5, rtol=0)
        torch.testing.assert_close(out["pred_image"][i, 0, 0], image, atol=1e-5, rtol=0)
        torch.testing.assert_close(out["pred_depth"][i, 0, 0], depth, atol=1e-4, rtol=0)
    assert float(out["pred_opacity"][0, 0, 0, 3, 4]) == pytest.approx(1 - math.exp(-sigma * 0.6), abs=1e-6)  # central ray: |d| = 1

    # the ray fields list every pixel in row-major order, so ray_mse against the rendered image is 0
    assert torch.equal(out["ray_index"][0, 0], torch.arange(h * w))
    assert float(ray_mse(out, {"image": out["pred_image"][:, :, 0]})) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("training", [False, True])
def test_volume_renderer_integrates_exactly_from_near_to_far(training):
    """A constant density filling the scene: the opacity is 1 - exp(-sigma (far - near) |d|) whether the
    samples sit at bin midpoints (eval) or anywhere in their bins (training), with any number of samples."""
    sigma = 0.4
    state = _state(1, 1, 1, (4, 5))
    state["field"] = lambda p, d: (torch.full_like(p[..., :1], sigma), torch.zeros_like(p))
    near, far = float(state["near"][0]), float(state["far"][0])
    for n in (2, 4, 32):
        renderer = VolumeRenderer(n_samples=n, n_rays_train=0).train(training)
        rays = renderer.render(state)
        _, directions = pixel_rays(state["target_K"].flatten(0, 1), state["target_cam2world"].flatten(0, 1), (4, 5))
        expected = 1 - torch.exp(-sigma * (far - near) * directions.norm(dim=-1))  # (1, R)
        torch.testing.assert_close(rays.opacity[0], expected, atol=1e-6, rtol=0)


def test_volume_renderer_training_renders_a_random_ray_subset():
    state = _state(2, 1, 1, (8, 10))
    state["field"] = lambda p, d: (torch.ones_like(p[..., :1]), torch.full_like(p, 0.25))
    out = VolumeRenderer(n_samples=8, n_rays_train=16).train()(state)
    assert "pred_image" not in out
    assert out["ray_rgb"].shape == (2, 1, 16, 3) and out["ray_index"].shape == (2, 1, 16)
    assert all(len(set(idx.tolist())) == 16 for idx in out["ray_index"].flatten(0, 1))  # no repeats
    target = torch.rand(2, 1, 3, 8, 10)
    gathered = target.flatten(3)[0, 0, :, out["ray_index"][0, 0]].T  # (16, 3) pixels of sample 0
    expected = ((out["ray_rgb"][0, 0] - gathered) ** 2).mean()
    partial_loss = ray_mse({k: v[:1] for k, v in out.items()}, {"image": target[:1]})
    torch.testing.assert_close(partial_loss, expected)


# --------------------------------------------------------------------------- pixel-aligned field


@pytest.mark.parametrize("size", [(96, 112), (95, 109)])
def test_encoder_cells_are_centred_where_the_sampling_convention_puts_them(size):
    """The input region a feature cell depends on (autograd; positive weights and inputs, so no ReLU cuts it) is
    centred on image pixel (b + 0.5) 2**(k+1) - 0.5, where grid_sample(align_corners=False) samples cell b;
    odd sizes give ceil(H / 2**(k+1)) cells."""
    encoder = ResNetEncoder(channels=(4, 4, 4)).eval()
    with torch.no_grad():
        for m in encoder.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.fill_(0.05)
    image = torch.ones(1, 1, 3, *size, requires_grad=True)  # the encoder sees 2 x - 1 = 1: every activation positive
    features = encoder({"source_image": image})["source_features"]
    for k, f in enumerate(features):
        scale = 2 ** (k + 1)
        assert f.shape[-2:] == tuple(-(-n // scale) for n in size)
        a, b = f.shape[-2] // 2, f.shape[-1] // 2  # an interior cell
        (grad,) = torch.autograd.grad(f[0, 0, :, a, b].sum(), image, retain_graph=True)
        rows, cols = grad[0, 0].abs().sum(0).nonzero(as_tuple=True)
        assert (rows.min() + rows.max()) / 2 == (a + 0.5) * scale - 0.5
        assert (cols.min() + cols.max()) / 2 == (b + 0.5) * scale - 0.5


@pytest.mark.parametrize("grid", [(8, 12), (4, 6), (2, 3)])
def test_pixel_features_exact_at_cell_centres_and_zero_behind_the_camera(grid):
    """A point projecting onto the centre of feature cell (a, b) samples exactly that cell's vector."""
    size = (8, 12)
    K, c2w = _camera(size)
    feat = torch.randn(1, 5, *grid)
    for a, b in [(0, 0), (grid[0] - 1, grid[1] - 1), (grid[0] // 2, 1)]:
        u, v = (b + 0.5) * size[1] / grid[1] - 0.5, (a + 0.5) * size[0] / grid[0] - 0.5
        point = _point_at(u, v, 1.3, K, c2w)
        uv, z = project_to_sources(point, K[:, None], c2w[:, None])
        torch.testing.assert_close(sample_pixel_features([feat], uv, z, size)[0, 0], feat[0, :, a, b], atol=1e-5, rtol=0)
        behind = 2 * c2w[:, None, :3, 3] - point  # mirrored through the camera centre: z < 0
        uv, z = project_to_sources(behind, K[:, None], c2w[:, None])
        assert float(z) < 0 and torch.equal(sample_pixel_features([feat], uv, z, size), torch.zeros(1, 1, 5))


def test_pixel_aligned_field_shapes_and_mean_pool_over_sources():
    """Shapes, ranges, and the mean-pool: two copies of one source give that source's field."""
    torch.manual_seed(0)
    encoder, field = ResNetEncoder(channels=(8, 16)).eval(), PixelAlignedField(feature_channels=24, width=16)
    for p in field.blocks.parameters():  # the zero-initialised residual layers would hide the pool
        torch.nn.init.normal_(p, std=0.3)
    one = _state(2, 2, 1, (16, 16))
    one.update(encoder(one))
    two = dict(one)
    two.update({k: torch.cat([one[k], one[k]], 1) for k in ("source_image", "source_K", "source_cam2world")})
    two.update(encoder(two))
    points, directions = torch.randn(2, 2, 5, 7, 3) * 0.5, torch.nn.functional.normalize(torch.randn(2, 2, 5, 3), dim=-1)
    d1, f1 = field(one)["field"](points, directions)
    d2, f2 = field(two)["field"](points, directions)
    assert d1.shape == (2, 2, 5, 7, 1) and f1.shape == (2, 2, 5, 7, 3)
    assert (d1 >= 0).all() and (f1 > 0).all() and (f1 < 1).all()
    torch.testing.assert_close((d2, f2), (d1, f1))
    with pytest.raises(ValueError, match="feature_channels"):
        PixelAlignedField(feature_channels=10)(one)


def test_pixel_field_pipeline_renders_images():
    torch.manual_seed(0)
    state = _state(2, 3, 1, (12, 16))
    stages = [ResNetEncoder(channels=(8, 16)), PixelAlignedField(feature_channels=24, width=16), VolumeRenderer(n_samples=8, chunk_rays=100)]
    for stage in stages:
        state.update(stage.eval()(state))
    assert state["pred_image"].shape == (2, 3, 1, 3, 12, 16)
    assert state["pred_depth"].shape == (2, 3, 1, 12, 16)
    assert (state["pred_image"] >= 0).all() and (state["pred_image"] <= 1).all()
    depth, opacity = state["pred_depth"], state["pred_opacity"]
    assert ((depth >= 0.5 - 1e-4) & (depth <= 2.5 + 1e-4) | (opacity == 0)).all()  # expected z-depth in [near, far]


# --------------------------------------------------------------------------- frustum volume (GeNVS)


def test_frustum_voxel_centre_samples_that_voxel():
    size, grid, depth_planes, near, far = (8, 12), (4, 6), 5, 0.5, 2.5
    K, c2w = _camera(size)
    volume = torch.randn(1, 3, depth_planes, *grid)
    for k, a, b in [(0, 0, 0), (4, 3, 5), (2, 1, 4)]:
        u, v = (b + 0.5) * size[1] / grid[1] - 0.5, (a + 0.5) * size[0] / grid[0] - 0.5
        z = near + (k + 0.5) * (far - near) / depth_planes
        uv, zz = project_to_sources(_point_at(u, v, z, K, c2w), K[:, None], c2w[:, None])
        feats, inside = sample_frustum(volume, uv, zz, torch.tensor([near]), torch.tensor([far]), size)
        assert bool(inside)
        torch.testing.assert_close(feats[0, 0], volume[0, :, k, a, b], atol=1e-5, rtol=0)
    uv, zz = project_to_sources(_point_at(3.0, 2.0, far + 0.1, K, c2w), K[:, None], c2w[:, None])
    feats, inside = sample_frustum(volume, uv, zz, torch.tensor([near]), torch.tensor([far]), size)
    assert not bool(inside) and torch.equal(feats, torch.zeros(1, 1, 3))


def test_genvs_render_chain_shapes_and_empty_outside_the_frustum():
    torch.manual_seed(0)
    state = _state(2, 1, 2, (16, 16))
    stages = [ResNetEncoder(channels=(8, 16)), FrustumVolume(feature_channels=24, stride=2, depth_planes=8, channels=4, width=16, out_channels=6),
              FeatureVolumeRenderer(n_samples=8, n_rays_train=20), FeatureToRGB(channels=6)]
    for stage in stages:
        state.update(stage.eval()(state))
    assert state["rendered_features"].shape == (2, 1, 6, 16, 16)
    assert state["pred_image"].shape == (2, 1, 1, 3, 16, 16)
    assert state["ray_rgb"].shape == (2, 1, 256, 3)
    torch.testing.assert_close(state["pred_image"][:, :, 0].flatten(3).transpose(2, 3), state["ray_rgb"])
    far_away = torch.full((2, 1, 1, 1, 3), 50.0)
    density, features = state["field"](far_away, torch.ones(2, 1, 1, 3))
    assert density.shape == (2, 1, 1, 1, 1) and features.shape == (2, 1, 1, 1, 6) and torch.equal(density, torch.zeros_like(density))
    train_state = _state(2, 1, 2, (16, 16))
    for stage in stages:
        train_state.update(stage.train()(train_state))
    assert train_state["ray_features"].shape == (2, 1, 20, 6) and train_state["ray_rgb"].shape == (2, 1, 20, 3)
    assert "pred_image" not in train_state and "rendered_features" not in train_state


# --------------------------------------------------------------------------- training


def _write_pipeline(tmp_path, suite, stages: str, name: str) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"name: {name}\nstages:\n{stages}checkpoint: {tmp_path / (name + '.pt')}\n"
        f"train:\n  suite: {suite}\n  steps: 30\n  batch_size: 4\n  seed: 0\n  log_every: 1\n  save_every: 100\n"
        "  optimizer: {kind: adam, lr: 0.01}\n  losses: [{kind: ray_mse}]\n"
    )
    return str(path)




@pytest.mark.parametrize("lift", ["pixel_aligned_field", "frustum_volume"])
def test_short_training_reduces_the_ray_loss(tmp_path, tiny_suite, lift, one_thread):
    from bench.train.loop import train

    encoder = "  - {stage: resnet_encoder, channels: [8, 16]}\n"
    if lift == "pixel_aligned_field":
        body = encoder + ("  - {stage: pixel_aligned_field, feature_channels: 24, width: 32}\n"
                          "  - {stage: volume_renderer, n_samples: 16, n_rays_train: 128}\n")
    else:
        body = encoder + ("  - {stage: frustum_volume, feature_channels: 24, stride: 2, depth_planes: 16, channels: 8, width: 32, out_channels: 8}\n"
                          "  - {stage: feature_volume_renderer, n_samples: 16, n_rays_train: 128}\n  - {stage: feature_to_rgb, channels: 8}\n")
    result = train(_write_pipeline(tmp_path, tiny_suite, body, lift), progress=False)
    log = [json.loads(line)["loss"] for line in result.checkpoint.with_suffix(".log.jsonl").read_text().splitlines()]
    assert len(log) == 30
    assert sum(log[-10:]) / 10 < 0.75 * sum(log[:5]) / 5, log  # mean of the last 10 steps vs the first 5
