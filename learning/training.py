"""Compiled local training and evaluation, built once per process and reused.

The Flower quickstart rebuilds and recompiles a Keras model for every client call
(`clear_session`, `build`, `compile`, `fit`). Here a process keeps one model per
(model, input shape, classes) and one `tf.function` train step traced once for a
variable batch size, so a client update is: set weights, run the steps, read weights.
The optimiser is written out in the step (SGD with momentum, or Adam) so that its
state can be zeroed per client without retracing, and so that FedProx's proximal
term and SCAFFOLD's control-variate correction are two extra tensors, not new code.
Continual learning adds more terms the same way: EWC's Fisher-weighted pull towards an
anchor (variables), LwF's distillation towards precomputed soft targets, replay's extra
examples and TARGET's synthetic images with their soft targets (arguments of the
compiled epoch, gathered per batch), FOT's gradient projection (projector variables).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from learning.models import build_model
from learning.plugin_settings import PluginSettings
from learning.plugins import reads_settings
from learning.projection_tf import Projectors
from learning.train_types import ContinualInputs, LocalTrainConfig, StepMode, TrainResult

_TRAINERS: dict[tuple, Trainer] = {}


class Trainer:
    """One built model with compiled train and predict functions."""

    def __init__(
        self,
        model_name: str,
        input_shape: tuple[int, int, int],
        num_classes: int,
        settings: Mapping[str, Any] | None = None,
    ):
        from learning.tf_import import import_tensorflow

        tf = import_tensorflow()
        self.tf = tf
        self.model = build_model(model_name, input_shape, num_classes, settings)
        self.num_classes = num_classes
        self.trace_count = 0
        variables = self.model.trainable_variables
        self._vars = variables
        self._anchor = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
        self._correction = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
        self._m = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
        self._v = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
        self._t = tf.Variable(0.0, trainable=False)
        self._lr = tf.Variable(0.0, trainable=False)
        self._momentum = tf.Variable(0.0, trainable=False)
        self._wd = tf.Variable(0.0, trainable=False)
        self._mu = tf.Variable(0.0, trainable=False)
        self._fisher = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
        self._ewc_anchor = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
        self._ewc_lambda = tf.Variable(0.0, trainable=False)
        self._lwf_alpha = tf.Variable(0.0, trainable=False)
        self._lwf_t = tf.Variable(1.0, trainable=False)
        self._mask = [tf.Variable(1.0, trainable=False) for _ in variables]  # 0 = frozen
        shape = [None, *input_shape]
        self._spec = (tf.TensorSpec(shape, tf.float32), tf.TensorSpec([None], tf.int64))
        # Placeholders for the continual arguments of modes that do not use them.
        self._no_soft = np.zeros((0, num_classes), np.float32)
        self._no_x = np.zeros((0, *input_shape), np.float32)
        self._no_y = np.zeros((0,), np.int64)
        self._no_idx = np.zeros((0,), np.int32)
        self._fisher_fn = None
        self._proj: Projectors | None = None  # FOT's projectors, made on first use
        self._steps: dict[StepMode, object] = {}
        self._predict = tf.function(
            lambda x: self.model(x, training=False),
            input_signature=(tf.TensorSpec(shape, tf.float32),),
        )

    def _epoch_for(self, mode: StepMode):
        """The compiled epoch for one `StepMode`.

        One graph per update rule actually used, each traced once per process.
        The batch loop runs inside the graph, so a client update is one call per epoch.
        """
        if mode not in self._steps:
            tf = self.tf
            spec = (
                *self._spec,
                tf.TensorSpec([None], tf.int32),  # permutation of the shard
                tf.TensorSpec([], tf.int32),  # batch size
                tf.TensorSpec([], tf.int32),  # most batches to run
                tf.TensorSpec([None, self.num_classes], tf.float32),  # LwF soft targets of x
                self._spec[0],  # replay buffer images
                self._spec[1],  # replay buffer labels
                tf.TensorSpec([None], tf.int32),  # replay picks, batch_size per batch
            )

            def epoch(x, y, perm, batch_size, max_batches, soft, bx, by, ridx):
                n = tf.shape(perm)[0]
                num_batches = tf.minimum((n + batch_size - 1) // batch_size, max_batches)
                loss_sum = tf.constant(0.0)
                hits = tf.constant(0.0)
                for b in tf.range(num_batches):
                    idx = perm[b * batch_size : tf.minimum((b + 1) * batch_size, n)]
                    extra = ()
                    if mode.lwf:
                        extra += (tf.gather(soft, idx),)
                    if mode.replay or mode.synth:  # TARGET: synthetic images, soft targets
                        r = ridx[b * batch_size : (b + 1) * batch_size]
                        extra += (tf.gather(bx, r), tf.gather(soft if mode.synth else by, r))
                    loss, h = self._step(tf.gather(x, idx), tf.gather(y, idx), mode, *extra)
                    loss_sum += loss * tf.cast(tf.shape(idx)[0], tf.float32)
                    hits += h
                return loss_sum, hits, num_batches

            self._steps[mode] = tf.function(epoch, input_signature=spec)
        return self._steps[mode]

    # The Python body runs only while tracing (once per mode and process).
    def _step(self, x, y, mode: StepMode, *extra):
        tf = self.tf
        prox, corr, decay, momentum, adam, ewc, lwf, replay, masked, project, synth = mode
        self.trace_count += 1
        soft = extra[0] if lwf else (extra[-1] if synth else None)
        n_cur = tf.shape(x)[0]
        y_all = y
        if replay:  # the batch plus as many buffer examples; one loss over both
            x = tf.concat([x, extra[-2]], axis=0)
            y_all = tf.concat([y, extra[-1]], axis=0)
        elif synth:  # TARGET: synthetic images, distilled only (no labels)
            x = tf.concat([x, extra[-2]], axis=0)
        with tf.GradientTape() as tape:
            probs_all = self.model(x, training=True)
            probs = probs_all[:n_cur]
            fit = probs if synth else probs_all
            loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(y_all, fit))
            if lwf or synth:
                # The model ends in softmax, so log p are logits up to a constant.
                p_kd = probs_all[n_cur:] if synth else probs
                log_s = tf.nn.log_softmax(tf.math.log(p_kd + 1e-7) / self._lwf_t, axis=1)
                distill = -tf.reduce_mean(tf.reduce_sum(soft * log_s, axis=1))
                loss = loss + self._lwf_alpha * tf.square(self._lwf_t) * distill
        grads = tape.gradient(loss, self._vars)
        if project:  # FOT: the update orthogonal to the old tasks' input subspaces
            grads = self._proj.apply(grads)
        if adam:
            self._t.assign_add(1.0)
        for i, (w, g) in enumerate(zip(self._vars, grads, strict=True)):
            if prox:
                g = g + self._mu * (w - self._anchor[i])
            if decay:
                g = g + self._wd * w
            if ewc:
                # Curvature lambda*F capped at 1/lr: an explicit step on the quadratic
                # penalty then moves at most to the anchor, never past it (no divergence).
                pull = tf.minimum(self._ewc_lambda * self._fisher[i], 1.0 / self._lr)
                g = g + pull * (w - self._ewc_anchor[i])
            if masked:  # a frozen variable's step is zero, whatever the optimiser
                g = g * self._mask[i]
            if adam:
                m, v = self._m[i], self._v[i]
                m.assign(0.9 * m + 0.1 * g)
                v.assign(0.999 * v + 0.001 * tf.square(g))
                m_hat = m / (1.0 - tf.pow(0.9, self._t))
                v_hat = v / (1.0 - tf.pow(0.999, self._t))
                w.assign_sub(self._lr * m_hat / (tf.sqrt(v_hat) + 1e-7))
            elif momentum:
                m = self._m[i]
                m.assign(self._momentum * m + g)
                w.assign_sub(self._lr * m)
            else:
                w.assign_sub(self._lr * g)
            if corr:
                # Outside momentum, as NIID-Bench applies SCAFFOLD's c - c_i: with
                # momentum 0.9 a correction fed through it is amplified tenfold on top
                # of control variates that already carry the momentum's larger steps.
                w.assign_sub(self._lr * self._correction[i])
        hits = tf.cast(tf.equal(tf.argmax(probs, axis=1), y), tf.float32)
        return loss, tf.reduce_sum(hits)

    def get_weights(self) -> list[np.ndarray]:
        return [np.asarray(w) for w in self.model.get_weights()]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        self.model.set_weights(weights)

    def train(
        self,
        weights: list[np.ndarray],
        x: np.ndarray,
        y: np.ndarray,
        cfg: LocalTrainConfig,
        rng: np.random.Generator,
        correction: list[np.ndarray] | None = None,
        continual: ContinualInputs | None = None,
        frozen: list[bool] | None = None,
    ) -> TrainResult:
        """Train from `weights` on (x, y); x float32 (N,H,W,C), y int64 (N,). `frozen`:
        per trainable variable, True to keep it as it is."""
        self.set_weights(weights)
        adam = cfg.optimizer == "adam"
        c = continual or ContinualInputs()
        ewc = c.fisher is not None and cfg.ewc_lambda > 0
        lwf = c.soft_targets is not None and cfg.lwf_alpha > 0
        replay = c.buffer_y is not None and len(c.buffer_y) > 0
        synth = c.synth_x is not None and len(c.synth_x) > 0 and cfg.lwf_alpha > 0
        mode = StepMode(
            proximal=cfg.proximal_mu > 0,
            correction=correction is not None,
            decay=cfg.weight_decay > 0,
            momentum=cfg.momentum > 0 and not adam,
            adam=adam,
            ewc=ewc,
            lwf=lwf,
            replay=replay,
            masked=frozen is not None,
            project=c.projectors is not None,
            synth=synth,
        )
        if mode.project:
            if self._proj is None:
                self._proj = Projectors(self.tf, [tuple(v.shape) for v in self._vars])
            self._proj.assign(c.projectors)
        if frozen is not None:
            for m, f in zip(self._mask, frozen, strict=True):
                m.assign(0.0 if f else 1.0)
        if ewc:
            for f, a, fv, av in zip(
                self._fisher, self._ewc_anchor, c.fisher, c.anchor, strict=True
            ):
                f.assign(fv)
                a.assign(av)
        self._ewc_lambda.assign(cfg.ewc_lambda)
        self._lwf_alpha.assign(cfg.lwf_alpha)
        self._lwf_t.assign(cfg.lwf_temperature)
        soft = c.soft_targets.astype(np.float32) if lwf else self._no_soft
        bx = c.buffer_x.astype(np.float32) if replay else self._no_x
        by = c.buffer_y.astype(np.int64) if replay else self._no_y
        if synth:
            soft, bx = c.synth_soft.astype(np.float32), c.synth_x.astype(np.float32)
        if mode.proximal:
            for a, w in zip(self._anchor, self._vars, strict=True):
                a.assign(w)
        if mode.correction:
            for c, value in zip(self._correction, correction, strict=True):
                c.assign(value)
        if mode.momentum or adam:
            for s in (*self._m, *self._v):
                s.assign(self.tf.zeros_like(s))
        self._t.assign(0.0)
        self._lr.assign(cfg.lr)
        self._momentum.assign(cfg.momentum)
        self._wd.assign(cfg.weight_decay)
        self._mu.assign(cfg.proximal_mu)
        epoch = self._epoch_for(mode)
        n = len(y)
        steps, loss_sum, hits, seen = 0, 0.0, 0.0, 0
        bs = max(1, cfg.batch_size)
        xt, yt = self.tf.convert_to_tensor(x), self.tf.convert_to_tensor(y)
        for _ in range(cfg.epochs):
            budget = cfg.max_steps - steps if cfg.max_steps else 2**30
            if budget <= 0 or n == 0:
                break
            order = rng.permutation(n).astype(np.int32)
            picks = self._no_idx
            if replay or synth:
                batches = min(-(-n // bs), budget)
                picks = rng.integers(0, len(bx), size=batches * bs).astype(np.int32)
            ls, h, nb = epoch(xt, yt, order, np.int32(bs), np.int32(budget), soft, bx, by, picks)
            steps += int(nb)
            loss_sum += float(ls)
            hits += float(h)
            seen += min(n, int(nb) * bs)
        return TrainResult(
            weights=self.get_weights(),
            num_examples=n,
            num_steps=steps,
            loss=loss_sum / seen if seen else 0.0,
            accuracy=hits / seen if seen else 0.0,
        )

    def predict(self, weights: list[np.ndarray], x: np.ndarray, batch_size: int = 1000):
        """(N, classes) output probabilities of `weights` on x."""
        self.set_weights(weights)
        out = [
            np.asarray(self._predict(x[s : s + batch_size])) for s in range(0, len(x), batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0, self.num_classes), np.float32)

    def soft_targets(self, weights: list[np.ndarray], x: np.ndarray, temperature: float):
        """LwF targets: softmax(log p / T) of `weights` on x, shape (N, classes)."""
        logits = np.log(np.clip(self.predict(weights, x), 1e-7, 1.0)) / float(temperature)
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    def fisher_diagonal(
        self, weights: list[np.ndarray], x: np.ndarray, y: np.ndarray
    ) -> list[np.ndarray]:
        """EWC's empirical diagonal Fisher of `weights` on (x, y) (learning/fisher.py)."""
        from learning.fisher import fisher_diagonal

        return fisher_diagonal(self, weights, x, y)

    def evaluate(
        self, weights: list[np.ndarray], x: np.ndarray, y: np.ndarray, batch_size: int = 1000
    ) -> tuple[float, float]:
        """(loss, accuracy) of `weights` on (x, y)."""
        if len(y) == 0:
            self.set_weights(weights)
            return 0.0, 0.0
        all_probs = self.predict(weights, x, batch_size)
        loss_sum, hits = 0.0, 0
        for start in range(0, len(y), batch_size):  # per batch: the same float sums as ever
            probs = all_probs[start : start + batch_size]
            yb = y[start : start + batch_size]
            p = np.clip(probs[np.arange(len(yb)), yb], 1e-7, 1.0)
            loss_sum += float(-np.log(p).sum())
            hits += int((probs.argmax(axis=1) == yb).sum())
        return loss_sum / len(y), hits / len(y)


def get_trainer(
    model_name: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    settings: Mapping[str, Any] | None = None,
) -> Trainer:
    """The process-wide trainer for this model, data shape and [plugin] settings (a
    builder may read them; built on first use)."""
    plugin = PluginSettings(settings if reads_settings("model", model_name) else {})
    key = (model_name, tuple(int(s) for s in input_shape), int(num_classes), plugin)
    if key not in _TRAINERS:
        _TRAINERS[key] = Trainer(model_name, key[1], key[2], plugin)
    return _TRAINERS[key]


def to_float_images(x: np.ndarray) -> np.ndarray:
    """uint8 images -> float32 in [0, 1]; done per client slice, not per dataset."""
    return x.astype(np.float32) / np.float32(255.0)
