"""Interleaved timing rounds shared by the benchmarks (`python benchmarks/<name>.py` puts this folder on the path).

    from timing import interleaved_rounds
    times = interleaved_rounds({"ours": step_a, "reference": step_b}, repeats=5, steps=10, warmup=1)
    # {"ours": [seconds per call in round 1, ...], "reference": [...]}
"""

import time


def interleaved_rounds(fns, repeats, steps, warmup=1):
    """{name: [seconds per call, one per round]}: `warmup` untimed calls of each function first (tracing,
    compilation), then `repeats` rounds of `steps` calls each, the order rotating every round so that no
    contender always runs first (or last) under a changing machine load."""
    names = list(fns)
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            for _ in range(steps):
                fns[name]()
            times[name].append((time.perf_counter() - start) / steps)
    return times
