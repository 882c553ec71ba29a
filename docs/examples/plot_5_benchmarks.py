"""
Benchmarks: trueconv against the strongest contenders
=====================================================

Redrawn at every build from ``benchmarks/results.json``, the record that
``trueconv bench`` wrote on a 2-core AMD EPYC VM (torch 2.13, CPU): each case timed with
trueconv's ``'auto'`` and with scipy (``convolve``, ``fftconvolve``, ``oaconvolve``),
``numpy.convolve``, flip + ``torch.nn.functional.convNd``, a hand-written ``torch.fft.rfftn``
product and, for 2-D ``'same'``, OpenCV's ``filter2D``/``sepFilter2D``.
``benchmarks/RESULTS.md`` has the full table; run ``trueconv bench --quick`` to
measure your own machine.
"""

import json
import statistics
from pathlib import Path

import matplotlib.pyplot as plt

try:
    here = Path(__file__).resolve().parent  # docs/examples/ when run as a script
except NameError:
    here = Path.cwd().resolve()  # sphinx-gallery: run in its folder, no __file__
RESULTS = here.parents[1] / "benchmarks" / "results.json"

record = json.loads(RESULTS.read_text())
info = record["info"]
keys = ("date", "cpu", "cores", "torch", "scipy", "opencv")
print(", ".join(f"{key} {info[key]}" for key in keys))

# %%
# Speedup per case
# ----------------
# ``speedup`` = the fastest competitor's time / trueconv ``'auto'``'s time, per case, mode
# and dtype: above 1 trueconv is faster. The bar's colour says which competitor was the
# fastest there.

cells: dict[tuple[str, str, str], dict[str, float]] = {}
for row in record["records"]:
    if row["ms"] is not None:  # None: skipped (a direct sum that would take too long)
        cells.setdefault((row["case"], row["mode"], row["dtype"]), {})[row["contender"]] = row["ms"]

speedups: dict[str, list[tuple[str, float, str]]] = {"float32": [], "float64": []}
for (case, mode, dtype), times in cells.items():
    others = {name: ms for name, ms in times.items() if not name.startswith("trueconv")}
    if "trueconv auto" in times and others:
        best = min(others, key=others.__getitem__)
        speedups[dtype].append((f"{case} [{mode}]", others[best] / times["trueconv auto"], best))

rivals = sorted({best for rows in speedups.values() for _, _, best in rows})
colours = dict(zip(rivals, plt.get_cmap("tab10").colors))

ticks = [0.25, 0.5, 1, 2, 5, 10, 20, 50]
fig, axes = plt.subplots(1, 2, figsize=(13, 11.5), sharey=True)
for ax, (dtype, rows) in zip(axes, speedups.items()):
    labels = [label for label, _, _ in rows]
    values = [value for _, value, _ in rows]
    # bars grow from 1x: right, trueconv is faster; left, the competitor is
    ax.barh(labels, [v - 1 for v in values], left=1, color=[colours[b] for _, _, b in rows])
    ax.axvline(1.0, color="black", lw=1)
    ax.set_xscale("log")
    ax.set_xlim(0.25, 60)
    ax.set_xticks(ticks, [f"{t:g}×" for t in ticks])
    ax.set_xlabel("speedup of trueconv 'auto' over the fastest competitor")
    median = statistics.median(values)
    ax.set_title(f"{dtype}: median {median:.2f}×, worst {min(values):.2f}×")
    for y, value in enumerate(values):
        x, align = (value * 1.06, "left") if value >= 1 else (value / 1.06, "right")
        ax.text(x, y, f"{value:.2f}×", va="center", ha=align, fontsize=7)
    ax.grid(axis="x", alpha=0.3)
axes[0].invert_yaxis()
axes[0].tick_params(axis="y", labelsize=8)
handles = [plt.Rectangle((0, 0), 1, 1, color=colours[name]) for name in rivals]
fig.legend(handles, rivals, loc="lower center", ncol=4, title="fastest competitor")
fig.tight_layout(rect=(0, 0.08, 1, 1))
plt.show()

# %%
# Summary
# -------
# The same medians as the README's Speed section reports. Below 1: OpenCV's `filter2D` on
# float64 images with large kernels (torch's float64 transforms alone take about as long as
# its whole call) and the hand-made `torch.fft` product on a few float32 cells, where it runs
# the same transforms without trueconv's checks and planning (the Speed page says more).

for dtype, rows in speedups.items():
    values = sorted(value for _, value, _ in rows)
    wins = sum(value > 1 for value in values)
    print(
        f"{dtype}: {len(values)} cells, median {statistics.median(values):.2f}x, "
        f"faster in {wins}, slowest {values[0]:.2f}x, fastest {values[-1]:.1f}x"
    )
