"""`benchmark.py profile`: the top ops of a training step (LCReg's by default) by self time, per backend.

With `--profile_against=plain` it profiles that variant too, in its own
process, and prints the ops whose time differs: what LCReg adds to a step,
op by op. Beside wall-clock ratios, which a shared machine's load moves, it
gives the added work as the sum of the differences over the ops that are not
the backbone's (convolutions and batch norm do the same work in both, so
their difference is noise).
"""

import glob
import json
import os
import re

# Op kinds whose work the backbone sets alone (the same in every variant).
BACKBONE_OPS = re.compile(r"conv|batch_?norm", re.IGNORECASE)

from bench_common import child, new_report, write
from bench_step import keras_model, mixed_batches


def profile_worker(args):
    """One backend: the top ops of LCReg's training step by self time. Runs in a child process."""
    import tempfile

    import keras

    x, y = mixed_batches(args)
    model = keras_model(args, args.profile_variant)
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
                      "ops_ms_per_step": {k: v / 1000 / args.steps for k, v in ops.items()},
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
    """Prints, per backend, the top ops of the step by self time (Markdown), and the
    differences with `--profile_against`'s step when asked."""
    report = new_report(args)
    lines = []
    for backend in args.backends:
        result = child(["_profile"] + passthrough, backend, args.threads, args.onednn)
        report["backends"][backend] = result
        lines += [f"\n{backend}, {args.profile_variant}: {result.get('total_ms_per_step', float('nan')):.0f} ms of op self time a step"
                  f"{' (' + result['error'] + ')' if 'error' in result else ''}",
                  "", "| op | ms / step | share |", "|---|---|---|"]
        lines += [f"| {t['op']} | {t['ms_per_step']:.1f} | {100 * t['share']:.1f} % |"
                  for t in result.get("top", [])]
        if args.profile_against and "error" not in result:
            other = child(["_profile"] + passthrough + [f"--profile_variant={args.profile_against}"],
                          backend, args.threads, args.onednn)
            result["against"] = {args.profile_against: other}
            if "error" not in other:
                lines += difference_lines(result["ops_ms_per_step"], other["ops_ms_per_step"],
                                          args.profile_variant, args.profile_against, args.top)
    print("\n".join(lines))
    write(args.out, "profile.json", report)


def added_work(ops, base, positive_only=False):
    """ms a step that `ops` adds to `base` outside the backbone's ops (see the module).

    The net sum still holds the noise of the ops both steps share outside
    the backbone's (ReLU, padding, the optimizer's); `positive_only` counts
    only the ops that took longer, an upper bound.
    """
    differences = [ops.get(k, 0.0) - base.get(k, 0.0) for k in set(ops) | set(base)
                   if not BACKBONE_OPS.search(k)]
    return sum(d for d in differences if d > 0 or not positive_only)


def difference_lines(ops, base, name, base_name, top):
    """Markdown: the `top` ops by |difference| of time, and the added work as a share of `base`."""
    kinds = sorted(set(ops) | set(base), key=lambda k: -abs(ops.get(k, 0.0) - base.get(k, 0.0)))
    base_total = sum(base.values())
    extra = added_work(ops, base)
    lines = ["", f"{name} against {base_name}, op by op (ms a step):", "",
             f"| op | {base_name} | {name} | difference | backbone op |", "|---|---|---|---|---|"]
    for kind in kinds[:top]:
        a, b = ops.get(kind, 0.0), base.get(kind, 0.0)
        lines.append(f"| {kind} | {b:.1f} | {a:.1f} | {a - b:+.1f} | "
                     f"{'yes' if BACKBONE_OPS.search(kind) else ''} |")
    most = added_work(ops, base, positive_only=True)
    lines += ["", f"{name} adds {extra:.1f} ms a step outside the backbone's ops: "
                  f"{100 * extra / base_total:.1f} % of {base_name}'s {base_total:.0f} ms "
                  f"(op time ratio without the backbone's noise: {(base_total + extra) / base_total:.3f}; "
                  f"counting only the ops that took longer, {most:.1f} ms, {(base_total + most) / base_total:.3f})"]
    return lines
