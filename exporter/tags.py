"""The one place a TensorBoard tag, and a file name derived from an example id, is named.

Tag layout::

    {prefix}/{id}                 one rendered example (prefix defaults to "examples")
    {prefix}_grid                 a grid of the first examples of a step
    metrics/accuracy              top-1 accuracy of a step
    metrics/top{k}_accuracy       top-k accuracy of a step
    metrics/confusion_matrix      the confusion matrix of a step, as an image
    pr_curve/{class name}         one precision-recall curve per class
    {prefix}/{group}/{id}         an example with ``group_tags``: its true class, or ``right`` / ``wrong``
    changes/fixed/{id}            ``changes``: an example right at this step, wrong at the one before
    changes/broken/{id}           ``changes``: wrong at this step, right at the one before
    summary/changes               ``changes``: Markdown table of what was fixed and broken, per class
    summary/worst                 ``changes``: Markdown table of the step's worst examples
    metrics/detection/{stat}      COCO box AP/AR of a step: mAP, AP50, AP75, APs, APm, APl, AR1, AR10,
                                  AR100, ARs, ARm, ARl (``metrics.detection.STAT_NAMES``)
    metrics/detection/AP/{class}  COCO box AP of one class
    metrics/detection/mask_{stat} the same for instance masks (mask_mAP, mask_AP50, ...)
    pr_curve/detection/{class}    one detection PR curve per class (IoU 0.5)
    metrics/segmentation/pixel_accuracy, metrics/segmentation/mean_iou
    metrics/segmentation/IoU/{class}   IoU of one class of the class maps

Class name components are sanitised like ids but, all names being known up
front, made distinct with the class index instead of a hash (``class_tags``).

A per-example tag must be the same at every checkpoint so TensorBoard's step
slider shows the same example evolving. ``{id}`` comes from the ``ids`` field
when a shard has one (str or int); otherwise it is ``ex{index:05d}``, where
``index`` is the example's position within its step (shard order, then row) —
stable as long as the eval input order is deterministic.

Ids are sanitised into one component that is both a tag part and a file name:
``[A-Za-z0-9_.-]`` is kept, anything else becomes ``_``, a run of leading or
trailing dots becomes ``_``, the length is capped, and names that are special
somewhere (Windows device names, ``grid``) are avoided. Whenever anything was
changed, ``-`` and 8 hex digits of a hash of the original id are appended, so
two distinct ids stay distinct. The component never holds ``/``, ``\\``, NUL,
is never empty, ``.`` or ``..``, so a file named after it stays in its folder.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence

import numpy as np

from .errors import ConfigError

DEFAULT_PREFIX = "examples"
MAX_ID_LENGTH = 80
HASH_CHARS = 8

ACCURACY_TAG = "metrics/accuracy"
CONFUSION_MATRIX_TAG = "metrics/confusion_matrix"
PR_CURVE_PREFIX = "pr_curve"
DETECTION_PREFIX = "metrics/detection"
DETECTION_AP_PREFIX = "metrics/detection/AP"
DETECTION_PR_CURVE_PREFIX = "pr_curve/detection"
SEGMENTATION_PREFIX = "metrics/segmentation"
SEGMENTATION_IOU_PREFIX = "metrics/segmentation/IoU"
PIXEL_ACCURACY_TAG = "metrics/segmentation/pixel_accuracy"
MEAN_IOU_TAG = "metrics/segmentation/mean_iou"

#: File name of a step's grid in ``render()`` output; an example id can never produce it.
GRID_FILENAME = "grid.png"
EXAMPLE_SUFFIX = ".png"

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_EDGE_DOTS = re.compile(r"^\.+|\.+$")
_PREFIX = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
# Stems Windows refuses whatever the extension, plus the grid's own file name.
_RESERVED = frozenset(
    ["con", "prn", "aux", "nul", "grid"]
    + [f"com{i}" for i in range(10)]
    + [f"lpt{i}" for i in range(10)]
)


def _digest(text: str) -> str:
    data = text.encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=HASH_CHARS // 2).hexdigest()


def _clean(text: str, max_length: int) -> tuple[str, bool]:
    """Sanitised text (at most ``max_length`` characters) and whether anything had to change."""
    clean = _UNSAFE.sub("_", text)
    clean = _EDGE_DOTS.sub("_", clean)
    if not clean:
        clean = "_"
    if clean.split(".", 1)[0].lower() in _RESERVED:
        clean = "_" + clean
    if len(clean) > max_length:
        clean = _EDGE_DOTS.sub("_", clean[:max_length])
    return clean, clean != text


def sanitize(text: str, *, max_length: int = MAX_ID_LENGTH) -> str:
    """One safe tag component / file stem for ``text``; a hash is appended when it had to change.

    >>> sanitize("img_0001.jpg")
    'img_0001.jpg'
    >>> sanitize("../../etc/passwd")
    '__.._etc_passwd-830a08e2'
    """
    if not isinstance(text, str):
        raise ConfigError(f"expected a str to sanitise, got {type(text).__name__}")
    clean, changed = _clean(text, max_length)
    if not changed:
        return clean
    return f"{clean[: max_length - HASH_CHARS - 1]}-{_digest(text)}"


def id_text(example_id: str | int | np.integer | np.str_) -> str:
    """The id as text: ints in decimal, text as is (bytes are decoded as UTF-8)."""
    if isinstance(example_id, (bool, np.bool_)):
        raise ConfigError(f"example ids are ints or text, got a bool ({example_id!r})")
    if isinstance(example_id, (int, np.integer)):
        return str(int(example_id))
    if isinstance(example_id, bytes):
        return example_id.decode("utf-8", "replace")
    if isinstance(example_id, str):
        return str(example_id)
    raise ConfigError(f"example ids are ints or text, got {type(example_id).__name__} ({example_id!r})")


def default_id(index: int) -> str:
    """The id of an example without ``ids``: its position within its step."""
    return f"ex{int(index):05d}"


def example_name(example_id: str | int | None, index: int) -> str:
    """The sanitised name of one example: from its id, or ``ex{index:05d}`` when it has none."""
    if example_id is None:
        return default_id(index)
    return sanitize(id_text(example_id))


def check_prefix(prefix: str) -> str:
    """A tag prefix is one or more safe components joined by ``/``."""
    if not isinstance(prefix, str) or not _PREFIX.match(prefix):
        raise ConfigError(
            f"tag prefix must be letters, digits, '_', '.', '-' parts joined by '/', e.g. 'examples' "
            f"or 'eval/examples', got {prefix!r}"
        )
    return prefix


def example_tag(prefix: str, example_id: str | int) -> str:
    """The tag of one example, the same at every step.

    >>> example_tag("examples", "cat/001.jpg")
    'examples/cat_001.jpg-76f465cb'
    >>> example_tag("examples", 7)
    'examples/7'
    """
    return name_tag(prefix, sanitize(id_text(example_id)))


def name_tag(prefix: str, name: str) -> str:
    """The tag of an example whose name was already made (``example_name`` / ``UniqueNames``)."""
    return f"{check_prefix(prefix)}/{name}"


def grid_tag(prefix: str = DEFAULT_PREFIX) -> str:
    return f"{check_prefix(prefix)}_grid"


def topk_tag(k: int) -> str:
    return f"metrics/top{int(k)}_accuracy"


def file_stem(name: str) -> str:
    """The file stem of an example's name: the name itself, plus a hash when it has capital letters.

    Names (and tags) keep their case: ``A`` and ``a`` are two examples. File
    systems that fold case (macOS and Windows by default) would store their
    files as one, so a name with a capital letter gets ``-`` and 8 hex digits
    of its hash; all-lowercase names, the common case, keep their file names.

    >>> file_stem("cat_001"), file_stem("Cat_001")
    ('cat_001', 'Cat_001-3221cdc1')
    """
    if name == name.lower():
        return name
    return f"{name[: MAX_ID_LENGTH - HASH_CHARS - 1]}-{_digest(name)}"


def safe_filename(example_id: str | int, suffix: str = "") -> str:
    """A file name for an example that cannot leave its folder (no separators, never ``..``),
    distinct from every other example's even where the file system folds case.

    >>> safe_filename("../../etc/passwd", ".png")
    '__.._etc_passwd-830a08e2.png'
    """
    if suffix and not re.match(r"^\.[A-Za-z0-9]{1,8}$", suffix):
        raise ConfigError(f"file suffix must look like '.png', got {suffix!r}")
    return file_stem(sanitize(id_text(example_id))) + suffix


def pr_curve_tags(num_classes: int, class_names: Sequence[str] | None = None) -> list[str]:
    """One distinct ``pr_curve/<name>`` tag per class; unnamed classes are ``class_<k>``.

    Class names are all known up front, so a clash after sanitising is resolved
    with the class index rather than a hash (``pr_curve/traffic_light``).
    """
    return [f"{PR_CURVE_PREFIX}/{c}" for c in class_components(num_classes, class_names)]


def class_components(num_classes: int, class_names: Sequence[str] | None = None) -> list[str]:
    """One distinct tag component per class (``pr_curve/<c>``, ``examples/<c>/<id>``); unnamed: ``class_<k>``.

    >>> class_components(3, ["traffic light", "traffic?light"])
    ['traffic_light', 'traffic_light-1', 'class_2']
    """
    out: list[str] = []
    used: set[str] = set()
    for k in range(num_classes):
        name = class_names[k] if class_names is not None and k < len(class_names) else f"class_{k}"
        clean, _ = _clean(str(name), MAX_ID_LENGTH)
        candidate = clean
        while candidate.lower() in used:
            candidate = f"{clean}-{k}" if candidate == clean else candidate + "_"
        used.add(candidate.lower())
        out.append(candidate)
    return out


def detection_tag(stat: str, *, masks: bool = False) -> str:
    """The tag of one COCO summary number of a step: box AP/AR, or with ``masks`` instance-mask AP/AR.

    >>> detection_tag("mAP"), detection_tag("AP50", masks=True)
    ('metrics/detection/mAP', 'metrics/detection/mask_AP50')
    """
    return f"{DETECTION_PREFIX}/{'mask_' if masks else ''}{stat}"


def class_tags(prefix: str, class_ids: Iterable[int], class_names: Sequence[str] | None = None) -> dict[int, str]:
    """``{class id: prefix/<name>}`` for ``class_ids``: distinct, and the same whichever ids a step holds.

    Every name is made a component first (in order, as ``pr_curve_tags`` does),
    so the tag of a class depends on the names only; ids beyond them are
    ``class_<id>``.

    >>> class_tags("metrics/detection/AP", [2, 0, 7], ["a/b", "cat", "a_b"])
    {0: 'metrics/detection/AP/a_b', 2: 'metrics/detection/AP/a_b-2', 7: 'metrics/detection/AP/class_7'}
    """
    used: set[str] = set()
    components = {k: _component(str(name), used, k) for k, name in enumerate(class_names or ())}
    tags = {}
    for k in sorted({int(i) for i in class_ids}):
        if k not in components:
            components[k] = _component(f"class_{k}", used, k)
        tags[k] = f"{prefix}/{components[k]}"
    return tags


def _component(name: str, used: set[str], k: int) -> str:
    """A sanitised name not in ``used`` (case-insensitively): the class index is appended on a clash."""
    clean, _ = _clean(name, MAX_ID_LENGTH)
    candidate = clean
    while candidate.lower() in used:
        candidate = f"{clean}-{k}" if candidate == clean else candidate + "_"
    used.add(candidate.lower())
    return candidate


class UniqueNames:
    """Hands out per-step names that never clash.

    The first example with a name keeps it; a later one with the same name (a
    duplicated id) gets ``-dup<index>`` so no image overwrites another. The
    order is the step's example order, so those names are as stable as that
    order. Names differing only in case are different names (and tags):
    ``file_stem`` keeps their files apart where the file system folds case.
    """

    def __init__(self) -> None:
        self._used: set[str] = set()
        self.duplicates = 0

    def take(self, name: str, index: int) -> str:
        candidate = name
        while candidate in self._used:
            candidate = f"{name}-dup{int(index):05d}" if candidate == name else candidate + "_"
        if candidate != name:
            self.duplicates += 1
        self._used.add(candidate)
        return candidate


# --------------------------------------------------------------------------- what changed, groups, descriptions

CHANGES_PREFIX = "changes"
#: The two kinds of change between consecutive steps (``changes/<kind>/<id>``).
CHANGE_KINDS = ("fixed", "broken")
SUMMARY_CHANGES_TAG = "summary/changes"
SUMMARY_WORST_TAG = "summary/worst"
#: Groups of ``group_tags="outcome"``; an example whose outcome cannot be read is in ``UNKNOWN_GROUP``.
OUTCOME_GROUPS = ("right", "wrong")
UNKNOWN_GROUP = "unknown"


def change_tag(kind: str, name: str) -> str:
    """The tag of one example that was fixed or broken at a step (``name`` from ``example_name``).

    >>> change_tag("fixed", "cat-1")
    'changes/fixed/cat-1'
    """
    if kind not in CHANGE_KINDS:
        raise ConfigError(f"a change is one of {', '.join(CHANGE_KINDS)}, got {kind!r}")
    return f"{CHANGES_PREFIX}/{kind}/{name}"


def grouped_tag(prefix: str, group: str, name: str) -> str:
    """The tag of an example in a group (a class component, ``right``/``wrong``, ``unknown``).

    >>> grouped_tag("examples", "cat", "img7"), grouped_tag("examples", "wrong", "img7")
    ('examples/cat/img7', 'examples/wrong/img7')
    """
    if not isinstance(group, str) or _UNSAFE.search(group) or group in ("", ".", ".."):
        raise ConfigError(f"a tag group is one safe component (class_components makes them), got {group!r}")
    return f"{check_prefix(prefix)}/{group}/{name}"


def example_description(drawn_with: str, group: str | None = None) -> str:
    """The card text (Markdown) of a per-example tag: what it shows and what drew it."""
    where = f" Grouped under `{group}`." if group else ""
    return (
        "One eval example at every exported checkpoint (drag the step slider): the input with the prediction "
        "drawn on it; the caption is the predicted class and score against the true class, green when right, "
        f"red when wrong; predicted boxes in class colours, ground truth dashed.{where} {drawn_with}"
    )


def change_description(kind: str, drawn_with: str) -> str:
    """The card text of a ``changes/<kind>/<id>`` tag."""
    what = "wrong at the step before, right at this one" if kind == "fixed" else "right at the step before, wrong at this one"
    return (
        f"An example whose outcome changed ({kind}: {what}; for detection, fewer or more missed and false boxes, or "
        "its AP moved). Left: the earlier checkpoint, right: this one, each headed with its step. Written only "
        f"at the steps where it changed. {drawn_with}"
    )


SUMMARY_CHANGES_DESCRIPTION = (
    "Per class, the examples fixed (wrong before, right now) and broken (right before, wrong now) since the "
    "previous exported step, with their ids; their images are under changes/fixed and changes/broken."
)
SUMMARY_WORST_DESCRIPTION = (
    "The step's worst examples: the most confidently wrong (classification), or the images with the most "
    "missed and false boxes, then the lowest AP (detection)."
)
