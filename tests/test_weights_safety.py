"""A weights file is trusted only as far as it checks out: the tensors match the SHA-256 in its
metadata, they are finite, and the config is a JSON object that describes a model of this
version. Anything else is a ValueError that names the file and says what is wrong."""
import json
import re
import runpy
import warnings

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import pixelcnn
from helpers import REPO, make_tiny
from pixelcnn import weights


@pytest.fixture(scope="module")
def tiny():
    return make_tiny("pixelcnn", "shapes")


def write_raw(path, state, config_text, hashed=True):
    """A weights file with exactly this config text in its metadata (and, if `hashed`, the state's hash)."""
    meta = {"format": weights.FORMAT, "config": config_text}
    if hashed:
        meta[weights.HASH_KEY] = weights.content_hash(state)
    save_file(state, str(path), metadata=meta)
    return path


def fp16_state(net):
    return {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in net.state_dict().items()}


def data_start(path):
    """Where the tensor data begins: after the 8-byte header length and the JSON header."""
    return 8 + int.from_bytes(path.read_bytes()[:8], "little")


# ---------------------------------------------------------------- the content hash

def test_saved_weights_carry_the_hash_of_their_tensors_and_load_without_a_warning(tmp_path, tiny):
    path = tmp_path / "pixelcnn_shapes.safetensors"
    weights.save(tiny, path)
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    assert meta[weights.HASH_KEY] == weights.content_hash(load_file(str(path)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pixelcnn.load("pixelcnn", "shapes", tmp_path).config == tiny.config


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_a_flipped_byte_in_the_tensor_data_is_refused_naming_the_file(tmp_path, tiny, where):
    path = tmp_path / "pixelcnn_shapes.safetensors"
    weights.save(tiny, path)
    data = bytearray(path.read_bytes())
    start = data_start(path)
    i = {"first": start, "middle": (start + len(data)) // 2, "last": len(data) - 1}[where]
    data[i] ^= 0x01  # one bit: the file still parses, and most such flips leave a finite number
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt: its tensor data does not match the SHA-256") as error:
        pixelcnn.load("pixelcnn", "shapes", tmp_path)
    assert str(path) in str(error.value)


def test_the_content_hash_sees_names_dtypes_shapes_and_bytes_not_order():
    a, b = torch.arange(6, dtype=torch.int16), torch.ones(2, dtype=torch.float16)
    h = weights.content_hash({"a": a, "b": b})
    assert weights.content_hash({"b": b, "a": a}) == h
    assert weights.content_hash({"a": a.clone(), "b": b.clone()}) == h
    for other in ({"a": a.reshape(2, 3), "b": b}, {"a": a.view(torch.float16), "b": b},
                  {"c": a, "b": b}, {"a": a, "b": b * 2}, {"a": a}):
        assert weights.content_hash(other) != h


def test_a_file_without_a_hash_loads_with_one_warning_naming_it(tmp_path, tiny, capsys):
    """Weights written before there was a hash still load, with a note: a warning, once per file."""
    path = write_raw(tmp_path / "pixelcnn_shapes.safetensors", fp16_state(tiny),
                     json.dumps(tiny.config.to_dict()), hashed=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = pixelcnn.load("pixelcnn", "shapes", tmp_path)
        pixelcnn.load("pixelcnn", "shapes", tmp_path)
    assert [str(w.message).split(" has ")[0] for w in caught] == [str(path)]
    assert "no content hash" in str(caught[0].message)
    assert capsys.readouterr().out == ""
    x = torch.randint(0, 2, (2, 1, 20, 20))
    torch.testing.assert_close(first.log_prob(x), tiny.log_prob(x), rtol=0, atol=1e-2)


# ---------------------------------------------------------------- non-finite weights

@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("hashed", [True, False])
def test_non_finite_weights_are_refused_naming_the_file_and_the_first_such_tensor(tmp_path, tiny, value, hashed):
    """A tensor of NaNs (a diverged run, say) samples blank images: it is refused, hash or no hash."""
    state = fp16_state(tiny)
    names = sorted(k for k in state if state[k].is_floating_point())
    for name in (names[-1], names[1]):  # two bad tensors: the error names the first in sorted order
        state[name] = state[name].clone()
        state[name].view(-1)[0] = value
    path = write_raw(tmp_path / "pixelcnn_shapes.safetensors", state, json.dumps(tiny.config.to_dict()), hashed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the note on a file without a hash
        with pytest.raises(ValueError, match=f"values of {names[1]} are NaN or infinite") as error:
            pixelcnn.load("pixelcnn", "shapes", tmp_path)
    assert str(error.value).startswith(f"{path} is corrupt: its weights are not all finite (1 of the")


# ---------------------------------------------------------------- malformed metadata

BASE = {"model": "pixelcnn", "dataset": "shapes", "channels": 1, "height": 20, "width": 20, "levels": 2,
        "filters": 8, "layers": 2, "kernel": 5, "split": True, "one_hot": False, "ar_channels": False, "classes": 0}


def changed(**fields):
    """The tiny model's config as JSON text, with `fields` changed (None: left out)."""
    return json.dumps({k: v for k, v in {**BASE, **fields}.items() if v is not None})


def missing(*names):
    return json.dumps({k: v for k, v in BASE.items() if k not in names})


MALFORMED = [  # (the config text in the metadata, what the error says after the file's name)
    ("{not json", "is corrupt: the config in its metadata is not JSON"),
    ("", "is corrupt: the config in its metadata is not JSON"),
    ("[" * 100_000 + "]" * 100_000, "is corrupt: the config in its metadata is not JSON"),  # too deep to parse
    ("[1, 2]", "is [1, 2], not a JSON object"),
    ('"pixelcnn"', "is 'pixelcnn', not a JSON object"),
    ("42", "is 42, not a JSON object"),
    ("null", "is None, not a JSON object"),
    (missing("model"), "has a bad config in its metadata: the config names no model"),
    (missing("dataset"), "the config names no dataset"),
    (missing("model", "dataset"), "the config names no model and no dataset"),
    (changed(model="gpt"), "unknown model 'gpt'; choose one of pixelcnn, "),
    (changed(model=5), "unknown model 5"),
    (changed(model=["pixelcnn"]), "unknown model ['pixelcnn']"),
    (changed(dataset="cifar"), "unknown dataset 'cifar'"),
    (changed(dataset={"name": "shapes"}), "unknown dataset {'name': 'shapes'}"),
    (changed(filters=-4), "filters must be at least 1, got -4"),
    (changed(filters=0), "filters must be at least 1, got 0"),
    (changed(layers=0), "layers must be at least 1, got 0"),
    (changed(kernel=4), "kernel must be odd"),
    (changed(kernel=1), "kernel must be at least 3, got 1"),
    (changed(kernel=-3), "kernel must be at least 3, got -3"),
    (changed(classes=-1), "classes must be at least 0, got -1"),
    (changed(filters="abc"), "filters takes an integer, got 'abc'"),
    (changed(filters="8"), "filters takes an integer, got '8'"),
    (changed(filters=8.0), "filters takes an integer, got 8.0"),
    (changed(filters=True), "filters takes an integer, got True"),
    (changed(layers=[2]), "layers takes an integer, got [2]"),
    (changed(split="yes"), "split is true or false, got 'yes'"),
    (changed(one_hot=1), "one_hot is true or false, got 1"),
    (changed(filters=float("nan")), "filters takes an integer, got nan"),  # json.dumps writes NaN, loads reads it
    (changed(filters=10**9), "filters must be at most 1024, got 1000000000"),  # would overflow torch's sizes
    (changed(layers=10**6), "layers must be at most 100, got 1000000"),  # would take minutes to build
    (changed(classes=5), "pixelcnn cannot be class-conditional: use gated_cond"),
    (changed(dropout=0.5), "dropout is not a model option; the options are filters, layers"),
    (changed(height=21), "pixelcnn on shapes has height 20, not 21"),
    (changed(channels="1"), "pixelcnn on shapes has channels 1, not '1'"),
    (changed(levels=None), "pixelcnn on shapes has levels 2, not none"),
    (changed(filters=16), "holds weights of another model"),
    (changed(filters=1024, layers=100), "holds weights of another model"),  # refused before it is built for real
    (changed(model="gated", kernel=3), "holds gated on shapes, not pixelcnn on shapes"),
]


@pytest.mark.parametrize("config_text, message", MALFORMED, ids=[m for _, m in MALFORMED])
def test_malformed_metadata_is_a_value_error_naming_the_file_and_what_is_wrong(tmp_path, tiny, config_text, message):
    path = write_raw(tmp_path / "pixelcnn_shapes.safetensors", fp16_state(tiny), config_text)
    with pytest.raises(ValueError) as error:
        pixelcnn.load("pixelcnn", "shapes", tmp_path)
    assert str(error.value).startswith(f"{path} ") and message in str(error.value), str(error.value)[:300]


@pytest.mark.parametrize("model, dataset, overrides, message", [
    ("pixelcnn", "shapes", dict(filters=-4), "filters must be at least 1, got -4"),
    ("gated", "shapes", dict(layers=0), "layers must be at least 1, got 0"),
    ("pixelrcnn", "shapes", dict(kernel=4), "kernel must be odd"),
    ("gated", "mnist", dict(one_hot="no"), "one_hot is true or false, got 'no'"),
    ("gated", "shapes", dict(classes=5), "gated cannot be class-conditional: use gated_cond"),
    ("gated_cond", "mnist", dict(classes=3), "gated_cond on mnist has one class per label of mnist, 10; got classes=3"),
    ("gated_cond", "shapes", dict(classes=0), "has one class per label of shapes, 5; got classes=0"),
])
def test_build_checks_every_option_before_building(model, dataset, overrides, message):
    with pytest.raises(ValueError, match=message):
        pixelcnn.build(model, dataset, **overrides)


@pytest.mark.parametrize("config, message", [
    ([BASE], "a config is a dict"),
    (None, "a config is a dict"),
    ({"dataset": "shapes"}, "names no model"),
    ({"model": {}, "dataset": "shapes"}, "unknown model {}"),
])
def test_from_config_refuses_what_is_not_a_config_of_this_version(config, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        pixelcnn.from_config(config)


def test_rehashing_an_old_file_adds_the_hash_and_keeps_its_tensors_bit_for_bit(tmp_path, tiny, capsys):
    rehash = runpy.run_path(str(REPO / "scripts" / "rehash_weights.py"), run_name="rehash")["main"]
    state = fp16_state(tiny)
    old = write_raw(tmp_path / "pixelcnn_shapes.safetensors", state, json.dumps(tiny.config.to_dict()), hashed=False)
    old.chmod(0o600)
    rehash([str(old)])
    with safe_open(str(old), "pt") as f:
        assert f.metadata()[weights.HASH_KEY] == weights.content_hash(state)
        assert f.metadata()["config"] == json.dumps(tiny.config.to_dict())
    back = load_file(str(old))
    as_bytes = lambda t: (t.dtype, t.shape, t.reshape(-1).view(torch.uint8).tolist())  # noqa: E731
    assert back.keys() == state.keys() and all(as_bytes(back[k]) == as_bytes(state[k]) for k in state)
    assert old.stat().st_mode & 0o777 == 0o644
    before = old.read_bytes()
    rehash([str(old)])  # a file with its hash is checked, not rewritten
    assert old.read_bytes() == before
    assert capsys.readouterr().out.splitlines() == [f"{old}: hash added", f"{old}: has its hash"]


def test_the_shipped_weights_carry_their_hash():
    """So the app loads them without the note that older files get."""
    shipped = sorted(weights.WEIGHTS_DIR.glob("*.safetensors"))
    assert shipped
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for path in shipped:
            weights.read(path)
