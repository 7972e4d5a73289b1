"""Speed benchmarks: LCReg's training step against the plain model and a PyTorch reference.

Prints numbers and writes JSON; asserts nothing (speed is not a test).

  python tools/benchmark.py step                  # every backend + the PyTorch reference
  python tools/benchmark.py step --backends=jax --batch=128 --steps=30
  python tools/benchmark.py pipeline              # JPEG decode + random resized crop + flip vs PIL
  python tools/benchmark.py pipeline --sizes=600,800  # iNaturalist-sized JPEGs
  python tools/benchmark.py recipe --threads=1    # the default job's stage one, real data, per backend
  python tools/benchmark.py step --gpu --out=DIR  # ResNet-50 224x224 bf16 batch 256 (GPU preset)
  python tools/benchmark.py profile --backends=tensorflow --profile_against=plain  # what LCReg adds, op by op
  python tools/benchmark.py summary --out=DIR     # Markdown table of every step.json under DIR

`step` times, per Keras backend (each in its own process, since Keras fixes
its backend at import): `fit` throughput of the plain model (backbone, GAP,
Dense; `LCRegModel(latent=False)`), of the full LCReg model, and of the
ablations that locate LCReg's own cost (latent pool only, + aug, + recon), on
in-memory synthetic data, after a warm-up epoch that compiles; peak resident
memory of the process. Beside them, a plain PyTorch ResNet-32 stage-one step
(mixup CE, SGD momentum, coupled weight decay; channels_last; torch.compile
when `--torch_compile`) as the MiSLAS code base would run it.

One module per benchmark: `bench_step.py` (step, levers, summary),
`bench_torch_reference.py`, `bench_profile.py`, `bench_recipe.py`,
`bench_pipeline.py`; `bench_common.py` holds the timing and the child
processes they share.
"""

import argparse
import sys

from bench_common import backends
from bench_pipeline import run_pipeline
from bench_profile import profile_worker, run_profile
from bench_recipe import run_recipe
from bench_step import (DEFAULT_VARIANTS, LEVERS, VARIANTS, keras_step_worker, run_levers,
                        run_step, run_summary)
from bench_torch_reference import torch_reference_worker


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["step", "profile", "levers", "pipeline", "recipe", "summary",
                                         "_keras_step", "_torch_step", "_profile"])
    parser.add_argument("--backends", type=backends, default="tensorflow,jax,torch",
                        help="comma-separated, of: tensorflow, jax, torch; none for no Keras run")
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
    parser.add_argument("--profile_variant", default="lcreg", help="profile: the variant profiled (of --variants' names)")
    parser.add_argument("--profile_against", default=None,
                        help="profile: also this variant, and the ops whose time differs (e.g. plain)")
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
    for flag in ("profile_variant", "profile_against"):
        if getattr(args, flag) not in (None, *VARIANTS):
            parser.error(f"--{flag}={getattr(args, flag)!r}: choose from {', '.join(VARIANTS)}")
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
