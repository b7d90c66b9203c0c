"""Sample image grids a run saves for inspection and for the leaderboard's pipeline pages.

Each grid is one PNG row per target: source | target | prediction (draw 0) | predicted
depth (grey, near = bright) | predicted labels | ground-truth labels | further draws, the
depth and label tiles when the pipeline predicts them (labels also need ground-truth labels),
label maps in the PASCAL VOC colours (:func:`label_colors`). Written under ``OUT/visuals/<pipeline>/<run key>/``
(:func:`visual_dir`): keyed like the database rows, so after runs of other configs into the same
folder a resumed run still shows the images of the config whose scores it reports.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from bench.data.generated import save_png
from bench.types import Prediction, Sample

VISUALS = "visuals"


def visual_dir(out: Path, pipeline: str, run_key: str) -> Path:
    """The folder of a pipeline's grids for one run key (``bench.runner.plan.run_key``: dataset and protocol,
    pipeline config, seed) in the results folder ``out``."""
    return out / VISUALS / pipeline / run_key


def visual_name(sample_id: str) -> str:
    """A file name for a sample id: anything but letters, digits, '-', '_' and '.' becomes '_'."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", sample_id) + ".png"


def depth_to_grey(depth: Tensor) -> Tensor:
    """(H, W) depth to a (3, H, W) grey image: valid depths mapped to [1, 0.2] near to far, 0 stays black."""
    valid = depth > 0
    out = torch.zeros_like(depth)
    if valid.any():
        lo, hi = depth[valid].min(), depth[valid].max()
        out[valid] = 1.0 - 0.8 * (depth[valid] - lo) / (hi - lo).clamp(min=1e-8)
    return out.expand(3, -1, -1)


def label_colors(labels: Tensor) -> Tensor:
    """(H, W) int64 class labels to a (3, H, W) image in [0, 1] coloured as PASCAL VOC's label PNGs.

    The colour of label i is the VOC devkit's colour map entry i (``VOClabelcolormap.m``,
    :func:`bench.data.synth_segmentation.voc_colormap`): 0 background black, 1 aeroplane
    (128, 0, 0), 15 person (192, 128, 128), 255 void (224, 224, 192). A predicted label outside
    0..255 is drawn as void.
    """
    from bench.data.synth_segmentation import voc_colormap  # here: its generator's imports load only for label grids

    cmap = torch.from_numpy(voc_colormap()).float() / 255  # (256, 3)
    index = torch.where((labels >= 0) & (labels <= 255), labels, 255).long()
    return cmap[index].permute(2, 0, 1)


def grid(sample: Sample, pred: Prediction) -> Tensor:
    """(3, T*H, N*W) image: a row per target of source, target, draw 0, depth, labels and further draws."""
    rows = []
    for t, target in enumerate(sample.targets):
        tiles = [sample.sources[0].image.cpu(), target.image.cpu(), pred.image[t, 0].detach().cpu()]
        if pred.depth is not None:
            tiles.append(depth_to_grey(pred.depth[t, 0].detach().float().cpu()))
        if pred.seg is not None and target.seg is not None:
            tiles += [label_colors(pred.seg[t, 0].detach().cpu()), label_colors(target.seg.cpu())]
        tiles += [pred.image[t, d].detach().cpu() for d in range(1, pred.image.shape[1])]
        h, w = target.image.shape[-2:]
        rows.append(torch.cat([torch.nn.functional.interpolate(x[None], size=(h, w))[0] for x in tiles], -1))
    return torch.cat(rows, -2)


def save_visual(path: Path, sample: Sample, pred: Prediction) -> None:
    """Write the sample's grid as an 8-bit PNG (atomically)."""
    image = grid(sample, pred).clamp(0, 1)
    save_png(path, (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
