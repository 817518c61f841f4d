"""One flag to one `tf.distribute` strategy, shared by every recipe.

    strategy = from_flag("mirrored")       # all local GPUs; one device: the default strategy (same result)
    with strategy.scope():
        model = make_model()

TensorFlow is imported on first use, so `STRATEGIES` is cheap to import (flag declarations use it).
"""

import json
import os
import sys

from zoo.errors import ZooError
from zoo.training.connect import exit_on_sigterm, rendezvous

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
_MIRRORED = {}
_NOTED = set()  # notes printed once per process


CONNECT_TIMEOUT = 300.0  # seconds; --connect_timeout


def from_flag(name, tpu=None, connect_timeout=CONNECT_TIMEOUT):
    """Returns the strategy named by `--strategy`.

    default: the default strategy (one device: the first GPU, else the CPU).
    mirrored: MirroredStrategy over all local GPUs; without GPUs, over the CPU, split into
        $ZOO_CPU_REPLICAS logical devices when that is set (to try multi-replica runs on a CPU). Over a
        single device it returns the default strategy instead, with a note on stderr: the same computation,
        without the mirrored machinery's per-step cost (measured at +13% to +70% per step on a 2-core CPU).
    multi_worker: MultiWorkerMirroredStrategy configured from the TF_CONFIG environment variable.
    tpu: TPUStrategy; `tpu` is the TPU name or grpc:// address ("local" on a TPU VM).

    multi_worker and tpu wait at most `connect_timeout` seconds for their peers to accept connections,
    saying what they wait for, then stop with one line naming the addresses they could not reach; SIGTERM
    ends the wait, and any later phase, at once (see `zoo.training.connect`).
    """
    import tensorflow as tf

    name = (name or "default").lower()
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        cpus = os.environ.get("ZOO_CPU_REPLICAS")
        if cpus and not tf.config.list_physical_devices("GPU"):
            _split_cpu_once(cpus)
        devices = [d.name for d in tf.config.list_logical_devices("GPU")]
        if not devices:
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        if len(devices) == 1 and not cpus:
            if "one_device" not in _NOTED:
                _NOTED.add("one_device")
                print(f"--strategy=mirrored: one device ({devices[0]}), so training with the default strategy "
                      "(the same computation, less overhead)", file=sys.stderr, flush=True)
            return tf.distribute.get_strategy()
        key = tuple(devices)
        if key not in _MIRRORED:  # one per process: a second reuses collective keys and fails at run time
            _MIRRORED[key] = tf.distribute.MirroredStrategy(devices)
        return _MIRRORED[key]
    if name == "multi_worker":
        return _multi_worker(connect_timeout)
    if name == "tpu":
        return _tpu(tpu, connect_timeout)
    raise ZooError(f"unknown --strategy={name!r}; choose one of: {', '.join(STRATEGIES)}")


def _multi_worker(connect_timeout):
    import tensorflow as tf

    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ZooError(
            "--strategy=multi_worker needs the TF_CONFIG environment variable, e.g. "
            '{"cluster": {"worker": ["host0:12345", "host1:12345"]}, "task": {"type": "worker", "index": 0}}'
        )
    try:
        config = json.loads(raw)
        cluster = config["cluster"]
        task_type, index = config["task"]["type"], int(config["task"]["index"])
        members = cluster[task_type]
    except (ValueError, KeyError, TypeError) as e:
        raise ZooError(f"TF_CONFIG is not valid ({e}); it needs cluster.worker and task.type/task.index") from None
    if not cluster.get("worker"):
        raise ZooError("TF_CONFIG lists no workers in cluster.worker")
    if not 0 <= index < len(members):
        raise ZooError(f"TF_CONFIG's task.index={index} is outside cluster.{task_type}, which lists "
                       f"{len(members)} address(es) (indices 0 to {len(members) - 1})")
    own = members[index]
    peers = [a for role in ("chief", "worker") for a in cluster.get(role, []) if a != own]
    rendezvous(peers, own=own, what="the other workers", deadline=connect_timeout, flag="--connect_timeout")
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.AUTO
    )
    strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    exit_on_sigterm()  # TensorFlow's coordination service replaced SIGTERM by a preemption notice
    return strategy


def _tpu(address, connect_timeout):
    import tensorflow as tf

    if address is None:
        raise ZooError("--strategy=tpu needs --tpu (the TPU name or grpc:// address; 'local' on a TPU VM)")

    if "://" in address:
        rendezvous([address], what=f"the TPU {address}", deadline=connect_timeout, flag="--connect_timeout")
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address)
        if address != "local":
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except Exception as e:  # resolver, network and runtime errors all mean the same to the user
        raise ZooError(f"could not reach the TPU {address!r}: {str(e).splitlines()[0]}") from None
    exit_on_sigterm()
    return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy):
    """True on the worker that writes checkpoints, summaries and exports."""
    import tensorflow as tf

    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type in (None, "chief"):
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


def _split_cpu_once(value):
    import tensorflow as tf

    try:
        n = int(value)
        assert n >= 1
    except (ValueError, AssertionError):
        raise ZooError(f"ZOO_CPU_REPLICAS={value!r} must be a positive integer") from None
    try:
        split_cpu(n)
    except RuntimeError:  # TensorFlow already started: fine if it has the devices asked for
        if len(tf.config.list_logical_devices("CPU")) != n:
            raise ZooError("ZOO_CPU_REPLICAS must be set before TensorFlow starts (before the first op)") from None


def split_cpu(n):
    """Splits the first physical CPU into `n` logical devices (call before TensorFlow initialises)."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
