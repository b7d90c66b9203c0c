"""collate: the batched state puts each sample's views at its own index."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from bench.runner.plan import collate
from bench.types import Sample, SampleSpec, View


def _view(i: int) -> View:
    g = torch.Generator().manual_seed(i)
    return View(str(i), torch.rand(3, 4, 5, generator=g), torch.eye(3) * i, torch.eye(4) + i, torch.rand(4, 5, generator=g))


def _sample(name: str, sources: list[int], targets: list[int]) -> Sample:
    spec = SampleSpec(name, "scene", tuple(map(str, sources)), tuple(map(str, targets)))
    return Sample(spec, [_view(i) for i in sources], [_view(i) for i in targets])


SUITE = SimpleNamespace(reader=SimpleNamespace(near=0.5, far=2.5, background=(1.0, 1.0, 1.0), provides=frozenset({"source_depth"})),
                        config=SimpleNamespace(draws=1))


def test_collate_keeps_sample_and_view_order():
    samples = [_sample("a", [1, 2], [3]), _sample("b", [4, 5], [6])]
    state = collate(samples, SUITE, 0, "cpu")
    assert state["source_image"].shape == (2, 2, 3, 4, 5) and state["target_K"].shape == (2, 1, 3, 3)
    for b, s in enumerate(samples):
        for j, v in enumerate(s.sources):
            assert torch.equal(state["source_image"][b, j], v.image) and torch.equal(state["source_depth"][b, j], v.depth)
            assert torch.equal(state["source_cam2world"][b, j], v.cam2world)
        assert torch.equal(state["target_K"][b, 0], s.targets[0].K)
    assert state["seed"].shape == (2,) and state["seed"][0] != state["seed"][1]


def test_collate_refuses_samples_with_different_view_counts():
    """2, 1 and 3 sources would reshape to 3 x 2 without the check, silently giving a sample another's view."""
    with pytest.raises(ValueError, match="different numbers of sources"):
        collate([_sample("a", [1, 2], [9]), _sample("b", [3], [9]), _sample("c", [4, 5, 6], [9])], SUITE, 0, "cpu")


def test_prefetched_keeps_order_raises_and_stops():
    import threading
    import time

    from bench.runner.plan import prefetched

    assert list(prefetched(iter(range(50)), 2)) == list(range(50)) == list(prefetched(iter(range(50)), 0))

    def failing():
        yield 1
        yield 2
        raise OSError("disk gone")

    got = []
    with pytest.raises(OSError, match="disk gone"):
        for item in prefetched(failing(), 3):
            got.append(item)
    assert got == [1, 2]  # the items before the failure arrive first
    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    stream = prefetched(iter(range(3)), 2)
    assert next(stream) == 0
    time.sleep(0.3)  # the producer has finished and waits to hand over its end marker
    stream.close()  # the consumer stops (an error while it scored): the loader thread must not wait forever
    assert not any(t.name == "nvsbench-loader" for t in threading.enumerate())
    stream = prefetched(endless(), 2)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    stream.close()  # the consumer stops early: the loader thread ends instead of blocking on a full queue
    assert not any(t.name == "nvsbench-loader" for t in threading.enumerate())
    assert len(produced) <= 3 + 2 + 2  # at most depth ahead, plus the one in hand


def test_prefetch_does_not_change_results(cli, tiny_suite, tmp_path):
    import json

    for depth in ("0", "3"):
        code, _, err = cli("run", tiny_suite, "--out", tmp_path / depth, "--no-progress", "--prefetch", depth)
        assert code == 0, err
    a, b = (json.loads((tmp_path / d / "summary.json").read_text())["results"] for d in ("0", "3"))
    assert a == b
