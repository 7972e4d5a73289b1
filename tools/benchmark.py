"""Speed benchmarks: LCReg's training step against the plain model and a PyTorch reference.

Prints numbers and writes JSON; asserts nothing (speed is not a test).

  python tools/benchmark.py step                  # every backend + the PyTorch reference
  python tools/benchmark.py step --backends=jax --batch=128 --steps=30
  python tools/benchmark.py pipeline              # JPEG decode + random resized crop + flip vs PIL
  python tools/benchmark.py pipeline --sizes=600,800  # iNaturalist-sized JPEGs
  python tools/benchmark.py recipe --threads=1    # the default job's stage one, real data, per backend
  python tools/benchmark.py step --gpu --out=DIR  # ResNet-50 224x224 bf16 batch 256 (GPU preset)
  python tools/benchmark.py summary --out=DIR     # Markdown table of every step.json under DIR

`step` times, per Keras backend (each in its own process, since Keras fixes
its backend at import): `fit` throughput of the plain model (backbone, GAP,
Dense; `LCRegModel(latent=False)`), of the full LCReg model, and of the
ablations that locate LCReg's own cost (latent pool only, + aug, + recon), on
in-memory synthetic data, after a warm-up epoch that compiles; peak resident
memory of the process. Beside them, a plain PyTorch ResNet-32 stage-one step
(mixup CE, SGD momentum, coupled weight decay; channels_last; torch.compile
when `--torch_compile`) as the MiSLAS code base would run it.
"""

import argparse
import glob
import json
import os
import platform
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # run from a checkout without installing
# `levers`: each setting is (name, backend, extra flags), run in this order
# beside the PyTorch reference, in every round. The TensorFlow rows add one
# lever at a time to the one before.
LEVERS = {
    "tf_before": ("tensorflow", ["--onednn=0", "--bn=keras"]),
    "tf_onednn": ("tensorflow", ["--onednn=1", "--bn=keras"]),
    "tf_onednn_fused_bn": ("tensorflow", ["--onednn=1", "--bn=fused"]),
    "tf_onednn_fused_bn_spe8": ("tensorflow", ["--onednn=1", "--bn=fused", "--steps_per_execution=8"]),
    "tf_onednn_fused_bn_xla": ("tensorflow", ["--onednn=1", "--bn=fused", "--jit=true"]),
    # TensorFlow's thread pools (with --threads=2; the default sizes intra-op
    # to the thread count and inter-op to 1).
    "tf_inter2": ("tensorflow", ["--env=TF_NUM_INTEROP_THREADS=2"]),
    "tf_intra1_inter2": ("tensorflow", ["--env=TF_NUM_INTRAOP_THREADS=1", "--env=TF_NUM_INTEROP_THREADS=2"]),
    "tf_channels_first": ("tensorflow", ["--data_format=channels_first"]),
    "jax": ("jax", []),
    "jax_channels_first": ("jax", ["--data_format=channels_first"]),
    "jax_spe8": ("jax", ["--steps_per_execution=8"]),
    "jax_xla_onednn": ("jax", ["--xla_flags=--xla_cpu_use_onednn=true"]),
    "jax_no_xnnpack": ("jax", ["--xla_flags=--xla_cpu_use_xnnpack=false"]),
    # No YNNPACK fusions: XLA:CPU's own (Eigen) convolutions instead.
    "jax_no_ynn": ("jax", ["--xla_flags=--xla_cpu_experimental_ynn_fusion_type="]),
    "torch": ("torch", []),  # Keras' PyTorch trainer refuses steps_per_execution > 1
    # The backbone's layers on (B, C, H, W): no permute around each convolution.
    "torch_channels_first": ("torch", ["--data_format=channels_first"]),
}
VARIANTS = {
    "plain": dict(latent=False),
    "latent_only": dict(latent_aug=False, latent_recon=False),
    "latent_aug": dict(latent_recon=False),
    "latent_recon": dict(latent_aug=False),
    "lcreg": dict(),
    # The readings of Eq. 5-6 (spec Sec. 3; asked for by name, as --variants=plain,lcreg,lcreg_parts):
    # `lcreg` is today's `latents`.
    "lcreg_parts": dict(latent_aug_samples="parts"),
    "lcreg_latents_explicit": dict(latent_aug_explicit=True),
    "lcreg_parts_explicit": dict(latent_aug_samples="parts", latent_aug_explicit=True),
}
DEFAULT_VARIANTS = ("plain", "latent_only", "latent_aug", "latent_recon", "lcreg")


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _timed(run):
    """`(run(), wall-clock seconds, CPU seconds of this process, all its threads)`."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def _best_of(repeats, run):
    """(seconds, cores busy) of the fastest of `repeats` calls of `run`.

    Cores busy is the process's CPU time over the wall time of that call: 2.0
    on this machine means both cores worked throughout, 1.0 that one did.
    """
    best = (float("inf"), 0.0)
    for _ in range(repeats):
        _, wall, cpu = _timed(run)
        if wall < best[0]:
            best = (wall, cpu / wall)
    return best


def keras_step_worker(args):
    """One backend: img/s of each variant. Runs in a child process."""
    import keras

    if args.mixed_precision:
        keras.config.set_dtype_policy(args.mixed_precision)
    x, y = _mixed_batches(args)
    n = len(x)
    results = {}
    for name in args.variants.split(","):
        model = _keras_model(args, name)
        model.compile(keras.optimizers.SGD(0.1, momentum=0.9), jit_compile=args.jit,
                      steps_per_execution=args.steps_per_execution)
        warm = args.batch * max(2, args.steps // 5)
        model.fit(x[:warm], y[:warm], batch_size=args.batch, epochs=1, verbose=0)
        # The best of `repeats` timed epochs: the first variant of a process
        # otherwise pays for the runtime's own warm-up (thread pools, caches).
        seconds, cores = _best_of(args.repeats, lambda: model.fit(x, y, batch_size=args.batch, epochs=1, verbose=0))
        results[name] = {"img_per_s": n / seconds, "step_ms": 1000 * seconds / args.steps, "cores_busy": cores}
        print(f"  {keras.config.backend():10s} {name:22s} {n / seconds:9.1f} img/s  "
              f"({cores:.2f} cores busy)", file=sys.stderr, flush=True)
    results["peak_rss_mb"] = _peak_rss_mb()
    print(json.dumps(results))


def _mixed_batches(args):
    """Synthetic images and mixup soft labels, mixed per batch as the recipes' pipelines mix.

    Mixing is done once here (the recipes mix in the input pipeline, not in
    the step), so the timed step is the model's; the PyTorch reference mixes
    inside its step, which costs one blend of the batch (negligible beside a
    ResNet step).
    """
    import numpy as np

    from lcreg_keras.data import mixup_batch

    shape = (args.image_size, args.image_size, 3)
    rng = np.random.default_rng(0)
    n = args.batch * args.steps
    x = rng.normal(size=(n,) + shape).astype("float32")
    y = np.eye(args.classes, dtype="float32")[rng.integers(0, args.classes, size=n)]
    for step, start in enumerate(range(0, n, args.batch)):
        batch = slice(start, start + args.batch)
        mixed_x, mixed_y = mixup_batch(x[batch], y[batch], 1.0, seed=(0, step))
        x[batch], y[batch] = np.asarray(mixed_x), np.asarray(mixed_y)
    return x, y


def _keras_model(args, variant):
    import keras

    from lcreg_keras.backbones import get_backbone
    from lcreg_keras.models import LCRegModel

    if args.bn == "keras":  # the lever off: Keras' unfused batch norm everywhere
        from lcreg_keras.backbones.batch_norm import BatchNormalization

        BatchNormalization._fused = lambda self, inputs, training, mask: False
    keras.utils.set_random_seed(0)
    shape = (args.image_size, args.image_size, 3)
    options = {"width": 16} if args.backbone == "resnet32" else {}
    if args.data_format != "channels_last":
        options["data_format"] = args.data_format
    backbone = get_backbone(args.backbone, shape, **options)
    return LCRegModel(
        backbone, num_classes=args.classes, num_latents=args.num_latents,
        covariance=args.covariance, weight_decay=5e-4, **VARIANTS[variant],
    )


def torch_reference_worker(args):
    """The same stage-one step written plainly in PyTorch (ResNet-32, mixup CE, SGD)."""
    import numpy as np
    import torch
    from torch import nn
    from torch.nn import functional as F

    torch.manual_seed(0)

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            self.pad = cout - cin if stride != 1 or cin != cout else 0
            self.stride = stride

        def forward(self, x):
            out = F.relu(self.b1(self.c1(x)))
            out = self.b2(self.c2(out))
            short = x
            if self.pad:  # LDAM's option A: subsample and zero-pad channels
                short = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad // 2, self.pad // 2))
            return F.relu(out + short)

    class ResNet32(nn.Module):
        def __init__(self, classes):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
            layers, cin = [], 16
            for cout, stride in ((16, 1), (32, 2), (64, 2)):
                for i in range(5):
                    layers.append(Block(cin, cout, stride if i == 0 else 1))
                    cin = cout
            self.blocks = nn.Sequential(*layers)
            self.fc = nn.Linear(64, classes)

        def forward(self, x):
            return self.fc(self.blocks(self.stem(x)).mean((2, 3)))

    model = ResNet32(args.classes).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), 0.1, momentum=0.9, weight_decay=5e-4)
    step_model = torch.compile(model) if args.torch_compile else model
    rng = np.random.default_rng(0)
    n = args.batch * args.steps
    x = torch.from_numpy(rng.normal(size=(n, 3, args.image_size, args.image_size)).astype("float32"))
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.from_numpy(rng.integers(0, args.classes, size=n))

    # The bf16 counterpart of Keras' `mixed_bfloat16`: float32 weights,
    # the forward pass autocast to bfloat16.
    bf16 = args.mixed_precision == "mixed_bfloat16"

    def step(xb, yb):
        lam = float(np.random.beta(1.0, 1.0))
        index = torch.randperm(xb.shape[0])
        mixed = lam * xb + (1 - lam) * xb[index]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = step_model(mixed)
        logits = logits.float()
        loss = lam * F.cross_entropy(logits, yb) + (1 - lam) * F.cross_entropy(logits, yb[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    model.train()
    for i in range(max(2, args.steps // 5)):
        step(x[i * args.batch:(i + 1) * args.batch], y[i * args.batch:(i + 1) * args.batch])
    def epoch():
        for i in range(args.steps):
            step(x[i * args.batch:(i + 1) * args.batch], y[i * args.batch:(i + 1) * args.batch])

    seconds, cores = _best_of(args.repeats, epoch)
    name = "torch_reference" + ("_compiled" if args.torch_compile else "") + ("_bf16" if bf16 else "")
    print(f"  {'pytorch':10s} {name:12s} {n / seconds:9.1f} img/s  ({cores:.2f} cores busy)",
          file=sys.stderr, flush=True)
    print(json.dumps({name: {"img_per_s": n / seconds, "step_ms": 1000 * seconds / args.steps,
                             "cores_busy": cores}, "peak_rss_mb": _peak_rss_mb()}))


def profile_worker(args):
    """One backend: the top ops of LCReg's training step by self time. Runs in a child process."""
    import tempfile

    import keras

    x, y = _mixed_batches(args)
    model = _keras_model(args, "lcreg")
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
        ops = _xplane_op_times(folder)
    total = sum(ops.values())
    top = sorted(ops.items(), key=lambda kv: -kv[1])[: args.top]
    print(json.dumps({"total_ms_per_step": total / 1000 / args.steps,
                      "top": [{"op": k, "ms_per_step": v / 1000 / args.steps, "share": v / total}
                              for k, v in top]}))


def _xplane_op_times(folder):
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
    report = {"machine": _machine(), "settings": vars(args).copy(), "backends": {}}
    lines = []
    for backend in [b for b in args.backends.split(",") if b and b != "none"]:
        result = _child(["_profile"] + passthrough, backend, args.threads, args.onednn)
        report["backends"][backend] = result
        lines += [f"\n{backend}: {result.get('total_ms_per_step', float('nan')):.0f} ms of op self time a step"
                  f"{' (' + result['error'] + ')' if 'error' in result else ''}",
                  "", "| op | ms / step | share |", "|---|---|---|"]
        lines += [f"| {t['op']} | {t['ms_per_step']:.1f} | {100 * t['share']:.1f} % |"
                  for t in result.get("top", [])]
    print("\n".join(lines))
    _write(args.out, "profile.json", report)


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


def _child(argv, backend=None, threads=None, onednn="1", xla_flags="", env_overrides=()):
    env = thread_environment(threads)
    env["TF_ENABLE_ONEDNN_OPTS"] = str(onednn)
    env.update(item.split("=", 1) for item in env_overrides)
    if xla_flags:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + xla_flags).strip()
    if backend:
        env["KERAS_BACKEND"] = backend
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__)] + argv, env=env, cwd=ROOT,
        stdout=subprocess.PIPE, text=True,
    )
    if proc.returncode != 0:
        return {"error": f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_step(args, passthrough):
    report = {"machine": _machine(), "settings": vars(args).copy(), "backends": {}}
    for backend in [b for b in args.backends.split(",") if b and b != "none"]:
        print(f"backend {backend}:", flush=True)
        report["backends"][backend] = _child(["_keras_step"] + passthrough, backend, args.threads, args.onednn)
    if args.reference:
        ref = {}
        for compiled in ([False, True] if args.torch_compile else [False]):
            extra = ["--torch_compile"] if compiled else []
            result = _child(["_torch_step"] + [a for a in passthrough if a != "--torch_compile"] + extra,
                            threads=args.threads, onednn=args.onednn)
            ref.update({k: v for k, v in result.items() if k != "peak_rss_mb"})
        report["torch_reference"] = ref
    for backend, result in report["backends"].items():
        if "plain" not in result:
            continue
        if "lcreg" in result:  # time ratio LCReg / plain
            result["overhead_ratio"] = result["plain"]["img_per_s"] / result["lcreg"]["img_per_s"]
        for name in [n for n in result if n.startswith("lcreg")]:  # every reading's
            result[name]["over_plain"] = result["plain"]["img_per_s"] / result[name]["img_per_s"]
            print(f"{backend} {name} / plain (time): {result[name]['over_plain']:.3f}")
    print("\n" + summary_table({"this run": report}))
    _write(args.out, "step.json", report)


def run_levers(args):
    """Every setting of `--levers` and the PyTorch reference, `--rounds` times, interleaved.

    Prints LCReg's img/s per setting and round, and its ratio to the
    reference timed in the same round (a ratio measured side by side is
    what carries across machines and days).
    """
    common = [f"--{k}={getattr(args, k)}" for k in
              ("variants", "backbone", "image_size", "batch", "steps", "repeats", "classes",
               "num_latents", "covariance")]
    if args.mixed_precision:
        common.append(f"--mixed_precision={args.mixed_precision}")
    names = [n for n in args.levers.split(",") if n]
    unknown = sorted(set(names) - set(LEVERS))
    if unknown:
        raise SystemExit(f"unknown --levers {unknown}; choose from {sorted(LEVERS)}")
    variant = args.variants.split(",")[-1]
    rounds = []
    for round_index in range(args.rounds):
        ref = _child(["_torch_step"] + common, threads=args.threads)
        timed = [v for k, v in ref.items() if k.startswith("torch_reference")]
        row = {"reference": timed[0]["img_per_s"] if timed else None}
        print(f"round {round_index + 1}: PyTorch reference {row['reference'] or float('nan'):.1f} img/s",
              flush=True)
        for name in names:
            backend, extra = LEVERS[name]
            onednn = next((a.split("=", 1)[1] for a in extra if a.startswith("--onednn=")), args.onednn)
            xla = next((a.split("=", 1)[1] for a in extra if a.startswith("--xla_flags=")), "")
            env = [a.split("=", 1)[1] for a in extra if a.startswith("--env=")]
            extra = [a for a in extra if not a.startswith(("--xla_flags=", "--env="))]
            result = _child(["_keras_step"] + common + extra, backend, args.threads, onednn, xla, env)
            row[name] = result.get(variant, {}).get("img_per_s")
            print(f"  {name:26s} {row[name] or float('nan'):7.1f} img/s", flush=True)
        rounds.append(row)
    lines = [f"| setting | {variant} img/s (rounds) | / reference (same round) |", "|---|---|---|"]
    for name in ["reference"] + names:
        values = [r[name] for r in rounds]
        ratios = [r[name] / r["reference"] if r[name] and r["reference"] else None for r in rounds]
        fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
        lines.append(f"| {name} | {', '.join(fmt(v, '.1f') for v in values)} | "
                     f"{', '.join(fmt(v, '.2f') for v in ratios)} |")
    print("\n" + "\n".join(lines))
    _write(args.out, "levers.json", {"machine": _machine(), "settings": vars(args).copy(), "rounds": rounds})


def run_recipe(args):
    """The default job's own training throughput, per backend: real data through tf.data.

    Runs stage one of `python -m lcreg_keras.recipes.fashion_mnist_lt` (the
    recipe's model, pipeline and `fit`) for `--recipe_epochs` epochs of
    `--recipe_examples` long-tailed training images, in one child process per
    backend, and reads each epoch's seconds from Keras' `verbose=2` line. The
    first epoch compiles; the best later epoch counts.
    """
    import re
    import tempfile

    line = re.compile(r"^(\d+)/(\d+) - (\d+(?:\.\d+)?)(ms|s) - ")
    report = {"machine": _machine(), "settings": vars(args).copy(), "backends": {}}
    for backend in [b for b in args.backends.split(",") if b and b != "none"]:
        with tempfile.TemporaryDirectory(prefix="lcreg-recipe-") as folder:
            env = thread_environment(args.threads)
            env.update(KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
            proc = subprocess.run(
                [sys.executable, "-m", "lcreg_keras.recipes.fashion_mnist_lt", "--stage=1",
                 f"--epochs={args.recipe_epochs}", f"--max_train_examples={args.recipe_examples}",
                 "--max_test_examples=64", "--eval_every=0", "--verbose=2", f"--batch_size={args.batch}",
                 f"--model_dir={folder}/run"],
                env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )
        epochs = []
        for text in proc.stdout.splitlines():
            match = line.match(text.strip())
            if match and match.group(1) == match.group(2):
                seconds = float(match.group(3)) / (1000.0 if match.group(4) == "ms" else 1.0)
                epochs.append((int(match.group(2)), seconds))
        if proc.returncode != 0 or len(epochs) < 2:
            report["backends"][backend] = {"error": f"exit {proc.returncode}", "tail": proc.stdout[-2000:]}
            print(f"  {backend:10s} failed (exit {proc.returncode})", flush=True)
            continue
        steps, best = min(epochs[1:], key=lambda e: e[1])
        # Keras prints whole seconds: the epoch must be long enough to read.
        result = {"img_per_s": steps * args.batch / best, "epoch_s": [e[1] for e in epochs], "steps": steps}
        report["backends"][backend] = result
        print(f"  {backend:10s} recipe stage one {result['img_per_s']:7.1f} img/s "
              f"(epochs {', '.join(f'{e:.0f} s' for e in result['epoch_s'])})", flush=True)
    _write(args.out, "recipe.json", report)


def _machine():
    return {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
    }


def _write(folder, name, report):
    if not folder:
        return
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    with open(path, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {path}")


def summary_table(reports):
    """A Markdown table of step reports (`{run name: report}`).

    The LCReg / reference column divides by the fastest PyTorch reference
    among all the reports (a sweep times it once).
    """
    refs = {(name, k): v["img_per_s"] for name, report in reports.items()
            for k, v in report.get("torch_reference", {}).items()
            if isinstance(v, dict) and "img_per_s" in v}
    best = max(refs.values(), default=None)
    rows = ["| run | backend | plain img/s | LCReg img/s | LCReg / plain (time) | cores busy | "
            "LCReg / reference |", "|---|---|---|---|---|---|---|"]
    for (name, ref_name), value in refs.items():
        rows.append(f"| {name} | PyTorch reference ({ref_name}) | {value:.0f} | | | | |")
    for name, report in reports.items():
        for backend, result in report["backends"].items():
            if "plain" not in result or "lcreg" not in result:
                rows.append(f"| {name} | {backend} | {result.get('error', '-')} | | | | |")
                continue
            plain, lcreg = result["plain"], result["lcreg"]
            busy = "/".join(f"{r['cores_busy']:.2f}" for r in (plain, lcreg) if "cores_busy" in r)
            ratio = f"{lcreg['img_per_s'] / best:.2f}" if best else "-"
            rows.append(f"| {name} | {backend} | {plain['img_per_s']:.0f} | {lcreg['img_per_s']:.0f} | "
                        f"{plain['img_per_s'] / lcreg['img_per_s']:.3f} | {busy or '-'} | {ratio} |")
    return "\n".join(rows)


def run_summary(folder):
    """Prints `summary_table` of every step.json under `folder` (one run per subfolder)."""
    reports = {}
    for path in sorted(glob.glob(os.path.join(folder, "**", "step.json"), recursive=True)):
        with open(path) as f:
            reports[os.path.relpath(os.path.dirname(path), folder)] = json.load(f)
    print(summary_table(reports))


def _rates(run):
    """(items per wall-clock second, items per CPU second of this process) of `run()`.

    `run` returns how many items it processed.
    """
    count, wall, cpu = _timed(run)
    return count / wall, count / cpu


def run_pipeline(args):
    """img/s per core: our tf.data JPEG pipeline vs a PIL pipeline, one core each."""
    import tempfile

    import numpy as np

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    from PIL import Image

    from lcreg_keras.data.pipelines import image_train_dataset

    folder = tempfile.mkdtemp(prefix="lcreg-bench-")
    rng = np.random.default_rng(0)
    paths = []
    low, high = (int(v) for v in args.sizes.split(","))
    for i in range(args.images):
        h, w = rng.integers(low, high + 1), rng.integers(low, high + 1)
        # Smooth random images compress like photos, unlike white noise.
        small = rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((int(w), int(h)), Image.BILINEAR)
        path = os.path.join(folder, f"{i}.jpg")
        image.save(path, quality=90)
        paths.append(path)
    labels = np.arange(args.images) % 10

    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)

    def ours(dct_scaling):
        dataset = image_train_dataset(paths, labels, 10, args.batch, image_size=224, color_jitter=0.0,
                                      seed=0, dct_scaling=dct_scaling)
        options = tf.data.Options()
        options.threading.private_threadpool_size = 1
        dataset = dataset.with_options(options)
        for _ in dataset.take(1):
            pass
        return _rates(lambda: sum(int(x.shape[0]) for x, _ in dataset))

    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)

    def pil_sample(path, prng):
        image = Image.open(path).convert("RGB")
        width, height = image.size
        area = width * height
        for _ in range(10):
            target = area * prng.uniform(0.08, 1.0)
            aspect = np.exp(prng.uniform(np.log(3 / 4), np.log(4 / 3)))
            w = int(round(np.sqrt(target * aspect)))
            h = int(round(np.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                left, top = prng.integers(0, width - w + 1), prng.integers(0, height - h + 1)
                break
        else:
            w, h = min(width, height), min(width, height)
            left, top = (width - w) // 2, (height - h) // 2
        image = image.resize((224, 224), Image.BILINEAR, box=(left, top, left + w, top + h))
        if prng.random() < 0.5:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        return (np.asarray(image, np.float32) / 255.0 - mean) / std

    from lcreg_keras.data import transforms

    contents = [tf.io.read_file(path) for path in paths]

    def ops(dct_scaling):
        """The decode, crop and resize ops alone (no tf.data), the same crops every call."""
        @tf.function
        def one(data, seed):
            image = transforms.decode_random_crop(data, seed, (0.08, 1.0), (3 / 4, 4 / 3),
                                                  dct_min_size=224 if dct_scaling else None)
            return transforms.resize(image, [224, 224])

        def run(images):
            for i, data in enumerate(images):
                one(data, tf.constant([i, 0]))
            return len(images)

        run(contents[:2])
        return _rates(lambda: run(contents))

    def pil():
        prng = np.random.default_rng(0)

        def run():
            for path in paths:
                pil_sample(path, prng)
            return len(paths)

        return _rates(run)

    # Interleaved, so a change in the machine's load hits all three alike;
    # one untimed round first (the first pass of each pays for warm-up).
    # Each is timed twice: images per wall-clock second and per CPU second
    # of this process (all its threads), the second unmoved by other
    # tenants' load on a shared machine.
    ours(False), ours(True), pil()
    rounds = []
    for _ in range(args.rounds):
        timed = {"tf_data": ours(False), "tf_data_dct": ours(True), "pil": pil(),
                 "ops": ops(False), "ops_dct": ops(True)}
        rounds.append({name: wall for name, (wall, _) in timed.items()}
                      | {name + "_per_cpu_s": cpu for name, (_, cpu) in timed.items()})
    report = {"machine": _machine(), "images": args.images, "sizes": [low, high], "rounds": rounds}
    for r in rounds:
        for unit, key in (("wall", ""), ("CPU", "_per_cpu_s")):
            ours_, dct, pil_ = r["tf_data" + key], r["tf_data_dct" + key], r["pil" + key]
            print(f"img per {unit} s: tf.data (fused decode-and-crop, 1 thread) {ours_:.1f}; with "
                  f"dct_scaling {dct:.1f}; PIL (decode, crop, resize, flip) {pil_:.1f}; "
                  f"ratios to PIL {ours_ / pil_:.2f} and {dct / pil_:.2f}; the decode-crop-resize ops "
                  f"alone {r['ops' + key]:.1f}, with dct_scaling {r['ops_dct' + key]:.1f}")
    _write(args.out, "pipeline.json", report)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["step", "profile", "levers", "pipeline", "recipe", "summary",
                                         "_keras_step", "_torch_step", "_profile"])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                        help=f"of: {', '.join(VARIANTS)}")
    parser.add_argument("--backbone", default="resnet32")
    parser.add_argument("--image_size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2, help="timed epochs; the best counts")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--num_latents", type=int, default=40)
    parser.add_argument("--covariance", default="full")
    parser.add_argument("--mixed_precision", default=None)
    parser.add_argument("--jit", default="auto", help="compile(jit_compile=...): auto, true, false")
    parser.add_argument("--reference", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--torch_compile", action="store_true")
    parser.add_argument("--threads", type=int, default=None,
                        help="step: CPU threads per process (TensorFlow, OpenMP, XLA); default: theirs")
    parser.add_argument("--onednn", default="1", choices=["0", "1"],
                        help="TF_ENABLE_ONEDNN_OPTS of the children (lcreg_keras sets 1)")
    parser.add_argument("--bn", default="fused", choices=["fused", "keras"],
                        help="fused: our BatchNormalization (FusedBatchNormV3 on TF); keras: Keras' own ops")
    parser.add_argument("--steps_per_execution", type=int, default=1, help="compile(steps_per_execution=...)")
    parser.add_argument("--data_format", default="channels_last", choices=["channels_last", "channels_first"],
                        help="the CIFAR ResNet's layer layout (its input and output stay channels last)")
    parser.add_argument("--top", type=int, default=10, help="profile: ops listed per backend")
    parser.add_argument("--rounds", type=int, default=2, help="levers: rounds of every setting")
    parser.add_argument("--levers", default=",".join(LEVERS), help="levers: settings, by name")
    parser.add_argument("--images", type=int, default=256, help="pipeline: JPEGs to generate")
    parser.add_argument("--sizes", default="300,500",
                        help="pipeline: range of the JPEGs' sides (ImageNet about 400x350; iNaturalist 2018 up to 800)")
    parser.add_argument("--recipe_epochs", type=int, default=3, help="recipe: stage-one epochs (the first compiles)")
    parser.add_argument("--recipe_examples", type=int, default=5120,
                        help="recipe: long-tailed training images (the cap of --max_train_examples)")
    parser.add_argument("--gpu", action="store_true", help="ResNet-50 224 bf16 batch 256 preset")
    parser.add_argument("--out", default=None, help="folder for the JSON report")
    args = parser.parse_args()
    args.jit = {"auto": "auto", "true": True, "false": False}[str(args.jit).lower()]
    if args.gpu:
        args.backbone, args.image_size, args.batch = "resnet50", 224, 256
        args.mixed_precision, args.num_latents, args.covariance = "mixed_bfloat16", 100, "diagonal"
        args.classes, args.reference = 1000, False
    passthrough = [a for a in sys.argv[2:] if a != "--gpu"]
    if args.gpu:
        passthrough += ["--backbone=resnet50", "--image_size=224", "--batch=256",
                        "--mixed_precision=mixed_bfloat16", "--num_latents=100",
                        "--covariance=diagonal", "--classes=1000"]
    if args.what == "_keras_step":
        keras_step_worker(args)
    elif args.what == "_torch_step":
        torch_reference_worker(args)
    elif args.what == "_profile":
        profile_worker(args)
    elif args.what == "profile":
        run_profile(args, passthrough)
    elif args.what == "levers":
        run_levers(args)
    elif args.what == "step":
        run_step(args, passthrough)
    elif args.what == "summary":
        run_summary(args.out or ".")
    elif args.what == "recipe":
        run_recipe(args)
    else:
        run_pipeline(args)


if __name__ == "__main__":
    main()
