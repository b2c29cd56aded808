"""A browser decodes the default PNG writer's files pixel-exact (what the TensorBoard dashboard shows).

Headless Chromium (Debian's ``chromium``; skipped without it) loads each PNG as an ``<img>``, draws it on a
canvas and reports a checksum of ``getImageData``: it must equal the checksum of the pixels that were encoded.
Images are opaque, so the canvas's premultiplied alpha cannot round anything.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess

import numpy as np
import pytest

from exporter import png

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")


def _rgba(a: np.ndarray) -> np.ndarray:
    """What a canvas holds for ``a``: RGBA, grey copied to R, G and B."""
    if a.ndim == 2:
        a = a[:, :, None]
    if a.shape[2] in (1, 2):
        grey, alpha = a[:, :, :1], a[:, :, 1:] if a.shape[2] == 2 else np.full(a.shape[:2] + (1,), 255, np.uint8)
        a = np.concatenate([grey, grey, grey, alpha], axis=2)
    elif a.shape[2] == 3:
        a = np.concatenate([a, np.full(a.shape[:2] + (1,), 255, np.uint8)], axis=2)
    return a


def _checksum(rgba: np.ndarray) -> int:
    """sum(byte * (i % 251 + 1)): exact in a JavaScript Number, and any single changed byte changes it."""
    flat = rgba.reshape(-1).astype(np.int64)
    return int((flat * (np.arange(flat.size) % 251 + 1)).sum())


def _cases() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    photo = np.clip(np.add.outer(np.arange(810), np.arange(1024))[:, :, None] // 7
                    + rng.normal(0, 6, (810, 1024, 3)), 0, 255).astype(np.uint8)
    grey = photo[:, :, 1]
    opaque = np.full(grey.shape, 255, np.uint8)
    return {
        "RGB 1024x810": photo,
        "RGBA 1024x810": np.dstack([photo, opaque]),
        "L 1024x810": grey,
        "LA 1024x810": np.dstack([grey, opaque]),
        "RGB 1x1": photo[:1, :1],
        "RGB 1x37": photo[:1, :37],
        "RGB 37x1": photo[:37, :1],
        "L 13x7": grey[:7, :13],
    }


def test_chromium_decodes_every_colour_type_pixel_exact(tmp_path):
    items = []
    for name, a in _cases().items():
        for deflate in ["zlib"] + (["isal"] if png.isal_available() else []):
            data = png.encode_png(a, deflate=deflate)
            items.append({"name": f"{name} {deflate}", "want": _checksum(_rgba(a)),
                          "src": "data:image/png;base64," + base64.b64encode(data).decode()})
    images = "".join(f'<img id="i{k}" src="{item["src"]}">' for k, item in enumerate(items))
    names = json.dumps([it["name"] for it in items])
    page = tmp_path / "page.html"
    page.write_text(f"""<!doctype html><html><body><pre id="out">pending</pre>{images}<script>
window.addEventListener('load', () => {{
  const out = {names}.map((name, k) => {{
    const img = document.getElementById('i' + k);
    if (!img.complete || !img.naturalWidth) return [name, -1];
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    const cx = canvas.getContext('2d'); cx.drawImage(img, 0, 0);
    const p = cx.getImageData(0, 0, canvas.width, canvas.height).data;
    let sum = 0;
    for (let i = 0; i < p.length; i++) sum += p[i] * (i % 251 + 1);
    return [name, sum];
  }});
  document.querySelectorAll('img').forEach(im => im.remove());
  document.getElementById('out').textContent = JSON.stringify(out);
}});
</script></body></html>""")
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
           "--disable-background-networking", "--disable-component-update", f"--user-data-dir={tmp_path / 'profile'}",
           "--dump-dom", page.as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=180).stdout
    start = dom.index('<pre id="out">') + len('<pre id="out">')
    got = dict(json.loads(dom[start : dom.index("</pre>", start)]))
    assert got == {it["name"]: it["want"] for it in items}
