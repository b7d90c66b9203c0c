"""The hand-written evaluation loop the harness-overhead benchmark compares ``nvsbench run`` with.

It does what ``nvsbench run`` does for the ``identity`` pipeline on an SRN-layout set with
source view 0 and every other view a target, with nothing else: the same reader
(:class:`bench.data.srn.SRNReader`, PNG decode included), the same metric functions
(:mod:`bench.metrics.image`), batches of 8, and the mean of each metric over samples. No
results database, bootstrap, checks or image grids.

Usage: ``python benchmarks/loop.py DATASET_ROOT [--nvsbench-settings]``; prints one JSON line
``{"n": samples, "means": {metric: mean}, "seconds": wall after imports}``. With
``--nvsbench-settings`` the process is set up as ``nvsbench`` sets up its own, as a user could
do in their own loop: the malloc thresholds raised first (:func:`bench.allocator.keep_freed_memory`)
and the garbage collector frozen before the interpreter exits (:func:`bench.cli.entry`).
"""

from __future__ import annotations

import gc
import json
import sys
import time
from pathlib import Path

import torch

from bench.allocator import keep_freed_memory
from bench.data.srn import SRNReader
from bench.metrics.image import l1, psnr, ssim

BATCH = 8


def evaluate(root: Path) -> dict:
    """Score the source image of each object as the prediction of each of its other views."""
    start = time.perf_counter()
    reader = SRNReader(root)
    metrics = {"psnr": psnr, "ssim": ssim, "l1": l1}
    values: dict[str, list[float]] = {name: [] for name in metrics}
    for scene in reader.scenes():
        views = reader.view_ids(scene)
        source = reader.load_view(scene, views[0]).image  # (3, H, W)
        for first in range(1, len(views), BATCH):
            targets = torch.stack([reader.load_view(scene, v).image for v in views[first : first + BATCH]])  # (B, 3, H, W)
            preds = source.expand_as(targets)
            for name, metric in metrics.items():
                values[name] += metric(preds, targets).tolist()  # floats: small tensors kept alive fragment the heap
    means = {name: sum(v) / len(v) for name, v in values.items()}
    return {"n": len(values["psnr"]), "means": means, "seconds": time.perf_counter() - start}


if __name__ == "__main__":
    nvsbench_settings = "--nvsbench-settings" in sys.argv[2:]
    if nvsbench_settings:
        keep_freed_memory()
    print(json.dumps(evaluate(Path(sys.argv[1]))))
    if nvsbench_settings:
        gc.freeze()
