"""train.py end to end, on tiny models and a few steps."""
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys

import pytest
import torch

import pixelcnn
import train
from helpers import REPO
from pixelcnn import datasets, training

TINY = ["--set", "filters=8", "layers=1", "kernel=3"]
SHAPES = ["--model", "pixelcnn", "--dataset", "shapes", *TINY, "--train-limit", "256", "--test-limit", "64",
          "--batch-size", "32", "--samples", "4", "--threads", "1", "--device", "cpu"]
NAME = "pixelcnn_shapes"


def run_train(args, out, ck):
    train.main([*args, "--out", str(out), "--checkpoint-dir", str(ck)])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One 5-step run on shapes; tests copy its folders before changing anything."""
    root = tmp_path_factory.mktemp("train")
    run_train([*SHAPES, "--max-steps", "5"], root / "w", root / "ck")
    return root / "w", root / "ck"


def copy_run(trained, tmp_path):
    out, ck = tmp_path / "w", tmp_path / "ck"
    shutil.copytree(trained[0], out)
    shutil.copytree(trained[1], ck)
    return out, ck


def test_a_run_writes_weights_facts_samples_and_curve(trained):
    out, ck = trained
    for suffix in (".safetensors", ".json", "_samples.png", "_curve.png"):
        assert (out / f"{NAME}{suffix}").stat().st_size > 0, suffix
    assert (ck / f"{NAME}.pt").exists()
    assert not list(out.glob("*.part")) and not list(ck.glob("*.part"))


def test_the_facts_file(trained):
    facts = json.loads((trained[0] / f"{NAME}.json").read_text())
    assert (facts["model"], facts["dataset"], facts["step"]) == ("pixelcnn", "shapes", 5)
    nll = facts["test_nats_per_dim"]
    assert math.isfinite(nll) and 0 < nll < 2
    assert facts["test_nats_per_image"] == pytest.approx(nll * 400)
    assert facts["test_bits_per_dim"] == pytest.approx(nll / math.log(2))
    assert facts["entropy_bound_nats_per_image"] == pytest.approx(datasets.entropy_bound("shapes"))
    assert facts["config"]["filters"] == 8 and facts["config"]["layers"] == 1 and facts["config"]["kernel"] == 3
    assert facts["command"].startswith("python train.py --model pixelcnn")


def test_the_trained_model_loads_samples_and_reproduces_its_test_nll(trained):
    net = pixelcnn.load("pixelcnn", "shapes", weights_dir=trained[0])
    assert not net.training and net.config.filters == 8
    x = net.sample(2, seed=0, cached=False)
    assert x.shape == (2, 1, 20, 20) and int(x.max()) <= 1 and int(x.min()) >= 0
    test, _ = datasets.load("shapes", "test")
    nll = -net.log_prob(test[:64]).mean().item()
    facts = json.loads((trained[0] / f"{NAME}.json").read_text())
    assert nll == pytest.approx(facts["test_nats_per_dim"], abs=2e-3)  # fp16 weights on disk


def test_resume_continues_from_the_checkpoint(trained, tmp_path, capsys):
    out, ck = copy_run(trained, tmp_path)
    before = torch.load(ck / f"{NAME}.pt", weights_only=True)
    assert before["step"] == 5
    run_train([*SHAPES, "--max-steps", "8", "--resume"], out, ck)
    assert "resumed from" in capsys.readouterr().out
    after = torch.load(ck / f"{NAME}.pt", weights_only=True)
    assert after["step"] == 8
    assert after["epoch"] == 1 and after["offset"] == 0  # 256 / 32 = 8 steps: one whole epoch
    history = json.loads(after["history"])
    assert [h["step"] for h in history] == [5, 8]
    assert [s for s, _ in json.loads(after["steps"])] == list(range(1, 9))


def test_resuming_a_finished_run_into_an_empty_folder_writes_its_weights(trained, tmp_path):
    out, ck = copy_run(trained, tmp_path)
    fresh = tmp_path / "fresh"
    run_train([*SHAPES, "--max-steps", "5", "--resume"], fresh, ck)  # nothing left to train
    assert (fresh / f"{NAME}.safetensors").exists() and (fresh / f"{NAME}_samples.png").exists()
    facts = json.loads((fresh / f"{NAME}.json").read_text())
    assert facts["step"] == 5
    assert facts["test_nats_per_dim"] == json.loads((out / f"{NAME}.json").read_text())["test_nats_per_dim"]


def test_a_conditional_model_trains_on_its_labels(tmp_path):
    run_train(["--model", "gated_cond", *SHAPES[2:], "--max-steps", "3"], tmp_path / "w", tmp_path / "ck")
    net = pixelcnn.load("gated_cond", "shapes", weights_dir=tmp_path / "w")
    assert net.config.classes == 5
    test, labels = datasets.load("shapes", "test")
    with pytest.raises(ValueError, match="give the labels"):
        from pixelcnn.evaluate import nll
        nll(net, test[:8])


def test_train_images_sets_how_many_shapes_an_epoch_generates(tmp_path):
    run_train([*SHAPES, "--train-images", "96", "--epochs", "1"], tmp_path / "w", tmp_path / "ck")
    assert torch.load(tmp_path / "ck" / f"{NAME}.pt", weights_only=True)["step"] == 3  # 96 / 32 images a step
    with pytest.raises(SystemExit, match="fixed dataset"):
        run_train([*SHAPES[:2], "--dataset", "mnist", *SHAPES[4:], "--train-images", "96"],
                  tmp_path / "m", tmp_path / "mc")


def test_eval_every_evaluates_every_nth_epoch_and_the_last(tmp_path):
    run_train([*SHAPES, "--train-limit", "64", "--epochs", "3", "--eval-every", "2"], tmp_path / "w", tmp_path / "ck")
    ck = torch.load(tmp_path / "ck" / f"{NAME}.pt", weights_only=True)
    history = json.loads(ck["history"])
    assert [h["epoch"] for h in history] == [2, 3]
    assert (ck["epoch"], ck["step"]) == (3, 6)  # 64 / 32 = 2 steps an epoch, each epoch checkpointed
    best = min(history, key=lambda h: h["test_nats_per_dim"])
    facts = json.loads((tmp_path / "w" / f"{NAME}.json").read_text())
    assert facts["epoch"] == best["epoch"]
    assert facts["history"] == history[:history.index(best) + 1]  # the curve up to the weights written


@pytest.mark.slow
def test_a_compiled_run_learns_what_an_eager_one_does(tmp_path):
    losses = {}
    for flags in ([], ["--compile"]):
        ck = tmp_path / f"ck{len(flags)}"
        run_train([*SHAPES, "--max-steps", "4", "--samples", "0", *flags], tmp_path / f"w{len(flags)}", ck)
        losses[len(flags)] = [loss for _, loss in json.loads(torch.load(ck / f"{NAME}.pt", weights_only=True)["steps"])]
    assert losses[1] == pytest.approx(losses[0], rel=2e-2)  # bf16: the same steps, rounded differently
    assert losses[1][-1] < losses[1][0]


def test_resume_without_a_checkpoint_or_with_another_config_stops(trained, tmp_path):
    with pytest.raises(SystemExit, match="no checkpoint"):
        run_train([*SHAPES, "--max-steps", "8", "--resume"], tmp_path / "w0", tmp_path / "empty")
    out, ck = copy_run(trained, tmp_path)
    other = [a if a != "filters=8" else "filters=4" for a in SHAPES]
    with pytest.raises(SystemExit, match="another model config"):
        run_train([*other, "--max-steps", "8", "--resume"], out, ck)


def test_a_diverging_run_stops_and_keeps_the_good_weights(trained, tmp_path):
    out, ck = copy_run(trained, tmp_path)
    kept = files(out, ck)
    with pytest.raises(SystemExit, match=r"loss became (nan|inf|-inf)") as stop:
        run_train([*SHAPES, "--max-steps", "5", "--lr", "1e30", "--warmup", "1", "--overwrite"], out, ck)
    assert "lower --lr" in str(stop.value)
    assert files(out, ck) == kept


def files(*folders):
    return {p.name: p.read_bytes() for folder in folders for p in folder.iterdir()}


def test_a_fresh_run_over_an_earlier_one_stops_unless_told_to_overwrite(trained, tmp_path):
    out, ck = copy_run(trained, tmp_path)
    kept = files(out, ck)
    for folders, named in (([out, tmp_path / "ck0"], out), ([tmp_path / "w0", ck], ck)):  # weights, or checkpoint
        with pytest.raises(SystemExit, match="already exist: --resume continues that run, --overwrite") as stop:
            run_train([*SHAPES, "--max-steps", "2"], *folders)
        assert str(named) in str(stop.value)
    assert files(out, ck) == kept and not (tmp_path / "w0").exists() and not (tmp_path / "ck0").exists()
    run_train([*SHAPES, "--max-steps", "2", "--overwrite"], out, ck)
    assert torch.load(ck / f"{NAME}.pt", weights_only=True)["step"] == 2
    assert files(out, ck) != kept


def test_an_interrupt_writes_a_checkpoint_keeps_the_weights_and_resumes(trained, tmp_path, monkeypatch):
    out, ck = copy_run(trained, tmp_path)
    weights_before = (out / f"{NAME}.safetensors").read_bytes()
    real = train.lr_at

    def interrupt_at_step_7(step, *args):
        if step == 7:
            raise KeyboardInterrupt
        return real(step, *args)

    monkeypatch.setattr(train, "lr_at", interrupt_at_step_7)
    with pytest.raises(SystemExit, match="interrupted at step 7: checkpoint written"):
        run_train([*SHAPES, "--max-steps", "8", "--resume"], out, ck)
    assert (out / f"{NAME}.safetensors").read_bytes() == weights_before  # no epoch ended: untouched
    assert torch.load(ck / f"{NAME}.pt", weights_only=True)["step"] == 7
    monkeypatch.setattr(train, "lr_at", real)
    run_train([*SHAPES, "--max-steps", "8", "--resume"], out, ck)
    assert torch.load(ck / f"{NAME}.pt", weights_only=True)["step"] == 8


@pytest.mark.slow
def test_sigterm_writes_a_checkpoint_like_ctrl_c(tmp_path):
    """A training in the background ignores Ctrl-C; `kill` (SIGTERM) must checkpoint too."""
    ck = tmp_path / "ck"
    proc = subprocess.Popen([sys.executable, "train.py", *SHAPES, "--epochs", "100000", "--out", str(tmp_path / "w"),
                             "--checkpoint-dir", str(ck)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    seen = b""
    while b"epoch 1/" not in seen:  # in the training loop
        chunk = os.read(proc.stdout.fileno(), 4096)
        assert chunk, seen.decode()
        seen += chunk
    proc.send_signal(signal.SIGTERM)
    seen += proc.communicate(timeout=120)[0]
    assert proc.returncode == 1 and b"checkpoint written to" in seen, seen.decode()[-2000:]
    step = torch.load(ck / f"{NAME}.pt", weights_only=True)["step"]
    assert f"interrupted at step {step}:".encode() in seen


def test_a_full_disk_stops_with_a_message_and_leaves_the_earlier_files_intact(trained, tmp_path, monkeypatch):
    import pixelcnn.weights

    out, ck = copy_run(trained, tmp_path)
    kept = files(out, ck)

    def full(obj, path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(train.torch, "save", full)
    monkeypatch.setattr(pixelcnn.weights, "save_file", full)
    with pytest.raises(SystemExit, match="No space left on device.*intact"):
        run_train([*SHAPES, "--max-steps", "8", "--resume"], out, ck)  # an epoch ends: it tries to write
    assert files(out, ck) == kept  # and no .part file is left behind


@pytest.mark.parametrize("args", [["--epochs", "many"], ["--model", "resnet"], ["--dataset", "cifar"], ["--frobnicate"],
                                  ["--eval-every", "0"]])
def test_a_bad_flag_stops_before_touching_anything(trained, tmp_path, args, capsys):
    out, ck = copy_run(trained, tmp_path)
    kept = files(out, ck)
    with pytest.raises(SystemExit) as stop:
        run_train([*SHAPES, "--resume", *args], out, ck)
    assert stop.value.code == 2 and "error:" in capsys.readouterr().err
    assert files(out, ck) == kept


def test_a_batch_larger_than_the_training_set_stops_with_a_message(tmp_path):
    with pytest.raises(SystemExit, match="--batch-size 32 is more than the 16 training images"):
        run_train([*SHAPES, "--train-limit", "16"], tmp_path / "w", tmp_path / "ck")


BAD_SETS = [  # (--set values, what the usage error says)
    (["filters"], "expects KEY=VALUE, got 'filters'"),
    (["filters="], "expects KEY=VALUE"),
    (["filters=1.5"], "filters takes an integer, got '1.5'"),
    (["filters=abc"], "filters takes an integer, got 'abc'"),
    (["filters=0"], "filters must be at least 1, got 0"),
    (["layers=-2"], "layers must be at least 1, got -2"),
    (["kernel=4"], "kernel must be odd"),
    (["kernel=1"], "kernel must be at least 3, got 1"),
    (["classes=-1"], "classes must be at least 0"),
    (["split=maybe"], "split is true or false, got 'maybe'"),
    (["nosuch=1"], "nosuch is not a model option; the options are filters, layers, kernel, split"),
    *(([f"{key}=3"], f"{key} is fixed by --model and --dataset; the options are filters")
      for key in ("model", "dataset", "channels", "height", "width", "levels")),
    (["classes=3"], "pixelcnn cannot be class-conditional"),  # the constructor's ValueError
]


@pytest.mark.parametrize("values, message", BAD_SETS, ids=[" ".join(v) for v, _ in BAD_SETS])
def test_a_bad_set_option_is_a_usage_error(tmp_path, capsys, values, message):
    with pytest.raises(SystemExit) as stop:
        run_train([*SHAPES, "--set", *values], tmp_path / "w", tmp_path / "ck")
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "usage:" in err and f"error: --set: {message}" in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "w").exists() and not (tmp_path / "ck").exists()


def test_a_bad_set_option_on_the_command_line_prints_no_traceback():
    result = subprocess.run([sys.executable, "train.py", *SHAPES, "--set", "width=3"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "error: --set: width is fixed by --model and --dataset" in result.stderr
    assert "Traceback" not in result.stderr


def test_set_options_are_parsed_into_the_config():
    assert training.model_options(["filters=32", "layers=3", "kernel=5", "split=False", "one_hot=TRUE"]) == \
        {"filters": 32, "layers": 3, "kernel": 5, "split": False, "one_hot": True}


@pytest.mark.parametrize("forced, device, cpu_bf16, expected", [
    (None, "cuda", False, True),  # a GPU: bf16
    (None, "cpu", True, True),  # a CPU with native bf16
    (None, "cpu", False, False),  # a CPU without: emulated bf16 is slower than fp32
    (None, "mps", True, False),
    (True, "cpu", False, True),  # --bf16 and --no-bf16 decide
    (False, "cuda", True, False),
])
def test_bf16_by_default_only_where_the_device_computes_it_natively(forced, device, cpu_bf16, expected):
    assert training.use_bf16(forced, device, cpu_bf16) is expected


@pytest.mark.parametrize("flags, native", [
    ("fpu sse2 avx2 avx512f avx512bw avx512vl avx512_vnni", False),  # AVX-512 alone: oneDNN converts, slowly
    ("fpu avx2 avx512f avx512bw avx512_bf16 avx512_vnni", True),
    ("fpu avx2 avx512f amx_bf16 amx_tile", True),
    ("fpu sse2 avx2", False),
])
def test_native_bf16_is_read_from_the_cpu_flags(tmp_path, flags, native):
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nmodel name\t: some cpu\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    assert training.cpu_has_bf16(info) is native


@pytest.mark.parametrize("flags", [[], ["--bf16"], ["--no-bf16"]])
def test_the_progress_line_names_the_precision(tmp_path, capsys, flags):
    run_train([*SHAPES, "--max-steps", "1", "--samples", "0", *flags], tmp_path / "w", tmp_path / "ck")
    bf16 = {"--bf16": True, "--no-bf16": False}.get(flags[0]) if flags else training.use_bf16(None, "cpu")
    assert f"steps, {'bf16 autocast' if bf16 else 'fp32'} on cpu with 1 threads" in capsys.readouterr().out


def test_a_checkpoint_holds_the_run_state_and_loads_back(tmp_path):
    torch.manual_seed(0)
    net = pixelcnn.build("pixelcnn", "shapes", filters=8, layers=1, kernel=3)
    opt = torch.optim.Adam(net.parameters())
    x = datasets.load("shapes", "test")[0][:4].long()
    training.train_step(net, opt, x, None, 1e-3, bf16=False)
    state = training.RunState(net, opt, step=1, epoch=0, offset=1, best=0.5, history=[{"epoch": 0.1, "step": 1}],
                              steps=[[1, 0.7]], started_from={"weights": "w/a.safetensors", "command": "train.py"})
    state.save(tmp_path / "ck.pt")
    ck = torch.load(tmp_path / "ck.pt", weights_only=True)
    assert json.loads(ck["history"]) == state.history and json.loads(ck["steps"]) == state.steps
    other = pixelcnn.build("pixelcnn", "shapes", filters=8, layers=1, kernel=3)
    back = training.RunState.load(tmp_path / "ck.pt", other, torch.optim.Adam(other.parameters()))
    assert (back.step, back.epoch, back.offset, back.best, back.history, back.steps, back.started_from) == (
        1, 0, 1, 0.5, state.history, state.steps, state.started_from)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), other.state_dict().values()))
    assert back.opt.state_dict()["state"][0]["step"] == 1
    wider = pixelcnn.build("pixelcnn", "shapes", filters=4, layers=1, kernel=3)
    with pytest.raises(ValueError, match="another model config"):
        training.RunState.load(tmp_path / "ck.pt", wider, torch.optim.Adam(wider.parameters()))


@pytest.mark.mnist
def test_mnist_end_to_end(tmp_path):
    """The real data path: MNIST from $PIXELCNN_DATA (set by conftest), hash-checked."""
    run_train(["--model", "pixelcnn", "--dataset", "mnist", *TINY, "--max-steps", "2", "--train-limit", "128",
               "--test-limit", "32", "--batch-size", "32", "--samples", "1", "--threads", "1", "--device", "cpu",
               "--no-bf16"], tmp_path / "w", tmp_path / "ck")
    facts = json.loads((tmp_path / "w" / "pixelcnn_mnist.json").read_text())
    assert facts["step"] == 2 and math.isfinite(facts["test_nats_per_dim"])
    assert "entropy_bound_nats_per_image" not in facts
    assert pixelcnn.load("pixelcnn", "mnist", weights_dir=tmp_path / "w").image_shape == (1, 28, 28)


def test_missing_mnist_stops_with_a_hint(tmp_path):
    with pytest.raises(SystemExit, match="--data-dir"):
        run_train(["--model", "pixelcnn", "--dataset", "mnist", *TINY, "--data-dir", str(tmp_path / "none")],
                  tmp_path / "w", tmp_path / "ck")


def test_help_mentions_every_flag():
    flags = set(re.findall(r'add_argument\(\s*"(--[a-z0-9-]+)"', (REPO / "train.py").read_text()))
    assert {"--model", "--dataset", "--epochs", "--batch-size", "--lr", "--warmup", "--data-dir", "--download",
            "--out", "--checkpoint-dir", "--checkpoint-every", "--resume", "--overwrite", "--bf16", "--no-bf16",
            "--threads", "--device", "--seed", "--max-steps", "--train-limit", "--test-limit", "--samples",
            "--set"} <= flags
    result = subprocess.run([sys.executable, "train.py", "--help"], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    for flag in flags:
        assert flag in result.stdout, flag


def test_evaluate_recomputes_the_test_nll_of_shipped_weights(trained, capsys):
    from pixelcnn import evaluate

    out = trained[0]
    full = evaluate.main(["--model", "pixelcnn", "--dataset", "shapes", "--weights-dir", str(out)])
    printed = capsys.readouterr().out
    assert f"{full:.4f} nats/dim" in printed and "entropy bound" in printed
    facts = json.loads((out / f"{NAME}.json").read_text())
    net = pixelcnn.load("pixelcnn", "shapes", out)
    test, _ = datasets.load("shapes", "test")
    # train.py evaluated its first 64 test images (--test-limit 64) before the fp16 rounding
    assert evaluate.nll(net, test[:64]) == pytest.approx(facts["test_nats_per_dim"], rel=1e-2)


def test_evaluate_can_write_the_bits_per_dim_range_into_the_facts(trained, tmp_path):
    from pixelcnn import analysis, evaluate

    out, _ = copy_run(trained, tmp_path)
    evaluate.main(["--model", "pixelcnn", "--dataset", "shapes", "--weights-dir", str(out), "--update-facts"])
    q = json.loads((out / f"{NAME}.json").read_text())["test_bits_per_dim_percentiles"]
    assert list(q) == ["5", "25", "50", "75", "95"] and list(q.values()) == sorted(q.values())
    net = pixelcnn.load("pixelcnn", "shapes", out)
    bpd = analysis.bits_per_dim(net, datasets.load("shapes", "test")[0][:evaluate.RANGE_IMAGES])
    assert q["50"] == pytest.approx(bpd.median().item(), rel=1e-3)
    assert json.loads((out / f"{NAME}.json").read_text())["step"] == 5  # the rest kept


@pytest.mark.slow
def test_two_cpu_processes_with_gloo_train_like_one(tmp_path):
    """torchrun, 2 processes, DistributedDataParallel over gloo: each reads its half of every
    batch; the result matches one process on the same batches within noise (BatchNorm sees
    half batches), only rank 0 speaks and writes, and the weights load."""
    args = [*SHAPES, "--train-limit", "512", "--test-limit", "128", "--max-steps", "8", "--samples", "2"]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "train.py", *args, "--out", str(tmp_path / "w2"), "--checkpoint-dir", str(tmp_path / "c2")],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-2000:]
    assert two.stdout.count("2 processes") == 1 and two.stdout.count("test NLL") == 1  # rank 0 only
    run_train(args, tmp_path / "w1", tmp_path / "c1")
    facts = [json.loads((tmp_path / w / f"{NAME}.json").read_text()) for w in ("w2", "w1")]
    assert facts[0]["step"] == facts[1]["step"] == 8
    assert facts[0]["test_nats_per_dim"] == pytest.approx(facts[1]["test_nats_per_dim"], rel=0.01)
    net = pixelcnn.load("pixelcnn", "shapes", weights_dir=tmp_path / "w2")
    assert net.sample(1, seed=0).shape == (1, 1, 20, 20)
    assert torch.load(tmp_path / "c2" / f"{NAME}.pt", weights_only=True)["step"] == 8


def test_a_batch_that_does_not_split_across_the_processes_stops(tmp_path, monkeypatch):
    monkeypatch.setattr(train, "distributed", lambda device: (0, 3, torch.device("cpu")))
    with pytest.raises(SystemExit, match="does not split evenly across 3 processes"):
        run_train([*SHAPES, "--max-steps", "1"], tmp_path / "w", tmp_path / "ck")


def test_init_starts_from_weights_and_keeps_them_until_beaten(trained, tmp_path, capsys):
    """--init: the run's first step starts from the weights given (a checkpoint lost, the shipped
    weights go on training), and they stay the best until a test NLL beats theirs."""
    init, _ = copy_run(trained, tmp_path / "init")
    start = pixelcnn.load("pixelcnn", "shapes", init)
    facts = json.loads((init / f"{NAME}.json").read_text())
    (init / f"{NAME}.json").write_text(json.dumps({**facts, "test_nats_per_dim": 1e9}))  # beatable
    seen = []
    original = train.train_step

    def spy(model, opt, x, label, lr, bf16):  # the weights the first step starts from
        if not seen:
            seen.append({k: v.clone() for k, v in getattr(model, "module", model).state_dict().items()})
        return original(model, opt, x, label, lr, bf16)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train, "train_step", spy)
        run_train([*SHAPES, "--max-steps", "2", "--init", str(init / f"{NAME}.safetensors")], tmp_path / "w",
                  tmp_path / "ck")
    assert "starting from the weights in" in capsys.readouterr().out
    assert all(torch.equal(seen[0][k].float(), v.float()) for k, v in start.state_dict().items())
    beaten = pixelcnn.load("pixelcnn", "shapes", tmp_path / "w")  # the first evaluation's NLL is the best yet
    assert not all(torch.equal(beaten.state_dict()[k], v) for k, v in start.state_dict().items())
    lineage = json.loads((tmp_path / "w" / f"{NAME}.json").read_text())["started_from"]  # how to retrain it
    assert lineage["weights"] == str(init / f"{NAME}.safetensors")
    assert (lineage["command"], lineage["history"]) == (facts["command"], facts["history"])
    run_train([*SHAPES, "--max-steps", "4", "--resume"], tmp_path / "w5", tmp_path / "ck")  # resumed, it says it too
    assert json.loads((tmp_path / "w5" / f"{NAME}.json").read_text())["started_from"] == lineage

    (init / f"{NAME}.json").write_text(json.dumps({**facts, "test_nats_per_dim": 1e-9}))  # unbeatable
    run_train([*SHAPES, "--max-steps", "2", "--init", str(init / f"{NAME}.safetensors")], tmp_path / "w2",
              tmp_path / "ck2")
    kept = pixelcnn.load("pixelcnn", "shapes", tmp_path / "w2")  # the weights it started from, not its own
    assert all(torch.equal(kept.state_dict()[k], v) for k, v in start.state_dict().items())
    with pytest.raises(SystemExit, match="give one of them"):
        run_train([*SHAPES, "--init", str(init / f"{NAME}.safetensors"), "--resume"], tmp_path / "w3", tmp_path / "ck3")
    with pytest.raises(SystemExit, match="--init"):
        run_train([*SHAPES, "--init", str(tmp_path / "none.safetensors")], tmp_path / "w4", tmp_path / "ck4")


def test_init_grows_a_gated_pixelcnn_a_summary(tmp_path, capsys):
    """--init from a Gated PixelCNN into one with --set summary=true: every tensor the weights
    have is loaded, the summaries start fresh (their output convs at zero), so the grown
    model starts with the same likelihoods; weights of another shape are still refused."""
    gated = ["--model", "gated", "--dataset", "shapes", *SHAPES[8:]]
    tiny = ["--set", "filters=8", "layers=2", "kernel=3"]
    run_train([*gated, *tiny, "--max-steps", "2"], tmp_path / "parent", tmp_path / "ck")
    parent_file = tmp_path / "parent" / "gated_shapes.safetensors"
    parent = pixelcnn.load("gated", "shapes", tmp_path / "parent")
    seen = []
    original = train.train_step

    def spy(model, opt, x, label, lr, bf16):  # the model the first step starts from, and its batch
        if not seen:
            seen.append((pixelcnn.from_config(model.config.to_dict()), x.clone()))
            seen[0][0].load_state_dict(model.state_dict())
        return original(model, opt, x, label, lr, bf16)

    capsys.readouterr()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train, "train_step", spy)
        run_train([*gated, *tiny, "summary=true", "--max-steps", "1", "--init", str(parent_file)],
                  tmp_path / "w", tmp_path / "ck2")
    assert "which lack 8 of this model's tensors (layers.0.summary_in.bias" in capsys.readouterr().out
    grown, x = seen[0]
    assert grown.config.summary and all(torch.equal(grown.state_dict()[k], v) for k, v in parent.state_dict().items())
    assert not grown.layers[0].summary_out.weight.any()
    with torch.no_grad():
        torch.testing.assert_close(grown.eval().log_prob(x), parent.log_prob(x), rtol=0, atol=1e-6)
    with pytest.raises(SystemExit, match="another model"):
        run_train([*gated, "--set", "filters=16", "layers=2", "kernel=3", "--max-steps", "1",
                   "--init", str(parent_file)], tmp_path / "w3", tmp_path / "ck3")
