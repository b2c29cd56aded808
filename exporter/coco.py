"""COCO files → shards: what ``summary-exporter import-coco GT.json RESULTS.json IMAGES_DIR SHARDS`` runs.

Detectron2, MMDetection, YOLO tools and pycocotools users all end an evaluation
with the same two files: the COCO ground truth (``images``, ``annotations``,
``categories``) and a results list of ``{image_id, category_id, bbox [x, y, w, h],
score}``, optionally with ``segmentation`` (RLE or polygons) and ``keypoints``
(``[x1, y1, s1, ...]``). ``import_coco`` reads both with the image files and
writes one dump of format 1.1 shards:

* boxes stay COCO's pixel ``[x, y, w, h]``: ``box_format="xywh"``, ``box_coords="pixels"``;
* categories, sorted by id, become the class indices 0..K-1 and ``class_names``;
  the shards' user metadata ``coco.category_ids`` maps an index back to its id;
* ``gt_boxes`` / ``gt_box_labels`` from the annotations, ``boxes`` /
  ``box_labels`` / ``box_scores`` from the results (in file order per image);
* where present, ``gt_instance_masks`` / ``instance_masks`` (decoded with
  pycocotools: ``pip install 'summary-exporter[coco]'``), ``gt_keypoints``
  (NaN where COCO's visibility is 0) and ``keypoints`` / ``keypoint_scores``
  (a result's third keypoint value is its score), with ``keypoint_names`` and
  ``keypoint_edges`` from the category's ``keypoints`` and ``skeleton``;
* images decoded with Pillow as RGB (as stored: no EXIF rotation, like the
  annotations); ``ids`` are the file names, the extra field ``coco_image_id``
  the image ids; the extras ``gt_iscrowd`` and ``gt_keypoint_visibility`` keep
  what the canonical fields have no place for.

Images are grouped by size (a shard holds one image size) and packed into
shards of at most ``max_shard_bytes`` of arrays.

Problems are found before anything is written wherever the files allow: a
missing image, a malformed annotation or result, an unknown image or category
id. Without ``skip_bad`` the first one stops the import (``DatasetError``, one
line naming the file and the entry); with it, an image with a bad file or bad
ground truth is left out whole, a bad result entry alone, and each is listed.

>>> report = import_coco("instances_val2017.json", "detections.json", "val2017", "eval_shards", step=90000)  # doctest: +SKIP
>>> print(report)                                                                                             # doctest: +SKIP
imported 5000 images (36781 ground-truth boxes, 500000 detections) as 213 shard(s) in eval_shards/step-000000090000
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

from ._checks import check_bool, check_int
from .errors import DatasetError, require
from .schema import manifest_filename
from .storage import Location, remove
from .writer import ShardWriter

#: COCO's 17 person keypoints, in the order of its annotations and of torchvision's Keypoint R-CNN.
PERSON_KEYPOINTS: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
)
#: COCO's person skeleton as 0-based keypoint pairs (COCO's json counts from 1).
PERSON_SKELETON: tuple[tuple[int, int], ...] = tuple(
    (a - 1, b - 1)
    for a, b in (
        (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8), (7, 9), (8, 10),
        (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
    )
)

#: The alphabet of a compressed RLE (6 bits per character from '0'); the last character ends a number.
_RLE_STRING = re.compile(r"[0-o]*")
#: Most examples in one shard (memory is bounded by ``max_shard_bytes`` first).
_MAX_EXAMPLES = 256


@dataclasses.dataclass(frozen=True)
class CocoImport:
    """What ``import_coco`` wrote, and what it left out (one line each)."""

    step_dir: Path | Location
    shards: list[Path | Location]
    images: int
    gt_boxes: int
    detections: int
    skipped: list[str]

    def __str__(self) -> str:
        return (
            f"imported {self.images} images ({self.gt_boxes} ground-truth boxes, {self.detections} detections) "
            f"as {len(self.shards)} shard(s) in {self.step_dir}"
            + (f"; skipped {len(self.skipped)} bad entries" if self.skipped else "")
        )


@dataclasses.dataclass
class _Object:
    """One annotation or result, checked: class index, [x, y, w, h], and what else it has."""

    label: int
    bbox: tuple[float, float, float, float]
    score: float = math.nan
    segmentation: Any = None
    keypoints: np.ndarray | None = None  # (P, 3): x, y and visibility (annotations) or score (results)
    iscrowd: bool = False
    where: str = ""  # "GT.json: annotation 17 (image 42)", for messages


@dataclasses.dataclass
class _Image:
    id: int
    file_name: str
    path: Path
    width: int
    height: int
    gt: list[_Object] = dataclasses.field(default_factory=list)
    dt: list[_Object] = dataclasses.field(default_factory=list)

    def nbytes(self, gt_masks: bool, dt_masks: bool) -> int:
        """The arrays this image adds to a shard: pixels, and one bool plane per mask."""
        planes = len(self.gt) * gt_masks + len(self.dt) * dt_masks
        return self.height * self.width * (3 + planes)


class _Problems:
    """The first problem raises, unless bad entries are skipped: then each is kept as one line."""

    def __init__(self, skip_bad: bool):
        self.skip_bad = skip_bad
        self.lines: list[str] = []

    def add(self, line: str) -> None:
        if not self.skip_bad:
            raise DatasetError(line)
        self.lines.append(line.replace("\n", "\\n"))


def import_coco(
    gt: str | os.PathLike,
    results: str | os.PathLike,
    images_dir: str | os.PathLike,
    shards: str | os.PathLike,
    *,
    step: int = 0,
    skip_bad: bool = False,
    compress: bool = True,
    max_shard_bytes: int = 64 << 20,
) -> CocoImport:
    """Write the COCO ground truth ``gt``, the detections ``results`` and the images as one dump at ``step``.

    ``compress`` deflates the shards (masks shrink about 50-fold). Raises
    ``DatasetError`` for the first bad entry (unless ``skip_bad``), and
    ``MissingDependencyError`` when masks need pycocotools and it is missing.

    >>> import_coco("gt.json", "results.json", "images", "eval_shards", step=1200, skip_bad=True)  # doctest: +SKIP
    """
    step = check_int(step, "step", minimum=0)
    skip_bad = check_bool(skip_bad, "skip_bad")
    check_bool(compress, "compress")
    check_int(max_shard_bytes, "max_shard_bytes", minimum=1)
    gt_path, results_path, root = Path(gt), Path(results), Path(images_dir)
    problems = _Problems(skip_bad)
    gt_json = _load_json(gt_path, dict, "a COCO ground-truth object with images, annotations and categories")
    results_json = _load_json(results_path, list, "a COCO results list of {image_id, category_id, bbox, score}")
    if not root.is_dir():
        raise DatasetError(f"{root}: no such images folder")
    categories, names = _categories(gt_path, gt_json)
    keypoint_names, edges = _keypoint_meta(gt_path, gt_json)
    images, skipped = _images(gt_path, gt_json, root, problems)
    num_keypoints = None if keypoint_names is None else len(keypoint_names)
    anns = gt_json.get("annotations", [])
    if not isinstance(anns, list):
        raise DatasetError(f"{gt_path}: 'annotations' must be a list")
    for result, path, entries in ((False, gt_path, anns), (True, results_path, results_json)):
        for i, raw in enumerate(entries):
            num_keypoints = _add_entry(
                images, skipped, problems, raw, f"{path}: {'result' if result else 'annotation'} {i}",
                categories=categories, num_keypoints=num_keypoints, result=result, source=gt_path.name,
            )
    ordered = sorted(images.values(), key=lambda im: (im.height, im.width))  # stable: file order within a size
    if not ordered:
        raise DatasetError(
            f"nothing imported: {gt_path} has no images left to import"
            + (f" ({len(problems.lines)} bad entries skipped, the first: {problems.lines[0]})" if problems.lines else "")
        )
    has = {
        what: any(getattr(o, attr) is not None for im in ordered for o in getattr(im, side))
        for what, attr, side in (
            ("gt_masks", "segmentation", "gt"), ("masks", "segmentation", "dt"),
            ("gt_keypoints", "keypoints", "gt"), ("keypoints", "keypoints", "dt"),
        )
    }
    mask_api = require("pycocotools.mask", "coco") if has["gt_masks"] or has["masks"] else None
    if num_keypoints is None or not (has["gt_keypoints"] or has["keypoints"]):
        keypoint_names = edges = None
    writer = ShardWriter(
        shards,
        step=step,
        class_names=names,
        box_format="xywh",
        box_coords="pixels",
        keypoint_names=keypoint_names,
        keypoint_edges=edges,
        examples_per_shard=_MAX_EXAMPLES,
        max_shard_bytes=max_shard_bytes,
        compress=compress,
        meta={"coco": {"category_ids": list(categories), "gt_file": gt_path.name, "results_file": results_path.name}},
    )
    written = gt_boxes = detections = 0
    try:
        for batch in _batches(ordered, has["gt_masks"], has["masks"], max_shard_bytes):
            arrays = []
            for image in batch:
                try:
                    arrays.append(_image_fields(image, mask_api, has, num_keypoints))
                except ValueError as exc:
                    problems.add(str(exc))
            if not arrays:
                continue
            writer.add(**_stack(arrays))
            written += len(arrays)
            gt_boxes += sum(len(a["gt_boxes"]) for a in arrays)
            detections += sum(len(a["boxes"]) for a in arrays)
        if not written:
            raise DatasetError(f"nothing imported: every image was skipped (the first: {problems.lines[0]})")
        writer.close()
    except BaseException:
        _discard(writer)  # a half import must not look like a finished dump
        raise
    return CocoImport(writer.step_dir, list(writer.paths), written, gt_boxes, detections, problems.lines)


def _add_entry(
    images: dict[int, _Image],
    skipped: set[int],
    problems: _Problems,
    raw: Any,
    where: str,
    *,
    categories: Mapping[int, int],
    num_keypoints: int | None,
    result: bool,
    source: str,
) -> int | None:
    """Check one annotation or result and file it under its image; returns the keypoint count it fixed.

    A bad annotation takes its image out (its ground truth would be incomplete:
    wrong misses, wrong metrics); a bad result is left out alone. Entries of an
    image already skipped go with it, without a line each.
    """
    if not isinstance(raw, Mapping):
        problems.add(f"{where}: must be an object, got {type(raw).__name__}")
        return num_keypoints
    if not result and _is_int(raw.get("id")):
        where = f"{where.rsplit(' ', 1)[0]} {raw['id']}"  # annotations are known by their id
    image_id = raw.get("image_id")
    if _is_int(image_id) and image_id in skipped:
        return num_keypoints
    image = images.get(image_id) if _is_int(image_id) else None
    if image is None:
        problems.add(f"{where}: image_id {image_id!r} is not an image of {source}")
        return num_keypoints
    where += f" (image {image.id})"
    try:
        obj, num_keypoints = _object(raw, image, categories, num_keypoints, result=result, source=source, where=where)
    except ValueError as exc:
        problems.add(f"{where}: {exc}")
        if not result:
            del images[image.id]
            skipped.add(image.id)
        return num_keypoints
    (image.dt if result else image.gt).append(obj)
    return num_keypoints


def _load_json(path: Path, kind: type, what: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise DatasetError(f"{path}: not valid JSON ({exc})") from None
    if kind is list and isinstance(data, dict) and isinstance(data.get("annotations"), list):
        data = data["annotations"]  # a results file written as a ground-truth-like object
    if not isinstance(data, kind):
        raise DatasetError(f"{path}: expected {what}, got a JSON {type(data).__name__}")
    return data


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _categories(path: Path, gt: Mapping[str, Any]) -> tuple[dict[int, int], list[str]]:
    """COCO category id → contiguous class index (ids in ascending order), and the class names."""
    cats = gt.get("categories")
    if not isinstance(cats, list) or not cats:
        raise DatasetError(f"{path}: 'categories' must be a non-empty list of {{id, name}}")
    by_id: dict[int, str] = {}
    for i, c in enumerate(cats):
        if not isinstance(c, Mapping) or not _is_int(c.get("id")) or not isinstance(c.get("name"), str):
            raise DatasetError(f"{path}: category {i}: must be an object with an integer 'id' and a string 'name'")
        if c["id"] in by_id:
            raise DatasetError(f"{path}: category {i}: id {c['id']} is used twice")
        by_id[c["id"]] = c["name"]
    ids = sorted(by_id)
    return {cid: k for k, cid in enumerate(ids)}, [by_id[cid] for cid in ids]


def _keypoint_meta(path: Path, gt: Mapping[str, Any]) -> tuple[list[str] | None, list[list[int]] | None]:
    """The keypoint names and 0-based skeleton of the categories that have keypoints (one list for all)."""
    found: list[tuple[int, list[str], list[list[int]]]] = []
    for c in gt["categories"]:
        names = c.get("keypoints")
        if not names:
            continue
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise DatasetError(f"{path}: category {c['id']}: 'keypoints' must be a list of names")
        skeleton = c.get("skeleton") or []
        if not isinstance(skeleton, list) or not all(
            isinstance(e, list) and len(e) == 2 and all(_is_int(i) and 1 <= i <= len(names) for i in e) for e in skeleton
        ):
            raise DatasetError(
                f"{path}: category {c['id']}: 'skeleton' must be [a, b] pairs of 1-based keypoint numbers "
                f"(1..{len(names)})"
            )
        found.append((c["id"], names, [[a - 1, b - 1] for a, b in skeleton]))
    if not found:
        return None, None
    first = found[0]
    for other in found[1:]:
        if other[1] != first[1]:
            raise DatasetError(
                f"{path}: categories {first[0]} and {other[0]} name different keypoints; "
                "a shard holds one keypoint list"
            )
    return first[1], first[2]


def _images(path: Path, gt: Mapping[str, Any], root: Path, problems: _Problems) -> tuple[dict[int, _Image], set[int]]:
    """The ground truth's images by id, each checked (id, file name inside ``root``, size, file present), and the skipped ids."""
    entries = gt.get("images")
    if not isinstance(entries, list):
        raise DatasetError(f"{path}: 'images' must be a list of {{id, file_name, width, height}}")
    images: dict[int, _Image] = {}
    skipped: set[int] = set()
    base = root.resolve()
    for i, raw in enumerate(entries):
        if not isinstance(raw, Mapping) or not _is_int(raw.get("id")):
            problems.add(f"{path}: image {i}: must be an object with an integer 'id'")
            continue
        image_id = raw["id"]
        where = f"{path}: image {image_id}"
        if image_id in images or image_id in skipped:
            problem: str | None = f"{where}: id is used twice"
            images.pop(image_id, None)  # neither entry can be trusted
        else:
            problem = _image_problem(raw, root, base, where)
        if problem is not None:
            problems.add(problem)
            skipped.add(image_id)
            continue
        name = raw.get("file_name", str(image_id))
        images[image_id] = _Image(image_id, name, root / name, raw["width"], raw["height"])
    return images, skipped


def _image_problem(raw: Mapping[str, Any], root: Path, base: Path, where: str) -> str | None:
    """What is wrong with one ``images`` entry, or None."""
    image_id = raw["id"]
    name = raw.get("file_name", str(image_id))
    width, height = raw.get("width"), raw.get("height")
    if not isinstance(name, str) or not name:
        return f"{where}: 'file_name' must be a file name, got {name!r}"
    if not (_is_int(width) and _is_int(height) and width > 0 and height > 0):
        return f"{where}: 'width' and 'height' must be positive integers, got {width!r} x {height!r}"
    file = root / name
    resolved = file.resolve()
    if resolved != base and base not in resolved.parents:
        return f"{where}: file_name {name!r} points outside the images folder {root}"
    if not file.is_file():
        return f"{file}: image {image_id}: no such image file in {root}"
    return None


def _object(
    raw: Mapping[str, Any],
    image: _Image,
    categories: Mapping[int, int],
    num_keypoints: int | None,
    *,
    result: bool,
    source: str,
    where: str,
) -> tuple[_Object, int | None]:
    """One annotation or result entry, checked (ValueError says what is wrong), and the keypoint count it set."""
    cid = raw.get("category_id")
    if not _is_int(cid) or cid not in categories:
        raise ValueError(f"category_id {cid!r} is not a category of {source}")
    segmentation = raw.get("segmentation")
    if segmentation is not None and segmentation != []:
        segmentation = _segmentation(segmentation, image)
    else:
        segmentation = None
    keypoints = raw.get("keypoints")
    if keypoints is not None:
        if not isinstance(keypoints, list) or len(keypoints) % 3 or not all(_is_number(v) for v in keypoints):
            raise ValueError("keypoints must be a flat list [x1, y1, v1, x2, y2, v2, ...] of finite numbers")
        if num_keypoints is not None and len(keypoints) != 3 * num_keypoints:
            raise ValueError(f"keypoints hold {len(keypoints) // 3} keypoints, expected {num_keypoints}")
        num_keypoints = len(keypoints) // 3
        keypoints = np.array(keypoints, dtype=np.float64).reshape(-1, 3)
    bbox = raw.get("bbox")
    if bbox is None and result:  # segm or keypoint results may leave the box out, as COCO's loadRes allows
        bbox = _box_of(segmentation, keypoints, image)
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
        raise ValueError(f"bbox must be [x, y, width, height] of 4 finite numbers, got {bbox!r}")
    if bbox[2] < 0 or bbox[3] < 0:
        raise ValueError(f"bbox {bbox!r} has a negative width or height ([x, y, width, height])")
    x, y, w, h = (float(v) for v in bbox)
    obj = _Object(categories[cid], (x, y, w, h), segmentation=segmentation, keypoints=keypoints, where=where)
    if result:
        score = raw.get("score")
        if not _is_number(score):
            raise ValueError(f"score must be a finite number, got {score!r}")
        obj.score = float(score)
    else:
        crowd = raw.get("iscrowd", 0)
        if crowd not in (0, 1) or isinstance(crowd, float):
            raise ValueError(f"iscrowd must be 0 or 1, got {crowd!r}")
        obj.iscrowd = bool(crowd)
    return obj, num_keypoints


def _segmentation(segm: Any, image: _Image) -> Any:
    """A polygon list or an RLE dict, checked so that pycocotools' C code can take it (decoded later).

    pycocotools trusts its input: an RLE string with a character outside its
    alphabet makes it read past the string and corrupt the heap, and a polygon
    point far away makes it allocate without bound. Neither gets that far.
    """
    h, w = image.height, image.width
    if isinstance(segm, list):
        if not all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 and all(_is_number(v) for v in p) for p in segm):
            raise ValueError("segmentation polygons must be lists of at least 3 x, y pairs of finite numbers")
        xs = [v for p in segm for v in p[0::2]]
        ys = [v for p in segm for v in p[1::2]]
        if min(xs) < -w or max(xs) > 2 * w or min(ys) < -h or max(ys) > 2 * h:
            raise ValueError(f"segmentation polygon points lie far outside the {w}x{h} image")
        return segm
    if isinstance(segm, Mapping):
        counts, size = segm.get("counts"), segm.get("size")
        if size != [h, w]:
            raise ValueError(f"segmentation RLE size {size!r} is not the image's [height, width] [{h}, {w}]")
        if isinstance(counts, str):
            runs = _rle_string_counts(counts)
        elif isinstance(counts, list) and all(_is_int(c) and 0 <= c < 2**32 for c in counts):
            runs = np.array(counts, dtype=np.int64)
        else:
            raise ValueError("segmentation RLE 'counts' must be a COCO RLE string or a list of run lengths >= 0")
        if int(runs.sum()) != h * w:  # pycocotools leaves the rest of the mask uninitialised (or writes past it)
            raise ValueError(f"segmentation RLE runs cover {int(runs.sum())} pixels, not height x width = {h * w}")
        return {"counts": runs.tolist(), "size": size}  # uncompressed: pycocotools never parses our strings
    raise ValueError(f"segmentation must be polygons (a list) or an RLE object, got {type(segm).__name__}")


def _rle_string_counts(text: str) -> np.ndarray:
    """The run lengths of a compressed COCO RLE string, decoded as pycocotools' ``rleFrString`` does, but checked.

    Each run is a little-endian number of 5-bit groups, one per character
    (``'0'`` + value, bit 0x20: "more follows", bit 0x10 of the last: negative);
    from the third run on, each adds the run two before it.

    >>> _rle_string_counts("013000").tolist()  # pycocotools' encoding of the 3 x 3 identity
    [0, 1, 3, 1, 3, 1]
    """
    if not _RLE_STRING.fullmatch(text):
        raise ValueError("segmentation RLE 'counts' is not a COCO RLE string (characters '0'..'o')")
    c = np.frombuffer(text.encode("ascii"), dtype=np.uint8).astype(np.int64) - 48
    last = (c & 0x20) == 0  # the character that ends a run
    if c.size and not last[-1]:
        raise ValueError("segmentation RLE 'counts' ends in the middle of a number")
    ends = np.flatnonzero(last)
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
    lengths = ends - starts + 1
    if lengths.size and lengths.max() > 12:  # 12 groups of 5 bits already pass 2**32
        raise ValueError("segmentation RLE 'counts' holds a number too large for a run length")
    k = np.arange(c.size) - np.repeat(starts, lengths)  # each character's group within its number
    x = np.add.reduceat((c & 0x1F) << (5 * k), starts) if c.size else np.zeros(0, np.int64)
    x = np.where(c[ends] & 0x10, x - (np.int64(1) << (5 * lengths)), x)  # sign-extend negatives
    runs = x.copy()
    runs[2::2] = np.cumsum(x[2::2])
    runs[3::2] = x[1] + np.cumsum(x[3::2]) if x.size > 3 else runs[3::2]
    if (runs < 0).any() or (runs >= 2**32).any():
        raise ValueError("segmentation RLE 'counts' decodes to a negative or too large run length")
    return runs


def _box_of(segmentation: Any, keypoints: np.ndarray | None, image: _Image) -> list[float] | None:
    """The [x, y, w, h] COCO's loadRes gives a result without a bbox: its mask's, else its keypoints' extent."""
    if segmentation is not None:
        mask_api = require("pycocotools.mask", "coco")
        box = mask_api.toBbox(_rle(mask_api, segmentation, image))
        return [float(v) for v in np.asarray(box).reshape(4)]
    if keypoints is not None and len(keypoints):
        x, y = keypoints[:, 0], keypoints[:, 1]
        return [float(x.min()), float(y.min()), float(x.max() - x.min()), float(y.max() - y.min())]
    return None


def _rle(mask_api: Any, segmentation: Any, image: _Image) -> Any:
    """pycocotools' one RLE for a polygon list or (checked, uncompressed) run lengths (COCO's annToRLE)."""
    h, w = image.height, image.width
    if isinstance(segmentation, list):
        return mask_api.merge(mask_api.frPyObjects(segmentation, h, w))
    return mask_api.frPyObjects(segmentation, h, w)


def _decode(mask_api: Any, objects: Sequence[_Object], image: _Image) -> np.ndarray:
    """(len(objects), H, W) bool masks; an object without a segmentation gets an empty one."""
    out = np.zeros((len(objects), image.height, image.width), dtype=bool)
    for k, obj in enumerate(objects):
        if obj.segmentation is None:
            continue
        try:
            with warnings.catch_warnings():  # pycocotools' Masks.__array__ predates numpy 2's copy keyword
                warnings.simplefilter("ignore", DeprecationWarning)
                m = mask_api.decode(_rle(mask_api, obj.segmentation, image))
        except (ValueError, TypeError, IndexError) as exc:
            raise ValueError(f"{obj.where}: its segmentation cannot be decoded ({exc})") from None
        out[k] = m.reshape(image.height, image.width) > 0
    return out


def _batches(images: Sequence[_Image], masks_gt: bool, masks_dt: bool, max_bytes: int):
    """Consecutive same-size images, at most ``max_bytes`` of arrays (or one image) and ``_MAX_EXAMPLES`` per batch."""
    batch: list[_Image] = []
    size = 0
    for image in images:
        nbytes = image.nbytes(masks_gt, masks_dt)
        same = not batch or (batch[0].height, batch[0].width) == (image.height, image.width)
        if batch and (not same or size + nbytes > max_bytes or len(batch) >= _MAX_EXAMPLES):
            yield batch
            batch, size = [], 0
        batch.append(image)
        size += nbytes
    if batch:
        yield batch


def _image_fields(image: _Image, mask_api: Any, has: Mapping[str, bool], num_keypoints: int | None) -> dict[str, Any]:
    """One image's pixels and per-image rows (the writer pads them); ValueError naming what cannot be used."""
    from PIL import Image, UnidentifiedImageError

    where = f"{image.path}: image {image.id}"
    try:
        with Image.open(image.path) as img:
            if img.size != (image.width, image.height):
                raise ValueError(
                    f"{where}: is {img.size[0]}x{img.size[1]} pixels, but the ground truth says "
                    f"{image.width}x{image.height}"
                )
            pixels = np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"{where}: cannot be decoded as an image ({exc})") from None
    gt, dt = image.gt, image.dt
    fields: dict[str, Any] = {
        "images": pixels,
        "ids": image.file_name,
        "coco_image_id": image.id,
        "gt_boxes": np.array([o.bbox for o in gt], dtype=np.float64).reshape(-1, 4),
        "gt_box_labels": np.array([o.label for o in gt], dtype=np.int64),
        "gt_iscrowd": np.array([o.iscrowd for o in gt], dtype=bool),
        "boxes": np.array([o.bbox for o in dt], dtype=np.float64).reshape(-1, 4),
        "box_labels": np.array([o.label for o in dt], dtype=np.int64),
        "box_scores": np.array([o.score for o in dt], dtype=np.float64),
    }
    if has["gt_masks"]:
        fields["gt_instance_masks"] = _decode(mask_api, gt, image)
    if has["masks"]:
        fields["instance_masks"] = _decode(mask_api, dt, image)
    if num_keypoints is not None and has["gt_keypoints"]:
        gt_kp = _keypoints(gt, num_keypoints)
        fields["gt_keypoints"] = np.where(gt_kp[..., 2:] > 0, gt_kp[..., :2], np.nan)  # visibility 0: not labelled
        fields["gt_keypoint_visibility"] = np.nan_to_num(gt_kp[..., 2], nan=0).astype(np.int8)
    if num_keypoints is not None and has["keypoints"]:
        dt_kp = _keypoints(dt, num_keypoints)
        fields["keypoints"], fields["keypoint_scores"] = dt_kp[..., :2], dt_kp[..., 2]
    return fields


def _keypoints(objects: Sequence[_Object], p: int) -> np.ndarray:
    """(len(objects), P, 3) keypoints; an object without any is all NaN (no keypoint, no visibility or score)."""
    out = np.full((len(objects), p, 3), np.nan)
    for k, obj in enumerate(objects):
        if obj.keypoints is not None:
            out[k] = obj.keypoints
    return out


def _stack(images: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One ``add()`` batch: per-image box rows as lists (the writer pads them), extras padded alike here."""
    fields: dict[str, Any] = {}
    for name in images[0]:
        values = [im[name] for im in images]
        if name in ("images", "ids", "coco_image_id"):
            fields[name] = np.stack([np.asarray(v) for v in values])
        elif name in ("gt_iscrowd", "gt_keypoint_visibility"):  # extras: padded to the ground truth's count
            g = max(len(v) for v in values)
            out = np.zeros((len(values), g, *values[0].shape[1:]), dtype=values[0].dtype)
            for i, v in enumerate(values):
                out[i, : len(v)] = v
            fields[name] = out
        else:
            fields[name] = values
    return fields


def _discard(writer: ShardWriter) -> None:
    """Close ``writer`` and remove what it wrote: an import that stopped half-way leaves nothing behind."""
    try:
        writer.close()
    except Exception:  # noqa: BLE001 - already failing: the first error is the one to report
        pass
    for path in [*writer.paths, writer.step_dir / manifest_filename(writer.dump_id)]:
        try:
            remove(path) if isinstance(path, Location) else path.unlink()
        except OSError:
            pass
    try:
        if isinstance(writer.step_dir, Path):
            writer.step_dir.rmdir()  # only if empty: another dump of this step stays
    except OSError:
        pass
