"""A capture process for the fault tests (run as a script, never imported by pytest).

    python fault_worker.py writer OUT ON_ERROR [COUNT [FSIZE]]     # ShardWriter in a plain loop
    python fault_worker.py estimator OUT ON_ERROR [COUNT [FSIZE]]  # Estimator evaluations with EvalDumpHook

Prints "ready" once capturing starts and "done kept=K written=W dropped=D" at a clean end. The fault
tests run it under a file-size limit or kill it with SIGKILL.
"""

from __future__ import annotations

import os
import sys

import numpy as np


def limit_file_size() -> None:
    """Apply the file-size limit given on the command line (as `ulimit -f` would), once capture starts."""
    if len(sys.argv) > 5:
        import resource

        limit = int(sys.argv[5])
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def run_writer(out: str, on_error: str, batches: int) -> None:
    from exporter import ShardWriter

    rng = np.random.default_rng(0)
    w = ShardWriter(out, step=1, examples_per_shard=4, on_error=on_error)
    limit_file_size()
    print("ready", flush=True)
    for i in range(batches):
        size = 16 if i < 3 else 64  # the first shards (~12 KB) fit under the test's limit, later ones (~49 KB) do not
        w.add(images=rng.integers(0, 255, (4, size, size, 3), dtype=np.uint8), labels=np.arange(i * 4, i * 4 + 4))
    w.close()
    print(f"done kept={w.kept} written={w.written} dropped={w.dropped}", flush=True)


def run_estimator(out: str, on_error: str, evaluations: int) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from exporter.capture.estimator import EvalDumpHook

    tf.get_logger().setLevel("ERROR")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    labels = (images.mean(axis=(1, 2, 3)) > 127.5).astype(np.int32)

    def model_fn(features, labels, mode):
        x = tf.identity(features, name="images")
        logits = tf.compat.v1.layers.dense(tf.reshape(tf.cast(x, tf.float32) / 255.0, [-1, 32 * 32 * 3]), 2)
        tf.argmax(logits, 1, name="pred_labels")
        loss = tf.compat.v1.losses.sparse_softmax_cross_entropy(labels, logits)
        train_op = tf.compat.v1.train.GradientDescentOptimizer(0.1).minimize(loss, tf.compat.v1.train.get_global_step())
        return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)

    def input_fn():
        return tf.data.Dataset.from_tensor_slices((images, labels)).batch(8)

    est = tf.estimator.Estimator(model_fn, model_dir=os.path.join(out, "model"))
    est.train(input_fn, steps=1)
    hook = EvalDumpHook(os.path.join(out, "shards"), {"images": "images:0", "pred_labels": "pred_labels:0"},
                        examples_per_shard=8, on_error=on_error)
    print("ready", flush=True)
    for _ in range(evaluations):
        est.evaluate(input_fn, hooks=[hook])
    dropped = sum(w.dropped for w in hook.writers)
    written = sum(w.written for w in hook.writers)
    print(f"done kept={sum(w.kept for w in hook.writers)} written={written} dropped={dropped}", flush=True)


if __name__ == "__main__":
    kind, out, on_error = sys.argv[1:4]
    count = int(sys.argv[4]) if len(sys.argv) > 4 else 50
    {"writer": run_writer, "estimator": run_estimator}[kind](out, on_error, count)
