"""Overlap-add's block lengths for multi-dim transforms: powers of two or every FFT length.

``trueconv._methods.overlap_add.blocked_dims`` picks each blocked dim's transform length ``L``
by a cost model over a candidate set. Until 2026-12-06 the candidates were powers of two only;
2048 ⊛ 63 then got 5 blocks of ``S = 450`` (``L = 512``), the last one mostly padding, where 4
of 514 (``L = 576``) fit. Three parts:

- ``--landscape``: every length of :func:`trueconv.core.transforms.next_fast_len` up to 1300
  forced on a grid of 2-D problems (overlap-add, ``'same'``; :func:`steady`, three calls in a
  row per length and round), each length's time against the fastest, and where each rule's
  pick lands.
- ``--one-dim``: the two candidate sets on 1-D transforms (long signals, rows), alternating.
- ``--auto``: ``'auto'`` planned under either rule (the planner's caches emptied between),
  the rules alternating in one process, each timed in its steady state (:func:`steady`), with
  ``cv2.filter2D`` (flipped kernel) where OpenCV is installed.
  With ``--old-constants FILE`` (a ``cost_constants.json`` of before the change, e.g. ``git
  show 4aaebd3:src/trueconv/core/cost_constants.json``) the old rule is priced with those, as
  it shipped; the new rule always with the current file. Set ``TRUECONV_NO_CALIBRATION=1``.

Writes ``benchmarks/results/block_lengths.txt`` (``--out``). Run on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

import trueconv
from trueconv import _plan
from trueconv._methods import overlap_add as oa
from trueconv.core import cost
from trueconv.core import transforms as tr

sys.path.insert(0, str(Path(__file__).parent))
from timing import others, paired_ratio, set_threads

NEW = oa.blocked_dims


def old_rule(sa, sb, covered=None, spectrum_itemsize=0):
    # the powers of two for every dim (until 2026-12-06)
    return [oa.block_length(n, k, False) for n, k in zip(sa, sb)]


SHIPPED = cost._table
TABLES = {}  # rule -> the cost constants it is priced with (default: the current file)


def use(rule) -> None:
    """Plan under ``rule`` (and its constants) from now on, the planner's caches emptied when
    it changes: in :func:`steady` the untimed first call of an arm's run plans, the timed ones
    find the plan cached."""
    if oa.blocked_dims is not rule:
        oa.blocked_dims = rule
        cost._table = TABLES.get(rule, SHIPPED)
        cost._merged.cache_clear()  # the table merged with a calibration, cached per threads
        _plan.forget()


def fixed(length: int):
    return lambda sa, sb, covered=None, spectrum_itemsize=0: [
        None if n <= 1 or k <= 1 else length - k + 1 for n, k in zip(sa, sb)
    ]


def steady(calls, rounds: int, inner: int = 4) -> dict:
    """Per round and call (in alternating order), ``inner`` calls in a row and the fastest of
    the last ``inner - 1``: each arm timed in its steady state (its own arrays' sizes in the
    heap), not right after another arm's calls of other sizes."""
    times: dict = {name: [] for name in calls}
    names = list(calls)
    for r in range(rounds):
        for name in names if r % 2 else names[::-1]:
            got = []
            for _ in range(inner):
                t0 = time.perf_counter()
                calls[name]()
                got.append(time.perf_counter() - t0)
            times[name].append(min(got[1:]))
    return times


GRID = [
    (torch.float32, (2048, 2048), 15),
    (torch.float32, (2048, 2048), 31),
    (torch.float32, (2048, 2048), 63),
    (torch.float32, (2048, 2048), 127),
    (torch.float64, (2048, 2048), 15),
    (torch.float64, (2048, 2048), 31),
    (torch.float64, (2048, 2048), 63),
    (torch.float64, (2048, 2048), 127),
    (torch.float32, (4096, 4096), 31),
    (torch.float32, (1024, 1024), 15),
    (torch.float32, (1024, 1024), 31),
    (torch.float64, (1024, 1024), 63),
    (torch.float32, (3, 2048, 2048), 31),
]


def name(dtype: torch.dtype, sa: tuple[int, ...], k: int) -> str:
    shape = f"{sa[0]} × {sa[1]}²" if len(sa) == 3 else f"{sa[-1]}²"
    return f"{str(dtype)[6:]} {shape} ⊛ {k}²"


def landscape(lines: list[str], rounds: int) -> None:
    lines.append("## Every length, forced (time / the fastest length's; overlap-add, 'same')")
    picks: dict[str, list[float]] = {"powers of two": [], "every FFT length": []}
    for dtype, sa, k in GRID:
        x, w = torch.rand(sa, dtype=dtype), torch.randn(k, k, dtype=dtype)
        n = sa[-1]
        lengths, length = [], tr.next_fast_len(2 * k - 2)
        while length <= 1300 and length - k + 1 < n:
            lengths.append(length)
            length = tr.next_fast_len(length + 1)

        def forced(rule, x=x, w=w):
            def run():
                use(rule)
                trueconv.convolve(x, w, "same", method="overlap_add")

            return run

        o0, w0 = others(), time.perf_counter()
        times = steady({L: forced(fixed(L)) for L in lengths}, rounds, inner=3)
        busy = (others() - o0) / (time.perf_counter() - w0)
        use(NEW)
        fastest = min(min(v) for v in times.values())
        rel = {L: min(v) / fastest for L, v in times.items()}
        pick = {
            "powers of two": oa.block_length(n, k, False),
            "every FFT length": oa.block_length(n, k, True),
        }
        got = []
        for rule, s in pick.items():
            if s is None:
                got.append(f"{rule}: not blocked")
                continue
            picks[rule].append(rel[s + k - 1])
            got.append(f"{rule}: L = {s + k - 1}, {rel[s + k - 1]:.2f}")
        best = min(rel, key=rel.__getitem__)
        lines.append(
            f"- {name(dtype, sa, k)}: fastest L = {best} ({fastest * 1e3:.2f} ms); "
            + "; ".join(got)
            + f"; others' CPU {busy:.0%} of a core"
        )
        lines.append("  " + " ".join(f"{L}:{r:.2f}" for L, r in rel.items()))
        print(lines[-2], flush=True)
    for rule, v in picks.items():
        geo = math.exp(sum(map(math.log, v)) / len(v))
        lines.append(f"- {rule}: geometric mean {geo:.3f}, worst {max(v):.2f} ({len(v)} cells)")
    lines.append("")


def one_dim(lines: list[str], rounds: int) -> None:
    lines.append("## 1-D transforms: powers of two / every FFT length (forced overlap-add)")

    def every(sa, sb, covered=None, spectrum_itemsize=0):
        cover = sa if covered is None else covered
        return [oa.block_length(n, k, True, m) for n, k, m in zip(sa, sb, cover)]

    for dtype in (torch.float32, torch.float64):
        for sa, sb in (((1 << 20,), (256,)), ((1 << 20,), (4096,)), ((64, 16384), (1, 129))):
            x, w = torch.rand(sa, dtype=dtype), torch.randn(sb, dtype=dtype)

            def call(rule, x=x, w=w):
                def run():
                    use(rule)
                    trueconv.convolve(x, w, "same", method="overlap_add")

                return run

            calls = {"pow2": call(old_rule), "every": call(every)}
            o0, w0 = others(), time.perf_counter()
            t = steady(calls, rounds)
            busy = (others() - o0) / (time.perf_counter() - w0)
            lines.append(
                f"- {str(dtype)[6:]} {sa} ⊛ {sb}: S {old_rule(sa, sb)} / {every(sa, sb)}, "
                f"{statistics.median(t['pow2']) * 1e3:.2f} / "
                f"{statistics.median(t['every']) * 1e3:.2f} ms, powers of two's speed "
                f"against every length's {paired_ratio(t['every'], t['pow2']):.2f}x; "
                f"others' CPU {busy:.0%}"
            )
            print(lines[-1], flush=True)
    use(NEW)
    lines.append("")


def auto(lines: list[str], rounds: int) -> None:
    try:
        import cv2
    except ImportError:
        cv2 = None
    lines.append(
        "## 'auto' under either rule (ms, medians of alternating rounds; speed-up = old / new "
        "by the rounds' ratios)"
    )
    cells = []
    for dtype in (torch.float32, torch.float64):
        for n in (512, 1024, 2048, 4096):
            for k in (15, 31, 63):
                for c in (1, 3):
                    if n == 4096 and (c == 3 or dtype == torch.float64):
                        continue
                    for mode in ("same", "full"):
                        cells.append((dtype, n, k, c, mode))
    for dtype, n, k, c, mode in cells:
        x = torch.rand((c, n, n) if c > 1 else (n, n), dtype=dtype)
        w = torch.randn(k, k, dtype=dtype)
        picks = {}
        for label, rule in (("old", old_rule), ("new", NEW)):
            use(rule)
            picks[label] = trueconv.choose_method(x, w, mode)
        if picks["old"] not in ("overlap_add",) and picks["new"] not in ("overlap_add",):
            continue  # neither rule blocks: the same plan

        def call(rule, x=x, w=w, mode=mode):
            def run():
                use(rule)
                trueconv.convolve(x, w, mode)

            return run

        calls = {"old": call(old_rule), "new": call(NEW)}
        if cv2 is not None and mode == "same":
            xn = x.numpy() if c == 1 else x.permute(1, 2, 0).contiguous().numpy()
            wn = w.flip(0, 1).numpy().copy()
            calls["filter2D"] = lambda xn=xn, wn=wn: cv2.filter2D(
                xn, -1, wn, borderType=cv2.BORDER_CONSTANT
            )
        o0, w0 = others(), time.perf_counter()
        t = steady(calls, rounds)
        busy = (others() - o0) / (time.perf_counter() - w0)
        med = {a: statistics.median(v) * 1e3 for a, v in t.items()}
        f2d = (
            f", filter2D {med['filter2D']:.2f} (its time / new's "
            f"{paired_ratio(t['filter2D'], t['new']):.2f}x)"
            if "filter2D" in med
            else ""
        )
        lines.append(
            f"- {str(dtype)[6:]} {c} × {n}² ⊛ {k}² {mode}: old {med['old']:.2f} "
            f"[{picks['old']}], new {med['new']:.2f} [{picks['new']}], "
            f"speed-up {paired_ratio(t['old'], t['new']):.2f}x"
            f"{f2d}; others' CPU {busy:.0%}"
        )
        print(lines[-1], flush=True)
    use(NEW)
    lines.append("")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--landscape", action="store_true")
    ap.add_argument("--one-dim", action="store_true")
    ap.add_argument("--auto", action="store_true")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default="benchmarks/results/block_lengths.txt")
    ap.add_argument("--old-constants", type=Path, help="cost constants the old rule shipped with")
    args = ap.parse_args()
    if args.old_constants:
        old = dict(json.loads(args.old_constants.read_text())["devices"])
        TABLES[old_rule] = lambda: old
    parts = [
        f
        for f, on in ((landscape, args.landscape), (one_dim, args.one_dim), (auto, args.auto))
        if on
    ] or [landscape, one_dim, auto]
    lines = [
        f"# {time.strftime('%Y-%m-%d %H:%M')}, torch {torch.__version__}, "
        f"{__import__('os').cpu_count()} cores; old rule priced with "
        f"{args.old_constants or 'the current constants'}",
        "",
    ]
    for threads in args.threads:
        set_threads(threads)
        lines.append(f"# {threads} thread(s)")
        lines.append("")
        for part in parts:
            part(lines, 2 if part is landscape else args.rounds)
            Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
