"""The command line of the tools that take a trained model and its recipe's data.

`python -m lcreg_keras.recipes.evaluate` (`tools/evaluate.py`) and
`tools/latent_maps.py` take the same flags, `--model` (a `.keras` file),
`--recipe` (a module of `lcreg_keras.recipes`), `--out`, plus the recipe
flags of `runner.define_flags` (pass those the model was trained with), and
start the same way: the recipe's config changed by the flags, the model
loaded, the data read (`load_model_and_data`).
"""

import importlib

from absl import app
from absl import flags

from lcreg_keras.recipes import datasets
from lcreg_keras.recipes import runner
from lcreg_keras.serving.trained_run import load_model

FLAGS = flags.FLAGS


def load_recipe_config(recipe):
    """The `Config` of `lcreg_keras.recipes.<recipe>` (or a dotted module path)."""
    name = recipe if "." in recipe else f"lcreg_keras.recipes.{recipe}"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name != name:
            raise
        raise ValueError(
            f"No recipe {recipe!r}: module {name} not found. Recipes live in "
            "lcreg_keras/recipes/ (e.g. fashion_mnist_lt)."
        ) from error
    if not hasattr(module, "get_config"):
        raise ValueError(f"Module {name} has no get_config(); is it a recipe?")
    return module.get_config()


def define_flags(out_default=None, out_help="Output folder.", extra=()):
    """The recipe flags, `--model`, `--recipe`, `--out` and `extra`; each once.

    Args:
        out_default: the default of `--out`.
        out_help: its help text.
        extra: more flags, `(kind, name, default, help)` with `kind` one of
            `"string"`, `"integer"`, `"float"`, `"bool"`.
    """
    runner.define_flags()
    for kind, name, default, text in (
        ("string", "model", None, "The .keras file."),
        ("string", "recipe", None, "Recipe module name in lcreg_keras.recipes (or a dotted path)."),
        ("string", "out", out_default, out_help),
        *extra,
    ):
        if name not in FLAGS:
            getattr(flags, f"DEFINE_{kind}")(name, default, text)


def load_model_and_data():
    """`(config, model, data)` of `--model` and `--recipe` (changed by the flags).

    Prints the data's description.

    Raises:
        app.UsageError: without `--model` or `--recipe`.
    """
    if not FLAGS.model or not FLAGS.recipe:
        raise app.UsageError("--model and --recipe are required.")
    config = runner.apply_flags(load_recipe_config(FLAGS.recipe))
    model = load_model(FLAGS.model)
    data = datasets.load(config)
    print(data.describe(), flush=True)
    return config, model, data


def main(define, run, argv=None):
    """Defines the flags (`define()`), parses `argv` and calls `run()`; no positional arguments."""
    define()

    def _main(args):
        if len(args) > 1:
            raise app.UsageError(f"Unexpected arguments: {args[1:]}")
        run()

    app.run(_main, argv=argv)
