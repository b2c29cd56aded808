"""The renderer: one example's arrays → one RGB picture (numpy + Pillow only, no I/O).

Inputs are never modified. Modules: ``image`` (where an image is normalised),
``boxes`` (where a box format is converted), ``masks``, ``text``, ``colors``
and ``compose`` (``render_example``, ``render_grid``, ``render_confusion_matrix``).

>>> import numpy as np
>>> render_example({"images": np.zeros((64, 48, 3), np.float32)}).size
(144, 192)
"""

from .boxes import BoxMatch, iou_matrix, match_boxes, to_pixel_xyxy, to_pixel_xyxy_keep
from .colors import class_color
from .compose import RenderOptions, render_confusion_matrix, render_example, render_grid
from .image import to_rgb_uint8
from .masks import blend_mask

__all__ = [
    "BoxMatch",
    "RenderOptions",
    "blend_mask",
    "class_color",
    "iou_matrix",
    "match_boxes",
    "render_confusion_matrix",
    "render_example",
    "render_grid",
    "to_pixel_xyxy",
    "to_pixel_xyxy_keep",
    "to_rgb_uint8",
]
