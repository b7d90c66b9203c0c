"""3D-consistency metrics of one generated set of views: ``fn(images, K, cam2world, depth) -> ()``.

``images`` (T,3,H,W) in [0,1] are the generated views of one scene, ``K`` (T,3,3) and
``cam2world`` (T,4,4) the cameras they were generated for (the conventions of
:mod:`bench.cameras`), ``depth`` (T,H,W) z-depth predicted with them, or None. All three
metrics are higher-is-better and only ask whether the views agree with each other and with
their cameras, not whether they match a ground truth:

- :data:`tsed`: fraction of neighbouring view pairs whose feature matches obey the epipolar
  geometry of their cameras (Yu et al. 2023), matched with the authors' front end (COLMAP's SIFT
  through ``pycolmap``); :data:`tsed_kornia` with kornia's SIFT instead; variants via :func:`make_tsed`.
- :data:`nerf_consistency`: PSNR of held-out views rendered by a small radiance field fitted
  to the other views (the 3D-consistency idea of Watson et al. 2022, 3DiM).
- :data:`warp_consistency`: colour agreement of neighbouring views reprojected through the
  predicted depth.
"""

from __future__ import annotations

import functools
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor

from bench.cameras import project, relative_pose, to_pytorch3d, unproject_depth
from bench.metrics.base import Metric, metric

TSED_MIN_MATCHES = 10  # T_m of Yu et al. 2023
TSED_MAX_ERROR_PX = 2.0  # T_e of Yu et al. 2023, pixels
# The TSED authors' front end: COLMAP's SIFT extraction and exhaustive matching with its defaults,
# which are these (checked against pycolmap's FeatureExtractionOptions / SiftMatchingOptions).
COLMAP_SIFT_FEATURES = 8192
COLMAP_MATCH_RATIO, COLMAP_MATCH_MAX_DISTANCE, COLMAP_CROSS_CHECK = 0.8, 0.7, True
# kornia's front end (tsed_kornia): fewer features, a plain ratio test.
SIFT_FEATURES = 512
SIFT_RATIO = 0.8  # Lowe's ratio test (Lowe 2004)


def _neighbour_pairs(images: Tensor, name: str) -> list[tuple[int, int]]:
    """The pairs (i, i+1) of a set of (T,3,H,W) views; a ValueError names metric ``name`` if T < 2."""
    if len(images) < 2:
        raise ValueError(f"{name} needs at least 2 views, got {len(images)}")
    return [(i, i + 1) for i in range(len(images) - 1)]


# --------------------------------------------------------------------------- TSED


def fundamental_matrix(K_i: Tensor, cam2world_i: Tensor, K_j: Tensor, cam2world_j: Tensor) -> Tensor:
    """Fundamental matrix of two known cameras: ``F = K_j^-T [t]_x R K_i^-1``.

    (R, t) takes camera-i coordinates to camera-j coordinates (:func:`bench.cameras.relative_pose`),
    so ``x_jᵀ F x_i = 0`` for homogeneous pixels ``x_i``, ``x_j`` of one world point
    (Hartley & Zisserman 2004, eq. 9.12). Zero when the camera centres coincide.

    Args:
        K_i, K_j: (..., 3, 3) intrinsics in pixels; cam2world_i, cam2world_j: (..., 4, 4) OpenCV.

    Returns:
        (..., 3, 3) F, not normalised.
    """
    from kornia.geometry.epipolar import cross_product_matrix, fundamental_from_essential

    rel = relative_pose(cam2world_i, cam2world_j)
    essential = cross_product_matrix(rel[..., :3, 3]) @ rel[..., :3, :3]
    return fundamental_from_essential(essential, K_i, K_j)


def symmetric_epipolar_distance(x_i: Tensor, x_j: Tensor, fundamental: Tensor) -> Tensor:
    """SED of correspondences in pixels: the mean of the two point-to-epipolar-line distances.

    ``SED = (d(x_j, F x_i) + d(x_i, Fᵀ x_j)) / 2`` with ``d`` the Euclidean distance from a
    point to a line, as in the TSED of Yu et al. 2023 (after Hartley & Zisserman 2004). The name
    also covers other forms elsewhere (the sum of the two distances, or of their squares, as in
    kornia's ``symmetrical_epipolar_distance``); a threshold on SED is only meaningful with its form.

    Args:
        x_i: (N, 2) pixels in image i; x_j: (N, 2) matching pixels in image j.
        fundamental: (3, 3) F with ``x_jᵀ F x_i = 0`` (:func:`fundamental_matrix`).

    Returns:
        (N,) distances in pixels (inf where F is zero).
    """
    from kornia.geometry.epipolar import left_to_right_epipolar_distance, right_to_left_epipolar_distance

    return 0.5 * (left_to_right_epipolar_distance(x_i, x_j, fundamental) + right_to_left_epipolar_distance(x_i, x_j, fundamental))


def _median(x: Tensor) -> Tensor:
    """Median of (N,) values, N >= 1, with numpy's definition: the mean of the two middle values when N is even.

    The TSED reference code (Yu et al. 2023) takes ``np.median``; ``torch.median`` returns the lower
    of the two middle values instead, which can flip a pair's decision.
    """
    s = x.sort().values
    return (s[(len(s) - 1) // 2] + s[len(s) // 2]) / 2


@functools.cache
def _sift():
    from kornia.feature import SIFTFeatureScaleSpace

    return SIFTFeatureScaleSpace(num_features=SIFT_FEATURES).eval()


def sift_features(images: Tensor) -> list[tuple[Tensor, Tensor]]:
    """SIFT (keypoints (N, 2) in pixels, descriptors (N, 128)) of each of (T,3,H,W) images, on grayscale.

    kornia's ``SIFTFeatureScaleSpace`` (DoG scale space with sub-pixel refinement, RootSIFT
    descriptors), at most ``SIFT_FEATURES`` per image; N varies by image.
    """
    from kornia.color import rgb_to_grayscale
    from kornia.feature import get_laf_center, laf_is_filled

    sift = _sift().to(images.device)
    out = []
    with torch.inference_mode():
        for gray in rgb_to_grayscale(images.float()):
            lafs, _, descs = sift(gray[None])
            filled = laf_is_filled(lafs)[0]  # drop unfilled slots: they match each other at distance 0
            out.append((get_laf_center(lafs)[0][filled], descs[0][filled]))
    return out


def sift_matches(features_i: tuple[Tensor, Tensor], features_j: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """Matched pixels (M, 2) in image i and (M, 2) in image j: nearest descriptor with Lowe's ratio test."""
    from kornia.feature import match_snn

    (xy_i, desc_i), (xy_j, desc_j) = features_i, features_j
    if len(desc_i) == 0 or len(desc_j) < 2:
        return xy_i[:0], xy_j[:0]
    _, idx = match_snn(desc_i, desc_j, SIFT_RATIO)
    return xy_i[idx[:, 0]], xy_j[idx[:, 1]]


@functools.cache
def _colmap() -> tuple:
    """pycolmap's SIFT extractor and brute-force matcher on the CPU, with the TSED authors' settings."""
    import pycolmap

    pycolmap.logging.minloglevel = pycolmap.logging.WARNING  # not a line per creation on stderr
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.sift.max_num_features = COLMAP_SIFT_FEATURES
    matching = pycolmap.FeatureMatchingOptions()
    matching.sift.max_ratio, matching.sift.max_distance = COLMAP_MATCH_RATIO, COLMAP_MATCH_MAX_DISTANCE
    matching.sift.cross_check = COLMAP_CROSS_CHECK
    return (pycolmap.FeatureExtractor.create(extraction, pycolmap.Device.cpu),
            pycolmap.FeatureMatcher.create(matching, pycolmap.Device.cpu))


def colmap_features(images: Tensor) -> list[tuple]:
    """COLMAP SIFT features (pycolmap keypoints, descriptors) of each of (T,3,H,W) images.

    Each image goes in as the 8-bit RGB a saved PNG holds (rounded), and COLMAP's ``Bitmap`` converts it
    to grey (Rec. 709 luma weights, as it does when its ``feature_extractor`` reads the authors' saved views).
    """
    import pycolmap

    extractor, _ = _colmap()
    rgb = (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [extractor.extract(pycolmap.Bitmap.from_array(image.copy()).clone_as_grey()) for image in rgb]


def colmap_matches(features_i: tuple, features_j: tuple) -> tuple[Tensor, Tensor]:
    """Matched pixels (M, 2) in image i and j by COLMAP's matcher (ratio 0.8, max distance 0.7, cross-check).

    COLMAP's keypoints put the top-left pixel's corner at (0, 0), its centre at (0.5, 0.5); they are
    shifted by -0.5 to the harness's integer pixel centres (:mod:`bench.cameras`, :func:`keypoint_pixels`).
    """
    _, matcher = _colmap()
    (kp_i, desc_i), (kp_j, desc_j) = features_i, features_j
    if len(kp_i) == 0 or len(kp_j) == 0:
        return torch.zeros(0, 2, dtype=torch.float64), torch.zeros(0, 2, dtype=torch.float64)
    pairs = matcher.match(kp_i, desc_i, kp_j, desc_j)
    return keypoint_pixels(kp_i, pairs[:, 0].tolist()), keypoint_pixels(kp_j, pairs[:, 1].tolist())


def keypoint_pixels(keypoints, idx: list[int]) -> Tensor:
    """(len(idx), 2) float64 pixels of COLMAP keypoints ``keypoints[idx]``, in integer-centre coordinates (x − 0.5, y − 0.5)."""
    return torch.tensor([[keypoints[k].x - 0.5, keypoints[k].y - 0.5] for k in idx], dtype=torch.float64).reshape(-1, 2)


#: How :func:`tsed` finds correspondences: ``(features(images) -> per image, matches(f_i, f_j) -> (x_i, x_j))``.
FRONT_ENDS = {
    "colmap": (colmap_features, colmap_matches),  # the TSED authors' (Yu et al. 2023): COLMAP SIFT, exhaustive matching
    "kornia": (sift_features, sift_matches),
}


@metric("consistency", higher_is_better=True, revision=2)  # 2: the authors' COLMAP front end (was kornia's)
def tsed(
    images: Tensor,
    K: Tensor,
    cam2world: Tensor,
    depth: Tensor | None = None,
    *,
    t_m: int = TSED_MIN_MATCHES,
    t_e: float = TSED_MAX_ERROR_PX,
    front_end: str = "colmap",
) -> Tensor:
    """Thresholded symmetric epipolar distance (TSED): fraction of neighbouring view pairs that are consistent.

    Yu, Forghani, Derpanis & Brubaker, "Long-Term Photometrically Consistent Novel View
    Synthesis with Diffusion Models", ICCV 2023. For each pair (i, i+1): SIFT keypoints are matched
    with the authors' front end, COLMAP's (``front_end="colmap"``: up to 8192 SIFT features per
    image, matching with ratio test 0.8, maximum descriptor distance 0.7 and cross-check, through
    ``pycolmap`` on the CPU), or kornia's for :data:`tsed_kornia` (``SIFTFeatureScaleSpace``, 512
    features, ratio test 0.8; on noisy views it finds 2-4x fewer matches, so more pairs fall under
    T_m and the number is lower: not comparable with published TSED). Each match gets its symmetric epipolar
    distance (:func:`symmetric_epipolar_distance`) under the fundamental matrix of the KNOWN
    cameras (:func:`fundamental_matrix`). The pair is consistent when it has at least ``t_m``
    matches and their median SED is below ``t_e`` pixels (for an even number of matches, the mean
    of the two middle values, as the reference code's ``np.median``; :func:`_median`). Defaults
    T_m = 10, T_e = 2 px; build a variant with :func:`make_tsed`. ``depth`` is not used.

    Args:
        images: (T,3,H,W) in [0,1], T >= 2, in trajectory order; K: (T,3,3); cam2world: (T,4,4).

    Returns:
        () fraction in [0, 1] of the T-1 neighbouring pairs that are consistent.
    """
    pairs = _neighbour_pairs(images, "tsed")
    extract, match = FRONT_ENDS[front_end]
    features = extract(images)
    consistent = []
    for i, j in pairs:
        x_i, x_j = match(features[i], features[j])
        fundamental = fundamental_matrix(K[i].double(), cam2world[i].double(), K[j].double(), cam2world[j].double()).to(x_i)
        sed = symmetric_epipolar_distance(x_i, x_j, fundamental)
        consistent.append(len(sed) >= max(t_m, 1) and bool(_median(sed) < t_e))
    return torch.tensor(consistent, dtype=torch.float32).mean()


def make_tsed(t_m: int = TSED_MIN_MATCHES, t_e: float = TSED_MAX_ERROR_PX, front_end: str = "colmap") -> Metric:
    """:data:`tsed` with other thresholds or front end, e.g. ``make_tsed(t_e=4.0)`` for the looser T_e = 4 px.

    Register the result under a name of its own (``tsed_e4``): the number depends on all three.
    """
    if front_end not in FRONT_ENDS:
        raise ValueError(f"unknown TSED front end {front_end!r}; one of {', '.join(FRONT_ENDS)}")
    fn = functools.update_wrapper(functools.partial(tsed.fn, t_m=t_m, t_e=t_e, front_end=front_end), tsed.fn)
    return replace(tsed, fn=fn)


#: TSED with kornia's SIFT front end instead of COLMAP's (see :data:`tsed`): not comparable with published TSED.
tsed_kornia = make_tsed(front_end="kornia")


# --------------------------------------------------------------------------- radiance field


def _resize(images: Tensor, K: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """Area-downsample (T,3,H,W) images so that the longer side is at most ``size``; scale ``K`` to match.

    With pixel centres at integers, pixel coordinates scale as ``u' = s (u + 0.5) - 0.5``.
    """
    h, w = images.shape[-2:]
    scale = min(1.0, size / max(h, w))
    h2, w2 = max(1, round(h * scale)), max(1, round(w * scale))
    sx, sy = w2 / w, h2 / h
    K2 = K.clone()
    K2[:, 0] *= sx
    K2[:, 1] *= sy
    K2[:, 0, 2] += 0.5 * sx - 0.5
    K2[:, 1, 2] += 0.5 * sy - 0.5
    return F.interpolate(images, size=(h2, w2), mode="area"), K2


class _VoxelField(torch.nn.Module):
    """A dense grid of density and colour over the cube [-radius, radius]^3, and a background colour.

    A pytorch3d volumetric function: called on a ray bundle whose samples are ``step`` apart in
    ``lengths``, it returns per-sample opacity ``1 - exp(-sigma * step |direction|)`` (the input
    of ``EmissionAbsorptionRaymarcher``) and colour, with ``sigma = 20 softplus(logit)``;
    samples outside the cube are empty. All parameters start constant: density logits at -5
    (sigma 0.13, nearly empty), colours and background at grey.
    """

    def __init__(self, resolution: int, radius: float, step: float):
        super().__init__()
        self.radius, self.step = radius, step
        self.density = torch.nn.Parameter(torch.full((1, 1, resolution, resolution, resolution), -5.0))
        self.colour = torch.nn.Parameter(torch.zeros(1, 3, resolution, resolution, resolution))
        self.background = torch.nn.Parameter(torch.zeros(3))

    def forward(self, ray_bundle) -> tuple[Tensor, Tensor]:
        from pytorch3d.renderer import ray_bundle_to_ray_points

        points = ray_bundle_to_ray_points(ray_bundle)  # (..., S, 3) world
        grid = (points / self.radius).reshape(1, 1, 1, -1, 3)
        values = F.grid_sample(torch.cat([self.density, self.colour], 1), grid, align_corners=True)
        values = values.reshape(4, *points.shape[:-1]).movedim(0, -1)
        inside = (points.abs() <= self.radius).all(dim=-1, keepdim=True)
        sigma = 20.0 * F.softplus(values[..., :1]) * inside
        step = self.step * ray_bundle.directions.norm(dim=-1)[..., None, None]  # world length of a sample
        return 1.0 - torch.exp(-sigma * step), torch.sigmoid(values[..., 1:])

    def smoothness(self) -> Tensor:
        """Mean squared difference of neighbouring density logits along the three grid axes."""
        d = self.density
        return sum((d.diff(dim=axis) ** 2).mean() for axis in (2, 3, 4))


def _near_far(cam2world: Tensor, radius: float) -> tuple[float, float]:
    """z-depth range that holds the sphere of ``radius`` around the origin from every camera."""
    dist = cam2world[:, :3, 3].norm(dim=-1)
    return max(float(dist.min()) - radius, 1e-3 * float(dist.min())), float(dist.max()) + radius


@metric("consistency", higher_is_better=True)
def nerf_consistency(
    images: Tensor,
    K: Tensor,
    cam2world: Tensor,
    depth: Tensor | None = None,
    *,
    size: int = 32,
    steps: int = 300,
    rays: int = 1024,
    resolution: int = 32,
    samples: int = 32,
    scene_radius: float | None = None,
    seed: int = 0,
) -> Tensor:
    """PSNR (dB) of held-out views rendered by a small radiance field fitted to the other views.

    The 3D-consistency measure of Watson et al. 2022, "Novel View Synthesis with Diffusion
    Models" (3DiM), in a CPU-sized form. Views ``3, 7, 11, ...`` (every 4th; the last one if
    T < 4) are held out. Images are area-downsampled to at most ``size`` px on the longer side.
    The other views fit a ``resolution``^3 voxel grid of density and colour plus a background
    colour, rendered with pytorch3d's ``NDCMultinomialRaysampler`` (a ray through every pixel
    centre, ``samples`` points per ray) and ``EmissionAbsorptionRaymarcher``: ``steps`` Adam
    steps (lr 0.1) on the mean squared error of ``rays`` random training rays plus 0.01 times a
    density smoothness term, from a constant initialisation with rays drawn from a generator
    seeded with ``seed``, so the value is deterministic. It depends on this budget (defaults:
    32 px, 300 steps of 1024 rays, 32^3 grid, 32 samples; about 2 s on a 2-core CPU for 8 views):
    compare only values computed with the same one. The scene must lie in the sphere of
    ``scene_radius`` around the world origin (default: half the smallest camera distance to it),
    which also sets the near and far planes. ``depth`` is not used.

    Args:
        images: (T,3,H,W) in [0,1], T >= 2; K: (T,3,3); cam2world: (T,4,4).

    Returns:
        () mean over held-out views of ``-10 log10(MSE)`` at the fitting resolution.
    """
    from pytorch3d.renderer import EmissionAbsorptionRaymarcher, NDCMultinomialRaysampler
    from pytorch3d.renderer.implicit.utils import RayBundle

    _neighbour_pairs(images, "nerf_consistency")
    images, K = _resize(images.float(), K.float(), size)
    cam2world = cam2world.float()
    h, w = images.shape[-2:]
    radius = scene_radius if scene_radius is not None else 0.5 * float(cam2world[:, :3, 3].norm(dim=-1).min())
    near, far = _near_far(cam2world, radius)
    views = torch.arange(len(images), device=images.device)
    held = views % 4 == 3 if len(images) >= 4 else views == len(images) - 1
    raysampler = NDCMultinomialRaysampler(image_width=w, image_height=h, n_pts_per_ray=samples, min_depth=near, max_depth=far)
    raymarcher = EmissionAbsorptionRaymarcher()
    field = _VoxelField(resolution, radius, (far - near) / (samples - 1)).to(images.device)

    def rays_of(select: Tensor) -> RayBundle:
        bundle = raysampler(to_pytorch3d(K[select], cam2world[select], (h, w)))  # (V, H, W, ...)
        return RayBundle(*(x.flatten(0, 2) for x in (bundle.origins, bundle.directions, bundle.lengths, bundle.xys)))

    def render(bundle: RayBundle) -> Tensor:
        out = raymarcher(*field(bundle))  # (N, 3 + opacity)
        return out[:, :3] + (1.0 - out[:, 3:]) * torch.sigmoid(field.background)

    train_rays, train_rgb = rays_of(~held), images[~held].permute(0, 2, 3, 1).reshape(-1, 3)
    generator = torch.Generator(device=images.device).manual_seed(seed)
    optimiser = torch.optim.Adam(field.parameters(), lr=0.1)
    for _ in range(steps):
        pick = torch.randperm(len(train_rgb), generator=generator, device=images.device)[:rays]
        batch = RayBundle(*(x[pick] for x in train_rays))
        optimiser.zero_grad()
        (F.mse_loss(render(batch), train_rgb[pick]) + 0.01 * field.smoothness()).backward()
        optimiser.step()
    with torch.no_grad():
        pred = render(rays_of(held)).reshape(-1, h, w, 3).permute(0, 3, 1, 2)
    mse = (pred - images[held]).pow(2).flatten(1).mean(1)
    return (-10.0 * torch.log10(mse)).mean()


# --------------------------------------------------------------------------- depth warping


def _warp_error(images: Tensor, K: Tensor, cam2world: Tensor, depth: Tensor, i: int, j: int, rel_tol: float) -> Tensor:
    """Absolute colour differences (N, 3) between view i's pixels and view j at their reprojections, where visible in j."""
    h, w = depth.shape[-2:]
    points = unproject_depth(depth[i : i + 1], K[i : i + 1], cam2world[i : i + 1])
    uv, z = project(points, K[j : j + 1], cam2world[j : j + 1])
    uv, z = uv[0], z[0]
    # grid_sample coordinates of pixel centres at integers: -1 and 1 are the outer centres
    grid = torch.stack([2 * uv[:, 0] / max(w - 1, 1) - 1, 2 * uv[:, 1] / max(h - 1, 1) - 1], -1).reshape(1, 1, -1, 2)
    depth_j = F.grid_sample(depth[j][None, None], grid, mode="nearest", align_corners=True).reshape(-1)
    colour_j = F.grid_sample(images[j][None], grid, mode="bilinear", align_corners=True).reshape(3, -1).T
    inside = (uv[:, 0] >= 0) & (uv[:, 0] <= w - 1) & (uv[:, 1] >= 0) & (uv[:, 1] <= h - 1)
    visible = (depth[i].reshape(-1) > 0) & (z > 0) & inside & (depth_j > 0) & ((depth_j - z).abs() <= rel_tol * z)
    return (images[i].reshape(3, -1).T - colour_j)[visible].abs()


@metric("consistency", higher_is_better=True, needs_predicted=("depth",))
def warp_consistency(
    images: Tensor,
    K: Tensor,
    cam2world: Tensor,
    depth: Tensor | None,
    *,
    rel_tol: float = 0.05,
) -> Tensor:
    """1 - mean absolute colour error between neighbouring views warped through the predicted depth.

    For each neighbouring pair (i, i+1), in both directions: every pixel of the source view with
    depth > 0 is unprojected with its depth and projected into the other view; it counts where
    it lands inside that view and its z agrees with the other view's depth there (nearest
    pixel) within ``rel_tol`` relative tolerance (visible, not occluded). The score of a
    direction is ``1 - mean |c_src - c_dst|`` over those pixels and channels (``c_dst`` sampled
    bilinearly); the metric is the mean over directions with at least one such pixel. 1 means
    the views and their depth agree exactly. The depth-and-camera analogue of the
    occlusion-masked warping error of Lai et al. 2018, "Learning Blind Video Temporal
    Consistency" (ECCV), which warps with optical flow instead.

    Args:
        images: (T,3,H,W) in [0,1], T >= 2; K: (T,3,3); cam2world: (T,4,4);
        depth: (T,H,W) z-depth predicted with the views (0 = invalid). Required.

    Returns:
        () score in [0, 1].

    Raises:
        ValueError: if ``depth`` is None, T < 2, or no pixel of any pair is visible in its neighbour.
    """
    if depth is None:
        raise ValueError("warp_consistency needs predicted depth (T,H,W) with the views; this set has none")
    scores = []
    for i, j in _neighbour_pairs(images, "warp_consistency"):
        for src, dst in ((i, j), (j, i)):
            error = _warp_error(images, K, cam2world, depth, src, dst, rel_tol)
            if len(error):
                scores.append(1.0 - error.mean())
    if not scores:
        raise ValueError("warp_consistency: no pixel of any view is visible in its neighbours (is the depth z-depth, 0 = invalid?)")
    return torch.stack(scores).mean()
