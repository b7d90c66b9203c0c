"""Named registries of readers, protocols, stages, metrics and adapters.

Built-in entries are ``"module:attribute"`` strings, imported on first use, so listing
names (``nvsbench list``) never imports torch. Adapters also come from

- Python files in the project's ``adapters/`` folder and in folders given with ``--adapters DIR``,
  which register classes with :func:`register_adapter`;
- installed packages, through the entry-point group ``nvsbench.adapters``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.errors import ConfigError, unknown_name

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ADAPTER_ENTRY_POINT_GROUP = "nvsbench.adapters"

BUILTIN: dict[str, dict[str, str]] = {
    "readers": {
        "srn": "bench.data.srn:SRNReader",
        "re10k": "bench.data.re10k:RE10KReader",
        "voc": "bench.data.voc:VOCReader",
        "disn": "bench.data.disn:DISNReader",
        "blender": "bench.data.blender:BlenderReader",
    },
    "generators": {
        "objects": "bench.data.synth:ObjectSet",
        "orbit-objects": "bench.data.synth:OrbitObjectSet",
        "rooms": "bench.data.synth_rooms:RoomsSet",
        "segmentation": "bench.data.synth_segmentation:SegmentationSet",
        "depth-pairs": "bench.data.synth_depth_pairs:DepthPairsSet",
        "pose-radius": "bench.data.synth_pose_radius:PoseRadiusSet",
    },
    "protocols": {
        "source_targets": "bench.protocol:SourceTargets",
        "trajectory": "bench.protocol:Trajectory",
        "triplets": "bench.protocol:Triplets",
        "each_view": "bench.protocol:EachView",
        "azimuth_pairs": "bench.protocol:AzimuthPairs",
        "index_pairs": "bench.protocol:IndexPairs",
    },
    "stages": {
        "copy_source": "bench.stages.render.copy:CopySource",
        "constant_label": "bench.stages.heads.segmentation:ConstantLabel",
        "resnet_encoder": "bench.stages.encode.resnet:ResNetEncoder",
        "unproject_depth": "bench.stages.lift.unproject:UnprojectDepth",
        "point_rasterizer": "bench.stages.render.points:PointRasterizer",
        "depth_mesh": "bench.stages.lift.mesh:DepthMesh",
        "mesh_rasterizer": "bench.stages.render.mesh:MeshRasterizer",
        "pixel_aligned_field": "bench.stages.lift.field:PixelAlignedField",
        "frustum_volume": "bench.stages.lift.field:FrustumVolume",
        "volume_renderer": "bench.stages.render.volume:VolumeRenderer",
        "feature_volume_renderer": "bench.stages.render.volume:FeatureVolumeRenderer",
        "feature_to_rgb": "bench.stages.render.volume:FeatureToRGB",
        "tae_encoder": "bench.stages.encode.tae:TAEEncoder",
        "latent_transform": "bench.stages.lift.warp:LatentTransform",
        "inverse_warp": "bench.stages.lift.warp:InverseWarpFeatures",
        "depth_decoder": "bench.stages.heads.depth:DepthDecoder",
        "nvs_decoder": "bench.stages.render.nvs_decoder:NVSDecoder",
        "seg_head": "bench.stages.heads.segmentation:SegmentationHead",
        "three_dim": "bench.stages.refine.three_dim:ThreeDiM",
    },
    "metrics": {
        "psnr": "bench.metrics.image:psnr",
        "psnr_masked": "bench.metrics.image:psnr_masked",
        "psnr_fg": "bench.metrics.image:psnr_fg",
        "psnr_visible": "bench.metrics.image:psnr_visible",
        "ssim": "bench.metrics.image:ssim",
        "ssim_uniform7": "bench.metrics.image:ssim_uniform7",
        "ms_ssim": "bench.metrics.image:ms_ssim",
        "l1": "bench.metrics.image:l1",
        "mae": "bench.metrics.image:l1",
        "mse": "bench.metrics.image:mse",
        "tsed": "bench.metrics.consistency:tsed",
        "tsed_kornia": "bench.metrics.consistency:tsed_kornia",
        "nerf_consistency": "bench.metrics.consistency:nerf_consistency",
        "warp_consistency": "bench.metrics.consistency:warp_consistency",
        "lpips_alex": "bench.metrics.perceptual:lpips_alex",
        "lpips_vgg": "bench.metrics.perceptual:lpips_vgg",
        "fid": "bench.metrics.perceptual:fid",
        "kid": "bench.metrics.perceptual:kid",
        "abs_rel": "bench.metrics.depth:abs_rel",
        "sq_rel": "bench.metrics.depth:sq_rel",
        "rmse": "bench.metrics.depth:rmse",
        "rmse_log": "bench.metrics.depth:rmse_log",
        "silog": "bench.metrics.depth:silog",
        "log10": "bench.metrics.depth:log10",
        "delta1": "bench.metrics.depth:delta1",
        "delta2": "bench.metrics.depth:delta2",
        "delta3": "bench.metrics.depth:delta3",
        "depth_coverage": "bench.metrics.depth:depth_coverage",
        "rot_err_deg": "bench.metrics.pose:rot_err_deg",
        "trans_err": "bench.metrics.pose:trans_err",
        "trans_angle_deg": "bench.metrics.pose:trans_angle_deg",
        "center_err": "bench.metrics.pose:center_err",
        "rra_15": "bench.metrics.pose:rra_15",
        "rra_30": "bench.metrics.pose:rra_30",
        "rta_15": "bench.metrics.pose:rta_15",
        "rta_30": "bench.metrics.pose:rta_30",
        "joint_acc_15": "bench.metrics.pose:joint_acc_15",
        "joint_acc_30": "bench.metrics.pose:joint_acc_30",
        "auc_30": "bench.metrics.pose:auc_30",
        "seconds_per_view": "bench.metrics.cost:seconds_per_view",
        "nfe_per_view": "bench.metrics.cost:nfe_per_view",
        "miou": "bench.metrics.segmentation:miou",
        "pixel_acc": "bench.metrics.segmentation:pixel_acc",
    },
    "losses": {
        "diffusion_mse": "bench.train.losses.diffusion:diffusion_mse",
        "image_l1": "bench.train.losses.regression:image_l1",
        "image_mse": "bench.train.losses.regression:image_mse",
        "ray_mse": "bench.train.losses.regression:ray_mse",
        "multiscale_l1": "bench.train.losses.depth_guided:multiscale_l1",
        "photometric_reprojection": "bench.train.losses.depth_guided:photometric_reprojection",
        "perceptual_vgg16": "bench.train.losses.depth_guided:perceptual_vgg16",
        "edge_aware_smoothness": "bench.train.losses.depth_guided:edge_aware_smoothness",
        "skip_consistency": "bench.train.losses.depth_guided:skip_consistency",
    },
    "adapters": {},
}


SINGULAR = {"losses": "loss"}


class Registry:
    """Names mapped to objects, or to ``"module:attr"`` references imported lazily."""

    def __init__(self, kind: str, entries: dict[str, str]):
        self.kind = kind
        self.singular = SINGULAR.get(kind, kind[:-1])
        self._entries: dict[str, Any] = dict(entries)
        self._sources: dict[str, str] = {n: ref for n, ref in entries.items()}

    def names(self) -> list[str]:
        return sorted(self._entries)

    def sources(self) -> dict[str, str]:
        """Where each entry comes from (``module:attr``, a file, or an entry point)."""
        return dict(sorted(self._sources.items()))

    def add(self, name: str, obj: Any, source: str) -> None:
        if name in self._entries and self._sources[name] != source:
            raise ConfigError(f"{self.singular} '{name}' registered twice: {self._sources[name]} and {source}")
        self._entries[name] = obj
        self._sources[name] = source

    def get(self, name: str, where: str | None = None) -> Any:
        if name not in self._entries:
            raise unknown_name(self.singular, name, self._entries, where)
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attr = entry.partition(":")
            entry = getattr(importlib.import_module(module), attr)
            self._entries[name] = entry
        return entry


REGISTRIES: dict[str, Registry] = {kind: Registry(kind, entries) for kind, entries in BUILTIN.items()}
_loaded_dirs: set[Path] = set()


def registry(kind: str) -> Registry:
    return REGISTRIES[kind]


def register_adapter(name: str) -> Callable[[type], type]:
    """Class decorator for adapter files: ``@register_adapter("my_method")``."""

    def deco(cls: type) -> type:
        REGISTRIES["adapters"].add(name, cls, f"{sys.modules[cls.__module__].__file__}:{cls.__name__}")
        return cls

    return deco


def load_adapters(extra_dirs: list[Path] = ()) -> None:
    """Register adapters from the project's ``adapters/``, ``extra_dirs`` and entry points."""
    for directory in [PROJECT_ROOT / "adapters", *extra_dirs]:
        directory = Path(directory).resolve()
        if directory in _loaded_dirs:
            continue
        if not directory.is_dir():
            raise ConfigError(f"adapters folder not found: {directory}")
        _loaded_dirs.add(directory)
        for file in sorted(directory.glob("*.py")):
            if file.name.startswith("_"):
                continue
            module_name = f"nvsbench_adapters_{abs(hash(str(file)))}_{file.stem}"
            spec = importlib.util.spec_from_file_location(module_name, file)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            try:
                spec.loader.exec_module(module)
            except ConfigError:
                raise
            except Exception as exc:  # a broken plugin must say which file broke
                raise ConfigError(f"cannot load adapter file {file}: {type(exc).__name__}: {exc}") from exc
    for ep in importlib.metadata.entry_points(group=ADAPTER_ENTRY_POINT_GROUP):
        if ep.name not in REGISTRIES["adapters"]._entries:
            REGISTRIES["adapters"].add(ep.name, ep.value, f"entry point {ep.value}")


def search_path(folder: str) -> list[Path]:
    """Folders searched for suites or pipelines by name: ``./<folder>``, then the project's."""
    out: list[Path] = []
    for d in (Path.cwd() / folder, PROJECT_ROOT / folder):
        d = d.resolve()
        if d.is_dir() and d not in out:
            out.append(d)
    return out


def yaml_names(folder: str) -> dict[str, Path]:
    """``name -> path`` of the YAML files (suites or pipelines) on the search path."""
    found: dict[str, Path] = {}
    for d in search_path(folder):
        for f in sorted(d.glob("*.yaml")):
            found.setdefault(f.stem, f)
    return found


def resolve_yaml(folder: str, name_or_path: str, kind: str, where: str | None = None) -> Path:
    """A YAML file given by path, or by name on the search path of ``folder``."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise ConfigError(f"{kind} file not found: {p}", where)
        return p
    names = yaml_names(folder)
    if name_or_path not in names:
        raise unknown_name(kind, name_or_path, names, where)
    return names[name_or_path]
