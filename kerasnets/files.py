"""Writing outputs safely: temporary names beside the output, renamed into
place when complete, and the partial files of killed processes cleaned up.

Standard library only.
"""

import contextlib
import glob
import os
import shutil
import uuid

__all__ = ["inside", "partial_path", "pid_alive", "remove", "remove_stale_partials"]


def inside(directory, name, what="name"):
    """``directory/name``; a ValueError for a ``name`` that is not a folder
    below ``directory`` ("", ".", "..", an absolute path, a link leading out),
    naming ``what`` (the setting)."""
    directory = os.fspath(directory)
    path = os.path.join(directory, os.fspath(name))
    root, real = os.path.realpath(directory), os.path.realpath(path)
    if not name or real == root or os.path.commonpath([root, real]) != root:
        raise ValueError(f"{what} {str(name)[:200]!r} is not a folder inside {directory}: use "
                         "a plain folder name (no absolute path, '.' or '..')")
    return path


def partial_path(path, suffix=""):
    """A temporary name beside ``path`` (hidden, tagged with this process's
    id): ``dir/.NAME.partial-PID-RANDOM{suffix}``."""
    directory, base = os.path.split(os.path.abspath(os.fspath(path)))
    return os.path.join(directory, f".{base}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
                                   f"{suffix}")


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's) or unknowable: keep its files
    return True


def remove(path):
    """Removes a file or directory tree; missing is fine."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.remove(path)


def remove_stale_partials(path):
    """Removes the partial outputs for ``path`` left by processes that no
    longer run (killed during an export or conversion); returns them."""
    directory, base = os.path.split(os.path.abspath(os.fspath(path)))
    removed = []
    for partial in glob.glob(os.path.join(glob.escape(directory),
                                          f".{glob.escape(base)}.partial-*")):
        pid_text = os.path.basename(partial)[len(base) + len(".partial-") + 1:].split("-")[0]
        if pid_text.isdigit() and not pid_alive(int(pid_text)):
            remove(partial)
            removed.append(partial)
    return removed
