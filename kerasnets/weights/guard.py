"""Checks that a weights file reads only itself and claims no more than the model holds.

Every weights file kerasnets reads passes here before any tensor data is read:

- HDF5 (legacy ``.h5``, ``.weights.h5``, the converted cache): ``open_hdf5``
  refuses external links (``h5py.ExternalLink``), datasets stored in other
  files (HDF5 external storage), virtual datasets (which map other files),
  user-defined links and unknown filters (plugins), and an uncompressed
  dataset that declares more bytes than the whole file holds (unallocated
  chunks read as fill values: a few kilobytes could ask for gigabytes).
- Every format: the shapes a file declares (its metadata: HDF5 dataset
  shapes, the safetensors header, MXNet array headers, a memory-mapped
  torch state dict) are compared with the model's before the data is read
  (``check_keras_weights`` here; ``kerasnets.weights.loading`` matches the
  other formats tensor by tensor), so memory is bounded by the model, never
  by the file.
- Torch zip archives: ``check_torch_zip`` refuses compressed members (the
  archives ``torch.save`` writes are stored uncompressed, so a compressed
  one could expand far beyond its size).

Each refusal is a ``ValueError`` naming the file and the dataset, link or
tensor at fault.
"""

import contextlib
import os

import numpy as np

# HDF5 filters the h5py/keras writers use: deflate, shuffle, fletcher32,
# szip, nbit, scaleoffset, lzf. Any other id would load a filter plugin.
KNOWN_FILTERS = {1, 2, 3, 4, 5, 6, 32000}


def _size(nbytes):
    from kerasnets.text import format_bytes

    return format_bytes(nbytes)


def _refuse(path, what, why="a weights file must hold its own data (it may be crafted)"):
    raise ValueError(f"Refusing the weights file {os.fspath(path)!r}: {what}; {why}.")


def check_dataset(dataset, path, file_size):
    """ValueError if the HDF5 ``dataset`` reads outside the file (external
    storage, virtual), needs an unknown filter, or is uncompressed yet
    declares more bytes than the file's ``file_size``."""
    import h5py

    name = dataset.name
    plist = dataset.id.get_create_plist()
    if plist.get_layout() == h5py.h5d.VIRTUAL:
        _refuse(path, f"dataset {name!r} is a virtual dataset (it maps other files)")
    if plist.get_external_count():
        target = plist.get_external(0)[0]
        target = target.decode(errors="replace") if isinstance(target, bytes) else target
        _refuse(path, f"dataset {name!r} is stored in another file ({target!r}, HDF5 "
                      "external storage)")
    filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    unknown = [f for f in filters if f not in KNOWN_FILTERS]
    if unknown:
        _refuse(path, f"dataset {name!r} needs the unknown HDF5 filter {unknown[0]}",
                "only the standard filters (gzip, lzf, shuffle, ...) are read, no plugins")
    declared = int(np.prod(dataset.shape or (), dtype=np.float64)) * dataset.dtype.itemsize
    if not filters and declared > file_size:
        shape = "x".join(str(d) for d in dataset.shape)
        _refuse(path, f"dataset {name!r} declares {shape} {dataset.dtype} values "
                      f"({_size(declared)}) in a file of {_size(file_size)}",
                "more than it can hold: the file is damaged or crafted")


def check_hdf5(f, path):
    """Walks every link and object of the open HDF5 file ``f`` (see
    ``check_dataset``); soft links are not followed (their targets are
    checked where they live), external and user-defined links refused."""
    import h5py

    file_size = os.path.getsize(path)
    seen = set()

    def walk(group):
        for key in group:
            link = group.get(key, getlink=True)
            where = f"{group.name.rstrip('/')}/{key}"
            if isinstance(link, h5py.ExternalLink):
                _refuse(path, f"{where!r} is an external link to {link.filename!r}")
            if isinstance(link, h5py.SoftLink):
                continue
            if not isinstance(link, h5py.HardLink):
                _refuse(path, f"{where!r} is a user-defined HDF5 link")
            item = group[key]
            if hash(item.id) in seen:  # one object under several hard links
                continue
            seen.add(hash(item.id))
            if isinstance(item, h5py.Dataset):
                check_dataset(item, path, file_size)
            elif isinstance(item, h5py.Group):
                walk(item)

    walk(f)


@contextlib.contextmanager
def open_hdf5(path, what="an HDF5 weights file"):
    """``h5py.File(path, "r")``, checked by ``check_hdf5`` before anything
    else reads it; an unreadable file is a ValueError naming it."""
    import h5py

    path = os.fspath(path)
    try:
        f = h5py.File(path, "r")
    except OSError as error:
        raise ValueError(f"{path!r} is not {what} ({' '.join(str(error).split())}); the "
                         "file may be truncated or corrupt.") from error
    with f:
        check_hdf5(f, path)
        yield f


def hdf5_shapes(f):
    """{dataset name: shape} of every dataset of the open (checked) file."""
    import h5py

    shapes = {}
    f.visititems(lambda name, item: shapes.__setitem__(name, tuple(item.shape))
                 if isinstance(item, h5py.Dataset) else None)
    return shapes


def _keras_dataset_paths(model):
    """{dataset path: (layer, variable)} of what ``model.save_weights`` writes
    for its layers without nested layers: Keras names a layer's group after
    its class, numbered in order (``layers/conv2d_1/vars/0``); {} where
    that naming cannot be imported."""
    try:
        from keras.src.utils.naming import to_snake_case
    except ImportError:
        return {}
    used, paths = {}, {}
    for layer in model.layers:
        base = to_snake_case(type(layer).__name__)
        used[base] = used.get(base, -1) + 1
        name = f"{base}_{used[base]}" if used[base] else base
        paths[f"layers/{name}/"] = (layer, None)  # the layer's group
        own = list(layer.trainable_weights) + list(layer.non_trainable_weights)
        if any(sub.weights for sub in layer._flatten_layers(include_self=False)):
            continue
        for index, variable in enumerate(own):
            paths[f"layers/{name}/vars/{index}"] = (layer, variable)
    return paths


def check_keras_weights(model, path):
    """A ``.weights.h5`` for ``model``: checked by ``open_hdf5``; each
    dataset of a plain layer must have its variable's shape, and no dataset
    may be larger than the model's largest variable (Keras reads a dataset
    whole before it compares shapes)."""
    with open_hdf5(path, "a Keras weights file") as f:
        shapes = hdf5_shapes(f)
    where = f"The Keras weights file {os.fspath(path)!r} does not fit {model.name}"
    paths = _keras_dataset_paths(model)
    for name, (layer, variable) in paths.items():
        if variable is not None and name in shapes and shapes[name] != tuple(variable.shape):
            raise ValueError(f"{where}: layer {layer.name!r} expects {tuple(variable.shape)}, "
                             f"the file holds {shapes[name]} (nothing was read).")
    # Keras reads only the groups of the model's layers (a headless model
    # never reads the classifier's).
    groups = tuple(name for name, (_, variable) in paths.items() if variable is None)
    largest = max((int(np.prod(v.shape)) for v in model.variables), default=0)
    for name, shape in shapes.items():
        if groups and name.startswith("layers/") and not name.startswith(groups):
            continue
        if int(np.prod(shape, dtype=np.float64)) > largest:
            raise ValueError(f"{where}: its dataset {name!r} declares shape {shape}, larger "
                             "than any variable of the model (nothing was read).")


def check_torch_zip(path):
    """A torch zip archive whose members are all stored (uncompressed), so
    its tensors cannot declare more bytes than the file holds; legacy
    (non-zip) torch files pass unchanged."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as error:
        raise ValueError(f"{os.fspath(path)!r} is not a readable PyTorch checkpoint "
                         f"({error}).") from error
    for member in members:
        if member.compress_type != zipfile.ZIP_STORED:
            _refuse(path, f"member {member.filename!r} is compressed ({_size(member.file_size)} "
                          f"from {_size(member.compress_size)})",
                    "torch.save never compresses: re-save it with torch.save")


__all__ = [
    "check_hdf5",
    "check_keras_weights",
    "check_torch_zip",
    "hdf5_shapes",
    "open_hdf5",
]
