"""What every benchmark of tools/benchmark.py shares: timing, child processes, reports.

Each measured process is a child (Keras fixes its backend at import), started
by `child` as `benchmark.py _WORKER ...` with its thread pools sized by
`thread_environment`; it prints one JSON line, which `child` returns.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

TOOLS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TOOLS)
sys.path.insert(0, ROOT)  # run from a checkout without installing
BENCHMARK = os.path.join(TOOLS, "benchmark.py")


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def timed(run):
    """`(run(), wall-clock seconds, CPU seconds of this process, all its threads)`."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def best_of(repeats, run):
    """(seconds, cores busy) of the fastest of `repeats` calls of `run`.

    Cores busy is the process's CPU time over the wall time of that call: 2.0
    on this machine means both cores worked throughout, 1.0 that one did.
    """
    best = (float("inf"), 0.0)
    for _ in range(repeats):
        _, wall, cpu = timed(run)
        if wall < best[0]:
            best = (wall, cpu / wall)
    return best


def rates(run):
    """(items per wall-clock second, items per CPU second of this process) of `run()`.

    `run` returns how many items it processed.
    """
    count, wall, cpu = timed(run)
    return count / wall, count / cpu


def thread_environment(threads, env=None):
    """A copy of `env` (default: this process's) with CPU thread pools of `threads`.

    Sizes TensorFlow's pools, OpenMP's (PyTorch's and oneDNN's) and, for one
    thread, XLA:CPU's (JAX). `threads=None` leaves them as they are.
    """
    env = dict(os.environ if env is None else env)
    if threads:
        env.update(TF_NUM_INTRAOP_THREADS=str(threads), TF_NUM_INTEROP_THREADS="1",
                   OMP_NUM_THREADS=str(threads))
        if threads == 1:
            env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
    return env


def child(argv, backend=None, threads=None, onednn="1", xla_flags="", env_overrides=()):
    env = thread_environment(threads)
    env["TF_ENABLE_ONEDNN_OPTS"] = str(onednn)
    env.update(item.split("=", 1) for item in env_overrides)
    if xla_flags:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + xla_flags).strip()
    if backend:
        env["KERAS_BACKEND"] = backend
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    proc = subprocess.run(
        [sys.executable, BENCHMARK] + argv, env=env, cwd=ROOT,
        stdout=subprocess.PIPE, text=True,
    )
    if proc.returncode != 0:
        return {"error": f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


KERAS_BACKENDS = ("tensorflow", "jax", "torch")


def backends(text):
    """`--backends`' comma-separated value as a list; "none" (or nothing) is no backend.

    An argparse type: an unknown name is refused at parse time, before any run.
    """
    names = [name for name in text.split(",") if name and name != "none"]
    unknown = [name for name in names if name not in KERAS_BACKENDS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown backend {', '.join(unknown)}; of: {', '.join(KERAS_BACKENDS)}, none")
    return names


def new_report(args):
    """A benchmark's JSON report before its runs: the machine, the settings, no backend yet."""
    return {"machine": machine(), "settings": vars(args).copy(), "backends": {}}


def machine():
    return {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
    }


def write(folder, name, report):
    if not folder:
        return
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    with open(path, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {path}")
