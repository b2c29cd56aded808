"""exporter.storage against real stores: a local folder, an S3 server (moto) and, where installed, a GCS emulator.

The S3 tests read moto's access log to show what went over the wire: range GETs (206) for a zip's headers,
one listing for a tree of runs, a multipart upload that is invisible until completed."""

from __future__ import annotations

import contextlib
import io
import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import zipfile

import numpy as np
import pytest
from runs import write_run
from test_storage import RUN_TREE

from exporter.errors import StorageError
from exporter.storage import (
    RetryPolicy,
    exists,
    find_runs,
    glob,
    join,
    listdir,
    locate,
    mkdir,
    open_read,
    put_bytes,
    put_file,
    remove,
    walk,
)


@pytest.fixture(params=["local", "s3", "gcs"])
def store(request, tmp_path):
    """An empty folder ``root`` on each kind of store, reached only through ``locate``."""
    if request.param == "local":
        return locate(str(tmp_path / "root"))
    bucket = request.getfixturevalue("s3_server" if request.param == "s3" else "gcs_server")
    return locate(f"{bucket}/root")


# --------------------------------------------------------------------------- every store


def test_helpers_work_the_same_on_every_store(store, tmp_path):
    mkdir(join(store, "run"))  # a no-op on an object store
    for name in ["run/step-000000000001/a-00000.npz", "run/step-000000000001/a.done.json", "run/notes.txt"]:
        put_bytes(join(store, name), name.encode())
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(2 << 20))
    put_file(src, join(store, "run/step-000000000002/b-00000.npz"))
    assert exists(join(store, "run")) and exists(join(store, "run/notes.txt")) and not exists(join(store, "none"))
    assert listdir(join(store, "run")) == ["notes.txt", "step-000000000001", "step-000000000002"]
    assert walk(store) == [
        "run/notes.txt", "run/step-000000000001/a-00000.npz", "run/step-000000000001/a.done.json",
        "run/step-000000000002/b-00000.npz",
    ]
    assert glob(store, "run/step-*/*.npz") == ["run/step-000000000001/a-00000.npz", "run/step-000000000002/b-00000.npz"]
    with open_read(join(store, "run/step-000000000002/b-00000.npz")) as f:
        f.seek((1 << 20) + 5)
        assert f.read(100) == src.read_bytes()[(1 << 20) + 5:(1 << 20) + 105]
    assert find_runs(store) == ["run"]
    remove(join(store, "run/notes.txt"))
    remove(join(store, "run"), recursive=True)
    assert not exists(join(store, "run"))


def test_find_runs_on_every_store(store):
    for name in RUN_TREE:
        put_bytes(join(store, name), b"x")
    assert find_runs(store) == ["eval_a", "eval_b/coco", "eval_b/voc"]
    assert find_runs(join(store, "eval_a")) == ["."]


# --------------------------------------------------------------------------- S3: what goes over the wire


def _key(location) -> str:
    return "/" + location.path  # how moto's access log names an object: /bucket/key


def test_reading_a_shards_headers_is_a_few_range_requests(s3_server, moto, tmp_path):
    write_run(tmp_path / "run", steps=(5,), n=64, image_shape=(256, 256))
    (shard,) = (tmp_path / "run").rglob("*.npz")
    remote = join(locate(s3_server), "run", shard.parent.name, shard.name)
    put_file(shard, remote)
    size = shard.stat().st_size
    mark = moto.mark()
    with open_read(remote, block_size=64 << 10) as f:
        with zipfile.ZipFile(f) as zf:
            headers = {}
            for info in zf.infolist():
                with zf.open(info) as member:
                    major, _ = np.lib.format.read_magic(member)
                    read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                    headers[info.filename] = read_header(member)[0]
            with zf.open("labels.npy") as member:
                labels = np.lib.format.read_array(member)
        fetched = f.cache.total_requested_bytes
    assert headers["images.npy"] == (64, 256, 256, 3) and labels.shape == (64,)
    gets = moto.since(mark, r"^GET " + _key(remote))
    assert gets and all('" 206 ' in line for line in gets), gets  # every GET a range GET (206 Partial Content)
    assert len(gets) <= 2 + len(headers), gets  # the zip directory, then about one per member
    assert size > 12 << 20 and fetched < size // 20, (fetched, size)


def test_find_runs_is_one_recursive_listing(s3_server, moto):
    root = locate(f"{s3_server}/root")
    names = [f"run{r}/step-{s:012d}/x-{i:05d}.npz" for r in range(12) for s in range(4) for i in range(5)]
    root.fs.pipe({f"{root.path}/{n}": b"" for n in names})  # 240 keys in 12 runs, 48 step folders
    mark = moto.mark()
    assert find_runs(root) == sorted(f"run{r}" for r in range(12))
    requests = moto.since(mark)
    # one ListObjectsV2 page per 1,000 keys (storage_figures: 10 pages for 10,000), none per folder
    assert len(requests) == math.ceil(len(names) / 1000) == 1, requests
    assert all("list-type=2" in line and "delimiter=&" in line for line in requests)


def test_a_small_put_is_one_request_under_the_final_key(s3_server, moto):
    target = join(locate(s3_server), "run/step-000000000001/a-00000.npz")
    mark = moto.mark()
    put_bytes(target, b"x" * 1000)
    assert [line.split('"')[1] for line in moto.since(mark)] == [f"PUT {_key(target)} HTTP/1.1"]


@contextlib.contextmanager
def _listings(bucket: str, prefix: str):
    """A thread listing ``prefix`` with its own boto3 client as fast as it can: (time, [(key, size)]) each."""
    import boto3

    client, seen, done = boto3.client("s3"), [], threading.Event()

    def poll():
        while not done.is_set():
            page = client.list_objects_v2(Bucket=bucket, Prefix=prefix)
            seen.append((time.monotonic(), [(o["Key"], o["Size"]) for o in page.get("Contents", [])]))

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        done.set()
        thread.join(10)


def test_a_large_upload_is_multipart_and_invisible_until_complete(s3_server, moto, tmp_path):
    src = tmp_path / "big.npz"
    src.write_bytes(os.urandom(24 << 20))
    target = join(locate(s3_server), "root/big.npz")
    bucket = s3_server.removeprefix("s3://")
    mark = moto.mark()
    with _listings(bucket, "root/") as seen:
        time.sleep(0.05)
        t0 = time.monotonic()
        put_file(src, target, part_size=5 << 20)
        t1 = time.monotonic()
        time.sleep(0.05)
    requests = [line.split('"')[1] for line in moto.since(mark, _key(target))]
    assert requests[0].startswith(f"POST {_key(target)}?uploads")
    assert sum("partNumber=" in r for r in requests) == 5  # 4 x 5 MiB + 4 MiB
    assert requests[-1].startswith(f"POST {_key(target)}?uploadId=")  # CompleteMultipartUpload, last
    full = [("root/big.npz", 24 << 20)]
    assert all(listing in ([], full) for _, listing in seen), {tuple(x) for _, x in seen}  # never a temp or part
    assert any(listing == [] for t, listing in seen if t0 < t < t1)  # listings during the upload saw nothing
    assert seen[-1][1] == full
    with open_read(target) as f:
        assert f.read() == src.read_bytes()


UPLOADER = textwrap.dedent(
    """
    import sys
    from exporter.storage import locate, put_file
    put_file(sys.argv[1], locate(sys.argv[2]), part_size=int(sys.argv[3]) or None)
    """
)


@pytest.mark.parametrize("multipart", [True, False], ids=["multipart", "single-put"])
def test_an_upload_killed_midway_leaves_no_object(s3_server, moto, tmp_path, multipart):
    import boto3

    src = tmp_path / "big.npz"
    src.write_bytes(os.urandom(90 << 20))  # under 2 x 50 MiB: one PUT unless parts are asked for
    target = join(locate(s3_server), "root/big.npz")
    bucket = s3_server.removeprefix("s3://")
    mark = moto.mark()
    proc = subprocess.Popen([sys.executable, "-c", UPLOADER, str(src), target.url, str(5 << 20 if multipart else 0)])
    try:
        deadline = time.monotonic() + 60
        if multipart:  # wait for the first part to be stored, then kill the uploader
            while not moto.since(mark, "partNumber=") and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.01)
        else:  # a single PUT logs only when complete: kill it while the body is on its way
            time.sleep(0.3)
        assert proc.poll() is None, "the upload finished before it could be interrupted"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    client = boto3.client("s3")
    time.sleep(0.2)
    assert client.list_objects_v2(Bucket=bucket, Prefix="root/").get("KeyCount") == 0
    pending = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    # the parts sent so far stay on the server, billed and invisible, until aborted (a lifecycle rule's job)
    assert [u["Key"] for u in pending] == (["root/big.npz"] if multipart else [])


# --------------------------------------------------------------------------- S3: failures in bounded time


def test_a_server_killed_during_an_upload_is_an_error_within_the_retry_budget(s3_server, moto, tmp_path):
    src = tmp_path / "big.npz"
    src.write_bytes(os.urandom(60 << 20))
    target = join(locate(s3_server), "root/big.npz")
    policy = RetryPolicy(tries=3, deadline=4.0, min_rate=100 << 20, first_delay=0.2)
    mark, killed = moto.mark(), []

    def kill_after_first_part():
        deadline = time.monotonic() + 30
        while not moto.since(mark, "partNumber=") and time.monotonic() < deadline:
            time.sleep(0.005)
        moto.process.send_signal(signal.SIGKILL)
        killed.append(time.monotonic())

    killer = threading.Thread(target=kill_after_first_part, daemon=True)
    killer.start()
    t0 = time.monotonic()
    with pytest.raises(StorageError) as info:
        put_file(src, target, retry=policy, part_size=5 << 20)
    elapsed = time.monotonic() - t0
    killer.join(5)
    assert killed, "the server was not killed"
    message = str(info.value)
    assert message.startswith(f"upload to {target.url} failed after 3 tries in "), message  # fast failures, all 3 tries
    assert info.value.attempts == 3
    assert "EndpointConnectionError" in message or "ClientConnectorError" in message or "TimeoutError" in message, message
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in message.replace(target.url, "")
    assert elapsed <= policy.budget(src.stat().st_size) + 1.0, elapsed
    print(f"{message} (after {elapsed:.1f} s; killed {killed[0] - t0:.2f} s in)")


def test_a_server_that_stops_answering_is_an_error_within_the_budget_not_a_hang(s3_server, moto):
    target = join(locate(s3_server), "root/a.npz")
    put_bytes(target, b"warm")  # the connection pool is up: the next request goes to a live socket
    policy = RetryPolicy(tries=3, deadline=2.0, first_delay=0.1)
    moto.process.send_signal(signal.SIGSTOP)  # accepts nothing, answers nothing, closes nothing
    try:
        t0 = time.monotonic()
        with pytest.raises(StorageError, match=rf"^upload to {target.url} failed after 1 try in 2\.\d s: "
                                               r"FSTimeoutError: no answer within 2\.0 s$"):
            put_bytes(target, b"x" * 1000, retry=policy)
        assert time.monotonic() - t0 < policy.budget(1000) + 1.0
    finally:
        moto.process.send_signal(signal.SIGCONT)


# --------------------------------------------------------------------------- the fixture's configuration


def test_the_s3_fixture_reaches_moto_only_through_standard_configuration(s3_server, moto):
    import boto3
    import botocore
    import s3fs

    assert locate(s3_server).fs.client_kwargs == {} and locate(s3_server).fs.endpoint_url is None  # nothing passed
    put_bytes(join(locate(s3_server), "k"), b"v")
    assert boto3.client("s3").get_object(Bucket=s3_server[5:], Key="k")["Body"].read() == b"v"
    assert moto.requests(f"PUT /{s3_server[5:]}/k ")
    print(f"AWS_ENDPOINT_URL honoured by botocore {botocore.__version__}, s3fs {s3fs.__version__}")


def test_tensorboards_own_s3_reader_finds_what_we_uploaded(s3_server):
    from tensorboard.compat.tensorflow_stub.io import gfile

    data = io.BytesIO(b"\x00" * 64).getvalue()
    put_bytes(join(locate(s3_server), "tb/run/events.out.tfevents.1.host"), data)
    s3 = gfile.S3FileSystem()  # a new one: the module's instance read S3_ENDPOINT when it was imported
    path = f"{s3_server}/tb/run/events.out.tfevents.1.host"
    assert s3.exists(path) and s3.read(path, binary_mode=True)[0] == data  # (data, continuation)
    assert s3.listdir(f"{s3_server}/tb/run") == ["events.out.tfevents.1.host"]
