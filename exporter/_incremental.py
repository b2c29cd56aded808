"""What an earlier export wrote into a logdir, and what an ``--incremental`` export does next.

The state file (``.summary-exporter-state.json`` in the logdir, written in the
same journaled installation as the event file) lists the shards exported, by
dump and index, with the step of each, and a digest of the options that shape
the output. An incremental export appends a new event file when every new
shard has a step above the last one exported; when an older step, or the same
one, arrives late, when shards went away or the options changed, it rewrites
the whole run instead: TensorBoard purges the events after a step that is
written again, so steps only ever go up within a run.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from pathlib import Path

from .shards import Shard
from .tensorboard import EVENT_FILE_GLOB

STATE_FILE = ".summary-exporter-state.json"
STATE_VERSION = 1


class ExportMode(str, enum.Enum):
    """What an export did to its logdir."""

    FULL = "full"  # wrote the whole run, replacing earlier exports
    APPEND = "append"  # added a new event file after the earlier ones (incremental)
    REWRITE = "rewrite"  # incremental could not append: wrote the whole run
    UP_TO_DATE = "up to date"  # incremental found no new shard: wrote nothing

    def __str__(self) -> str:
        return self.value


def shard_key(shard: Shard) -> str:
    """How the state names a shard: its dump and index (a re-dump of a step is a new key)."""
    return f"{shard.meta.dump_id}/{shard.meta.shard_index}"


@dataclasses.dataclass(frozen=True)
class Decision:
    """What an incremental export will do: the mode, the steps to write, and a note for the user."""

    mode: ExportMode
    steps: dict[int, list[Shard]]
    note: str | None = None


@dataclasses.dataclass
class ExportState:
    """What an earlier export wrote into ``logdir``: which shards, up to which step, with which options."""

    logdir: Path
    options_hash: str
    exported: dict[str, int]  # shard key -> step
    previous_hash: str | None

    @classmethod
    def load(cls, logdir: Path, options_hash: str) -> ExportState:
        """The state of ``logdir``; an unreadable or missing state (or no event file) means a full export."""
        exported: dict[str, int] = {}
        previous = None
        try:
            data = json.loads((logdir / STATE_FILE).read_text())
            if data.get("version") == STATE_VERSION and any(logdir.glob(EVENT_FILE_GLOB)):
                previous = str(data["options"])
                exported = {str(k): int(v) for k, v in data["shards"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass  # no usable state: the export is a full one
        return cls(logdir, options_hash, exported, previous)

    def decide(self, steps: dict[int, list[Shard]]) -> Decision:
        """Append, rewrite or nothing to do, for the shards of ``steps`` (ascending)."""
        if self.previous_hash is None:
            return Decision(ExportMode.FULL, steps)
        if self.previous_hash != self.options_hash:
            return Decision(ExportMode.REWRITE, steps, "export options changed since the last export: rewriting the whole run")
        new = {step: [s for s in shards if shard_key(s) not in self.exported] for step, shards in steps.items()}
        new = {step: shards for step, shards in new.items() if shards}
        if not new and set(self.exported) == {shard_key(s) for ss in steps.values() for s in ss}:
            return Decision(ExportMode.UP_TO_DATE, {})
        last = max(self.exported.values(), default=-1)
        if new and min(new) > last:
            return Decision(ExportMode.APPEND, new)
        late = min(new) if new else None
        why = f"step {late} arrived after step {last} was exported" if late is not None else "shards were removed"
        return Decision(ExportMode.REWRITE, steps, f"{why}: rewriting the whole run so TensorBoard never purges later steps")

    def after(self, steps: dict[int, list[Shard]], *, replace: bool) -> dict[str, str]:
        """The state file after an export of ``steps`` (added to the earlier ones unless ``replace``).

        As ``{file name: text}``, for ``EventWriter.install(also=...)``: the state
        is written in the same journaled installation as the event file, so a
        crash can never leave an appended file that the state does not know.
        """
        exported = {} if replace else dict(self.exported)
        exported.update({shard_key(s): step for step, shards in steps.items() for s in shards})
        state = {"version": STATE_VERSION, "options": self.options_hash, "shards": exported}
        return {STATE_FILE: json.dumps(state, sort_keys=True)}
