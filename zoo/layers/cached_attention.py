"""Multi-head attention with a key/value cache for incremental decoding."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="zoo")
class CachedMultiHeadAttention(keras.layers.MultiHeadAttention):
    """`keras.layers.MultiHeadAttention` (same weights and config) whose call can read and extend a cache.

    The cache holds the projected keys and values, `[batch, 2, length, heads, head_dim]` (keys at index 0 of
    axis 1, values at 1):
    - self-attention while decoding: pass `cache` (capacity `length`, zeros where nothing was written yet) and
      `cache_index`, the position of the first query; the layer projects `value`, writes its keys/values at
      `cache_index`, attends over the whole cache (the caller masks the positions not written yet) and returns
      `(output, new_cache)`;
    - cross-attention: `project_cache(value)` once, then pass it as `cache` with `cache_index=None`: the keys and
      values are read, nothing is projected or written; returns `output` alone.
    Without a cache it is plain multi-head attention (keys from `key`, default `value`).

    Example:
        layer = CachedMultiHeadAttention(num_heads=2, key_dim=8)
        x = keras.random.normal((1, 1, 16))
        layer(x, x)                                               # builds it
        cache = keras.ops.zeros((1, 2, 5, 2, 8))
        y, cache = layer(x, x, cache=cache, cache_index=0)       # position 0 written
    """

    def project_cache(self, value):
        """Keys and values of `value` [batch, length, dim], stacked: [batch, 2, length, heads, head_dim]."""
        return ops.stack([self.key_dense(value), self.value_dense(value)], axis=1)

    def call(self, query, value, key=None, attention_mask=None, cache=None, cache_index=None, training=None):
        q = self.query_dense(query)
        key = value if key is None else key
        if cache is None:
            k, v = self.key_dense(key), self.value_dense(value)
        elif cache_index is None:
            k, v = cache[:, 0], cache[:, 1]
        else:
            start = [0, cache_index, 0, 0]
            k = ops.slice_update(cache[:, 0], start, ops.cast(self.key_dense(key), cache.dtype))
            v = ops.slice_update(cache[:, 1], start, ops.cast(self.value_dense(value), cache.dtype))
            cache = ops.stack([k, v], axis=1)
        output, _ = self._compute_attention(q, k, v, attention_mask=attention_mask, training=training)
        output = self.output_dense(output)
        return (output, cache) if cache_index is not None else output
