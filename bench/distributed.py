"""Distributed evaluation under torchrun (``torch.distributed.run``).

torchrun starts one process per rank and tells each its place through environment variables
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``). A run then goes:

1. rank 0 merges the shards that interrupted runs left in the results folder into
   ``results.sqlite``, lists for each pipeline the batches of samples still missing there
   (resume; :class:`bench.runner.plan.Plan`), and broadcasts that list with a new job id;
2. every rank takes its contiguous part of each list (:func:`shard`) and writes its rows to
   its own file ``OUT/shards/<job>.rank<R>.sqlite``, holding an exclusive ``flock`` on
   ``<job>.rank<R>.lock`` while it runs;
3. after a barrier, rank 0 merges the shards into ``results.sqlite`` (idempotently, by primary
   key), deletes them and writes ``summary.json``; the other ranks exit.

Sharding comes after the resume filter, so a resumed run spreads the work that is left evenly;
rank 0 alone decides the list, so every rank agrees on it. Only rank 0 opens
``results.sqlite``: SQLite's WAL needs all the processes using a file on one host, and each
shard has a single writer, so the results folder can be on a filesystem shared by several
nodes. A shard whose lock nobody holds belongs to a finished or killed rank and is merged by
the next run's rank 0: its rows are neither lost nor scored again.
"""

from __future__ import annotations

import fcntl
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from bench.errors import ConfigError
from bench.store import Store

SHARDS = "shards"  # subfolder of the results folder holding the ranks' shards
#: Collective timeout: ranks that finish early wait this long at the final barrier for the slowest one.
TIMEOUT = timedelta(hours=24)
T = TypeVar("T")
ENV = ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Context:
    """This process's place in the run; ``backend`` is None for a single-process run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def main(self) -> bool:
        return self.rank == 0

    def device(self, device: str) -> str:
        """``cuda`` means this rank's GPU, ``cuda:LOCAL_RANK``, in a distributed run."""
        return f"cuda:{self.local_rank}" if device == "cuda" and self.backend else device


def setup(device: str) -> Context:
    """Join the process group torchrun describes in the environment (gloo on CPU, nccl on CUDA).

    ``WORLD_SIZE`` unset or 1 is a single-process run, with no process group.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Context()
    missing = [k for k in ENV if k not in os.environ]
    if missing:
        raise ConfigError(f"WORLD_SIZE={world} but {', '.join(missing)} not set: start distributed runs with torchrun")
    import torch
    import torch.distributed as dist

    ctx = Context(int(os.environ["RANK"]), world, int(os.environ["LOCAL_RANK"]), "nccl" if device == "cuda" else "gloo")
    if ctx.backend == "nccl":
        torch.cuda.set_device(ctx.local_rank)
    dist.init_process_group(ctx.backend, timeout=TIMEOUT)
    return ctx


def teardown(ctx: Context) -> None:
    if ctx.backend:
        import torch.distributed as dist

        dist.destroy_process_group()


def broadcast(ctx: Context, obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (a picklable object)."""
    if not ctx.backend:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(ctx: Context) -> None:
    if ctx.backend:
        import torch.distributed as dist

        dist.barrier(device_ids=[ctx.local_rank] if ctx.backend == "nccl" else None)


def shard(items: list[T], rank: int, world_size: int) -> list[T]:
    """This rank's part of ``items``: HF datasets' ``split_dataset_by_node`` over a Dataset of them.

    Contiguous parts in order, whose sizes differ by at most one (the first ``len(items) % world_size``
    ranks take one more), so consecutive samples, which share scenes and source views, stay together.
    """
    if world_size == 1:
        return list(items)
    if rank >= len(items):  # an empty part at the end: datasets 5.2 raises IndexError for it instead
        return []
    from datasets import Dataset
    from datasets.distributed import split_dataset_by_node

    return list(split_dataset_by_node(Dataset.from_dict({"item": items}), rank=rank, world_size=world_size)["item"])


def new_job_id() -> str:
    """A name for one distributed run's shards, unique across runs sharing a results folder."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"


@contextmanager
def rank_store(ctx: Context, out: Path, job: str, main: Store | None) -> Iterator[Store]:
    """Where this rank writes its rows: ``main`` (rank 0's ``results.sqlite``) in a single-process run,
    else the rank's own shard, locked for as long as it is open."""
    if not ctx.backend:
        assert main is not None
        yield main
        return
    folder = out / SHARDS
    stem = f"{job}.rank{ctx.rank}"
    fd = _lock(folder / f"{stem}.lock", create=True, block=True)
    assert fd is not None
    try:
        store = Store(folder, f"{stem}.sqlite")
        try:
            yield store
        finally:
            store.close()
    finally:
        os.close(fd)


def merge_shards(store: Store, out: Path, job: str | None = None) -> None:
    """Merge every shard no live rank holds into ``store``, then delete it.

    The shards of ``job`` (this run's, whose ranks are done) are waited for rather than skipped when
    another run's rank 0 is merging them, so that their rows are in ``store`` on return.
    """
    folder = out / SHARDS
    for lock in sorted(folder.glob("*.lock")):
        fd = _lock(lock, create=False, block=job is not None and lock.name.startswith(f"{job}."))
        if fd is None:  # its rank is still running, or another run merged it
            continue
        try:
            db = lock.with_suffix(".sqlite")
            if db.is_file():
                store.merge(db)
            for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm"), lock):  # the lock last: a crash here merges again, harmlessly
                path.unlink(missing_ok=True)
        finally:
            os.close(fd)
    try:
        folder.rmdir()
    except OSError:  # absent, or holding other shards
        pass


def _lock(path: Path, *, create: bool, block: bool) -> int | None:
    """An exclusive ``flock`` on ``path``: a file descriptor holding it, or None when the file is gone
    (and not ``create``) or, without ``block``, another process holds it.

    A merger deletes the file once it has merged its shard, maybe between our open and our lock, so
    the lock only counts when the locked file is still the one at ``path``.
    """
    while True:
        try:
            fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o644)
        except FileNotFoundError:
            if not create:
                return None
            path.parent.mkdir(parents=True, exist_ok=True)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if block else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        if _same_file(fd, path):
            return fd
        os.close(fd)
        if not create:
            return None


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)
