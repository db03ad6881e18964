"""The benchmarks run and print their side-by-side figures (tiny sizes: no timings are checked)."""
import dataclasses
import math
import re
import runpy
import shutil
from types import SimpleNamespace

import pytest
import torch

import pixelcnn
from helpers import REPO
from pixelcnn import bench, bench_train, training, weights


@pytest.mark.slow
def test_the_training_benchmark_prints_each_way_and_its_ratio(capsys):
    bench_train.main(["--model", "gated", "--steps", "5", "--batch-size", "4", "--compile", "--test-images", "8"])
    out = capsys.readouterr().out
    assert len(re.findall(r"^seed 0 .* images/s .* test NLL after 5 steps: \d\.\d{4} nats/dim$", out, re.M)) == 3
    assert len(re.findall(r"speed-up \d+\.\d\dx over fp32", out)) == 2
    precision = "bf16" if training.use_bf16(None, "cpu") else "fp32"  # as train.py chooses it here
    assert re.search(rf"compiled over eager \(both split, {precision}\): \d+\.\d\dx", out)


@pytest.mark.mnist
def test_the_colour_breakdown_adds_up(capsys, monkeypatch):
    monkeypatch.delenv("PIXELCNN_WEIGHTS", raising=False)  # the shipped weights, not another test's tiny ones
    runpy.run_path(str(REPO / "scripts" / "colour_breakdown.py"), run_name="breakdown")["main"](["--images", "4"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["first", "pixel"] and lines[-1].startswith("for comparison")
    rows = lines[1:-1]  # per dataset: the binary model, then each colour model and its extra
    shipped = [(m, d) for d in ("color_shapes", "color_mnist") for m in ("pixelrcnn_ar", "gated")  # those it reads
               if weights.weights_path(m, d, weights.WEIGHTS_DIR).exists()]
    assert len(rows) == 2 + 2 * len(shipped)
    for line in rows:
        *parts, total = (float(v) for v in line.split()[-5:])
        assert abs(sum(parts) - total) < 0.02, line
    for line in (r for r in rows if " on color_" in r):
        assert abs(float(line.split()[-5]) - math.log(64)) < 0.05, line  # the background: one of 64 colours


def test_the_sampling_benchmark_prints_a_row_per_model_and_batch(capsys, tmp_path):
    shutil.copytree(REPO / "pixelcnn", tmp_path / "pixelcnn")  # another checkout to time against
    bench.main(["--quick", "--tiny", "--repeat", "1", "--pairs", "pixelcnn/shapes", "gated_cond/color_shapes",
                "--against", str(tmp_path)])
    out = capsys.readouterr().out
    rows = re.findall(r"^(\w+) / (\w+) +(\d+) .* (\d+\.\d\d)x +n/a +\d+\.\dx$", out, re.M)
    assert [r[:3] for r in rows] == [("pixelcnn", "shapes", "1"), ("pixelcnn", "shapes", "16"),
                                     ("gated_cond", "color_shapes", "1"), ("gated_cond", "color_shapes", "16")]


def test_the_sampling_benchmark_times_a_shipped_model_with_its_options(monkeypatch, tmp_path):
    """With weights, the model as shipped (the summary is per-row work of its own); without, as built."""
    net = pixelcnn.build("gated", "color_shapes", filters=8, layers=2, summary=True, same_as_first=True)
    weights.save(net, tmp_path / "gated_color_shapes.safetensors")
    monkeypatch.setenv("PIXELCNN_WEIGHTS", str(tmp_path))
    shipped = bench.network("gated", "color_shapes")
    assert shipped.config == net.config and not shipped.training
    assert bench.network("gated", "mnist").config == pixelcnn.build("gated", "mnist").config
    assert bench.network("gated", "color_shapes", tiny=True).config.summary is False


def test_a_package_timed_against_is_given_only_the_options_it_knows():
    """An older package (its Config without `summary`) times a model with the option off; one
    with it on, it cannot build: nan, not an error."""
    def from_config(config):
        if "summary" in config:
            raise ValueError("summary is not a model option")
        return pixelcnn.from_config(config)

    fields = [(f.name, f.type, f) for f in dataclasses.fields(pixelcnn.Config) if f.name != "summary"]
    older = SimpleNamespace(Config=dataclasses.make_dataclass("Config", fields), from_config=from_config)
    plain = pixelcnn.build("gated", "shapes", filters=8, layers=2).eval()
    assert bench.against_time(older, plain, 1, 1, None) > 0
    summary = pixelcnn.build("gated", "shapes", filters=8, layers=2, summary=True).eval()
    assert math.isnan(bench.against_time(older, summary, 1, 1, None))


@pytest.mark.parametrize("model,dataset", [("pixelcnn", "shapes"), ("gated_cond", "color_shapes")])
def test_the_gpu_table_runs_on_the_cpu_first(model, dataset):
    """The GPU's row (bench --device cuda), tried on the CPU, where the sampler is the cached
    one and the CPU's images are its own: none differ, either way convolutions are set."""
    net = pixelcnn.build(model, dataset, filters=8, layers=2).eval()
    row = bench.gpu_row(net, 2, 1, 2)
    assert re.fullmatch(rf"{model} / {dataset} +2( +\d+(\.\d+)?(ms|s|us|x)){{7}} +0/2 +0/2", row), row


def test_the_gpu_table_says_when_there_is_no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="no CUDA device is visible"):
        bench.main(["--device", "cuda", "--tiny"])
