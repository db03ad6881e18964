"""PixelCNN Studio: PixelCNN-family models, datasets, exact likelihoods and samplers.

Conventions, everywhere: images are integer levels (B, C, H, W) in [0, K) at the API;
inside, a model's forward pass returns logits (B, K, C, H, W).

    import pixelcnn
    model = pixelcnn.load("pixelcnn", "mnist")        # trained, eval mode
    x = model.sample(16, seed=0)                       # (16, 1, 28, 28) levels
    nll = -model.log_prob(x).sum(dim=(1, 2, 3))        # nats per image
"""
import dataclasses

from . import datasets, weights
from .models import ARCHITECTURES, Config
from .weights import fetch, load_into, read, weights_path

MODELS = tuple(ARCHITECTURES)
DATASETS = datasets.NAMES


def build(model, dataset, **overrides):
    """An untrained model shaped for `dataset`; overrides change its Config (e.g. filters=8)."""
    if model not in ARCHITECTURES:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    c, h, w, k = datasets.shape_of(dataset)
    cls, defaults = ARCHITECTURES[model]
    options = {**defaults, **overrides}
    if options.get("classes", 0) is None:
        options["classes"] = datasets.classes_of(dataset)
    return cls(Config(model, dataset, c, h, w, k, **options))


def from_config(config: dict):
    fixed = ("model", "dataset", "channels", "height", "width", "levels")
    # Options added after a file was written take their default, the old behaviour.
    config = {f.name: f.default for f in dataclasses.fields(Config) if f.name not in fixed} | config
    try:
        net = build(config["model"], config["dataset"], **{k: v for k, v in config.items() if k not in fixed})
    except (KeyError, TypeError) as e:  # a missing name, or an option this version does not have
        raise ValueError(f"config {config} does not describe a model of this version: {e}") from e
    if net.config.to_dict() != config:
        raise ValueError(f"config {config} does not describe a model of this version")
    return net


def load(model, dataset, weights_dir=None):
    """The trained model for (model, dataset) from weights/ (else from the Hub repo
    $PIXELCNN_HUB_REPO, if set), in eval mode."""
    build(model, dataset)  # checks the names
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
    return load_into(from_config(config), state, path).eval()


def available(weights_dir=None):
    """The (model, dataset) pairs whose weights are in weights_dir (default weights/) or,
    if $PIXELCNN_HUB_REPO is set, in that Hub repo."""
    pairs = [(m, d) for m in MODELS for d in DATASETS]
    local = {p for p in pairs if weights_path(*p, weights_dir).exists()}
    hub = weights.on_hub([weights.filename(*p) for p in pairs if p not in local])
    return [p for p in pairs if p in local or weights.filename(*p) in hub]
