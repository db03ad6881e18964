"""PixelCNN Studio: PixelCNN-family models, datasets, exact likelihoods and samplers.

Conventions, everywhere: images are integer levels (B, C, H, W) in [0, K) at the API;
inside, a model's forward pass returns logits (B, K, C, H, W).

    import pixelcnn
    model = pixelcnn.load("pixelcnn", "mnist")        # trained, eval mode
    x = model.sample(16, seed=0)                       # (16, 1, 28, 28) levels
    nll = -model.log_prob(x).sum(dim=(1, 2, 3))        # nats per image
"""
import dataclasses
import reprlib

import torch

from . import datasets, weights
from .models import ARCHITECTURES, Config, GatedPixelCNN
from .weights import fetch, load_into, read, weights_path

__all__ = ["MODELS", "DATASETS", "Config", "build", "from_config", "load", "available", "is_conditional"]

MODELS = tuple(ARCHITECTURES)
DATASETS = datasets.NAMES

# The model options build's overrides (and a config, and train.py's --set) may change, and
# their types; the rest of Config follows from the model and the dataset.
OPTIONS = {f.name: type(f.default) for f in dataclasses.fields(Config) if f.default is not dataclasses.MISSING}
FIXED = tuple(f.name for f in dataclasses.fields(Config) if f.name not in OPTIONS)
LEAST = {"filters": 1, "layers": 1, "kernel": 3, "classes": 0}  # a 1x1 first layer would see nothing
# Far above any model here: beyond them, a config (say in a hostile weights file) would take
# minutes to build, or overflow torch's sizes, even on the meta device.
MOST = {"filters": 1024, "layers": 100, "kernel": 99}


def build(model, dataset, **overrides):
    """An untrained model shaped for a dataset, in training mode, on the CPU, in float32.

    Args:
        model: one of MODELS, e.g. "pixelcnn".
        dataset: one of DATASETS; it fixes the image shape (C, H, W), the number of levels K
            and, for a class-conditional model, the number of classes.
        **overrides: Config fields to change from the model's defaults, e.g. filters=8, layers=2.

    Returns:
        An nn.Module whose forward maps levels (B, C, H, W) int64 in [0, K) and, if it is
        class-conditional (config.classes > 0), labels (B,) int64 to logits (B, K, C, H, W)
        float32. Its sample, sample_stream and log_prob take and give levels. Raises
        ValueError for an unknown model or dataset, or an override of the wrong type or out of
        range (check_option; classes, if given, must be what the model and dataset fix), and
        TypeError for an override that is not a Config field.
    """
    _check_names(model, dataset)
    c, h, w, k = datasets.shape_of(dataset)
    cls, defaults = ARCHITECTURES[model]
    for key, value in overrides.items():  # an unknown key: Config's TypeError, as for any function
        if key in OPTIONS and not (key == "classes" and value is None):
            check_option(key, value)
    options = {**defaults, **overrides}
    options["classes"] = _classes(model, dataset, options.get("classes", 0))
    if options.get("summary") and not issubclass(cls, GatedPixelCNN):
        raise ValueError(f"summary is an option of Gated PixelCNN "
                         f"({', '.join(m for m in MODELS if ARCHITECTURES[m][0] is GatedPixelCNN)}), not of {model}")
    return cls(Config(model, dataset, c, h, w, k, **options))


def check_option(key, value):
    """`value` if it suits the model option `key` (one of OPTIONS): True or False for a switch,
    else an int from LEAST to MOST (a kernel odd); else a ValueError that says what is allowed."""
    if OPTIONS[key] is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{key} is true or false, got {reprlib.repr(value)}")
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} takes an integer, got {reprlib.repr(value)}")
    least, most = LEAST.get(key, 0), MOST.get(key)
    if value < least:
        raise ValueError(f"{key} must be at least {least}, got {value}")
    if most is not None and value > most:
        raise ValueError(f"{key} must be at most {most}, got {value}")
    if key == "kernel" and value % 2 == 0:
        raise ValueError(f"kernel must be odd, so that it centres on its pixel; got {value}")
    return value


def _classes(model, dataset, classes):
    """How many classes `model` on `dataset` has: one per label of the dataset for a
    class-conditional model, else 0. `classes`, if not None, must say the same."""
    want = datasets.classes_of(dataset) if is_conditional(model) else 0
    if classes is not None and classes != want:
        if not want:
            raise ValueError(f"{model} cannot be class-conditional: use "
                             f"{' or '.join(m for m in MODELS if is_conditional(m))}")
        raise ValueError(f"{model} on {dataset} has one class per label of {dataset}, {want}; got classes={classes}")
    return want


def _check_names(model, dataset):
    if not isinstance(model, str) or model not in ARCHITECTURES:
        raise ValueError(f"unknown model {reprlib.repr(model)}; choose one of {', '.join(MODELS)}")
    datasets.shape_of(dataset)  # a ValueError naming the datasets, for an unknown one


def is_conditional(model):
    """Whether `model` (one of MODELS) is class-conditional: it takes a label wherever it takes an image."""
    _check_names(model, DATASETS[0])
    return ARCHITECTURES[model][1].get("classes", 0) != 0  # None: as many classes as the dataset has


def from_config(config: dict):
    """An untrained model from a config dict (Config.to_dict(), as a weights file stores it).

    Args:
        config: the Config fields by name; options added to Config after the dict was written
            take their default (the behaviour of the version that wrote it).

    Returns:
        The model, as build() returns it. Raises ValueError, saying what is wrong, if `config`
        is not a dict that describes a model of this version: a missing or unknown model or
        dataset, an unknown option, a value of the wrong type or out of range (check_option),
        or a field that build would change (the image shape of another dataset, say).
    """
    if not isinstance(config, dict):
        raise ValueError(f"a config is a dict (a JSON object) of model options, got {reprlib.repr(config)}")
    missing = [k for k in ("model", "dataset") if k not in config]
    if missing:
        raise ValueError(f"the config names no {' and no '.join(missing)}")
    unknown = [str(k) for k in config if k not in OPTIONS and k not in FIXED]
    if unknown:
        raise ValueError(f"the config does not describe a model of this version: {', '.join(unknown[:5])} "
                         f"{'is not a model option' if len(unknown) == 1 else 'are not model options'}; "
                         f"the options are {', '.join(OPTIONS)}")
    config = {f.name: f.default for f in dataclasses.fields(Config) if f.name in OPTIONS} | config
    model, dataset = config["model"], config["dataset"]
    net = build(model, dataset, **{k: v for k, v in config.items() if k in OPTIONS})
    built = net.config.to_dict()
    wrong = [f"{k} {built[k]!r}, not {reprlib.repr(config[k]) if k in config else 'none'}"
             for k in built if k not in config or config[k] != built[k]]
    if wrong:
        raise ValueError(f"the config does not describe a model of this version: {model} on {dataset} "
                         f"has {', '.join(wrong)}")
    return net


def load(model, dataset, weights_dir=None):
    """The trained model for (model, dataset), in eval mode, on the CPU, in float32.

    Args:
        model: one of MODELS.
        dataset: one of DATASETS.
        weights_dir: the folder holding <model>_<dataset>.safetensors (default: $PIXELCNN_WEIGHTS,
            else the repository's weights/). A file missing there is fetched from the Hugging Face
            Hub repo named by $PIXELCNN_HUB_REPO, if set.

    Returns:
        The model, as build() returns it, with the trained weights (stored as float16).
        Raises ValueError for unknown names, and, naming the file, for one that is corrupt
        (unreadable, its tensors unlike the hash in its metadata, or not finite), whose config
        is malformed, or that holds another model; FileNotFoundError, saying how to train them,
        where there are no weights. A file written before weights had a hash loads with a warning.
    """
    _check_names(model, dataset)
    path = weights_path(model, dataset, weights_dir)
    if not path.exists():
        try:
            path = fetch(model, dataset)
        except FileNotFoundError as e:
            raise FileNotFoundError(
                f"no trained weights for {model} on {dataset} at {path}, and {e}. "
                f"Train them with: python train.py --model {model} --dataset {dataset}") from None
    config, state = read(path)
    with torch.random.fork_rng(devices=[]):  # the initial weights, overwritten at once, leave the global RNG be
        try:
            with torch.device("meta"):  # no memory: a config far larger than the file's tensors is refused first
                shape = from_config(config)
        except ValueError as e:
            raise ValueError(f"{path} has a bad config in its metadata: {e}") from None
        if (shape.config.model, shape.config.dataset) != (model, dataset):
            raise ValueError(f"{path} holds {shape.config.model} on {shape.config.dataset}, not {model} on {dataset}")
        weights.check_fits(shape, state, path)
        net = from_config(config)
    return load_into(net, state, path).eval()


def available(weights_dir=None):
    """The (model, dataset) pairs that load() finds weights for.

    Args:
        weights_dir: the folder to look in (default: $PIXELCNN_WEIGHTS, else weights/); pairs
            missing there count if the Hub repo $PIXELCNN_HUB_REPO holds them (or, offline,
            the local Hugging Face cache does).

    Returns:
        A list of (model, dataset) tuples of str, in the order of MODELS, then DATASETS.
    """
    pairs = [(m, d) for m in MODELS for d in DATASETS]
    local = {p for p in pairs if weights_path(*p, weights_dir).exists()}
    hub = weights.on_hub([weights.filename(*p) for p in pairs if p not in local])
    return [p for p in pairs if p in local or weights.filename(*p) in hub]
