"""Real servers for the storage and Dask tests, each a process of this virtualenv on 127.0.0.1.

* ``moto_server(log)``: an S3 endpoint (``moto_server``, from ``moto[server]``); its
  access log (one line per request, with the status: 206 for a range GET) is the
  tests' evidence of what the client asked for.
* ``gcs_emulator(...)``: ``gcp-storage-emulator``, when installed.
* ``tensorboard_server(logdir, log)``: ``tensorboard`` reading a logdir; ``until`` polls it
  until a run is fully loaded.
* ``dask_processes(n)``: ``dask scheduler`` and ``n`` ``dask worker --no-nanny``
  processes; without a nanny the worker process is the one running tasks, so a
  SIGKILL to it loses the worker (a nanny would restart it in place).

The fixtures in ``conftest.py`` wrap these; ``storage_figures.py`` uses them directly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

#: The console scripts of the virtualenv running the tests, never whatever is first on PATH.
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
#: A direct opener: a proxy from the environment must never see loopback traffic.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
T = TypeVar("T")


def free_port() -> int:
    """A port nothing listens on now (the server binds it a moment later; start() retries on a clash)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before answering {url}")
        try:
            with _DIRECT.open(url, timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{proc.args[0]} did not answer {url} within {timeout} s")


def stop(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; reaps the process. A stopped (SIGSTOP) one is continued first."""
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)
    except ProcessLookupError:
        pass


def until(fetch: Callable[[], T], done: Callable[[T], bool], timeout: float = 60.0) -> T:
    """``fetch()`` every half second until ``done(result)`` or ``timeout``; the last result either way.

    TensorBoard loads a run while it already answers: right after start, or for a logdir of
    several event files, one request may see the first file's steps and the next one all of
    them. The caller asserts on what this returns, so a state that never arrives still fails.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = fetch()
        if done(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


@contextlib.contextmanager
def tensorboard_server(logdir: str | Path, log: Path, *args: str, run: str = "eval", timeout: float = 90.0,
                       launch: Sequence[str] = ("-m", "tensorboard.main")) -> Iterator[str]:
    """``tensorboard --logdir logdir`` on a free port, once it lists ``run``: yields its base URL, stops it after.

    ``args`` are more of its flags (``--samples_per_plugin images=100``); its output goes to ``log``;
    ``launch`` is how this virtualenv's Python starts it (``("-c", code)`` for a patched start).
    """
    port = free_port()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, *launch, "--logdir", str(logdir), "--host", HOST, "--port", str(port),
             "--reload_interval", "1", *args],
            stdout=out, stderr=subprocess.STDOUT,
        )
        base = f"http://{HOST}:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    with _DIRECT.open(base + "/data/runs", timeout=2) as resp:
                        if run in json.loads(resp.read()):
                            break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"tensorboard did not come up: {log.read_text()[-2000:]}")
                time.sleep(0.5)
            yield base
        finally:
            stop(proc, timeout=20)


@dataclasses.dataclass
class MotoServer:
    """A running ``moto_server``: its endpoint, process and access log."""

    endpoint: str
    process: subprocess.Popen
    log: Path

    def requests(self, pattern: str = "") -> list[str]:
        """Access-log lines (``"GET /bucket/key HTTP/1.1" 206``) whose request matches ``pattern`` (a regex)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        lines = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in text.splitlines()]
        return [line for line in lines if '" ' in line and re.search(pattern, line.split('"')[1] if '"' in line else "")]

    def mark(self) -> int:
        """How many requests are logged so far: pass to ``since`` to see the requests after this point."""
        return len(self.requests())

    def since(self, mark: int, pattern: str = "") -> list[str]:
        return [line for line in self.requests()[mark:] if re.search(pattern, line.split('"')[1])]


@contextlib.contextmanager
def moto_server(log: Path, *, tries: int = 3) -> Iterator[MotoServer]:
    """``moto_server -H 127.0.0.1 -p <free port>``, answered, then stopped (unless the test killed it)."""
    for attempt in range(tries):
        port = free_port()
        with open(log, "wb") as out:
            proc = subprocess.Popen([str(BIN / "moto_server"), "-H", HOST, "-p", str(port)], stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _wait_http(f"http://{HOST}:{port}/moto-api/", proc, timeout=30)
            break
        except RuntimeError:
            stop(proc)
            if attempt == tries - 1:
                raise
    try:
        yield MotoServer(f"http://{HOST}:{port}", proc, log)
    finally:
        stop(proc)


def s3_environment(endpoint: str, config_dir: Path) -> dict[str, str]:
    """The standard configuration that sends boto3, s3fs and TensorBoard's S3 reader to ``endpoint``.

    Dummy credentials, and config files pointed at an empty folder so that a
    developer's own ``~/.aws`` profile can neither leak in nor send a request elsewhere.
    """
    return {
        "AWS_ENDPOINT_URL": endpoint,  # botocore >= 1.31 (and so aiobotocore/s3fs) reads it for every service
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(config_dir / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(config_dir / "credentials"),
        "S3_ENDPOINT": endpoint,  # TensorBoard's gfile S3 reader: boto3.client("s3", endpoint_url=S3_ENDPOINT)
        "S3_USE_HTTPS": "0",
        "S3_VERIFY_SSL": "0",
        "NO_PROXY": ",".join(filter(None, [os.environ.get("NO_PROXY"), HOST, "localhost"])),
    }


def gcs_emulator_available() -> bool:
    return (BIN / "gcp-storage-emulator").exists()


@contextlib.contextmanager
def gcs_emulator(log: Path, bucket: str) -> Iterator[str]:
    """``gcp-storage-emulator`` in memory with ``bucket`` made; yields its endpoint for STORAGE_EMULATOR_HOST."""
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "gcp-storage-emulator"), "start", "--host", HOST, "--port", str(port), "--in-memory",
             "--default-bucket", bucket],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        _wait_http(f"http://{HOST}:{port}/storage/v1/b/{bucket}", proc, timeout=30)
        yield f"http://{HOST}:{port}"
    finally:
        stop(proc)


@dataclasses.dataclass
class DaskProcesses:
    """A ``dask scheduler`` and its ``dask worker`` processes."""

    address: str
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen]


@contextlib.contextmanager
def dask_processes(n_workers: int, logdir: Path, *, env: dict[str, str] | None = None,
                   timeout: float = 60) -> Iterator[DaskProcesses]:
    """``dask scheduler`` on a free port and ``n_workers`` one-thread workers connected to it, then all stopped."""
    from distributed import Client

    dask = str(BIN / "dask")
    port = free_port()
    address = f"tcp://{HOST}:{port}"
    env = {**os.environ, **(env or {})}
    procs: list[subprocess.Popen] = []

    def start(name: str, *args: str) -> subprocess.Popen:
        with open(logdir / f"{name}.log", "wb") as out:
            proc = subprocess.Popen([dask, *args], stdout=out, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)
        procs.append(proc)
        return proc

    try:
        scheduler = start("scheduler", "scheduler", "--host", HOST, "--port", str(port), "--no-dashboard")
        workers = [
            start(f"worker-{i}", "worker", address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
                  "--no-nanny", "--host", HOST, "--name", f"w{i}", "--death-timeout", "60")
            for i in range(n_workers)
        ]
        with Client(address, timeout=timeout) as client:
            client.wait_for_workers(n_workers, timeout=timeout)
        yield DaskProcesses(address, scheduler, workers)
    finally:
        for proc in reversed(procs):
            stop(proc)


class TcpProxy:
    """A TCP relay on 127.0.0.1 in front of a server: ``cut()`` drops every connection mid-transfer and refuses
    new ones, as a network that goes down would, while the server behind it (and what it stored) lives on.

    >>> with TcpProxy(("127.0.0.1", 5000)) as proxy:     # doctest: +SKIP
    ...     url = proxy.url; ...; proxy.cut()
    """

    def __init__(self, target: tuple[str, int]):
        import threading

        self.target = target
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((HOST, 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://{HOST}:{self.port}"
        self.bytes_up = 0  # client → server, so a test can wait until an upload is under way
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._down = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading

        while not self._down.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._down.is_set():
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if up:
                    self.bytes_up += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        """Every open connection reset, and nothing listening any more: connection refused from now on."""
        self._down.set()
        with self._lock:
            for sock in [self._listener, *self._sockets]:
                _reset(sock)

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cut()


def _reset(sock: socket.socket) -> None:
    """Close with a reset (linger 0), waking whatever thread is blocked reading it."""
    calls = (
        lambda: sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"),
        lambda: sock.shutdown(socket.SHUT_RDWR),
        sock.close,
    )
    for call in calls:
        try:
            call()
        except OSError:
            pass
