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
    """What a check found: scenes, the views the protocol uses, image sizes, optional fields, samples."""

    root: str
    scenes: int = 0
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
            f"scenes: {self.scenes}, of which the protocol uses {len(counts)}",
            f"protocol samples: {self.samples}; views they use: {sum(counts)} (per scene {min(counts)}..{max(counts)})",
            f"image sizes (H x W): {sizes}",
            f"optional fields read: {extra}",
            "every used file present and decodable; every rotation orthonormal; every K finite with positive focal lengths",
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
    """Load and check every view the suite's protocol uses (a partial download is fine if it covers them)."""
    reader = suite.reader
    report = DatasetReport(str(reader.root), scenes=len(reader.scenes()))
    used: dict[str, dict[str, None]] = {}  # scene -> ordered views
    for spec in suite.protocol.samples(reader):
        report.samples += 1
        used.setdefault(spec.scene, {}).update(dict.fromkeys(spec.source_views + spec.target_views))
    if not used:
        raise ConfigError(f"the protocol finds no samples in {reader.root}")
    with tqdm(total=sum(map(len, used.values())), desc="checking views", unit="view", disable=not progress) as bar:
        for scene, views in used.items():
            report.views_per_scene[scene] = len(views)
            for view_id in views:
                view = reader.load_view(scene, view_id)
                check_view(view, f"{reader.root}: scene '{scene}' view '{view_id}'")
                report.sizes[view.size] += 1
                report.fields.update(name for name in ("depth", "mask", "seg") if getattr(view, name) is not None)
                bar.update(1)
    return report
