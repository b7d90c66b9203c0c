"""The data that flows through a run: views, samples, predictions, and the batched state of a pipeline.

Conventions (see :mod:`bench.cameras`): images are float32 in [0, 1], channels first;
``K`` is in pixels; ``cam2world`` is OpenCV (x right, y down, z forward); depth is z-depth
in world units with 0 = invalid; masks are bool.

Batched pipeline state (a ``dict[str, Tensor]``), B samples, S sources, T targets, D draws:

========================  ===========================  =====================================
field                     shape                        meaning
========================  ===========================  =====================================
``source_image``          (B, S, 3, H, W)              source views
``source_K``              (B, S, 3, 3)                 source intrinsics
``source_cam2world``      (B, S, 4, 4)                 source poses
``source_depth``          (B, S, H, W)                 when the suite provides depth
``source_mask``           (B, S, H, W) bool            when the suite provides masks
``target_K``              (B, T, 3, 3)                 target intrinsics
``target_cam2world``      (B, T, 4, 4)                 target poses (never target images)
``near``, ``far``         (B,)                         scene bounds from the suite
``target_size``           (2,) int64                   target image (H, W)
``background``            (3,)                         background colour of the suite
``seed``                  (B,) int64                   per-sample seed for stochastic stages
``draws``                 () int64                     draws a stochastic stage makes per sample (the suite's ``draws``)
``target_image``          (B, T, 3, H, W)              training only (``nvsbench train``): the target views a
                                                       generative stage noises; never in evaluation
``denoise_pred``          (B, 3, H, W)                 diffusion stages while training: the network's prediction
``denoise_target``        (B, 3, H, W)                 and its target (ε, v or x_0), for ``diffusion_mse``
``pred_image``            (B, T, D, 3, H, W)           required output of every pipeline
``pred_depth``            (B, T, D, H, W)              optional output
``pred_seg``              (B, T, D, H, W) int64        optional output
``pred_poses``            (B, T, D, 4, 4)              optional output: estimated target cam2world
``pred_nfe``              (B,) int64                   optional output: network evaluations spent per sample
``pred_opacity``          (B, T, D, H, W)              volume renderers: accumulated opacity
``field``                 callable                     radiance/feature field: (points (B,T,R,P,3), dirs) -> (density, features)
``ray_index``             (B, T, R) int64              volume renderers: row-major pixel index of each rendered ray
``ray_rgb``               (B, T, R, 3)                 colour of each rendered ray (training renders random rays)
``ray_features``          (B, T, R, C)                 feature renderers: features of each rendered ray
``rendered_features``     (B, T, C, H, W)              feature renderers, full images only (GeNVS conditioning)
========================  ===========================  =====================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

from torch import Tensor

#: Fields every suite provides to a pipeline (besides the optional ``source_depth`` / ``source_mask``).
BASE_FIELDS = frozenset(
    {"source_image", "source_K", "source_cam2world", "target_K", "target_cam2world", "near", "far", "target_size", "background", "seed",
     "draws"}
)


@dataclass
class View:
    """One image of a scene with its camera; ``image`` (3,H,W), ``K`` (3,3), ``cam2world`` (4,4)."""

    id: str
    image: Tensor
    K: Tensor
    cam2world: Tensor
    depth: Tensor | None = None  # (H, W) z-depth, 0 = invalid
    mask: Tensor | None = None  # (H, W) bool
    seg: Tensor | None = None  # (H, W) int64 class labels, 255 = ignore

    @property
    def size(self) -> tuple[int, int]:
        return int(self.image.shape[-2]), int(self.image.shape[-1])


class HiddenGroundTruth(RuntimeError):
    """A method asked a target view for its image, depth, mask or labels: the ground truth it must predict."""


@dataclass(frozen=True)
class TargetView:
    """What a method may know of a target view: its id, camera ``K`` (3,3), ``cam2world`` (4,4) and ``size`` (H, W).

    Adapters (and ``precomputed``) receive targets as these, never as :class:`View` s: reading
    ``image``, ``depth``, ``mask`` or ``seg`` raises :class:`HiddenGroundTruth`, so a method cannot
    see the ground truth it is scored on, by mistake or otherwise.
    """

    id: str
    K: Tensor
    cam2world: Tensor
    size: tuple[int, int]

    @classmethod
    def of(cls, view: View) -> TargetView:
        return cls(view.id, view.K, view.cam2world, view.size)

    def __getattr__(self, name: str):  # only for attributes the dataclass does not have
        if name in HIDDEN_FIELDS:
            raise HiddenGroundTruth(f"target view '{self.id}' has no {name}: a method predicts it from the sources "
                                    f"(it gets the target's id, K, cam2world and size {self.size})")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


#: The ground truth of a :class:`View` that a :class:`TargetView` withholds.
HIDDEN_FIELDS = frozenset({"image", "depth", "mask", "seg"})


@dataclass(frozen=True)
class SampleSpec:
    """What a protocol asks: predict ``target_views`` of ``scene`` from ``source_views`` (view ids)."""

    id: str
    scene: str
    source_views: tuple[str, ...]
    target_views: tuple[str, ...]


class CameraGeometry(NamedTuple):
    """``angle_deg``: angle (degrees) of the relative rotation between a sample's first source and first
    target camera orientations; ``radius``: the first target camera's distance from the world origin."""

    angle_deg: float
    radius: float


@dataclass
class Sample:
    """A loaded :class:`SampleSpec`. Pipelines see target cameras only, never target images: stage
    pipelines get them as state fields, adapters a :meth:`blind` copy."""

    spec: SampleSpec
    sources: list[View]
    targets: list[View] | list[TargetView]

    def blind(self) -> Sample:
        """This sample with its targets as :class:`TargetView` s (camera and size, no ground truth)."""
        return Sample(self.spec, self.sources, [TargetView.of(v) if isinstance(v, View) else v for v in self.targets])

    @property
    def id(self) -> str:
        return self.spec.id

    @cached_property
    def geometry(self) -> CameraGeometry:
        """The camera geometry of the first source and first target (see :class:`CameraGeometry`).

        Computed on Python floats (float64): on two 4x4 matrices, torch calls cost more than the arithmetic.
        """
        src, tgt = self.sources[0].cam2world.tolist(), self.targets[0].cam2world.tolist()
        trace = sum(src[i][j] * tgt[i][j] for i in range(3) for j in range(3))  # trace(R_src^T R_tgt)
        angle = math.degrees(math.acos(min(1.0, max(-1.0, (trace - 1) / 2))))  # rotation angle of R_src^T R_tgt
        return CameraGeometry(angle, math.hypot(tgt[0][3], tgt[1][3], tgt[2][3]))


@dataclass
class Prediction:
    """A pipeline's answer for one sample.

    T follows the sample's targets (a trajectory has T > 1); D is the number of stochastic
    draws (1 for deterministic methods).

    - ``image``: (T, D, 3, H, W) in [0, 1]
    - ``depth``: (T, D, H, W) z-depth, optional
    - ``seg``: (T, D, H, W) int64 class labels, optional
    - ``poses``: (T, D, 4, 4) estimated cam2world of the targets, optional (pose inverters)
    - ``nfe``: network evaluations spent on the sample, optional (a stage pipeline's ``pred_nfe`` (B,))
    """

    image: Tensor
    depth: Tensor | None = None
    seg: Tensor | None = None
    poses: Tensor | None = None
    nfe: int | None = None  # network evaluations spent on this sample (generative samplers), for nfe_per_view


#: Fields of a :class:`Prediction`, the required one first; a stage pipeline fills ``f`` from state field ``pred_<f>``.
PREDICTION_FIELDS = ("image", "depth", "seg", "poses")
