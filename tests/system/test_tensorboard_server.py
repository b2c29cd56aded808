"""A real TensorBoard server on 127.0.0.1 shows what the exporter wrote; headless Chromium sees it.

Marked ``tensorboard_server`` but run by ``make test``. The screenshot part needs Debian's
``chromium`` (``make test`` installs it where apt-get and root are available) and is skipped
without it.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import urllib.parse
import urllib.request

import numpy as np
import pytest
from PIL import Image
from runs import CLASSIFICATION, write_run

from exporter.api import ExportOptions, export

from .servers import tensorboard_server, until

pytestmark = pytest.mark.tensorboard_server
pytest.importorskip("tensorboard")

IDS = ["cat-1", "dog-2", "bird-3"]


def _get(url: str, timeout: float = 10.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("tb")
    write_run(
        root / "shards",
        steps=(100, 200),
        class_names=["cat", "dog", "bird"],
        ids=IDS,
        image_shape=(40, 60),
        fields=CLASSIFICATION + ("boxes", "box_labels", "box_scores"),
    )
    logdir = root / "logs"
    report = export(root / "shards", logdir / "eval", ExportOptions())
    with tensorboard_server(logdir, root / "tensorboard.log", "--samples_per_plugin", "images=100") as base:
        yield {"base": base, "report": report, "logdir": logdir}


def test_http_api_lists_tags_steps_and_serves_decodable_images(server):
    base = server["base"]
    assert "eval" in json.loads(_get(base + "/data/runs"))
    tags = until(lambda: json.loads(_get(base + "/data/plugin/images/tags")).get("eval", {}), lambda t: len(t) >= len(IDS))
    for example_id in IDS:
        assert f"examples/{example_id}" in tags
    query = urllib.parse.urlencode({"run": "eval", "tag": "examples/dog-2"})
    entries = until(lambda: json.loads(_get(f"{base}/data/plugin/images/images?{query}")), lambda e: len(e) >= 2)
    assert [e["step"] for e in entries] == [100, 200]
    for entry in entries:
        data = _get(f"{base}/data/plugin/images/individualImage?{entry['query']}")
        image = Image.open(io.BytesIO(data))
        image.load()
        # 40x60 inputs are upscaled x4 to a 160-pixel short side (min_size 128), plus the caption strip
        assert image.size[0] == 240 and image.size[1] >= 160


def test_chromium_screenshot_of_the_images_dashboard_is_not_blank(server, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (make test installs it when it can)")
    shot = tmp_path / "dashboard.png"
    cmd = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,1000", "--hide-scrollbars",
        "--virtual-time-budget=15000", f"--screenshot={shot}", server["base"] + "/?darkMode=false#images",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert shot.exists(), proc.stderr[-2000:]
    image = np.asarray(Image.open(shot).convert("RGB"))
    assert image.shape[:2] == (1000, 1280)
    colours = np.unique(image.reshape(-1, 3)[::7], axis=0)
    assert len(colours) > 200, f"screenshot looks blank: {len(colours)} colours"
    # the dashboard shows the exported images: random-noise pixels make many distinct colours in
    # the rows where image cards sit, far more than TensorBoard's flat UI chrome has
    busy_rows = sum(len(np.unique(row[::3], axis=0)) > 100 for row in image[::10])
    assert busy_rows > 5, "no image content visible on the images dashboard"
