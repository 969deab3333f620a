"""Files written whole or not at all: write beside, flush and fsync, then rename.

Every file a run leaves (the backup, results.json, history.csv, the exports)
goes through `atomic_path` or `atomic_dir`: the content is written under a
temporary name in the same folder, synced to disk, and only then renamed
over the real name (`os.replace`, atomic on POSIX file systems). A kill, a
full disk or a power cut at any moment leaves either the old file or the
new one, never a torn one; a stray `*.tmp-<pid>*` may remain, and is ignored.
A folder is swapped with its new version in one step where the system can
(Linux's renameat2 RENAME_EXCHANGE), so a reader always finds one of them.

Test hook (documented, off unless set): ADDER_TF_FAULT=<point>:<epoch>:<action>
makes the write named `point` whose epoch is `epoch` fail on purpose after
its temporary file is complete and before the rename. `action` is `sigint`,
`sigkill`, `raise` or `hang` (waits forever, its other threads running on:
a worker that stops taking part without dying); `sigkill-torn` and `raise-torn` first cut the
temporary file to half its size, as a kill in the middle of an HDF5 write
leaves it (a SIGINT only sets a flag during training, so the write under
way finishes: `adder_tf.interrupt`). Write points:
`backup` (the epoch's weights), `metadata` (its epoch counter), `history`,
`health` (feature_health_epochs.jsonl), `results`, `export`. Epochs count from 1 (the epoch the write completes).
One more point is no write: `step:<n>:<action>` acts right after the run's n-th
training step (counted from 1 over the whole run, as the optimizer counts), for
a stop at a known step inside an epoch (`adder_tf.interrupt`).
"""
import contextlib
import ctypes
import os
import shutil
import signal
import threading

FAULT_ENV = "ADDER_TF_FAULT"
WRITE_POINTS = ("backup", "metadata", "history", "health", "results", "export")


def temp_name(path, suffix=""):
    """A name beside `path` for its temporary copy; `suffix` keeps an extension Keras wants."""
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.tmp-{os.getpid()}{suffix}")


@contextlib.contextmanager
def atomic_path(path, point=None, epoch=None, suffix=""):
    """Yields a temporary path to write `path`'s new content to; renames it over `path` on success."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = temp_name(path, suffix)
    try:
        yield tmp
        _fsync(tmp)
        fault(point, epoch, tmp)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
    _fsync_dir(os.path.dirname(path))


def write_text(path, text, point=None, epoch=None):
    """Writes `text` to `path` whole or not at all."""
    with atomic_path(path, point, epoch) as tmp:
        with open(tmp, "w") as f:
            f.write(text)


@contextlib.contextmanager
def atomic_dir(path, point=None, epoch=None):
    """Like `atomic_path` for a folder (a SavedModel): the old folder goes only once the new one is whole."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp, old = temp_name(path), temp_name(path, ".old")
    _remove(tmp)
    try:
        yield tmp
        for folder, _, files in os.walk(tmp, topdown=False):   # the files, then each folder's
            for name in files:                                 # entries, before the rename
                _fsync(os.path.join(folder, name))
            _fsync_dir(folder)
        fault(point, epoch, None)
        if not (os.path.exists(path) and _exchange(tmp, path)):   # tmp now holds the old one
            if os.path.exists(path):
                os.replace(path, old)   # no exchange here: a moment without `path`
            os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
    _remove(tmp)
    _remove(old)
    _fsync_dir(os.path.dirname(path))


def _exchange(a, b):
    """Swaps two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def fault(point, epoch, tmp):
    """The test hook of ADDER_TF_FAULT (see the module's docstring); nothing when unset."""
    spec = os.environ.get(FAULT_ENV, "")
    if not spec or point is None:
        return
    where, at, action = spec.split(":")
    if where != point or int(at) != epoch:
        return
    if action in ("sigkill-torn", "raise-torn") and tmp and os.path.isfile(tmp):
        os.truncate(tmp, os.path.getsize(tmp) // 2)
    action = action.removesuffix("-torn")
    if action == "hang":
        threading.Event().wait()
    if action == "raise":
        raise OSError(f"{FAULT_ENV}: injected failure writing {point} at epoch {epoch}")
    os.kill(os.getpid(), {"sigint": signal.SIGINT, "sigkill": signal.SIGKILL}[action])


def fault_after_step(step):
    """The test hook's `step` point: `step()` (the steps trained) is asked only when it is set."""
    if os.environ.get(FAULT_ENV, "").startswith("step:"):
        fault("step", step(), None)


def _fsync(path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(folder):
    fd = os.open(folder or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.exists(path):
        os.remove(path)
