"""Out-of-core benchmark: true convolution of an on-disk zarr volume several times larger than the
memory the process may use, with :func:`trueconv.dask.convolve`.

    python benchmarks/dask_out_of_core.py                      # 8 GiB float32, 2 GiB limit
    python benchmarks/dask_out_of_core.py --size-gib 1 --limit-gib 0.5 --no-record   # a quick run

Steps (each heavy step in a child process, so that its peak memory is its own):

1. Check the free disk space: the input and the output each take ``--size-gib`` (random data
   does not compress). Refuse to start when less than 2.2x that is free.
2. ``generate``: write a seeded random float32 volume of ``--size-gib`` to ``<workdir>/in.zarr``
   chunk by chunk.
3. ``convolve``: ``da.from_zarr`` -> ``trueconv.dask.convolve(..., mode='same',
   boundary='reflect')`` with a 5x5x5 kernel -> ``to_zarr``, under the memory limit: the
   parent samples the child's resident memory (``VmRSS``) every 50 ms and kills it above the
   limit, and the child reports ``getrusage(RUSAGE_SELF).ru_maxrss``, the exact peak of its
   resident memory (every thread included): the run counts only if that peak is below the
   limit. With ``--rlimit-as`` the child also sets ``RLIMIT_AS`` (address space) to the limit
   before importing anything: a stricter limit than resident memory, since torch, zarr and the
   thread pools reserve about 0.5 GiB of address space that is never resident.
4. ``check``: compare sampled output regions (the 8 corners, edge and interior boxes) with
   ``trueconv.convolve`` on the matching input window in memory (extended with ``np.pad``
   where the window crosses the volume's edge).
5. Write the numbers to ``benchmarks/RESULTS_DASK.md`` (unless ``--no-record``) and delete
   the data (always, also on failure or Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS_DASK.md"
KERNEL_1D = (1.0, 4.0, 6.0, 4.0, 1.0)  # binomial; the 3-D kernel is its outer product / 16**3
BOUNDARY = "reflect"
MODE = "same"


def _kernel():  # type: ignore[no-untyped-def]
    import numpy as np

    k1 = np.array(KERNEL_1D, dtype=np.float32) / 16
    return np.einsum("i,j,k->ijk", k1, k1, k1).astype(np.float32)


def _shape_for(size_gib: float, lateral: int) -> tuple[int, int, int]:
    """A (depth, lateral, lateral) float32 volume of about ``size_gib``."""
    depth = round(size_gib * 2**30 / 4 / lateral**2)
    return (depth, lateral, lateral)


# ------------------------------------------------------------------------------------------------
# child steps
# ------------------------------------------------------------------------------------------------


def _limit_address_space(limit_bytes: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))


def _peak_rss_bytes() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _peak_address_space_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmPeak:"):
                return int(line.split()[1]) * 1024
    return 0


def child_generate(args: argparse.Namespace) -> dict:
    import dask
    import dask.array as da

    shape = tuple(args.shape)
    chunks = tuple(args.chunks)
    start = time.perf_counter()
    rng = da.random.default_rng(0)
    x = rng.standard_normal(shape, chunks=chunks, dtype="float32")
    with dask.config.set(scheduler="threads", num_workers=args.workers):
        x.to_zarr(str(Path(args.workdir) / "in.zarr"))
    return {"seconds": time.perf_counter() - start, "peak_rss": _peak_rss_bytes()}


def child_convolve(args: argparse.Namespace) -> dict:
    if args.rlimit_as and args.limit_bytes:
        _limit_address_space(args.limit_bytes)
    import dask
    import dask.array as da
    import torch

    import trueconv
    import trueconv.dask

    torch.set_num_threads(1)  # one torch thread per Dask worker thread: no oversubscription
    x = da.from_zarr(str(Path(args.workdir) / "in.zarr"))
    kernel = _kernel()
    y = trueconv.dask.convolve(x, kernel, MODE, boundary=BOUNDARY)
    block = tuple(max(c) + k - 1 for c, k in zip(x.chunks, kernel.shape))
    method = trueconv.choose_method(torch.empty(block), torch.from_numpy(kernel), "valid")
    start = time.perf_counter()
    with dask.config.set(scheduler="threads", num_workers=args.workers):
        if args.progress:
            from dask.diagnostics import ProgressBar

            with ProgressBar(out=sys.stderr):
                y.to_zarr(str(Path(args.workdir) / "out.zarr"))
        else:
            y.to_zarr(str(Path(args.workdir) / "out.zarr"))
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "peak_rss": _peak_rss_bytes(),
        "peak_address_space": _peak_address_space_bytes(),
        "method": method,
        "in_chunks": [list(c)[:3] for c in x.chunks],
        "out_chunks": [list(c)[:3] for c in y.chunks],
        "numblocks": list(y.numblocks),
        "tasks": len(y.__dask_graph__()),
    }


def child_check(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch
    import zarr

    inp = zarr.open_array(str(Path(args.workdir) / "in.zarr"), mode="r")
    out = zarr.open_array(str(Path(args.workdir) / "out.zarr"), mode="r")
    kernel = torch.from_numpy(_kernel()).double()
    shape = inp.shape
    r = 12
    rng = np.random.default_rng(1)
    starts = [
        tuple(0 if c == 0 else n - r for c, n in zip(corner, shape))
        for corner in np.ndindex(2, 2, 2)
    ]
    starts += [tuple(int(rng.integers(0, n - r)) for n in shape) for _ in range(6)]
    starts += [(0, int(rng.integers(0, shape[1] - r)), int(rng.integers(0, shape[2] - r)))]
    worst = 0.0
    for lo in starts:
        got = np.asarray(out[tuple(slice(s, s + r) for s in lo)], dtype=np.float64)
        ref = _reference_box(inp, kernel, lo, r)
        err = float(np.linalg.norm(got - ref) / np.linalg.norm(ref))
        worst = max(worst, err)
    return {"boxes": len(starts), "box": r, "max_rel_err": worst}


def _reference_box(inp, kernel, lo, r):  # type: ignore[no-untyped-def]
    """``'same'`` output box ``[lo, lo + r)`` computed in memory by trueconv from the input
    window it reads, extended with ``np.pad`` where it crosses the volume's edge."""
    import numpy as np

    import trueconv

    window, pads = [], []
    for s, n, k in zip(lo, inp.shape, kernel.shape):
        before = k - 1 - (k - 1) // 2  # trueconv's 'same' pads
        a, b = s - before, s + r + (k - 1) // 2
        window.append(slice(max(a, 0), min(b, n)))
        pads.append((max(-a, 0), max(b - n, 0)))
    data = np.asarray(inp[tuple(window)], dtype=np.float64)
    data = np.pad(data, pads, mode=BOUNDARY)
    return trueconv.convolve(data, kernel, "valid").numpy()


CHILD_STEPS = {"generate": child_generate, "convolve": child_convolve, "check": child_check}


# ------------------------------------------------------------------------------------------------
# parent: run the children, watch their memory, record
# ------------------------------------------------------------------------------------------------


def _rss_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_child(step: str, args: argparse.Namespace, limit: int | None) -> dict:
    """Run one step in a child process; return its JSON report plus the sampled peak RSS."""
    cmd = [
        sys.executable,
        __file__,
        "--child",
        step,
        "--workdir",
        args.workdir,
        "--shape",
        *map(str, args.shape),
        "--chunks",
        *map(str, args.chunks),
        "--workers",
        str(args.workers),
        "--limit-bytes",
        str(limit or 0),
    ]
    if args.progress:
        cmd.append("--progress")
    if args.rlimit_as:
        cmd.append("--rlimit-as")
    env = dict(os.environ, MALLOC_ARENA_MAX="2")  # glibc: fewer 64 MiB arena reservations
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    sampled = [0]
    killed = [False]

    def watch() -> None:
        while proc.poll() is None:
            rss = _rss_of(proc.pid)
            sampled[0] = max(sampled[0], rss)
            if limit and rss > limit:
                killed[0] = True
                proc.kill()
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    stdout, _ = proc.communicate()
    watcher.join()
    if killed[0]:
        raise SystemExit(f"{step}: killed, resident memory exceeded the {limit} byte limit")
    if proc.returncode != 0:
        raise SystemExit(f"{step}: child failed with exit status {proc.returncode}")
    report = json.loads(stdout.strip().splitlines()[-1])
    report["sampled_peak_rss"] = sampled[0]
    if limit and report["peak_rss"] > limit:
        raise SystemExit(f"{step}: peak resident memory {report['peak_rss']} > limit {limit}")
    return report


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def _record(args: argparse.Namespace, gen: dict, conv: dict, check: dict, nbytes: int) -> str:
    import dask
    import numpy as np
    import torch
    import zarr

    import trueconv

    limit = args.limit_gib * 2**30
    enforced = "VmRSS watchdog; exact peak from getrusage"
    if args.rlimit_as:
        enforced += f"; and RLIMIT_AS = {_gib(limit)} of address space"
    rows = [
        ("data", f"{_gib(nbytes)} float32, shape {tuple(args.shape)}, on-disk zarr"),
        ("chunks (in)", f"{tuple(args.chunks)} ({4 * np.prod(args.chunks) / 2**20:.0f} MiB each)"),
        ("blocks / tasks", f"{conv['numblocks']} / {conv['tasks']}"),
        ("kernel", f"5x5x5 float32 (binomial), mode '{MODE}', boundary '{BOUNDARY}'"),
        ("method per block ('auto')", conv["method"]),
        ("scheduler", f"dask threaded, {args.workers} threads, torch 1 thread each"),
        ("memory limit", f"{_gib(limit)} resident ({enforced})"),
        ("**peak RSS (getrusage)**", f"**{_gib(conv['peak_rss'])}**"),
        ("peak RSS (sampled VmRSS)", _gib(conv["sampled_peak_rss"])),
        ("peak address space (VmPeak)", _gib(conv["peak_address_space"])),
        ("data size / peak RSS", f"{nbytes / conv['peak_rss']:.1f}x"),
        ("**wall time** (read, convolve, write)", f"**{conv['seconds']:.1f} s**"),
        ("throughput", f"{nbytes / 2**20 / conv['seconds']:.0f} MiB/s of input"),
        (
            "generate input (not limited)",
            f"{gen['seconds']:.1f} s, peak RSS {_gib(gen['peak_rss'])}",
        ),
        (
            "check",
            f"{check['boxes']} boxes of {check['box']}^3 (corners, edges, interior) vs "
            f"trueconv.convolve in memory: max rel. error {check['max_rel_err']:.1e}",
        ),
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPU cores, "
        f"{_gib(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES'))} RAM; "
        f"Python {platform.python_version()}, torch {torch.__version__}, dask "
        f"{dask.__version__}, zarr {zarr.__version__}, trueconv {trueconv.__version__}"
    )
    return (
        f"## {time.strftime('%Y-%m-%d')}: {_gib(nbytes)} with a {_gib(limit)} limit\n\n"
        f"`python benchmarks/dask_out_of_core.py --size-gib {args.size_gib} "
        f"--limit-gib {args.limit_gib}` on {machine}.\n\n"
        "| quantity | value |\n|---|---|\n" + table + "\n"
    )


HEADER = """# Out-of-core results: `trueconv.dask`

Recorded by `benchmarks/dask_out_of_core.py` (read its docstring for the method). A zarr
volume on disk, several times larger than the memory the convolving process is allowed, is
convolved with `trueconv.dask.convolve` and written back to zarr chunk by chunk; the process's
peak resident memory is measured exactly with `getrusage` and enforced by a watchdog on
`VmRSS` (and, where the row says so, by `RLIMIT_AS` on the address space). Newest run first.

"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-gib", type=float, default=8.0, help="volume size (default 8)")
    p.add_argument("--limit-gib", type=float, default=2.0, help="memory limit (default 2)")
    p.add_argument("--lateral", type=int, default=1024, help="y and x size (default 1024)")
    p.add_argument("--chunks", type=int, nargs=3, default=[32, 512, 512])
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="Dask threads")
    p.add_argument("--workdir", default=None, help="where the data go (default: a temp dir)")
    p.add_argument("--progress", action="store_true", help="Dask progress bar on stderr")
    p.add_argument("--no-record", action="store_true", help="do not write RESULTS_DASK.md")
    p.add_argument(
        "--rlimit-as", action="store_true", help="also limit the address space (stricter)"
    )
    # internal: the child steps
    p.add_argument("--child", choices=sorted(CHILD_STEPS), help=argparse.SUPPRESS)
    p.add_argument("--shape", type=int, nargs=3, help=argparse.SUPPRESS)
    p.add_argument("--limit-bytes", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child:
        print(json.dumps(CHILD_STEPS[args.child](args)))
        return 0

    args.shape = list(_shape_for(args.size_gib, args.lateral))
    nbytes = 4 * args.shape[0] * args.shape[1] * args.shape[2]
    base = Path(args.workdir) if args.workdir else Path(tempfile.gettempdir())
    free = shutil.disk_usage(base).free
    if free < 2.2 * nbytes:
        print(
            f"need {_gib(2.2 * nbytes)} free under {base}, have {_gib(free)}; "
            "try a smaller --size-gib (and --limit-gib)"
        )
        return 1
    work = Path(tempfile.mkdtemp(prefix="trueconv-ooc-", dir=base))
    args.workdir = str(work)
    limit = int(args.limit_gib * 2**30)
    try:
        print(
            f"data {_gib(nbytes)} shape {tuple(args.shape)} chunks {tuple(args.chunks)} "
            f"in {work}; limit {_gib(limit)}",
            flush=True,
        )
        gen = run_child("generate", args, None)
        print(f"generated in {gen['seconds']:.1f} s", flush=True)
        conv = run_child("convolve", args, limit)
        print(
            f"convolved in {conv['seconds']:.1f} s, peak RSS {_gib(conv['peak_rss'])} "
            f"(sampled {_gib(conv['sampled_peak_rss'])})",
            flush=True,
        )
        check = run_child("check", args, None)
        print(f"checked {check['boxes']} boxes: max rel. error {check['max_rel_err']:.1e}")
        if check["max_rel_err"] > 1e-5:
            print("MISMATCH against the in-memory result")
            return 1
        section = _record(args, gen, conv, check, nbytes)
        print(section)
        if not args.no_record:
            old = RESULTS.read_text() if RESULTS.exists() else HEADER
            body = old[len(HEADER) :] if old.startswith(HEADER) else ""
            RESULTS.write_text(HEADER + section + ("\n" + body if body else ""))
            print(f"wrote {RESULTS}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
