"""What a run keeps in its `model_dir`, written so that a kill never corrupts it.

- Atomic writes: `write_json`, `save_model` and `replace_file` write a
  temporary file beside the target and `os.replace` it into place, so a kill
  at any moment leaves either the old file or the new one, never half of one.
- `RunLock`: one run per `model_dir`. A second run refuses with the host and
  PID of the holder; the lock of a dead process is taken over (the kernel
  drops an `flock` when its process dies, on a local disk and on NFSv4).
- `Manifest` (`run.json`): the resolved config, a fingerprint of the data
  and the package version of the run that made `model_dir`; a later run with
  another config or other data refuses unless `--overwrite`. It also caches
  the image scans (`--check_images=decode` decodes a dataset once).
- `kill_point(name)`: a test-only hook. When the environment variable
  `LCREG_KILL_AT` names the point (`name`, or `name#n` for its n-th visit in
  this process), the process SIGKILLs itself there, as a preemption would
  (tests/resume_runner_test.py).
"""

import errno
import fcntl
import hashlib
import json
import os
import signal
import socket
import time

from lcreg_keras.errors import UserError

KILL_ENV = "LCREG_KILL_AT"
MANIFEST = "run.json"
LOCK = "run.lock"
_visits = {}


# ----------------------------------------------------------------------------
# Kill points (tests only).


def kill_point(name):
    """SIGKILLs this process if `$LCREG_KILL_AT` names this visit of `name`.

    `LCREG_KILL_AT=stage1.batch#5` kills at the 5th visit of the point
    `stage1.batch`; without `#n` at the first. Unset (always, outside the
    tests) this only looks up an environment variable.
    """
    wanted = os.environ.get(KILL_ENV)
    if not wanted:
        return
    point, _, count = wanted.partition("#")
    if point != name:
        return
    _visits[name] = _visits.get(name, 0) + 1
    if _visits[name] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)


# ----------------------------------------------------------------------------
# Atomic writes.


def _temporary(path):
    folder, base = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    stem, ext = os.path.splitext(base)
    # Keras wants the real extension at the end (".keras", ".weights.h5").
    if base.endswith(".weights.h5"):
        stem, ext = base[: -len(".weights.h5")], ".weights.h5"
    return os.path.join(folder, f".{stem}.writing-{os.getpid()}{ext}")


def replace_file(path, write):
    """Calls `write(temporary_path)`, then renames the result onto `path`.

    Args:
        path: the target file.
        write: a callable writing the whole file at the path it is given.
    """
    tmp = _temporary(path)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        kill_point("write:" + os.path.basename(path))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def remove_stale_temporaries(folder):
    """Deletes the temporary files of killed writers under `folder`.

    Call it with the run's lock held: no other process writes there then,
    so every `.NAME.writing-PID` file is a dead writer's.
    """
    removed = 0
    for parent, children, names in os.walk(folder):
        # Other workers' scratch folders have their own runs (and locks).
        children[:] = [c for c in children if not c.startswith("workertemp_")]
        for name in names:
            if (name.startswith(".") and ".writing-" in name) or name.endswith(".json.writing"):
                os.remove(os.path.join(parent, name))
                removed += 1
    return removed


def write_json(path, content, **kwargs):
    """`json.dump(content)` to `path`, atomically (indent 2, `default=str`)."""
    kwargs.setdefault("indent", 2)
    kwargs.setdefault("default", str)

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(content, f, **kwargs)

    replace_file(path, write)


def read_json(path, default=None):
    """The JSON content of `path`, or `default` when there is no such file."""
    if not os.path.exists(path):
        return default
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def save_model(model, path):
    """`model.save(path)`, atomically."""
    replace_file(path, lambda tmp: model.save(tmp))


# ----------------------------------------------------------------------------
# The lock.


class RunLockedError(UserError):
    """Another live process holds the lock of the model_dir."""


class RunLock:
    """An exclusive lock on a model_dir, held for the life of the process.

    `acquire()` takes an `flock` on `model_dir/run.lock` and writes the
    holder (host, PID, start time) into it. A second process gets
    `RunLockedError` naming that holder. The kernel releases the lock when
    its process dies, so the lock of a killed run is simply taken over (and
    `took_over` describes the previous holder).

    Args:
        model_dir: the run's output folder (created if needed).

    Example:
        >>> lock = RunLock("/tmp/run").acquire()  # doctest: +SKIP
        >>> lock.release()  # doctest: +SKIP
    """

    def __init__(self, model_dir):
        self.path = os.path.join(model_dir, LOCK)
        self.fd = None
        self.took_over = None

    def acquire(self):
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                os.close(fd)
                raise
            holder = _read_holder(fd)
            os.close(fd)
            raise RunLockedError(
                f"{os.path.dirname(self.path)} is in use by another run: PID "
                f"{holder.get('pid', '?')} on host {holder.get('host', '?')} "
                f"(started {holder.get('started', '?')}) holds {self.path}. "
                "Wait for it to finish, stop it, or pass another --model_dir."
            ) from None
        previous = _read_holder(fd)
        if previous.get("pid"):
            self.took_over = previous
        me = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        os.fsync(fd)
        self.fd = fd
        return self

    def release(self):
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self.acquire() if self.fd is None else self

    def __exit__(self, *exc):
        self.release()


def _read_holder(fd):
    try:
        raw = os.pread(fd, 4096, 0)
        return json.loads(raw.decode()) if raw.strip() else {}
    except (OSError, ValueError):
        return {}


# ----------------------------------------------------------------------------
# The manifest.


class RunMismatchError(UserError):
    """model_dir holds a run of another config or other data."""


def file_sha256(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _differences(old, new, where=""):
    """`(key, old, new)` of the leaves where two JSON-like values differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out += _differences(old.get(key), new.get(key), f"{where}.{key}" if where else key)
        return out
    return [] if old == new else [(where, old, new)]


def _short(value, limit=60):
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Manifest:
    """`model_dir/run.json`: what made this run, checked by every rerun.

    Holds `config` (the fields that change results, see `compare_config`),
    `data` (a fingerprint: list files' SHA-256 and per-class counts, or a
    hash of the arrays), `version` (lcreg_keras) and `image_checks` (cached
    scans, keyed by the scanned files' names, sizes and times).

    Args:
        model_dir: the run's output folder.
    """

    def __init__(self, model_dir):
        self.path = os.path.join(model_dir, MANIFEST)
        self.content = read_json(self.path, default=None)
        self.existing = self.content is not None
        if self.content is None:
            self.content = {}

    def save(self):
        write_json(self.path, self.content)

    def compare(self, section, value):
        """Differences between the recorded `section` and `value`; records `value`.

        Returns:
            A list of readable lines, empty when they agree (or nothing was
            recorded yet).
        """
        old = self.content.get(section)
        self.content[section] = value
        if old is None:
            return []
        return [
            f"  {key}: {_short(a)} then, {_short(b)} now"
            for key, a, b in _differences(old, value)
        ]

    def image_check(self, key):
        return self.content.get("image_checks", {}).get(key)

    def store_image_check(self, key, result):
        self.content.setdefault("image_checks", {})[key] = result
        if os.path.isdir(os.path.dirname(self.path)):
            self.save()


def mismatch_error(model_dir, what, lines, fix):
    shown = lines[:12] + ([f"  ... and {len(lines) - 12} more"] if len(lines) > 12 else [])
    return RunMismatchError(
        f"{model_dir} holds a run made with {what}:\n" + "\n".join(shown) + f"\n{fix}"
    )
