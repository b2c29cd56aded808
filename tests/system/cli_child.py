"""The ``summary-exporter`` console script with test hooks (run as a script, never imported by pytest).

    python cli_child.py [--checkout DIR] [--ready-fd FD] [--go-fd FD] [--warm SHARDS] [--as-user UID] -- ARGS...

Does what the installed console script does (``from exporter.cli import main; sys.exit(main())``)
with ``ARGS``, in this order:

* ``--checkout DIR``: exit 99 unless ``exporter`` was imported from ``DIR`` (the checkout under test).
* ``--warm SHARDS``: first run the same command on the good run ``SHARDS`` into a throw-away folder,
  quietly, so every module the real run needs is imported while still root: the interpreter lives
  under /root (mode 0700), where ``nobody`` cannot read a module.
* ``--as-user UID``: then become that user (group nogroup, no supplementary groups).
* ``--ready-fd FD``: write one byte to FD (and close it) once all that is done; tests time their
  signals from there.
* ``--go-fd FD``: then wait for one byte on FD before calling ``main``, so two children start together.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import sys
import tempfile

from exporter.cli import main  # what the console script imports, and nothing more before main() runs

NOGROUP = 65534


def _warm(argv: list[str], shards: str) -> None:
    """Run ``argv``'s command on ``shards`` into a temp folder, output discarded; raise if it fails."""
    scratch = tempfile.mkdtemp(prefix="summary-exporter-warm-")
    try:
        command, rest = argv[0], argv[1:]
        if command in ("export", "render"):
            warm = [command, shards, os.path.join(scratch, "out"), *[a for a in rest[2:] if a != "--wait"]]
        else:
            warm = [command, shards, *rest[1:]]
        sink = io.StringIO()
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            status = main(warm)
        if status not in (0, 3):
            raise SystemExit(f"cli_child: the warm-up run {warm} failed ({status}):\n{sink.getvalue()}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _become(uid: int) -> None:
    os.setgroups([])
    os.setgid(NOGROUP)
    os.setuid(uid)


def run() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkout")
    parser.add_argument("--ready-fd", type=int)
    parser.add_argument("--go-fd", type=int)
    parser.add_argument("--warm")
    parser.add_argument("--as-user", type=int)
    parser.add_argument("args", nargs=argparse.REMAINDER)
    opts = parser.parse_args()
    argv = opts.args[1:] if opts.args[:1] == ["--"] else opts.args
    if opts.checkout:
        import exporter

        where = os.path.dirname(os.path.dirname(os.path.abspath(exporter.__file__)))
        if where != os.path.abspath(opts.checkout):
            print(f"cli_child: exporter imported from {where}, not {opts.checkout}", file=sys.stderr)
            return 99
    if opts.warm:
        _warm(argv, opts.warm)
        import ctypes  # noqa: F401 - forked workers load it in worker_init, which they could not as nobody
    if opts.as_user is not None:
        _become(opts.as_user)
    if opts.ready_fd is not None:
        os.write(opts.ready_fd, b"r")
        os.close(opts.ready_fd)
    if opts.go_fd is not None:
        os.read(opts.go_fd, 1)
        os.close(opts.go_fd)
    return main(argv)


if __name__ == "__main__":
    sys.exit(run())
