"""The benchmarks run and print their side-by-side figures (tiny sizes: no timings are checked)."""
import re

from pixelcnn import bench_train


def test_the_training_benchmark_prints_each_way_and_its_ratio(capsys):
    bench_train.main(["--model", "gated", "--steps", "5", "--batch-size", "4", "--compile", "--test-images", "8"])
    out = capsys.readouterr().out
    assert len(re.findall(r"^seed 0 .* images/s .* test NLL after 5 steps: \d\.\d{4} nats/dim$", out, re.M)) == 3
    assert len(re.findall(r"speed-up \d+\.\d\dx over fp32", out)) == 2
    assert re.search(r"compiled over eager \(both split, bf16\): \d+\.\d\dx", out)
