"""Perceptual and distribution metrics that need pretrained weights: LPIPS, FID, KID.

Weights are never downloaded. Every file is read from one folder, ``$NVSBENCH_WEIGHTS``
(default ``~/.cache/nvsbench/weights``), under the names below. The names carry the
first 8 hex digits of each file's SHA-256, so a copy can be checked with ``sha256sum``:

===========================================  ==================  =========================================
file                                         used by             what it is
===========================================  ==================  =========================================
``alexnet-owt-7be5be79.pth``                 lpips_alex          torchvision ``AlexNet_Weights.IMAGENET1K_V1``
``LPIPS_v0.1_alex-df73285e.pth``             lpips_alex          LPIPS v0.1 linear layers for AlexNet
``vgg16-397923af.pth``                       lpips_vgg           torchvision ``VGG16_Weights.IMAGENET1K_V1``
``LPIPS_v0.1_vgg-a78928a0.pth``              lpips_vgg           LPIPS v0.1 linear layers for VGG16
``pt_inception-2015-12-05-6726825d.pth``     fid, kid            pytorch-fid's port of the TF FID Inception
===========================================  ==================  =========================================

Where to get them on a machine with internet: the torchvision files are what
``torchvision.models.alexnet(weights="IMAGENET1K_V1")`` / ``vgg16(...)`` leave in
``$TORCH_HOME/hub/checkpoints/``; the two LPIPS files are byte-identical to the ones
torchmetrics ships as ``torchmetrics/functional/image/lpips_models/{alex,vgg}.pth`` (and
to pyiqa's downloads of the same names; the upstream files are ``lpips/weights/v0.1/`` of
richzhang/PerceptualSimilarity); the Inception file is the ``fid_weights`` release asset of
mseitzer/pytorch-fid (the same name pyiqa downloads).

A metric whose files are not all present reports ``"missing weights: <path>[, <path>]"``
from ``unavailable()`` and is never built. When the files are present the network is
built with random initialisation (``weights=None`` / ``pretrained=False``, so neither
torchvision, torchmetrics nor pyiqa has anything to fetch) and the state dicts are read
with ``torch.load(path, weights_only=True)``. This happens lazily, on the first call, once
per (metric, device, weights folder). ``HF_HUB_OFFLINE`` and ``TRANSFORMERS_OFFLINE`` are
set to 1 while building (and restored afterwards, so pipelines in the same process keep
their own Hugging Face access).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.metrics.base import image_metric, metric
from bench.train.checkpoint import load_checkpoint

WEIGHTS_ENV = "NVSBENCH_WEIGHTS"
DEFAULT_WEIGHTS_DIR = "~/.cache/nvsbench/weights"

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
VGG16_FILE = "vgg16-397923af.pth"
LPIPS_ALEX_FILE = "LPIPS_v0.1_alex-df73285e.pth"
LPIPS_VGG_FILE = "LPIPS_v0.1_vgg-a78928a0.pth"
FID_INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"

#: The files each network needs, in the order they are reported when missing.
WEIGHT_FILES: dict[str, tuple[str, ...]] = {
    "alex": (ALEXNET_FILE, LPIPS_ALEX_FILE),
    "vgg": (VGG16_FILE, LPIPS_VGG_FILE),
    "inception": (FID_INCEPTION_FILE,),
}

FEATURE_DIM = 2048  # Inception pool3 features
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
CHUNK = 32  # images per forward pass, to bound memory for large N

_OFFLINE_FLAGS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def weights_dir() -> Path:
    """The folder weight files are read from: ``$NVSBENCH_WEIGHTS`` or ``~/.cache/nvsbench/weights``."""
    return Path(os.environ.get(WEIGHTS_ENV) or DEFAULT_WEIGHTS_DIR).expanduser().absolute()


def missing_weights(kind: str) -> list[Path]:
    """Full paths of the files ``kind`` (``alex``, ``vgg``, ``inception``) needs that are absent."""
    folder = weights_dir()
    return [folder / name for name in WEIGHT_FILES[kind] if not (folder / name).is_file()]


def _availability(kind: str):
    def availability() -> str | None:
        missing = missing_weights(kind)
        return f"missing weights: {', '.join(map(str, missing))}" if missing else None

    return availability


# --------------------------------------------------------------------------- loading


@contextmanager
def _offline() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in _OFFLINE_FLAGS}
    os.environ.update(dict.fromkeys(_OFFLINE_FLAGS, "1"))
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _take(sd: dict[str, Tensor], keys: dict[str, str], path: Path) -> dict[str, Tensor]:
    """``{our_key: sd[file_key]}``, with one error naming the file and every absent key.

    BatchNorm's ``num_batches_tracked`` counters (unused in eval mode, absent from old
    checkpoints) may be missing; load the result with ``strict=False``.
    """
    absent = [k for k in keys.values() if k not in sd and not k.endswith("num_batches_tracked")]
    if absent:
        raise RuntimeError(f"{path}: not the expected checkpoint, missing keys {absent[:5]}{' ...' if len(absent) > 5 else ''}")
    return {ours: sd[theirs] for ours, theirs in keys.items() if theirs in sd}


def _build_lpips(net: str, folder: Path) -> nn.Module:
    """torchmetrics' LPIPS module with random init, then the backbone and linear weights from ``folder``."""
    from torchmetrics.functional.image.lpips import _NoTrainLpips

    backbone_file, lin_file = (folder / name for name in WEIGHT_FILES[net])
    with _offline():
        model = _NoTrainLpips(pretrained=False, net=net, pnet_rand=True)  # torchvision weights=None, no linear file
        # The backbone is split into slices whose children keep their index in torchvision's
        # ``features``: ``slice2.3.weight`` is ``features.3.weight`` of the checkpoint.
        sd = load_checkpoint(backbone_file, mmap=True)
        keys = {k: "features." + k.split(".", 1)[1] for k in model.net.state_dict()}
        model.net.load_state_dict(_take(sd, keys, backbone_file), strict=False)
        sd = load_checkpoint(lin_file, mmap=True)
        for i, lin in enumerate(model.lins):
            lin.load_state_dict(_take(sd, {k: f"lin{i}.{k}" for k in lin.state_dict()}, lin_file), strict=False)
    return model.eval().requires_grad_(False)


def _build_inception(folder: Path) -> nn.Module:
    """The FID Inception (pytorch-fid's TF port) with ``fc`` removed: outputs 2048 pool3 features."""
    import torchvision
    from pyiqa.archs.inception import FIDInceptionA, FIDInceptionC, FIDInceptionE_1, FIDInceptionE_2

    path = folder / FID_INCEPTION_FILE
    with _offline():
        model = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
        # TF's graph differs from torchvision's in the pooling of these blocks (pyiqa's copies of pytorch-fid's).
        model.Mixed_5b = FIDInceptionA(192, pool_features=32)
        model.Mixed_5c = FIDInceptionA(256, pool_features=64)
        model.Mixed_5d = FIDInceptionA(288, pool_features=64)
        model.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        model.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        model.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        model.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        model.Mixed_7b = FIDInceptionE_1(1280)
        model.Mixed_7c = FIDInceptionE_2(2048)
        sd = load_checkpoint(path, mmap=True)
        model.load_state_dict(_take(sd, {k: k for k in model.state_dict()}, path), strict=False)
    model.fc = nn.Identity()
    return model.eval().requires_grad_(False)


@functools.cache
def _network(kind: str, device: str, folder: Path) -> nn.Module:
    """Built once per (network, device, weights folder)."""
    model = _build_inception(folder) if kind == "inception" else _build_lpips(kind, folder)
    return model.to(device)


def _get(kind: str, device: torch.device) -> nn.Module:
    missing = missing_weights(kind)
    if missing:  # the harness checks availability first; direct callers get the same message
        raise FileNotFoundError(f"missing weights: {', '.join(map(str, missing))}")
    return _network(kind, str(device), weights_dir())


# --------------------------------------------------------------------------- LPIPS


def _lpips(net: str, pred: Tensor, target: Tensor) -> Tensor:
    model = _get(net, pred.device)
    out = []
    with torch.inference_mode():
        for p, t in zip(pred.float().split(CHUNK), target.float().split(CHUNK)):
            out.append(model(p, t, normalize=True).flatten())
    return torch.cat(out) if out else pred.new_zeros(0)


@image_metric(higher_is_better=False, availability=_availability("alex"))
def lpips_alex(pred: Tensor, target: Tensor) -> Tensor:
    """LPIPS v0.1, AlexNet backbone (Zhang et al. 2018): learned distance of deep features, 0 = identical.

    Images in [0, 1] are mapped to [-1, 1] (``2 x - 1``, torchmetrics' ``normalize=True``),
    then LPIPS v0.1's fixed scaling layer shifts/scales them per channel; features of the
    5 ReLU stages are unit-normalised over channels, their squared differences weighted by
    the learned 1x1 linear layers, averaged over space and summed over stages. Computed
    with torchmetrics' LPIPS module (its feature normalisation uses ``sqrt(sum + 1e-8)``
    instead of the reference ``sqrt(sum) + 1e-10``: a negligible difference). No resizing.
    """
    return _lpips("alex", pred, target)


@image_metric(higher_is_better=False, availability=_availability("vgg"))
def lpips_vgg(pred: Tensor, target: Tensor) -> Tensor:
    """LPIPS v0.1, VGG16 backbone: as ``lpips_alex`` with VGG16's relu1_2 ... relu5_3 features.

    Same normalisation: [0, 1] -> [-1, 1] by ``2 x - 1``, then LPIPS v0.1's scaling layer.
    """
    return _lpips("vgg", pred, target)


# --------------------------------------------------------------------------- FID / KID


def inception_features(images: Tensor) -> Tensor:
    """(N, 3, H, W) in [0, 1] -> (N, 2048) FID Inception pool3 features.

    As pytorch-fid: bilinear resize to 299 x 299 (``align_corners=False``, no antialias),
    ``2 x - 1``, then the network. Images are used as given (not quantised to 8 bits).
    """
    model = _get("inception", images.device)
    out = []
    with torch.inference_mode():
        for x in images.float().split(CHUNK):
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
            out.append(model(2 * x - 1))
    return torch.cat(out) if out else images.new_zeros(0, FEATURE_DIM)


def _split(stats) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(stats, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] % 2:
        raise ValueError(f"expected (n, 2 D) stats [pred features | target features], got shape {s.shape}")
    d = s.shape[1] // 2
    return s[:, :d], s[:, d:]


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Fréchet distance between Gaussian fits of two feature sets (n_x, D), (n_y, D).

    ``|mu_x - mu_y|^2 + Tr(S_x) + Tr(S_y) - 2 Tr((S_x S_y)^(1/2))`` with sample covariances
    (ddof 1), as pytorch-fid. The cross term is computed without a non-symmetric matrix
    square root: with centred features ``A`` (S_x = A^T A / (n_x - 1)) and ``B``,
    ``Tr((S_x S_y)^(1/2))`` is the nuclear norm of ``A B^T / sqrt((n_x-1)(n_y-1))`` (the
    eigenvalues of ``S_x S_y`` are the squared singular values of that matrix); with more
    samples than dimensions it is ``sum sqrt(eig(S_x^(1/2) S_y S_x^(1/2)))``. Both are
    symmetric / SVD computations, exact and faster than ``scipy.linalg.sqrtm``.
    NaN with fewer than 2 samples in either set.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    nx, ny = len(x), len(y)
    if nx < 2 or ny < 2:
        return float("nan")
    a, b = x - x.mean(0), y - y.mean(0)
    mean_term = float(np.sum((x.mean(0) - y.mean(0)) ** 2))
    trace_x, trace_y = np.sum(a * a) / (nx - 1), np.sum(b * b) / (ny - 1)
    if min(nx, ny) <= x.shape[1]:
        cross = np.linalg.svd(a @ b.T, compute_uv=False).sum() / np.sqrt((nx - 1) * (ny - 1))
    else:
        sx, sy = a.T @ a / (nx - 1), b.T @ b / (ny - 1)
        w, v = np.linalg.eigh(sx)
        root_x = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
        cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_x @ sy @ root_x), 0, None)).sum()
    # The distance is a squared Wasserstein-2 distance, >= 0; clip rounding below zero.
    return max(mean_term + trace_x + trace_y - 2 * cross, 0.0)


def _polynomial_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with kernel ``(x.y / D + 1)^3`` (Bińkowski et al. 2018, eq. of KID)."""
    m, d = x.shape
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    off = m * (m - 1)
    return float((kxx.sum() - np.trace(kxx)) / off + (kyy.sum() - np.trace(kyy)) / off - 2 * kxy.mean())


def kernel_inception_distance(
    x: np.ndarray, y: np.ndarray, subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE, seed: int = 0
) -> tuple[float, float]:
    """KID of two feature sets of equal size n: (mean, std) of the unbiased MMD^2 over subsets.

    Each subset draws ``min(subset_size, n)`` rows of ``x`` and, independently, of ``y``,
    without replacement (the torch-fidelity / torchmetrics convention, defaults 100 x 1000).
    When ``n <= subset_size`` every subset holds all rows, so one evaluation is exact
    (std 0). Deterministic for a seed. NaN when n < 2. Can be slightly negative: in
    particular a set compared with itself (pred == target) gives ``2 (O - D) / m < 0``, with
    D and O the mean diagonal and off-diagonal kernel values, since the estimator assumes
    independent samples.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = min(len(x), len(y))
    if n < 2:
        return float("nan"), float("nan")
    if len(x) == len(y) <= subset_size:
        return _polynomial_mmd2(x, y), 0.0
    m = min(subset_size, n)
    rng = np.random.default_rng(seed)
    values = [_polynomial_mmd2(x[rng.choice(len(x), m, replace=False)], y[rng.choice(len(y), m, replace=False)]) for _ in range(subsets)]
    return float(np.mean(values)), float(np.std(values))


def fid_from_stats(stats) -> float:
    """``reduce`` of ``fid``: Fréchet distance between the pred and target halves of the (n, 2 D) rows."""
    return frechet_distance(*_split(stats))


def kid_from_stats(stats) -> float:
    """``reduce`` of ``kid``: mean KID over subsets between the pred and target halves of the rows."""
    return kernel_inception_distance(*_split(stats))[0]


def kid_details(stats) -> dict:
    """The spread of KID over subsets (0 when every subset holds all rows)."""
    n = len(stats)
    _, std = kernel_inception_distance(*_split(stats))
    return {"kid_std_over_subsets": std, "subsets": KID_SUBSETS if n > KID_SUBSET_SIZE else 1, "subset_size": min(n, KID_SUBSET_SIZE)}


def _paired_features(pred: Tensor, target: Tensor) -> Tensor:
    return torch.cat([inception_features(pred), inception_features(target)], dim=1)


@metric("distribution", higher_is_better=False, reduce=fid_from_stats, availability=_availability("inception"))
def fid(pred: Tensor, target: Tensor) -> Tensor:
    """Fréchet Inception Distance (Heusel et al. 2017) between predicted and target images.

    Per pair the stats row is ``[Inception(pred) | Inception(target)]`` (2048 + 2048
    pool3 features of pytorch-fid's FID Inception, see :func:`inception_features`); the
    value over a set of rows is :func:`frechet_distance` of the two halves. Biased
    upwards for small sets: FID is comparable only between runs with the same number of
    images (the usual advice is >= 2048, more than the feature dimension).
    """
    return _paired_features(pred, target)


@metric("distribution", higher_is_better=False, reduce=kid_from_stats, details=kid_details, availability=_availability("inception"))
def kid(pred: Tensor, target: Tensor) -> Tensor:
    """Kernel Inception Distance (Bińkowski et al. 2018): unbiased polynomial-kernel MMD^2.

    Same per-pair stats rows as ``fid``; the value is :func:`kernel_inception_distance`
    of the two halves (kernel ``(x.y / 2048 + 1)^3``, mean over 100 subsets of 1000).
    Unbiased, so usable on smaller sets than FID.
    """
    return _paired_features(pred, target)
