"""PixelCNN Studio: PixelCNN-family models, datasets, exact likelihoods and samplers.

Conventions, everywhere: images are integer levels (B, C, H, W) in [0, K) at the API;
inside, a model's forward pass returns logits (B, K, C, H, W).

    import pixelcnn
    model = pixelcnn.load("pixelcnn", "mnist")        # trained, eval mode
    x = model.sample(16, seed=0)                       # (16, 1, 28, 28) levels
    nll = -model.log_prob(x).sum(dim=(1, 2, 3))        # nats per image
"""
from . import datasets
from .models import ARCHITECTURES, Config
from .weights import load_into, read, weights_path

MODELS = tuple(ARCHITECTURES)
DATASETS = datasets.NAMES


def build(model, dataset, **overrides):
    """An untrained model shaped for `dataset`; overrides change its Config (e.g. filters=8)."""
    if model not in ARCHITECTURES:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    c, h, w, k = datasets.shape_of(dataset)
    cls, defaults = ARCHITECTURES[model]
    config = Config(model, dataset, c, h, w, k, **{**defaults, **overrides})
    return cls(config)


def from_config(config: dict):
    fixed = ("model", "dataset", "channels", "height", "width", "levels")
    net = build(config["model"], config["dataset"], **{k: v for k, v in config.items() if k not in fixed})
    if net.config.to_dict() != config:
        raise ValueError(f"config {config} does not describe a model of this version")
    return net


def load(model, dataset, weights_dir=None):
    """The trained model for (model, dataset) from weights/, in eval mode."""
    build(model, dataset)  # checks the names
    path = weights_path(model, dataset, weights_dir)
    if not path.exists():
        raise FileNotFoundError(
            f"no trained weights for {model} on {dataset} at {path}. "
            f"Train them with: python train.py --model {model} --dataset {dataset}")
    config, state = read(path)
    if (config.get("model"), config.get("dataset")) != (model, dataset):
        raise ValueError(f"{path} holds {config.get('model')} on {config.get('dataset')}, "
                         f"not {model} on {dataset}")
    return load_into(from_config(config), state, path).eval()


def available(weights_dir=None):
    """The (model, dataset) pairs whose weights are in weights_dir (default weights/)."""
    return [(m, d) for m in MODELS for d in DATASETS if weights_path(m, d, weights_dir).exists()]
