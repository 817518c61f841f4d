"""The report of an architecture search: a table of trials (CSV and markdown), the best cells drawn, accuracy
against parameters with the Pareto front, and best-so-far curves of several searches (PNAS vs random).

`trial_rows(oracle, project_dir)` reads a finished (or running) KerasTuner oracle: one row per trial in
creation order with its id, cell (JSON), blocks, hyper-parameters, params, mult-adds, validation top-1,
seconds, status and failure reason. `write_report(out_dir, {"PNAS": (oracle, dir), "random": (...)})` writes
`trials.csv`, `report.md`, `cell_<search>_<rank>.png` (the best cells), `accuracy_vs_params.png` and, with
two searches or more, `best_so_far.png`. Pictures use matplotlib's Agg backend.

A cell picture: the inputs H_{c-1} and H_{c-2} on the left, one "+" node per block (left to right), an edge per
block input labelled with its op, and the concatenated output on the right fed by the cell's `concat` states
(every block's output in the search space, as PNASNet's cell).

Example:
    rows = [{"trial": "0", "val_top1": 0.5, "params": 1000, "status": "COMPLETED"},
            {"trial": "1", "val_top1": 0.6, "params": 3000, "status": "COMPLETED"}]
    pareto_front(rows)                                         # both: neither is better in both
    best_so_far(rows)                                          # [0.5, 0.6]
    draw_cell('{"blocks": [[0, 1, "sep_3x3", "identity"]]}', "/tmp/cell.png", "a cell")
"""

import csv
import io
import json
import math
import os

from zoo.paths import write_file_atomically
from zoo.search.pnas_oracle import failure_reason
from zoo.search.trials import OBJECTIVE

COLUMNS = ("trial", "status", "blocks", "cell", "val_top1", "params", "mult_adds", "seconds", "learning_rate",
           "filters", "num_cells", "weight_decay", "drop_path_rate", "reason")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def trial_rows(oracle, project_dir=None):
    """One dict per trial of `oracle` (see COLUMNS), in creation order (numeric ids sort numerically)."""
    rows = []
    key = (lambda item: (0, int(item[0]), "") if str(item[0]).isdigit() else (1, 0, str(item[0])))
    for trial_id, trial in sorted(oracle.trials.items(), key=key):
        values = trial.hyperparameters.values
        row = {"trial": str(trial_id), "status": trial.status, "cell": values.get("cell", "")}
        try:
            row["blocks"] = len(json.loads(row["cell"])["blocks"])
        except (ValueError, KeyError, TypeError):
            row["blocks"] = ""
        for name in ("learning_rate", "filters", "num_cells", "weight_decay", "drop_path_rate"):
            row[name] = values.get(name, "")
        for name in (OBJECTIVE, "params", "mult_adds", "seconds"):
            value = trial.metrics.get_last_value(name) if trial.metrics.exists(name) else None
            row[name] = "" if value is None else float(value)
        trial_dir = os.path.join(project_dir, f"trial_{trial_id}") if project_dir else None
        row["reason"] = failure_reason(trial, trial_dir) if trial.status != "COMPLETED" else ""
        rows.append(row)
    return rows


def completed(rows):
    return [r for r in rows if r["status"] == "COMPLETED" and r[OBJECTIVE] != ""]


def pareto_front(rows, x="params"):
    """The completed rows no other completed row beats (as accurate or more, with as few `x` or fewer, and
    strictly better in one), sorted by `x`."""
    done = [r for r in completed(rows) if r.get(x) != ""]
    front = []
    for r in done:
        dominated = any(o is not r and o[OBJECTIVE] >= r[OBJECTIVE] and o[x] <= r[x] and
                        (o[OBJECTIVE] > r[OBJECTIVE] or o[x] < r[x]) for o in done)
        if not dominated:
            front.append(r)
    return sorted(front, key=lambda r: r[x])


def best_so_far(rows, k=1):
    """After each trial, the best validation top-1 so far, or with `k` > 1 the mean of the best k so far (the
    PNAS paper compares searches by the mean accuracy of the top M models found); failed trials count as no
    trial; nan until k trials completed."""
    done, curve = [], []
    for r in rows:
        if r["status"] == "COMPLETED" and r[OBJECTIVE] != "":
            done.append(r[OBJECTIVE])
        curve.append(sum(sorted(done, reverse=True)[:k]) / k if len(done) >= k else math.nan)
    return curve


def write_csv(rows, path, columns=COLUMNS):
    """`rows` (dicts) as CSV with `columns`, written atomically; returns `path`."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_file_atomically(path, text.getvalue())
    return path


def _write_png(fig, path):
    """Writes the figure atomically (a killed run leaves the old picture or the new one, never half)."""
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100)
    write_file_atomically(path, png.getvalue())


def _fmt(value, kind):
    if value == "" or value is None:
        return ""
    return {"pct": f"{value:.1%}", "int": f"{int(value):,}", "sec": f"{value:.1f}", "g": f"{value:.3g}"}[kind]


def markdown_table(rows):
    """The trials as markdown table lines."""
    lines = ["| trial | status | blocks | cell | params | mult-adds | val top-1 | seconds | lr | F | N | reason |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cell = f"`{r['cell']}`" if r["cell"] else ""
        reason = str(r["reason"]).replace("|", "/")[:160]
        lines.append(f"| {r['trial']} | {r['status']} | {r['blocks']} | {cell} | {_fmt(r['params'], 'int')} | "
                     f"{_fmt(r['mult_adds'], 'int')} | {_fmt(r[OBJECTIVE], 'pct')} | {_fmt(r['seconds'], 'sec')} | "
                     f"{_fmt(r['learning_rate'], 'g')} | {r['filters']} | {r['num_cells']} | {reason} |")
    return lines


def draw_cell(cell, path, title=""):
    """Draws a cell (CellSpec JSON, dict or CellSpec) as a PNG: inputs, one "+" per block, op-labelled
    edges, the concatenated output. Returns `path`."""
    from zoo.models.nas.cell import CellSpec

    spec = CellSpec.get(json.loads(cell) if isinstance(cell, str) else cell)
    plt = _plt()
    n = len(spec.blocks)
    pos = {0: (0.0, 0.7), 1: (0.0, -0.7)}
    for j in range(n):
        pos[2 + j] = (1.0 + j, 0.9 * (1 if j % 2 == 0 else -1) if n > 1 else 0.0)
    out = (n + 1.0, 0.0)
    fig, ax = plt.subplots(figsize=(2.4 + 1.6 * n, 3.2))
    names = {0: "H$_{c-1}$", 1: "H$_{c-2}$"}
    for state, (x, y) in pos.items():
        is_input = state < 2
        ax.annotate(names.get(state, f"+ (block {state - 1})"), (x, y), ha="center", va="center", fontsize=10, zorder=3,
                    bbox=dict(boxstyle="round", fc="#cde5ff" if is_input else "#ffe9b3", ec="black"))
    ax.annotate("concat", out, ha="center", va="center", fontsize=10, zorder=3,
                bbox=dict(boxstyle="round", fc="#ffc9c9", ec="black"))
    for j, (in_1, in_2, op_1, op_2, _) in enumerate(spec.blocks):
        for side, (src, op) in enumerate(((in_1, op_1), (in_2, op_2))):
            rad = 0.25 if side == 0 else -0.25
            (x0, y0), (x1, y1) = pos[src], pos[2 + j]
            ax.annotate("", (x1, y1), (x0, y0), zorder=1, arrowprops=dict(
                arrowstyle="->", shrinkA=14, shrinkB=10, connectionstyle=f"arc3,rad={rad}", color="#444444"))
            # the label sits mid-arc (a quadratic Bezier at t = 0.5), where edges from one source have parted
            cx, cy = (x0 + x1) / 2 + rad * (y1 - y0), (y0 + y1) / 2 - rad * (x1 - x0)
            t = 0.5
            lx = (1 - t) ** 2 * x0 + 2 * t * (1 - t) * cx + t ** 2 * x1
            ly = (1 - t) ** 2 * y0 + 2 * t * (1 - t) * cy + t ** 2 * y1
            ax.text(lx, ly, op, fontsize=8, ha="center", va="center", zorder=2,
                    bbox=dict(boxstyle="square,pad=0.1", fc="white", ec="none", alpha=0.8))
    for state in spec.concat:
        ax.annotate("", out, pos[state], zorder=1, arrowprops=dict(arrowstyle="->", shrinkA=10, shrinkB=18,
                                                                   color="#aa3333", linestyle="--"))
    ax.set_xlim(-0.6, n + 1.6)
    ax.set_ylim(-1.4, 1.4)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    _write_png(fig, path)
    plt.close(fig)
    return path


def plot_accuracy_vs_params(searches, path, x="params"):
    """Scatter of validation top-1 against `x` per search ({name: rows}), the Pareto front of all joined."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    everything = []
    for name, rows in searches.items():
        done = [r for r in completed(rows) if r.get(x) != ""]
        everything += done
        ax.scatter([r[x] for r in done], [r[OBJECTIVE] for r in done], label=name, alpha=0.7, s=20)
    front = pareto_front(everything, x)
    if front:
        ax.plot([r[x] for r in front], [r[OBJECTIVE] for r in front], "k--", drawstyle="steps-post", lw=1,
                label="Pareto front")
    ax.set_xlabel({"params": "trainable parameters", "mult_adds": "multiply-adds per image"}.get(x, x))
    ax.set_ylabel("validation top-1")
    return _save(plt, fig, ax, path)


def _save(plt, fig, ax, path):
    """Legend, grid, layout; writes the figure to `path` and closes it."""
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _write_png(fig, path)
    plt.close(fig)
    return path


def plot_best_so_far(searches, path, k=5):
    """Best-so-far validation top-1 over trials (solid) and the mean of the best `k` so far (dashed), one colour
    per search ({name: rows})."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, rows in searches.items():
        curve = best_so_far(rows)
        line, = ax.plot(range(1, len(curve) + 1), curve, marker=".", label=f"{name}: best")
        if len(completed(rows)) >= k:
            ax.plot(range(1, len(curve) + 1), best_so_far(rows, k), linestyle="--", color=line.get_color(),
                    label=f"{name}: mean of best {k}")
    ax.set_xlabel("trials")
    ax.set_ylabel("validation top-1 so far")
    return _save(plt, fig, ax, path)


def write_report(out_dir, searches, top=3, extra_lines=()):
    """Writes the whole report to `out_dir` from `searches` ({name: (oracle, project_dir)}, or {name: rows});
    returns {"csv", "markdown", "cells": [...], "accuracy", "best_so_far" (two searches or more)} paths."""
    os.makedirs(out_dir, exist_ok=True)
    tables = {name: (v if isinstance(v, list) else trial_rows(*v)) for name, v in searches.items()}
    all_rows = [{**r, "search": name} for name, rows in tables.items() for r in rows]
    paths = {"csv": write_csv(all_rows, os.path.join(out_dir, "trials.csv"), ["search", *COLUMNS])}
    lines = ["# Architecture search report", "", *extra_lines]
    paths["cells"] = []
    for name, rows in tables.items():
        best = sorted(completed(rows), key=lambda r: -r[OBJECTIVE])[:top]
        done = len(completed(rows))
        failed = sum(r["status"] in ("FAILED", "INVALID") for r in rows)
        unfinished = f", {len(rows) - done - failed} not finished" if len(rows) - done - failed else ""
        lines += ["", f"## {name}: {len(rows)} trials, {done} completed, {failed} failed{unfinished}", ""]
        curve = best_so_far(rows)
        if curve and not math.isnan(curve[-1]):
            lines.append(f"Best validation top-1: {curve[-1]:.1%}.")
        for rank, r in enumerate(best, 1):
            slug = "".join(c if c.isalnum() else "_" for c in name.lower())
            png = draw_cell(r["cell"], os.path.join(out_dir, f"cell_{slug}_{rank}.png"),
                            f"{name} #{rank}: trial {r['trial']}, top-1 {r[OBJECTIVE]:.1%}, "
                            f"{int(r['params']):,} params")
            paths["cells"].append(png)
            lines += ["", f"![{name} best cell {rank}]({os.path.basename(png)})"]
        lines += ["", *markdown_table(rows)]
    if any(completed(rows) for rows in tables.values()):
        paths["accuracy"] = plot_accuracy_vs_params(tables, os.path.join(out_dir, "accuracy_vs_params.png"))
        lines += ["", "![accuracy against parameters](accuracy_vs_params.png)"]
        if any(r.get("mult_adds") != "" for rows in tables.values() for r in completed(rows)):
            paths["accuracy_mult_adds"] = plot_accuracy_vs_params(
                tables, os.path.join(out_dir, "accuracy_vs_mult_adds.png"), x="mult_adds")
            lines += ["", "![accuracy against multiply-adds](accuracy_vs_mult_adds.png)"]
    if len(tables) > 1:
        paths["best_so_far"] = plot_best_so_far(tables, os.path.join(out_dir, "best_so_far.png"))
        lines += ["", "![best so far](best_so_far.png)", ""]
        for k in (1, 5):
            lines.append("Best top-1 so far after each trial:" if k == 1 else
                         f"Mean top-1 of the best {k} so far after each trial:")
            for name, rows in tables.items():
                curve = best_so_far(rows, k)
                lines.append(f"- {name}: " + ", ".join("-" if math.isnan(v) else f"{v:.1%}" for v in curve))
    paths["markdown"] = os.path.join(out_dir, "report.md")
    write_file_atomically(paths["markdown"], "\n".join(lines) + "\n")
    return paths
