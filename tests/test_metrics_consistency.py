"""Consistency metrics on renders of a synthetic object: consistent sets against broken ones.

The consistent set is 8 exact renders (with depth) of one ``bench.data.synth`` object along a
smooth orbit; the broken sets keep the cameras and shuffle the images, or shift each image by
a few random pixels.
"""

from __future__ import annotations

import math

import pytest
import torch

from bench.cameras import look_at, project, world_to_camera
from bench.data import synth
from bench.metrics.consistency import (
    colmap_features,
    fundamental_matrix,
    keypoint_pixels,
    make_tsed,
    nerf_consistency,
    sift_features,
    sift_matches,
    symmetric_epipolar_distance,
    tsed,
    tsed_kornia,
    warp_consistency,
)

VIEWS, SIZE = 8, 128
SHUFFLE = torch.tensor([3, 6, 0, 5, 2, 7, 4, 1])  # no view keeps its camera


@pytest.fixture(scope="module")
def orbit() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """images (8,3,128,128), K, cam2world, depth: azimuth steps of 12 degrees, elevation 15-35 degrees."""
    step = torch.arange(VIEWS, dtype=torch.float32)
    azimuth, elevation = torch.deg2rad(12.0 * step), torch.deg2rad(25.0 + 10.0 * torch.sin(1.3 * step))
    centre = 1.4 * torch.stack([elevation.cos() * azimuth.cos(), elevation.cos() * azimuth.sin(), elevation.sin()], -1)
    cam2world = look_at(centre)
    K = synth.intrinsics(SIZE).expand(VIEWS, 3, 3).clone()
    rgb, depth, _ = synth.render(synth.object_mesh(0, seed=0), K, cam2world, SIZE)
    return rgb.permute(0, 3, 1, 2).contiguous(), K, cam2world, depth


@pytest.fixture(scope="module")
def shifted(orbit) -> torch.Tensor:
    """The orbit's images, each rolled by a random shift of up to 6 px in x and y."""
    shifts = torch.randint(-6, 7, (VIEWS, 2), generator=torch.Generator().manual_seed(0))
    return torch.stack([image.roll(tuple(s.tolist()), dims=(1, 2)) for image, s in zip(orbit[0], shifts)])


# --------------------------------------------------------------------------- epipolar geometry


def test_fundamental_matrix_satisfies_projected_points_and_matches_kornia(orbit):
    from kornia.geometry.conversions import convert_points_to_homogeneous
    from kornia.geometry.epipolar import fundamental_from_projections, projection_from_KRt

    _, K, cam2world, _ = orbit
    i, j = 1, 4
    fundamental = fundamental_matrix(K[i], cam2world[i], K[j], cam2world[j])
    points = torch.randn(1, 50, 3, generator=torch.Generator().manual_seed(1)) * 0.3
    x_i, _ = project(points, K[i : i + 1], cam2world[i : i + 1])
    x_j, _ = project(points, K[j : j + 1], cam2world[j : j + 1])
    algebraic = (convert_points_to_homogeneous(x_j[0]) @ fundamental * convert_points_to_homogeneous(x_i[0])).sum(-1)
    assert algebraic.abs().max() < 1e-6 * fundamental.norm() * SIZE**2
    assert symmetric_epipolar_distance(x_i[0], x_j[0], fundamental).max() < 1e-2  # pixels

    r, t = world_to_camera(cam2world)
    P = projection_from_KRt(K, r, t[..., None])
    reference = fundamental_from_projections(P[i], P[j])
    a, b = fundamental / fundamental.norm(), reference / reference.norm()
    a = a * torch.sign((a * b).sum())  # same matrix up to scale and sign
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_sed_is_the_mean_of_both_point_to_line_distances():
    """Rectified stereo (baseline along x): epipolar lines are the rows, so SED = |row offset|."""
    K = synth.intrinsics(64)
    left = torch.eye(4)
    right = torch.eye(4)
    right[0, 3] = 0.2
    fundamental = fundamental_matrix(K, left, K, right)
    x_i = torch.tensor([[10.0, 20.0], [40.0, 5.0], [3.0, 60.0]])
    x_j = x_i + torch.tensor([[-4.0, 0.0], [-1.0, 1.5], [-7.0, -3.0]])
    torch.testing.assert_close(symmetric_epipolar_distance(x_i, x_j, fundamental), torch.tensor([0.0, 1.5, 3.0]))
    coincident = fundamental_matrix(K, left, K, left)
    assert torch.isinf(symmetric_epipolar_distance(x_i, x_j, coincident)).all()  # no baseline: never consistent


# --------------------------------------------------------------------------- TSED


def test_tsed_separates_consistent_from_shuffled_and_shifted_views(orbit, shifted):
    images, K, cam2world, depth = orbit
    consistent = tsed(images, K, cam2world, depth)
    # COLMAP's SIFT finds 5-23 matches per pair of these 128 px flat-shaded renders: 2 pairs fall under T_m = 10
    assert consistent.shape == () and consistent >= 4 / 7  # measured 5/7
    assert tsed(images[SHUFFLE], K, cam2world, None) <= 1 / 7  # measured 0.0
    assert tsed(shifted, K, cam2world, None) <= 2 / 7  # measured 1/7
    assert tsed_kornia(images, K, cam2world, None) >= 6 / 7  # measured 1.0
    assert tsed_kornia(images[SHUFFLE], K, cam2world, None) <= 1 / 7 and tsed_kornia(shifted, K, cam2world, None) <= 2 / 7


def test_tsed_verdict_depends_on_the_front_end_and_the_authors_one_is_right():
    """256 px renders of a checkered object along an orbit, known cameras, every pair truly consistent.

    kornia's plain ratio test keeps matches between repeated checker squares (pair 0: median reprojection
    error of its matches 48 px), so its TSED is 4/7; COLMAP's matcher (max distance 0.7, cross-check), the
    TSED authors' front end, rejects them and every pair is consistent."""
    step = torch.arange(VIEWS, dtype=torch.float32)
    azimuth, elevation = torch.deg2rad(12.0 * step), torch.deg2rad(25.0 + 10.0 * torch.sin(1.3 * step))
    centre = 1.4 * torch.stack([elevation.cos() * azimuth.cos(), elevation.cos() * azimuth.sin(), elevation.sin()], -1)
    cam2world = look_at(centre)
    K = synth.intrinsics(256).expand(VIEWS, 3, 3).clone()
    rgb, _, _ = synth.render(synth.object_mesh(0, seed=0), K, cam2world, 256)
    images = rgb.permute(0, 3, 1, 2).contiguous()
    assert tsed(images, K, cam2world, None) == 1.0
    assert tsed_kornia(images, K, cam2world, None) <= 5 / 7  # measured 4/7


def test_colmap_keypoints_are_moved_to_integer_pixel_centres():
    """A dark blob centred on pixel (40, 50): COLMAP reports (40.5, 50.5), the harness (40, 50)."""
    v, u = torch.meshgrid(torch.arange(128.0), torch.arange(128.0), indexing="ij")
    blob = 1 - torch.exp(-((u - 40) ** 2 + (v - 50) ** 2) / (2 * 3.0**2))
    [(keypoints, _)] = colmap_features(blob.expand(1, 3, 128, 128))
    assert (keypoints[0].x, keypoints[0].y) == pytest.approx((40.5, 50.5), abs=1e-3)
    x = keypoint_pixels(keypoints, list(range(len(keypoints))))
    assert len(x) >= 1 and torch.allclose(x, torch.tensor([[40.0, 50.0]], dtype=torch.float64).expand_as(x), atol=1e-3)


def test_tsed_matches_real_correspondences_and_variants_change_the_thresholds(orbit):
    images, K, cam2world, _ = orbit
    features = sift_features(images[:2])
    x_0, x_1 = sift_matches(features[0], features[1])
    assert len(x_0) >= 10
    assert symmetric_epipolar_distance(x_0, x_1, fundamental_matrix(K[0], cam2world[0], K[1], cam2world[1])).median() < 2.0

    strict = make_tsed(t_m=10**6)  # no pair has that many matches
    assert strict(images[3:6], K[3:6], cam2world[3:6], None) == 0.0
    assert make_tsed(t_e=math.inf)(images[3:6], K[3:6], cam2world[3:6], None) == 1.0  # pairs with 21 and 10 COLMAP matches
    assert strict.family == "consistency" and strict.higher_is_better and strict.doc == tsed.doc


def test_tsed_takes_the_mean_of_the_two_middle_seds_of_an_even_number_of_matches(orbit, monkeypatch):
    # 12 matches whose two middle SEDs are 1.5 and 2.5 px: the median is 2.0 (np.median), so the pair is not
    # below T_e = 2 px; the lower middle value (torch.median) would be 1.5 and pass.
    seds = torch.tensor([0.5, 1.0, 1.5, 2.5, 3.0, 3.5] * 2)
    monkeypatch.setattr("bench.metrics.consistency.symmetric_epipolar_distance", lambda x_i, x_j, f: seds)
    images, K, cam2world, _ = orbit
    assert tsed(images[:2], K[:2], cam2world[:2], None) == 0.0
    assert make_tsed(t_e=2.01)(images[:2], K[:2], cam2world[:2], None) == 1.0
    assert make_tsed(t_e=1.99)(images[:2], K[:2], cam2world[:2], None) == 0.0
    seds = torch.tensor([0.5, 1.0, 1.5, 2.5, 3.0, 3.5] * 2 + [1.9])  # 13 matches: the middle value, 1.9 px
    assert tsed(images[:2], K[:2], cam2world[:2], None) == 1.0


# --------------------------------------------------------------------------- warping through depth


def test_warp_consistency_separates_consistent_from_shuffled_views(orbit, shifted):
    images, K, cam2world, depth = orbit
    consistent = warp_consistency(images, K, cam2world, depth)
    shuffled = warp_consistency(images[SHUFFLE], K, cam2world, depth)
    moved = warp_consistency(shifted, K, cam2world, depth)
    assert consistent > 0.95  # measured 0.979 (exact renders; bilinear sampling at edges)
    assert shuffled < consistent - 0.15  # measured 0.739
    assert moved < consistent - 0.1  # measured 0.801


def test_warp_consistency_of_a_view_repeated_is_perfect_and_depth_is_required(orbit):
    images, K, cam2world, depth = orbit
    twice = [x[:1].expand(2, *x.shape[1:]) for x in (images, K, cam2world, depth)]
    assert warp_consistency(*twice) == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(ValueError, match="depth"):
        warp_consistency(images, K, cam2world, None)
    with pytest.raises(ValueError, match="visible"):
        warp_consistency(images[:2], K[:2], cam2world[:2], torch.zeros_like(depth[:2]))


# --------------------------------------------------------------------------- radiance field


def test_nerf_consistency_separates_consistent_from_shuffled_views_deterministically(orbit):
    images, K, cam2world, _ = orbit
    consistent = nerf_consistency(images, K, cam2world, None)
    shuffled = nerf_consistency(images[SHUFFLE], K, cam2world, None)
    assert consistent.shape == () and consistent > 22.0  # measured 26.3 dB
    assert consistent > shuffled + 8.0  # measured 13.6 dB
    assert nerf_consistency(images, K, cam2world, None) == consistent


def test_nerf_consistency_holds_out_the_last_of_few_views_and_one_view_is_refused(orbit):
    images, K, cam2world, depth = orbit
    value = nerf_consistency(images[:2], K[:2], cam2world[:2], None, steps=5)
    assert torch.isfinite(value)
    for single_view_metric in (tsed, nerf_consistency, warp_consistency):
        with pytest.raises(ValueError, match="at least 2 views"):
            single_view_metric(images[:1], K[:1], cam2world[:1], depth[:1])


def test_warp_consistency_is_unavailable_for_a_pipeline_that_predicts_no_depth():
    from bench.metrics.evaluate import not_predicted

    assert not_predicted(warp_consistency, frozenset({"image"})) == "predicts no depth"
    assert not_predicted(warp_consistency, frozenset({"image", "depth"})) is None
    assert not_predicted(tsed, frozenset({"image"})) is None
