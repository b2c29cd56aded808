"""exporter.storage without servers: resolving paths and URLs, option parsing, the helpers on a local folder
and on fsspec's in-memory file system, run discovery, retries. tests/system/test_storage_remote.py runs the
same helpers against a real S3 server (moto) and a GCS emulator."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from exporter import storage
from exporter.errors import ConfigError, MissingDependencyError, RunNotFoundError, StorageError
from exporter.storage import (
    Location,
    RetryPolicy,
    find_runs,
    glob,
    join,
    listdir,
    locate,
    open_read,
    parse_storage_options,
    put_bytes,
    put_file,
    walk,
)

# --------------------------------------------------------------------------- locate


@pytest.mark.parametrize(
    ("given", "path"),
    [
        ("shards/run1", "shards/run1"),
        ("/abs/shards", "/abs/shards"),
        (Path("rel/x"), "rel/x"),
        ("file:///tmp/a%20b/run", "/tmp/a b/run"),
        ("file://localhost/tmp/run", "/tmp/run"),
        ("C:/windows/style", "C:/windows/style"),  # one letter is a drive, never a scheme
        ("run:1/step", "run:1/step"),               # a colon without '//' is part of a name
    ],
)
def test_plain_paths_and_file_urls_stay_local(given, path):
    loc = locate(given)
    assert loc.is_local and loc.fs is None and loc.path == path and loc.local_path == Path(path)


def test_local_paths_never_import_fsspec(tmp_path):
    code = textwrap.dedent(
        f"""
        import sys
        from exporter.storage import find_runs, join, listdir, locate, open_read, put_bytes, walk
        root = locate({str(tmp_path)!r})
        put_bytes(join(root, "run", "step-000000000001", "a.npz"), b"x")
        assert find_runs(root) == ["run"] and walk(root) == ["run/step-000000000001/a.npz"]
        assert listdir(root) == ["run"] and open_read(join(root, "run/step-000000000001/a.npz")).read() == b"x"
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("fsspec", "s3fs", "gcsfs", "botocore", "distributed")))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_an_s3_url_is_never_a_local_folder_named_s3(tmp_path, monkeypatch):
    """The trap the writer falls in today: Path('s3://evals/run1') is the local folder 's3:/evals/run1'."""
    pytest.importorskip("s3fs")
    monkeypatch.chdir(tmp_path)
    assert str(Path("s3://evals/run1")) == "s3:/evals/run1"  # what ShardWriter(directory) does with it now
    loc = locate("s3://evals/run1")
    assert not loc.is_local and loc.protocol == "s3" and loc.path == "evals/run1" and loc.url == "s3://evals/run1"
    with pytest.raises(ConfigError, match="is not a local path"):
        _ = loc.local_path
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url", ["foo://bucket/run", "FOO://bucket/run", "foo::s3://bucket/run"])
def test_an_unknown_scheme_is_a_config_error_not_a_folder(tmp_path, monkeypatch, url):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^unknown URL scheme 'foo' in " + url.replace(":", r"\:") + ": fsspec has no file system"):
        locate(url)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_backend_names_the_extra_that_installs_it():
    """gcsfs and s3fs made unimportable in a fresh interpreter: what a user without the extra sees."""
    code = textwrap.dedent(
        """
        import sys
        sys.modules["gcsfs"] = sys.modules["s3fs"] = None   # import gcsfs / s3fs now raise ImportError
        from exporter.errors import MissingDependencyError
        from exporter.storage import locate
        for url in ["gs://b/run", "gcs://b/run", "s3://b/run", "s3a://b/run"]:
            try:
                locate(url)
            except MissingDependencyError as exc:
                print(exc)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [
        "gs://b/run: Please install gcsfs to access Google Storage: pip install 'summary-exporter[gcs]'",
        "gcs://b/run: Please install gcsfs to access Google Storage: pip install 'summary-exporter[gcs]'",
        "s3://b/run: Install s3fs to access S3: pip install 'summary-exporter[s3]'",
        "s3a://b/run: Install s3fs to access S3: pip install 'summary-exporter[s3]'",
    ]


def test_without_fsspec_a_url_names_the_extra():
    code = (
        "import sys; sys.modules['fsspec'] = None\n"
        "from exporter.storage import locate\n"
        "try:\n    locate('s3://b/run')\nexcept ImportError as exc:\n    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == (
        "MissingDependencyError s3://b/run: reading URLs needs fsspec and its backend: pip install 'summary-exporter[s3]'"
    )
    assert issubclass(MissingDependencyError, ImportError)


def test_a_url_without_a_bucket_is_refused():
    pytest.importorskip("s3fs")
    with pytest.raises(ConfigError, match="names no bucket"):
        locate("s3://")


def test_storage_option_values_and_url_passwords_stay_out_of_messages():
    loc = locate("memory://bucket/run", {"token": "SECRET-VALUE", "anon": True})
    assert repr(loc) == "Location('memory:///bucket/run', storage_options=[anon, token])"
    assert "SECRET" not in repr(loc) + str(loc)
    assert storage.redact("see https://me:hunter2@host/x and s3://k:s@b/y") == "see https://***@host/x and s3://***@b/y"


def test_locations_compare_by_place_and_join_without_resolving_again():
    root = locate("memory://bucket/root")
    child = join(root, "run1", "step-000000000001")
    assert child.fs is root.fs and child.path == "/bucket/root/run1/step-000000000001"
    assert root / "run1" == join(root, "run1/") == join(root, "./run1")
    assert join(root) is root and join(root, ".") is root
    for bad in ("..", "a/../b", "/etc"):
        with pytest.raises(ConfigError, match="only names below the location"):
            join(root, bad)
    assert locate(root) is root
    assert isinstance(locate(Path("x")), Location)


# --------------------------------------------------------------------------- --storage-option


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ([], {}),
        (["anon=true"], {"anon": True}),
        (["anon=false", "default_block_size=1048576"], {"anon": False, "default_block_size": 1048576}),
        (["requester_pays=1.5"], {"requester_pays": 1.5}),
        (["profile=eval-reader"], {"profile": "eval-reader"}),
        (["endpoint_url=http://127.0.0.1:9000"], {"endpoint_url": "http://127.0.0.1:9000"}),
        (["version_aware=null"], {"version_aware": None}),
        (["x= spaced value "], {"x": " spaced value "}),
        (["x="], {"x": ""}),
        (["x=a=b"], {"x": "a=b"}),
        (['client_kwargs={"region_name": "eu-west-1"}'], {"client_kwargs": {"region_name": "eu-west-1"}}),
        (["token=anon"], {"token": "anon"}),
        (["token=google_default"], {"token": "google_default"}),
    ],
)
def test_storage_options_parse_json_literals_else_strings(items, expected):
    assert parse_storage_options(items) == expected


@pytest.mark.parametrize(
    ("items", "error"),
    [
        (["anon"], "must be KEY=VALUE (like anon=true), got 'anon'"),
        (["=true"], "the name must be an identifier"),
        (["a-b=1"], "the name must be an identifier"),
        (["anon=true", "anon=false"], "anon given twice"),
        (["secret=abc123"], "credentials are not taken on the command line"),
        (["key=AKIA123"], "credentials are not taken on the command line"),
        (["token=ya29.a0Af"], "credentials are not taken on the command line"),
        (["aws_secret_access_key=x"], "credentials are not taken on the command line"),
        ([3], "must be KEY=VALUE"),
    ],
)
def test_malformed_storage_options_are_config_errors(items, error):
    with pytest.raises(ConfigError, match=error.replace("(", r"\(").replace(")", r"\)")) as info:
        parse_storage_options(items)
    for item in items:  # a refused credential's value is never echoed
        if isinstance(item, str) and "=" in item and "credentials" in error:
            assert item.split("=", 1)[1] not in str(info.value)


# --------------------------------------------------------------------------- helpers, local and in memory


@pytest.fixture(params=["local", "memory"])
def root(request, tmp_path):
    """An empty folder: a local one, or one in fsspec's in-memory file system (the remote code path)."""
    if request.param == "local":
        yield locate(str(tmp_path / "root"))
        return
    fsspec = pytest.importorskip("fsspec")
    loc = locate(f"memory://test-{os.getpid()}-{time.monotonic_ns()}/root")
    yield loc
    memory = fsspec.filesystem("memory")
    bucket = loc.path.split("/root")[0]
    if memory.exists(bucket):
        memory.rm(bucket, recursive=True)


def test_put_list_walk_glob_read_remove(root):
    for name in ["run/step-000000000001/a-00000.npz", "run/step-000000000001/a.done.json", "run/notes.txt",
                 "run/step-000000000002/sub/deep.npz"]:
        put_bytes(join(root, name), name.encode())
    assert storage.exists(join(root, "run/notes.txt")) and storage.exists(join(root, "run"))
    assert not storage.exists(join(root, "nothing"))
    assert listdir(root) == ["run"]
    assert listdir(join(root, "run")) == ["notes.txt", "step-000000000001", "step-000000000002"]
    assert walk(join(root, "run")) == [
        "notes.txt", "step-000000000001/a-00000.npz", "step-000000000001/a.done.json", "step-000000000002/sub/deep.npz",
    ]
    assert glob(root, "run/step-*/*.npz") == ["run/step-000000000001/a-00000.npz"]
    assert glob(root, "**/*.npz") == ["run/step-000000000001/a-00000.npz", "run/step-000000000002/sub/deep.npz"]
    assert glob(root, "run/step-00000000000[!1]/**/*.npz") == ["run/step-000000000002/sub/deep.npz"]
    assert glob(join(root, "nothing"), "*") == []
    with open_read(join(root, "run/notes.txt")) as f:
        f.seek(4)
        assert f.read() == b"notes.txt"  # the content is the name, "run/notes.txt"
    storage.remove(join(root, "run/notes.txt"))
    storage.remove(join(root, "run/notes.txt"))  # gone already: not an error
    assert "notes.txt" not in listdir(join(root, "run"))
    storage.remove(join(root, "run"), recursive=True)
    assert not storage.exists(join(root, "run"))


def test_missing_places_are_run_not_found(root):
    for call in (lambda: listdir(join(root, "none")), lambda: walk(join(root, "none")),
                 lambda: open_read(join(root, "none.npz")), lambda: find_runs(join(root, "none"))):
        with pytest.raises(RunNotFoundError, match="none"):
            call()


def test_put_file_publishes_whole_and_leaves_no_temp(root, tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(3 << 20))
    dst = join(root, "a", "b", "c.bin")
    put_file(src, dst)
    with open_read(dst) as f:
        assert f.read() == src.read_bytes()
    assert walk(root) == ["a/b/c.bin"]  # no temp file left beside it
    with pytest.raises(RunNotFoundError, match="no such file to upload"):
        put_file(tmp_path / "missing", dst)


def test_open_read_serves_a_shard_zip(root, tmp_path):
    from runs import write_run

    write_run(tmp_path / "run", steps=(7,))
    (shard,) = sorted((tmp_path / "run").rglob("*.npz"))
    dst = join(root, "shard.npz")
    put_file(shard, dst)
    with open_read(dst) as f, zipfile.ZipFile(f) as zf:
        assert "__meta__.npy" in zf.namelist()
        with zf.open("labels.npy") as member:
            assert np.lib.format.read_array(member).shape == (6,)


def test_remove_a_folder_needs_recursive(tmp_path):
    put_bytes(join(locate(str(tmp_path)), "d/f"), b"x")
    with pytest.raises(ConfigError, match="recursive=True"):
        storage.remove(locate(str(tmp_path / "d")))


# --------------------------------------------------------------------------- find_runs


RUN_TREE = [
    "eval_a/step-000000000100/x-00000.npz",
    "eval_a/step-000000000200/x-00000.npz",
    "eval_b/coco/step-000000000100/x-00000.npz",
    "eval_b/coco/notes.txt",
    "eval_b/voc/step-000000000100/x.done.json",
    "eval_b/voc/step-000000000100/nested/step-000000000001/y-00000.npz",  # inside a step: not a run
    "eval_b/readme.md",
    "eval_c/step-notes/x.npz",           # not a step folder: no digits
    "eval_c/steps-000000000001/x.npz",   # nor this
    ".staging/step-000000000001/x.npz",  # hidden: skipped
    "eval_d/.old/step-000000000001/x.npz",
    "loose.npz",
]


def test_find_runs_finds_each_folder_holding_step_folders(root):
    for name in RUN_TREE:
        put_bytes(join(root, name), b"x")
    assert find_runs(root) == ["eval_a", "eval_b/coco", "eval_b/voc"]
    assert find_runs(join(root, "eval_a")) == ["."]
    assert find_runs(join(root, "eval_c")) == []


def test_an_empty_step_folder_makes_no_run(tmp_path):
    """Object stores have no empty folders; locally an empty one does not count either, to agree."""
    (tmp_path / "empty_run" / "step-000000000001").mkdir(parents=True)
    (tmp_path / "run" / "step-000000000001").mkdir(parents=True)
    (tmp_path / "run" / "step-000000000001" / "x.npz").write_bytes(b"x")
    assert find_runs(locate(str(tmp_path))) == ["run"]


# --------------------------------------------------------------------------- retries


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        (dict(tries=0), "RetryPolicy.tries must be an integer >= 1, got 0"),
        (dict(tries=True), "RetryPolicy.tries must be an integer >= 1, got True"),
        (dict(deadline=0), "RetryPolicy.deadline must be > 0, got 0"),
        (dict(deadline=float("inf")), "RetryPolicy.deadline must be a finite number"),
        (dict(first_delay=-1), "RetryPolicy.first_delay must be a number >= 0"),
    ],
)
def test_retry_policy_is_checked(kwargs, error):
    with pytest.raises(ConfigError, match=error.replace("(", r"\(")):
        RetryPolicy(**kwargs)


def test_retry_budget_grows_with_the_bytes_sent():
    policy = RetryPolicy(deadline=10, min_rate=1 << 20)
    assert policy.budget(0) == 10 and policy.budget(100 << 20) == 110


def _client_error(code: str, status: int):
    botocore = pytest.importorskip("botocore.exceptions")
    return botocore.ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")


@pytest.mark.parametrize(
    ("make", "transient"),
    [
        (lambda: ConnectionResetError(104, "Connection reset by peer"), True),
        (lambda: TimeoutError(), True),
        (lambda: pytest.importorskip("botocore.exceptions").EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), True),
        (lambda: pytest.importorskip("botocore.exceptions").ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), True),
        (lambda: _client_error("SlowDown", 503), True),
        (lambda: _client_error("InternalError", 500), True),
        (lambda: _client_error("AccessDenied", 403), False),
        (lambda: _client_error("NoSuchBucket", 404), False),
        (lambda: FileNotFoundError("evals/x"), False),
        (lambda: PermissionError("denied"), False),
        (lambda: ValueError("bad"), False),
    ],
)
def test_which_errors_are_worth_another_try(make, transient):
    assert storage.is_transient(make()) is transient


def test_a_wrapped_transient_error_is_still_transient():
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError as inner:
            raise OSError("upload failed") from inner
    except OSError as exc:
        assert storage.is_transient(exc)


def _flaky_store(failures: int, error: type[Exception] = ConnectionResetError):
    """fsspec's in-memory file system whose first ``failures`` uploads fail: fault injection, not a mock."""
    from fsspec.implementations.memory import MemoryFileSystem

    class Flaky(MemoryFileSystem):
        calls = 0

        def pipe_file(self, path, value, **kwargs):
            type(self).calls += 1
            if type(self).calls <= failures:
                raise error(f"attempt {type(self).calls} lost its connection")
            return super().pipe_file(path, value, **kwargs)

    fs = Flaky(skip_instance_cache=True)
    return Location(f"/flaky-{time.monotonic_ns()}/x.bin", fs, "memory"), Flaky


def test_transient_upload_errors_are_retried_until_it_works():
    pytest.importorskip("fsspec")
    loc, flaky = _flaky_store(2)
    put_bytes(loc, b"data", retry=RetryPolicy(tries=3, first_delay=0.01))
    assert flaky.calls == 3 and loc.fs.cat_file(loc.path) == b"data"


def test_retries_end_in_an_error_naming_the_url_and_the_cause():
    pytest.importorskip("fsspec")
    loc, flaky = _flaky_store(99)
    t0 = time.monotonic()
    with pytest.raises(StorageError) as info:
        put_bytes(loc, b"data", retry=RetryPolicy(tries=3, first_delay=0.01))
    assert time.monotonic() - t0 < 1 and flaky.calls == 3
    assert str(info.value).startswith(f"upload to memory://{loc.path} failed after 3 tries in ")
    assert str(info.value).endswith("s: ConnectionResetError: attempt 3 lost its connection")
    assert isinstance(info.value, OSError) and info.value.attempts == 3 and info.value.url == f"memory://{loc.path}"


def test_a_permanent_error_is_not_retried():
    pytest.importorskip("fsspec")
    loc, flaky = _flaky_store(99, PermissionError)
    with pytest.raises(StorageError, match=r"failed: PermissionError: attempt 1"):
        put_bytes(loc, b"data")
    assert flaky.calls == 1


def test_the_time_budget_stops_retries_before_the_tries_run_out():
    pytest.importorskip("fsspec")
    loc, flaky = _flaky_store(99)
    t0 = time.monotonic()
    with pytest.raises(StorageError, match="failed after"):
        put_bytes(loc, b"data", retry=RetryPolicy(tries=100, deadline=0.5, first_delay=0.1, max_delay=0.1))
    assert time.monotonic() - t0 < 0.7 and 2 <= flaky.calls < 100


def test_storage_errors_pickle_for_dask_workers():
    import pickle

    exc = pickle.loads(pickle.dumps(StorageError("upload to s3://b/k failed: X", "s3://b/k", 3)))
    assert (str(exc), exc.url, exc.attempts) == ("upload to s3://b/k failed: X", "s3://b/k", 3)

