"""`benchmark.py step`, `levers`, `summary`: the training step's speed, LCReg against plain.

`step` times, per Keras backend (each in its own process), `fit` throughput of
the plain model and of LCReg and its ablations on in-memory synthetic data,
beside the PyTorch reference (`bench_torch_reference.py`). `levers` runs
named settings (oneDNN, fused batch norm, XLA, thread pools, layouts) in
interleaved rounds, each against the reference timed in the same round.
`summary` tabulates every step.json under a folder.
"""

import glob
import json
import os
import sys

from bench_common import best_of, child, machine, new_report, peak_rss_mb, write

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


def keras_step_worker(args):
    """One backend: img/s of each variant. Runs in a child process."""
    import keras

    if args.mixed_precision:
        keras.config.set_dtype_policy(args.mixed_precision)
    x, y = mixed_batches(args)
    n = len(x)
    results = {}
    for name in args.variants.split(","):
        model = keras_model(args, name)
        model.compile(keras.optimizers.SGD(0.1, momentum=0.9), jit_compile=args.jit,
                      steps_per_execution=args.steps_per_execution)
        warm = args.batch * max(2, args.steps // 5)
        model.fit(x[:warm], y[:warm], batch_size=args.batch, epochs=1, verbose=0)
        # The best of `repeats` timed epochs: the first variant of a process
        # otherwise pays for the runtime's own warm-up (thread pools, caches).
        seconds, cores = best_of(args.repeats, lambda: model.fit(x, y, batch_size=args.batch, epochs=1, verbose=0))
        results[name] = {"img_per_s": n / seconds, "step_ms": 1000 * seconds / args.steps, "cores_busy": cores}
        print(f"  {keras.config.backend():10s} {name:22s} {n / seconds:9.1f} img/s  "
              f"({cores:.2f} cores busy)", file=sys.stderr, flush=True)
    results["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(results))


def mixed_batches(args):
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


def keras_model(args, variant):
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


def run_step(args, passthrough):
    report = new_report(args)
    for backend in args.backends:
        print(f"backend {backend}:", flush=True)
        report["backends"][backend] = child(["_keras_step"] + passthrough, backend, args.threads, args.onednn)
    if args.reference:
        ref = {}
        for compiled in ([False, True] if args.torch_compile else [False]):
            extra = ["--torch_compile"] if compiled else []
            result = child(["_torch_step"] + [a for a in passthrough if a != "--torch_compile"] + extra,
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
    write(args.out, "step.json", report)


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
        ref = child(["_torch_step"] + common, threads=args.threads)
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
            result = child(["_keras_step"] + common + extra, backend, args.threads, onednn, xla, env)
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
    write(args.out, "levers.json", {"machine": machine(), "settings": vars(args).copy(), "rounds": rounds})


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
