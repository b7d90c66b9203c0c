"""LPIPS / FID / KID: weight discovery without network access, loading from files, and the FID/KID math.

No real pretrained weights exist here or in CI. The loading path is exercised with files the
tests write under the expected names: the torchvision backbones with random init, saved as
their ``features.*`` entries only (what LPIPS reads; 10 MB for AlexNet and 59 MB for VGG16
instead of 233 MB / 528 MB for the full checkpoints), the real LPIPS v0.1 linear files that
torchmetrics ships (byte-identical to the expected ones, and in the legacy CUDA-storage
format the real files have), and a randomly initialised FID Inception (96 MB). The folder is
deleted when the module's tests end.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from bench.metrics import perceptual as P

LPIPS_METRICS = {"alex": P.lpips_alex, "vgg": P.lpips_vgg}


def _lpips_package_file(net: str) -> Path:
    import torchmetrics.functional.image.lpips as tm_lpips

    return Path(tm_lpips.__file__).parent / "lpips_models" / f"{net}.pth"


@pytest.fixture(autouse=True)
def one_thread():
    """Small convolutions are much faster single-threaded, above all on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def no_network(monkeypatch) -> list:
    """Every way a download could start raises and is recorded; the test asserts the list stays empty."""
    import pyiqa.archs.arch_util
    import pyiqa.utils.download_util
    import requests

    calls = []

    def refuse(name):
        def fn(*args, **kwargs):
            calls.append((name, args))
            raise AssertionError(f"network access attempted: {name}{args}")

        return fn

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket, "create_connection", refuse("socket.create_connection"))
    monkeypatch.setattr(urllib.request, "urlopen", refuse("urllib.request.urlopen"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse("torch.hub.download_url_to_file"))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse("torch.hub.load_state_dict_from_url"))
    monkeypatch.setattr(pyiqa.utils.download_util, "download_url_to_file", refuse("pyiqa download_url_to_file"))
    monkeypatch.setattr(pyiqa.archs.arch_util, "load_file_from_url", refuse("pyiqa load_file_from_url"))
    monkeypatch.setattr(requests.Session, "request", refuse("requests"))
    return calls


@pytest.fixture
def empty_weights(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setenv(P.WEIGHTS_ENV, str(folder))
    return folder


@pytest.fixture(scope="module")
def weights_folder(tmp_path_factory):
    """Every expected file, written by the test (see the module docstring)."""
    import torchvision

    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    for builder, name in [(torchvision.models.alexnet, P.ALEXNET_FILE), (torchvision.models.vgg16, P.VGG16_FILE)]:
        features = builder(weights=None).features.state_dict()
        torch.save({f"features.{k}": v for k, v in features.items()}, folder / name)
    shutil.copyfile(_lpips_package_file("alex"), folder / P.LPIPS_ALEX_FILE)
    shutil.copyfile(_lpips_package_file("vgg"), folder / P.LPIPS_VGG_FILE)
    inception = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    torch.save(inception.state_dict(), folder / P.FID_INCEPTION_FILE)
    yield folder
    P._network.cache_clear()
    shutil.rmtree(folder)


@pytest.fixture
def weights(weights_folder, monkeypatch, no_network) -> Path:
    monkeypatch.setenv(P.WEIGHTS_ENV, str(weights_folder))
    return weights_folder


def _images(n: int, seed: int, size: int = 64) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- weights absent


def test_weights_dir_default_and_env(monkeypatch, tmp_path):
    monkeypatch.delenv(P.WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert P.weights_dir() == tmp_path / ".cache" / "nvsbench" / "weights"
    monkeypatch.setenv(P.WEIGHTS_ENV, "")
    assert P.weights_dir() == tmp_path / ".cache" / "nvsbench" / "weights"
    monkeypatch.setenv(P.WEIGHTS_ENV, str(tmp_path / "w"))
    assert P.weights_dir() == tmp_path / "w"


def test_missing_weights_are_reported_with_full_paths(empty_weights):
    d = empty_weights
    assert P.lpips_alex.unavailable() == f"missing weights: {d / 'alexnet-owt-7be5be79.pth'}, {d / 'LPIPS_v0.1_alex-df73285e.pth'}"
    assert P.lpips_vgg.unavailable() == f"missing weights: {d / 'vgg16-397923af.pth'}, {d / 'LPIPS_v0.1_vgg-a78928a0.pth'}"
    for m in (P.fid, P.kid):
        assert m.unavailable() == f"missing weights: {d / 'pt_inception-2015-12-05-6726825d.pth'}"
    (d / P.ALEXNET_FILE).write_bytes(b"")  # presence is all availability checks; the file is read only when used
    assert P.lpips_alex.unavailable() == f"missing weights: {d / P.LPIPS_ALEX_FILE}"


def test_calling_without_weights_fails_fast_offline(empty_weights, no_network):
    x = _images(2, 0, 32)
    start = time.perf_counter()
    for m in (P.lpips_alex, P.lpips_vgg, P.fid, P.kid):
        with pytest.raises(FileNotFoundError, match="missing weights: .*" + str(empty_weights)):
            m(x, x)
    assert time.perf_counter() - start < 2
    assert no_network == []


def test_lpips_file_names_match_the_files_torchmetrics_ships():
    """The documented source of the LPIPS files: their SHA-256 starts with the suffix of our names."""
    for net, name in [("alex", P.LPIPS_ALEX_FILE), ("vgg", P.LPIPS_VGG_FILE)]:
        digest = hashlib.sha256(_lpips_package_file(net).read_bytes()).hexdigest()
        assert name.rsplit("-", 1)[1] == f"{digest[:8]}.pth"


def test_metric_contract():
    for m in (P.lpips_alex, P.lpips_vgg):
        assert m.family == "image" and not m.higher_is_better and m.reduce is None
    for m in (P.fid, P.kid):
        assert m.family == "distribution" and not m.higher_is_better and m.reduce is not None
    assert P.kid.details is not None


# --------------------------------------------------------------------------- loading from files


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_loads_the_files_and_behaves(weights, net):
    m = LPIPS_METRICS[net]
    assert m.unavailable() is None
    x, y = _images(3, 1), _images(3, 2)
    d_xy = m(x, y)
    assert d_xy.shape == (3,) and torch.isfinite(d_xy).all() and (d_xy > 0).all()
    assert torch.allclose(m(x, x), torch.zeros(3), atol=1e-7)
    assert torch.allclose(m(y, x), d_xy, rtol=1e-5, atol=1e-7)
    assert torch.allclose(m(x[:1], y[:1]), d_xy[:1], rtol=1e-5, atol=1e-7)  # per pair, independent of the batch
    assert (m(x, (x + 0.02 * (y - 0.5)).clamp(0, 1)) < d_xy).all()  # a small perturbation is closer

    # The built network holds exactly the file contents.
    model = P._network(net, "cpu", weights)
    backbone = torch.load(weights / P.WEIGHT_FILES[net][0], weights_only=True)
    for key, value in model.net.state_dict().items():
        assert torch.equal(value, backbone["features." + key.split(".", 1)[1]])
    lins = torch.load(weights / P.WEIGHT_FILES[net][1], weights_only=True, map_location="cpu")
    for i in range(5):
        assert torch.equal(model.lins[i].model[1].weight, lins[f"lin{i}.model.1.weight"])


def test_lpips_builds_once_and_chunks(weights, monkeypatch):
    x, y = _images(5, 3, 32), _images(5, 4, 32)
    whole = P.lpips_alex(x, y)
    loads = []
    monkeypatch.setattr(P, "load_checkpoint", lambda path, mmap: loads.append(path))
    monkeypatch.setattr(P, "CHUNK", 2)
    assert torch.allclose(P.lpips_alex(x, y), whole, rtol=1e-5, atol=1e-7)
    assert loads == []  # cached after the first call
    assert P.lpips_alex(x[:0], y[:0]).shape == (0,)


def test_offline_flags_are_set_while_building(weights, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    seen = []
    real = P.load_checkpoint

    def spy(path, mmap):
        seen.append((P.os.environ.get("HF_HUB_OFFLINE"), P.os.environ.get("TRANSFORMERS_OFFLINE")))
        return real(path, mmap=mmap)

    monkeypatch.setattr(P, "load_checkpoint", spy)
    P._build_lpips("alex", weights)
    assert seen == [("1", "1"), ("1", "1")]
    assert "HF_HUB_OFFLINE" not in P.os.environ and P.os.environ["TRANSFORMERS_OFFLINE"] == "0"  # restored


def test_wrong_checkpoint_is_a_clear_error(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv(P.WEIGHTS_ENV, str(tmp_path))
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / P.ALEXNET_FILE)
    shutil.copyfile(_lpips_package_file("alex"), tmp_path / P.LPIPS_ALEX_FILE)
    assert P.lpips_alex.unavailable() is None
    with pytest.raises(RuntimeError, match=f"{P.ALEXNET_FILE}: not the expected checkpoint, missing keys"):
        P.lpips_alex(_images(1, 0), _images(1, 1))


def test_fid_kid_load_the_inception_file_and_return_paired_features(weights):
    assert P.fid.unavailable() is None and P.kid.unavailable() is None
    x, y = _images(2, 5, 32), _images(2, 6, 32)
    stats = P.fid(x, y)
    assert stats.shape == (2, 2 * P.FEATURE_DIM) and torch.isfinite(stats).all()
    assert torch.equal(stats[:, : P.FEATURE_DIM], P.inception_features(x))
    assert torch.equal(stats[:, P.FEATURE_DIM :], P.inception_features(y))
    assert not torch.equal(stats[:, : P.FEATURE_DIM], stats[:, P.FEATURE_DIM :])
    assert torch.equal(P.kid(x, y), stats)
    same = P.fid(x, x).double().numpy()
    assert P.fid.reduce(same) == pytest.approx(0, abs=1e-12)
    assert np.isfinite(P.fid.reduce(stats.double().numpy())) and np.isfinite(P.kid.reduce(stats.double().numpy()))

    model = P._network("inception", "cpu", weights)
    saved = torch.load(weights / P.FID_INCEPTION_FILE, weights_only=True)
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved[key])
    assert "fc.weight" not in model.state_dict()  # pool3 features, not logits


# --------------------------------------------------------------------------- FID math


def _whitened(n: int, d: int, rng) -> np.ndarray:
    """(n, d) with sample mean exactly 0 and sample covariance (ddof 1) exactly I."""
    z = rng.normal(size=(n, d))
    z -= z.mean(0)
    return z @ np.linalg.inv(np.linalg.cholesky(z.T @ z / (n - 1))).T


def _sqrtm_reference(x, y) -> float:
    """The textbook formula with scipy.linalg.sqrtm on the sample moments."""
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    cross = np.real(scipy.linalg.sqrtm(s1 @ s2))
    return float(np.sum((x.mean(0) - y.mean(0)) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(cross))


def test_fid_identical_sets_is_zero():
    rng = np.random.default_rng(0)
    for n, d in [(50, 8), (20, 64)]:  # both branches: more samples than dimensions, and fewer
        x = rng.normal(size=(n, d)) * 3 + 1
        assert P.frechet_distance(x, x) == pytest.approx(0, abs=1e-9)
        assert P.fid_from_stats(np.hstack([x, x])) == pytest.approx(0, abs=1e-9)


@pytest.mark.parametrize("rotate", [False, True])
def test_fid_matches_closed_form_for_known_gaussians(rotate):
    """Means mu_i, covariances Q diag(a^2) Q^T and Q diag(b^2) Q^T (exact sample moments):
    FID = |mu_1 - mu_2|^2 + sum (a - b)^2."""
    rng = np.random.default_rng(1)
    n, d = 400, 6
    a, b = rng.uniform(0.5, 2, d), rng.uniform(0.5, 2, d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    q = np.linalg.qr(rng.normal(size=(d, d)))[0] if rotate else np.eye(d)
    x = mu1 + _whitened(n, d, rng) * a @ q.T
    y = mu2 + _whitened(n, d, rng) * b @ q.T
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((a - b) ** 2)
    assert P.frechet_distance(x, y) == pytest.approx(expected, abs=1e-4)
    assert P.fid_from_stats(np.hstack([x, y])) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("n,d", [(300, 12), (12, 12), (8, 20), (50, 2)])
def test_fid_matches_sqrtm_on_sample_moments(n, d):
    rng = np.random.default_rng(n + d)
    x = rng.normal(size=(n, d))
    y = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * 0.7 + 0.3
    assert P.frechet_distance(x, y) == pytest.approx(_sqrtm_reference(x, y), rel=1e-5, abs=1e-6)


def test_fid_edge_cases():
    assert np.isnan(P.frechet_distance(np.zeros((1, 3)), np.zeros((1, 3))))
    with pytest.raises(ValueError, match="stats"):
        P.fid_from_stats(np.zeros((4, 5)))


# --------------------------------------------------------------------------- KID math


def _mmd2_loops(x, y) -> float:
    """Unbiased MMD^2 written out term by term (Bińkowski et al. 2018)."""
    m, d = x.shape

    def k(u, v):
        return (u @ v / d + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_matches_the_written_out_estimator():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(7, 3)), rng.normal(size=(7, 3)) + 0.4
    mean, std = P.kernel_inception_distance(x, y)
    assert mean == pytest.approx(_mmd2_loops(x, y), rel=1e-12) and std == 0.0
    assert P.kid_from_stats(np.hstack([x, y])) == mean


def test_kid_is_unbiased_near_zero_for_one_distribution_and_positive_for_shifted():
    rng = np.random.default_rng(3)
    same = [P.kernel_inception_distance(rng.normal(size=(30, 4)), rng.normal(size=(30, 4)))[0] for _ in range(1000)]
    assert abs(np.mean(same)) < 4 * np.std(same) / np.sqrt(len(same))  # mean over replicates ~ 0: unbiased
    x, y = rng.normal(size=(500, 16)), rng.normal(size=(500, 16))
    assert abs(P.kernel_inception_distance(x, y)[0]) < 0.03
    assert P.kernel_inception_distance(x, y + 0.5)[0] > 0.5


def test_kid_of_a_set_with_itself_is_slightly_negative():
    """Identical sets are not independent samples: the unbiased estimate is 2 (O - D) / m < 0, with
    D and O the mean diagonal and off-diagonal kernel values (what pred == target gives)."""
    x = np.random.default_rng(6).normal(size=(50, 8))
    k = (x @ x.T / 8 + 1) ** 3
    diag, off = np.trace(k) / 50, (k.sum() - np.trace(k)) / (50 * 49)
    assert P.kernel_inception_distance(x, x)[0] == pytest.approx(2 * (off - diag) / 50, rel=1e-10)
    assert P.kernel_inception_distance(x, x)[0] < 0


def test_kid_subsets_are_deterministic_and_average():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(60, 5)), rng.normal(size=(60, 5)) + 0.3
    mean, std = P.kernel_inception_distance(x, y, subsets=10, subset_size=20, seed=7)
    assert (mean, std) == P.kernel_inception_distance(x, y, subsets=10, subset_size=20, seed=7)
    assert std > 0
    draw = np.random.default_rng(7)
    values = [P._polynomial_mmd2(x[draw.choice(60, 20, replace=False)], y[draw.choice(60, 20, replace=False)]) for _ in range(10)]
    assert mean == pytest.approx(np.mean(values)) and std == pytest.approx(np.std(values))
    assert np.isnan(P.kernel_inception_distance(x[:1], y[:1])[0])


def test_kid_details():
    rng = np.random.default_rng(5)
    stats = rng.normal(size=(40, 8))
    assert P.kid.details(stats) == {"kid_std_over_subsets": 0.0, "subsets": 1, "subset_size": 40}
