"""EvalDumpHook on a real tf.estimator.Estimator (TensorFlow 2.15) and a real MonitoredSession."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from exporter import ConfigError, open_run  # noqa: E402

N_EVAL, BATCH = 10, 4  # 4 + 4 + 2: the last batch is partial
CLASSES = ["dark", "bright"]


def _data(n, seed):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    labels = (images.mean(axis=(1, 2, 3)) > 127.5).astype(np.int32)
    return images, labels


def _model_fn(features, labels, mode, params):
    images = tf.identity(features["images"], name="images")
    x = tf.cast(images, tf.float32) / 255.0
    logits = tf.compat.v1.layers.dense(tf.reshape(x, [-1, 8 * 8 * 3]), 2, name="logits")
    probs = tf.nn.softmax(logits, name="probs")
    pred_labels = tf.argmax(logits, axis=1, output_type=tf.int32, name="pred_labels")
    predictions = {"probs": probs, "pred_labels": pred_labels}
    if mode == tf.estimator.ModeKeys.PREDICT:
        return tf.estimator.EstimatorSpec(mode, predictions=predictions)
    labels = tf.identity(labels, name="labels")
    loss = tf.compat.v1.losses.sparse_softmax_cross_entropy(labels, logits)
    train_op = tf.compat.v1.train.AdamOptimizer(0.05).minimize(loss, tf.compat.v1.train.get_global_step())
    hooks = []
    if "make_hook" in params:
        hooks = [params["make_hook"]({"images": images, "labels": labels, "probs": probs, "pred_labels": pred_labels})]
    return tf.estimator.EstimatorSpec(
        mode,
        loss=loss,
        train_op=train_op,
        predictions=predictions,
        eval_metric_ops={"accuracy": tf.compat.v1.metrics.accuracy(labels, pred_labels)},
        evaluation_hooks=hooks,
    )


def _input_fn(images, labels, batch, repeat=False):
    def fn():
        ds = tf.data.Dataset.from_tensor_slices(({"images": images}, labels))
        ds = ds.repeat() if repeat else ds
        return ds.batch(batch)

    return fn


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    pytest.importorskip("tensorflow_estimator")
    model_dir = str(tmp_path_factory.mktemp("model"))
    train = _data(64, seed=1)
    est = tf.estimator.Estimator(_model_fn, model_dir=model_dir, params={})
    est.train(_input_fn(*train, 16, repeat=True), steps=7)
    images, labels = _data(N_EVAL, seed=2)
    preds = list(est.predict(_input_fn(images, labels, BATCH)))
    return {
        "model_dir": model_dir,
        "images": images,
        "labels": labels,
        "pred_labels": np.array([p["pred_labels"] for p in preds]),
        "probs": np.array([p["probs"] for p in preds]),
        "global_step": est.get_variable_value("global_step"),
    }


def _estimator(trained, params=None):
    return tf.estimator.Estimator(_model_fn, model_dir=trained["model_dir"], params=params or {})


def _dumped(directory):
    run = open_run(directory)
    batches = list(run.iter_batches())
    return run, {k: np.concatenate([b.arrays[k] for b in batches]) for k in batches[0].arrays}


def _check_dump(run, got, trained, rows=slice(None)):
    assert run.steps == [trained["global_step"]] == [7]
    np.testing.assert_array_equal(got["images"], trained["images"][rows])
    np.testing.assert_array_equal(got["labels"], trained["labels"][rows])
    np.testing.assert_array_equal(got["pred_labels"], trained["pred_labels"][rows])
    np.testing.assert_allclose(got["probs"], trained["probs"][rows], rtol=1e-6)


def test_hook_by_tensor_names_in_evaluate(trained, tmp_path):
    from exporter.capture.estimator import EvalDumpHook

    hook = EvalDumpHook(
        tmp_path,
        {"images": "images:0", "labels": "labels", "probs": "probs:0", "pred_labels": "pred_labels:0"},
        class_names=CLASSES,
    )
    _estimator(trained).evaluate(_input_fn(trained["images"], trained["labels"], BATCH), hooks=[hook])
    run, got = _dumped(tmp_path)
    _check_dump(run, got, trained)
    meta = run.shards()[0].meta
    assert meta.class_names == CLASSES
    assert meta.sources == {"images": "images:0", "labels": "labels:0", "probs": "probs:0", "pred_labels": "pred_labels:0"}
    assert meta.versions["tensorflow"] == tf.__version__


def test_hook_from_model_fn_evaluation_hooks_with_tensor_objects(trained, tmp_path):
    from exporter.capture.estimator import EvalDumpHook

    est = _estimator(trained, {"make_hook": lambda tensors: EvalDumpHook(tmp_path, tensors)})
    metrics = est.evaluate(_input_fn(trained["images"], trained["labels"], BATCH))
    run, got = _dumped(tmp_path)
    _check_dump(run, got, trained)
    accuracy = float((got["labels"] == got["pred_labels"]).mean())
    assert metrics["accuracy"] == pytest.approx(accuracy)


@pytest.mark.parametrize(
    "every_n, max_examples, rows",
    [
        (2, None, np.r_[0:4, 8:10]),  # eval steps 0 and 2 of 0,1,2
        (1, 6, np.r_[0:6]),  # cut inside the second batch
        (2, 5, np.r_[0:4, 8:9]),
        (5, None, np.r_[0:4]),
        (1, 0, np.r_[0:0]),
    ],
)
def test_every_n_steps_and_max_examples_are_exact(trained, tmp_path, every_n, max_examples, rows):
    from exporter.capture.estimator import EvalDumpHook

    hook = EvalDumpHook(tmp_path, {"images": "images:0", "labels": "labels:0"}, every_n_steps=every_n, max_examples=max_examples)
    _estimator(trained).evaluate(_input_fn(trained["images"], trained["labels"], BATCH), hooks=[hook])
    if len(rows) == 0:
        assert not list(tmp_path.rglob("*.npz"))
        return
    _, got = _dumped(tmp_path)
    np.testing.assert_array_equal(got["images"], trained["images"][rows])
    np.testing.assert_array_equal(got["labels"], trained["labels"][rows])


def test_evaluating_the_same_checkpoint_twice_keeps_both_dumps(trained, tmp_path):
    from exporter.capture.estimator import EvalDumpHook

    hook = EvalDumpHook(tmp_path, {"labels": "labels:0"})
    for _ in range(2):
        _estimator(trained).evaluate(_input_fn(trained["images"], trained["labels"], BATCH), hooks=[hook])
    assert len(hook.writers) == 2 and hook.writers[0].dump_id != hook.writers[1].dump_id
    assert len(open_run(tmp_path, dumps="all").shards()) == 2


@pytest.mark.parametrize(
    "tensors, match",
    [
        ({"images": "no_such_tensor:0"}, "no tensor named 'no_such_tensor:0'"),
        ({}, "at least one field"),
        ({"bad name": "images:0"}, "is not allowed"),
    ],
)
def test_bad_tensor_maps_fail_clearly(trained, tmp_path, tensors, match):
    from exporter.capture.estimator import EvalDumpHook

    with pytest.raises(ConfigError, match=match):
        hook = EvalDumpHook(tmp_path, tensors)
        _estimator(trained).evaluate(_input_fn(trained["images"], trained["labels"], BATCH), hooks=[hook])


def test_monitored_session_without_estimator(tmp_path):
    """The path for TensorFlow >= 2.16, where tf.estimator is gone: a plain v1 graph + MonitoredSession."""
    from exporter.capture.estimator import EvalDumpHook

    images, labels = _data(N_EVAL, seed=3)
    graph = tf.Graph()
    with graph.as_default():
        gs = tf.compat.v1.train.get_or_create_global_step()
        it = tf.compat.v1.data.make_one_shot_iterator(tf.data.Dataset.from_tensor_slices((images, labels)).batch(BATCH))
        x, y = it.get_next()
        x = tf.identity(x, name="images")
        pred = tf.cast(tf.reduce_mean(tf.cast(x, tf.float32), axis=[1, 2, 3]) > 127.5, tf.int32, name="pred_labels")
        assign = tf.compat.v1.assign(gs, 42)
        hook = EvalDumpHook(tmp_path, {"images": "images:0", "labels": y, "pred_labels": pred}, every_n_steps=1)
        with tf.compat.v1.train.MonitoredSession(hooks=[hook]) as sess:
            sess.run_step_fn(lambda step_context: step_context.session.run(assign))  # outside the hook's counting
            while not sess.should_stop():
                sess.run(pred)
    run, got = _dumped(tmp_path)
    assert run.steps == [42]
    np.testing.assert_array_equal(got["images"], images)
    np.testing.assert_array_equal(got["labels"], labels)
    np.testing.assert_array_equal(got["pred_labels"], labels)


def test_monitored_session_graph_without_global_step_needs_step(tmp_path):
    from exporter.capture.estimator import EvalDumpHook

    with tf.Graph().as_default():
        x = tf.constant(np.zeros((2, 4, 4), np.float32), name="images")
        with pytest.raises(ConfigError, match="no global step"):
            with tf.compat.v1.train.MonitoredSession(hooks=[EvalDumpHook(tmp_path, {"images": "images:0"})]):
                pass
        hook = EvalDumpHook(tmp_path, {"images": "images:0"}, step=lambda: 5)
        with tf.compat.v1.train.MonitoredSession(hooks=[hook]) as sess:
            sess.run(x)
    assert open_run(tmp_path).steps == [5]
