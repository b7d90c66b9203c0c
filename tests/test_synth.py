"""Tests of the synthetic SRN-layout generator: files, determinism, and camera agreement."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.cameras import project, unproject_depth
from bench.data import synth
from bench.errors import ConfigError

OBJECTS, VIEWS, SIZE, RADIUS, SEED = 2, 8, 64, (1.3, 1.6), 3


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated set shared by the read-only tests."""
    return synth.generate_objects(
        tmp_path_factory.mktemp("synth") / "set", objects=OBJECTS, views=VIEWS, size=SIZE, radius=RADIUS, seed=SEED
    )


def read_pose(path: Path) -> torch.Tensor:
    """(4, 4) float64 cam2world from a pose file."""
    values = [float(x) for x in path.read_text().split()]
    assert len(values) == 16 and len(path.read_text().splitlines()) == 1
    return torch.tensor(values, dtype=torch.float64).reshape(4, 4)


def read_intrinsics(path: Path) -> tuple[torch.Tensor, tuple[int, int]]:
    """(3, 3) float64 K (pixel centres at integers) and (H, W) from an SRN intrinsics file.

    SRN's files (shapenet_renderer) measure the principal point from the image edge: half a pixel more.
    """
    lines = [line.split() for line in path.read_text().splitlines()]
    assert len(lines) == 4 and lines[1:3] == [["0.", "0.", "0."], ["1."]] and lines[0][3] == "0."
    f, cx, cy = (float(x) for x in lines[0][:3])
    K = torch.tensor([[f, 0, cx - 0.5], [0, f, cy - 0.5], [0, 0, 1]], dtype=torch.float64)
    return K, (int(lines[3][0]), int(lines[3][1]))


def read_view(obj: Path, view: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, torch.Tensor]:
    """rgb (H, W, 3) float in [0, 1], depth (H, W) metres, mask (H, W) bool, cam2world (4, 4)."""
    name = f"{view:06d}"
    rgb = np.asarray(Image.open(obj / "rgb" / f"{name}.png"), dtype=np.float64) / 255
    depth = np.asarray(Image.open(obj / "depth" / f"{name}.png"), dtype=np.float64) / 1000
    mask = np.asarray(Image.open(obj / "mask" / f"{name}.png")) == 255
    return rgb, depth, mask, read_pose(obj / "pose" / f"{name}.txt")


def all_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- layout and formats


def test_layout(dataset: Path) -> None:
    names = [f"{v:06d}" for v in range(VIEWS)]
    assert sorted(p.name for p in dataset.iterdir()) == ["car_0000", "chair_0001", "synth.json"]
    for obj in ("car_0000", "chair_0001"):
        for sub, ext in (("rgb", ".png"), ("pose", ".txt"), ("depth", ".png"), ("mask", ".png")):
            assert sorted(p.name for p in (dataset / obj / sub).iterdir()) == [n + ext for n in names]
        K, hw = read_intrinsics(dataset / obj / "intrinsics.txt")
        assert hw == (SIZE, SIZE)
        assert K[0, 0] == pytest.approx(131.25 / 128 * SIZE) and K[1, 1] == K[0, 0]
        assert K[0, 2] == K[1, 2] == (SIZE - 1) / 2
        assert (dataset / obj / "intrinsics.txt").read_text().startswith("65.625000 32.000000 32.000000 0.\n")  # SRN's file at 64 px
    params = json.loads((dataset / "synth.json").read_text())
    assert params == synth.ObjectSet(OBJECTS, VIEWS, SIZE, RADIUS, SEED).params()
    assert {"objects", "views", "size", "radius", "seed", "version"} <= set(params)


def test_poses_are_rigid_and_on_the_sphere(dataset: Path) -> None:
    for obj in ("car_0000", "chair_0001"):
        for v in range(VIEWS):
            pose = read_pose(dataset / obj / "pose" / f"{v:06d}.txt")
            rot, centre = pose[:3, :3], pose[:3, 3]
            assert torch.equal(pose[3], torch.tensor([0.0, 0, 0, 1], dtype=torch.float64))
            assert torch.allclose(rot.T @ rot, torch.eye(3, dtype=torch.float64), atol=1e-5)
            assert torch.det(rot).item() == pytest.approx(1.0, abs=1e-5)
            dist = centre.norm().item()
            assert RADIUS[0] - 1e-5 <= dist <= RADIUS[1] + 1e-5
            assert 5 - 1e-3 <= math.degrees(math.asin(centre[2].item() / dist)) <= 60 + 1e-3
            assert torch.allclose(rot[:, 2], -centre / dist, atol=1e-5)  # optical axis hits the origin


def test_images(dataset: Path) -> None:
    for obj in ("car_0000", "chair_0001"):
        for v in range(VIEWS):
            name = f"{v:06d}.png"
            rgb_img, depth_img, mask_img = (Image.open(dataset / obj / sub / name) for sub in ("rgb", "depth", "mask"))
            assert (rgb_img.mode, rgb_img.size) == ("RGB", (SIZE, SIZE))
            assert (depth_img.mode, depth_img.size) == ("I;16", (SIZE, SIZE))
            assert (mask_img.mode, mask_img.size) == ("L", (SIZE, SIZE))
            rgb, depth, mask, _ = read_view(dataset / obj, v)
            assert set(np.unique(np.asarray(mask_img))) <= {0, 255}
            assert np.array_equal(mask, depth > 0)
            assert (rgb[~mask] == 1.0).all()  # white background
            assert 0.05 < mask.mean() < 0.8
            assert RADIUS[0] - synth.OBJECT_RADIUS - 1e-3 <= depth[mask].min()
            assert depth.max() <= RADIUS[1] + synth.OBJECT_RADIUS + 1e-3
            border = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
            assert not border.any()  # the whole object is in frame
            assert np.unique(rgb[mask].round(3), axis=0).shape[0] >= 4  # textured, not flat


def test_different_kinds_alternate() -> None:
    assert [synth.object_id(i) for i in range(3)] == ["car_0000", "chair_0001", "car_0002"]
    for i in range(4):
        verts = synth.object_mesh(i, seed=0).verts_packed()
        assert verts.norm(dim=-1).max().item() == pytest.approx(synth.OBJECT_RADIUS, rel=1e-5)
        assert torch.allclose(verts.min(0).values + verts.max(0).values, torch.zeros(3), atol=1e-5)


def test_parts_face_outward() -> None:
    """Shading uses the face normals, so primitives must be wound counter-clockwise from outside."""
    parts = [
        synth._box((0.0, -0.1, 0.2), (0.5, 0.3, 0.9), np.ones(3)),
        synth._wheel((0.1, 0.2, 0.3), 0.1, 0.06, np.zeros(3), np.ones(3)),
    ]
    for part in parts:
        tri = part.verts[part.faces]
        normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        centre = (part.verts.min(0) + part.verts.max(0)) / 2
        assert (np.einsum("fi,fi->f", normal, tri.mean(1) - centre) > 0).all()


# --------------------------------------------------------------------------- determinism and folders


def test_deterministic(tmp_path: Path) -> None:
    kwargs = {"objects": 2, "views": 3, "size": 32, "radius": (1.4, 1.4)}
    a = all_bytes(synth.generate_objects(tmp_path / "a", seed=5, **kwargs))
    b = all_bytes(synth.generate_objects(tmp_path / "b", seed=5, **kwargs))
    c = all_bytes(synth.generate_objects(tmp_path / "c", seed=6, **kwargs))
    assert a == b
    assert a.keys() == c.keys()
    assert a["car_0000/rgb/000000.png"] != c["car_0000/rgb/000000.png"]
    assert a["car_0000/pose/000000.txt"] != c["car_0000/pose/000000.txt"]
    for v in range(3):  # equal radius bounds give a fixed distance
        assert read_pose(tmp_path / "a" / "car_0000" / "pose" / f"{v:06d}.txt")[:3, 3].norm().item() == pytest.approx(
            1.4, abs=1e-5
        )


def test_regenerate_and_ensure(tmp_path: Path) -> None:
    out = tmp_path / "set"
    synth.generate_objects(out, objects=3, views=2, size=16)
    request = synth.ObjectSet(objects=2, views=2, size=16)
    assert not request.matches(out)
    request.ensure(out)  # replaces the 3-object set: no stale chair/car folders remain
    assert sorted(p.name for p in out.iterdir()) == ["car_0000", "chair_0001", "synth.json"]
    assert request.matches(out)
    stamp = (out / "car_0000" / "rgb" / "000000.png").stat().st_mtime_ns
    request.ensure(out)  # already there: nothing rewritten
    assert (out / "car_0000" / "rgb" / "000000.png").stat().st_mtime_ns == stamp


def test_refuses_foreign_folder_and_bad_parameters(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty and holds no synth.json"):
        synth.generate_objects(tmp_path, objects=1, views=1, size=8)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    for bad in ({"radius": (1.6, 1.3)}, {"radius": (0.5, 1.0)}, {"views": 0}, {"seed": -1}):
        with pytest.raises(ConfigError):
            synth.ObjectSet(**bad)


# --------------------------------------------------------------------------- geometry agreement


def test_rasterizer_agrees_with_project() -> None:
    """The surface point pytorch3d samples at pixel (row i, column j) projects to u = j, v = i."""
    mesh = synth.object_mesh(0, SEED)
    K, cam2world = synth.object_cameras(0, SEED, 4, SIZE, RADIUS)
    fragments = synth.rasterize(mesh, K, cam2world, SIZE)
    face = fragments.pix_to_face[..., 0]
    b, i, j = torch.nonzero(face >= 0, as_tuple=True)
    corners = mesh.verts_packed()[mesh.faces_packed()[face[b, i, j] % mesh.num_faces_per_mesh()[0]]]
    points = (fragments.bary_coords[b, i, j, 0, :, None] * corners).sum(1)
    for view in range(len(K)):
        sel = b == view
        uv, z = project(points[sel][None], K[view : view + 1], cam2world[view : view + 1])
        assert (uv[0, :, 0] - j[sel]).abs().max().item() < 0.01, "column offset between pytorch3d and project"
        assert (uv[0, :, 1] - i[sel]).abs().max().item() < 0.01, "row offset between pytorch3d and project"
        assert torch.allclose(z[0], fragments.zbuf[view, i[sel], j[sel], 0], atol=1e-4)


def test_images_are_upright() -> None:
    """World up (+z) points up in every image, as in SRN."""
    K, cam2world = synth.object_cameras(1, SEED, VIEWS, SIZE, RADIUS)
    points = torch.tensor([[0.0, 0.0, -0.3], [0.0, 0.0, 0.3]]).expand(VIEWS, 2, 3)
    uv, _ = project(points, K, cam2world)
    assert (uv[:, 1, 1] < uv[:, 0, 1]).all()


def bilinear(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """(N, ...) bilinear samples of ``image`` (H, W, ...) at pixel coordinates ``uv`` (N, 2) inside it."""
    c0 = np.floor(uv).astype(int)
    fu, fv = (uv - c0).T
    out = 0.0
    for dv, du, w in ((0, 0, (1 - fv) * (1 - fu)), (0, 1, (1 - fv) * fu), (1, 0, fv * (1 - fu)), (1, 1, fv * fu)):
        out = out + w.reshape(-1, *[1] * (image.ndim - 2)) * image[c0[:, 1] + dv, c0[:, 0] + du]
    return out


def reproject(dataset: Path, obj: str, a: int, b: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Carry view ``a``'s object pixels, with their stored depth, into view ``b``.

    ``shift`` moves view ``b``'s principal point (a deliberately wrong camera, for a control).

    Returns:
        For the points landing inside ``b``'s object (all four neighbouring pixels on it): the
        max-over-channels abs colour difference to ``b``'s nearest pixel (N,), and the depth
        residual (N,) to ``b``'s depth map (interpolated bilinearly in inverse depth, which is
        exact on planes), large where the point is occluded in ``b``.
    """
    rgb_a, depth_a, mask_a, pose_a = read_view(dataset / obj, a)
    rgb_b, depth_b, mask_b, pose_b = read_view(dataset / obj, b)
    K, _ = read_intrinsics(dataset / obj / "intrinsics.txt")
    points = unproject_depth(torch.from_numpy(depth_a)[None], K[None], pose_a[None])[:, mask_a.reshape(-1)]

    uv_a, z_a = project(points, K[None], pose_a[None])
    rows, cols = np.nonzero(mask_a)
    assert np.abs(uv_a[0].numpy() - np.stack([cols, rows], 1)).max() < 1e-4  # back on its own pixel
    assert np.allclose(z_a[0].numpy(), depth_a[rows, cols], atol=1e-6)

    K_b = K.clone()
    K_b[:2, 2] += shift
    uv, z = project(points, K_b[None], pose_b[None])
    uv, z = uv[0].numpy(), z[0].numpy()
    inside = (uv >= 0).all(1) & (uv < SIZE - 1).all(1)
    inside[inside] = bilinear(mask_b.astype(float), uv[inside]) == 1.0
    inverse_b = np.where(mask_b, 1 / np.where(mask_b, depth_b, 1.0), 0.0)
    residual = np.abs(z[inside] - 1 / bilinear(inverse_b, uv[inside]))
    col, row = uv[inside].round().astype(int).T
    colour = np.abs(rgb_a[rows[inside], cols[inside]] - rgb_b[row, col]).max(1)
    return colour, residual


def nearest_view(dataset: Path, obj: str, a: int) -> int:
    """The view whose camera direction is closest to view ``a``'s (so the two overlap most)."""
    dirs = [read_pose(dataset / obj / "pose" / f"{v:06d}.txt")[:3, 2] for v in range(VIEWS)]
    return max((v for v in range(VIEWS) if v != a), key=lambda v: float(dirs[v] @ dirs[a]))


@pytest.mark.parametrize("obj", ["car_0000", "chair_0001"])
def test_reprojection_with_depth_matches_target_view(dataset: Path, obj: str) -> None:
    pairs = [(a, nearest_view(dataset, obj, a)) for a in range(4)]
    colour, residual = (np.concatenate(x) for x in zip(*(reproject(dataset, obj, a, b) for a, b in pairs)))
    visible = residual < 0.03  # the rest is hidden in the target view
    assert visible.sum() > 1000
    assert (residual[visible] < 0.002).mean() > 0.7  # depth agrees to the 1 mm storage step
    assert np.median(colour[visible]) < 0.02
    assert (colour[visible] < 0.05).mean() > 0.8  # differences only near checker and part edges
    _, wrong = (np.concatenate(x) for x in zip(*(reproject(dataset, obj, a, b, shift=0.5) for a, b in pairs)))
    assert (wrong[wrong < 0.03] < 0.002).mean() < 0.5  # control: half a pixel off is caught


def test_orbit_objects_follow_each_other_along_an_orbit(tmp_path):
    """orbit-objects: consecutive views step by orbit_deg in azimuth, at one distance, looking at the origin."""
    from bench.data.srn import SRNReader
    from bench.data.synth import OrbitObjectSet

    root = OrbitObjectSet(objects=1, views=5, size=32, radius=(1.4, 1.4), seed=3, orbit_deg=20.0).generate(tmp_path / "orbit")
    reader = SRNReader(root, depth=True)
    scene = reader.scenes()[0]
    centres = torch.stack([reader.pose(scene, v)[:3, 3] for v in reader.view_ids(scene)]).double()
    assert torch.allclose(centres.norm(dim=1), torch.full((5,), 1.4, dtype=torch.float64), atol=1e-5)
    azimuth = torch.rad2deg(torch.atan2(centres[:, 1], centres[:, 0]))
    steps = (azimuth.diff() + 180) % 360 - 180
    assert torch.allclose(steps, torch.full((4,), 20.0, dtype=torch.float64), atol=1e-3), steps
    assert all(reader.load_view(scene, v).depth.gt(0).any() for v in reader.view_ids(scene))  # the object is in every view
