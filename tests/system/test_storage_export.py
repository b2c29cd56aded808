"""inspect, validate, export (--incremental too) and render over s3:// on moto, through the command line;
then a real TensorBoard reading ``s3://bucket/...`` (its own S3 reader, sent to moto by S3_ENDPOINT) lists
the run, the per-example tags and each of their steps exactly once."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request

import pytest
from runs import CLASSIFICATION, write_run
from test_export_urls import events_of
from test_shards_urls import upload_tree

from exporter.cli import main

from .servers import tensorboard_server, until
from .test_storage_capture import _bucket, _download, _objects

IDS = ["cat-1", "dog-2", "bird-3"]
TB_FILES = r"(\.summary-exporter-state\.json|events\.out\.tfevents\.\d+\.[\w-]+\.\d{4}\.summary-exporter)"


@pytest.fixture
def runs(s3_server, tmp_path):
    local = write_run(tmp_path / "shards", steps=(100, 200), ids=IDS, class_names=["cat", "dog", "bird"],
                      image_shape=(40, 60), fields=CLASSIFICATION)
    return local, upload_tree(local, f"{s3_server}/evals/run").url


class _Lister:
    """A thread listing a prefix with its own boto3 client as fast as it can, collecting every key it saw."""

    def __init__(self, bucket: str, prefix: str):
        self.bucket, self.prefix, self.seen = bucket, prefix, set()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._done.is_set():
            self.seen.update(_objects(self.bucket, self.prefix))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join(10)


def test_the_command_line_over_s3(runs, s3_server, tmp_path, capsys):
    import re

    local, url = runs
    bucket = _bucket(s3_server)
    assert main(["inspect", url]) == 0
    assert f"run: {url}" in capsys.readouterr().out
    assert main(["validate", url]) == 0
    assert "2 shard(s) checked: 2 valid, 0 with problems" in capsys.readouterr().err
    logdir = f"{s3_server}/tb/eval"
    with _Lister(bucket, "tb/") as lister:
        for _ in range(2):  # exporting again replaces: one event file after both
            assert main(["export", url, logdir, "--no-progress", "--workers", "1", "--incremental"]) == 0
        upload_tree(write_run(tmp_path / "more", steps=(300,), ids=IDS, image_shape=(40, 60)), url)
        assert main(["export", url, logdir, "--no-progress", "--workers", "1", "--incremental"]) == 0
    out = capsys.readouterr().out
    assert "is up to date: no new shards" in out and f"tensorboard --logdir {logdir}" in out
    final = _objects(bucket, "tb/")
    assert all(re.fullmatch("tb/eval/" + TB_FILES, k) for k in lister.seen | set(final)), lister.seen  # no temp ever
    assert len([k for k in final if "tfevents" in k]) == 2  # the full export, then the appended step 300
    api_events = events_of(_download(bucket, "tb/eval/", tmp_path / "copy"))
    assert {s for v in api_events.values() for s, _ in v} == {100, 200, 300}
    assert main(["render", url, f"{s3_server}/png", "--no-progress", "--workers", "1", "--max-per-step", "2"]) == 0
    pngs = _objects(bucket, "png/")
    assert sorted(k.split("/", 1)[1] for k in pngs) == [
        f"step-{s:012d}/{i}.png" for s in (100, 200, 300) for i in IDS[:2]
    ], sorted(pngs)


def _get_json(url: str, timeout: float = 10.0):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as resp:
        return json.loads(resp.read())


#: ``tensorboard`` forced onto its TensorFlow stub (what ``//tensorboard/compat:no_tensorflow`` does in a Bazel build):
#: the stub's gfile reads s3:// with boto3, while TensorFlow >= 2.6 reads it only with tensorflow-io installed.
TENSORBOARD = (
    "import sys, types; sys.modules['tensorboard.compat.notf'] = types.ModuleType('tensorboard.compat.notf'); "
    "from tensorboard.main import run_main; sys.argv[0] = 'tensorboard'; run_main()"
)


@pytest.mark.tensorboard_server
def test_tensorboard_reads_the_run_from_s3_with_each_step_once(runs, s3_server, tmp_path):
    pytest.importorskip("tensorboard")
    pytest.importorskip("boto3")
    local, url = runs
    logdir = f"{s3_server}/tb/eval"
    for argv in (["export", url, logdir], ["export", url, logdir]):  # twice: the second replaces the first
        assert main([*argv, "--no-progress", "--workers", "1"]) == 0
    upload_tree(write_run(tmp_path / "more", steps=(300,), ids=IDS, image_shape=(40, 60)), url)
    assert main(["export", url, logdir, "--no-progress", "--workers", "1", "--incremental"]) == 0  # appends
    # the Python loader (--load_fast false): the Rust data server reads local folders and gs:// only
    with tensorboard_server(f"{s3_server}/tb", tmp_path / "tensorboard.log", "--samples_per_plugin", "images=100",
                            "--load_fast", "false", launch=("-c", TENSORBOARD), timeout=120) as base:

        def steps() -> dict[str, list[int]]:
            tags = _get_json(base + "/data/plugin/images/tags").get("eval", {})
            return {i: [e["step"] for e in _get_json(f"{base}/data/plugin/images/images?" + urllib.parse.urlencode(
                {"run": "eval", "tag": f"examples/{i}"}))] if f"examples/{i}" in tags else [] for i in IDS}

        # the run is two event files (the export, then the appended step 300): wait until both are read,
        # then two more reloads (--reload_interval 1), in which a second copy of any step would show
        loaded = until(steps, lambda seen: all(300 in s for s in seen.values()))
        assert all(300 in s for s in loaded.values()), loaded
        time.sleep(3)
        assert _get_json(base + "/data/runs") == ["eval"]
        assert steps() == {i: [100, 200, 300] for i in IDS}
        assert "metrics/accuracy" in _get_json(base + "/data/plugin/scalars/tags").get("eval", {})
        query = urllib.parse.urlencode({"run": "eval", "tag": "metrics/accuracy"})
        assert [row[1] for row in _get_json(f"{base}/data/plugin/scalars/scalars?{query}")] == [100, 200, 300]
