"""train.py refuses bad input: a bad flag is a usage error (exit 2) that says what is allowed;
a bad checkpoint or output folder a runtime error (exit 1) that names it; never a traceback;
and an earlier run's weights and checkpoint are left byte for byte as they were."""
import json
import math
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import pixelcnn
import train
from helpers import REPO

SHAPES = ["--model", "pixelcnn", "--dataset", "shapes", "--set", "filters=8", "layers=1", "--max-steps", "2",
          "--train-limit", "64", "--test-limit", "32", "--batch-size", "32", "--threads", "1", "--samples", "0",
          "--device", "cpu"]
NAME = "pixelcnn_shapes"


@pytest.fixture(scope="module")
def earlier(tmp_path_factory):
    """An earlier 2-step run (one whole epoch) whose weights and checkpoint every case must leave alone."""
    root = tmp_path_factory.mktemp("earlier")
    train.main([*SHAPES, "--out", str(root / "w"), "--checkpoint-dir", str(root / "ck")])
    return root


@pytest.fixture
def run(earlier, tmp_path, capsys):
    """A copy of the earlier run in tmp_path/w and tmp_path/ck, and a function that runs
    train.main (with these folders unless the flags name others) and returns its exit code
    and what it said on stderr, checking that the copied files are untouched."""
    out, ck = tmp_path / "w", tmp_path / "ck"
    shutil.copytree(earlier / "w", out)
    shutil.copytree(earlier / "ck", ck)

    def run_train(flags, fresh=True):
        kept = files(out, ck)
        folders = [] if "--out" in flags else ["--out", str(out)]
        folders += [] if "--checkpoint-dir" in flags else ["--checkpoint-dir", str(ck)]
        # --overwrite: a fresh run let through would replace the earlier files at its first save
        with pytest.raises(SystemExit) as stop:
            train.main([*SHAPES, *folders, *(["--overwrite"] if fresh else []), *flags])
        said = capsys.readouterr()
        code = stop.value.code
        code, err = (1, code) if isinstance(code, str) else (code, said.err)  # sys.exit("error: ...") exits 1
        assert "Traceback" not in err
        assert files(out, ck) == kept
        return code, err
    run_train.out, run_train.ck = out, ck
    return run_train


def files(*folders):
    return {p: p.read_bytes() for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


USAGE = [  # (flags, what the usage error says)
    (["--epochs", "-1"], "argument --epochs: must be a whole number of at least 1, got -1"),
    (["--epochs", "0"], "argument --epochs: must be a whole number of at least 1, got 0"),
    (["--epochs", "1.5"], "argument --epochs: must be a whole number of at least 1, got '1.5'"),
    (["--batch-size", "-5"], "argument --batch-size: must be a whole number of at least 1, got -5"),
    (["--batch-size", "0"], "argument --batch-size: must be a whole number of at least 1, got 0"),
    (["--max-steps", "0"], "argument --max-steps: must be a whole number of at least 1, got 0"),
    (["--max-steps", "-1"], "argument --max-steps: must be a whole number of at least 1, got -1"),
    (["--lr", "nan"], "argument --lr: must be a finite number above 0, got nan"),
    (["--lr", "inf"], "argument --lr: must be a finite number above 0, got inf"),
    (["--lr", "-1"], "argument --lr: must be a finite number above 0, got -1"),
    (["--lr", "0"], "argument --lr: must be a finite number above 0, got 0"),
    (["--lr", "fast"], "argument --lr: must be a finite number above 0, got 'fast'"),
    (["--warmup", "-1"], "argument --warmup: must be a whole number of at least 0, got -1"),
    (["--threads", "0"], "argument --threads: must be a whole number from 1 to"),
    (["--threads", str(10 * os.cpu_count())], "argument --threads: must be a whole number from 1 to"),
    (["--checkpoint-every", "0"], "argument --checkpoint-every: must be a whole number of at least 1, got 0"),
    (["--eval-every", "0"], "argument --eval-every: must be a whole number of at least 1, got 0"),
    (["--samples", "-1"], "argument --samples: must be a whole number from 0 to 1024, got -1"),
    (["--samples", "100000"], "argument --samples: must be a whole number from 0 to 1024, got 100000"),
    (["--train-limit", "0"], "argument --train-limit: must be a whole number of at least 1, got 0"),
    (["--test-limit", "0"], "argument --test-limit: must be a whole number of at least 1, got 0"),
    (["--train-images", "0"], "argument --train-images: must be a whole number of at least 1, got 0"),
    (["--seed", "-1"], "argument --seed: must be a whole number from 0 to 4294967295, got -1"),
    (["--seed", str(2**64)], "argument --seed: must be a whole number from 0 to 4294967295"),
    (["--device", "tpu"], "argument --device: must be cpu or cuda, got 'tpu'"),
    (["--device", ""], "argument --device: must be cpu or cuda, got ''"),
    (["--device", "cuda"], "argument --device: cuda, but no CUDA device is visible; use cpu"),
    (["--model", "resnet"], "argument --model: invalid choice: 'resnet'"),
    (["--dataset", "cifar"], "argument --dataset: invalid choice: 'cifar'"),
    (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["--push-to-hub", "not a repo"], "--push-to-hub: Repo id must"),
    (["--set", "filters=abc"], "--set: filters takes an integer, got 'abc'"),
    (["--set", "nosuch=1"], "--set: nosuch is not a model option"),
    (["--set", "filters=0"], "--set: filters must be at least 1, got 0"),
    (["--set", "filters=-4"], "--set: filters must be at least 1, got -4"),
    (["--set", "kernel=4"], "--set: kernel must be odd"),
    (["--set", "classes=5"], "--set: pixelcnn cannot be class-conditional"),  # an unconditional model
]


@pytest.mark.parametrize("flags, message", USAGE, ids=[" ".join(f) for f, _ in USAGE])
def test_a_bad_flag_is_a_usage_error_that_says_what_is_allowed(run, monkeypatch, flags, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # --device cuda: as on a machine without one
    code, err = run(flags)
    assert code == 2 and "usage:" in err and f"error: {message}" in err, err


def test_cuda_is_a_device_where_one_is_visible(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert train.parse_args([*SHAPES[:4], "--device", "cuda"]).device == "cuda"


def edit(change):
    """A checkpoint case: change(ck) edits the earlier run's checkpoint, loaded as a dict, before it is saved back."""
    def apply(path):
        ck = torch.load(path, weights_only=True)
        change(ck)
        torch.save(ck, path)
    return apply


def first_weight(ck):
    return next(k for k, v in ck["model"].items() if v.is_floating_point())


def another_models(ck):
    net = pixelcnn.build("gated", "shapes", filters=8, layers=1)
    ck.update(config=net.config.to_dict(), model=net.state_dict())


CHECKPOINTS = [  # (what is done to the earlier run's checkpoint, what the error says after its name)
    ("truncated", lambda p: p.write_bytes(p.read_bytes()[:p.stat().st_size // 2]),
     "torch.load cannot read it, truncated or foreign ("),
    ("its first 100 bytes", lambda p: p.write_bytes(p.read_bytes()[:100]), "torch.load cannot read it, truncated"),
    ("zero bytes", lambda p: p.write_bytes(b""), "torch.load cannot read it, truncated or foreign (it ends early)"),
    # seeded: random bytes trip torch's unpickler in different ways (a refused opcode, an IndexError, bad UTF-8)
    ("random bytes", lambda p: p.write_bytes(random.Random(0).randbytes(4096)),
     "it holds Python objects besides tensors"),
    ("other random bytes", lambda p: p.write_bytes(random.Random(2).randbytes(4096)),
     "torch.load cannot read it, truncated or foreign (IndexError)"),
    ("random bytes that are not UTF-8", lambda p: p.write_bytes(random.Random(195).randbytes(4096)),
     "torch.load cannot read it, truncated or foreign (UnicodeDecodeError)"),
    ("text", lambda p: p.write_text("checkpoint\n"), "it holds Python objects besides tensors"),
    ("a folder", lambda p: (p.unlink(), p.mkdir()), "it cannot be read (Is a directory)"),
    ("a plain dict of other things", lambda p: torch.save({"a": 1, "b": torch.ones(2)}, p),
     "it is not a training checkpoint (one holds best, config, epoch"),
    ("a list", lambda p: torch.save([1, 2, 3], p), "it is not a training checkpoint"),
    ("a model's bare state_dict", lambda p: torch.save(pixelcnn.build("pixelcnn", "shapes").state_dict(), p),
     "it is not a training checkpoint"),
    ("a pickled model", lambda p: torch.save(pixelcnn.build("pixelcnn", "shapes", filters=8, layers=1), p),
     "it holds Python objects besides tensors and plain values, which are not loaded (they could run code)"),
    ("another model's checkpoint", edit(another_models), "the checkpoint is of another model config"),
    ("no optimiser state", edit(lambda ck: ck.pop("opt")), "it is not a training checkpoint"),
    ("no history", edit(lambda ck: ck.pop("history")), "it is not a training checkpoint"),
    ("a config that is not a dict", edit(lambda ck: ck.update(config="pixelcnn")),
     "its model config is not one this version builds"),
    ("a config with an unknown option", edit(lambda ck: ck["config"].update(depth=3)),
     "its model config is not one this version builds"),
    ("weights of the wrong shape", edit(lambda ck: ck["model"].update({first_weight(ck): torch.zeros(3, 3)})),
     "its weights are not this model's:"),
    ("a weight missing", edit(lambda ck: ck["model"].pop(first_weight(ck))), "its weights are not this model's:"),
    ("a weight too many", edit(lambda ck: ck["model"].update(extra=torch.zeros(1))),
     "its weights are not this model's: extra differ"),
    ("weights that are not tensors", edit(lambda ck: ck.update(model=[1, 2])), "its weights are not this model's"),
    ("NaN weights", edit(lambda ck: ck["model"][first_weight(ck)].fill_(math.nan)),
     "its weights hold non-finite values (NaN or infinity) in"),
    ("infinite weights", edit(lambda ck: ck["model"][first_weight(ck)].fill_(-math.inf)),
     "its weights hold non-finite values"),
    ("a NaN in the optimiser's moments", edit(lambda ck: ck["opt"]["state"][0]["exp_avg_sq"].fill_(math.nan)),
     "its optimiser tensors hold non-finite values (NaN or infinity) in exp_avg_sq"),
    ("optimiser moments of the wrong shape", edit(lambda ck: ck["opt"]["state"][0].update(exp_avg=torch.zeros(2))),
     "its optimiser tensors are not this model's: exp_avg is not a tensor of shape"),
    ("another optimiser's state", edit(lambda ck: ck.update(opt=torch.optim.SGD([torch.zeros(1)]).state_dict())),
     "its optimiser state is not this model's"),
    ("an optimiser state that is not a dict", edit(lambda ck: ck.update(opt="adam")),
     "its optimiser state is not this model's"),
    ("a negative step", edit(lambda ck: ck.update(step=-1)), "its step, epoch, offset and best NLL are not"),
    ("a step that is text", edit(lambda ck: ck.update(step="five")), "its step, epoch, offset and best NLL"),
    ("a NaN best NLL", edit(lambda ck: ck.update(best=math.nan)), "its step, epoch, offset and best NLL"),
    ("a history that is not JSON", edit(lambda ck: ck.update(history="[{'epoch': 1")),
     "its history is not JSON text of a list of what a run records"),
    ("a history of other things", edit(lambda ck: ck.update(history=json.dumps([1, 2]))),
     "its history is not JSON text"),
    ("a history without its NLL", edit(lambda ck: ck.update(history=json.dumps([{"epoch": 1, "step": 2}]))),
     "its history lacks images_per_s, test_nats_per_dim, test_nats_per_image"),
    ("a history with a NaN NLL", edit(lambda ck: ck.update(history=json.dumps([
        dict.fromkeys(train.RECORDED, 1) | {"test_nats_per_dim": math.nan}]))), "its history is not JSON text"),
    ("steps that are not JSON", edit(lambda ck: ck.update(steps="[[1, 0.5]")), "its steps is not JSON text"),
    ("steps with a NaN loss", edit(lambda ck: ck.update(steps=json.dumps([[1, math.nan]]))),
     "its steps is not JSON text"),
]


@pytest.mark.parametrize("change, message", [c[1:] for c in CHECKPOINTS], ids=[c[0] for c in CHECKPOINTS])
def test_resuming_from_a_bad_checkpoint_is_an_error_that_names_it(run, change, message):
    path = run.ck / f"{NAME}.pt"
    change(path)
    code, err = run(["--resume"], fresh=False)
    assert code == 1 and err.startswith(f"error: {path} is not a usable checkpoint: ") and message in err, err


def test_resuming_an_epoch_longer_than_this_runs_is_an_error(run):
    edit(lambda ck: ck.update(offset=5))(run.ck / f"{NAME}.pt")  # 5 steps into an epoch; this run's have 2
    code, err = run(["--resume", "--max-steps", "20"], fresh=False)
    assert code == 1 and "is 5 steps into an epoch, but this run's epochs have 2 steps" in err, err


def test_a_run_with_too_few_training_images_for_one_batch_is_an_error(run):
    code, err = run(["--batch-size", "128"])
    assert code == 1 and "--batch-size 128 is more than the 64 training images" in err


def test_a_count_of_images_for_a_fixed_dataset_is_an_error(run):
    code, err = run(["--dataset", "mnist", "--train-images", "96"])
    assert code == 1 and "mnist is a fixed dataset" in err


def out_folder_cases(tmp_path):
    """(flag, folder, what the error says) for output folders the run cannot use."""
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "taken" / f"{NAME}.safetensors").mkdir(parents=True)
    cases = [("--out", tmp_path / "a-file", "is a file, not a folder"),
             ("--checkpoint-dir", tmp_path / "a-file", "is a file, not a folder"),
             ("--out", tmp_path / "a-file" / "under", "cannot be made (Not a directory)"),
             ("--checkpoint-dir", tmp_path / "a-file" / "under" / "deeper", "cannot be made (Not a directory)"),
             ("--out", tmp_path / "taken", f"{tmp_path / 'taken' / NAME}.safetensors is a folder, where the run "
                                          "would write a file")]
    if Path("/proc/self").is_dir():  # a place where no one, root included, may make a folder
        cases.append(("--out", Path("/proc/pixelcnn-runs"), "cannot be made"))
    return cases


def test_an_output_folder_that_cannot_be_used_is_an_error_before_any_training(run, tmp_path):
    for flag, folder, message in out_folder_cases(tmp_path):
        code, err = run([flag, str(folder)])  # the other folder: the earlier run's, which training would change
        assert code == 1 and err.startswith("error: ") and message in err, (flag, folder, err)
        assert str(folder) in err
    assert (tmp_path / "a-file").read_text() == "not a folder"


def test_an_output_folder_the_system_says_is_read_only_is_an_error_before_any_training(run, tmp_path, monkeypatch):
    locked, real = tmp_path / "locked", os.access
    locked.mkdir()
    monkeypatch.setattr(train.os, "access", lambda path, mode: Path(path) != locked and real(path, mode))  # read-only
    code, err = run(["--checkpoint-dir", str(locked)])
    assert code == 1 and f"error: --checkpoint-dir {locked} is read-only" in err
    assert not list(locked.iterdir())


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in read-only folders")
def test_a_read_only_output_folder_is_an_error_before_any_training(run, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, err = run(["--out", str(locked)])
        assert code == 1 and f"--out {locked} is read-only" in err
        code, err = run(["--out", str(locked / "sub")])
        assert code == 1 and "cannot be made (Permission denied)" in err
    finally:
        locked.chmod(0o700)


def test_resuming_a_run_that_has_trained_its_steps_writes_nothing(run, capsys):
    for steps in ("2", "1"):  # the checkpoint is at step 2: at the end of this run, or past it
        kept = files(run.out, run.ck)
        train.main([*SHAPES, "--max-steps", steps, "--resume", "--out", str(run.out), "--checkpoint-dir", str(run.ck)])
        assert f"nothing to do: {run.ck / NAME}.pt is at step 2, where this run ends; nothing written" in \
            capsys.readouterr().out
        assert files(run.out, run.ck) == kept


@pytest.mark.parametrize("flags, message", [
    (["--lr", "nan"], "error: argument --lr: must be a finite number above 0, got nan"),
    (["--device", "tpu"], "error: argument --device: must be cpu or cuda, got 'tpu'"),
    (["--resume"], "is not a usable checkpoint: torch.load cannot read it, truncated or foreign (it ends early)"),
    (["--overwrite", "--out", "FILE"], "is a file, not a folder"),
])
def test_on_the_command_line_no_traceback_reaches_stderr(earlier, tmp_path, flags, message):
    out, ck = tmp_path / "w", tmp_path / "ck"
    shutil.copytree(earlier / "ck", ck)
    (ck / f"{NAME}.pt").write_bytes(b"")
    (tmp_path / "file").write_text("")
    flags = [str(tmp_path / "file") if f == "FILE" else f for f in flags]
    result = subprocess.run([sys.executable, "train.py", *SHAPES, "--out", str(out), "--checkpoint-dir", str(ck),
                             *flags], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == (2 if "argument" in message else 1), result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert (ck / f"{NAME}.pt").read_bytes() == b"" and not out.exists()


def test_a_push_that_fails_is_an_error_and_keeps_what_was_written(tmp_path, monkeypatch):
    from huggingface_hub.errors import OfflineModeIsEnabled

    def offline(*args, **kwargs):
        raise OfflineModeIsEnabled("offline mode is enabled")
    monkeypatch.setattr(train.weights, "push", offline)
    with pytest.raises(SystemExit, match=f"error: could not push to someone/tiny .*offline.* in {tmp_path / 'w'}"):
        train.main([*SHAPES, "--out", str(tmp_path / "w"), "--checkpoint-dir", str(tmp_path / "ck"),
                    "--push-to-hub", "someone/tiny"])
    assert pixelcnn.load("pixelcnn", "shapes", tmp_path / "w").config.filters == 8
