"""Which transform lengths torch's CPU FFT runs fast: time per point of every 7-smooth even
length in a range, real (``rfft`` + ``irfft`` along the last dim) and complex (``fft`` +
``ifft`` along the first dim, as the other dims of an N-D transform run), then the time each
length rule would give every ``n`` in the range.

Run from the repository root: ``python benchmarks/fft_lengths.py [--threads 1] [--rounds 5]``;
``--calls``: instead, whole FFT and overlap-add calls (``trueconv.convolve``, the method 'auto'
picks or 'fft'), each planned under the 7-smooth rule and under ``next_fast_len``'s, the two
plans run interleaved in one process (the median of the rounds' ratios).
The rules compared, as the time each gives against the best measured length in ``[n, 1.25 n]``
(an oracle no rule beats): the smallest 7-smooth length (complex dims only; ``next_fast_len``'s
rule for them until 2026-12-05), the smallest 7-smooth even one (its rule for the halved last
dim), the smallest 7-smooth multiple of 4 and the smallest 5-smooth multiple of 4. In the
lists, ``·`` marks a length of one factor 2, ``··`` an odd one.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import torch
from timing import alternating, others


def factors(n: int) -> dict[int, int] | None:
    """Exponents of 2, 3, 5 and 7 in ``n``; None when ``n`` has another prime factor."""
    out = {}
    for p in (2, 3, 5, 7):
        while n % p == 0:
            n //= p
            out[p] = out.get(p, 0) + 1
    return out if n == 1 else None


def smallest(n: int, ok) -> int:
    m = n
    while not ok(m):
        m += 1
    return m


RULES = {
    "7-smooth": lambda m: factors(m) is not None,
    "7-smooth even": lambda m: factors(m) is not None and m % 2 == 0,
    "7-smooth, 4 | L": lambda m: factors(m) is not None and m % 4 == 0,
    "5-smooth, 4 | L": lambda m: factors(m) is not None and m % 4 == 0 and m % 7 != 0,
}


def per_point(dtype: torch.dtype, length: int, real: bool, rounds: int) -> float:
    """Median ns per point of a forward and inverse transform of about 2^20 points."""
    batch = max(1, (1 << 20) // length)
    if real:
        x = torch.randn(batch, length, dtype=dtype)

        def fn() -> object:
            return torch.fft.irfft(torch.fft.rfft(x), n=length)
    else:
        # an odd row stride, as the half spectrum of an N-D real transform mostly has (a
        # power-of-two stride put 4096 at 1.2-1.3x the time per point of 4050)
        x = torch.randn(length, batch | 1, dtype=dtype).to(
            torch.complex64 if dtype == torch.float32 else torch.complex128
        )

        def fn() -> object:
            return torch.fft.ifft(torch.fft.fft(x, dim=0), dim=0)

    times = alternating({"fn": fn}, rounds, 1)["fn"]
    return statistics.median(times) * 1e9 / (batch * length)


CALLS = [
    ((1024, 1024), (31, 31), "same"),
    ((1024, 1024), (31, 31), "full"),
    ((1024, 1024), (63, 63), "same"),
    ((1024, 1024), (127, 127), "same"),
    ((512, 512), (63, 63), "same"),
    ((96, 96, 96), (17, 17, 17), "same"),
    ((96, 96, 96), (5, 5, 5), "full"),
    ((2048, 2048), (63, 63), "same"),
    ((2**20,), (65536,), "same"),
]


def calls(rounds: int) -> None:
    """Whole calls planned under both rules, interleaved (:data:`CALLS`)."""
    from timing import paired_ratio

    import trueconv
    from trueconv import _plan, _spec
    from trueconv._methods import overlap_add
    from trueconv.core import transforms

    new_rule = transforms._next_fast_len
    cpu = torch.device("cpu")

    def planned(rule, spec):
        # every cache that holds a length made by the rule, emptied first
        transforms._next_fast_len = rule
        overlap_add.block_length.cache_clear()
        _plan.forget()
        try:
            return _plan.forced(spec, cpu)
        finally:
            transforms._next_fast_len = new_rule
            overlap_add.block_length.cache_clear()
            _plan.forget()

    def old_rule(n: int) -> int:  # next_fast_len's rule for the halved dim until 2026-12-05
        return smallest(n, RULES["7-smooth even"])

    for dtype in (torch.float32, torch.float64):
        for sa, sb, mode in CALLS:
            x, k = torch.randn(sa, dtype=dtype), torch.randn(sb, dtype=dtype)
            method = trueconv.choose_method(x, k, mode=mode)
            method = "fft" if method == "direct" else method
            a, b, spec = _spec.normalize("convolve", x, k, mode, None, method, "fill", 0)
            plans = {"7-smooth": planned(old_rule, spec), "rule": planned(new_rule, spec)}
            plans["rule again"] = plans["rule"]  # the noise floor: a plan against itself
            lens = {n: getattr(p, "lens", None) or p.layout.tlens for n, p in plans.items()}
            fns = {n: functools.partial(_plan.run, p, a, b) for n, p in plans.items()}
            busy0, wall0 = others(), time.perf_counter()
            t = alternating(fns, rounds, 2)
            busy = 100 * (others() - busy0) / (time.perf_counter() - wall0)
            print(
                f"{str(dtype)[6:]} {sa} * {sb} {mode} {method}: 7-smooth {lens['7-smooth']} "
                f"{statistics.median(t['7-smooth']) * 1e3:.2f} ms, rule {lens['rule']} "
                f"{statistics.median(t['rule']) * 1e3:.2f} ms: rule / 7-smooth "
                f"{paired_ratio(t['rule'], t['7-smooth']):.2f} (the rule against itself "
                f"{paired_ratio(t['rule again'], t['rule']):.2f}; others {busy:.0f}%)",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ranges", default="200:320,900:1200,1900:2400,3800:4800,15000:18000")
    parser.add_argument("--calls", action="store_true", help="whole calls under both rules")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.rounds} rounds")
    if args.calls:
        calls(args.rounds)
        return
    spans = [tuple(map(int, r.split(":"))) for r in args.ranges.split(",")]
    busy0, wall0 = others(), time.perf_counter()
    for dtype in (torch.float32, torch.float64):
        for real in (True, False):
            kind = "real (last dim)" if real else "complex (first dim)"
            print(f"\n## {str(dtype)[6:]} {kind}: ns per point")
            table: dict[int, float] = {}
            for lo, hi in spans:
                rule = RULES["7-smooth even" if real else "7-smooth"]
                lens = [m for m in range(lo, int(hi * 1.25) + 1) if rule(m)]
                for m in lens:
                    table[m] = per_point(dtype, m, real, args.rounds)
                print(
                    " ".join(
                        f"{m}{'·' * (m % 4 != 0) * (1 + m % 2)}={table[m]:.3f}"
                        for m in lens
                        if m <= hi
                    )
                )
            # each rule's time for every n of the ranges, against the best length in [n, 1.25n]
            print("rule: median / worst time vs the best length in [n, 1.25 n]")
            for name, ok in RULES.items():
                if real and name == "7-smooth":
                    continue
                ratios = []
                for lo, hi in spans:
                    for n in range(lo, hi):
                        m = smallest(n, ok)
                        cands = [c for c in table if n <= c <= 1.25 * n]
                        oracle = min(c * table[c] for c in cands)
                        ratios.append(m * table[m] / oracle)
                print(
                    f"  {name:18s} {statistics.median(ratios):.3f} / {max(ratios):.3f}"
                    f"  (mean {statistics.fmean(ratios):.3f})"
                )
    wall = time.perf_counter() - wall0
    print(f"\nother processes took {100 * (others() - busy0) / wall:.0f}% of a core")


if __name__ == "__main__":
    main()
