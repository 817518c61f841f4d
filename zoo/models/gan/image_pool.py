"""The image history buffer of Shrivastava et al. (2017) as CycleGAN uses it (`util/image_pool.py`)."""

import keras
import tensorflow as tf

from zoo.layers import Configurable
from zoo.ops import num_replicas, replica_id


@keras.saving.register_keras_serializable(package="zoo")
class ImagePool(Configurable, keras.layers.Layer):
    """Holds up to `pool_size` past generated images; `query` returns the batch the discriminator sees.

    For each image in order: while the pool is filling it is stored and returned; once full, with
    probability 1/2 a random stored image is returned and replaced by the new one, else the new image is
    returned. `pool_size=0` returns the input.

    Under a distribution strategy the pool is global: every replica gathers the global batch of fakes,
    runs the same (seeded, counter-based) draws on it, and keeps its own slice, so N replicas update the
    pool exactly as one device does with the same global batch. The pool lives in non-trainable variables
    and is saved in checkpoints.

    Args:
        pool_size: images kept (50 in CycleGAN).
        image_shape: (height, width, channels) of one image.
        seed: seed of the draws.

    Example:
        pool = ImagePool(50, (256, 256, 3))
        shown = pool.query(tf.stop_gradient(fake_images))
    """

    def __init__(self, pool_size=50, image_shape=(256, 256, 3), seed=0, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = int(pool_size)
        self.image_shape = tuple(image_shape)
        self.seed = int(seed)
        if self.pool_size > 0:
            sync = dict(trainable=False, aggregation="only_first_replica")
            self.images = self.add_weight(shape=(self.pool_size, *self.image_shape), initializer="zeros",
                                          dtype="float32", name="images", **sync)
            self.count = self.add_weight(shape=(), initializer="zeros", dtype="int32", name="count", **sync)
            self.draws = self.add_weight(shape=(), initializer="zeros", dtype="int32", name="draws", **sync)
        self.built = True

    def query(self, images):
        """Returns the images to show the discriminator in place of `images` ([batch, *image_shape])."""
        if self.pool_size == 0:
            return images
        replicas = num_replicas()
        local = tf.cast(images, tf.float32)
        batch = local.shape[0]
        if batch is None:
            raise ValueError("ImagePool.query needs a static batch size (batch with drop_remainder=True)")
        everyone = local if replicas == 1 else tf.distribute.get_replica_context().all_gather(local, axis=0)

        pool = tf.convert_to_tensor(self.images)
        count = tf.convert_to_tensor(self.count)
        draws = tf.convert_to_tensor(self.draws)
        shown = []
        for i in range(batch * replicas):
            image = everyone[i]
            seed = tf.stack([tf.constant(self.seed, tf.int32), draws + i])
            coin = tf.random.stateless_uniform([], seed)
            slot = tf.random.stateless_uniform([], seed + 1, 0, self.pool_size, dtype=tf.int32)
            filling = count < self.pool_size
            swap = tf.logical_and(tf.logical_not(filling), coin > 0.5)
            index = tf.where(filling, tf.minimum(count, self.pool_size - 1), slot)
            stored = tf.gather(pool, index)  # (a dynamic slice would make XLA recompile per index)
            shown.append(tf.where(swap, stored, image))
            keep = tf.where(tf.logical_or(filling, swap), image, stored)
            pool = tf.tensor_scatter_nd_update(pool, [[index]], keep[None])
            count += tf.cast(filling, tf.int32)
        self.images.assign(pool)
        self.count.assign(count)
        self.draws.assign(draws + batch * replicas)
        shown = tf.stack(shown)
        if replicas > 1:
            shown = tf.reshape(shown, [replicas, batch, *self.image_shape])
            shown = tf.gather(shown, replica_id())
        return tf.cast(shown, images.dtype)
