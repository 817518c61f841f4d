"""Throughput and peak memory of the BERT pretraining-data writer (`zoo.data.bert_shards`) on generated text.

    python benchmarks/bert_data.py                       # 10 MB and 100 MB, 2 worker processes, dupe_factor 1
    python benchmarks/bert_data.py --sizes_mb=10 --num_workers=1 --dupe_factor=5 --output=/tmp/bert_data.json

For each size a corpus of random sentences over a 5,000-word list is generated into a temporary directory (files
of at most 10 MB; 5 to 40 sentences a document, 4 to 24 words a sentence), and `write_pretraining_shards` turns
it into --num_shards shards in a fresh child process, so that each size's memory is measured on its own.
Reported: examples/s and MB of text/s over the whole run (worker start-up included), and peak memory: the
resident set (RSS) of the writing process and of its largest worker (`getrusage` of self and children), and of
all of them together, sampled every 0.2 s from /proc, both as the sum of RSS (which counts the ~0.7 GB of
shared TensorFlow libraries once per process) and as the sum of PSS (shared pages split between the
processes: the memory really used). The peaks must stay under 2 GB and not grow with the corpus; the script
prints both checks. dupe_factor 1 keeps the 100 MB run to minutes (the default 5 makes 5x
the examples from the same tokenised text, at a similar rate per example).
"""

import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

flags.DEFINE_list("sizes_mb", ["10", "100"], "Corpus sizes to time, in MB of text.")
flags.DEFINE_integer("num_workers", 2, "Worker processes of the writer.")
flags.DEFINE_integer("dupe_factor", 1, "Passes over the corpus (the recipe's default is 5).")
flags.DEFINE_integer("seq_length", 128, "Tokens per example.")
flags.DEFINE_integer("max_predictions", 20, "Masked positions per example.")
flags.DEFINE_integer("num_shards", 8, "Output shards.")
flags.DEFINE_string("output", None, "Also write the results to this JSON file.")
flags.DEFINE_string("child", None, "Internal: write the shards of this corpus directory and print JSON.")
FLAGS = flags.FLAGS

LIMIT_MB = 2048
FILE_MB = 10


def _words(count=5000, seed=0):
    rng = random.Random(seed)
    words = set()
    while len(words) < count:
        words.add("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10))))
    return sorted(words)


def _generate(directory, size_mb, seed=0):
    """Writes about `size_mb` MB of documents to `directory/part-*.txt`; returns the byte count."""
    rng, words, total, part = random.Random(seed), _words(), 0, 0
    while total < size_mb << 20:
        with open(os.path.join(directory, f"part-{part:03d}.txt"), "w", encoding="utf-8") as f:
            written = 0
            while written < FILE_MB << 20 and total + written < size_mb << 20:
                sentences = [" ".join(rng.choices(words, k=rng.randint(4, 24))) + "." for _ in range(rng.randint(5, 40))]
                text = "\n".join(sentences) + "\n\n"
                f.write(text)
                written += len(text)
        total += written
        part += 1
    return total


def _tree_memory_mb(pid):
    """(sum of VmRSS, sum of Pss) over `pid` and all its descendants, from /proc (Linux).

    RSS counts the pages of shared libraries (TensorFlow's are about 0.7 GB) once per process; PSS splits
    shared pages among the processes that map them, so its sum is the memory the process tree really uses.
    """
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    children.setdefault(int(f.read().rsplit(")", 1)[1].split()[1]), []).append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    rss = pss = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        stack.extend(children.get(p, []))
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                fields = dict(line.split()[:2] for line in f if line.startswith(("Rss:", "Pss:")))
        except OSError:
            continue
        rss, pss = rss + int(fields.get("Rss:", 0)), pss + int(fields.get("Pss:", 0))
    return rss / 1024, pss / 1024


def _child(corpus_dir):
    """Runs the writer on one corpus and prints one JSON line of measurements."""
    from zoo.data import bert_shards, wordpiece

    peak = {"rss": 0.0, "pss": 0.0}
    done = threading.Event()

    def sample():
        while not done.is_set():
            rss, pss = _tree_memory_mb(os.getpid())
            peak["rss"], peak["pss"] = max(peak["rss"], rss), max(peak["pss"], pss)
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    vocabulary = wordpiece.RESERVED_TOKENS + ["."] + _words()
    output = os.path.join(corpus_dir, "shards")
    start = time.perf_counter()
    metadata = bert_shards.write_pretraining_shards(
        {"input_files": os.path.join(corpus_dir, "*.txt")}, vocabulary, output, seq_length=FLAGS.seq_length,
        max_predictions=FLAGS.max_predictions, dupe_factor=FLAGS.dupe_factor, seed=0, num_shards=FLAGS.num_shards,
        num_workers=FLAGS.num_workers, verbose=True)
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    shard_bytes = sum(entry["bytes"] for entry in metadata["shards"].values())
    print(json.dumps({"seconds": seconds, "examples": metadata["examples"]["train"],
                      "documents": metadata["documents"]["train"], "chunks": metadata["chunks"]["train"],
                      "shard_mb": shard_bytes / 2**20, "peak_rss_main_mb": own,
                      "peak_rss_largest_worker_mb": workers, "peak_rss_sum_mb": peak["rss"],
                      "peak_pss_total_mb": peak["pss"]}))


def main(argv):
    del argv
    if FLAGS.child:
        return _child(FLAGS.child)
    results = []
    for size in [int(s) for s in FLAGS.sizes_mb]:
        with tempfile.TemporaryDirectory(prefix="zoo-bert-data-") as directory:
            text_bytes = _generate(directory, size)
            args = [sys.executable, os.path.abspath(__file__), f"--child={directory}",
                    f"--num_workers={FLAGS.num_workers}", f"--dupe_factor={FLAGS.dupe_factor}",
                    f"--seq_length={FLAGS.seq_length}", f"--max_predictions={FLAGS.max_predictions}",
                    f"--num_shards={FLAGS.num_shards}"]
            run = subprocess.run(args, capture_output=True, text=True)
            if run.returncode:
                sys.exit(f"the {size} MB run failed:\n{run.stderr[-3000:]}")
            result = json.loads(run.stdout.strip().splitlines()[-1])
        result.update(size_mb=size, text_mb=text_bytes / 2**20, examples_per_s=result["examples"] / result["seconds"],
                      text_mb_per_s=text_bytes / 2**20 / result["seconds"])
        results.append(result)
        print(f"{size:>4} MB: {result['documents']:,} documents -> {result['examples']:,} examples in "
              f"{result['seconds']:.0f} s ({result['examples_per_s']:,.0f} examples/s, {result['text_mb_per_s']:.2f} "
              f"MB/s); peak RSS: main {result['peak_rss_main_mb']:.0f} MB, largest worker "
              f"{result['peak_rss_largest_worker_mb']:.0f} MB (sum of RSS {result['peak_rss_sum_mb']:.0f} MB); "
              f"all processes' PSS {result['peak_pss_total_mb']:.0f} MB",
              flush=True)
    print(f"settings: --num_workers={FLAGS.num_workers} --dupe_factor={FLAGS.dupe_factor} "
          f"--seq_length={FLAGS.seq_length} --max_predictions={FLAGS.max_predictions} --num_shards={FLAGS.num_shards}")
    per_process = max(max(r["peak_rss_main_mb"], r["peak_rss_largest_worker_mb"]) for r in results)
    peaks = [r["peak_pss_total_mb"] for r in results]
    print(f"peak RSS of every process under {LIMIT_MB} MB: {'yes' if per_process < LIMIT_MB else 'NO'} "
          f"(max {per_process:.0f} MB); all processes' PSS under {LIMIT_MB} MB: "
          f"{'yes' if max(peaks) < LIMIT_MB else 'NO'} (max {max(peaks):.0f} MB)")
    if len(results) > 1:
        growth = peaks[-1] - peaks[0]
        print(f"peak PSS from {results[0]['size_mb']} MB to {results[-1]['size_mb']} MB of text: {growth:+.0f} MB "
              f"({'flat' if growth < 0.1 * peaks[0] else 'GROWS'})")
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            json.dump({"settings": {k: FLAGS[k].value for k in ("num_workers", "dupe_factor", "seq_length",
                                                                "max_predictions", "num_shards")},
                       "results": results}, f, indent=1)


if __name__ == "__main__":
    app.run(main)
