"""Figures for NOTES.storage.md, measured on this machine against local servers (not a test: run by hand).

    cd tests && PYTHONPATH=.. python -m system.storage_figures [listing] [uploads] [reads] [dask]

Listing 1,000 and 10,000 keys on moto, what a Dask task costs per run, upload throughput to moto on
loopback, and what reading a shard's headers fetches. Each figure is the median of a few repeats.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path


def _median(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _forget_s3_clients() -> None:
    """A new server is a new endpoint: fsspec would hand back the client of the last one."""
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()


def listing(tmp: Path) -> None:
    import boto3

    from exporter.storage import find_runs, locate, walk

    from .servers import moto_server, s3_environment

    with moto_server(tmp / "moto.log") as server:
        os.environ.update(s3_environment(server.endpoint, tmp))
        _forget_s3_clients()
        boto3.client("s3").create_bucket(Bucket="figures")
        for n in (1_000, 10_000):
            root = locate(f"s3://figures/n{n}")
            runs, per_run = max(1, n // 1000), 1000 if n >= 1000 else n
            names = [f"run{r:03d}/step-{s:012d}/x-{i:05d}.npz" for r in range(runs) for s in range(10)
                     for i in range(per_run // 10)]
            t0 = time.perf_counter()
            root.fs.pipe({f"{root.path}/{name}": b"" for name in names})
            put = time.perf_counter() - t0
            mark = server.mark()
            assert len(walk(root)) == n
            pages = len(server.since(mark, "list-type=2"))
            t_walk = _median(lambda root=root: walk(root))
            t_runs = _median(lambda root=root: find_runs(root))
            print(f"moto: {n:>6,} keys: walk {t_walk * 1000:7.0f} ms, find_runs {t_runs * 1000:7.0f} ms "
                  f"({pages} ListObjectsV2 pages; writing them took {put:.1f} s, {n / put:.0f} PUT/s)")


def uploads(tmp: Path) -> None:
    import boto3

    from exporter.storage import join, locate, put_bytes, put_file

    from .servers import moto_server, s3_environment

    with moto_server(tmp / "moto-up.log") as server:
        os.environ.update(s3_environment(server.endpoint, tmp))
        _forget_s3_clients()
        boto3.client("s3").create_bucket(Bucket="uploads")
        root = locate("s3://uploads/root")
        for mib, how in ((16, "put_bytes"), (64, "put_file"), (256, "put_file")):
            data = os.urandom(mib << 20)
            src = tmp / f"{mib}.bin"
            src.write_bytes(data)
            target = join(root, f"{mib}.bin")
            if how == "put_bytes":
                t = _median(lambda data=data, target=target: put_bytes(target, data))
            else:
                t = _median(lambda src=src, target=target: put_file(src, target))
            kind = "multipart, 50 MiB parts" if mib >= 100 else "one PUT"
            print(f"moto upload {mib:>4} MiB with {how} ({kind}): {mib / t:6.0f} MiB/s ({t:.2f} s)")
            src.unlink()


def reads(tmp: Path) -> None:
    import zipfile

    import boto3
    import numpy as np
    from runs import write_run

    from exporter.storage import join, locate, open_read, put_file

    from .servers import moto_server, s3_environment

    with moto_server(tmp / "moto-read.log") as server:
        os.environ.update(s3_environment(server.endpoint, tmp))
        _forget_s3_clients()
        boto3.client("s3").create_bucket(Bucket="reads")
        write_run(tmp / "run", steps=(5,), n=64, image_shape=(256, 256))
        (shard,) = (tmp / "run").rglob("*.npz")
        target = join(locate("s3://reads"), shard.name)
        put_file(shard, target)
        for block in (64 << 10, 256 << 10, 5 << 20):
            mark = server.mark()
            t0 = time.perf_counter()
            with open_read(target, block_size=block) as f, zipfile.ZipFile(f) as zf:
                for info in zf.infolist():
                    with zf.open(info) as member:
                        np.lib.format.read_magic(member)
                fetched = f.cache.total_requested_bytes
            t = time.perf_counter() - t0
            gets = len(server.since(mark, "^GET "))
            print(f"moto: zip directory + {len(zf.infolist())} .npy headers of a {shard.stat().st_size / 2**20:.1f} MiB "
                  f"shard, block {block >> 10} KiB: {gets} range GETs, {fetched / 2**10:.0f} KiB, {t * 1000:.0f} ms")


def dask_overhead(tmp: Path) -> None:
    from tasks import noop

    from exporter.distributed import RunTask, run_tasks

    from .servers import dask_processes

    n = 200
    tasks = [RunTask(f"run{i}", f"s/{i}", f"l/{i}") for i in range(n)]
    t_here = _median(lambda: run_tasks(tasks, None, task_fn=noop))
    t_local = _median(lambda: run_tasks(tasks, "local", workers=2, task_fn=noop), repeats=2)
    t_start = _median(lambda: run_tasks(tasks[:1], "local", workers=2, task_fn=noop), repeats=2)
    tests = str(Path(__file__).resolve().parents[1])
    env = {"PYTHONPATH": os.pathsep.join([tests, str(Path(tests).parent), os.environ.get("PYTHONPATH", "")])}
    with dask_processes(2, tmp, env=env) as cluster:
        run_tasks(tasks[:2], cluster.address, task_fn=noop)  # warm: workers import the task module
        t_remote = _median(lambda: run_tasks(tasks, cluster.address, task_fn=noop))
        t_connect = _median(lambda: run_tasks(tasks[:1], cluster.address, task_fn=noop))
    print(f"dask: {n} no-op runs in process {t_here * 1e6 / n:.0f} µs/run")
    print(f"dask: LocalCluster(2 workers) start+stop {t_start:.1f} s, then {(t_local - t_start) * 1000 / (n - 1):.1f} ms/run")
    print(f"dask: dask scheduler + 2 dask worker processes: connect {t_connect * 1000:.0f} ms, "
          f"then {(t_remote - t_connect) * 1000 / (n - 1):.1f} ms/run")


def main(sections: list[str]) -> None:
    """Every section, or those named: listing, uploads, reads, dask."""
    chosen = {"listing": listing, "uploads": uploads, "reads": reads, "dask": dask_overhead}
    with tempfile.TemporaryDirectory() as tmp:
        for name in sections or chosen:
            chosen[name](Path(tmp))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
