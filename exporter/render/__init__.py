"""The renderer: one example's arrays → one RGB picture (numpy + Pillow only, no I/O).

Reading and drawing are two steps, with two option records::

    arrays ──read_example(arrays, ReadOptions)──▶ Example ──draw_example(example, RenderOptions)──▶ image

``render_example(arrays, style, read)`` does both. Inputs are never modified.
The renderer depends on numpy, Pillow and the package's ``schema``,
``_checks``, ``errors`` and ``odapi`` only. Modules:

* ``options``   ``ReadOptions`` (how to read the arrays) and ``RenderOptions`` (drawing style only);
* ``example``   ``Example`` and ``Boxes``, the checked record of one example, and ``read_example``;
* ``compose``   ``draw_example`` and ``render_example``: panels, boxes, masks, labels on one canvas;
* ``captions``  the caption strip, its word wrap, the top-k bars, how scores are written;
* ``sheets``    ``render_grid``, ``side_by_side``, ``thumbnail`` / ``GRID_CELL`` and ``render_confusion_matrix``;
* ``image``     where an image is normalised: any layout, dtype and range → (H, W, 3) uint8 RGB;
* ``boxes``     where a box format is converted; IoU and greedy matching;
* ``classes``   how a class id is read and the name it shows as;
* ``masks``     class maps read and blended, instance masks drawn; ``keypoints`` dots and skeletons;
* ``text``      fonts and cached labels; ``colors`` every colour.

>>> import numpy as np
>>> render_example({"images": np.zeros((64, 48, 3), np.float32)}).size
(144, 192)
"""

from .boxes import BoxMatch, box_count, drawn_order, iou_matrix, match_boxes, to_pixel_xyxy, to_pixel_xyxy_keep
from .colors import class_color
from .compose import draw_example, render_example
from .example import Boxes, Example, read_example
from .image import to_rgb_uint8
from .masks import blend_mask
from .options import ReadOptions, RenderOptions
from .sheets import GRID_CELL, render_confusion_matrix, render_grid, side_by_side, thumbnail

__all__ = [
    "BoxMatch",
    "Boxes",
    "Example",
    "GRID_CELL",
    "ReadOptions",
    "RenderOptions",
    "blend_mask",
    "box_count",
    "class_color",
    "draw_example",
    "drawn_order",
    "iou_matrix",
    "match_boxes",
    "read_example",
    "render_confusion_matrix",
    "render_example",
    "render_grid",
    "side_by_side",
    "thumbnail",
    "to_pixel_xyxy",
    "to_pixel_xyxy_keep",
    "to_rgb_uint8",
]
