"""PixelCNN Studio: PixelCNN-family models, datasets, exact likelihoods and samplers.

Conventions, everywhere: images are integer levels (B, C, H, W) in [0, K) at the API;
inside, a model's forward pass returns logits (B, K, C, H, W).

    import pixelcnn
    model = pixelcnn.load("pixelcnn", "mnist")        # trained, eval mode
    x = model.sample(16, seed=0)                       # (16, 1, 28, 28) levels
    nll = -model.log_prob(x).sum(dim=(1, 2, 3))        # nats per image
"""
import dataclasses

import torch

from . import datasets, weights
from .models import ARCHITECTURES, Config
from .weights import fetch, load_into, read, weights_path

__all__ = ["MODELS", "DATASETS", "Config", "build", "from_config", "load", "available", "is_conditional"]

MODELS = tuple(ARCHITECTURES)
DATASETS = datasets.NAMES


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
        ValueError for an unknown model or dataset.
    """
    _check_names(model, dataset)
    c, h, w, k = datasets.shape_of(dataset)
    cls, defaults = ARCHITECTURES[model]
    options = {**defaults, **overrides}
    if options.get("classes", 0) is None:
        options["classes"] = datasets.classes_of(dataset)
    return cls(Config(model, dataset, c, h, w, k, **options))


def _check_names(model, dataset):
    if model not in ARCHITECTURES:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
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
        The model, as build() returns it. Raises ValueError if the dict does not describe a
        model of this version (a missing name, an unknown option, or a value build would change).
    """
    fixed = ("model", "dataset", "channels", "height", "width", "levels")
    config = {f.name: f.default for f in dataclasses.fields(Config) if f.name not in fixed} | config
    try:
        net = build(config["model"], config["dataset"], **{k: v for k, v in config.items() if k not in fixed})
    except (KeyError, TypeError) as e:  # a missing name, or an option this version does not have
        raise ValueError(f"config {config} does not describe a model of this version: {e}") from e
    if net.config.to_dict() != config:
        raise ValueError(f"config {config} does not describe a model of this version")
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
        Raises ValueError for unknown names or a file that holds another model, and
        FileNotFoundError, saying how to train them, where there are no weights.
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
    if (config.get("model"), config.get("dataset")) != (model, dataset):
        raise ValueError(f"{path} holds {config.get('model')} on {config.get('dataset')}, "
                         f"not {model} on {dataset}")
    with torch.random.fork_rng(devices=[]):  # the initial weights, overwritten at once, leave the global RNG be
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
