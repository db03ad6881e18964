"""The public API: names, build, input checks, sampling and weights files."""
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import pixelcnn
from helpers import labels_for, make_tiny, random_levels
from pixelcnn import weights

# ---------------------------------------------------------------- names and build

def test_models_and_datasets():
    assert pixelcnn.MODELS == ("pixelcnn", "pixelrcnn", "pixelrcnn_ar", "gated", "gated_cond")
    assert pixelcnn.DATASETS == ("shapes", "mnist", "color_shapes", "color_mnist")


@pytest.mark.parametrize("dataset,shape,levels", [
    ("shapes", (1, 20, 20), 2), ("mnist", (1, 28, 28), 2),
    ("color_shapes", (3, 20, 20), 4), ("color_mnist", (3, 28, 28), 4)])
@pytest.mark.parametrize("model", pixelcnn.MODELS)
def test_build_shapes_the_model_for_its_dataset(model, dataset, shape, levels):
    net = pixelcnn.build(model, dataset, filters=4, layers=1, kernel=3)
    assert net.image_shape == shape and net.levels == levels
    assert (net.config.model, net.config.dataset) == (model, dataset)
    assert (net.config.filters, net.config.layers, net.config.kernel) == (4, 1, 3)
    label = torch.zeros(2, dtype=torch.long) if net.config.classes else None
    with torch.no_grad():
        logits = net.eval()(torch.zeros(2, *shape, dtype=torch.long), label)
    assert logits.shape == (2, levels, *shape)


def test_build_rejects_unknown_names_and_options():
    with pytest.raises(ValueError, match="unknown model"):
        pixelcnn.build("gpt", "shapes")
    with pytest.raises(ValueError, match="unknown dataset"):
        pixelcnn.build("pixelcnn", "cifar")
    with pytest.raises(TypeError):
        pixelcnn.build("pixelcnn", "shapes", width_multiplier=2)


def test_from_config_round_trips_and_rejects_foreign_configs(tiny_shapes):
    config = tiny_shapes.config.to_dict()
    assert pixelcnn.from_config(config).config.to_dict() == config
    with pytest.raises(ValueError, match="of this version"):
        pixelcnn.from_config({**config, "height": 21})
    with pytest.raises(ValueError, match="of this version"):
        pixelcnn.from_config({**config, "dropout": 0.5})


def test_a_config_written_before_an_option_existed_loads_with_the_old_behaviour(tiny_shapes):
    """Weights written before ar_channels and classes existed lack them in their config."""
    config = tiny_shapes.config.to_dict()
    old = {k: v for k, v in config.items() if k not in ("ar_channels", "classes")}
    assert pixelcnn.from_config(old).config.to_dict() == config


# ---------------------------------------------------------------- input checks

@pytest.mark.parametrize("bad,message", [
    (lambda x: x.float(), "integer levels"),
    (lambda x: x.float() / 1, "convert images"),
    (lambda x: x.double(), "dtype"),
    (lambda x: x[0], r"shape \(B, 1, 20, 20\)"),
    (lambda x: x[:, :, :10], "got \\(2, 1, 10, 20\\)"),
    (lambda x: x.repeat(1, 3, 1, 1), "shape"),
    (lambda x: x - 1, "levels must lie in \\[0, 2\\)"),
    (lambda x: x + 1, "from 1 to 2"),
    (lambda x: x.numpy(), "torch tensor"),
    (lambda x: x.tolist(), "torch tensor"),
])
def test_log_prob_rejects_bad_input_with_a_helpful_message(tiny_shapes, bad, message):
    x = torch.ones(2, 1, 20, 20, dtype=torch.long)
    x[:, :, :5] = 0
    with pytest.raises(ValueError, match=message):
        tiny_shapes.log_prob(bad(x))


def test_log_prob_rejects_colour_levels_out_of_range():
    net = make_tiny("pixelcnn", "color_shapes")
    x = torch.full((1, 3, 20, 20), 3)
    net.log_prob(x)  # K - 1 is fine
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        net.log_prob(x + 1)
    with pytest.raises(ValueError, match="levels must lie"):
        net.log_prob(torch.from_numpy(np.full((1, 3, 20, 20), -1)))


# ---------------------------------------------------------------- sampling

def test_sample_returns_levels_of_the_image_shape():
    for net in (make_tiny("pixelcnn", "shapes"), make_tiny("pixelrcnn", "color_shapes", filters=4, layers=1, kernel=3)):
        was = net.training
        x = net.sample(2, seed=0, cached=False)
        assert x.shape == (2, *net.image_shape)
        assert not x.is_floating_point()
        assert int(x.min()) >= 0 and int(x.max()) < net.levels
        assert net.training == was
        net.log_prob(x)  # a valid input


def test_sample_is_reproducible_from_its_seed(tiny_shapes):
    a = tiny_shapes.sample(2, seed=1, cached=False)
    b = tiny_shapes.sample(2, seed=1, cached=False)
    c = tiny_shapes.sample(2, seed=2, cached=False)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a[0], a[1])  # the images of one call differ too


def test_sample_restores_training_mode(tiny_shapes):
    tiny_shapes.train()
    tiny_shapes.sample(1, seed=0, cached=False)
    assert tiny_shapes.training


def test_prefix_keeps_the_top_rows(tiny_shapes):
    prefix = random_levels(tiny_shapes, 2, seed=3)
    mask = torch.zeros(20, 20, dtype=torch.bool)
    mask[:8] = True
    x = tiny_shapes.sample(2, seed=0, prefix=prefix, prefix_mask=mask, cached=False)
    assert torch.equal(x[:, :, :8], prefix[:, :, :8])
    assert not torch.equal(x[:, :, 8:], prefix[:, :, 8:])  # the rest is sampled


def test_prefix_with_a_non_raster_mask_keeps_every_known_pixel():
    """The left half of the image is known: those pixels are returned exactly."""
    net = make_tiny("pixelrcnn", "color_shapes", filters=4, layers=1, kernel=3)
    prefix = random_levels(net, 1, seed=4)[0]  # (C, H, W): one prefix for all n
    mask = torch.zeros(2, 1, 20, 20, dtype=torch.bool)  # (n, 1, H, W)
    mask[:, :, :, :10] = True
    x = net.sample(2, seed=5, prefix=prefix, prefix_mask=mask, cached=False)
    assert torch.equal(x[:, :, :, :10], prefix[None, :, :, :10].expand(2, -1, -1, -1))
    assert not torch.equal(x[:, :, :, 10:], prefix[None, :, :, 10:].expand(2, -1, -1, -1))


def test_a_full_mask_returns_the_prefix(tiny_shapes):
    prefix = random_levels(tiny_shapes, 2, seed=6)
    x = tiny_shapes.sample(2, seed=0, prefix=prefix, prefix_mask=torch.ones(2, 20, 20, dtype=torch.bool),
                           cached=False)
    assert torch.equal(x, prefix)


@pytest.mark.parametrize("kwargs,message", [
    (dict(prefix=torch.zeros(1, 1, 20, 20, dtype=torch.long)), "go together"),
    (dict(prefix_mask=torch.ones(20, 20, dtype=torch.bool)), "go together"),
    (dict(prefix=torch.zeros(1, 1, 20, 20), prefix_mask=torch.ones(20, 20, dtype=torch.bool)), "integer levels"),
    (dict(prefix=torch.full((1, 1, 20, 20), 2), prefix_mask=torch.ones(20, 20, dtype=torch.bool)), "levels"),
    (dict(prefix=torch.zeros(1, 1, 19, 20, dtype=torch.long), prefix_mask=torch.ones(20, 20, dtype=torch.bool)),
     "shape"),
    (dict(prefix=torch.zeros(3, 1, 20, 20, dtype=torch.long), prefix_mask=torch.ones(20, 20, dtype=torch.bool)),
     "expected 1 or n=2"),
    (dict(prefix=torch.zeros(1, 1, 20, 20, dtype=torch.long), prefix_mask=torch.ones(20, 20)), "boolean"),
    (dict(prefix=torch.zeros(1, 1, 20, 20, dtype=torch.long), prefix_mask=torch.ones(20, 19, dtype=torch.bool)),
     "prefix_mask must have shape"),
    (dict(prefix=torch.zeros(1, 1, 20, 20, dtype=torch.long), prefix_mask=torch.ones(3, 20, 20, dtype=torch.bool)),
     "prefix_mask must have shape"),
    (dict(prefix=np.zeros((1, 1, 20, 20), np.int64), prefix_mask=torch.ones(20, 20, dtype=torch.bool)),
     "torch tensor"),
])
def test_bad_prefix_or_mask_is_rejected(tiny_shapes, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_shapes.sample(2, seed=0, cached=False, **kwargs)


@pytest.mark.parametrize("temperature", [0, -1.0, float("nan")])
def test_nonpositive_temperature_is_rejected(tiny_shapes, temperature):
    with pytest.raises(ValueError, match="temperature"):
        tiny_shapes.sample(1, seed=0, temperature=temperature, cached=False)


@pytest.mark.parametrize("n", [0, -1, 1.5, "2"])
def test_bad_sample_count_is_rejected(tiny_shapes, n):
    with pytest.raises(ValueError, match="positive integer"):
        tiny_shapes.sample(n, seed=0, cached=False)


# ---------------------------------------------------------------- weights

def fp16_rounded(net):
    """The same model with every float tensor rounded through fp16, as saved on disk."""
    twin = pixelcnn.from_config(net.config.to_dict())
    twin.load_state_dict({k: v.half().float() if v.is_floating_point() else v
                          for k, v in net.state_dict().items()})
    return twin.eval()


@pytest.mark.parametrize("model,dataset", [("pixelcnn", "shapes"), ("pixelrcnn", "color_shapes"),
                                           ("gated_cond", "color_shapes")])
def test_save_then_load_gives_the_same_model(tmp_path, model, dataset):
    net = make_tiny(model, dataset)
    path = weights.weights_path(model, dataset, tmp_path)
    assert path == tmp_path / f"{model}_{dataset}.safetensors"
    weights.save(net, path)
    assert not list(tmp_path.glob("*.part"))  # written atomically
    assert path.stat().st_mode & 0o777 == 0o644  # readable by an app running as another user
    loaded = pixelcnn.load(model, dataset, weights_dir=tmp_path)
    assert not loaded.training
    assert loaded.config == net.config
    assert pixelcnn.available(tmp_path) == [(model, dataset)]
    x, label = random_levels(net, 3), labels_for(net, 3)
    expected = fp16_rounded(net).log_prob(x, label)
    torch.testing.assert_close(loaded.log_prob(x, label), expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(loaded.log_prob(x, label), net.log_prob(x, label), rtol=0, atol=1e-2)
    # The on-disk file holds half precision floats and the integer BatchNorm counters.
    _, state = weights.read(path)
    assert {v.dtype for v in state.values()} <= {torch.float16, torch.int64}


def test_available_is_empty_for_an_empty_folder(tmp_path):
    assert pixelcnn.available(tmp_path) == []


def test_loading_missing_weights_says_how_to_train_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="python train.py --model pixelrcnn --dataset color_mnist"):
        pixelcnn.load("pixelrcnn", "color_mnist", weights_dir=tmp_path)


def test_loading_with_bad_names_is_a_value_error(tmp_path):
    with pytest.raises(ValueError):
        pixelcnn.load("pixelcnn", "cifar", weights_dir=tmp_path)
    with pytest.raises(ValueError):
        pixelcnn.load("resnet", "shapes", weights_dir=tmp_path)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_a_corrupt_weights_file_is_a_value_error(tmp_path, tiny_shapes, damage):
    path = tmp_path / "pixelcnn_shapes.safetensors"
    weights.save(tiny_shapes, path)
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x00not safetensors" * 50,
                      "empty": b""}[damage])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        pixelcnn.load("pixelcnn", "shapes", weights_dir=tmp_path)


def test_weights_of_another_model_are_a_value_error(tmp_path):
    weights.save(make_tiny("pixelrcnn", "shapes"), tmp_path / "pixelcnn_shapes.safetensors")
    with pytest.raises(ValueError, match="holds pixelrcnn on shapes, not pixelcnn on shapes"):
        pixelcnn.load("pixelcnn", "shapes", weights_dir=tmp_path)
    weights.save(make_tiny("pixelcnn", "color_shapes"), tmp_path / "pixelcnn_shapes.safetensors")
    with pytest.raises(ValueError, match="not pixelcnn on shapes"):
        pixelcnn.load("pixelcnn", "shapes", weights_dir=tmp_path)


def test_weights_that_do_not_fit_their_config_are_a_value_error(tmp_path, tiny_shapes):
    """A file whose tensors disagree with the config in its metadata."""
    import json
    config = {**tiny_shapes.config.to_dict(), "filters": 16}
    state = {k: v.contiguous() for k, v in tiny_shapes.state_dict().items()}
    save_file(state, str(tmp_path / "pixelcnn_shapes.safetensors"),
              metadata={"format": weights.FORMAT, "config": json.dumps(config)})
    with pytest.raises(ValueError, match="weights of another model"):
        pixelcnn.load("pixelcnn", "shapes", weights_dir=tmp_path)


def test_a_safetensors_file_without_our_metadata_is_a_value_error(tmp_path, tiny_shapes):
    save_file({k: v.contiguous() for k, v in tiny_shapes.state_dict().items()},
              str(tmp_path / "pixelcnn_shapes.safetensors"))
    with pytest.raises(ValueError, match="not a PixelCNN Studio weights file"):
        pixelcnn.load("pixelcnn", "shapes", weights_dir=tmp_path)


def test_a_config_from_another_version_is_a_value_error(tmp_path, tiny_shapes):
    import json
    config = {**tiny_shapes.config.to_dict(), "attention": True}
    save_file({k: v.contiguous() for k, v in tiny_shapes.state_dict().items()},
              str(tmp_path / "pixelcnn_shapes.safetensors"),
              metadata={"format": weights.FORMAT, "config": json.dumps(config)})
    with pytest.raises(ValueError, match="of this version"):
        pixelcnn.load("pixelcnn", "shapes", weights_dir=tmp_path)
