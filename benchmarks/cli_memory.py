"""Measure the peak memory of ``trueconv apply`` against its own estimate: the provenance of
``SCRATCH`` and the other constants of ``src/trueconv/cli/jobs.py``, from which the estimate
that ``--max-bytes`` is compared with is made.

    python benchmarks/cli_memory.py              # records a section of RESULTS_CLI.md
    python benchmarks/cli_memory.py --no-record

Each job runs the command (``trueconv.cli.main``, as the console script runs it) as a child
process on synthetic data and reads the child's own peak resident memory from ``os.wait4``.
What a job adds is its peak minus the *baseline*: an idle command (5 samples, or a 300 x 300
array for the fused separable loop) that loaded the same code: the interpreter, torch, the
command's imports and numba's compiled loops where the job loaded them (the child reports
which), which ``--max-bytes`` does not count. The
estimate must bound what a job adds, and not by much: the last column is estimate / added.

Three kinds of job: small (a 2000 x 2000 array), large (8000 x 8000, 10 minutes of stereo
audio, a 4000 x 3000 RGB PNG), kernel-heavy (the issue's ``box:30000 --mode full`` on a small
array, scaled down to ``box:3000``), and the refused one itself, whose estimate is read from the
refusal and whose peak is that of the refusing command.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audio_reverb import record

#: The command line in a child that says on stderr, at exit, which of numba's compiled loops
#: it loaded (the direct method's, the fused separable passes'): their code is a fixed cost
#: (0.1 GiB each), counted in the baseline, not in the estimate.
RUN = (
    "import atexit, sys\n"
    "def loops():\n"
    "    names = ('rows', 'rows_separable')\n"
    "    got = [n for n in names if getattr(sys.modules.get('trueconv._methods.' + n), "
    "'_KERNEL', None) is not None]\n"
    "    sys.stderr.write('compiled loops: ' + (','.join(got) or 'none') + '\\n')\n"
    "atexit.register(loops)\n"
    "from trueconv.cli import main\n"
    "sys.argv[0] = 'trueconv'\n"
    "sys.exit(main())\n"
)


def command() -> list[str]:
    return [sys.executable, "-c", RUN]


#: The same, timing the command itself (after Python and torch started) on stderr.
TIMED = (
    "import sys, time\n"
    "from trueconv.cli import main\n"
    "start = time.perf_counter()\n"
    "status = main(sys.argv[1:])\n"
    "sys.stderr.write(f'command took {time.perf_counter() - start:.3f} s\\n')\n"
    "sys.exit(status)\n"
)


TITLE = "## Memory: the estimate against the measured peak (`--max-bytes`)"

UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


def peak_of(argv: list[str]) -> tuple[int, str, float, int]:
    """Run ``argv``; its peak RSS in bytes, its output (stdout and stderr), wall seconds and
    exit status."""
    with tempfile.TemporaryFile("w+") as out:
        start = time.perf_counter()
        child = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        out.seek(0)
        text = out.read()
    return usage.ru_maxrss * 1024, text, seconds, os.waitstatus_to_exitcode(status)


def size_of(text: str) -> int:
    """``'346.5 MiB'`` -> bytes."""
    number, unit = text.split()
    return int(float(number) * UNITS[unit])


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


MINUTES, RATE = 10, 48_000


def generate(folder: Path) -> None:
    import soundfile as sf
    from PIL import Image

    rng = np.random.default_rng(0)
    np.save(folder / "tiny.npy", np.ones(5))
    np.save(folder / "small.npy", rng.standard_normal((30, 40)))
    np.save(folder / "s300.npy", rng.standard_normal((300, 300)))
    np.save(folder / "v40.npy", rng.standard_normal((40, 60, 60)))
    np.save(folder / "mid.npy", rng.standard_normal((2000, 2000)))
    np.save(folder / "image.npy", rng.standard_normal((8000, 8000), dtype=np.float32))
    rec = 0.1 * rng.standard_normal((MINUTES * 60 * RATE, 2))
    sf.write(folder / "rec.wav", rec.astype(np.float32), RATE, subtype="FLOAT")
    ir = rng.standard_normal((3 * RATE, 2)) * np.exp(-np.arange(3 * RATE) / RATE)[:, None]
    sf.write(folder / "ir.wav", (ir / 100).astype(np.float32), RATE, subtype="FLOAT")
    yy, xx = np.mgrid[:3000, :4000]
    rgb = 128 + 60 * np.sin(yy / 50.0)[..., None] * np.cos(xx / 70.0)[..., None]
    rgb = rgb + rng.normal(0, 10, (3000, 4000, 3))
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(folder / "photo.png")


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
        ir = str(folder / "ir.wav")
        audio = f"{MINUTES} min stereo 48 kHz WAV, 3 s stereo IR"
        # (kind, label, input, output suffix, extra arguments)
        cases = [
            ("small", "2000 x 2000 float64, 13 x 13 Gaussian", "mid.npy", ".npy",
             ["-k", "gaussian:sigma=2"]),
            ("small", "2000 x 2000 float64, 13 x 13 Gaussian", "mid.npy", ".npy",
             ["-k", "gaussian:sigma=2", "--method", "fft"]),
            ("large", "8000 x 8000 float32, 61 x 61 Gaussian", "image.npy", ".npy",
             ["-k", "gaussian:sigma=10"]),
            ("large", "8000 x 8000 float32, 61 x 61 Gaussian", "image.npy", ".npy",
             ["-k", "gaussian:sigma=10", "--method", "fft"]),
            ("large", "8000 x 8000 float32, 7 x 7 Gaussian", "image.npy", ".npy",
             ["-k", "gaussian:sigma=1", "--method", "direct"]),
            ("large", f"{audio}, 'full'", "rec.wav", ".wav", ["-k", ir, "--mode", "full"]),
            ("large", f"{audio}, 'full'", "rec.wav", ".wav",
             ["-k", ir, "--mode", "full", "--method", "fft"]),
            ("large", "4000 x 3000 RGB PNG, 13 x 13 Gaussian, to PNG", "photo.png", ".png",
             ["-k", "gaussian:sigma=2"]),
            ("kernel", "30 x 40 float64, box:3000 'full'", "small.npy", ".npy",
             ["-k", "box:3000", "--mode", "full"]),
            ("kernel", "30 x 40 float64, box:3000 'same'", "small.npy", ".npy",
             ["-k", "box:3000", "--mode", "same"]),
            ("kernel", "30 x 40 float64, box:3000 'same'", "small.npy", ".npy",
             ["-k", "box:3000", "--mode", "same", "--method", "fft"]),
        ]  # fmt: skip
        idle: dict[str, int] = {}
        # idle jobs that load each set of compiled loops, on samples too few to count
        idle_jobs = {
            "none": ["tiny.npy", "-k", "box:3", "--method", "fft"],
            "rows": ["tiny.npy", "-k", "box:3", "--method", "direct"],
            "rows_separable": ["s300.npy", "-k", "gaussian:sigma=2"],
            "rows,rows_separable": ["v40.npy", "-k", "gaussian:sigma=2"],
        }

        def baseline(loops: str) -> int:
            """Peak of an idle command that loaded the same compiled loops."""
            if loops not in idle:
                name, *extra = idle_jobs[loops]
                argv = [*command(), "apply", str(folder / name), *extra]
                argv += ["-o", str(folder / "t.npy"), "--force"]
                peak, text, _, _ = peak_of(argv)
                got = re.findall(r"compiled loops: (\S+)", text)[-1]
                if got != loops:
                    print(f"warning: the idle job for {loops} loaded {got}", flush=True)
                idle[loops] = peak
            return idle[loops]

        rows = []
        for kind, label, name, suffix, extra in cases:
            out = folder / f"out{suffix}"
            argv = [*command(), "apply", str(folder / name), *extra, "-o", str(out)]
            argv += ["--force", "-v", "--max-bytes", "20G"]
            peak, text, _, status = peak_of(argv)
            m = re.search(r", (\w+), [0-9.]+ s, memory estimate ([0-9.]+ \w+)", text)
            assert status == 0, text
            assert m, text
            method, estimate = m[1], size_of(m[2])
            base = baseline(re.findall(r"compiled loops: (\S+)", text)[-1])
            added = peak - base
            forced = "--method" in extra
            how = method if forced else f"{method} ('auto')"
            rows.append(
                f"| {kind} | {label} | {how} | {gib(estimate)} | {gib(peak)} | {gib(base)} "
                f"| {gib(added)} | {estimate / added:.2f} |"
            )
            print(rows[-1], flush=True)

        # the job: refused at the default --max-bytes, before its kernel exists
        argv = [sys.executable, "-c", TIMED, "apply", str(folder / "small.npy"), "-k"]
        argv += ["box:30000", "--mode", "full", "-o", str(folder / "never.npy")]
        peak, text, _, status = peak_of(argv)
        seconds = float(re.findall(r"command took ([0-9.]+) s", text)[-1])
        m = re.search(r"needs about ([0-9.]+ \w+) of memory \(.*, (\w+)\), more than --max-bytes "
                      r"([0-9.]+ \w+)", text)  # fmt: skip
        assert status == 1, text
        assert m, text
        refused = (
            f"| refused | 30 x 40 float64, box:30000 'full' (issue 16) | {m[2]} (planned) "
            f"| {gib(size_of(m[1]))} | {gib(peak)} (refused {seconds * 1000:.0f} ms after "
            f"start-up; the job ran to 18.5 GiB before) | {gib(baseline('none'))} | — | — |"
        )
        rows.append(refused)
        print(refused)
        lines = [
            f"Made by `python benchmarks/cli_memory.py` on {time.strftime('%Y-%m-%d')} "
            f"({os.cpu_count()} CPUs, Python {sys.version.split()[0]}). Peak RSS of the whole "
            "command (`os.wait4`); baseline: an idle command that loaded the same code "
            "(Python, torch, the command's imports, and numba's compiled loops where the job "
            f"loaded them; idle peaks: {', '.join(f'{k} {gib(v)}' for k, v in idle.items())}), "
            "which `--max-bytes` does not count; added = peak − baseline, which the estimate "
            "must bound. The refused job's limit "
            f"was the default, half the RAM ({m[3]}).",
            "",
            "| kind | job | method | estimate | peak RSS | baseline | added | estimate / added |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            "Where a job's peak comes before numba's loops are loaded, the baseline with them "
            "overstates what was idle at that moment: the separable check of a large kernel "
            "(36 bytes per tap) runs, and is freed, before the passes compile, so such a job's "
            "added memory is better read against the idle command without them.",
        ]
        print("\n".join(lines))
        if not args.no_record:
            record(TITLE, lines)
        return 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
