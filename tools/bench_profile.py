"""`benchmark.py profile`: the top ops of LCReg's training step by self time, per backend."""

import glob
import json
import os

from bench_common import child, machine, write
from bench_step import keras_model, mixed_batches


def profile_worker(args):
    """One backend: the top ops of LCReg's training step by self time. Runs in a child process."""
    import tempfile

    import keras

    x, y = mixed_batches(args)
    model = keras_model(args, "lcreg")
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), jit_compile=args.jit,
                  steps_per_execution=args.steps_per_execution)
    model.fit(x, y, batch_size=args.batch, epochs=1, verbose=0)  # compiles
    backend = keras.config.backend()
    epoch = lambda: model.fit(x, y, batch_size=args.batch, epochs=1, verbose=0)  # noqa: E731
    if backend == "torch":
        import torch

        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            epoch()
        ops = {e.key: e.self_cpu_time_total for e in prof.key_averages()}
    else:
        folder = tempfile.mkdtemp(prefix="lcreg-profile-")
        if backend == "jax":
            import jax

            jax.profiler.start_trace(folder)
            epoch()
            jax.profiler.stop_trace()
        else:
            import tensorflow as tf

            tf.profiler.experimental.start(folder)
            epoch()
            tf.profiler.experimental.stop()
        ops = xplane_op_times(folder)
    total = sum(ops.values())
    top = sorted(ops.items(), key=lambda kv: -kv[1])[: args.top]
    print(json.dumps({"total_ms_per_step": total / 1000 / args.steps,
                      "top": [{"op": k, "ms_per_step": v / 1000 / args.steps, "share": v / total}
                              for k, v in top]}))


def xplane_op_times(folder):
    """{op type: self time in us} from the TensorFlow / JAX profiler's xplane files under `folder`.

    Reads them with TensorFlow's own converter (the profiler plugin's
    `framework_op_stats`, the table TensorBoard shows); idle time is left out.
    """
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin

    paths = glob.glob(os.path.join(folder, "**", "*.xplane.pb"), recursive=True)
    data, _ = _pywrap_profiler_plugin.xspace_to_tools_data(paths, "framework_op_stats", {})
    table = json.loads(data)[0]
    column = {c["id"]: i for i, c in enumerate(table["cols"])}
    ops = {}
    for row in table["rows"]:
        values = [cell.get("v") for cell in row["c"]]
        kind = values[column["type"]]
        if kind != "IDLE":
            ops[kind] = ops.get(kind, 0.0) + values[column["total_self_time"]]
    if ops:
        return ops
    # XLA:CPU (JAX) has no op table; its trace holds one event per executed
    # kernel (thunk: a fusion, a convolution, ...) besides the runtime's and
    # Python's own events, which wrap (and wait for) the kernels: keep the
    # kernels, summed by name without the instance number.
    wrappers = ("$", "PjitFunction", "ThunkExecutor", "ThreadpoolListener", "CommonPjRt", "PjRt",
                "SlinkyThreadPool", "Allocate", "Handle ", "ParseArguments", "PythonRefManager",
                "end: ")
    data, _ = _pywrap_profiler_plugin.xspace_to_tools_data(paths, "trace_viewer@", {})
    for event in json.loads(data)["traceEvents"]:
        name = event.get("name", "")
        if event.get("ph") == "X" and not name.startswith(wrappers):
            kind = name.split(".")[0] if name.split(".")[-1].isdigit() else name
            ops[kind] = ops.get(kind, 0.0) + event.get("dur", 0.0)
    return ops


def run_profile(args, passthrough):
    """Prints, per backend, the top ops of the LCReg step by self time (Markdown)."""
    report = {"machine": machine(), "settings": vars(args).copy(), "backends": {}}
    lines = []
    for backend in [b for b in args.backends.split(",") if b and b != "none"]:
        result = child(["_profile"] + passthrough, backend, args.threads, args.onednn)
        report["backends"][backend] = result
        lines += [f"\n{backend}: {result.get('total_ms_per_step', float('nan')):.0f} ms of op self time a step"
                  f"{' (' + result['error'] + ')' if 'error' in result else ''}",
                  "", "| op | ms / step | share |", "|---|---|---|"]
        lines += [f"| {t['op']} | {t['ms_per_step']:.1f} | {100 * t['share']:.1f} % |"
                  for t in result.get("top", [])]
    print("\n".join(lines))
    write(args.out, "profile.json", report)
