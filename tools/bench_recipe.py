"""`benchmark.py recipe`: the default job's stage one, real data, per backend."""

import subprocess
import sys

from bench_common import ROOT, new_report, thread_environment, write


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
    report = new_report(args)
    for backend in args.backends:
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
    write(args.out, "recipe.json", report)
