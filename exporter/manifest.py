"""The dump manifest: the small JSON a ``ShardWriter`` leaves beside its shards when it closes.

Written last (after every shard), so its presence says the dump is complete;
``inspect`` reads it to report dumps whose writer never closed or whose shards
went missing. Both sides live here.

>>> Manifest("20261126T041113.843355Z-84d63d", 100, ["a-00000.npz"], 32, 0, 32).filename
'20261126T041113.843355Z-84d63d.done.json'
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ._files import atomic_write
from .errors import StorageError
from .schema import manifest_filename
from .storage import Location, join, put_bytes, read_bytes

if TYPE_CHECKING:
    from .shards import Shard


@dataclasses.dataclass(frozen=True)
class Manifest:
    """What one closed dump holds: its shard file names and how many examples were seen, kept, lost."""

    dump_id: str
    step: int
    shards: list[str]
    examples: int
    dropped: int
    seen: int

    @property
    def filename(self) -> str:
        return manifest_filename(self.dump_id)

    def write(self, step_dir: str | os.PathLike | Location) -> Path | Location:
        """Write the manifest atomically into ``step_dir`` (the folder of its shards; on a store, one PUT)."""
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        if isinstance(step_dir, Location) and not step_dir.is_local:
            return put_bytes(join(step_dir, self.filename), text.encode())
        return atomic_write(Path(step_dir.path if isinstance(step_dir, Location) else step_dir) / self.filename, text)

    @classmethod
    def read(cls, path: str | os.PathLike | Location) -> Manifest:
        """Read a manifest (a file or a URL's Location); ValueError (or OSError) when it is unreadable."""
        if isinstance(path, Location):
            data = json.loads(read_bytes(path))
        else:
            data = json.loads(Path(path).read_text())
        if not isinstance(data, dict) or not isinstance(data.get("shards"), list):
            raise ValueError(f"{path}: not a dump manifest")
        return cls(
            dump_id=str(data.get("dump_id", "")),
            step=int(data.get("step", -1)),
            shards=[str(s) for s in data["shards"]],
            examples=int(data.get("examples", 0)),
            dropped=int(data.get("dropped", 0)),
            seen=int(data.get("seen", 0)),
        )


def incomplete_dumps(shards: Iterable[Shard]) -> list[str]:
    """One line per dump whose writer never wrote its manifest, or whose shards do not match it."""
    groups: dict[tuple[Path | Location, str], list[Shard]] = {}
    for s in shards:
        groups.setdefault((s.path.parent, s.meta.dump_id), []).append(s)
    out = []
    for (folder, dump_id), group in sorted(groups.items(), key=lambda kv: (kv[1][0].step, kv[0][1])):
        step = group[0].step
        path = folder / manifest_filename(dump_id)
        missing_note = f"step {step}, dump {dump_id}: no {path.name} (the writer did not close; shards may be missing)"
        if isinstance(path, Path) and not path.is_file():
            out.append(missing_note)
            continue
        try:
            listed = set(Manifest.read(path).shards)  # on a store: one small GET, no listing
        except StorageError:
            raise  # the store failed, not the dump
        except FileNotFoundError:
            out.append(missing_note)
            continue
        except (OSError, ValueError, TypeError):
            out.append(f"step {step}, dump {dump_id}: unreadable {path.name}")
            continue
        missing = sorted(listed - {s.path.name for s in group})
        if missing:
            out.append(f"step {step}, dump {dump_id}: {len(missing)} shard(s) listed in {path.name} are missing")
    return out
