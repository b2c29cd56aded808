"""The export pipeline's per-process shard cache (``_pipeline._LastShard``)."""

from __future__ import annotations

import gc
import weakref

from runs import write_run

from exporter import _pipeline
from exporter.shards import Shard, open_run


def test_the_last_shard_is_let_go_before_the_next_is_read(tmp_path, monkeypatch):
    run = open_run(write_run(tmp_path / "run", steps=(1, 2), ids=["a", "b"], image_shape=(8, 8)))
    first, second = (run.shards(step)[0].path for step in run.steps)
    cache = _pipeline._LastShard()
    _, arrays = cache.load(first, None, 1 << 30)
    held = weakref.ref(arrays["images"])
    assert cache.load(first, None, 1 << 30)[1] is arrays  # the same shard again: from the cache
    del arrays
    alive_while_reading = []
    load = Shard.load

    def watched(self, names=None):
        gc.collect()
        alive_while_reading.append(held() is not None)
        return load(self, names)

    monkeypatch.setattr(Shard, "load", watched)
    _, arrays = cache.load(second, None, 1 << 30)
    assert alive_while_reading == [False]  # one shard at the peak, not two
    assert cache.path == second and set(arrays) >= {"images", "ids"}
