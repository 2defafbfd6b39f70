"""Peak memory of a frozen-extractor stage at 1x, 4x and 16x the data (issue #8: 16x must cost <= 1.3x of 1x).

    python benchmarks/stream_memory.py [--samples 20000] [--scales 1 4 16] [--in-memory]

For each scale this writes an ``.npz`` of a time-series task (``samples x scale``
series of ``--timesteps`` x ``--channels`` float32, a regression and a 3-class
target), then runs ``graft run`` on a one-stage spec whose heads train on a
frozen GRU extractor (``layers`` policy freezing ``gru_1`` and ``gru_2``), as a
child process with ``GRAFT_CACHE_DIR`` in a fresh temporary folder.  The peak
RSS is the child's own, from ``os.wait4`` (its resource usage and that of
anything it waited for), so nothing of this process counts.  On Linux the
table also shows the sampled peaks of its anonymous memory and of its mapped
file pages (a memory-mapped read counts in the RSS while it is mapped); the
floor is the peak RSS of a process that only imports graft and TensorFlow.

By default the archive is written with ``numpy.savez``'s layout (stored,
uncompressed): the ``npz`` source leaves the inputs on disk and training reads
them a batch at a time.  ``--in-memory`` writes it deflated, as
``numpy.savez_compressed`` does, so the inputs are read into memory: the old
behaviour, for comparison.  The data is written a chunk at a time, so this
process stays small too.  Needs only Python, numpy and keras-graft with the
``gru`` plugin installed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile

import numpy as np

CHUNK = 8192  # series written at a time
TARGET_RATIO = 1.3  # the target for 16x against 1x

SPEC = """\
seed: 7
model:
  input_shape: [{timesteps}, {channels}]
  extractor:
    plugin: gru
    params:
      layers:
        - {{name: gru_1, units: {units}}}
        - {{name: gru_2, units: {units}}}
  heads:
    level: {{plugin: dense, loss: mse, metrics: [mae], params: {{units: 1}}}}
    trend:
      plugin: dense
      loss: sparse_categorical_crossentropy
      metrics: [accuracy]
      params: {{units: 3}}
stages:
  - name: heads
    data:
      source: npz
      params: {{path: data.npz, targets: {{level: y_level, trend: y_trend}}, validation_split: 0.1}}
    epochs: {epochs}
    batch_size: {batch_size}
    policy:
      plugin: layers
      params: {{freeze: [gru_1, gru_2], train: [level, trend]}}
"""


def write_task(path: str, samples: int, timesteps: int, channels: int, compressed: bool) -> int:
    """Write the task's archive at ``path`` a chunk at a time; its size in bytes.

    Series are noisy sines with a per-series slope: ``y_level`` is the mean of
    channel 0 over the last tenth, ``y_trend`` the slope's class (down, flat, up).
    """
    folder = os.path.dirname(path)
    inputs = os.path.join(folder, "x.npy")
    x = np.lib.format.open_memmap(inputs, mode="w+", dtype=np.float32, shape=(samples, timesteps, channels))
    level = np.empty((samples, 1), np.float32)
    trend = np.empty(samples, np.int64)
    steps = np.linspace(0.0, 1.0, timesteps, dtype=np.float32)[None, :, None]
    tail = max(1, timesteps // 10)
    for start in range(0, samples, CHUNK):
        stop = min(start + CHUNK, samples)
        rng = np.random.default_rng([7, start])
        n = stop - start
        slope_class = rng.integers(0, 3, n)
        slope = (slope_class - 1).astype(np.float32)[:, None, None] * rng.uniform(0.5, 1.5, (n, 1, 1))
        phase = rng.uniform(0, 2 * np.pi, (n, 1, channels)).astype(np.float32)
        chunk = np.sin(6.0 * steps + phase) + slope * steps + 0.1 * rng.standard_normal((n, timesteps, channels))
        x[start:stop] = chunk
        level[start:stop, 0] = chunk[:, -tail:, 0].mean(axis=1)
        trend[start:stop] = slope_class
    x.flush()
    del x
    method = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=method, compresslevel=1 if compressed else None) as archive:
        archive.write(inputs, "x.npy")  # copied a block at a time
        for name, values in (("y_level", level), ("y_trend", trend)):
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, values)
    os.unlink(inputs)
    return os.path.getsize(path)


def peak_rss(command: list[str], env: dict[str, str], log: str) -> tuple[int, float, int, dict[str, int]]:
    """Run ``command``: its peak RSS in bytes (``os.wait4``), wall seconds, exit status, and sampled peaks.

    The sampled peaks (Linux only, every 20 ms, so short spikes can be missed)
    split the RSS into anonymous memory and mapped file pages (``RssAnon``,
    ``RssFile`` of ``/proc/<pid>/status``): a memory-mapped file read shows as
    file pages, which the system can drop but which count in the RSS.
    """
    started = time.perf_counter()
    sampled: dict[str, int] = {}
    with open(log, "wb") as output:
        child = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
        sampler = threading.Thread(target=_sample, args=(child.pid, sampled), daemon=True)
        sampler.start()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        sampler.join()
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return usage.ru_maxrss * scale, time.perf_counter() - started, child.returncode, sampled


def _sample(pid: int, peaks: dict[str, int]) -> None:
    """Record into ``peaks`` the largest ``RssAnon`` and ``RssFile`` of process ``pid`` until it ends."""
    status = f"/proc/{pid}/status"
    while True:
        try:
            with open(status, encoding="ascii") as handle:
                lines = handle.read().splitlines()
        except OSError:
            return
        values = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in lines if line.startswith("Rss")}
        if not values:  # ended, not yet reaped
            return
        for key in ("RssAnon", "RssFile"):
            peaks[key] = max(peaks.get(key, 0), values.get(key, 0))
        time.sleep(0.02)


def mib(count: float) -> str:
    """``1048576`` -> ``1 MiB``."""
    return f"{count / 2**20:,.0f} MiB"


def _maybe(sampled: dict[str, int], key: str) -> str:
    return mib(sampled[key]) if key in sampled else "-"


def tail_of(log: str, lines: int = 25) -> str:
    with open(log, encoding="utf-8", errors="replace") as handle:
        return "".join(handle.readlines()[-lines:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=20_000, help="series at 1x (default 20000: 32 MB of inputs)")
    parser.add_argument("--timesteps", type=int, default=50)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--units", type=int, default=8, help="units of each of the two GRUs")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--in-memory", action="store_true", help="write the archive compressed: read into memory")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (data, runs, logs)")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="graft-stream-memory-")
    how = "deflated, as numpy.savez_compressed writes it" if args.in_memory else "stored, as numpy.savez writes it"
    print(f"npz {how}; {args.samples:,} series x ({args.timesteps}, {args.channels}) float32 at 1x; work in {work}")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    floor, *_ = peak_rss(
        [sys.executable, "-c", "import graft.commands.cli, tensorflow, keras"], env, os.path.join(work, "floor.log")
    )
    print(f"floor: importing graft, tensorflow and keras peaks at {mib(floor)}")
    print(f"{'scale':>5}  {'series':>9}  {'npz':>9}  {'peak RSS':>9}  {'vs 1x':>6}  {'above floor':>11}  "
          f"{'anon':>9}  {'file':>9}  {'wall':>6}")
    peaks: dict[int, int] = {}
    try:
        for scale in args.scales:
            folder = os.path.join(work, f"x{scale}")
            os.makedirs(folder)
            samples = args.samples * scale
            size = write_task(os.path.join(folder, "data.npz"), samples, args.timesteps, args.channels, args.in_memory)
            spec = os.path.join(folder, "spec.yaml")
            with open(spec, "w", encoding="utf-8") as handle:
                handle.write(SPEC.format(timesteps=args.timesteps, channels=args.channels, units=args.units,
                                         epochs=args.epochs, batch_size=args.batch_size))
            cache = os.path.join(folder, "cache")
            log = os.path.join(folder, "run.log")
            command = [sys.executable, "-m", "graft", "run", spec, "--out", os.path.join(folder, "run")]
            peak, wall, status, sampled = peak_rss(command, {**env, "GRAFT_CACHE_DIR": cache}, log)
            if status != 0:
                print(f"graft run at {scale}x exited {status}; the end of {log}:\n{tail_of(log)}", file=sys.stderr)
                return 1
            peaks[scale] = peak
            base = peaks[args.scales[0]]
            print(f"{scale:>4}x  {samples:>9,}  {mib(size):>9}  {mib(peak):>9}  {peak / base:>5.2f}x  "
                  f"{mib(peak - floor):>11}  {_maybe(sampled, 'RssAnon'):>9}  {_maybe(sampled, 'RssFile'):>9}  "
                  f"{wall:>5.0f}s", flush=True)
            if not args.keep:
                os.unlink(os.path.join(folder, "data.npz"))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    first, last = args.scales[0], args.scales[-1]
    if len(peaks) > 1:
        ratios = ", ".join(f"{scale}x/{first}x = {peaks[scale] / peaks[first]:.2f}" for scale in args.scales[1:])
        verdict = "meets" if peaks[last] <= TARGET_RATIO * peaks[first] else "misses"
        print(f"peak RSS ratios: {ratios}; {verdict} the target {last}x <= {TARGET_RATIO} x {first}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
