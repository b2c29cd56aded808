"""A real TensorBoard server shows what --changes wrote: the Markdown tables in its text plugin,
the changes/ images and the tag descriptions on their cards.

Started as in ``test_tensorboard_server``: 127.0.0.1, a free port, its own log file.
"""

from __future__ import annotations

import io
import json
import urllib.parse
import urllib.request

import pytest
from PIL import Image
from runs import write_outcomes

from exporter.api import ExportOptions, export

from .servers import tensorboard_server, until

pytestmark = pytest.mark.tensorboard_server
pytest.importorskip("tensorboard")

LABELS = [0, 1, 2, 0, 1, 2]
PREDS = {100: [0, 0, 2, 1, 1, 2], 200: [0, 1, 2, 0, 2, 2]}  # id001, id003 fixed; id004 broken
IDS = ["cat-1", "dog|2", "bird-3", "cat_4", "dog<5>", "bird-6"]  # a pipe and angle brackets must not break the table


def _get_json(url: str, timeout: float = 10.0):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("tb")
    write_outcomes(root / "shards", PREDS, LABELS, ids=IDS)
    logdir = root / "logs"
    report = export(root / "shards", logdir / "eval", ExportOptions(changes=True, group_tags="class"))
    with tensorboard_server(logdir, root / "tensorboard.log") as base:
        yield {"base": base, "report": report}


def test_text_plugin_serves_the_summary_tables_as_html_tables(server):
    base = server["base"]
    tags = until(lambda: _get_json(base + "/data/plugin/text/tags").get("eval", []), lambda t: len(t) >= 2)
    assert {"summary/changes", "summary/worst"} <= set(tags)
    query = urllib.parse.urlencode({"run": "eval", "tag": "summary/changes"})
    entries = _get_json(f"{base}/data/plugin/text/text?{query}")
    assert [e["step"] for e in entries] == [200]
    html = entries[0]["text"]
    assert "<table>" in html and "<th" in html
    assert "2 fixed, 1 broken" in html
    # rows: header + cat (fixed cat_4), dog (fixed dog|2, broken dog<5>), total; the ids survive escaping
    assert html.count("<tr>") == 4
    assert "dog|2" in html and "dog&lt;5&gt;" in html and "cat_4" in html
    query = urllib.parse.urlencode({"run": "eval", "tag": "summary/worst"})
    worst = until(lambda: _get_json(f"{base}/data/plugin/text/text?{query}"), lambda w: len(w) >= 2)
    assert [e["step"] for e in worst] == [100, 200]
    assert "<table>" in worst[1]["text"] and "dog&lt;5&gt;" in worst[1]["text"]


def test_images_plugin_lists_changes_and_grouped_tags_with_their_descriptions(server):
    base = server["base"]
    tags = until(lambda: _get_json(base + "/data/plugin/images/tags").get("eval", {}), lambda t: len(t) >= 9)
    changes = sorted(t for t in tags if t.startswith("changes/"))
    assert len(changes) == 3 and any(t.startswith("changes/broken/dog_5_") for t in changes)
    assert "examples/cat/cat-1" in tags and "examples/bird/bird-3" in tags
    assert "Left: the earlier checkpoint" in tags[changes[0]]["description"]
    assert "Grouped under" in tags["examples/cat/cat-1"]["description"]
    query = urllib.parse.urlencode({"run": "eval", "tag": changes[0]})
    entries = _get_json(f"{base}/data/plugin/images/images?{query}")
    assert [e["step"] for e in entries] == [200]  # at the later step only
    with urllib.request.urlopen(f"{base}/data/plugin/images/individualImage?{entries[0]['query']}", timeout=10) as resp:
        image = Image.open(io.BytesIO(resp.read()))
        image.load()
    assert image.width > 2 * 128  # two panels side by side
