"""A LOGDIR (or render OUTDIR) on an object store: the export runs into a local staging folder, then each
finished file is uploaded whole under its final name.

An object store has no rename, no ``flock`` and no folders, so the local
machinery (``_files`` staging, ``_lock.OutputLock``, the installation journal
of ``tensorboard.EventWriter``) cannot work there. Instead:

1. ``StagedLogdir`` lists the remote logdir once and reads its export state.
   The state of a remote logdir names its event files (``"events"``); event
   objects it does not name were uploaded by an export that died before it
   wrote the state, and are removed now (so the next step never doubles an
   event). A state naming an event file that is gone (an export died between
   removing old files and writing the state) is void: the export is a full one.
2. The staging folder gets the state and an empty stand-in for each remote
   event file, so the local export (``api._export_locked``, unchanged) sees the
   logdir as it is: ``--incremental`` decides as it would locally, and new
   event file names sort after the remote ones.
3. ``install()`` uploads each new event file whole (one PUT, or a multipart
   upload visible only when complete), then removes the event objects the
   export replaced, then writes the state last, naming the event files now
   there.

A reader listing the logdir meanwhile sees the old event files, then (for the
moment between the new upload and the removals) old and new, then the new ones.
Two exporters must not write the same remote logdir at once: nothing here can
stop them.
"""

from __future__ import annotations

import concurrent.futures
import fnmatch
import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ._incremental import STATE_FILE
from .errors import RunNotFoundError
from .storage import DEFAULT_RETRY, Location, RetryPolicy, join, listdir, put_bytes, put_file, read_bytes, remove
from .tensorboard import EVENT_FILE_GLOB

#: The key of the state file that names the event files of a remote logdir.
EVENTS_KEY = "events"
#: Uploads of a render to a store that run at once (PNG files are small: latency, not bandwidth, bounds them).
UPLOAD_THREADS = 8
#: An event file above twice this is sent as a multipart upload of parts this large, ``EVENT_PARTS_IN_FLIGHT`` at
#: a time, so an upload holds a few parts in memory, not the whole file (s3fs reads a single PUT's body whole, and
#: event files reach gigabytes): 32 MiB, well inside the export's memory bound.
EVENT_PART_SIZE = 8 << 20
EVENT_PARTS_IN_FLIGHT = 4


def _event_names(names: Sequence[str]) -> list[str]:
    return sorted(n for n in names if fnmatch.fnmatchcase(n, EVENT_FILE_GLOB))


class StagedLogdir:
    """A remote logdir mirrored into a local staging folder for one export, then installed object by object.

    >>> with StagedLogdir(locate("s3://tb/eval")) as staged:                 # doctest: +SKIP
    ...     report = _export_locked(shards, staged.staging, options, ...)
    ...     event_file = staged.install()
    """

    def __init__(self, target: Location, *, retry: RetryPolicy = DEFAULT_RETRY):
        self.target = target
        self.retry = retry
        self.notes: list[str] = []  # what was repaired, for the report's warnings
        self.staging = Path()  # made by __enter__
        self._before: list[str] = []  # event files in the remote logdir when the export starts
        self._state: str | None = None  # the state file put into staging, as read

    def __enter__(self) -> StagedLogdir:
        self.staging = Path(tempfile.mkdtemp(prefix="summary-exporter-stage-"))
        try:
            self._mirror()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.staging != Path():
            shutil.rmtree(self.staging, ignore_errors=True)

    def _mirror(self) -> None:
        try:
            names = listdir(self.target)
        except RunNotFoundError:
            names = []  # a new logdir: nothing there yet
        events = _event_names(names)
        state = read_bytes(join(self.target, STATE_FILE)).decode("utf-8", "replace") if STATE_FILE in names else None
        named = _named_events(state)
        if named is not None and not set(named) <= set(events):
            self.notes.append(
                f"{self.target}: the export state names event file(s) that are gone ({', '.join(sorted(set(named) - set(events)))}: "
                "an export was interrupted while installing); exporting the whole run"
            )
            state = None
        elif named is not None and set(events) - set(named):
            orphans = sorted(set(events) - set(named))
            for name in orphans:
                remove(join(self.target, name))
            events = [n for n in events if n in named]
            self.notes.append(
                f"{self.target}: removed {len(orphans)} event file(s) an interrupted export had uploaded but not "
                f"recorded ({', '.join(orphans)})"
            )
        self._before = events
        self._state = state
        if state is not None:
            (self.staging / STATE_FILE).write_text(state, encoding="utf-8")
        for name in events:  # stand-ins: the local export sees them, lists them, sorts after them, removes them
            (self.staging / name).touch()

    def install(self) -> Location | None:
        """Upload the new event file(s), remove the replaced ones, write the state last; the new event file."""
        after = _event_names([p.name for p in self.staging.iterdir()])
        new = [n for n in after if n not in self._before]
        gone = [n for n in self._before if n not in after]
        for name in new:
            put_file(self.staging / name, join(self.target, name), retry=self.retry, **_multipart(self.target))
        for name in gone:
            remove(join(self.target, name))
        state_path = self.staging / STATE_FILE
        if state_path.exists() and (new or gone):
            state = json.loads(state_path.read_text(encoding="utf-8"))
            state[EVENTS_KEY] = after
            put_bytes(join(self.target, STATE_FILE), json.dumps(state, sort_keys=True).encode(), retry=self.retry)
        return join(self.target, new[-1]) if new else None


def _multipart(target: Location) -> dict[str, int]:
    """Part size and parts in flight of an event file's upload, where the store takes them (s3fs)."""
    if target.protocol in ("s3", "s3a"):
        return {"part_size": EVENT_PART_SIZE, "concurrency": EVENT_PARTS_IN_FLIGHT}
    return {}


def _named_events(state: str | None) -> list[str] | None:
    """The event files a remote state names; None when there is no usable state or it names none (older exports)."""
    if state is None:
        return None
    try:
        names = json.loads(state).get(EVENTS_KEY)
    except (ValueError, AttributeError):
        return None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return None
    return names


def upload_tree(staging: Path, files: Sequence[Path], target: Location, *, retry: RetryPolicy = DEFAULT_RETRY
                ) -> list[Location]:
    """Each of ``files`` (under ``staging``) uploaded whole to the same relative name under ``target``, a few at once."""
    destinations = [join(target, f.relative_to(staging).as_posix()) for f in files]
    with concurrent.futures.ThreadPoolExecutor(UPLOAD_THREADS) as pool:
        for future in [pool.submit(put_file, f, d, retry=retry) for f, d in zip(files, destinations, strict=True)]:
            future.result()
    return destinations
