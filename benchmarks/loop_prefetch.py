"""Do prefetches or non-temporal stores help the fused loop's pattern on large images? (issue 14)

    python benchmarks/loop_prefetch.py 2048        # the image's side
    python benchmarks/loop_prefetch.py 2048 1      # prefetch for writing

A stand-alone loop with the fused separable loop's pattern (5-tap vertical sums of the input's
rows into a row buffer, then 5 horizontal taps from it into the output row; float32, interior
rows only, one thread): as it is, with ``llvm.prefetch`` (a numba intrinsic) of the input row
and the output row ``dist`` rows ahead, each 64-byte line, and ('nt') with the output row made
in a buffer and copied out by non-temporal 64-byte stores (another intrinsic; a fence at the
end). Results: ``benchmarks/results/loop_prefetch.txt``.
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

WRITE = int(sys.argv[2]) if len(sys.argv) > 2 else 0


@intrinsic  # type: ignore[untyped-decorator]
def prefetch(typingctx: Any, arr: Any, idx: Any) -> Any:
    """Prefetch the cache line of ``arr.flat[idx]`` (high locality)."""
    sig = types.void(arr, idx)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]])
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [ptr, ir.Constant(i32, WRITE), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic  # type: ignore[untyped-decorator]
def nt_store(typingctx: Any, dst: Any, di: Any, src: Any, si: Any) -> Any:
    """``dst.flat[di:di + L] = src.flat[si:si + L]`` for one 64-byte vector (``L`` samples)
    by a non-temporal store; ``dst.flat[di]`` must start a 64-byte line."""
    sig = types.void(dst, di, src, si)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        dty, _, sty, _ = signature.args
        d = context.make_array(dty)(context, builder, args[0])
        s = context.make_array(sty)(context, builder, args[2])
        dp = cgutils.get_item_pointer(context, builder, dty, d, [args[1]])
        sp = cgutils.get_item_pointer(context, builder, sty, s, [args[3]])
        size = dty.dtype.bitwidth // 8
        vt = ir.VectorType(context.get_data_type(dty.dtype), 64 // size)
        value = builder.load(builder.bitcast(sp, vt.as_pointer()))
        value.align = size
        store = builder.store(value, builder.bitcast(dp, vt.as_pointer()))
        store.align = 64
        one = builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)])
        store.set_metadata("nontemporal", one)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic  # type: ignore[untyped-decorator]
def fence(typingctx: Any) -> Any:
    """A full memory fence (orders the non-temporal stores before what follows)."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.void(), codegen


@numba.njit  # type: ignore[untyped-decorator]
def fused(a, f, out, xp, dist, pf, hb, nt):  # type: ignore[no-untyped-def]
    n0, n1 = a.shape
    af = a.reshape(a.size)
    of = out.reshape(out.size)
    step = 64 // a.itemsize
    w0, w1, w2, w3, w4 = f[0], f[1], f[2], f[3], f[4]
    for i in range(2, n0 - 2):  # the interior output rows
        r = i - 2
        if pf:
            if r + 4 + dist < n0:
                for t in range(0, n1, step):
                    prefetch(af, (r + 4 + dist) * n1 + t)
            if i + dist < n0:
                for t in range(0, n1, step):
                    prefetch(of, (i + dist) * n1 + t)
        b0, b1, b2 = np.uint64((r + 4) * n1), np.uint64((r + 3) * n1), np.uint64((r + 2) * n1)
        b3, b4 = np.uint64((r + 1) * n1), np.uint64(r * n1)
        for j in range(np.uint64(n1)):
            s = w0 * af[b0 + j]
            s += w1 * af[b1 + j]
            s += w2 * af[b2 + j]
            s += w3 * af[b3 + j]
            s += w4 * af[b4 + j]
            xp[np.uint64(2) + j] = s
        o = np.uint64(i * n1)
        dst, d0 = (hb, np.uint64(0)) if nt else (of, o)
        for j in range(np.uint64(n1)):
            s = w0 * xp[j + np.uint64(4)]
            s += w1 * xp[j + np.uint64(3)]
            s += w2 * xp[j + np.uint64(2)]
            s += w3 * xp[j + np.uint64(1)]
            s += w4 * xp[j]
            dst[d0 + j] = s
        if nt:  # the row out by non-temporal stores, the samples before its first line one by one
            head = min(n1, ((64 - (of.ctypes.data + i * n1 * a.itemsize) % 64) % 64) // a.itemsize)
            for j in range(head):
                of[o + np.uint64(j)] = hb[j]
            j = head
            while j + step <= n1:
                nt_store(of, o + np.uint64(j), hb, j)
                j += step
            for t in range(j, n1):
                of[o + np.uint64(t)] = hb[t]
    if nt:
        fence()


def main() -> None:
    n = int(sys.argv[1])
    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    g = np.exp(-(np.linspace(-2, 2, 5) ** 2)).astype(np.float32)
    g /= g.sum()
    out = np.zeros_like(a)
    xp = np.zeros(n + 5, np.float32)
    hb = np.zeros(n, np.float32)
    configs = [
        ("none", 1, False, False),
        ("d1", 1, True, False),
        ("d2", 2, True, False),
        ("d4", 4, True, False),
        ("nt", 1, False, True),
    ]
    ref = out.copy()
    fused(a, g, ref, xp, 1, False, hb, False)
    for _, d, pf, nt in configs:
        out.fill(0)
        fused(a, g, out, xp, d, pf, hb, nt)
        assert np.array_equal(out, ref)
    times: dict[str, list[float]] = {name: [] for name, *_ in configs}
    for _ in range(15):
        for name, d, pf, nt in configs:
            t0 = time.perf_counter()
            fused(a, g, out, xp, d, pf, hb, nt)
            times[name].append(time.perf_counter() - t0)
    cells = " ".join(f"{k}: {statistics.median(v) * 1e3:.2f} ms" for k, v in times.items())
    print(f"{n}² prefetch for {'writing' if WRITE else 'reading'}: {cells}")


if __name__ == "__main__":
    main()
