"""`trueconv apply --scheduler` with workers that do not share this process's view of the paths.

The module's cluster has two worker processes started in a folder of their own, so a relative
path means another file to them: the command must hand them absolute paths (it used to write an
all-zero store and exit 0). Where the workers cannot see a path at all (a worker in a mount
namespace where the output folder is another, empty folder), the job fails on one line before
anything is computed, and nothing is left. Few cases: each worker imports torch.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.signal

from conftest import rel_err
from trueconv.cli import zarr_apply, zarr_store
from trueconv.cli._errors import InputError

zarr = pytest.importorskip("zarr")
distributed = pytest.importorskip("distributed")

ZARR3 = int(zarr.__version__.split(".")[0]) >= 3
SHARED = (
    "the input and the output must be on a filesystem the workers share, at the same absolute path"
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Two single-threaded worker processes whose working folder is their own (they are
    started from it: a worker process takes the folder its parent is in when it starts);
    yields the client and that folder. Always closed, also on failure."""
    folder = tmp_path_factory.mktemp("workers")
    here = os.getcwd()
    os.chdir(folder)
    try:
        local = distributed.LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        )
    finally:
        os.chdir(here)
    with local, distributed.Client(local) as client:
        yield client, folder


def store(path, x, chunks):
    if ZARR3:
        z = zarr.create_array(store=str(path), shape=x.shape, dtype=x.dtype, chunks=chunks)
    else:
        z = zarr.open_array(str(path), mode="w", shape=x.shape, dtype=x.dtype, chunks=chunks)
    z[...] = x
    return path


def cli(*argv, cwd, timeout=300) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "trueconv", "apply", *map(str, argv)]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=timeout)


def lines(result: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr.strip().splitlines()


def test_relative_paths_with_workers_in_another_folder(cluster, tmp_path):
    """``apply in.zarr -o out.zarr`` typed in the data's folder: the workers read and write
    there, not in their own folder; the result is scipy's (it was all zeros, exit 0)."""
    client, folder = cluster
    assert set(client.run(os.getcwd).values()) == {str(folder)}
    assert not Path(os.path.realpath(folder)).is_relative_to(os.path.realpath(tmp_path))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 24))
    k = rng.standard_normal((3, 4))
    store(tmp_path / "in.zarr", x, (6, 7))
    np.save(tmp_path / "k.npy", k)
    address = client.scheduler.address
    result = cli("in.zarr", "-k", "k.npy", "-o", "out.zarr", "--scheduler", address, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert lines(result) == []
    y = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")[...]
    assert rel_err(y, scipy.signal.convolve(x, k, "same")) < 1e-12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.zarr", "k.npy", "out.zarr"]
    assert list(folder.iterdir()) == []  # nothing written where the workers are


def test_chunk_that_cannot_be_decoded_on_a_worker(cluster, tmp_path):
    """The decode error happens on a worker and comes back as one line naming the chunk."""
    client, _ = cluster
    store(tmp_path / "in.zarr", np.arange(48.0).reshape(6, 8), (3, 4))
    key = "c/1/0" if ZARR3 else "1.0"
    (tmp_path / "in.zarr" / key).write_bytes(b"\x28\xb5\x2f\xfd junk")  # zstd magic, then junk
    address = client.scheduler.address
    result = cli("in.zarr", "-k", "box:3", "-o", "out.zarr", "--scheduler", address, cwd=tmp_path)
    assert result.returncode == 1
    (line,) = lines(result)
    where = os.path.realpath(tmp_path / "in.zarr")
    assert line.startswith(f"trueconv apply: in.zarr: cannot read chunk (1, 0) of {where}: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.zarr"]


def test_check_refuses_paths_the_workers_resolve_elsewhere(cluster, tmp_path, monkeypatch):
    """The check itself, with paths the workers resolve in their own folder: the input, the
    temporary output; and the chunk reader, for a worker that joins after the check."""
    client, _ = cluster
    monkeypatch.chdir(tmp_path)
    store(tmp_path / "in.zarr", np.ones((6, 8)), (3, 4))
    meta = zarr_store.check_store(tmp_path / "in.zarr", 3 if ZARR3 else 2)
    assert meta is not None
    (tmp_path / "tmp").mkdir()
    zarr_apply.check_workers(client, meta, tmp_path / "tmp")  # absolute: both seen
    relative = dataclasses.replace(meta, path=Path("in.zarr"))
    with pytest.raises(InputError) as info:
        zarr_apply.check_workers(client, relative, tmp_path / "tmp")
    message = str(info.value)
    assert message.startswith("2 of the 2 workers (tcp://127.0.0.1:")
    assert message.endswith(f", ...) do not see the input in.zarr as this machine does: {SHARED}")
    with pytest.raises(InputError, match=r"^2 of the 2 workers .* do not see the output folder"):
        zarr_apply.check_workers(client, meta, Path("tmp"))
    assert list((tmp_path / "tmp").iterdir()) == []  # the token does not stay
    reader = zarr_store.ChunkReader(zarr.open_array(str(tmp_path / "in.zarr"), mode="r"), relative)
    future = client.submit(reader.__getitem__, (slice(0, 3), slice(0, 4)), pure=False)
    with pytest.raises(zarr_store.StoreError) as info:
        future.result()
    assert (
        str(info.value) == f"a worker does not see the input in.zarr as this machine does: {SHARED}"
    )


def can_unshare() -> bool:
    try:
        run = subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return run.returncode == 0


def test_worker_that_sees_another_output_folder(tmp_path):
    """A real mismatch: a worker in its own mount namespace, where the output folder is an
    empty tmpfs at the same absolute path. Refused before computing (it used to write the
    chunks into that folder and rename the client's empty store into place, exit 0)."""
    if not sys.platform.startswith("linux") or not can_unshare():
        pytest.skip("needs a mount namespace (unshare -rm)")
    out = tmp_path / "out"
    out.mkdir()
    store(tmp_path / "in.zarr", np.ones((6, 8)), (3, 4))
    with (
        distributed.LocalCluster(
            n_workers=0, host="127.0.0.1", dashboard_address=":0", silence_logs=logging.ERROR
        ) as local,
        distributed.Client(local) as client,
    ):
        address = local.scheduler_address
        worker = f'"{sys.executable}" -m distributed.cli.dask_worker {address} --no-nanny'
        hidden = f'mount -t tmpfs tmpfs "{out}" && exec {worker} --nthreads 1 --no-dashboard'
        process = subprocess.Popen(
            ["unshare", "-rm", "sh", "-c", hidden],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            client.wait_for_workers(1, timeout=120)
            result = cli("in.zarr", "-k", "box:3", "-o", out / "y.zarr", "--scheduler", address,
                         cwd=tmp_path)  # fmt: skip
        finally:
            process.terminate()
            process.wait(timeout=60)
    assert result.returncode == 1
    (line,) = lines(result)
    assert line.startswith("trueconv apply: in.zarr: 1 of the 1 workers (tcp://127.0.0.1:")
    folder = os.path.realpath(out)
    assert line.endswith(f") do not see the output folder {folder} as this machine does: {SHARED}")
    assert list(out.iterdir()) == []
