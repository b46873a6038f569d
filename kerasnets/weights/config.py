"""Typed pretrained configurations: one ``PretrainedCfg`` per published file.

Family modules declare them beside the architecture (as timm's
``default_cfgs`` and keras-hub's presets do) and pass them to
``register_pretrained``. ``pretrained_cfg(name, tag)`` finds one; the
normalisation, the download, the conversion and the parity reference of
every pretrained tag derive from it.

Tags: each model's first registered tag is its default, which
``weights="imagenet"`` means (unless a configuration is tagged "imagenet"
itself, as keras.applications' files are). Models with one file per
configuration (MobileNet: per ``alpha`` and input size) register several
configurations under one tag, told apart by ``options`` and ``input_size``.
"""

import dataclasses
import os
from typing import Any, Mapping, Optional, Tuple

from kerasnets.weights import hashes

DEFAULT_TAG = "imagenet"
FORMATS = ("keras", "keras_h5", "safetensors", "pth", "mxnet_params")
# File format -> the naming scheme of its tensors (``ModelEntry.layer_maps``).
SCHEMES = {"safetensors": "torch", "pth": "torch", "mxnet_params": "mxnet",
           "keras_h5": "keras_h5", "keras": "keras"}

IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)  # timm / torchvision, on 0-255
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
INCEPTION_MEAN = (127.5, 127.5, 127.5)  # x / 127.5 - 1 (keras "tf" mode, timm's 0.5/0.5)
INCEPTION_STD = (127.5, 127.5, 127.5)


@dataclasses.dataclass(frozen=True)
class PretrainedCfg:
    """One published weights file of a model, and how to use it.

    Attributes:
        model: catalog name of the model (``"DPN92"``).
        tag: the weights' tag (``"mx_in1k"``); ``weights="imagenet"`` is the
            model's default tag.
        url: the file with the classifier.
        format: "keras_h5" (legacy keras.applications, by topology),
            "keras" (``.weights.h5``), "safetensors" / "pth" (a PyTorch state
            dict in the reference's layout) or "mxnet_params".
        file_hash: the hash the publisher gives: sha256 (64 hex digits; for a
            Hugging Face file the one its hub serves), md5 (keras.applications)
            or ``"git-blob:<sha1>"`` (a file at a pinned commit: the blob id of
            the publisher's git tree); None where the file name carries a
            sha256 prefix (torch hub's ``name-<hex>.pth``) or nothing is
            published (then its sha256 is recorded on first download and
            checked afterwards). ``check`` says which applies
            (``kerasnets.weights.hashes``).
        notop_url, notop_hash: a file without the classifier, where published
            (otherwise the full file serves both).
        options: builder arguments the file is for (``{"alpha": 0.75}``);
            unlisted arguments must keep their defaults.
        input_size, classes: what the file was trained for.
        mean, std, bgr: input normalisation on 0-255 RGB pixels,
            ``(x[..., ::-1] if bgr else x) - mean) / std``.
        crop_pct, interpolation: the source's evaluation transform: resize
            the shorter side to ``input_size / crop_pct``, center-crop.
        source, license: who publishes it, under which terms.
        top1, top5: accuracy the source reports (ImageNet-1k validation).
        reference: the implementation the file belongs to, for parity checks:
            ``"timm:dpn92"``, ``"pytorchcv:igcv3_w1"``,
            ``"keras:DenseNet121"``; None where none is installable.
        bn_epsilon: the BatchNorm epsilon of the file's reference (the
            architecture built for the file uses it: keras.applications'
            DenseNet 1.001e-5, timm's 1e-5); None: the family's default.
    """

    model: str
    tag: str
    url: str
    format: str
    file_hash: Optional[str] = None
    notop_url: Optional[str] = None
    notop_hash: Optional[str] = None
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    input_size: int = 224
    classes: int = 1000
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD
    bgr: bool = False
    crop_pct: float = 0.875
    interpolation: str = "bilinear"
    source: str = ""
    license: str = ""
    top1: Optional[float] = None
    top5: Optional[float] = None
    reference: Optional[str] = None
    bn_epsilon: Optional[float] = None

    def __post_init__(self):
        if self.format not in FORMATS:
            raise ValueError(f"PretrainedCfg {self.model}.{self.tag}: unknown format "
                             f"{self.format!r} (expected one of {', '.join(FORMATS)}).")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"PretrainedCfg {self.model}.{self.tag}: mean and std need "
                             "three values, std positive.")
        try:
            hashes.check_for(self.url, self.file_hash)
            hashes.check_for(self.notop_url or self.url, self.notop_hash)
        except ValueError as error:
            raise ValueError(f"PretrainedCfg {self.model}.{self.tag}: {error}") from None

    @property
    def check(self):
        """How the file is verified (``hashes.Check``: full hash, hub header,
        git blob id, filename prefix or first use)."""
        return hashes.check_for(self.url, self.file_hash)

    @property
    def notop_check(self):
        """The ``check`` of the file without the classifier (None: there is none)."""
        return hashes.check_for(self.notop_url, self.notop_hash) if self.notop_url else None

    @property
    def scheme(self):
        """Naming scheme of the file's tensors: "torch", "mxnet", "keras_h5", "keras"."""
        return SCHEMES[self.format]

    @property
    def name(self):
        """``model.tag`` plus the options that pick this file."""
        extra = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"{self.model}.{self.tag}" + (f" ({extra[2:]})" if extra else "")

    def matches(self, options=None, input_size=None):
        """True if this file fits a model built with ``options`` (the
        builder's arguments: every option the file names must be among them
        with its value; None: any) and, where given, ``input_size``."""
        if options is not None and any(options.get(key, _MISSING) != value
                                       for key, value in self.options.items()):
            return False
        return input_size is None or int(input_size) == int(self.input_size)

    def to_dict(self):
        """The JSON-able fields (the catalog index)."""
        record = dataclasses.asdict(self)
        record["options"] = dict(self.options)
        for key, check in (("check", self.check), ("notop_check", self.notop_check)):
            record[key] = check and {"kind": check.kind, "algorithm": check.algorithm,
                                     "expected": check.expected}
        return record


_MISSING = object()
_CFGS = {}  # model -> [PretrainedCfg] in registration order


def register_pretrained(*cfgs):
    """Registers configurations; returns them (a family's ``pretrained_cfgs``)."""
    for cfg in cfgs:
        known = _CFGS.setdefault(cfg.model, [])
        if any(k.tag == cfg.tag and dict(k.options) == dict(cfg.options)
               and k.input_size == cfg.input_size for k in known):
            raise ValueError(f"{cfg.name} at {cfg.input_size} px is registered twice.")
        known.append(cfg)
    return cfgs


def default_tag(model):
    """The tag ``weights="imagenet"`` stands for (None without weights)."""
    cfgs = _CFGS.get(model, [])
    if any(cfg.tag == DEFAULT_TAG for cfg in cfgs):
        return DEFAULT_TAG
    return cfgs[0].tag if cfgs else None


def tags(model):
    """The model's pretrained tags, sorted ("imagenet" among them, standing
    for ``default_tag(model)``); [] where none are published."""
    names = {cfg.tag for cfg in _CFGS.get(model, [])}
    if names:
        names.add(DEFAULT_TAG)
    return sorted(names)


def resolve_tag(model, tag):
    """``tag`` with "imagenet" replaced by the model's default tag."""
    if tag == DEFAULT_TAG:
        return default_tag(model) or tag
    return tag


def pretrained_cfgs(model=None, tag=None):
    """Every registered configuration (of ``model``, of ``tag``)."""
    models = [model] if model is not None else list(_CFGS)
    found = [cfg for m in models for cfg in _CFGS.get(m, [])]
    if tag is not None:
        tag = resolve_tag(model, tag) if model is not None else tag
        found = [cfg for cfg in found if cfg.tag == tag]
    return found


def describe_tags(model):
    names = tags(model)
    if not names:
        return f"{model} has no published pretrained weights"
    return "one of " + ", ".join(repr(t) for t in names)


def pretrained_cfg(model, tag=DEFAULT_TAG, *, options=None, input_size=None, strict=True):
    """The ``PretrainedCfg`` of ``model`` and ``tag`` ("imagenet": the default).

    Where a tag has one file per configuration, ``options`` (the builder's
    arguments, e.g. ``{"alpha": 0.5}``; the others at their defaults) and
    ``input_size`` pick it; without them the first registered (the
    builder's defaults) is returned.

    Raises ``ValueError`` for an unknown tag, or, with ``strict``, a
    configuration that has no file under the tag (``strict=False`` returns
    None then).

        >>> kerasnets.weights.pretrained_cfg("DPN92").crop_pct
        0.875
    """
    _ensure_registered(model)
    check_tag(model, tag)
    candidates = pretrained_cfgs(model, tag)
    if options is not None:  # arguments not given take the builder's defaults
        options = dict(_builder_defaults(model), **options)
    for cfg in candidates:
        if cfg.matches(options, input_size):
            return cfg
    if not strict:
        return None
    published = "; ".join(
        ", ".join([f"{k}={v!r}" for k, v in cfg.options.items()]
                  + ([f"input size {cfg.input_size}"] if input_size else []))
        or "the default configuration" for cfg in candidates)
    raise ValueError(
        f"No {tag!r} weights are published for this configuration of {model}: they "
        f"exist for {published}."
    )


def check_tag(model, tag):
    """ValueError unless ``tag`` is a pretrained tag of ``model``."""
    _ensure_registered(model)
    if tag not in tags(model):
        # A bare word is a tag even where a file of that name exists.
        hint = (f" ({tag!r} is read as a tag: write './{tag}' to load the file of that name)"
                if isinstance(tag, str) and os.path.exists(tag) else "")
        if not tags(model):
            raise ValueError(
                f"Unknown weights {tag!r} for {model}: {describe_tags(model)}. Pass "
                f"weights=None (random initialization) or the path to a weights file.{hint}"
            )
        raise ValueError(
            f"Unknown weights {tag!r} for {model}: expected None, a path to a weights "
            f"file, or a pretrained tag ({describe_tags(model)}).{hint}"
        )


def _builder_defaults(model):
    from kerasnets import registry

    try:
        return registry.get(model).defaults
    except ValueError:  # configurations of a model the catalog does not know
        return {}


def _ensure_registered(model):
    """Imports the family module of ``model`` (its configurations) through the
    catalog, which finds modules by name (no import of models here)."""
    if model in _CFGS:
        return
    from kerasnets import registry

    if registry.canonical_name(model) is not None:
        try:
            registry.get(model)
        except ValueError:
            pass


__all__ = [
    "DEFAULT_TAG",
    "PretrainedCfg",
    "check_tag",
    "default_tag",
    "describe_tags",
    "pretrained_cfg",
    "pretrained_cfgs",
    "register_pretrained",
    "resolve_tag",
    "tags",
]
