"""The model catalog: every builder, its family, input sizes and weight layouts.

Family modules register their builders with a ``family`` decorator when they
are imported (timm's ``@register_model``)::

    register = registry.family("dpn", min_size=32, layer_maps={"torch": timm_layer_map})

    @register
    def DPN92(include_top=True, weights="imagenet", ...): ...

The catalog answers from two places that a test keeps equal:

- the generated index ``kerasnets/resources/catalog.json``
  (``python tools/make_catalog.py``): names, families, sizes, parameters,
  MACs, docstrings and pretrained configurations, read without importing
  TensorFlow (``kerasnets list`` / ``info`` / ``--help`` and the lazy
  ``kerasnets.<Builder>`` attributes use it);
- the live registry, filled as family modules are imported: a model missing
  from the index (a new family file, a user's own registration) is found by
  importing every module of ``kerasnets.models``.

This module imports only the standard library: everything else in kerasnets
may import it.
"""

import dataclasses
import difflib
import fnmatch
import functools
import importlib
import inspect
import json
import pkgutil
import re
from importlib import resources
from typing import Callable, Mapping, Optional, Tuple

from kerasnets.text import format_macs, short_repr

INDEX_FILE = "resources/catalog.json"
MODELS_PACKAGE = "kerasnets.models"


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One registered builder.

    Attributes:
        name: the builder's public name (``"DPN92"``).
        family: family name (``"dpn"``), shared by a paper's networks.
        module: the module that defines it.
        builder: the builder function.
        default_size: input size of the default configuration (and of its
            pretrained weights).
        min_size: the smallest input side the network accepts.
        generic: a family builder that needs architecture arguments
            (``DenseNet(blocks, ...)``), not a named network.
        layer_maps: weight layouts the builder's models read, by naming
            scheme: ``"torch"`` (PyTorch state dicts, timm or pytorchcv
            layout) and ``"mxnet"``; each a function ``model ->
            (layer_map, classifier_prefixes)`` for
            ``kerasnets.weights.loading.assign_tensors``.
        mean, std, bgr: the input normalisation (on 0-255 RGB pixels) of
            models with no pretrained configuration, or loaded from a file.
        doc: the builder's own docstring (before the generated figures are
            appended to ``builder.__doc__``).
        references: the reference implementation of each checkpoint layout
            where no pretrained configuration names one, by scheme: a
            function ``options -> "library:name"`` or None (IGCV3's pytorchcv
            models, one per width); used by conversion's parity check.
    """

    name: str
    family: str
    module: str
    builder: Callable = dataclasses.field(repr=False)
    default_size: int = 224
    min_size: int = 32
    generic: bool = False
    layer_maps: Mapping[str, Callable] = dataclasses.field(default_factory=dict, repr=False)
    mean: Optional[Tuple[float, float, float]] = None
    std: Optional[Tuple[float, float, float]] = None
    bgr: bool = False
    doc: str = dataclasses.field(default="", repr=False)
    references: Mapping[str, Callable] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def defaults(self):
        """The builder's arguments with their default values."""
        return {
            p.name: p.default for p in inspect.signature(self.builder).parameters.values()
            if p.default is not inspect.Parameter.empty
        }

    @property
    def required_args(self):
        """Arguments without a default (those of a generic builder)."""
        return [
            p.name for p in inspect.signature(self.builder).parameters.values()
            if p.default is inspect.Parameter.empty
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]


_MODELS = {}  # name -> ModelEntry, in registration order


def family(name, *, default_size=224, min_size=32, layer_maps=None, mean=None, std=None,
           bgr=False, references=None):
    """A decorator registering the builders of family ``name``.

    ``@register`` registers a named network, ``@register(generic=True)`` a
    family builder; keyword arguments override the family's settings for
    one builder (``@register(default_size=299)``).
    """
    defaults = dict(family=name, default_size=default_size, min_size=min_size,
                    layer_maps=dict(layer_maps or {}), mean=mean, std=std, bgr=bgr,
                    references=dict(references or {}))

    def register(builder=None, **overrides):
        if builder is None:
            return functools.partial(register, **overrides)
        settings = dict(defaults, **overrides)
        entry = ModelEntry(name=builder.__name__, module=builder.__module__,
                           builder=builder, doc=inspect.getdoc(builder) or "", **settings)
        known = _MODELS.get(entry.name)
        if known is not None and known.module != entry.module:
            raise ValueError(
                f"Model {entry.name!r} is registered twice: in {known.module} and "
                f"{entry.module}."
            )
        _MODELS[entry.name] = entry
        _append_figures(builder)
        return builder

    return register


# ------------------------------------------------------------------ index


@functools.lru_cache(maxsize=None)
def index():
    """The generated catalog (``resources/catalog.json``): ``{"models":
    {name: {...}}, "pretrained": [...]}``; empty where it is missing."""
    try:
        text = resources.files("kerasnets").joinpath(INDEX_FILE).read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        return {"models": {}, "pretrained": []}
    return json.loads(text)


def indexed(name):
    """The index record of model ``name`` (exact name), or None."""
    return index()["models"].get(name)


def _append_figures(builder):
    """Appends the generated figures (parameters, MACs) to the builder's
    docstring: one source for them, ``tools/make_catalog.py``."""
    record = indexed(builder.__name__)
    if not record or record.get("params") is None or not builder.__doc__:
        return
    size = record["stats_size"]
    builder.__doc__ = builder.__doc__.rstrip() + (
        f"\n\n    Figures (generated): {record['params']:,} trainable parameters, "
        f"{format_macs(record['macs'])} MACs at {size}x{size}.\n"
    )


# ----------------------------------------------------------------- lookup


def _import_family_modules():
    """Imports every module of ``kerasnets.models`` (their registrations)."""
    package = importlib.import_module(MODELS_PACKAGE)
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{MODELS_PACKAGE}.{module.name}")


def all_names():
    """Every known model name, generic builders included (index and live)."""
    names = dict.fromkeys(index()["models"])
    names.update(dict.fromkeys(_MODELS))
    return list(names)


def canonical_name(name):
    """The catalog spelling of ``name`` (case-insensitive), or None."""
    if name in _MODELS or indexed(name) is not None:
        return name
    lowered = str(name).lower()
    for known in all_names():
        if known.lower() == lowered:
            return known
    return None


def closest(name, names=None, n=3):
    """Up to ``n`` names of ``names`` (default: the models ``list_models``
    names, those that build without arguments) closest to ``name``."""
    names = list(names if names is not None else list_models())
    if not isinstance(name, str) or len(name) > 100:
        return []
    lowered = {candidate.lower(): candidate for candidate in names}
    found = difflib.get_close_matches(str(name).lower(), list(lowered), n=n, cutoff=0.5)
    prefix = [c for c in names if c.lower().startswith(str(name).lower()[:3])]
    matches = [lowered[f] for f in found] + [c for c in prefix if c.lower() not in found]
    return matches[:n]


def unknown_name_message(kind, name, names, near=None):
    """"Unknown model 'X'; did you mean ...?": the ``near`` names, else the
    ``names`` closest to ``name``."""
    near = closest(name, names) if near is None else near
    hint = f"; did you mean {', '.join(near)}?" if near else ""
    return f"Unknown {kind} {short_repr(name)}{hint} (`kerasnets list` shows them all)."


def unknown_model_message(name):
    """The message for an unknown model name: the closest models that build
    without arguments (a generic builder near the name is replaced by its
    family's models: "MobileNetV4" suggests MobileNetV3Large and
    MobileNetV3Small, not the generic MobileNetV3)."""
    records = _records()
    near = []
    for found in closest(name, list(records)):
        if records[found].get("generic"):
            near += list_models(family=records[found]["family"])
        else:
            near.append(found)
    return unknown_name_message("model", name, (), near=list(dict.fromkeys(near))[:4])


def check_name(name):
    """A ValueError unless ``name`` is a string (a model name)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"A model name is a non-empty string such as 'MobileNetV2' "
                         f"(`kerasnets.list_models()` lists them); received {short_repr(name)}.")


def get(name):
    """The ``ModelEntry`` of ``name`` (case-insensitive), importing its module.

    Raises ``ValueError`` naming the closest models for an unknown name.
    """
    check_name(name)
    canonical = canonical_name(name)
    if canonical is None:
        _import_family_modules()
        canonical = canonical_name(name)
    if canonical is None:
        raise ValueError(unknown_model_message(name))
    if canonical not in _MODELS:
        record = indexed(canonical)
        if record is not None:
            importlib.import_module(record["module"])
        if canonical not in _MODELS:
            _import_family_modules()
    if canonical not in _MODELS:
        raise ValueError(f"Model {canonical!r} is in the catalog index but no module "
                         "registers it: regenerate it with `python tools/make_catalog.py`.")
    return _MODELS[canonical]


def entries(include_generic=False):
    """Every registered ``ModelEntry`` (imports all family modules)."""
    _import_family_modules()
    return [e for e in _MODELS.values() if include_generic or not e.generic]


def families():
    """Sorted family names."""
    return sorted({record["family"] for record in _records().values()})


def family_of(name):
    return _records()[canonical_name(name) or name]["family"]


def canonical_family(name):
    """The catalog spelling of family ``name`` (case-insensitive); ValueError
    naming the closest families otherwise."""
    for known in families():
        if known.lower() == str(name).lower():
            return known
    raise ValueError(unknown_name_message("family", name, families()))


def _records():
    """{name: record} for every model: the index, plus live registrations
    that the index lacks (described from their entries)."""
    records = dict(index()["models"])
    for name, entry in _MODELS.items():
        if name not in records:
            records[name] = {"family": entry.family, "module": entry.module,
                             "generic": entry.generic, "default_size": entry.default_size,
                             "min_size": entry.min_size}
    return records


def _natural_key(name):
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def sort_names(names):
    """Natural order: DPN68 before DPN107."""
    return sorted(names, key=_natural_key)


def list_models(pattern=None, pretrained=False, family=None, include_generic=False):
    """Names of the models in the catalog, in natural order.

    Args:
        pattern: an ``fnmatch`` pattern (``"dpn*"``, ``"*resnext*"``), case
            insensitive.
        pretrained: only models whose default configuration has published
            weights (``weights="imagenet"`` loads).
        family: only this family (case-insensitive).
        include_generic: also the family builders that need architecture
            arguments (``DenseNet``, ``DPN``, ...).
    """
    records = _records()
    if family is not None:
        family = canonical_family(family)
    pretrained_models = {cfg["model"] for cfg in index()["pretrained"] if cfg.get("default")}
    names = []
    for name, record in records.items():
        if record.get("generic") and not include_generic:
            continue
        if family is not None and record["family"] != family:
            continue
        if pattern and not fnmatch.fnmatchcase(name.lower(), str(pattern).lower()):
            continue
        if pretrained and name not in pretrained_models:
            continue
        names.append(name)
    return sort_names(names)


def check_kwargs(name, kwargs):
    """ValueError for an argument the builder of ``name`` does not take
    (naming the closest), or a value of the wrong kind for its default (a
    word for a number, a number for True/False)."""
    entry = get(name)
    parameters = inspect.signature(entry.builder).parameters
    for key, value in kwargs.items():
        if key not in parameters:
            near = difflib.get_close_matches(key, list(parameters), n=1)
            hint = f"; did you mean {near[0]!r}" if near else ""
            raise ValueError(f"{entry.name} has no argument {short_repr(key)}{hint} (its arguments: "
                             f"{', '.join(parameters)}).")
        default = parameters[key].default
        if value is None:  # "none" (se_ratio=None): the builder decides
            continue
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ValueError(f"{entry.name}'s {key} is True or False; received "
                                 f"{short_repr(value)}.")
        elif isinstance(default, (int, float)) and (
                isinstance(value, (str, bool)) or not isinstance(value, (int, float))):
            raise ValueError(f"{entry.name}'s {key} takes a number; received "
                             f"{short_repr(value)}.")


def create_model(name, **kwargs):
    """Builds model ``name`` (case-insensitive) with the builder's arguments
    (checked first: unknown names and values of the wrong kind are refused).

        >>> model = kerasnets.create_model("dpn92", weights=None, classes=10)
    """
    check_kwargs(name, kwargs)
    entry = get(name)
    missing = [arg for arg in entry.required_args if arg not in kwargs]
    if missing:
        variants = list_models(family=entry.family)
        shown = ", ".join(variants[:4]) + (", ..." if len(variants) > 4 else "")
        raise ValueError(f"{entry.name} is a generic builder: pass its {', '.join(missing)}, "
                         f"or name one of its family's models ({shown}).")
    return entry.builder(**kwargs)


__all__ = [
    "ModelEntry",
    "create_model",
    "families",
    "family",
    "get",
    "list_models",
]
