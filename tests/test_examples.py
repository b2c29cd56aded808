"""The notebook API: Examples over real shards (lazy, selectable, drawable) and compare()."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from PIL import Image, ImageChops

import exporter
from exporter import ShardWriter, open_run
from exporter.demo import CLASS_NAMES, make_shapes
from exporter.errors import ConfigError, RenderError, RunNotFoundError
from exporter.examples import Examples, compare
from exporter.render import GRID_CELL, ReadOptions, RenderOptions, render_example, render_grid
from exporter.render.sheets import header as _header  # compare's column titles
from exporter.select import Selection
from exporter.shards import Shard

N = 12
PER_SHARD = 5  # 12 examples → shards of 5, 5, 2: positions cross shard boundaries
DATA = make_shapes(N, seed=3)
LABELS = DATA["labels"].astype(np.int64)


def predictions(wrong: list[int], seed: int) -> dict[str, np.ndarray]:
    """Probabilities that pick the true class except at ``wrong`` positions, with distinct scores."""
    k = len(CLASS_NAMES)
    guess = LABELS.copy()
    guess[wrong] = (guess[wrong] + 1) % k
    top = np.random.default_rng(seed).permutation(np.linspace(0.4, 0.95, N))
    probs = np.full((N, k), 0.0)
    probs[:] = ((1 - top) / (k - 1))[:, None]
    probs[np.arange(N), guess] = top
    return {"probs": probs.astype(np.float32), "pred_labels": guess, "pred_scores": top.astype(np.float32)}


WRONG = {1: [0, 2, 3, 5, 7, 8, 11], 2: [3, 8]}  # step 2 is the better checkpoint


def write(root, step, data, **kwargs):
    with ShardWriter(
        root,
        step=step,
        class_names=CLASS_NAMES,
        examples_per_shard=PER_SHARD,
        image_layout="HWC",
        image_range=(0, 255),
        **kwargs,
    ) as w:
        w.add(**data)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run "a" at steps 1 and 2; "b" at step 7 with the same ids in reverse order; "no*" without a field."""
    root = tmp_path_factory.mktemp("views")
    for step in (1, 2):
        write(root / "a", step, {**DATA, **predictions(WRONG[step], step)})
    reverse = {k: v[::-1] for k, v in {**DATA, **predictions([3, 8], 7)}.items()}
    write(root / "b", 7, reverse)
    plain = {k: v for k, v in DATA.items() if k not in ("ids",)}
    for step in (1, 2):
        write(root / "noids", step, {**plain, **predictions(WRONG[step], step)})
    write(root / "nolabels", 1, {"images": DATA["images"], "ids": DATA["ids"]})
    write(root / "noimages", 1, {"labels": LABELS, "pred_labels": predictions([4], 1)["pred_labels"]})
    return {name: open_run(root / name) for name in ("a", "b", "noids", "nolabels", "noimages")}


@pytest.fixture
def loads(monkeypatch):
    """Every (shard file, fields) that Shard.load reads from disk, in order."""
    seen: list[tuple[str, tuple[str, ...]]] = []
    real = Shard.load

    def spy(self, names=None):
        seen.append((self.path.name, tuple(names or ())))
        return real(self, names)

    monkeypatch.setattr(Shard, "load", spy)
    return seen


def same(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and ImageChops.difference(a.convert("RGB"), b.convert("RGB")).getbbox() is None


# --------------------------------------------------------------------------- Examples


def test_headline_four_lines(runs):
    run = runs["a"]
    worst = run.examples(most_confident_wrong=16)
    assert worst.step == 2 and len(worst) == 2
    assert worst.grid().width > 0
    img = exporter.views.compare(run.examples(step=run.steps[0], ids=worst.ids), worst)
    assert isinstance(img, Image.Image)


def test_repr_names_run_step_count_selection_fields(runs):
    ex = runs["a"].examples(misclassified=True)
    text = repr(ex)
    assert text.startswith(f"Examples('{runs['a'].path}', step=2, 2 of 12 examples, Selection(misclassified=True), ")
    assert "fields: gt_box_labels, gt_boxes, gt_masks, gt_num_boxes, ids, images, labels, pred_labels" in text
    assert repr(runs["a"].examples(1)).startswith(f"Examples('{runs['a'].path}', step=1, 12 of 12 examples, fields:")


def test_repr_does_not_raise(runs):
    ex = runs["a"].examples(ids=["nope"])  # the ids are checked against the data, when counting
    assert "? of 12 examples (ConfigError: ids not in" in repr(ex)


def test_selection_loads_only_the_fields_it_needs_and_images_when_drawing(runs, loads):
    ex = runs["a"].examples(most_confident_wrong=3)
    assert loads == [] and ex.loaded_fields == frozenset()  # constructing reads nothing
    assert len(ex) == 2
    assert ex.loaded_fields == {"labels", "pred_labels", "pred_scores", "probs"}
    assert all("images" not in names for _, names in loads)
    ex.arrays("ids")
    assert "images" not in ex.loaded_fields
    ex.render(0)
    assert "images" in ex.loaded_fields
    # one read per shard for the selection; then only the shard holding the drawn example had its images read
    assert [names for _, names in loads[:3]] == [("labels", "pred_labels", "pred_scores", "probs")] * 3
    image_loads = [path for path, names in loads if "images" in names]
    assert image_loads == [ex._data.shards[ex.indices[0] // PER_SHARD].path.name]
    # derived Examples share what was loaded: selecting again and drawing again read nothing new
    before = len(loads)
    again = ex.select(per_class=1)
    len(again), again.render(0)
    assert len(loads) == before


def test_everything_needs_no_load_to_count(runs, loads):
    ex = runs["a"].examples()
    assert len(ex) == N and ex.indices.tolist() == list(range(N))
    assert loads == []


def test_default_step_is_the_last_and_a_missing_step_is_named(runs):
    assert runs["a"].examples().step == 2
    assert runs["a"].examples(step=1).step == 1
    with pytest.raises(RunNotFoundError, match=r"no shards for step 5 \(steps: \[1, 2\]\)"):
        runs["a"].examples(step=5)
    assert len(Examples(runs["a"], 1, Selection(limit=2))) == 2
    with pytest.raises(ConfigError, match=r"step must be an integer \(one of \[1, 2\]\), got '2'"):
        Examples(runs["a"], "2")
    with pytest.raises(ConfigError, match="run must be a Run \\(from open_run\\), got str"):
        Examples("shards")


def test_selection_errors_come_before_any_load(runs, loads):
    with pytest.raises(ConfigError, match="unknown class name 'dgo'; the classes are: circle, square, triangle"):
        runs["a"].examples(classes=["dgo"])
    with pytest.raises(
        ConfigError,
        match=r"misclassified needs 'labels' and 'pred_labels' \(or 'probs'\); .*nolabels at step 1 has: ids, images",
    ):
        runs["nolabels"].examples(misclassified=True)
    assert loads == []
    with pytest.raises(ConfigError, match="ids not in .* at step 2: 'nope'"):
        len(runs["a"].examples(ids=["nope"]))


def test_select_composes_and_arrays_follow_the_selection(runs):
    run = runs["a"]
    ex = run.examples(step=1, misclassified=True)
    assert ex.indices.tolist() == WRONG[1]
    cats = ex.select(classes=["circle"])
    assert cats.selection == Selection(misclassified=True, classes=("circle",))
    assert cats.indices.tolist() == [i for i in WRONG[1] if LABELS[i] == 0]
    assert ex.select(Selection(limit=2), per_class=1).selection == Selection(misclassified=True, limit=2, per_class=1)
    assert ex.select() is ex
    arrays = cats.arrays("labels", "ids", "images")
    assert arrays["labels"].tolist() == [0] * len(cats)
    assert arrays["ids"].tolist() == DATA["ids"][cats.indices].tolist()
    assert arrays["images"].shape == (len(cats), 64, 64, 3)
    assert set(ex.arrays()) == set(ex.fields)
    with pytest.raises(ConfigError, match="no field 'masks'"):
        ex.arrays("masks")
    with pytest.raises(ConfigError, match="select\\(\\) takes a Selection or keywords"):
        ex.select({"limit": 2})


def test_ranked_selection_ids_are_ranked(runs):
    worst = runs["a"].examples(step=1, most_confident_wrong=3)
    scores = predictions(WRONG[1], 1)["pred_scores"]
    expected = sorted(WRONG[1], key=lambda i: -scores[i])[:3]
    assert worst.indices.tolist() == expected
    assert worst.ids.tolist() == DATA["ids"][expected].tolist()
    with pytest.raises(ConfigError, match="has no 'ids' field; use indices"):
        runs["noids"].examples().ids  # noqa: B018


def test_render_uses_the_shard_metadata_like_export(runs):
    ex = runs["a"].examples(step=1, misclassified=True)
    i = 2
    position = ex.indices[i]
    example = {k: v[position] for k, v in {**DATA, **predictions(WRONG[1], 1)}.items()}
    expected = render_example(example, read=ReadOptions(class_names=CLASS_NAMES, layout="HWC", value_range=(0, 255)))
    assert same(ex.render(i), expected)
    assert same(ex.render(i - len(ex)), expected)  # negative indices count from the end
    # keywords: style, and overrides of the metadata
    renamed = ex.render(i, class_names=["o", "[]", "^"], topk=2)
    expected = render_example(
        example, RenderOptions(topk=2), ReadOptions(class_names=["o", "[]", "^"], layout="HWC", value_range=(0, 255))
    )
    assert same(renamed, expected)
    with pytest.raises(ConfigError, match="unknown render option\\(s\\) colour; the options are: background_class"):
        ex.render(0, colour="red")
    with pytest.raises(IndexError, match="example 99 is out of range"):
        ex.render(99)


def test_grid_size_and_cap(runs):
    ex = runs["a"].examples(step=1)
    cells = [ex.render(i, display_size=GRID_CELL) for i in range(6)]  # cells are drawn for the size they are shown at
    assert same(ex.grid(cols=3, max_examples=6), render_grid(cells, cols=3))
    sheet = ex.grid(cols=4, max_examples=5)
    assert sheet.width == 4 * 128 + 5 * 4  # 64 px images drawn at 128 px, 4 px padding
    assert same(ex.grid(), render_grid([ex.render(i, display_size=GRID_CELL) for i in range(N)]))  # all, a square
    with pytest.raises(ConfigError, match="max_examples must be an integer >= 1"):
        ex.grid(max_examples=0)
    empty = ex.select(classes=[99])
    assert len(empty) == 0
    with pytest.raises(RenderError, match="nothing to draw"):
        empty.grid()


def test_repr_png_is_the_grid(runs):
    ex = runs["a"].examples(step=2, misclassified=True)
    png = ex._repr_png_()
    assert png.startswith(b"\x89PNG")
    assert same(Image.open(io.BytesIO(png)), ex.grid())
    assert ex.select(classes=[99])._repr_png_() is None  # Jupyter falls back to the text repr


def test_a_step_without_images_says_so(runs):
    ex = runs["noimages"].examples(misclassified=True)
    assert len(ex) == 1 and ex._repr_png_() is None
    with pytest.raises(RenderError, match="noimages at step 1 has no 'images' field: nothing to draw"):
        ex.render(0)


# --------------------------------------------------------------------------- compare


def expected_compare(a, b, pairs, left, right):
    cells = [_header(left), _header(right)]
    for i, j in pairs:
        cells += [a.render(i, display_size=GRID_CELL), b.render(j, display_size=GRID_CELL)]
    return render_grid(cells, cols=2)


def test_compare_matches_by_ids_across_steps_in_the_ranked_order(runs):
    run = runs["a"]
    worst = run.examples(step=1, most_confident_wrong=4)  # ranked
    later = run.examples(step=2, ids=worst.ids)  # step order
    pairs = [(int(np.flatnonzero(later.ids == worst.ids[j])[0]), j) for j in range(len(worst))]
    assert [later.ids[i] for i, _ in pairs] == worst.ids.tolist()  # rows follow the ranked side
    assert same(compare(later, worst), expected_compare(later, worst, pairs, "step 2", "step 1"))
    # neither ranked: a's order
    assert same(
        compare(run.examples(step=1, limit=3), run.examples(step=2)),
        expected_compare(
            run.examples(step=1, limit=3), run.examples(step=2), [(0, 0), (1, 1), (2, 2)], "step 1", "step 2"
        ),
    )


def test_compare_works_across_two_runs(runs):
    a = runs["a"].examples(step=2, limit=3)
    b = runs["b"].examples()  # the same ids, in reverse order
    assert b.ids[N - 1] == a.ids[0]
    pairs = [(0, N - 1), (1, N - 2), (2, N - 3)]
    assert same(compare(a, b), expected_compare(a, b, pairs, _side(runs["a"], 2), _side(runs["b"], 7)))


def _side(run, step):
    text = str(run.path)
    return f"{text if len(text) <= 32 else '…' + text[-31:]} · step {step}"


def test_compare_by_position_without_ids_and_caps_rows(runs):
    run = runs["noids"]
    a = run.examples(step=1)
    b = run.examples(step=2, misclassified=True)  # positions 3, 8
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rest of a whole step is not worth a warning
        assert same(compare(a, b), expected_compare(a, b, [(3, 0), (8, 1)], "step 1", "step 2"))
    assert same(compare(a, b, max_examples=1), expected_compare(a, b, [(3, 0)], "step 1", "step 2"))
    with pytest.raises(ConfigError, match="max_examples must be an integer >= 1"):
        compare(a, b, max_examples=0)


def test_compare_warns_about_unmatched_and_refuses_no_match(runs):
    run = runs["a"]
    a = run.examples(step=1, misclassified=True)  # 7 examples
    b = run.examples(step=2, misclassified=True)  # 2 of them
    with pytest.warns(UserWarning, match="5 of a's 7 examples have no match in b \\(by ids\\); they are left out"):
        compare(a, b)
    with pytest.raises(ConfigError, match="no example of a matches one of b by ids"):
        compare(run.examples(step=1, ids=["shape-00000"]), run.examples(step=2, ids=["shape-00001"]))
    with pytest.raises(ConfigError, match="compare\\(\\) takes two Examples, but b is a Run"):
        compare(a, run)
