"""ShardWriter straight to S3 (moto on 127.0.0.1): only whole shards under their final keys are ever visible,
the manifest comes last, and a store that goes away mid-dump ends the dump in bounded time, never in a hang.

The store going away is done three ways: a TCP relay in front of moto that resets every connection and refuses
new ones (the server and what it stored live on, so the test can look at what became visible), moto SIGKILLed,
and the writing process itself SIGKILLed."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

from exporter import ShardWriter, WriterError
from exporter.shards import Shard
from exporter.storage import RetryPolicy
from exporter.validation import validate_shard

from .servers import TcpProxy

_FINAL = re.compile(r"step-\d{12}/\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{6}(-\d{5}\.npz|\.done\.json)")


def _bucket(url: str) -> str:
    return urlsplit(url).netloc


def _objects(bucket: str, prefix: str) -> dict[str, int]:
    """Key → size of every object under ``prefix``, listed with a boto3 client of its own (straight to moto)."""
    import boto3

    client = boto3.client("s3")
    out: dict[str, int] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
    return out


def _download(bucket: str, prefix: str, dest):
    import boto3

    client = boto3.client("s3")
    for key in _objects(bucket, prefix):
        target = dest / key[len(prefix):]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    return dest


def _check_complete(bucket: str, keys, tmp_path: Path) -> int:
    """Download each shard key and validate it; returns the examples they hold."""
    import boto3

    client = boto3.client("s3")
    examples = 0
    for i, key in enumerate(sorted(k for k in keys if k.endswith(".npz"))):
        local = tmp_path / f"check-{i}.npz"
        local.write_bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())
        assert [p for p in validate_shard(local) if p.level == "error"] == [], key
        examples += len(Shard(local))
    return examples


def _batch(n: int, start: int, size: int = 64) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(start)
    return {"images": rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), "labels": np.arange(n) % 3,
            "ids": np.arange(start, start + n)}


def test_a_dump_to_s3_shows_only_whole_shards_under_final_keys_and_the_manifest_last(s3_server, moto, tmp_path):
    bucket, prefix = _bucket(s3_server), "evals/run1/"
    seen: set[tuple[str, int]] = set()
    done = threading.Event()

    def poll():
        while not done.is_set():
            seen.update(_objects(bucket, prefix).items())

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    mark = moto.mark()
    try:
        with ShardWriter(f"{s3_server}/evals/run1", step=100, examples_per_shard=8, class_names=["a", "b", "c"]) as w:
            for start in range(0, 64, 8):
                w.add(**_batch(8, start))
    finally:
        done.set()
        poller.join(10)
    final = _objects(bucket, prefix)
    assert len(final) == 9 and all(_FINAL.fullmatch(k[len(prefix):]) for k in final), sorted(final)
    assert seen <= set(final.items()), seen - set(final.items())  # every listing: final keys at their final size
    puts = [line.split('"')[1].split()[1] for line in moto.since(mark, r"^PUT ")]
    assert len(puts) == 9 and puts[-1].endswith(".done.json"), puts  # one PUT per object, the manifest last
    assert _check_complete(bucket, final, tmp_path) == 64
    assert w.written == 64 and [str(p) for p in w.paths] == [f"s3://{bucket}/{k}" for k in sorted(final) if k.endswith(".npz")]


def _writer_in_thread(writer: ShardWriter, batches: int, size: int, errors: list[BaseException]) -> threading.Thread:
    def run():
        try:
            for i in range(batches):
                writer.add(**_batch(4, 4 * i, size))
            writer.close()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("on_error", ["raise", "drop"])
def test_the_network_going_down_mid_dump_ends_it_in_bounded_time_and_what_is_visible_is_whole(
        s3_server, moto, tmp_path, on_error):
    bucket, prefix = _bucket(s3_server), "evals/run1/"
    port = urlsplit(moto.endpoint).port
    assert port is not None
    with TcpProxy(("127.0.0.1", port)) as proxy:
        policy = RetryPolicy(tries=3, deadline=3.0, first_delay=0.1)
        writer = ShardWriter(f"{s3_server}/evals/run1", step=1, examples_per_shard=4, on_error=on_error,
                             storage_options={"endpoint_url": proxy.url}, retry=policy)
        errors: list[BaseException] = []
        t0 = time.monotonic()
        thread = _writer_in_thread(writer, 40, 256, errors)  # 40 shards of 0.75 MiB
        deadline = time.monotonic() + 60
        while len(_objects(bucket, prefix)) < 3 and time.monotonic() < deadline and thread.is_alive():
            time.sleep(0.01)
        assert thread.is_alive(), "the dump finished before the network could go down"
        proxy.cut()
        cut = time.monotonic()
        thread.join(60)
        assert not thread.is_alive(), "the writer hung after the network went down"
    ended = time.monotonic() - cut
    # at most one upload's budget per shard still queued (queue_size 2, plus the one in flight)
    assert ended < 4 * policy.budget(1 << 20), ended
    visible = _objects(bucket, prefix)
    assert all(_FINAL.fullmatch(k[len(prefix):]) for k in visible), sorted(visible)
    assert not any(k.endswith(".done.json") for k in visible)  # the dump did not complete: no manifest claims it
    # every visible shard is whole; the one in flight at the cut may have arrived with its answer lost, so it
    # counts as failed (or dropped) here and is visible there: never a partial object, at most one such shard
    assert writer.written <= _check_complete(bucket, visible, tmp_path) <= writer.written + 4
    if on_error == "raise":
        (error,) = errors
        assert isinstance(error, WriterError), error
        message = str(error)
        assert message.startswith(f"writing shards to s3://{bucket}/evals/run1/step-000000000001 failed: "
                                  f"StorageError: upload to s3://{bucket}/evals/run1/step-000000000001/"), message
        assert re.search(r"failed after \d tr(y|ies) in [\d.]+ s: \w+", message), message
    else:
        assert errors == [] and writer.dropped > 0
        assert writer.written + writer.dropped == writer.kept == 160
    print(f"on_error={on_error}: {len(visible)} whole shards visible, ended {ended:.1f} s after the cut "
          f"({time.monotonic() - t0:.1f} s in all)")


def test_moto_killed_mid_dump_is_a_writer_error_within_the_budget(s3_server, moto):
    bucket, prefix = _bucket(s3_server), "evals/run1/"
    policy = RetryPolicy(tries=3, deadline=3.0, first_delay=0.1)
    writer = ShardWriter(f"{s3_server}/evals/run1", step=1, examples_per_shard=4, retry=policy)
    errors: list[BaseException] = []
    thread = _writer_in_thread(writer, 40, 256, errors)
    deadline = time.monotonic() + 60
    while len(_objects(bucket, prefix)) < 2 and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.01)
    assert thread.is_alive()
    moto.process.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    thread.join(60)
    assert not thread.is_alive(), "the writer hung after the server died"
    assert time.monotonic() - killed < 4 * policy.budget(1 << 20)
    (error,) = errors
    assert isinstance(error, WriterError) and f"s3://{bucket}/evals/run1/step-000000000001" in str(error), error
    assert "EndpointConnectionError" in str(error) or "Connect" in str(error) or "Timeout" in str(error), error


WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from exporter import ShardWriter
    rng = np.random.default_rng(0)
    with ShardWriter(sys.argv[1], step=5, examples_per_shard=4) as w:
        for i in range(10_000):
            w.add(images=rng.integers(0, 256, (4, 256, 256, 3), dtype=np.uint8), labels=np.arange(4) % 3)
    """
)


def test_a_sigkilled_writer_leaves_no_partial_object(s3_server, moto, tmp_path):
    bucket, prefix = _bucket(s3_server), "evals/killed/"
    for trial, wanted in enumerate((1, 4)):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, f"{s3_server}/{prefix}{trial}"])
        try:
            deadline = time.monotonic() + 60
            while len(_objects(bucket, f"{prefix}{trial}/")) < wanted and time.monotonic() < deadline:
                assert proc.poll() is None, "the writer exited by itself"
                time.sleep(0.005)
            time.sleep(0.05 * trial)  # somewhere inside the next upload
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    time.sleep(0.2)
    visible = _objects(bucket, prefix)
    assert visible and all(_FINAL.fullmatch(k.split("/", 3)[3]) for k in visible), sorted(visible)
    assert not any(k.endswith(".done.json") for k in visible)
    assert _check_complete(bucket, visible, tmp_path) == 4 * len(visible)
