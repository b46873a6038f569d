"""Strict loading of weight files into kerasnets models.

Formats, chosen by file name:

- ``*.weights.h5``: Keras 3 weights (``model.save_weights``).
- ``*.h5`` / ``*.hdf5``: legacy Keras weights as published by
  keras.applications, matched by topology (the order of the layers that
  own weights), shapes checked.
- ``*.safetensors``, ``*.pth``, ``*.pt``, ``*.bin``: a PyTorch state dict in
  the reference layout (timm), converted with the family's name map.
  Torch pickles are read with ``torch.load(weights_only=True)`` only.
- ``*.params``: an MXNet checkpoint (IGC), read without mxnet by
  ``kerasnets.weights.mxnet`` and converted with the family's MXNet name map.

Every loader is strict: each model variable is assigned exactly once, each
source tensor is used (except the classifier when ``include_top=False``),
and shapes must agree; otherwise a ``ValueError`` names the first offending
layer or tensor and the file. Shapes are compared from the file's metadata
before any data is read, and HDF5 files are checked by
``kerasnets.weights.guard`` first (no external links, external storage or
virtual datasets): memory is bounded by the model, and a file reads only
itself.
"""

import contextlib
import dataclasses
import os
import re

import h5py
import numpy as np

from kerasnets.weights import guard

TORCH_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


def check_file(path):
    """ValueError unless ``path`` is a non-empty regular file (a directory or
    an empty file named like weights says so)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{path!r} is a directory, not a weights file.")
    if not os.path.isfile(path):
        raise ValueError(f"The weights file {path!r} does not exist.")
    if os.path.getsize(path) == 0:
        raise ValueError(f"The weights file {path!r} is empty (0 bytes): an interrupted "
                         "download or copy; fetch it again.")


def file_format(path):
    name = os.fspath(path).lower()
    if name.endswith(".weights.h5"):
        return "keras"
    if name.endswith((".h5", ".hdf5")):
        return "keras_h5"
    if name.endswith(".safetensors"):
        return "safetensors"
    if name.endswith((".pth", ".pt", ".bin")):
        return "pth"
    if name.endswith(".params"):
        return "mxnet_params"
    raise ValueError(
        f"Cannot tell the format of the weights file {os.fspath(path)!r}: "
        "expected a Keras file (.weights.h5, or legacy .h5 as published by "
        "keras.applications), a PyTorch state dict in timm's layout "
        "(.safetensors, .pth, .bin) or an MXNet checkpoint (.params)."
    )


def load_model_file(path, compile=False):
    """A whole ``.keras`` model, with ``safe_mode=True`` (no Lambda layers, no
    code runs); a missing, empty, directory or damaged file is a one-line
    ValueError that says so."""
    import zipfile

    import keras

    path = os.path.expanduser(os.fspath(path))
    if os.path.isdir(path):
        raise ValueError(f"{path!r} is a directory, not a .keras model file.")
    if not os.path.isfile(path):
        raise ValueError(f"No such model file: {path}")
    if os.path.getsize(path) == 0:
        raise ValueError(f"The model file {path!r} is empty (0 bytes).")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path!r} is not a .keras model file (a zip archive): it is "
                         "damaged or of another format.")
    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=True)
    except (ValueError, OSError, KeyError, TypeError, zipfile.BadZipFile) as error:
        text = " ".join(str(error).split())
        raise ValueError(f"Cannot load the model file {path!r}: "
                         f"{text[:300] + '...' if len(text) > 300 else text}") from error


# ----------------------------------------------------------------- keras h5


_KERAS_LAYER = re.compile(r"object <\w+ name=([^,>]+)")
_KERAS_SHAPES = re.compile(r"variable\.shape=(\([^)]*\)), Received: value\.shape=(\([^)]*\))")
_KERAS_COUNT = re.compile(r"A total of (\d+) objects could not be loaded")


def _short_keras_error(error):
    """Keras' load_weights message (which prints whole tensors) in one line:
    the first layer that did not fit and the shapes, where it says them."""
    text = str(error)
    layer, shapes, count = (_KERAS_LAYER.search(text), _KERAS_SHAPES.search(text),
                            _KERAS_COUNT.search(text))
    if layer is None:
        return " ".join(text.split())[:300]
    message = f"layer {layer.group(1)!r}"
    if shapes:
        message += f" expects {shapes.group(1)}, the file holds {shapes.group(2)}"
    else:
        message += " does not fit the file's weights"
    if count and int(count.group(1)) > 1:
        message += f" ({int(count.group(1)) - 1} more layers differ)"
    return message


def load_keras_weights(model, path):
    """Keras 3 ``.weights.h5``: delegated to Keras, made strict.

    Keras only warns when parts of the file do not fit the model (those
    layers keep their initial values); here that is an error naming the file
    and the first layer, in one line.
    """
    import warnings

    check_file(path)
    guard.check_keras_weights(model, path)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.load_weights(path)
    except (ValueError, OSError, KeyError) as error:
        raise ValueError(
            f"The Keras weights file {os.fspath(path)!r} does not fit {model.name}: "
            f"{_short_keras_error(error)}."
        ) from error
    skipped = [
        str(w.message) for w in caught
        if "Skipping" in str(w.message) or "could not be loaded" in str(w.message)
    ]
    if skipped:
        raise ValueError(
            f"The Keras weights file {os.fspath(path)!r} does not match "
            f"{model.name}: {_short_keras_error(skipped[0])}"
        )
    for variable in model.weights:
        check_values(variable.path, variable.path, np.asarray(variable), path)


def check_values(name, kind, value, path):
    """ValueError naming the tensor ``name`` of ``path`` if ``value`` is not
    floating point, holds NaN or infinity, or (a BatchNorm variance,
    ``kind`` ending in "moving_variance") is negative."""
    value = np.asarray(value)
    where = f"{name!r} of {os.fspath(path)!r}"
    if value.dtype.kind not in "f":
        raise ValueError(f"Tensor {where} holds {value.dtype} values, not floating point "
                         "weights: the file is not a checkpoint of this model.")
    if not np.all(np.isfinite(value)):
        bad = int(np.size(value) - np.count_nonzero(np.isfinite(value)))
        raise ValueError(f"Tensor {where} holds {bad} NaN or infinite values: the "
                         "checkpoint is damaged (or was saved from a diverged run).")
    if str(kind).endswith("moving_variance") and value.size and float(value.min()) < 0:
        raise ValueError(f"Tensor {where} is a BatchNorm variance with negative values "
                         f"(min {float(value.min()):.3g}): the checkpoint is damaged.")


def _legacy_weights(layer):
    """Weights in the order legacy h5 files store them."""
    return list(layer.trainable_weights) + list(layer.non_trainable_weights)


def _legacy_h5_layers(f, path):
    """[(layer_name, [dataset])] of the layers with weights of the open legacy
    h5 ``f`` (no data read)."""
    group = f
    if "layer_names" not in f.attrs and "model_weights" in f:
        group = f["model_weights"]
    if "layer_names" not in group.attrs:
        raise ValueError(
            f"{os.fspath(path)!r} is an HDF5 file but not a Keras weights "
            "file (no `layer_names` attribute)."
        )
    layers = []
    for raw_name in group.attrs["layer_names"]:
        name = raw_name.decode() if isinstance(raw_name, bytes) else raw_name
        layer_group = group.get(name)
        raw_names = layer_group.attrs.get("weight_names") if layer_group is not None else None
        if raw_names is None:
            raise ValueError(f"{os.fspath(path)!r} lists layer {name!r} but holds no weights "
                             "for it: the file is damaged.")
        names = [n.decode() if isinstance(n, bytes) else n for n in raw_names]
        missing = [n for n in names if not isinstance(layer_group.get(n), h5py.Dataset)]
        if missing:
            raise ValueError(f"{os.fspath(path)!r} lists the weight {missing[0]!r} of layer "
                             f"{name!r} but holds no such dataset: the file is damaged.")
        if names:
            layers.append((name, [layer_group[n] for n in names]))
    return layers


def _read_legacy_h5(path, check=None):
    """[(layer_name, [arrays])] for the layers of a legacy h5 with weights;
    ``check([(layer_name, [shapes])])`` sees the declared shapes before any
    data is read and returns how many leading layers to read (None: all);
    the file itself is checked by ``guard.open_hdf5``."""
    with guard.open_hdf5(path, "a readable HDF5 weights file (expected a legacy Keras "
                               ".h5 file as published by keras.applications)") as f:
        layers = _legacy_h5_layers(f, path)
        if check is not None:
            layers = layers[:check([(name, [tuple(d.shape) for d in datasets])
                                    for name, datasets in layers])]
        return [(name, [np.asarray(d) for d in datasets]) for name, datasets in layers]


def load_legacy_h5(model, path, include_top=True):
    """Loads a keras.applications ``.h5`` file by topology, strictly; with
    ``include_top=False`` the file's trailing layers that the headless model
    lacks (its classifier) are skipped. Shapes are compared before the
    file's data is read."""
    check_file(path)
    owners = [layer for layer in model.layers if layer.weights]

    def check(declared):
        for index, (layer, (saved_name, saved_shapes)) in enumerate(zip(owners, declared)):
            shapes = [tuple(v.shape) for v in _legacy_weights(layer)]
            if shapes != saved_shapes:
                raise ValueError(
                    f"Weights file {os.fspath(path)!r} does not match "
                    f"{model.name}: layer #{index} {layer.name!r} expects weights "
                    f"of shapes {shapes}, the file's layer {saved_name!r} holds "
                    f"{saved_shapes}."
                )
        headless_extra = not include_top and len(declared) > len(owners)
        if len(owners) != len(declared) and not headless_extra:
            longer = owners if len(owners) > len(declared) else declared
            first = longer[min(len(owners), len(declared))]
            first_name = first.name if len(owners) > len(declared) else first[0]
            raise ValueError(
                f"Weights file {os.fspath(path)!r} does not match {model.name}: "
                f"the model has {len(owners)} layers with weights, the file "
                f"{len(declared)}; the first unmatched one is {first_name!r} in the "
                f"{'model' if len(owners) > len(declared) else 'file'}."
            )
        return len(owners)  # a headless model's classifier is never read

    saved = _read_legacy_h5(path, check)
    for layer, (saved_name, values) in zip(owners, saved):
        for variable, value in zip(_legacy_weights(layer), values):
            check_values(f"{saved_name}/{variable.path.rsplit('/', 1)[-1]}", variable.path,
                         value, path)
    for layer, (_, values) in zip(owners, saved):
        for variable, value in zip(_legacy_weights(layer), values):
            variable.assign(value)


# -------------------------------------------------------------- torch state


def _selected(select, shapes):
    """The names ``select`` (``{name: shape} -> names``, None: all) picks."""
    return set(shapes) if select is None else set(select(shapes))


@contextlib.contextmanager
def _reading_safetensors(path):
    """Errors of the safetensors library as a ValueError naming ``path``."""
    from safetensors import SafetensorError

    try:
        yield
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(
            f"{path!r} is not a readable safetensors checkpoint ({error}); "
            "the file may be truncated or corrupt."
        ) from error
    except Exception as error:  # bfloat16 tensors are not numpy dtypes
        raise ValueError(f"Could not read {path!r}: {error}") from error


def read_state_dict(path, select=None):
    """Reads a PyTorch state dict as {name: numpy array} (no free unpickling).

    ``select({name: shape}) -> names`` sees the declared shapes (the
    safetensors header, a memory-mapped torch archive) before any data is
    read, may raise, and picks the tensors to read.
    """
    path = os.fspath(path)
    if file_format(path) == "safetensors":
        from safetensors import safe_open

        with _reading_safetensors(path):
            with safe_open(path, "np") as f:
                declared = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
        names = _without_module_prefix(dict(zip(declared, declared)))
        wanted = _selected(select, {name: declared[key] for name, key in names.items()})
        with _reading_safetensors(path):
            with safe_open(path, "np") as f:
                return {name: f.get_tensor(key) for name, key in names.items()
                        if name in wanted}
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            f"Reading the PyTorch checkpoint {path!r} needs torch "
            "(`pip install torch`), or convert it to .safetensors first."
        ) from error
    import zipfile

    guard.check_torch_zip(path)
    try:  # an archive is memory-mapped: nothing is read before ``select``
        state = torch.load(path, map_location="cpu", weights_only=True,
                           mmap=zipfile.is_zipfile(path))
    except Exception as error:
        raise ValueError(
            f"{path!r} is not a readable PyTorch state dict ({error}). "
            "Expected a .pth/.bin file saved with torch.save(state_dict); "
            "only weights-only loading is allowed."
        ) from error
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise ValueError(f"{path!r} does not hold a state dict (a name -> tensor map).")
    state = _without_module_prefix({name: tensor for name, tensor in state.items()
                                    if hasattr(tensor, "detach")})
    wanted = _selected(select, {name: tuple(tensor.shape) for name, tensor in state.items()})
    result = {}
    for name, tensor in state.items():
        if name in wanted:
            tensor = tensor.detach().cpu()
            floating = tensor.is_floating_point()
            result[name] = (tensor.float() if floating else tensor).numpy()
    return result


def _without_module_prefix(state):
    """A state dict saved from ``DataParallel`` / DDP names its tensors
    ``module.*``: the prefix is dropped (as PyTorch users do)."""
    if state and all(name.startswith("module.") for name in state):
        return {name[len("module."):]: value for name, value in state.items()}
    return state


def _convert(layer, kind, source):
    """Converts one PyTorch/MXNet array (OIHW, out x in) to the layout of
    ``layer``'s variable (HWIO, in x out)."""
    import keras

    if kind == "kernel":
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            return np.transpose(source, (2, 3, 0, 1))
        if source.ndim == 4:
            kernel = np.transpose(source, (2, 3, 1, 0))
            if isinstance(layer, keras.layers.Dense):
                kernel = kernel.reshape(kernel.shape[2:])
            return kernel
        if source.ndim == 2:
            kernel = source.T
            if isinstance(layer, keras.layers.Conv2D):
                kernel = kernel.reshape((1, 1) + kernel.shape)
            return kernel
    return source


@dataclasses.dataclass(frozen=True)
class NamingScheme:
    """How a source library names a layer's tensors.

    ``prefix + separator + suffixes[kind]`` is the tensor of the Keras
    variable ``kind`` (``kernel``, ``gamma``, ...) of the layer mapped to
    ``prefix``; tensors ending in ``ignored`` are bookkeeping (never loaded,
    never reported unused).
    """

    label: str  # "tensor" / "parameter", for messages
    separator: str
    suffixes: dict
    ignored: tuple = ()

    def source_name(self, prefix, kind):
        return f"{prefix}{self.separator}{self.suffixes.get(kind, kind)}"


TORCH = NamingScheme("tensor", ".", {
    "kernel": "weight", "depthwise_kernel": "weight", "bias": "bias", "gamma": "weight",
    "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var",
}, ignored=("num_batches_tracked",))
MXNET = NamingScheme("parameter", "_", {
    "kernel": "weight", "depthwise_kernel": "weight", "bias": "bias", "gamma": "gamma",
    "beta": "beta", "moving_mean": "moving_mean", "moving_variance": "moving_var",
})
SCHEMES = {"torch": TORCH, "mxnet": MXNET}


def _weight_owners(layer):
    """Yields (sub-layer path, owning layer, variable) for ``layer``'s weights.

    The sub-layer path is "" for the layer's own variables and e.g.
    "reduce" for those of a nested layer (SEBlock's 1x1 convolutions).
    """
    owners = {
        sub.name: sub for sub in layer._flatten_layers(include_self=False)
    }
    for variable in layer.weights:
        parts = variable.path.split("/")
        sub = "/".join(parts[1:-1])
        owner = owners.get(parts[-2], layer) if sub else layer
        yield sub, owner, variable


def _converted_shape(layer, kind, shape):
    """The shape ``_convert`` gives a source array of ``shape`` (computed on
    a zero-stride view: no memory)."""
    return tuple(_convert(layer, kind, np.broadcast_to(np.float32(0), shape)).shape)


def match_tensors(model, shapes, layer_map, path, scheme=TORCH, classifier=()):
    """Matches the source tensors, by their declared ``shapes`` ({name:
    shape}: no data needed), to ``model``'s variables, strictly.

    ``layer_map`` maps each Keras layer name that owns weights to the
    source prefix holding them (``"conv1_conv" -> "features.conv0"``), or,
    for a layer with nested layers (SEBlock, InterleavedGroupConv), to a dict
    from the nested layer's name to its prefix; ``scheme`` (``TORCH`` or
    ``MXNET``) names the tensors under a prefix. ``classifier`` lists the
    prefixes that may stay unused (the classifier of a headless model).
    Every variable must find its tensor with the right shape and every
    tensor must be used; otherwise ``ValueError`` names the first offending
    one and the file. Returns ``[(variable, owning layer, kind, source name)]``.
    """
    path = os.fspath(path)
    what = scheme.label
    used = set()
    plan = []
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in layer_map:
            raise ValueError(
                f"No source {what} in {path!r} is mapped to layer "
                f"{layer.name!r} of {model.name}."
            )
        for sub, owner, variable in _weight_owners(layer):
            prefix = layer_map[layer.name]
            if isinstance(prefix, dict):
                prefix = prefix[sub]
            kind = variable.path.rsplit("/", 1)[-1]
            source_name = scheme.source_name(prefix, kind)
            if source_name not in shapes:
                raise ValueError(
                    f"{path!r} has no {what} {source_name!r} for "
                    f"{variable.path!r}: it is not a checkpoint of "
                    f"{model.name} (or of this configuration of it)."
                )
            shape = tuple(shapes[source_name])
            if _converted_shape(owner, kind, shape) != tuple(variable.shape):
                raise ValueError(
                    f"Shape mismatch loading {path!r} into {model.name}: "
                    f"{what} {source_name!r} {shape} "
                    f"-> {variable.path!r} expects {tuple(variable.shape)}."
                )
            if source_name in used:
                raise ValueError(
                    f"{what.capitalize()} {source_name!r} of {path!r} is mapped twice "
                    f"(again for {variable.path!r})."
                )
            used.add(source_name)
            plan.append((variable, owner, kind, source_name))
    unused = sorted(
        name
        for name in shapes
        if name not in used
        and not (scheme.ignored and name.endswith(scheme.ignored))
        and not any(name.startswith(p + scheme.separator) for p in classifier)
    )
    if unused:
        raise ValueError(
            f"{path!r} holds {len(unused)} {what}s that {model.name} has no "
            f"place for, first {unused[0]!r}: the checkpoint belongs to "
            "another architecture or configuration."
        )
    return plan


def _assign(plan, tensors, path):
    """Assigns the tensors of ``plan`` (``match_tensors``); their values are
    checked first: nothing is assigned when one is bad."""
    assignments = []
    for variable, owner, kind, source_name in plan:
        check_values(source_name, kind, tensors[source_name], path)
        assignments.append((variable, _convert(owner, kind, tensors[source_name])))
    for variable, value in assignments:
        variable.assign(np.asarray(value).astype(variable.dtype))


def assign_tensors(model, tensors, layer_map, path, scheme=TORCH, classifier=()):
    """Assigns the source ``tensors`` ({name: array}) to ``model`` strictly
    (see ``match_tensors``); nothing is assigned on error."""
    shapes = {name: np.shape(value) for name, value in tensors.items()}
    _assign(match_tensors(model, shapes, layer_map, path, scheme, classifier), tensors,
            os.fspath(path))


def read_tensors(path, fmt=None, select=None):
    """{name: numpy array} of a PyTorch state dict or an MXNet checkpoint;
    ``select({name: shape}) -> names`` sees the declared shapes before any
    data is read and picks the tensors to read (None: all)."""
    fmt = fmt or file_format(path)
    if fmt == "mxnet_params":
        from kerasnets.weights import mxnet

        return mxnet.read_params(path, select)
    return read_state_dict(path, select)


def tensor_shapes(path, fmt=None):
    """{name: declared shape} of a PyTorch state dict or an MXNet checkpoint
    (no tensor data read)."""
    shapes = {}
    read_tensors(path, fmt, lambda declared: shapes.update(declared) or ())
    return shapes


def load_file(model, path, *, layer_maps, include_top=True, fmt=None):
    """Loads the weights file ``path`` into ``model``, strictly, whatever its
    format; ``layer_maps`` ({scheme: fn(model) -> (layer_map, classifier)},
    the catalog entry's) convert foreign layouts."""
    from kerasnets.weights.config import SCHEMES as FORMAT_SCHEMES

    path = os.path.expanduser(os.fspath(path))
    check_file(path)
    fmt = fmt or file_format(path)
    if fmt == "keras":
        load_keras_weights(model, path)
    elif fmt == "keras_h5":
        load_legacy_h5(model, path, include_top=include_top)
    else:
        scheme = FORMAT_SCHEMES[fmt]
        if scheme not in layer_maps:
            kind = "MXNet" if scheme == "mxnet" else "PyTorch"
            raise ValueError(
                f"{model.name} cannot read {kind} checkpoints ({os.fspath(path)!r}): "
                "no converter from a reference layout is defined for it. Use a "
                "Keras weights file."
            )
        layer_map, classifier = layer_maps[scheme](model)
        plan = []

        def select(shapes):  # shapes checked before any data is read
            plan.extend(match_tensors(model, shapes, layer_map, path, SCHEMES[scheme],
                                      () if include_top else classifier))
            return [source_name for *_, source_name in plan]

        _assign(plan, read_tensors(path, fmt, select), path)
    return model
