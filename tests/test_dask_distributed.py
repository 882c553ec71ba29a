"""``trueconv.dask`` on a ``dask.distributed`` cluster: two worker processes on loopback, started
and shut down by the module's fixture. Few cases: starting the workers (each imports torch) is
the slow part.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

import trueconv
import trueconv.dask
from conftest import REL_TOL, rel_err
from test_dask import computed, scipy_reference  # skips this module without dask

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    """A LocalCluster of 2 single-threaded worker processes; always closed, also on failure."""
    with (
        distributed.LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def test_3d_same_reflect_on_two_worker_processes(client):
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((14, 12, 10))
    k = rng.standard_normal((5, 4, 3))  # larger than some chunks
    x = da.from_array(x_np, chunks=((1, 6, 7), (3, 3, 3, 3), (2, 8)))
    out = trueconv.dask.convolve(x, k, "same", boundary="reflect")
    with distributed.get_task_stream(client) as stream:
        got = client.compute(out).result()
    ref = trueconv.convolve(x_np, k, "same", boundary="reflect")
    assert rel_err(got, ref) <= REL_TOL[torch.float64]
    assert rel_err(got, scipy_reference(x_np, k, "same", boundary="reflect")) <= 1e-12
    # the tasks ran in the cluster's worker processes
    ran_on = {task["worker"] for task in stream.data}
    assert ran_on
    assert ran_on <= set(client.scheduler_info()["workers"])
    # block by block (on the cluster too: the client is the default scheduler now), every
    # block has its declared chunk shape
    np.testing.assert_array_equal(computed(out), got)


def test_correlate_full_per_signal_kernels_exact_integers(client):
    rng = np.random.default_rng(1)
    x_np = rng.integers(-9, 10, size=(6, 50)).astype(np.int64)
    k = rng.integers(-3, 4, size=(6, 7)).astype(np.int64)  # one kernel per row
    x = da.from_array(x_np, chunks=((2, 4), (5, 20, 25)))
    out = trueconv.dask.correlate(x, k, "full", dims=-1, boundary="wrap").persist()
    got = out.compute()
    kw = {"dims": -1, "boundary": "wrap"}
    np.testing.assert_array_equal(got, trueconv.correlate(x_np, k, "full", **kw))
    ref = scipy_reference(x_np, k, "full", dims=-1, boundary="wrap", correlate=True)
    np.testing.assert_array_equal(got, np.rint(ref).astype(np.int64))
