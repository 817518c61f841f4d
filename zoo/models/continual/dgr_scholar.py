"""Scholar of Deep Generative Replay (Shin et al. 2017, arXiv 1705.08690): a WGAN-GP generator and a solver.

Training follows kuc2477/pytorch-deep-generative-replay at b2d82e4 (`dgr.py`, `models.py`): every step
draws one batch of the current task and, after the first task, one replay batch of the same size, and
minimises r·L(real) + (1 - r)·L(replay) for the solver (cross-entropy) and for the critic (WGAN-GP loss
with the real or replayed images as "real"); the generator step uses only its own noise.
"""

import keras
import tensorflow as tf

from zoo.errors import ZooError
from zoo.models.multi_optimizer import MultiOptimizerModel
from zoo.ops import global_step, num_replicas, replica_id, weighted_mean

ROLES = ("generator", "solver")


def _adam(learning_rate):
    """The reference's Adam: betas (0.5, 0.9), PyTorch's epsilon 1e-8 (Keras' 1e-7 stalls the critic's tiny
    early gradients); its weight decay is applied as coupled L2 by the scholar."""
    return keras.optimizers.Adam(learning_rate, beta_1=0.5, beta_2=0.9, epsilon=1e-8)


@keras.saving.register_keras_serializable(package="zoo")
class Scholar(MultiOptimizerModel):
    """Generator + solver trained on a sequence of tasks with generative or exact replay.

    `role` says what `train_step` trains: "generator" (critic_steps critic updates, then one generator
    update, per step) or "solver". Give `replay_generator` and `replay_solver` (the previous task's
    scholar, frozen) for generative replay: each step samples x' = G'(z) and labels it y' = argmax S'(x').
    For exact replay put `replay_image`/`replay_label` (real data of earlier tasks) into the batch instead.
    With neither, the step trains on the current task alone (fine-tuning, and the first task).

    Batches are dicts: `image` float [batch, h, w, c] in [0, 1] and `label` int [batch], plus optional
    `replay_image`, `replay_label` of the same shapes. Losses are each replica's share of the global loss
    (`zoo.ops.weighted_mean`), and noise is drawn for the global batch from stateless seeds and sliced per
    replica, so a step on N replicas equals the one-device step at the same global batch. The noise is
    a function of the step (`zoo.ops.global_step`).

    Optimizers (`MultiOptimizerModel`): `solver_optimizer`, and with a generator `generator_optimizer` and
    `critic_optimizer`. `model.optimizer` is the one that updates once per step in the current role: the
    solver's in role "solver", the generator's in role "generator".

    Differences from the reference, on purpose: the gradient penalty uses the norm of each sample's whole
    input gradient (WGAN-GP), where the reference takes the norm over channels only; the critic flattens its
    true 3×3 map (see `WganCritic`); the previous scholar samples in inference mode (BatchNorm moving
    statistics), where the reference's deep copy stays in training mode and uses batch statistics.

    Args:
        solver: `DgrSolver` (or any model images -> logits).
        generator, critic: `WganGenerator` and `WganCritic`; needed for role "generator" and for being
            the replay source of the next task.
        replay_generator, replay_solver: the previous scholar's networks (set to non-trainable here).
        replay_ratio: r, the weight of the current task's loss (the reference's `importance_of_new_task`).
        critic_steps: critic updates per generator update (5).
        gradient_penalty: λ of WGAN-GP (10).
        noise_scale: z ~ N(0, 1) · noise_scale (0.1 in the reference).
        weight_decay: coupled L2 added to every gradient, as torch Adam's `weight_decay` (1e-5).
        role: "generator" or "solver".
        seed: base seed of the step's noise.

    Example:
        scholar = zoo.create_model("dgr", preset="digits")
        scholar.compile()  # Adam(1e-4, 0.5, 0.9) for solver, generator and critic
        scholar.role = "solver"
        logs = scholar.train_step({"image": images, "label": labels})
    """

    def __init__(self, solver, generator=None, critic=None, replay_generator=None, replay_solver=None,
                 replay_ratio=0.3, critic_steps=5, gradient_penalty=10.0, noise_scale=0.1, weight_decay=1e-5,
                 role="solver", seed=0, **kwargs):
        super().__init__(**kwargs)
        if (generator is None) != (critic is None):
            raise ZooError("give both generator and critic, or neither")
        if (replay_generator is None) != (replay_solver is None):
            raise ZooError("generative replay needs both replay_generator and replay_solver")
        if not 0.0 < replay_ratio <= 1.0:
            raise ZooError(f"replay_ratio={replay_ratio} must be in (0, 1]: it weighs the current task's loss")
        if not 1 <= critic_steps <= 300:
            raise ZooError(f"critic_steps={critic_steps} must be between 1 and 300")
        self.solver = solver
        self.generator = generator
        self.critic = critic
        self.replay_generator = replay_generator
        self.replay_solver = replay_solver
        for model in (replay_generator, replay_solver):
            if model is not None:
                model.trainable = False
        self.replay_ratio = float(replay_ratio)
        self.critic_steps = int(critic_steps)
        self.gradient_penalty = float(gradient_penalty)
        self.noise_scale = float(noise_scale)
        self.weight_decay = float(weight_decay)
        self.seed = int(seed)
        self.role = role

    @property
    def role(self):
        return self._role

    @role.setter
    def role(self, value):
        if value not in ROLES:
            raise ZooError(f"unknown scholar role {value!r}; choose one of: {', '.join(ROLES)}")
        if value == "generator" and self.generator is None:
            raise ZooError("role 'generator' needs a scholar built with a generator and a critic")
        self._role = value
        self.select_step_optimizer()

    @property
    def optimizer_names(self):
        return ("solver",) if self.generator is None else ("solver", "generator", "critic")

    @property
    def step_optimizer(self):
        return "solver" if self.role == "solver" else "generator"

    def optimizer_variables(self, name):
        return getattr(self, name).trainable_variables

    @property
    def generative_replay(self):
        return self.replay_generator is not None

    def compile(self, optimizer=None, generator_optimizer=None, critic_optimizer=None, learning_rate=1e-4,
                **kwargs):
        """Sets the solver's optimizer (`optimizer`) and, with a generator, `generator_optimizer` and
        `critic_optimizer`.

        Missing ones are the reference's Adam(learning_rate, beta_1=0.5, beta_2=0.9, epsilon=1e-8). Under the
        mixed_float16 policy each is wrapped in a `LossScaleOptimizer`.
        """
        given = {"solver": optimizer, "generator": generator_optimizer, "critic": critic_optimizer}
        super().compile({name: given[name] or _adam(learning_rate) for name in self.optimizer_names}, **kwargs)

    def continue_from(self, previous):
        """Starts from `previous` (the last task's scholar): copies its weights and optimizer state.

        The reference trains one scholar, with one set of optimizers, through the whole task sequence.
        """
        self.build_optimizer_state()
        previous.build_optimizer_state()
        for name, optimizer in self.optimizers.items():
            getattr(self, name).set_weights(getattr(previous, name).get_weights())
            for var, prev_var in zip(optimizer.variables, previous.optimizers[name].variables):
                var.assign(prev_var)

    def call(self, images, training=False):
        return self.solver(images, training=training)

    # === Sampling ===

    def _seed(self, counter, offset):
        counter = tf.cast(counter, tf.int64) * 1024 + offset
        return tf.stack([tf.constant(self.seed, tf.int64), counter])

    def _normal(self, batch, dim, seed):
        """Noise for this replica's slice of the global batch (the same numbers on any replica count)."""
        replicas = num_replicas()
        full = tf.random.stateless_normal(tf.stack([replicas * batch, dim]), seed)
        return tf.gather(tf.reshape(full, tf.stack([replicas, batch, dim])), replica_id())

    def _uniform(self, batch, seed):
        replicas = num_replicas()
        full = tf.random.stateless_uniform(tf.stack([replicas * batch]), seed)
        return tf.gather(tf.reshape(full, tf.stack([replicas, batch])), replica_id())

    def _noise(self, batch, seed):
        return self._normal(batch, self.generator.input_shape[-1], seed) * self.noise_scale

    def sample(self, count, seed=0):
        """`count` generated images and the solver's labels for them (inference mode)."""
        z = tf.random.stateless_normal([count, self.generator.input_shape[-1]], [self.seed, seed]) * self.noise_scale
        images = self.generator(z, training=False)
        return images, tf.argmax(self.solver(images, training=False), axis=-1, output_type=tf.int32)

    def _replay(self, batch, counter, offset):
        """Replay batch (images, labels) or (None, None) when this task trains alone."""
        has_exact = "replay_image" in batch
        if has_exact and self.generative_replay:
            raise ZooError("the batch holds exact-replay data but the scholar was given a replay generator; "
                           "use one replay mode")
        if has_exact:
            return batch["replay_image"], batch["replay_label"]
        if not self.generative_replay:
            return None, None
        size = tf.shape(batch["image"])[0]
        z = self._normal(size, self.replay_generator.input_shape[-1], self._seed(counter, offset)) * self.noise_scale
        images = tf.stop_gradient(self.replay_generator(z, training=False))
        labels = tf.argmax(self.replay_solver(images, training=False), axis=-1, output_type=tf.int32)
        return images, labels

    # === Training ===

    def _apply(self, name, grads):
        """Applies gradients to network `name` with its optimizer, plus torch Adam's coupled weight decay."""
        self.apply_update(name, grads, getattr(self, name).trainable_variables, weight_decay=self.weight_decay)

    def _check(self, batch):
        if not isinstance(batch, dict) or "image" not in batch or "label" not in batch:
            raise ZooError("a scholar trains on dict batches with 'image' and 'label' (and optionally "
                           "'replay_image', 'replay_label')")
        expected = tuple(self.solver.input_shape[1:])
        for key in ("image", "replay_image"):
            if key in batch:
                shape = tuple(batch[key].shape[1:])
                if len(shape) != len(expected) or any(d is not None and d != e for d, e in zip(shape, expected)):
                    raise ZooError(f"batch {key!r} has images of shape {shape} but the scholar's networks take "
                                   f"{expected}; resize the data or build the scholar for that size")

    def train_step(self, batch):
        self.check_compiled()
        self._check(batch)
        if self.role == "solver":
            return self._solver_step(batch)
        return self._generator_step(batch)

    def _solver_step(self, batch):
        images, labels = batch["image"], tf.cast(batch["label"], tf.int32)
        replay_images, replay_labels = self._replay(batch, global_step(self), 1022)
        r = 1.0 if replay_images is None else self.replay_ratio
        # One tape per batch: the real and replayed passes' gradients (and their synchronized-BatchNorm
        # all-reduces) are then traced in the same order on every replica.
        total, accuracy, grads = self._cross_entropy(images, labels)
        grads = [r * g for g in grads]
        logs = {"accuracy": accuracy}
        if replay_images is not None:
            replay_total, logs["replay_accuracy"], replay_grads = self._cross_entropy(
                replay_images, tf.cast(replay_labels, tf.int32))
            grads = [g + (1 - r) * h for g, h in zip(grads, replay_grads)]
            total = r * total + (1 - r) * replay_total
        self._apply("solver", grads)
        logs["loss"] = total
        return logs

    def _cross_entropy(self, images, labels):
        """(global loss, global accuracy, gradients of this replica's loss share) of the solver on one batch."""
        with tf.GradientTape() as tape:
            logits = self.solver(images, training=True)
            share, total = weighted_mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
            scaled = self.scaled_loss("solver", share)
        _, accuracy = weighted_mean(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels))
        return total, accuracy, tape.gradient(scaled, self.solver.trainable_variables)

    def _critic_scores(self, images):
        return tf.cast(tf.reshape(self.critic(images, training=True), [-1]), tf.float32)

    def _penalty(self, reals, fake, counter, offset):
        """Per-sample (1 - ||∇ critic(x̂)||)² at x̂ = a·real + (1 - a)·fake, a ~ U(0, 1), for each of `reals`."""
        size = tf.shape(fake)[0]
        fake = tf.cast(fake, tf.float32)
        mixed = []
        for i, real in enumerate(reals):
            a = tf.reshape(self._uniform(size, self._seed(counter, offset + i)), [-1, 1, 1, 1])
            mixed.append(a * tf.cast(real, tf.float32) + (1 - a) * fake)
        mixed = tf.concat(mixed, 0)
        with tf.GradientTape() as tape:
            tape.watch(mixed)
            scores = self._critic_scores(mixed)
        grads = tape.gradient(scores, mixed)
        norm = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]) + 1e-12)
        return tf.split(tf.square(1.0 - norm), len(reals))

    def _generator_step(self, batch):
        images = tf.cast(batch["image"], tf.float32)
        size = tf.shape(images)[0]
        counter = global_step(self)
        replay_images, _ = self._replay(batch, counter, 1023)
        reals = [images] if replay_images is None else [images, tf.cast(replay_images, tf.float32)]
        weights = [1.0] if replay_images is None else [self.replay_ratio, 1.0 - self.replay_ratio]
        logs = {}
        for k in range(self.critic_steps):
            noise = self._noise(size, self._seed(counter, 3 * k))
            fake = tf.stop_gradient(self.generator(noise, training=True))
            with tf.GradientTape() as tape:
                scores = tf.split(self._critic_scores(tf.concat(reals + [fake], 0)), len(reals) + 1)
                penalties = self._penalty(reals, fake, counter, 3 * k + 1)
                real_share, real_total = weighted_mean(sum(w * s for w, s in zip(weights, scores)))
                penalty_share, penalty_total = weighted_mean(sum(w * p for w, p in zip(weights, penalties)))
                fake_share, fake_total = weighted_mean(scores[-1])
                share = fake_share - real_share + self.gradient_penalty * penalty_share
                scaled = self.scaled_loss("critic", share)
            self._apply("critic", tape.gradient(scaled, self.critic.trainable_variables))
        logs["wasserstein_distance"] = real_total - fake_total
        logs["gradient_penalty"] = penalty_total
        logs["critic_loss"] = fake_total - real_total + self.gradient_penalty * penalty_total

        with tf.GradientTape() as tape:
            fake = self.generator(self._noise(size, self._seed(counter, 3 * self.critic_steps)), training=True)
            share, total = weighted_mean(-self._critic_scores(fake))
            scaled = self.scaled_loss("generator", share)
        self._apply("generator", tape.gradient(scaled, self.generator.trainable_variables))
        logs["generator_loss"] = total
        return logs
