"""The path from the default job's module to its first training step, measured.

    python tools/call_path.py                      # the default job, shrunk
    python tools/call_path.py --module=lcreg_keras.recipes.cifar10_lt -- --data_dir=...

Runs `python -m <module>` (default `lcreg_keras.recipes.fashion_mnist_lt`) in
this process with a tiny setting (`--smoke`, one epoch of 256 training and 64
test images, a scratch `--model_dir`; arguments after `--` are added) under
`sys.setprofile` (and `threading.setprofile`), and stops it at the first call
of a function named `train_step` (Keras' trainer's, or a project override:
the first training step, traced). It prints:

- the call chain at that moment: the project frames of the stack, outermost
  first (`file:line function`), and the number of project files on it;
- every project file whose functions ran before it: the functions (distinct
  code objects) and calls in each, and the totals (what an import runs,
  module and class bodies and the calls they make, is not counted);
- the project modules imported whose functions did not run.

"Project files" are the files under `lcreg_keras/` of this checkout. The
process exits right after the report (`os._exit`), without training.
"""

import argparse
import collections
import os
import runpy
import shutil
import sys
import tempfile
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "lcreg_keras") + os.sep
STOP_AT = "train_step"
TINY = ("--smoke", "--epochs=1", "--max_train_examples=256", "--max_test_examples=64",
        "--verbose=0", "--eval_every=0")


def project_file(filename):
    """The path of `filename` relative to the checkout if it is a project file, else None."""
    path = os.path.abspath(filename)
    return os.path.relpath(path, ROOT) if path.startswith(PACKAGE) else None


class CallPath:
    """Counts the project functions called until the first `STOP_AT` call."""

    def __init__(self, entry, scratch, functions=False, out=sys.stdout):
        self.entry = os.path.abspath(entry)  # the file run as __main__
        self.functions = functions  # also list each function
        self.scratch = scratch  # removed before the process exits
        self.calls = collections.Counter()  # (file, function name, first line) -> calls
        self.out = out
        self.lock = threading.Lock()

    def profile(self, frame, event, arg):
        if event != "call":
            return
        code = frame.f_code
        if code.co_name == STOP_AT:
            self.report(frame)
            self.out.flush()
            shutil.rmtree(self.scratch, ignore_errors=True)
            os._exit(0)
        rel = project_file(code.co_filename)
        if rel is not None:
            name = "<module>" if self.at_import(frame) else code.co_name
            with self.lock:
                self.calls[(rel, name, code.co_firstlineno)] += 1

    def at_import(self, frame):
        """Whether `frame` runs for an import: a module body other than the entry's is below it."""
        while frame is not None:
            if frame.f_code.co_name == "<module>":
                return os.path.abspath(frame.f_code.co_filename) != self.entry
            frame = frame.f_back
        return False

    def chain(self, frame):
        """The project frames of the stack under `frame`, outermost first."""
        frames = []
        while frame is not None:
            rel = project_file(frame.f_code.co_filename)
            if rel is not None:
                frames.append((rel, frame.f_lineno, frame.f_code.co_name))
            frame = frame.f_back
        return frames[::-1]

    def report(self, frame):
        def say(text):
            print(text, file=self.out)

        stopped = project_file(frame.f_code.co_filename) or frame.f_code.co_filename
        say(f"stopped at the first {STOP_AT}: {stopped}:{frame.f_code.co_firstlineno}")
        chain = self.chain(frame.f_back)
        say(f"\n(a) the call chain (project frames, outermost first): {len(chain)} frames, "
              f"{len({f for f, _, _ in chain})} files")
        for rel, line, name in chain:
            say(f"  {rel}:{line} {name}")
        per_file = collections.defaultdict(lambda: [0, 0])
        imported = set()
        for (rel, name, _), count in self.calls.items():
            if name == "<module>":  # run by an import (module and class bodies, ...)
                imported.add(rel)
                continue
            per_file[rel][0] += 1
            per_file[rel][1] += count
        functions = sum(f for f, _ in per_file.values())
        calls = sum(c for _, c in per_file.values())
        say(f"\n(b) project files whose functions ran before it: {len(per_file)} files, "
            f"{functions} functions, {calls} calls (what imports run not counted)")
        say(f"  {'functions':>9} {'calls':>7}  file")
        for rel, (f, c) in sorted(per_file.items(), key=lambda kv: (-kv[1][0], kv[0])):
            say(f"  {f:>9} {c:>7}  {rel}")
            if self.functions:
                for (frel, name, line), count in sorted(self.calls.items()):
                    if frel == rel and name != "<module>":
                        say(f"  {'':>9} {count:>7}    {name} (line {line})")
        only = sorted(imported - set(per_file))
        say(f"\n(c) imported, no function run: {len(only)} files; {len(imported)} "
            "project modules imported in all")
        for rel in only:
            say(f"  {rel}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", default="lcreg_keras.recipes.fashion_mnist_lt")
    parser.add_argument("--functions", action="store_true", help="list each function too")
    parser.add_argument("extra", nargs="*", help="more flags for the module (after --)")
    args = parser.parse_args(argv)
    sys.path.insert(0, ROOT)
    model_dir = tempfile.mkdtemp(prefix="call_path_")
    sys.argv = [args.module, *TINY, f"--model_dir={model_dir}", *args.extra]
    # The entry's file, found without importing its package (an import before
    # the profile starts would hide what it runs).
    entry = os.path.join(ROOT, *args.module.split(".")) + ".py"
    tracer = CallPath(entry, model_dir, functions=args.functions)
    threading.setprofile(tracer.profile)
    sys.setprofile(tracer.profile)
    try:
        runpy.run_module(args.module, run_name="__main__", alter_sys=True)
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
        shutil.rmtree(model_dir, ignore_errors=True)
    print(f"{args.module} ended without a call of {STOP_AT}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
