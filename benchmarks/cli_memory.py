"""Measure the peak memory of ``trueconv apply`` per method: the provenance of ``WORK_FACTOR``
in ``src/trueconv/cli/jobs.py``, which turns a job's shapes into the estimate that
``--max-bytes`` is compared with.

    python benchmarks/cli_memory.py              # records a section of RESULTS_CLI.md
    python benchmarks/cli_memory.py --no-record

Each case runs the installed command as a child process on synthetic data and reads the
child's own peak resident memory from ``os.wait4``. The factor reported is the peak beyond
the idle command (the interpreter, torch) and beyond the input array, in units of the output
array: ``(peak - idle - input) / output``; ``WORK_FACTOR`` rounds it up.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audio_reverb import command, record

TITLE = "## Memory per method (calibrates `--max-bytes`)"


def peak_of(argv: list[str]) -> tuple[int, str]:
    """Run ``argv``; return its peak RSS in bytes and its stdout."""
    with tempfile.TemporaryFile("w+") as out:
        child = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{text}")
    return usage.ru_maxrss * 1024, text  # kB on Linux


MINUTES, RATE = 10, 48_000


def generate(folder: Path) -> None:
    rng = np.random.default_rng(0)
    np.save(folder / "tiny.npy", np.ones(5))
    np.save(folder / "image.npy", rng.standard_normal((8000, 8000), dtype=np.float32))
    rec = 0.1 * rng.standard_normal((MINUTES * 60 * RATE, 2))
    sf.write(folder / "rec.wav", rec.astype(np.float32), RATE, subtype="FLOAT")
    ir = rng.standard_normal((3 * RATE, 2)) * np.exp(-np.arange(3 * RATE) / RATE)[:, None]
    sf.write(folder / "ir.wav", (ir / 100).astype(np.float32), RATE, subtype="FLOAT")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        generate(args.generate)
        return 0
    folder = Path(tempfile.mkdtemp(prefix="trueconv-memory-", dir=args.workdir))
    try:
        # in a child: a forked child's peak RSS counts the parent's pages, keep the parent small
        subprocess.run([sys.executable, __file__, "--generate", str(folder)], check=True)
        sizes = {"tiny.npy": 5, "image.npy": 8000 * 8000, "rec.wav": 2 * MINUTES * 60 * RATE}
        image, small, large = "8000 x 8000 float32 array", "7 x 7 Gaussian", "61 x 61 Gaussian"
        audio = f"{MINUTES} min stereo 48 kHz, 3 s stereo IR, 'full'"
        ir = str(folder / "ir.wav")
        # (label, input, kernel, method): 'auto' and each method forced, so every entry of
        # WORK_FACTOR has a measurement
        cases = [
            ("idle: 5 samples", "tiny.npy", "box:3", "auto"),
            (f"{image}, {small}", "image.npy", "gaussian:sigma=1", "auto"),
            (f"{image}, {small}", "image.npy", "gaussian:sigma=1", "direct"),
            (f"{image}, {large}", "image.npy", "gaussian:sigma=10", "auto"),
            (f"{image}, {large}", "image.npy", "gaussian:sigma=10", "fft"),
            (audio, "rec.wav", ir, "auto"),
            (audio, "rec.wav", ir, "fft"),
        ]
        rows, idle = [], 0
        for label, name, kernel, forced in cases:
            out = folder / f"out{Path(name).suffix}"
            argv = [*command(), "apply", str(folder / name), "-k", kernel, "-o", str(out)]
            argv += ["--force", "-v", "--method", forced]
            argv += ["--mode", "full"] if name.endswith(".wav") else []
            peak, text = peak_of(argv)
            m = re.search(r"-> ([0-9 x]+), (\w+), [0-9.]+ s, memory estimate ([0-9.]+ \w+)", text)
            assert m, text
            shape, method, estimate = m.groups()
            method = method if forced != "auto" else f"{method} ('auto')"
            out_bytes = 4 * int(np.prod([int(n) for n in shape.split(" x ")]))
            in_bytes = 4 * sizes[name]
            if not rows:
                idle = peak
                rows.append(f"| {label} | {method} | — | {peak / 2**30:.2f} GiB | — | {estimate} |")
                continue
            factor = (peak - idle - in_bytes) / out_bytes
            rows.append(
                f"| {label} | {method} | {out_bytes / 2**30:.2f} GiB | {peak / 2**30:.2f} GiB "
                f"| {factor:.1f} | {estimate} |"
            )
            print(rows[-1])
        lines = [
            f"Made by `python benchmarks/cli_memory.py` on {time.strftime('%Y-%m-%d')} "
            f"({os.cpu_count()} CPUs). Peak RSS of the whole command (`os.wait4`); factor = "
            "(peak − idle − input) / output, the scratch of the method in output-sizes, which "
            "`WORK_FACTOR` in `src/trueconv/cli/jobs.py` rounds up.",
            "",
            "| job | method | output | peak RSS | factor | the command's estimate |",
            "|---|---|---|---|---|---|",
            *rows,
        ]
        print("\n".join(lines))
        if not args.no_record:
            record(TITLE, lines)
        return 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
