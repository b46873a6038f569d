"""Writing outputs safely: temporary names beside the output, renamed into
place when complete, and the partial files of killed processes cleaned up.

Standard library only.
"""

import contextlib
import glob
import hashlib
import os
import shutil
import uuid

__all__ = ["WriteError", "inside", "partial_path", "pid_alive", "remove", "remove_stale_partials",
           "write_atomically"]

# A long name keeps its first characters and a digest in its temporary's
# name, which then stays within NAME_MAX (255 bytes) with its suffix.
_KEPT = 120


class WriteError(OSError):
    """An output could not be written (a full disk, a read-only folder); what
    ``path`` held before is intact."""

    def __init__(self, path, error):
        reason = getattr(error, "strerror", None) or str(error)
        super().__init__(f"Could not write {path} ({reason}); what it held before is kept.")
        self.errno, self.path = getattr(error, "errno", None), path


def _partial_prefix(base):
    if len(base.encode()) <= _KEPT:
        return f".{base}"
    return f".{base[:_KEPT // 2]}~{hashlib.sha1(base.encode()).hexdigest()[:8]}"


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
    id): ``dir/.NAME.partial-PID-RANDOM{suffix}`` (a long NAME shortened)."""
    directory, base = os.path.split(os.path.abspath(os.fspath(path)))
    return os.path.join(directory, f"{_partial_prefix(base)}.partial-{os.getpid()}-"
                                   f"{uuid.uuid4().hex[:8]}{suffix}")


def write_atomically(path, write, suffix=""):
    """Calls ``write(temporary)`` and renames the temporary to ``path``:
    ``path`` holds the old or the new content, whole, whatever happens. An
    ``OSError`` becomes a ``WriteError`` naming ``path``."""
    temporary = partial_path(path, suffix)
    try:
        write(temporary)
        os.replace(temporary, path)
    except WriteError:
        raise
    except OSError as error:
        raise WriteError(path, error) from None
    finally:
        remove(temporary)


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
    prefix = f"{_partial_prefix(base)}.partial-"
    removed = []
    for partial in glob.glob(os.path.join(glob.escape(directory), glob.escape(prefix) + "*")):
        pid_text = os.path.basename(partial)[len(prefix):].split("-")[0]
        if pid_text.isdigit() and not pid_alive(int(pid_text)):
            remove(partial)
            removed.append(partial)
    return removed
