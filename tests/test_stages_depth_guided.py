"""Stages and losses of the depth-guided skip NVS method (../shared/seeds/001), and its pipeline YAML."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench.cameras import look_at, world_to_camera
from bench.data.synth import intrinsics, object_mesh, render
from bench.stages.encode.tae import TAEEncoder
from bench.stages.heads.depth import DepthDecoder
from bench.stages.heads.segmentation import SegmentationHead
from bench.stages.lift.warp import InverseWarpFeatures, LatentTransform, inverse_warp, scale_intrinsics
from bench.stages.render.nvs_decoder import NVSDecoder
from bench.train.losses import depth_guided as L

PROJECT = Path(__file__).resolve().parent.parent

LOSSES = ("multiscale_l1", "photometric_reprojection", "perceptual_vgg16", "edge_aware_smoothness", "skip_consistency")


def _camera(azimuth_deg: float, elevation_deg: float = 25.0, radius: float = 1.5) -> torch.Tensor:
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    centre = radius * torch.tensor([[math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)]])
    return look_at(centre)[0]


def _state(b: int = 2, t: int = 2, size: tuple[int, int] = (32, 48), same_camera: bool = False) -> dict:
    """Base pipeline state: random images, one source, ``t`` targets around it."""
    g = torch.Generator().manual_seed(0)
    h, w = size
    K = torch.tensor([[1.02 * w, 0.0, (w - 1) / 2], [0.0, 1.02 * w, (h - 1) / 2], [0.0, 0.0, 1.0]])
    src = torch.stack([_camera(40.0 * i) for i in range(b)])
    tgt = src[:, None].repeat(1, t, 1, 1) if same_camera else torch.stack(
        [torch.stack([_camera(40.0 * i + 15.0 * (j + 1)) for j in range(t)]) for i in range(b)]
    )
    return {
        "source_image": torch.rand(b, 1, 3, h, w, generator=g),
        "source_K": K.expand(b, 1, 3, 3), "source_cam2world": src[:, None],
        "target_K": K.expand(b, t, 3, 3), "target_cam2world": tgt,
        "target_size": torch.tensor([h, w]), "near": torch.full((b,), 0.5), "far": torch.full((b,), 2.5),
    }


def _model() -> list[nn.Module]:
    torch.manual_seed(0)
    return [TAEEncoder(), LatentTransform(), DepthDecoder(), InverseWarpFeatures(), NVSDecoder()]


def _run(stages: list[nn.Module], state: dict) -> dict:
    state = dict(state)
    for stage in stages:
        state.update(stage(state))
    return state


# --------------------------------------------------------------------------- stages


def test_stage_shapes_non_square():
    b, t, (h, w) = 2, 3, (32, 48)
    state = _run([*_model(), SegmentationHead()], _state(b, t, (h, w)))
    assert state["latent"].shape == (b, 1, 64, 3)
    assert [f.shape[-2:] for f in state["source_features"]] == [(16, 24), (8, 12), (4, 6), (2, 3)]
    assert state["target_latent"].shape == (b, t, 64, 3)
    sizes = [(4, 6), (8, 12), (16, 24), (32, 48)]
    for key in ("depth_unskip_scales", "pred_depth_scales"):
        assert [d.shape for d in state[key]] == [(b, t, *s) for s in sizes]
    assert [f.shape for f in state["warped_features"]] == [(b, t, 64, 4, 6), (b, t, 32, 8, 12), (b, t, 16, 16, 24)]
    assert [p.shape for p in state["pred_image_scales"]] == [(b, t, 3, *s) for s in sizes]
    assert state["pred_image"].shape == (b, t, 1, 3, h, w)
    assert state["pred_depth"].shape == (b, t, 1, h, w)
    assert state["seg_logits"].shape == (b, t, 21, h, w)
    assert state["pred_seg"].shape == (b, t, 1, h, w) and state["pred_seg"].dtype == torch.int64
    assert 0 <= state["pred_image"].min() and state["pred_image"].max() <= 1
    assert 0.5 < state["pred_depth"].min() and state["pred_depth"].max() < 2.5


def test_latent_transform_identity_and_rigid_motion():
    latent = torch.randn(2, 1, 10, 3)
    same = _state(2, 2, same_camera=True)
    out = LatentTransform()({**same, "latent": latent})["target_latent"]
    torch.testing.assert_close(out, latent.expand(2, 2, 10, 3), atol=1e-5, rtol=1e-5)
    # Independently: source-camera points -> world (source cam2world) -> target camera (world_to_camera).
    moved = _state(2, 2)
    out = LatentTransform()({**moved, "latent": latent})["target_latent"]
    world = latent[:, 0] @ moved["source_cam2world"][:, 0, :3, :3].transpose(-1, -2) + moved["source_cam2world"][:, 0, None, :3, 3]
    r, tr = world_to_camera(moved["target_cam2world"])
    expected = world[:, None] @ r.transpose(-1, -2) + tr[..., None, :]
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out, latent.expand_as(out), atol=1e-2)


def test_scale_intrinsics_matches_the_generator():
    """The generator's K at another size (f = 131.25/128 * size, c = (size - 1) / 2) is the scaled K."""
    for small in (32, 16, 8):
        torch.testing.assert_close(scale_intrinsics(intrinsics(64), (64, 64), (small, small)), intrinsics(small))


def test_inverse_warp_plane_is_an_exact_shift():
    """Fronto-parallel plane at z = 2, target moved along x so that the disparity is 2 px (1 px at half size)."""
    size, z = 32, 2.0
    K = intrinsics(size)[None]
    shift = 2 * z / K[0, 0, 0]
    src_pose, tgt_pose = torch.eye(4)[None], torch.eye(4)[None].clone()
    tgt_pose[0, 0, 3] = shift
    image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    for s, px in ((size, 2), (size // 2, 1)):
        Ks = scale_intrinsics(K, (size, size), (s, s))
        source = image if s == size else F.avg_pool2d(image, 2)
        warped, valid = inverse_warp(source, torch.full((1, s, s), z), Ks, src_pose, Ks, tgt_pose)
        torch.testing.assert_close(warped[..., : s - px], source[..., px:], atol=1e-4, rtol=0)
        assert valid[0, :, : s - px].all() and not valid[0, :, s - px :].any()


def test_inverse_warp_is_valid_only_between_the_outer_pixel_centres():
    """A half-pixel shift: the last target column lands half a pixel past the source's last pixel centre,
    where border padding returns the edge value instead of the true one, so it is not valid."""
    size, z = 8, 2.0
    K = intrinsics(size)[None]
    tgt_pose = torch.eye(4)[None].clone()
    tgt_pose[0, 0, 3] = 0.5 * z / K[0, 0, 0]  # disparity 0.5 px
    ramp = torch.arange(size, dtype=torch.float32).expand(1, 1, size, size)  # value = column
    warped, valid = inverse_warp(ramp, torch.full((1, size, size), z), K, torch.eye(4)[None], K, tgt_pose)
    assert valid[0, :, : size - 1].all() and not valid[0, :, size - 1].any()
    torch.testing.assert_close(warped[0, 0, :, : size - 1], ramp[0, 0, :, : size - 1] + 0.5, atol=1e-4, rtol=0)  # exact where valid


def _rendered_pair(size: int = 64):
    mesh = object_mesh(0, 0)
    c2w = torch.stack([_camera(30.0), _camera(50.0)])
    K = intrinsics(size).expand(2, 3, 3)
    rgb, depth, mask = render(mesh, K, c2w, size)
    return mesh, K, c2w, rgb.permute(0, 3, 1, 2), depth, mask


def test_inverse_warp_with_true_depth_reproduces_the_rendered_target():
    mesh, K, c2w, image, depth, mask = _rendered_pair()

    def error(target_depth, target_K, reference, target_mask):
        warped, valid = inverse_warp(image[:1], target_depth, K[:1], c2w[:1], target_K, c2w[1:])
        visible = valid[0] & target_mask
        return (warped[0] - reference).abs().mean(0)[visible]

    true = error(depth[1:], K[1:], image[1], mask[1])
    assert true.median() < 0.03
    assert error(depth[1:] * 1.15, K[1:], image[1], mask[1]).median() > 2 * true.median()
    assert (image[0] - image[1]).abs().mean(0)[mask[1]].median() > 3 * true.median()  # no warp
    # Depth at half size against the full-size source: K scaled to the depth map.
    K_half = scale_intrinsics(K, (64, 64), (32, 32))
    rgb_half, depth_half, mask_half = render(mesh, K_half, c2w, 32)
    assert error(depth_half[1:], K_half[1:], rgb_half[1].permute(2, 0, 1), mask_half[1]).median() < 0.03


def test_depth_decoder_skip_pass_uses_the_features_and_unskip_does_not():
    state = _run(_model()[:2], _state(1, 2))
    decoder = DepthDecoder()
    out = decoder(state)
    changed = decoder({**state, "source_features": [f + 1.0 for f in state["source_features"]]})
    for a, b in zip(out["depth_unskip_scales"], changed["depth_unskip_scales"]):
        torch.testing.assert_close(a, b)
    assert not torch.allclose(out["pred_depth_scales"][-1], changed["pred_depth_scales"][-1])
    plain = DepthDecoder(skip=False)(state)
    assert plain["pred_depth_scales"] is plain["depth_unskip_scales"]
    assert len(DepthDecoder(skip=False).decoder.fuse) == 0


def test_nvs_decoder_reads_the_warped_features_at_their_levels():
    state = _run(_model()[:4], _state(1, 2))
    decoder = NVSDecoder()
    out = decoder(state)["pred_image_scales"]
    finest_skip = [*state["warped_features"][:-1], state["warped_features"][-1] + 1.0]  # the 16x24 map feeds level 2
    changed = decoder({**state, "warped_features": finest_skip})["pred_image_scales"]
    for level, (a, b) in enumerate(zip(out, changed)):
        assert torch.equal(a, b) == (level < 2), level
    with pytest.raises(ValueError, match="level 0 needs a 64-channel skip map of size"):
        decoder({**state, "warped_features": state["warped_features"][1:]})


def test_seg_head_does_not_train_the_encoder():
    for freeze in (True, False):
        encoder, head = TAEEncoder(), SegmentationHead(freeze_encoder=freeze)
        state = _state(2, 1)
        state.update(encoder(state))
        head(state)["seg_logits"].square().mean().backward()
        assert all(p.grad is not None for p in head.parameters())
        reached = [p.grad is not None for p in encoder.backbone.parameters()]
        assert not any(reached) if freeze else all(reached)


# --------------------------------------------------------------------------- losses


def test_multiscale_l1_known_values():
    gt = torch.full((2, 1, 3, 8, 8), 0.5)
    perfect = {"pred_image_scales": [torch.full((2, 1, 3, s, s), 0.5) for s in (2, 4, 8)]}
    assert L.multiscale_l1(perfect, {"image": gt}) == 0
    off = {"pred_image_scales": [torch.full((2, 1, 3, s, s), 0.6) for s in (4, 8)]}
    torch.testing.assert_close(L.multiscale_l1(off, {"image": gt}), torch.tensor(0.1 * (0.5 + 1.0)))
    torch.testing.assert_close(L.multiscale_l1(off, {"image": gt}, weights=(1.0, 1.0)), torch.tensor(0.2))
    with pytest.raises(ValueError, match="3 weights for 2 scales"):
        L.multiscale_l1(off, {"image": gt}, weights=(1.0, 1.0, 1.0))


def _photometric_state(image: torch.Tensor, depth_scales: list[torch.Tensor], K, c2w) -> dict:
    return {
        "pred_depth_scales": depth_scales, "source_image": image[:1, None], "source_K": K[:1, None],
        "source_cam2world": c2w[:1, None], "target_K": K[1:, None], "target_cam2world": c2w[1:, None],
    }


def test_photometric_reprojection_values():
    _, K, c2w, image, depth, _ = _rendered_pair()
    target = {"image": image[1:, None]}
    scales = [F.interpolate(depth[1:, None], size=s, mode="nearest")[:, None, 0] for s in (16, 32, 64)]
    true = L.photometric_reprojection(_photometric_state(image, scales, K, c2w), target)
    wrong = L.photometric_reprojection(_photometric_state(image, [d * 1.15 for d in scales], K, c2w), target)
    assert wrong > 1.5 * true
    assert L.photometric_reprojection(_photometric_state(image, scales, K, c2w), target, max_angle_deg=15.0) == 0  # the views are 20° apart
    torch.testing.assert_close(L.photometric_reprojection(_photometric_state(image, scales, K, c2w), target, max_angle_deg=25.0), true)
    # Same camera, target = source + 0.1: any depth warps to the identity; L1 is exactly 0.1.
    same_c2w = c2w[:1].repeat(2, 1, 1)
    flat = [torch.full((1, 1, s, s), 1.3) for s in (32, 64)]
    state = _photometric_state(torch.cat([image[:1], image[:1]]), flat, K, same_c2w)
    state["source_image"] = (image[:1, None] * 0.8).contiguous()
    torch.testing.assert_close(L.photometric_reprojection(state, {"image": image[:1, None] * 0.8 + 0.1}, ssim_weight=0.0),
                               torch.tensor(0.1), atol=1e-5, rtol=0)
    assert L.photometric_reprojection(state, {"image": image[:1, None] * 0.8}) < 1e-5


def test_perceptual_substitute_without_vgg_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("NVSBENCH_WEIGHTS", str(tmp_path))
    assert L.perceptual_vgg16.describe() == f"substitute: sobel_l1 (missing {tmp_path / 'vgg16-397923af.pth'})"
    gt = torch.rand(1, 1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert L.perceptual_vgg16({"pred_image": gt[:, :, None]}, {"image": gt}) == 0
    blurred = F.avg_pool2d(gt[0], 3, 1, 1)[None, :, None]
    assert L.perceptual_vgg16({"pred_image": blurred}, {"image": gt}) > 0.05


def test_perceptual_reads_vgg16_features_from_the_weights_folder(tmp_path, monkeypatch):
    """A weights file with torchvision's VGG16 key names (random values here) selects the VGG loss."""
    from torchvision.models.vgg import cfgs, make_layers

    features = make_layers(cfgs["D"])[:23]
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, tmp_path / "vgg16-397923af.pth")
    monkeypatch.setenv("NVSBENCH_WEIGHTS", str(tmp_path))
    assert L.perceptual_vgg16.describe().startswith("vgg16 relu1_2/relu2_2/relu3_3/relu4_3 L1")
    net = L._vgg16_features(tmp_path / "vgg16-397923af.pth", "cpu")
    torch.testing.assert_close(net[21].weight, features[21].weight)
    gt = torch.rand(1, 1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert L.perceptual_vgg16({"pred_image": gt[:, :, None]}, {"image": gt}) == 0
    assert L.perceptual_vgg16({"pred_image": gt.flip(-1)[:, :, None]}, {"image": gt}) > 0


def test_edge_aware_smoothness_values():
    flat = {"image": torch.full((1, 1, 3, 8, 8), 0.5)}
    assert L.edge_aware_smoothness({"pred_depth_scales": [torch.full((1, 1, 8, 8), 1.7)]}, flat) == 0
    # Ramp d = 1 + 0.1 j on a flat image: |dx d*| = 0.1 / mean(d) everywhere, dy = 0.
    ramp = 1 + 0.1 * torch.arange(8.0).expand(1, 1, 8, 8)
    expected = 0.1 / ramp.mean()
    torch.testing.assert_close(L.edge_aware_smoothness({"pred_depth_scales": [ramp]}, flat), expected)
    # A depth step costs less where the image has an edge too.
    step = torch.ones(1, 1, 8, 8)
    step[..., 4:] = 2.0
    edge_image = torch.zeros(1, 1, 3, 8, 8)
    edge_image[..., 4:] = 1.0
    aligned = L.edge_aware_smoothness({"pred_depth_scales": [step]}, {"image": edge_image})
    assert aligned < 0.5 * L.edge_aware_smoothness({"pred_depth_scales": [step]}, flat)


def test_skip_consistency_known_value_and_on_the_stages():
    ref = [torch.full((1, 1, s, s), 1.0) for s in (4, 8)]
    state = {
        "encode_images": lambda images: (None, None), "decode_depth": lambda latent, features: ref,
        "depth_unskip_scales": [r + 0.2 for r in ref], "pred_depth_scales": [r - 0.1 for r in ref],
    }
    torch.testing.assert_close(L.skip_consistency(state, {"image": None}), torch.tensor(0.3))
    # Target = source view: z_a2b = z_b and the warp is the identity, so the skip term vanishes.
    stages = _model()[:3]
    for s in stages:
        s.eval()
    base = _state(1, 1, same_camera=True)
    state = _run(stages, base)
    with torch.no_grad():
        value = L.skip_consistency(state, {"image": base["source_image"]})
    unskip_vs_skip = torch.stack([(u - s).abs().mean() for u, s in zip(state["depth_unskip_scales"], state["pred_depth_scales"])])
    torch.testing.assert_close(value, unskip_vs_skip.mean(), atol=1e-5, rtol=1e-4)


# --------------------------------------------------------------------------- pipeline


def test_pipeline_trains_and_its_checkpoint_loads(tmp_path):
    from bench.pipeline import load_pipeline
    from bench.suite import load_suite
    from bench.train.loop import train

    suite = tmp_path / "suite.yaml"
    suite.write_text(
        f"include: {PROJECT / 'suites' / 'objects_train_synthetic.yaml'}\n"
        f"dataset: {{root: {tmp_path / 'objs'}, generate: {{objects: 2, views: 4, size: 32}}}}\n"
    )
    pipeline = tmp_path / "depth_guided.yaml"
    pipeline.write_text(
        f"include: {PROJECT / 'pipelines' / 'depth_guided.yaml'}\n"
        "train: {steps: 24, batch_size: 4, log_every: 1, save_every: 1000}\n"
    )
    checkpoint = tmp_path / "dg.pt"
    result = train(str(pipeline), suite_path=suite, out=checkpoint, progress=False)
    assert result.step == 24
    losses = [json.loads(line)["loss"] for line in checkpoint.with_suffix(".log.jsonl").read_text().splitlines()]
    assert sum(losses[-6:]) < sum(losses[:6])
    saved = torch.load(checkpoint, weights_only=True)
    assert {entry["kind"] for entry in saved["losses"]} == set(LOSSES)
    assert sum(p.numel() for p in saved["model"].values()) < 800_000
    loaded = load_pipeline(str(pipeline), load_suite(suite).available_fields, overrides=[f"checkpoint={checkpoint}"])
    torch.testing.assert_close(loaded.state_dict()["stages.0.head.4.weight"], saved["model"]["stages.0.head.4.weight"])
