"""VOC segmentation metrics against an independent confusion matrix, and hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.metrics import segmentation
from bench.metrics.base import Metric
from bench.metrics.segmentation import VOC_CLASSES, miou, pixel_acc


def _reference(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-class IoU (NaN for empty union) and pixel accuracy of all given pixels, from one confusion matrix."""
    n = 21
    keep = target != 255
    gt, p = target[keep], pred[keep]
    p = np.where((p >= 0) & (p < n), p, n)  # an out-of-range prediction: its own column, never correct
    conf = np.bincount((n + 1) * gt + p, minlength=n * (n + 1)).reshape(n, n + 1).astype(np.float64)
    diag = np.diag(conf[:, :n])
    union = conf.sum(1) + conf[:, :n].sum(0) - diag
    with np.errstate(invalid="ignore"):
        iou = diag / union
    return iou, diag.sum() / conf.sum()


def _random_maps(seed: int = 0, n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels from a subset of classes (so some classes are absent), ~10 % ignored, some invalid predictions."""
    rng = np.random.default_rng(seed)
    classes = np.array([0, 1, 5, 7, 12, 15, 20])
    target = classes[rng.integers(0, len(classes), (n, 12, 14))]
    target[rng.random(target.shape) < 0.1] = 255
    pred = np.where(rng.random(target.shape) < 0.6, target, classes[rng.integers(0, len(classes), target.shape)])
    invalid = rng.random(pred.shape) < 0.05
    pred[invalid] = rng.choice([-1, 21, 255], size=invalid.sum())
    return torch.from_numpy(pred).long(), torch.from_numpy(target).long()


def test_registration_fields():
    assert len(VOC_CLASSES) == 21 and VOC_CLASSES[0] == "background" and VOC_CLASSES[15] == "person" and VOC_CLASSES[-1] == "tvmonitor"
    for m in (miou, pixel_acc):
        assert isinstance(m, Metric) and m.family == "segmentation" and m.higher_is_better and m.reduce is not None
    assert miou.details is not None


def test_against_confusion_matrix():
    pred, target = _random_maps()
    stats_miou, stats_acc = miou(pred, target), pixel_acc(pred, target)
    assert stats_miou.shape == (6, 42) and stats_acc.shape == (6, 2) and stats_miou.dtype == torch.float64
    for rows in ([0, 1, 2, 3, 4, 5], [1, 4], [2, 2, 5]):  # any set of images, repeats included (bootstrap)
        iou, acc = _reference(pred[rows].numpy(), target[rows].numpy())
        assert miou.reduce(stats_miou[rows].numpy()) == pytest.approx(np.nanmean(iou), abs=1e-9)
        assert pixel_acc.reduce(stats_acc[rows].numpy()) == pytest.approx(acc, abs=1e-9)
        per_class = miou.details(stats_miou[rows].numpy())["per_class_iou"]
        assert list(per_class) == list(VOC_CLASSES)
        for name, value in zip(VOC_CLASSES, iou):
            assert (per_class[name] is None) if np.isnan(value) else per_class[name] == pytest.approx(value, abs=1e-9)
    assert per_class["bird"] is None and per_class["person"] is not None


def test_perfect_prediction():
    _, target = _random_maps(1)
    assert miou.reduce(miou(target, target).numpy()) == 1.0
    assert pixel_acc.reduce(pixel_acc(target, target).numpy()) == 1.0


def test_hand_made_2x2():
    target = torch.tensor([[[0, 0], [1, 1]]])
    pred = torch.tensor([[[0, 1], [1, 1]]])
    # background: 1 pixel right of a union of 2 -> 1/2; aeroplane: 2 of 3 -> 2/3
    stats = miou(pred, target).numpy()
    assert stats[0, :2].tolist() == [1, 2] and stats[0, 21:23].tolist() == [2, 3]
    assert miou.reduce(stats) == pytest.approx((1 / 2 + 2 / 3) / 2)
    per_class = miou.details(stats)["per_class_iou"]
    assert per_class["background"] == pytest.approx(0.5) and per_class["aeroplane"] == pytest.approx(2 / 3)
    assert all(v is None for k, v in per_class.items() if k not in ("background", "aeroplane"))
    assert pixel_acc.reduce(pixel_acc(pred, target).numpy()) == 0.75
    # a prediction outside 0..20 is wrong, and counts in the union of the true class only
    wrong = torch.tensor([[[0, 99], [1, 1]]])
    assert miou.reduce(miou(wrong, target).numpy()) == pytest.approx((1 / 2 + 1.0) / 2)
    assert pixel_acc.reduce(pixel_acc(wrong, target).numpy()) == 0.75


def test_ignored_pixels_do_not_count():
    pred, target = _random_maps(2)
    ignored = target == 255
    assert ignored.any()
    changed = pred.clone()
    changed[ignored] = (pred[ignored] + 7) % 21
    for m in (miou, pixel_acc):
        torch.testing.assert_close(m(changed, target), m(pred, target), rtol=0, atol=0)
    all_ignored = torch.full((1, 3, 3), 255)
    assert np.isnan(miou.reduce(miou(pred[:1, :3, :3], all_ignored).numpy()))
    assert np.isnan(pixel_acc.reduce(pixel_acc(pred[:1, :3, :3], all_ignored).numpy()))


def test_dataset_level_not_mean_of_images():
    # image A: 4 aeroplane pixels, all right. Image B: 3 background right, 1 aeroplane predicted as background.
    target = torch.tensor([[[1, 1, 1, 1]], [[0, 0, 0, 1]]])
    pred = torch.tensor([[[1, 1, 1, 1]], [[0, 0, 0, 0]]])
    stats = miou(pred, target).numpy()
    dataset = (3 / 4 + 4 / 5) / 2  # background 3/4, aeroplane (4 + 0) / (4 + 1)
    per_image = (1.0 + (3 / 4 + 0.0) / 2) / 2
    assert miou.reduce(stats) == pytest.approx(dataset)
    assert np.mean([miou.reduce(stats[i : i + 1]) for i in range(2)]) == pytest.approx(per_image)
    assert abs(dataset - per_image) > 0.05


def test_invalid_target_label_raises():
    with pytest.raises(ValueError, match="target labels"):
        miou(torch.zeros(1, 2, 2, dtype=torch.long), torch.tensor([[[0, 30], [1, 255]]]))
    assert segmentation.IGNORE_LABEL == 255


def test_mean_over_names_the_classes_the_mean_is_over():
    """mmsegmentation's nanmean: a class in neither ground truth nor prediction is left out, and the details say so."""
    target = torch.tensor([[[0, 0], [1, 1]]])
    pred = torch.tensor([[[0, 15], [1, 1]]])  # person predicted once: present, IoU 0
    details = miou.details(miou(pred, target).numpy())
    assert details["mean_over"].startswith("the 3 of 21 classes present (in ground truth or prediction); left out: bicycle, bird,")
    assert "person" not in details["mean_over"] and details["per_class_iou"]["person"] == 0.0
    every = torch.arange(21).reshape(1, 3, 7)
    assert miou.details(miou(every, every).numpy())["mean_over"] == "all 21 classes"
    assert miou.details(miou(every[:, :1, :1], torch.full((1, 1, 1), 255)).numpy())["mean_over"] == "no class: every pixel is ignored"


def test_segmentation_visuals_show_both_label_maps_in_the_voc_palette():
    from bench.types import Prediction, Sample, SampleSpec, View
    from bench.visuals import grid, label_colors

    colours = label_colors(torch.tensor([[0, 1, 15, 255, 300]]))
    assert (colours[:, 0] * 255).round().T.tolist() == [[0, 0, 0], [128, 0, 0], [192, 128, 128], [224, 224, 192], [224, 224, 192]]
    eye = torch.eye(4)
    gt = torch.tensor([[1, 1], [0, 255]])
    view = View("v", torch.full((3, 2, 2), 0.5), torch.eye(3), eye, seg=gt)
    sample = Sample(SampleSpec("s", "scene", ("v",), ("v",)), [view], [view])
    pred = Prediction(torch.zeros(1, 1, 3, 2, 2), seg=torch.tensor([[[[15, 1], [0, 0]]]]))
    image = grid(sample, pred)
    assert image.shape == (3, 2, 5 * 2)  # source | target | prediction | predicted labels | ground-truth labels
    torch.testing.assert_close(image[:, :, 6:8], label_colors(pred.seg[0, 0]))
    torch.testing.assert_close(image[:, :, 8:10], label_colors(gt))
