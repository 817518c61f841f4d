import numpy as np
import pytest
import tensorflow as tf

from zoo.models.gan import ImagePool


def _batch(values):
    """A batch of 1x1x1 'images' holding the given values."""
    return tf.constant(np.asarray(values, np.float32).reshape(-1, 1, 1, 1))


def _flat(x):
    return np.asarray(x).reshape(-1).tolist()


def test_fills_first_then_swaps_half_the_time():
    pool = ImagePool(4, (1, 1, 1), seed=0)
    assert _flat(pool.query(_batch([1, 2, 3]))) == [1, 2, 3]  # filling: the inputs come back
    assert _flat(pool.query(_batch([4]))) == [4]
    assert _flat(pool.images) == [1, 2, 3, 4] and int(pool.count) == 4

    swapped = 0
    for step in range(50):
        new = 100 + step
        before = _flat(pool.images)
        shown = _flat(pool.query(_batch([new])))[0]
        after = _flat(pool.images)
        if shown == new:  # kept the new image out of the pool
            assert after == before
        else:  # returned a stored image and stored the new one in its slot
            swapped += 1
            assert shown in before and after == [new if v == shown else v for v in before]
    assert 15 <= swapped <= 35  # p = 1/2


def test_within_batch_order_and_seeding():
    first, second = ImagePool(2, (1, 1, 1), seed=5), ImagePool(2, (1, 1, 1), seed=5)
    values = list(range(1, 21))
    assert _flat(first.query(_batch(values))) == _flat(second.query(_batch(values)))
    other = ImagePool(2, (1, 1, 1), seed=6)
    assert _flat(other.query(_batch(values))) != _flat(ImagePool(2, (1, 1, 1), seed=5).query(_batch(values)))
    shown = _flat(first.query(_batch(values)))
    assert all(s in values for s in shown)


def test_size_zero_is_a_pass_through():
    pool = ImagePool(0, (2, 2, 3))
    x = tf.random.uniform((3, 2, 2, 3))
    assert pool.query(x) is x and not pool.weights


def test_get_config():
    pool = ImagePool(7, (4, 4, 3), seed=2)
    assert ImagePool.from_config(pool.get_config()).get_config() == pool.get_config()


@pytest.mark.distributed
def test_two_replicas_equal_one_device(mirrored):
    batches = [_batch(np.arange(4) + 10 * k) for k in range(4)]
    single = ImagePool(3, (1, 1, 1), seed=1)
    expected = [_flat(single.query(b)) for b in batches]

    strategy = mirrored
    with strategy.scope():
        pool = ImagePool(3, (1, 1, 1), seed=1)
    step = tf.function(lambda x: strategy.run(pool.query, args=(x,)))
    for batch, want in zip(batches, expected):
        data = strategy.experimental_distribute_values_from_function(
            lambda ctx, b=batch: b[2 * ctx.replica_id_in_sync_group:][:2])
        got = sum((_flat(x) for x in strategy.experimental_local_results(step(data))), [])
        assert got == want
    assert _flat(pool.images) == _flat(single.images) and int(pool.count.numpy()) == 3
