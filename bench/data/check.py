"""``nvsbench data check``: verify a dataset against its suite before spending compute on it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from bench.errors import ConfigError
from bench.suite import Suite

ORTHONORMAL_TOLERANCE = 1e-3


@dataclass
class DatasetReport:
    """What a check found: counts per scene, image sizes, optional fields, protocol samples."""

    root: str
    views_per_scene: dict[str, int] = field(default_factory=dict)
    sizes: Counter = field(default_factory=Counter)
    fields: Counter = field(default_factory=Counter)
    samples: int = 0

    def lines(self) -> list[str]:
        counts = list(self.views_per_scene.values())
        sizes = ", ".join(f"{h}x{w} ({n})" for (h, w), n in self.sizes.most_common())
        extra = ", ".join(f"{name} ({n})" for name, n in sorted(self.fields.items())) or "none"
        return [
            f"dataset root: {self.root}",
            f"scenes: {len(counts)}; views: {sum(counts)} (per scene {min(counts)}..{max(counts)})",
            f"image sizes (H x W): {sizes}",
            f"optional fields read: {extra}",
            "every file present and decodable; every rotation orthonormal; every K finite with positive focal lengths",
            f"protocol samples: {self.samples}",
        ]


def check_view(view, where: str) -> None:
    """Raise ConfigError unless the view's camera is a proper rigid transform and intrinsics are sane."""
    c2w = view.cam2world.double()
    rot = c2w[:3, :3]
    err = float((rot.T @ rot - torch.eye(3, dtype=rot.dtype)).abs().max())
    if err > ORTHONORMAL_TOLERANCE or abs(float(torch.linalg.det(rot)) - 1.0) > ORTHONORMAL_TOLERANCE:
        raise ConfigError(f"{where}: camera rotation is not orthonormal (max |RᵀR − I| = {err:.3g}, det = {float(torch.linalg.det(rot)):.4g})")
    if not torch.allclose(c2w[3], c2w.new_tensor([0.0, 0.0, 0.0, 1.0])):
        raise ConfigError(f"{where}: camera matrix's last row is {c2w[3].tolist()}, not [0, 0, 0, 1]")
    K = view.K
    if not torch.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ConfigError(f"{where}: intrinsics are not finite with positive focal lengths: {K.tolist()}")


def check_dataset(suite: Suite, progress: bool = True) -> DatasetReport:
    """Load every view the suite's reader lists, check it, and count the protocol's samples."""
    reader = suite.reader
    report = DatasetReport(str(reader.root))
    scenes = reader.scenes()
    total = None if len(scenes) > 1000 else sum(len(reader.view_ids(s)) for s in scenes)
    with tqdm(total=total, desc="checking views", unit="view", disable=not progress) as bar:
        for scene in scenes:
            ids = reader.view_ids(scene)
            if not ids:
                raise ConfigError(f"scene '{scene}' has no views (dataset root {reader.root})")
            report.views_per_scene[scene] = len(ids)
            for view_id in ids:
                view = reader.load_view(scene, view_id)
                check_view(view, f"{reader.root}: scene '{scene}' view '{view_id}'")
                report.sizes[view.size] += 1
                report.fields.update(name for name in ("depth", "mask", "seg") if getattr(view, name) is not None)
                bar.update(1)
    report.samples = sum(1 for _ in suite.protocol.samples(reader))
    return report
