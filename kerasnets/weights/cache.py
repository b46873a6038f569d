"""The pretrained-weights cache: download, verify, convert once, reuse.

Files live in ``$KERAS_HOME/models/kerasnets`` (``~/.keras/models/kerasnets``):

- ``<model>.<tag>.<source file name>``: the file as published, downloaded with
  ``keras.utils.get_file`` (progress bar) under a temporary name, checked
  against the strongest hash its publisher gives (``kerasnets.weights.hashes``:
  a full md5/sha256, the hub's sha256, a git blob id or torch hub's sha256
  prefix in the file name), then renamed into place (``os.replace``,
  atomic): a failed or interrupted download never leaves a partial file
  under the real name, and a download that fails its check is removed (the
  message says so). Where nothing is published, its sha256 is recorded
  beside it on first download (``.sha256``) and checked on later reads.
  A cached file is checked on every read that uses it; one that fails is
  refused, naming the file, the expected and the actual digest, and left
  where it is, unless kerasnets downloaded it and it is unchanged since (its
  ``.stamp`` says so: the publisher has republished), then it is fetched anew.
- ``<model>.<tag>.<source id>.<signature>.<source hash>.weights.h5``: the same weights
  converted to Keras once, for the model's exact set of variables
  (include_top or not; the signature hashes variable names and shapes) and
  that exact source (the id hashes its URL): its published hash, or where none is published the
  sha256 of the cached file (kept in ``<source>.stamp``, recomputed when the
  file's size or time changes). A republished checkpoint (a new hash), or a
  file placed by hand, is converted anew instead of serving the old
  conversion. Later loads read only this file.
  It is written under a temporary name and renamed too.

Download and conversion run under an exclusive lock on
``<model>.<tag>.<source file name>.lock`` (``fcntl.flock``; the lock file is
removed on release), so processes loading the same weights at once wait for
one another instead of writing the same files; readers of finished files
need no lock. Where ``fcntl`` does not exist (Windows) there is no lock; the
atomic renames still keep every cached file whole.
"""

import contextlib
import glob
import hashlib
import json
import os
import sys
import uuid

from kerasnets.weights import hashes, loading

CACHE_SUBDIR = os.path.join("models", "kerasnets")
LOCK_SUFFIX = ".lock"
CONVERTED_SUFFIX = ".weights.h5"


def keras_home():
    return os.path.expanduser(os.environ.get("KERAS_HOME", os.path.join("~", ".keras")))


def cache_directory():
    """Where kerasnets keeps downloaded and converted weights."""
    return os.path.join(keras_home(), CACHE_SUBDIR)


# ------------------------------------------------------------------ helpers


file_digest = hashes.file_digest


def _remove(path):
    with contextlib.suppress(OSError):
        os.remove(path)


def _temporary_name(name, suffix=""):
    return f"{name}.part-{os.getpid()}-{uuid.uuid4().hex[:8]}{suffix}"


def _remove_stale(directory, name):
    """Removes temporary files of ``name`` left by killed processes (call
    with the lock held: nobody else is writing them)."""
    for stale in glob.glob(os.path.join(glob.escape(directory), glob.escape(name) + ".part-*")):
        _remove(stale)


@contextlib.contextmanager
def file_lock(path):
    """An exclusive inter-process lock held through ``path``.

    The lock file is deleted on release. A waiter that acquires the lock on
    a file that was deleted meanwhile (its inode is no longer ``path``'s)
    retries on the new file, so deleting does not let two holders in.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no lock, atomic renames only
        yield
        return
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except (PermissionError, OSError) as error:
            if os.path.exists(path) or not _read_only(os.path.dirname(path), error):
                raise
            yield  # a read-only cache: nobody writes there, no lock needed
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held, current = os.fstat(fd), os.stat(path)
        except FileNotFoundError:
            os.close(fd)
            continue
        except BaseException:
            os.close(fd)
            raise
        if (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino):
            break
        os.close(fd)
    try:
        yield
    finally:
        _remove(path)
        os.close(fd)  # releases the lock


def model_signature(model):
    """A short hash of the model's variables (names and shapes, in order:
    what a ``.weights.h5`` file's layout depends on; auto-generated layer
    names are left out, they vary between builds)."""
    text = "\n".join(f"{v.name}:{tuple(v.shape)}" for v in model.weights)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def _read_only(directory, error=None):
    """True if ``directory`` cannot be written (permissions, read-only mount)."""
    import errno

    if error is not None and getattr(error, "errno", None) in (errno.EROFS, errno.EACCES,
                                                               errno.EPERM):
        return True
    return os.path.isdir(directory) and not os.access(directory, os.W_OK)


def _ensure_directory(directory):
    """Creates the cache folder, or says how to choose a writable one."""
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as error:
        raise ValueError(
            f"Cannot create the weights cache {directory} ({error.strerror or error}): set "
            "KERAS_HOME to a writable folder, or pass the path of a weights file as "
            "`weights=`."
        ) from error


def _hint(url, path):
    return (
        f"Download {url} by hand and place it at {path}, or pass the path of "
        "a weights file as `weights=`."
    )


# ------------------------------------------------------------------ source


def source_location(cfg, include_top=True):
    """(url, expected hash, cache path) of the file of ``cfg`` to download."""
    url, expected = cfg.url, cfg.file_hash
    if not include_top and cfg.notop_url:
        url, expected = cfg.notop_url, cfg.notop_hash
    fname = f"{cfg.model}.{cfg.tag}.{os.path.basename(url)}"
    return url, expected, os.path.join(cache_directory(), fname)


def _recorded_sha256(path):
    """The sha256 recorded on first download of an unhashed source, or None."""
    try:
        with open(path + ".sha256", encoding="ascii") as f:
            return (f.read().split() or [None])[0]
    except OSError:
        return None


def _downloaded_unchanged(path):
    """True if kerasnets downloaded ``path`` (its stamp says so) and the file
    has not changed since (same size and modification time)."""
    try:
        stat = os.stat(path)
        with open(path + ".stamp", encoding="ascii") as f:
            stamp = json.load(f)
    except (OSError, ValueError):
        return False
    return (bool(stamp.get("downloaded")) and stamp.get("size") == stat.st_size
            and stamp.get("mtime_ns") == stat.st_mtime_ns)


def _check_cached(path, url, expected):
    """True if the cached source at ``path`` passes its check; False if it is
    missing, or a download of kerasnets' that the publisher has replaced
    since (a new hash: fetch it again). A file that fails and that kerasnets
    did not download (placed by hand, or changed since) is refused: a
    ValueError names it and both digests, and it stays where it is."""
    if not os.path.exists(path):
        return False
    check = hashes.check_for(url, expected)
    if not check.published:
        recorded = _recorded_sha256(path)
        if recorded is None:  # placed by hand, nothing recorded: trusted as is
            return True
        check = hashes.Check(hashes.FIRST_USE, "sha256", recorded)
    actual = check.digest(path)
    if check.accepts(actual):
        return True
    if check.published and _downloaded_unchanged(path):
        return False  # our download, republished since
    raise ValueError(
        f"{hashes.mismatch_message(path, check, actual)}. Remove or replace that file "
        f"(the publisher's copy: {url}); kerasnets leaves it in place."
    )


def _write_stamp(path, digest, **extra):
    """Records the sha256 of ``path`` with its size and time (``.stamp``)."""
    stat = os.stat(path)
    stamp_path = path + ".stamp"
    temporary = _temporary_name(stamp_path)
    try:
        with open(temporary, "w", encoding="ascii") as f:
            json.dump(dict(size=stat.st_size, mtime_ns=stat.st_mtime_ns, sha256=digest,
                           **extra), f)
        os.replace(temporary, stamp_path)
    except OSError:  # a read-only cache: the digest is still right
        _remove(temporary)


def _download(cfg, url, expected, path):
    """Downloads ``url`` to ``path`` (through a temporary name); the caller
    holds the lock. Returns the path of the file (a stand-in ``get_file``
    may return another one)."""
    directory, fname = os.path.split(path)
    _remove_stale(directory, fname)
    temporary = _temporary_name(fname)
    replaced = os.path.exists(path)
    import keras

    check = hashes.check_for(url, expected)
    try:
        downloaded = keras.utils.get_file(  # checked below, every kind alike
            temporary,
            url,
            file_hash=None,
            cache_dir=os.path.dirname(os.path.dirname(directory)),
            cache_subdir=CACHE_SUBDIR,
        )
    except BaseException as error:
        _remove(os.path.join(directory, temporary))
        if not isinstance(error, Exception):
            raise
        reason = f"{type(error).__name__}: {error}"
        if _read_only(directory):
            reason = (f"the weights cache {directory} is read-only; set KERAS_HOME to a "
                      f"writable folder ({reason})")
        if replaced:
            reason = ("the cached file failed its hash check and downloading "
                      f"it again failed: {reason}")
        raise ValueError(
            f"Could not fetch the {cfg.tag!r} weights of {cfg.model} from {url} ({reason}). "
            + _hint(url, path)
        ) from error
    if os.path.basename(downloaded) != temporary:
        return downloaded  # not a file of ours (a stand-in get_file): use it
    final = os.path.join(os.path.dirname(downloaded), fname)
    digest = file_digest(downloaded)
    actual = digest if check.algorithm == "sha256" else check.digest(downloaded)
    if not check.accepts(actual):
        _remove(downloaded)
        raise ValueError(
            f"{hashes.mismatch_message(final, check, actual)} (downloaded from {url}; "
            "removed the download). " + _hint(url, path)
        )
    if not check.published:
        with open(downloaded + ".sha256.part", "w", encoding="ascii") as f:
            f.write(f"{digest}  {fname}\n")
        os.replace(downloaded + ".sha256.part", final + ".sha256")
        print(
            f"kerasnets: {url} publishes no hash; recorded its sha256 {digest} "
            f"in {final}.sha256",
            file=sys.stderr,
        )
    os.replace(downloaded, final)
    _write_stamp(final, digest, downloaded=url)
    return final


def fetch(cfg, include_top=True):
    """Path of the source file of ``cfg`` (downloaded if needed)."""
    url, expected, path = source_location(cfg, include_top)
    if _check_cached(path, url, expected):
        return path
    _ensure_directory(os.path.dirname(path))
    with file_lock(path + LOCK_SUFFIX):
        if _check_cached(path, url, expected):  # another process finished it
            return path
        return _download(cfg, url, expected, path)


def source_digest(path):
    """The sha256 of the file at ``path`` (None if there is none), kept in
    ``<path>.stamp`` with the file's size and modification time so that it
    is computed once per version of the file."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    stamp_path = path + ".stamp"
    identity = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    try:
        with open(stamp_path, encoding="ascii") as f:
            stamp = json.load(f)
        if {k: stamp.get(k) for k in identity} == identity and stamp.get("sha256"):
            return stamp["sha256"]
    except (OSError, ValueError):
        pass
    digest = file_digest(path)
    _write_stamp(path, digest)
    return digest


# -------------------------------------------------------------- converted


def _source_id(cfg, include_top):
    """A short id of the source file (its URL): files of one tag that fit the
    same variables (MobileNet's resolutions) stay apart."""
    url = cfg.url if include_top or not cfg.notop_url else cfg.notop_url
    return hashlib.sha1(url.encode()).hexdigest()[:8]


def converted_path(cfg, model, source_hash, include_top=True):
    """The converted file of ``cfg``'s source for ``model``; ``source_hash``
    is the source's published hash, or the sha256 of the cached file where
    none is published."""
    return os.path.join(
        cache_directory(),
        f"{cfg.model}.{cfg.tag}.{_source_id(cfg, include_top)}.{model_signature(model)}."
        f"{source_hash.split(':')[-1][:16]}{CONVERTED_SUFFIX}",
    )


def _newest_conversion(cfg, model, include_top):
    """The newest converted file of ``cfg``'s source for ``model`` (used when
    the source file itself was removed from the cache)."""
    pattern = os.path.join(
        glob.escape(cache_directory()),
        f"{glob.escape(cfg.model)}.{glob.escape(cfg.tag)}.{_source_id(cfg, include_top)}."
        f"{model_signature(model)}.*{CONVERTED_SUFFIX}")
    found = [p for p in glob.glob(pattern) if ".part-" not in os.path.basename(p)]
    return max(found, key=os.path.getmtime) if found else None


def _load_converted(model, path):
    """Loads the converted file if it is there and whole; False otherwise."""
    if not path or not os.path.exists(path):
        return False
    try:
        loading.load_keras_weights(model, path)
        return True
    except ValueError:
        _remove(path)  # unreadable (or stale): convert again
        return False


def _save_converted(model, path):
    stem = os.path.basename(path)[: -len(CONVERTED_SUFFIX)]
    _remove_stale(os.path.dirname(path), stem)
    temporary = os.path.join(
        os.path.dirname(path),
        _temporary_name(os.path.basename(path)[: -len(CONVERTED_SUFFIX)], CONVERTED_SUFFIX),
    )
    try:
        model.save_weights(temporary)
        os.replace(temporary, path)
    except OSError as error:  # a read-only cache: loading still worked
        _remove(temporary)
        print(f"kerasnets: could not cache converted weights at {path}: {error}",
              file=sys.stderr)


def load_pretrained(model, cfg, *, include_top, load_file):
    """Loads the weights of ``cfg`` into ``model`` through the cache.

    ``load_file(model, path, format)`` reads a source file into the model
    (strict). The first load downloads, verifies and converts; later loads
    read the converted ``.weights.h5`` only.
    """
    url, expected, source = source_location(cfg, include_top)
    if cfg.format == "keras":  # already Keras weights: nothing to convert
        load_file(model, fetch(cfg, include_top), cfg.format)
        return model
    # The conversion is keyed by the source: its published hash, or (none
    # published) the sha256 of the file in the cache.
    key = expected or source_digest(source)
    converted = (converted_path(cfg, model, key, include_top) if key
                 else _newest_conversion(cfg, model, include_top))
    if _load_converted(model, converted):
        return model
    _ensure_directory(os.path.dirname(source))
    with file_lock(source + LOCK_SUFFIX):
        if _check_cached(source, url, expected):
            path = source
        else:
            path = _download(cfg, url, expected, source)
        converted = converted_path(cfg, model, expected or source_digest(path), include_top)
        if _load_converted(model, converted):  # another process converted it
            return model
        try:
            load_file(model, path, cfg.format)
        except ValueError as error:
            removed = ""
            if path == source and expected is None and _downloaded_unchanged(source):
                _remove(source)  # our download, unreadable: fetch it anew next time
                _remove(source + ".sha256")
                _remove(source + ".stamp")
                removed = " (removed that download)"
            raise ValueError(
                f"The {cfg.tag!r} weights of {cfg.model} downloaded from {url} to {path}"
                f"{removed} cannot be loaded: {error} " + _hint(url, source)
            ) from error
        if path == source:
            _save_converted(model, converted)
    return model


__all__ = [
    "cache_directory",
    "converted_path",
    "fetch",
    "file_lock",
    "load_pretrained",
    "model_signature",
    "source_digest",
]
