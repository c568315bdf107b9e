"""What logging costs the training loop: `run.log` per call vs writing each point to disk.

Usage: python benchmarks/log_overhead.py [--calls N]

Prints one table. `run.log` only buffers; the cost of writing the buffer
(one HDF5 open-append-close per flush) is amortised over every call between
flushes. The unbuffered row is what each call would cost if it wrote its point
straight to the store.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time


def _time_per_call(fn, calls: int) -> float:
    t0 = time.perf_counter()
    for i in range(calls):
        fn(i)
    return (time.perf_counter() - t0) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["HPCTRACK_ROOT"] = tmp
        os.environ["HPCTRACK_FLUSH_INTERVAL_S"] = "3600"  # flush on size only, so it is counted below
        import hpctrack
        from hpctrack.store import MetricBatch

        rows = []
        for n_metrics in (1, 10):
            values = {f"metric/{k}": 0.5 for k in range(n_metrics)}
            with hpctrack.start_run({"bench": True}) as run:
                run._max_points = 10**12  # buffering only
                buffered = _time_per_call(lambda i: run.log(values, step=i), args.calls)
            with hpctrack.start_run({"bench": True}) as run:  # default 10,000-point flushes included
                with_flush = _time_per_call(lambda i: run.log(values, step=i), args.calls)
            with hpctrack.start_run({"bench": True}) as run:
                store = run._store

                def unbuffered(i: int) -> None:
                    batch = MetricBatch()
                    for key in values:
                        batch.add(key, i, 0.5, time.time())
                    store.write(metrics=batch)

                direct = _time_per_call(unbuffered, 300)
            rows.append((n_metrics, buffered, with_flush, direct))

        flushes = []
        with hpctrack.start_run({"bench": True}) as run:
            for _ in range(20):
                for i in range(1000):
                    run.log({"a": i, "b": i, "c": i}, step=i)
                t0 = time.perf_counter()
                run.flush()
                flushes.append(time.perf_counter() - t0)

    print(f"run.log cost per call ({args.calls:,} calls; HDF5 store on {tmp.rsplit('/', 1)[0]})")
    print(
        f"{'metrics/call':>12} | {'buffer only':>12} | {'incl. flushes':>13} | {'unbuffered write':>16} | {'speed-up':>8}"
    )
    print(f"{'-' * 12}-+-{'-' * 12}-+-{'-' * 13}-+-{'-' * 16}-+-{'-' * 8}")
    for n_metrics, buffered, with_flush, direct in rows:
        print(
            f"{n_metrics:>12} | {buffered * 1e6:>9.2f} us | {with_flush * 1e6:>10.2f} us | "
            f"{direct * 1e6:>13.0f} us | {direct / with_flush:>7.0f}x"
        )
    print(f"\nflush of 3 metrics x 1000 points: median {statistics.median(flushes) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
