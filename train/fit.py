"""Training one model on a set of prepared images (the training folds, or all of them).

Class imbalance is handled in two halves: images are drawn with probability proportional to
1/sqrt(count of their class), and the 7-class loss weights each class by the remaining
1/sqrt(count), so every class weighs the same in expectation while rare-class images are not
repeated so often that the network memorises them. The heat-map output is trained cell by cell
against the lesion circles (zero for normal scans, skipped for a lesion without coordinates).
Initialisation: `scratch` (random), or `patch`: the same network first trains, with the same four
losses, on 64x64 lesion and background patches cut from the same training images (16 times
cheaper than a whole image, and every patch has a lesion or none), then on whole images.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from edge import LABELS
from train import data as tdata
from train.data import Augment, Dataset

INITS = ("scratch", "patch")


@dataclass(frozen=True)
class Config:
    size: int = 256
    width: float = 1.0
    epochs: int = 20
    batch: int = 8
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    sampling_power: float = 0.5
    label_smoothing: float = 0.05
    loss_weights: dict = field(
        default_factory=lambda: {"classes": 1.0, "abnormal": 1.0, "malignant": 0.5, "heatmap": 2.0}
    )
    heatmap_pos_weight: float = 4.0
    init: str = "scratch"
    patch_side: int = 64
    patch_epochs: int = 10
    patch_count: int = 2048
    finetune_epochs: int = 14
    finetune_lr_scale: float = 0.33
    patch_batch: int = 32
    samples_per_epoch: int = 208
    augment: Augment = field(default_factory=Augment)

    def to_json(self) -> dict:
        return asdict(self)


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def _losses(config: Config, weights):
    """The four losses; `weights` (a tf.Variable) holds the 7 class weights of the current fold."""
    tf = _tf()
    smooth = config.label_smoothing

    def classes_loss(y_true, y_pred):
        y_true = y_true * (1 - smooth) + smooth / len(LABELS)
        per_image = tf.reduce_sum(y_true * weights, -1)  # the true class's weight (smoothing aside)
        ce = -tf.reduce_sum(y_true * tf.math.log(tf.clip_by_value(y_pred, 1e-7, 1.0)), -1)
        return per_image * ce

    def heatmap_loss(y_true, y_pred):
        valid = tf.cast(y_true >= 0, tf.float32)
        target = tf.clip_by_value(y_true, 0.0, 1.0)
        p = tf.clip_by_value(y_pred, 1e-6, 1 - 1e-6)
        cell = -(config.heatmap_pos_weight * target * tf.math.log(p) + (1 - target) * tf.math.log(1 - p))
        return tf.reduce_sum(cell * valid, [1, 2]) / tf.maximum(tf.reduce_sum(valid, [1, 2]), 1.0)

    return {
        "classes": classes_loss,
        "abnormal": "binary_crossentropy",
        "malignant": "binary_crossentropy",
        "heatmap": heatmap_loss,
    }


def _targets(data: Dataset, circles, grid: int) -> dict[str, np.ndarray]:
    unlocated = data.unlocated
    return {
        "classes": np.eye(len(LABELS), dtype=np.float32)[data.class_index],
        "abnormal": data.abnormal[:, None],
        "malignant": data.malignant[:, None],
        "heatmap": np.stack(
            [tdata.heatmap_target(c, data.size, grid, bool(u)) for c, u in zip(circles, unlocated)]
        ),
    }


def _optimizer(config: Config, steps: int, scale: float = 1.0):
    import keras

    peak = config.learning_rate * scale
    schedule = keras.optimizers.schedules.CosineDecay(
        peak * 0.1, steps, warmup_target=peak, warmup_steps=max(steps // 20, 1)
    )
    return keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay)


class Trainer:
    """One compiled network reused for every fold: each `fit` starts from fresh seeded weights and a
    zeroed optimizer, but TensorFlow traces the training step only once (about 25 s per model saved).

    Every epoch draws `config.samples_per_epoch` images (a whole number of batches), so folds of
    slightly different sizes and the final model share one step count and one learning-rate schedule.
    """

    def __init__(self, config: Config):
        tf = _tf()
        import keras

        from train.model import build

        if config.init not in INITS:
            raise ValueError(f"unknown init {config.init!r}; choose from {INITS}")
        self.config = config
        self.image_epochs = config.finetune_epochs if config.init == "patch" else config.epochs
        self.class_weights = tf.Variable(np.ones(len(LABELS), np.float32), trainable=False)
        self.model = build(config.size, config.width, batch_size=None)
        steps = self.image_epochs * (config.samples_per_epoch // config.batch)
        scale = config.finetune_lr_scale if config.init == "patch" else 1.0
        self.model.compile(
            _optimizer(config, steps, scale), loss=_losses(config, self.class_weights), loss_weights=config.loss_weights
        )
        self.patch_model = None
        if config.init == "patch":
            self.patch_model = build(config.patch_side, config.width, batch_size=None)
            patch_steps = config.patch_epochs * (config.patch_count // config.patch_batch)
            self.patch_model.compile(
                _optimizer(config, patch_steps), loss=_losses(config, self.class_weights), loss_weights=config.loss_weights
            )
        self._keras = keras

    def _reset(self, model, fresh) -> None:
        model.set_weights(fresh.get_weights())
        for variable in model.optimizer.variables:
            variable.assign(np.zeros(variable.shape, variable.dtype))

    def _pretrain_patches(self, data: Dataset, rng: np.random.Generator, progress=None) -> dict:
        """Patch pre-training: the same network and losses on lesion/background patches of `data` only."""
        from train.model import HEATMAP_STRIDE, build, copy_weights

        config = self.config
        self._reset(self.patch_model, build(config.patch_side, config.width, batch_size=None))
        history: dict[str, list] = {}
        epochs = range(config.patch_epochs)
        for _ in progress(epochs, desc="patches", leave=False) if progress else epochs:
            batch = tdata.patches(data, rng, config.patch_count, config.patch_side, config.augment)
            y = _targets(batch, batch.circles, config.patch_side // HEATMAP_STRIDE)
            x = batch.images[..., None].astype(np.float32)
            h = self.patch_model.fit(x, y, batch_size=config.patch_batch, epochs=1, verbose=0, shuffle=False)
            for key, values in h.history.items():
                history.setdefault(key, []).append(float(values[-1]))
        copy_weights(self.patch_model, self.model)
        return history

    def fit(self, data: Dataset, seed: int, monitor: Dataset | None = None, progress=None):
        """Train on `data` (augmented) from fresh weights; returns (model, history).

        `monitor`, when given, is scored after each epoch for the training-curve picture only: no
        choice (epochs, threshold, model) is ever made from it.
        """
        from train.model import HEATMAP_STRIDE, build

        config = self.config
        seed = int(seed)
        self._keras.utils.set_random_seed(seed)
        rng = np.random.default_rng(seed)
        grid = config.size // HEATMAP_STRIDE
        self._reset(self.model, build(config.size, config.width, batch_size=None))
        self.class_weights.assign(tdata.class_loss_weights(data.class_index, config.sampling_power))
        history: dict[str, list] = {}
        if config.init == "patch":
            history["patch"] = self._pretrain_patches(data, rng, progress)

        draw = tdata.sampling_weights(data.class_index, config.sampling_power)
        if monitor is not None:
            monitor_x = monitor.images[..., None].astype(np.float32)
            monitor_y = _targets(monitor, monitor.circles, grid)
        epochs = range(self.image_epochs)
        started = time.time()
        for _ in progress(epochs, desc="epochs", leave=False) if progress else epochs:
            index = rng.choice(len(data.records), size=config.samples_per_epoch, p=draw)
            pairs = [tdata.augment(data.images[i], data.circles[i], rng, config.augment) for i in index]
            x = np.stack([p[0] for p in pairs])[..., None].astype(np.float32)
            y = _targets(data.subset(index), [p[1] for p in pairs], grid)
            h = self.model.fit(x, y, batch_size=config.batch, epochs=1, verbose=0, shuffle=False)
            for key, values in h.history.items():
                history.setdefault(f"train_{key}", []).append(float(values[-1]))
            if monitor is not None:
                scores = self.model.evaluate(monitor_x, monitor_y, batch_size=config.batch, verbose=0, return_dict=True)
                for key, value in scores.items():
                    history.setdefault(f"monitor_{key}", []).append(float(value))
        history["seconds"] = time.time() - started
        return self.model, history


def train(data: Dataset, config: Config, seed: int, monitor: Dataset | None = None, progress=None):
    """Train one model on `data` (a fresh `Trainer`); returns (model, history)."""
    return Trainer(config).fit(data, seed, monitor, progress)


def predict(model, data: Dataset, batch: int = 16) -> dict[str, np.ndarray]:
    """The four outputs for every image of `data`, as numpy arrays."""
    outputs = model.predict(data.images[..., None].astype(np.float32), batch_size=batch, verbose=0)
    classes, abnormal, malignant, heatmap = outputs
    return {"classes": classes, "abnormal": abnormal[:, 0], "malignant": malignant[:, 0], "heatmap": heatmap}
