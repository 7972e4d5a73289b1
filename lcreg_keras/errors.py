"""The error type of problems the user fixes: flags, data, model_dir.

The recipes' entry point (`lcreg_keras.recipes.runner.main`) prints a
`UserError`'s message, which says what is wrong and how to fix it, without a
traceback (`--verbose=1` or `2` adds the traceback). It is a `ValueError`, so
code that caught the `ValueError`s raised before keeps working.
"""


class UserError(ValueError):
    """A problem with the run's input that the user fixes (the message says how)."""
