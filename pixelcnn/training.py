"""The parts of a training run: the training step and learning-rate schedule (shared by
train.py and the training benchmark), the choice of precision, joining the processes under
torchrun, the state of a run (which is what a checkpoint holds, checked as it loads), the
command line's values checked (the model options that `--set` may change, and the argparse
types of the other flags), and the loss curve."""
import argparse
import json
import math
import os
import pickle
import warnings
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.nn.functional as F

from . import FIXED, OPTIONS, check_option, from_config
from .files import write_atomic
from .weights import non_finite


def lr_at(step, total, peak, warmup):
    """Linear warm-up to `peak` over `warmup` steps, then cosine decay to 0 at `total`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


def cpu_has_bf16(cpuinfo="/proc/cpuinfo"):
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX). Without it, bf16 autocast on
    the CPU is emulated, and trains slower than fp32. oneDNN's own answer is yes on any AVX-512
    CPU, where it converts (3x slower than fp32 measured on one), so on Linux the CPU's flags
    decide; elsewhere oneDNN does."""
    try:
        with open(cpuinfo) as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), None)
        if flags is not None:
            return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:
        pass
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def use_bf16(forced, device_type, cpu_bf16=None):
    """Whether to train under bf16 autocast: `forced` (True or False) where given; else on a GPU,
    and on a CPU only where it has native bf16 (`cpu_bf16`, default: ask this CPU)."""
    if forced is not None:
        return forced
    if device_type == "cuda":
        return True
    return device_type == "cpu" and (cpu_has_bf16() if cpu_bf16 is None else cpu_bf16)


def precision(bf16):
    """How a progress line names the precision."""
    return "bf16 autocast" if bf16 else "fp32"


def train_step(model, opt, x, label, lr, bf16):
    """One optimiser step at learning rate `lr` on a batch of levels x (B, C, H, W) (long) and,
    for a class-conditional model, its labels (B,) (else None).

    Returns the batch's mean loss in nats/dim (a detached scalar tensor), averaged over the
    processes when torch.distributed is initialised. Raises FloatingPointError, before touching
    the weights, where that loss is not finite.
    """
    for g in opt.param_groups:
        g["lr"] = lr
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = model(x, label)
    loss = F.cross_entropy(logits.float(), x)
    mean = loss.detach().clone()
    if dist.is_initialized():  # the loss over every process's images, the same in all of them
        dist.all_reduce(mean)
        mean /= dist.get_world_size()
    if not torch.isfinite(mean):
        raise FloatingPointError(f"loss became {mean.item()}")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return mean


def distributed(device):
    """(rank, processes, device): under torchrun (WORLD_SIZE > 1) join the process group,
    NCCL with one GPU per process or gloo on CPUs; else (0, 1, device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = torch.device(device)
    if world == 1:
        return 0, 1, device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), world, device


@dataclass
class RunState:
    """A training run: the model and optimiser, how far it has got and what it has measured.
    This is exactly what a checkpoint holds (to_checkpoint / from_checkpoint)."""
    net: torch.nn.Module
    opt: torch.optim.Optimizer
    step: int = 0  # optimiser steps taken
    epoch: int = 0  # whole epochs done
    offset: int = 0  # steps done into the current epoch
    best: float = math.inf  # the lowest test NLL so far, nats/dim: the weights written
    history: list = field(default_factory=list)  # one dict per test evaluation
    steps: list = field(default_factory=list)  # (step, training loss) for every step
    started_from: dict | None = None  # with --init: the weights it started from and their run (train.parent)

    def to_checkpoint(self):
        """The checkpoint: tensors and plain values, which torch.load(weights_only=True) reads."""
        return {"config": self.net.config.to_dict(), "model": self.net.state_dict(), "opt": self.opt.state_dict(),
                "step": self.step, "epoch": self.epoch, "offset": self.offset, "best": self.best,
                # JSON text: a list of dicts or tuples is not what weights_only loading takes
                "history": json.dumps(self.history), "steps": json.dumps(self.steps),
                "started_from": json.dumps(self.started_from)}

    @classmethod
    def from_checkpoint(cls, ck, net, opt):
        """The run a checkpoint holds, its weights and optimiser state loaded into `net` and `opt`.
        Raises ValueError, saying what is wrong, unless it is a checkpoint of this model config
        whose numbers are all finite (`net` and `opt` may then be partly loaded: discard them)."""
        if not isinstance(ck, dict) or CHECKPOINT_KEYS - ck.keys():
            raise ValueError(f"it is not a training checkpoint (one holds {', '.join(sorted(CHECKPOINT_KEYS))})")
        try:
            with torch.device("meta"):  # built only to compare configs: no memory, no random numbers
                config = from_config(ck["config"]).config
        except (TypeError, ValueError, RuntimeError) as e:
            raise ValueError(f"its model config is not one this version builds ({e})") from None
        if config != net.config:  # from_config: options added since take their default
            raise ValueError(f"the checkpoint is of another model config: {ck['config']}")
        check_tensors(ck["model"], {k: v.shape for k, v in net.state_dict().items()}, "weights")
        net.load_state_dict(ck["model"])
        try:
            opt.load_state_dict(ck["opt"])
        except (AttributeError, KeyError, TypeError, ValueError, IndexError) as e:
            raise ValueError(f"its optimiser state is not this model's ({type(e).__name__}: {e})") from None
        if any(opt.defaults.keys() - g.keys() for g in opt.param_groups) or not all(map(torch.is_tensor, opt.state)):
            raise ValueError("its optimiser state is not the state of Adam over this model's parameters")
        for p, state in opt.state.items():  # Adam's moments have their parameter's shape; its step is a scalar
            shapes = {k: p.shape if str(k).startswith("exp_avg") else () for k in state}
            check_tensors(state, shapes, "optimiser tensors")
        counters = [ck[k] for k in ("step", "epoch", "offset")]
        if not all(type(n) is int and n >= 0 for n in counters) or not (type(ck["best"]) is float and ck["best"] >= 0):
            raise ValueError(f"its step, epoch, offset and best NLL are not counts and a number: {counters}, "
                             f"{ck['best']!r}")
        history = records(ck, "history", lambda h: isinstance(h, dict) and finite(*h.values()))
        steps = records(ck, "steps", lambda s: isinstance(s, list) and len(s) == 2 and finite(*s))
        try:  # checkpoints written before it have none
            started_from = json.loads(ck.get("started_from", "null"))
        except (TypeError, ValueError):
            started_from = False
        if not (started_from is None or isinstance(started_from, dict) and "weights" in started_from):
            raise ValueError("its started_from is not JSON text of the weights a run started from")
        return cls(net, opt, *counters, best=ck["best"], history=history, steps=steps, started_from=started_from)

    def save(self, path):
        """Write the checkpoint to `path` atomically."""
        write_atomic(path, lambda tmp: torch.save(self.to_checkpoint(), tmp))

    @classmethod
    def load(cls, path, net, opt):
        """The run checkpointed at `path`, loaded into `net` and `opt` (see from_checkpoint).
        Raises ValueError "<path> is not a usable checkpoint: <why>" for a file that cannot be
        read, is not a checkpoint, or is not a finite one of this model config."""
        try:
            with warnings.catch_warnings():  # a foreign pickle's protocol warning: the error below says more
                warnings.simplefilter("ignore", UserWarning)
                ck = torch.load(path, weights_only=True, map_location=net.device)
        except pickle.UnpicklingError:  # torch's own message suggests weights_only=False: never here
            why = "it holds Python objects besides tensors and plain values, which are not loaded (they could run code)"
        except (OSError, RuntimeError, EOFError) as e:
            if getattr(e, "filename", None):  # the system's: a folder, no permission
                why = f"it cannot be read ({e.strerror})"
            else:  # torch.load's words, on a truncated or foreign file
                why = f"torch.load cannot read it, truncated or foreign ({str(e).split('. ')[0] or 'it ends early'})"
        except Exception as e:  # the unpickler, fed arbitrary bytes, fails in arbitrary ways (IndexError, KeyError...)
            why = f"torch.load cannot read it, truncated or foreign ({type(e).__name__})"
        else:
            try:
                return cls.from_checkpoint(ck, net, opt)
            except ValueError as e:
                why = str(e)
        raise ValueError(f"{path} is not a usable checkpoint: {why}")


CHECKPOINT_KEYS = {"config", "model", "opt", "step", "epoch", "offset", "best", "history", "steps"}


def check_tensors(got, shapes, what):
    """ValueError unless `got` maps the names in `shapes`, and no others, to finite tensors of those shapes."""
    if not isinstance(got, dict) or got.keys() != shapes.keys():
        names = sorted(map(str, shapes.keys() ^ got.keys())) if isinstance(got, dict) else ["all"]
        raise ValueError(f"its {what} are not this model's: {', '.join(names[:3])} differ")
    for name, t in got.items():
        if not torch.is_tensor(t) or t.shape != shapes[name]:
            raise ValueError(f"its {what} are not this model's: {name} is not a tensor of shape {tuple(shapes[name])}")
    bad = non_finite(got)
    if bad is not None:
        raise ValueError(f"its {what} hold non-finite values (NaN or infinity) in {bad}")


def records(ck, key, fits):
    """The list a checkpoint keeps as JSON text under `key`, each item checked by `fits`; ValueError where it is not."""
    try:
        items = json.loads(ck[key])
    except (TypeError, ValueError):
        items = None
    if not isinstance(items, list) or not all(map(fits, items)):
        raise ValueError(f"its {key} is not JSON text of a list of what a run records")
    return items


def finite(*values):
    """Whether every value is a finite int or float (JSON's numbers)."""
    return all(type(v) in (int, float) and math.isfinite(v) for v in values)


def model_options(pairs):
    """The model options that --set's KEY=VALUE pairs give, or a ValueError that says what is allowed
    (pixelcnn.check_option's checks, the ones build makes)."""
    options = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if not value:
            raise ValueError(f"expects KEY=VALUE, got {pair!r}")
        if key not in OPTIONS:
            why = "is fixed by --model and --dataset" if key in FIXED else "is not a model option"
            raise ValueError(f"{key} {why}; the options are {', '.join(OPTIONS)}")
        options[key] = check_option(key, parse_option(key, value))
    return options


def parse_option(key, text):
    """One --set value as a switch (true or false) or an integer, as the option's type is."""
    if OPTIONS[key] is bool:
        if text.lower() not in ("true", "false"):
            raise ValueError(f"{key} is true or false, got {text!r}")
        return text.lower() == "true"
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{key} takes an integer, got {text!r}") from None


# The other flags' argparse types: a bad value is a usage error that says what is allowed.


def whole_number(least, most=None):
    """An argparse type: an integer from `least` (to `most`)."""
    allowed = f"a whole number of at least {least}" if most is None else f"a whole number from {least} to {most}"

    def convert(text):
        try:
            n = int(text)
        except ValueError:
            n = None
        if n is None or n < least or (most is not None and n > most):
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text if n is not None else repr(text)}")
        return n
    return convert


def positive_number(text):
    """An argparse type: a finite number above 0 (nan, inf, 0 and below are refused)."""
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text!r}") from None
    if not math.isfinite(x) or x <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return x


def device_name(text):
    """An argparse type: cpu, or cuda where a CUDA device is visible."""
    if text not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"must be cpu or cuda, got {text!r}")
    if text == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError("cuda, but no CUDA device is visible; use cpu")
    return text
