"""Runs the test suite on every Keras backend and prints one summary line.

The Keras backend is chosen once per process, so this runs pytest three times:
the whole suite on TensorFlow, then the tests marked `multibackend` (the core:
layers, losses, estimator, model) on JAX and on PyTorch.

Each pytest run spreads its test files over `--workers` processes
(pytest-xdist, `--dist loadfile`: the tests of one file stay in one process, so
module-scoped fixtures are built once). Most tests are small models whose time
goes to Python and op dispatch, which one process cannot spread over cores.

Usage:
  python tools/run_tests.py            # everything, as CI runs it
  python tools/run_tests.py --quick    # skip tests marked slow
  python tools/run_tests.py --workers=1 -- -k isda  # extra arguments go to pytest
"""

import argparse
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = (("tensorflow", None), ("jax", "multibackend"), ("torch", "multibackend"))
COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip slow tests")
    parser.add_argument(
        "--backends", default="tensorflow,jax,torch", help="comma-separated subset"
    )
    parser.add_argument(
        "--workers", type=int, default=min(2, os.cpu_count() or 1),
        help="pytest processes per backend (pytest-xdist); 1 runs in this process's pytest",
    )
    parser.add_argument(
        "--durations", type=int, default=15, help="print the N slowest tests of each backend"
    )
    parser.add_argument("pytest_args", nargs="*", help="passed on to pytest")
    args = parser.parse_args()
    wanted = args.backends.split(",")
    totals = {"passed": 0, "failed": 0, "skipped": 0, "error": 0}
    exit_codes = []
    for backend, marker in RUNS:
        if backend not in wanted:
            continue
        markers = [m for m in (marker, "not slow" if args.quick else None) if m]
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        if markers:
            cmd += ["-m", " and ".join(f"({m})" for m in markers)]
        if args.workers > 1:
            cmd += ["-n", str(args.workers), "--dist", "loadfile"]
        if args.durations:
            cmd += [f"--durations={args.durations}"]
        cmd += args.pytest_args
        env = dict(os.environ, KERAS_BACKEND=backend)
        print(f"\n=== KERAS_BACKEND={backend}: {' '.join(cmd[1:])}", flush=True)
        start = time.time()
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )
        last = ""
        for line in proc.stdout:
            sys.stdout.write(line)
            if line.strip():
                last = line
        code = proc.wait()
        # pytest exits 5 when the marker selects nothing: not a failure here.
        exit_codes.append(0 if code == 5 else code)
        for number, kind in COUNT.findall(last):
            kind = "error" if kind.startswith("error") else kind
            if kind in totals:
                totals[kind] += int(number)
        print(f"=== {backend}: exit {code} in {time.time() - start:.0f} s", flush=True)
    failed = totals["failed"] + totals["error"]
    print(f"\ntotal: {totals['passed']} passed, {failed} failed, "
          f"{totals['skipped']} skipped")
    sys.exit(1 if any(exit_codes) or failed else 0)


if __name__ == "__main__":
    main()
