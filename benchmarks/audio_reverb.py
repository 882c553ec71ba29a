"""Benchmark ``trueconv apply`` on an hour of stereo 48 kHz audio with a 3-second impulse response.

    python benchmarks/audio_reverb.py                          # 1 h; records RESULTS_CLI.md
    python benchmarks/audio_reverb.py --minutes 5 --no-record  # a quick run

Steps:

1. Synthesise, in a temporary folder, the recording — seeded white noise at -20 dBFS RMS per
   channel, a float32 WAV written one minute at a time so that this script stays small — and a
   stereo impulse response of 3 s: independent noise per channel under an exponential decay
   with a 1.5 s RT60, scaled to unit energy so that the reverberated output keeps the input's
   level (float WAVs hold values beyond 1 anyway).
2. Run ``trueconv apply rec.wav --kernel ir.wav --mode full -o wet.wav -v`` as a child process
   (the installed console script, else ``python -m trueconv``) and measure its wall time and
   its peak resident memory (``getrusage(RUSAGE_CHILDREN).ru_maxrss``: the largest of the
   waited-for children, and the command is the only one). Its ``-v`` line reports the method
   ``'auto'`` ran, the seconds of the convolution itself and the command's memory estimate.
3. Check the output: frames ``n + k - 1``, the sample rate, and three one-second windows (start,
   middle, end of the tail) against ``scipy.signal.fftconvolve`` of the matching input slice.
4. Write the numbers to the section "Audio reverb: 1 h stereo 48 kHz × 3 s IR" of
   ``benchmarks/RESULTS_CLI.md`` (replacing it; unless ``--no-record``), and delete the data.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS_CLI.md"
TITLE = "## Audio reverb: 1 h stereo 48 kHz × 3 s IR"
RATE = 48_000
IR_SECONDS = 3.0
RT60_S = 1.5  # the IR decays by 60 dB in this time
LEVEL = 0.1  # -20 dBFS RMS


def synthesise(folder: Path, minutes: float) -> tuple[Path, Path, int, int]:
    rng = np.random.default_rng(2024)
    frames = round(minutes * 60 * RATE)
    rec = folder / "rec.wav"
    with sf.SoundFile(rec, "w", RATE, 2, subtype="FLOAT") as f:
        for start in range(0, frames, 60 * RATE):
            n = min(60 * RATE, frames - start)
            f.write((LEVEL * rng.standard_normal((n, 2))).astype(np.float32))
    taps = round(IR_SECONDS * RATE)
    t = np.arange(taps) / RATE
    decay = np.exp(-t * math.log(1000) / RT60_S)[:, None]  # 60 dB = a factor of 1000
    ir = rng.standard_normal((taps, 2)) * decay
    ir /= np.sqrt((ir**2).sum(axis=0))
    sf.write(folder / "ir.wav", ir.astype(np.float32), RATE, subtype="FLOAT")
    return rec, folder / "ir.wav", frames, taps


def torch_version() -> str:
    import torch

    return f"{torch.__version__} ({torch.get_num_threads()} threads)"


def command() -> list[str]:
    script = shutil.which("trueconv")
    return [script] if script else [sys.executable, "-m", "trueconv"]


def check(rec: Path, ir: Path, wet: Path, frames: int, taps: int) -> list[float]:
    """Errors of three 1-s windows of the output (start, middle, last second of the tail)
    against scipy, as ``||out - ref|| / ||ref_middle||``: relative to the signal's level, since
    the tail has decayed by 80 dB and a float32 transform's error scales with its block's
    whole content, not with the local level."""
    from scipy.signal import fftconvolve

    info = sf.info(str(wet))
    assert info.frames == frames + taps - 1, (info.frames, frames + taps - 1)
    assert info.samplerate == RATE
    assert info.channels == 2
    k = sf.read(str(ir), dtype="float64", always_2d=True)[0]
    pairs = []
    for p0 in (0, (frames + taps) // 2, frames + taps - 1 - RATE):
        lo, hi = p0 - taps + 1, p0 + RATE  # the input samples that reach y[p0 : p0 + RATE]
        xs = np.zeros((hi - lo, 2))
        a, b = max(lo, 0), min(hi, frames)
        xs[a - lo : b - lo] = sf.read(str(rec), start=a, stop=b, dtype="float64", always_2d=True)[0]
        ref = np.stack([fftconvolve(xs[:, c], k[:, c], mode="valid") for c in range(2)], -1)
        out = sf.read(str(wet), start=p0, stop=p0 + RATE, dtype="float64", always_2d=True)[0]
        pairs.append((out, ref))
    level = float(np.linalg.norm(pairs[1][1]))
    return [float(np.linalg.norm(out - ref)) / level for out, ref in pairs]


def record(title: str, lines: list[str]) -> None:
    """Replace the section ``title`` of RESULTS_CLI.md with ``lines`` (append it if new)."""
    body = "\n".join([title, "", *lines, ""])
    text = RESULTS.read_text() if RESULTS.exists() else "# Command-line benchmarks\n"
    start = text.find(title)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + body
    else:
        end = text.find("\n## ", start + len(title))
        text = text[:start] + body + ("" if end < 0 else text[end:])
    RESULTS.write_text(text.rstrip("\n") + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="recording length")
    parser.add_argument("--no-record", action="store_true", help="do not write RESULTS_CLI.md")
    parser.add_argument("--workdir", type=Path, default=None, help="where the WAVs go")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="trueconv-reverb-", dir=args.workdir))
    try:
        print(f"writing {args.minutes:g} min of stereo {RATE} Hz noise and a 3 s IR to {folder}")
        rec, ir, frames, taps = synthesise(folder, args.minutes)
        wet = folder / "wet.wav"
        argv = [*command(), "apply", str(rec), "--kernel", str(ir), "--mode", "full"]
        argv += ["-o", str(wet), "-v"]
        print("running " + " ".join(argv))
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # kB on Linux
        sys.stderr.write(done.stderr)
        if done.returncode != 0:
            print(f"trueconv apply failed with status {done.returncode}")
            return 1
        line = done.stdout.strip().splitlines()[-1]
        print(line)
        match = re.search(r", (\w+), ([0-9.]+) s, memory estimate ([0-9.]+ \w+)", line)
        assert match, line
        method, seconds, estimate = match.groups()
        errors = check(rec, ir, wet, frames, taps)
        size = rec.stat().st_size
        row = {
            "date": time.strftime("%Y-%m-%d"),
            "command": "trueconv apply rec.wav --kernel ir.wav --mode full -o wet.wav -v",
            "input": f"{args.minutes:g} min stereo {RATE} Hz float32 WAV: 2 × {frames:,} "
            f"samples, {size / 2**30:.2f} GiB",
            "kernel": f"{IR_SECONDS:g} s stereo impulse response (decaying noise, RT60 "
            f"{RT60_S:g} s): 2 × {taps:,} taps, one per channel",
            "output": f"2 × {frames + taps - 1:,} samples ('full': the reverb tail kept), "
            "float32 WAV",
            "method chosen by 'auto'": method,
            "wall time, whole command (start-up, read, convolve, write)": f"{wall:.1f} s",
            "of which the convolution": f"{float(seconds):.1f} s",
            "peak resident memory": f"{peak / 2**30:.2f} GiB "
            f"({peak / (2 * (frames + taps - 1) * 4):.1f}× the output array)",
            "the command's memory estimate (`--max-bytes` compares it)": estimate,
            "check: 1-s windows vs scipy.signal.fftconvolve, error / signal level": (
                "start {:.1e}, middle {:.1e}, end of tail {:.1e}".format(*errors)
            ),
            "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
            f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM, "
            f"Python {platform.python_version()}, torch {torch_version()}",
        }
        for k, v in row.items():
            print(f"{k}: {v}")
        if not args.no_record:
            date, cmd = row.pop("date"), row.pop("command")
            lines = [f"Made by `python benchmarks/audio_reverb.py` on {date}: `{cmd}`.", ""]
            lines += ["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in row.items())]
            record(TITLE, lines)
            print(f"recorded in {RESULTS}")
        return 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
