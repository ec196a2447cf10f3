"""`edge-train --strategy`: the reader's network trained by gradient descent on tf.distribute.

The default `edge-train` fits the heads by logistic regression on cached trunk features, in
nested cross-validation: right for a few hundred scans, one CPU. This path is for tens of
thousands of scans on GPUs or several machines. What runs under the strategy:
- the input pipeline (`tf.data`): each worker reads only its shard of the training scans,
  prepares them with the device's `prepare` in parallel, keeps the prepared inputs in a cache
  (in memory: every scan is prepared once per run), shuffles, batches and prefetches;
- the network of `train.reader.build_model` (the frozen ImageNet trunk at each scale, the
  lesion-cell, class and malignancy heads; the malignancy head on whole-breast pooling, without
  the focused block the logistic path ties to its cell head), whose heads (and, with `fine_tune`,
  the trunk's last blocks) are trained by AdamW, every replica on its part of each global batch, the gradients
  summed across replicas and workers (synchronous data parallelism: every worker ends with the
  same weights);
- the losses: per cell, lesion circle vs not (a scan's positive and negative cells weigh alike;
  a finding without a location is never used at cell level), the hottest cell vs abnormal, and
  for findings the kind and the malignancy.
Then the network is split as the default path ships it (`reader.split_model`): the trunks alone at
batch 1 as the quantized network, the heads as `edge.inference.heads.Heads` in its `training.json`, run in float
beside it on the board. On the chief only, the cheap part: the reading stage and the triage
threshold are fitted on held-out women (fold 0 of `patient_folds`), read through those same heads.

Unlike the default path, the heads are fitted on the float trunk's features. `edge-convert` makes
the 16x8 model of them (int16 activations: its training.json names no other), whose features are
the float ones to about a thousandth of their spread; an int8 model's differ (see
`train.trunk.quantized_features`), and its fidelity gate shows it.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge import LABELS
from edge.errors import EdgeError
from edge.inference.heads import canonical, outputs
from edge.inference.reading import Logistic, Reading, answer
from train import handoff, metrics, reader, records as training_records, trunk
from train.data import heatmap_target, load_dataset, prepare_record
from train.scan_record import ScanRecord
from train.splits import patient_folds

TRUNK_BLOCKS = 11  # the trunk is read at conv_pw_11 (train.trunk.TAP)
CELL_PRIOR = -3.0  # initial logit of the cell head: lesion cells are a few per cent of a breast


@dataclass(frozen=True)
class Settings:
    """How the network is trained; `batch_size` is global (summed over every replica of every worker)."""

    size: int = 512
    factors: tuple[int, ...] = (1, 2)
    steps: int = 300
    batch_size: int = 16
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    fine_tune: int = 0  # the trunk's last N blocks are trained too (0: heads only)
    folds: int = 5  # 1/folds of the women are held out for the reading stage and the threshold
    paired: bool = True
    seed: int = 0

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Role:
    """This process's place in the cluster."""

    name: str  # "worker 0", "chief", ...
    chief: bool  # writes the model; the others only train
    workers: int


def role(strategy_name: str) -> Role:
    """Who this process is: alone, or the task of TF_CONFIG (an `EdgeError` when it is unusable)."""
    if strategy_name != "multiworker":
        return Role("worker 0", True, 1)
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise EdgeError("--strategy multiworker needs TF_CONFIG: the cluster's worker addresses and this worker's "
                        'index, e.g. {"cluster": {"worker": ["host1:2222", "host2:2222"]}, "task": {"type": "worker", "index": 0}}')
    try:
        config = json.loads(raw)
        cluster, task = config["cluster"], config["task"]
        kind, index = task["type"], int(task["index"])
        workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
        if kind not in ("worker", "chief") or not 0 <= index < len(cluster[kind]):
            raise ValueError(f"task {kind} {index} is not in the cluster")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise EdgeError(f"TF_CONFIG cannot be used ({exc.__class__.__name__}: {exc})") from None
    chief = kind == "chief" or ("chief" not in cluster and index == 0)
    return Role("chief" if kind == "chief" else f"worker {index}", chief, workers)


def make_strategy(name: str):
    """The tf.distribute strategy: this machine's default device, every local GPU, or the TF_CONFIG cluster.

    Created before any other TensorFlow work, as MultiWorkerMirroredStrategy requires."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except (ValueError, RuntimeError, tf.errors.OpError) as exc:
        raise EdgeError(f"cannot join the TF_CONFIG cluster ({str(exc).strip().splitlines()[0]})") from None


def example(record: ScanRecord, size: int, grid: int):
    """One training example: prepared image, cell targets, kind, abnormal, malignant."""
    image, _, circles = prepare_record(record, size)
    heat = heatmap_target(circles, size, grid, bool(record.lesions_without_location))
    return (image, heat, np.int32(LABELS.index(record.label)), np.float32(record.abnormal),
            np.float32(record.malignant))


def input_pipeline(records: list[ScanRecord], index: np.ndarray, settings: Settings):
    """The `dataset_fn` of `distribute_datasets_from_function`: this worker's shard, prepared once."""
    import tensorflow as tf

    size, grid = settings.size, settings.size // trunk.STRIDE // settings.factors[0]

    def load(i):
        return example(records[int(i)], size, grid)

    def shapes(image, heat, kind, abnormal, malignant):
        image.set_shape((size, size))
        heat.set_shape((grid, grid))
        return image, heat, tf.reshape(kind, ()), tf.reshape(abnormal, ()), tf.reshape(malignant, ())

    def make(context: tf.distribute.InputContext) -> tf.data.Dataset:
        shard = index[context.input_pipeline_id :: context.num_input_pipelines]
        types = (tf.uint8, tf.float32, tf.int32, tf.float32, tf.float32)
        dataset = tf.data.Dataset.from_tensor_slices(shard.astype(np.int64))
        dataset = dataset.map(lambda i: tf.numpy_function(load, [i], types), num_parallel_calls=tf.data.AUTOTUNE)
        dataset = dataset.map(shapes).cache()  # prepared once; later epochs read memory
        dataset = dataset.shuffle(min(len(shard), 2048), seed=settings.seed + context.input_pipeline_id).repeat()
        dataset = dataset.batch(context.get_per_replica_batch_size(settings.batch_size), drop_remainder=True)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF  # sharded above
        return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)

    return make


def network(settings: Settings, batch_size: int | None):
    """`reader.build_model` with starting heads, and the trunk frozen but for its last `fine_tune` blocks."""
    channels = trunk.CHANNELS * 2 * len(settings.factors)
    classes_b = np.zeros(len(LABELS))
    classes_b[reader.NORM] = reader.NORM_BIAS
    start = reader.Heads(
        tuple(np.zeros(trunk.CHANNELS) for _ in settings.factors), tuple(CELL_PRIOR for _ in settings.factors),
        np.zeros((channels, len(LABELS))), classes_b, np.zeros(channels), 0.0,
    )
    model = reader.build_model(settings.size, start, settings.factors, batch_size=batch_size)
    tuned = {f"conv_{kind}_{block}" for block in range(TRUNK_BLOCKS - settings.fine_tune + 1, TRUNK_BLOCKS + 1)
             for kind in ("dw", "pw")}
    for f in settings.factors:
        for layer in model.get_layer(f"trunk{f}").layers:
            layer.trainable = layer.name in tuned  # batch norms stay frozen: their statistics are ImageNet's
    return model


def scan_losses(outputs, heat_target, kind, abnormal, malignant):
    """The loss of each scan of a batch (see the module docstring)."""
    import tensorflow as tf

    classes, hottest, p_malignant, heat = outputs
    eps = 1e-6

    def bce(target, p):
        p = tf.clip_by_value(p, eps, 1 - eps)
        return -(target * tf.math.log(p) + (1 - target) * tf.math.log(1 - p))

    def mean_over(values, mask):
        mask = tf.cast(mask, tf.float32)
        return tf.reduce_sum(values * mask, (1, 2)) / tf.maximum(tf.reduce_sum(mask, (1, 2)), 1.0)

    cells = bce(tf.maximum(heat_target, 0.0), heat)
    cell = mean_over(cells, heat_target == 1.0) + mean_over(cells, heat_target == 0.0)  # IGNORE cells in neither
    scan = bce(abnormal, hottest[:, 0])
    kind_loss = -tf.math.log(tf.clip_by_value(tf.gather(classes, kind, batch_dims=1), eps, 1.0))
    finding = abnormal * (kind_loss + bce(malignant, p_malignant[:, 0]))
    return cell + scan + finding


def train_network(strategy, workers: int, records: list[ScanRecord], index: np.ndarray, settings: Settings, log=print):
    """Train under `strategy` (on `workers` machines) on the scans `index`; (model, seconds of each step)."""
    import keras
    import tensorflow as tf

    pipelines = strategy.num_replicas_in_sync
    if settings.batch_size % pipelines:
        raise EdgeError(f"--batch-size {settings.batch_size} must be a multiple of the {pipelines} replicas")
    if len(index) < workers:
        raise EdgeError(f"{len(index)} training scans cannot be shared among {workers} workers")
    keras.utils.set_random_seed(settings.seed)
    with strategy.scope():
        model = network(settings, batch_size=None)
        optimizer = keras.optimizers.AdamW(settings.learning_rate, weight_decay=settings.weight_decay)
        optimizer.build(model.trainable_variables)  # its slots exist before `step` is traced: one trace, not two
    batches = iter(strategy.distribute_datasets_from_function(input_pipeline(records, index, settings)))

    def replica_step(batch):
        images, heat, kind, abnormal, malignant = batch
        with tf.GradientTape() as tape:
            outputs = model(tf.cast(images, tf.float32)[..., None], training=True)
            per_scan = scan_losses(outputs, heat, kind, abnormal, malignant)
            loss = tf.nn.compute_average_loss(per_scan, global_batch_size=settings.batch_size)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    @tf.function
    def step(batch):
        return strategy.reduce("SUM", strategy.run(replica_step, args=(batch,)), axis=None)

    seconds = []
    every = max(1, settings.steps // 10)
    for number in range(1, settings.steps + 1):
        t0 = time.perf_counter()
        try:
            loss = float(step(next(batches)))
        except tf.errors.OpError as exc:
            raise EdgeError(f"training stopped: {_op_error(exc)}") from None
        seconds.append(time.perf_counter() - t0)
        if number % every == 0 or number == settings.steps:
            log(f"step {number}/{settings.steps}: loss {loss:.4f}, {settings.batch_size / np.median(seconds[-every:]):.1f} images/s")
    return model, seconds


def _op_error(exc) -> str:
    """The useful words of a TensorFlow error: a scan's own `EdgeError` when a scan could not be read,
    a lost worker when the cluster broke, else the first line that says more than "Graph execution error"."""
    import tensorflow as tf

    lines = [line.strip() for line in str(exc.message).splitlines() if line.strip()]
    for line in lines:
        if "EdgeError:" in line:
            return line.split("EdgeError:", 1)[1].strip()
    if isinstance(exc, (tf.errors.UnavailableError, tf.errors.CancelledError, tf.errors.DeadlineExceededError)):
        return f"a worker of the cluster stopped or cannot be reached ({exc.__class__.__name__})"
    useful = [line for line in lines if not line.startswith(("Graph execution error", "Detected at node", "File "))]
    return (useful or lines or [exc.__class__.__name__])[0]


def wait_for_each_other(strategy) -> None:
    """Every worker waits here for the others (a one-number all-reduce): the other workers stay until
    the chief has written the model, so none of them looks crashed to the cluster while it does."""
    import tensorflow as tf

    try:
        tf.function(lambda: strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0)), axis=None))()
    except tf.errors.OpError as exc:
        raise EdgeError(f"the cluster broke up before the chief wrote the model ({_op_error(exc)})") from None


def weights_digest(network, heads: dict) -> str:
    """sha256 of the shipped network's weights, in order, and of its heads (`Heads.to_json`): the
    same on every worker of a synchronous run."""
    digest = hashlib.sha256()
    for weights in network.get_weights():
        digest.update(np.ascontiguousarray(weights, np.float32).tobytes())
    digest.update(canonical(heads))
    return digest.hexdigest()


def held_out_reading(network, heads: reader.Heads, records: list[ScanRecord], settings: Settings):
    """(reading stage, threshold, headline figures) from the held-out women's heat-maps.

    The reading stage is cross-fitted on two patient-grouped halves of the held-out women
    for the figures (each half read by the stage fitted on the other), then fitted on all of
    them for the model, with the threshold that refers the target share of the women with a finding."""
    from train.cv import HEADLINE

    data = load_dataset(records, settings.size)
    features = network.predict(data.images[:, :, :, None].astype(np.float32), batch_size=1, verbose=0)
    out = outputs(list(features) if isinstance(features, (list, tuple)) else [features], heads)  # as the board runs them
    classes, malignant, ev = out.classes, out.malignant, reader.evidence(out)
    y = data.abnormal.astype(int)
    if y.min() == y.max():
        raise EdgeError("the held-out women's scans are all of one kind (normal or abnormal): more scans or fewer --folds")
    partner = reader.partners(data)
    halves = patient_folds(records, k=2, seed=settings.seed)
    p = np.zeros(len(records))
    for half in (0, 1):
        stage = reader.fit_reading(ev, partner, y, np.flatnonzero(halves != half))
        rows = np.flatnonzero(halves == half)
        p[rows] = reader.read(stage, ev, partner, rows, settings.paired)
    probs = np.array([[answer(p[i], classes[i], malignant[i], 0.5).probabilities[label] for label in LABELS]
                      for i in range(len(records))])  # the probabilities do not depend on the threshold
    threshold = np.zeros(len(records))
    for half in (0, 1):  # each half's threshold from the other half's women, as the shipped one is chosen
        other = halves != half
        threshold[halves == half] = metrics.woman_threshold(p[other], y[other], data.women[other])
    table = metrics.Table.from_records(records, halves, probs, p, p * malignant, reader.read_beside(data, settings.paired), threshold)
    document = metrics.evaluate(table)
    everyone = np.arange(len(records))
    reading = reader.fit_reading(ev, partner, y, everyone)
    if not settings.paired:  # the partner weighs nothing: every scan is read alone
        reading = Reading(reading.single, Logistic((*reading.single.weights, 0.0, 0.0), reading.single.bias))
    threshold = metrics.woman_threshold(reader.read(reading, ev, partner, everyone, settings.paired), y, data.women)
    return reading, threshold, {key: document["headline"][key] for key in HEADLINE if key in document["headline"]}


def run(data_dir: Path, out: Path, settings: Settings, strategy_name: str, limit: int | None = None, log=print,
        command: str | None = None) -> handoff.Handoff | None:
    """Train under the strategy; the chief writes `out/final` and returns its handoff, the others None."""
    started = time.time()
    me = role(strategy_name)
    if me.workers > 1:
        # TensorFlow waits for the other workers (and for collectives) in C++ holding the interpreter,
        # where Python's Ctrl-C handler never runs, and takes SIGTERM as a preemption notice: Ctrl-C
        # gets the system's own action back, so it always ends the process.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        log(f"{me.name} of {me.workers}: joining the cluster of TF_CONFIG (waits until every worker has started)")
    strategy = make_strategy(strategy_name)
    records = training_records.load(data_dir)
    if limit:
        records = records[:limit]
    folds = patient_folds(records, k=settings.folds, seed=settings.seed)
    held, training = np.flatnonzero(folds == 0), np.flatnonzero(folds != 0)
    log(f"{me.name} of {me.workers}: {strategy_name} strategy, {strategy.num_replicas_in_sync} replicas in sync; "
        f"training on {len(training)} scans, {len(held)} held out")
    model, seconds = train_network(strategy, me.workers, records, training, settings, log)
    final = network(settings, batch_size=1)
    final.set_weights(model.get_weights())
    trunks, heads = reader.split_model(final, settings.size, settings.factors)
    digest = weights_digest(trunks, heads.to_json())
    log(f"{me.name} of {me.workers}: weights sha256 {digest}")
    if not me.chief:
        wait_for_each_other(strategy)
        return None
    held_records = [records[i] for i in held]
    reading, threshold, figures = held_out_reading(trunks, heads, held_records, settings)
    steady = seconds[len(seconds) // 2 :]  # the second half: pipeline cache filled, step traced
    result = handoff.Handoff(
        input_size=settings.size,
        triage=handoff.Triage(threshold, metrics.TARGET_SENSITIVITY,
                              f"P(abnormal) of the {len(held)} held-out scans (fold 0 of {settings.folds}, patient-grouped)"),
        reading=reading.to_json(),
        heads=heads.to_json(),
        outputs=reader.output_names(len(settings.factors)),
        metrics={
            "what": f"the {len(held)} held-out scans (fold 0 of {settings.folds}, patient-grouped), each read by a "
            "reading stage fitted on the other half of the held-out women; one split, not cross-validation; "
            "95% bootstrap CI over patients; baseline = NORM for every image / constant score",
            **figures,
        },
        data=training_records.described(
            records, data_dir, f"train.splits.patient_folds(k={settings.folds}, seed={settings.seed}): fold 0 held out"),
        record={
            "model": "ImageNet MobileNet v1 0.25 trunk at scales " + ", ".join(f"{settings.size // f}" for f in settings.factors)
            + (f" (last {settings.fine_tune} blocks trained)" if settings.fine_tune else " (frozen)")
            + "; lesion-cell, class and malignancy heads trained by AdamW on the float trunk's features, run in float "
            "beside the quantized network"
            + f" under tf.distribute ({strategy_name}); two-breast reading stage",
            "settings": settings.to_json(),
            "strategy": strategy_name,
            "workers": me.workers,
            "replicas": strategy.num_replicas_in_sync,
            "weights_sha256": digest,
            "trained_parameters": int(sum(np.prod(v.shape) for v in model.trainable_variables)),
            "images_per_second": round(settings.batch_size / float(np.median(steady)), 2),
            "command": command,
            "train_seconds": round(time.time() - started, 1),
        },
    )
    handoff.write(out / "final", trunks, result)
    if me.workers > 1:
        wait_for_each_other(strategy)
    log(f"done in {time.time() - started:.0f} s: {out / 'final' / 'model.keras'}")
    return result
