"""Where Keras keeps downloaded datasets (`keras.datasets.*.load_data`)."""

import os


def keras_cache_dirs():
    """The `datasets` folders of the Keras cache, most likely first.

    Example:
        >>> keras_cache_dirs()[-1]
        '/tmp/.keras/datasets'
    """
    homes = []
    if os.environ.get("KERAS_HOME"):
        homes.append(os.environ["KERAS_HOME"])
    homes.append(os.path.join(os.path.expanduser("~"), ".keras"))
    homes.append(os.path.join("/tmp", ".keras"))
    dirs = []
    for home in homes:
        path = os.path.join(os.path.expanduser(home), "datasets")
        if path not in dirs:
            dirs.append(path)
    return dirs
