"""Train a PixelCNN-family model on one dataset; write its weights, a sample grid and a loss curve.

    python train.py --model pixelcnn --dataset mnist --data-dir ../shared/data --out runs

Checkpoints are written atomically every few hundred steps, at each epoch's end and on
Ctrl-C or SIGTERM (`kill`, a job scheduler, a Space restarting); --resume continues from
the last one. The weights in --out are replaced only by finite weights with a better test NLL,
and a fresh run stops where this pair's weights or checkpoint exist, unless --overwrite.

Past one process, with DistributedDataParallel (NCCL on GPUs, gloo on CPUs):

    torchrun --standalone --nproc_per_node 2 train.py --model gated --dataset mnist ...

--batch-size stays the images per step, split across the processes; each process reads
its own shard of every epoch's order (DistributedSampler), so a step sees the same images
as in one process. Only rank 0 evaluates and writes weights, checkpoints, logs and pictures.
"""
import argparse
import math
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler
from tqdm import tqdm

import pixelcnn
from pixelcnn import datasets, files, images, training, weights
from pixelcnn.evaluate import RANGE_IMAGES, bits_range
from pixelcnn.evaluate import nll as evaluate
from pixelcnn.training import RunState, distributed, lr_at, train_step

# ---------------------------------------------------------------------------------------------
# Setup: the command line, the processes, the data, the model and the run's state


def parse_args(argv=None):
    """The command line; every mistake in it, --set's included, ends in a usage error (exit 2)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    whole = training.whole_number  # what each value may be, checked as it is read
    p.add_argument("--model", required=True, choices=pixelcnn.MODELS, help="which model to train")
    p.add_argument("--dataset", required=True, choices=pixelcnn.DATASETS, help="which dataset to train on")
    p.add_argument("--epochs", type=whole(1), default=10, help="passes over the training set (default 10)")
    p.add_argument("--batch-size", type=whole(1), default=64, help="images per step (default 64)")
    p.add_argument("--lr", type=training.positive_number, default=2e-3,
                   help="peak Adam learning rate; warm-up, then cosine decay to 0")
    p.add_argument("--warmup", type=whole(0), default=200, help="learning-rate warm-up steps (default 200)")
    p.add_argument("--data-dir", default=None, help="folder holding mnist/ with the four MNIST IDX files "
                   "(default: $PIXELCNN_DATA, else ./data)")
    p.add_argument("--download", action="store_true", help="download MNIST into --data-dir first (needs internet)")
    p.add_argument("--out", default=str(weights.WEIGHTS_DIR),
                   help="where weights, samples and curves go (default weights/)")
    p.add_argument("--checkpoint-dir", default="checkpoints",
                   help="where resumable checkpoints go (default checkpoints/)")
    p.add_argument("--eval-every", type=whole(1), default=1,
                   help="evaluate the test NLL after every Nth epoch and after the last (default 1)")
    p.add_argument("--checkpoint-every", type=whole(1), default=300, help="steps between checkpoints (default 300)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --checkpoint-dir")
    p.add_argument("--init", metavar="WEIGHTS", default=None,
                   help="start from these weights (a .safetensors of the same model config, the shipped one, "
                        "say, or of one that this config grows: with --set summary=true, the summaries start "
                        "fresh) with a fresh optimiser and schedule; they stay the best until a test NLL beats "
                        "the one recorded beside them (where a run's checkpoint is lost, it goes on from here)")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh even where this pair's checkpoint or weights exist, replacing them "
                        "(without it, such a run stops before touching them)")
    p.add_argument("--bf16", dest="bf16", action="store_true", default=None,
                   help="train under bf16 autocast (default: on a GPU, and on a CPU with native bf16)")
    p.add_argument("--no-bf16", dest="bf16", action="store_false", default=None, help="train in fp32")
    p.add_argument("--compile", action="store_true",
                   help="compile the training step's model with torch.compile (it takes a while to start; "
                        "python -m pixelcnn.bench_train --model gated --compile measures what it gains)")
    p.add_argument("--threads", type=whole(1, os.cpu_count()), default=os.cpu_count(),
                   help="CPU threads (default: all cores)")
    p.add_argument("--device", type=training.device_name, default="cuda" if torch.cuda.is_available() else "cpu",
                   help="cpu or cuda")
    p.add_argument("--seed", type=whole(0, 2**32 - 1), default=0, help="seed for initialisation and data order")
    p.add_argument("--max-steps", type=whole(1), default=None, help="stop after this many steps (for quick runs)")
    p.add_argument("--train-limit", type=whole(1), default=None, help="use only the first N training images")
    p.add_argument("--train-images", type=whole(1), default=None,
                   help="shapes and color_shapes: generate N training images (default 10,000)")
    p.add_argument("--test-limit", type=whole(1), default=None, help="evaluate on only the first N test images")
    p.add_argument("--samples", type=whole(0, 1024), default=16, help="images in the sample grid (0: none)")
    p.add_argument("--push-to-hub", metavar="REPO", default=None,
                   help="upload the weights, facts, samples and a model card to this Hugging Face Hub repo")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help=f"override the model config, e.g. --set filters=32 layers=3 split=false "
                        f"(options: {', '.join(training.OPTIONS)})")
    args = p.parse_args(argv)
    try:
        args.options = training.model_options(args.set)
        with torch.device("meta"):  # ask the constructor, without memory or random numbers
            pixelcnn.build(args.model, args.dataset, **args.options)
    except ValueError as e:
        p.error(f"--set: {e}")
    if args.push_to_hub:
        from huggingface_hub.utils import HFValidationError, validate_repo_id
        try:
            validate_repo_id(args.push_to_hub)
        except HFValidationError as e:
            p.error(f"--push-to-hub: {e}")
    return args


@dataclass
class Setup:
    """What a run fixes before its first step; what changes is its RunState."""
    args: argparse.Namespace
    rank: int
    world: int
    device: torch.device
    train: tuple  # (images, labels)
    test: tuple  # (images, labels)
    model: torch.nn.Module  # what a step calls: the net, wrapped for DDP and torch.compile
    bf16: bool
    ckpt: Path  # the checkpoint file
    weights_file: Path
    per_epoch: int  # steps in a whole epoch
    total: int  # steps in the whole run

    @property
    def lead(self):
        return self.rank == 0  # only rank 0 evaluates and writes

    def done(self, state):
        return state.epoch >= self.args.epochs or state.step >= self.total


def setup(args, rank, world, device):
    """The run's Setup and its state: fresh, or with --resume from its checkpoint."""
    if args.batch_size % world:
        sys.exit(f"error: --batch-size {args.batch_size} does not split evenly across {world} processes")
    ckpt = Path(args.checkpoint_dir) / f"{args.model}_{args.dataset}.pt"
    weights_file = weights.weights_path(args.model, args.dataset, args.out)
    there = [str(f) for f in (ckpt, weights_file) if f.exists()]
    if there and not (args.resume or args.overwrite):  # a fresh run would replace them at its first save
        sys.exit(f"error: {' and '.join(there)} already exist: --resume continues that run, --overwrite starts "
                 "afresh and replaces them, --out and --checkpoint-dir write elsewhere")
    train, test = load_data(args)
    per_epoch = len(train[0]) // args.batch_size
    if per_epoch == 0:
        sys.exit(f"error: --batch-size {args.batch_size} is more than the {len(train[0])} training images")
    state = start(args, device, ckpt, per_epoch, lead=rank == 0)
    if rank == 0:
        try:
            files.make_folders({"--out": weights_file, "--checkpoint-dir": ckpt})
        except ValueError as e:
            sys.exit(f"error: {e}")
    model = state.net if world == 1 else DistributedDataParallel(
        state.net, device_ids=[device.index] if device.index is not None else None)
    if args.compile:
        model = torch.compile(model)
    total = args.epochs * per_epoch if args.max_steps is None else min(args.max_steps, args.epochs * per_epoch)
    return Setup(args, rank, world, device, train, test, model, training.use_bf16(args.bf16, device.type), ckpt,
                 weights_file, per_epoch, total), state


def load_data(args):
    """(train images, labels) and (test images, labels), cut to --train-limit and --test-limit."""
    if args.download:
        datasets.download_mnist(args.data_dir)
    try:
        train = datasets.load(args.dataset, "train", args.data_dir, count=args.train_images)
        test = datasets.load(args.dataset, "test", args.data_dir)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    return tuple(t[:args.train_limit] for t in train), tuple(t[:args.test_limit] for t in test)


def start(args, device, ckpt, per_epoch, lead):
    """A fresh run's state, or with --resume the state checkpointed at `ckpt`."""
    torch.manual_seed(args.seed)
    # channels-last: the memory layout oneDNN's and cuDNN's convolutions prefer
    net = pixelcnn.build(args.model, args.dataset, **args.options).to(device, memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    if args.init and args.resume:
        sys.exit("error: --init starts a run from weights, --resume continues one: give one of them")
    if args.init:
        try:
            state = weights.read(args.init)[1]
            weights.load_into(net, state, args.init, grow=True)
        except (OSError, ValueError) as e:
            sys.exit(f"error: --init: {e}")
        if lead:
            print(f"starting from the weights in {args.init}")
            if fresh := sorted(net.state_dict().keys() - state.keys()):
                print(f"  which lack {len(fresh)} of this model's tensors ({', '.join(fresh[:3])}, ...): "
                      "those start as a fresh model's")
        return RunState(net, opt, best=files.read_facts(Path(args.init)).get("test_nats_per_dim", math.inf),
                        started_from=parent(args.init))
    if not args.resume:
        return RunState(net, opt)
    if not ckpt.exists():
        sys.exit(f"error: --resume, but there is no checkpoint at {ckpt}")
    try:
        state = RunState.load(ckpt, net, opt)  # a ValueError for a checkpoint unreadable, foreign, or not finite
        if lacking := sorted({k for h in state.history for k in RECORDED if k not in h}):
            raise ValueError(f"{ckpt} is not a usable checkpoint: its history lacks {', '.join(lacking)}")
        if state.offset >= per_epoch:  # it would never reach the epoch's end
            raise ValueError(f"{ckpt} is {state.offset} steps into an epoch, but this run's epochs have {per_epoch} "
                             "steps: resume with that run's --batch-size and --train-limit")
    except ValueError as e:
        sys.exit(f"error: {e}")
    if lead:
        print(f"resumed from {ckpt}: epoch {state.epoch}, step {state.step}")
    return state


# ---------------------------------------------------------------------------------------------
# The epochs


def epoch_order(s, epoch):
    """This process's share of an epoch's order: randperm(seed + epoch), dealt to the processes."""
    shard = DistributedSampler(range(len(s.train[0])), num_replicas=s.world, rank=s.rank, shuffle=True,
                               seed=s.args.seed, drop_last=True)
    shard.set_epoch(epoch)
    return torch.tensor(list(shard))


def train_epoch(s, state):
    """Step to the end of this epoch or the run's last step, checkpointing every --checkpoint-every
    steps; returns the images per second."""
    args, (train_x, train_y) = s.args, s.train
    local = args.batch_size // s.world  # images per step in this process
    order, first, t0 = epoch_order(s, state.epoch), state.offset, time.time()
    bar = tqdm(range(state.offset, s.per_epoch), desc=f"epoch {state.epoch + 1}/{args.epochs}", unit="step",
               dynamic_ncols=True, mininterval=1.0, file=sys.stdout, disable=not s.lead)
    for b in bar:
        idx = order[b * local:(b + 1) * local]
        x = train_x[idx].to(s.device).long()
        label = train_y[idx].to(s.device) if state.net.config.classes else None
        lr = lr_at(state.step, s.total, args.lr, args.warmup)
        loss = train_step(s.model, state.opt, x, label, lr, s.bf16).item()
        state.step, state.offset = state.step + 1, b + 1
        state.steps.append((state.step, loss))
        rate = (b + 1 - first) * args.batch_size / (time.time() - t0)
        bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{rate:.0f}", refresh=False)
        if s.lead and state.step % args.checkpoint_every == 0:
            state.save(s.ckpt)
        if state.step >= s.total:
            break
    bar.close()
    rate = (state.offset - first) * args.batch_size / (time.time() - t0)
    if state.offset == s.per_epoch:
        state.epoch, state.offset = state.epoch + 1, 0
    return rate


# ---------------------------------------------------------------------------------------------
# Evaluate and save


RECORDED = ("epoch", "step", "test_nats_per_dim", "test_nats_per_image", "images_per_s")  # of each evaluation


def evaluate_and_save(s, state, rate):
    """After an epoch (or the run's last step), rank 0 evaluates the test NLL every --eval-every
    epochs and after the last step, writes the weights where it is the best yet, and checkpoints."""
    args, net = s.args, state.net
    if s.lead and (state.epoch % args.eval_every == 0 or state.step >= s.total):
        nll, dims = evaluate(net, *s.test), math.prod(net.image_shape)
        state.history.append({"epoch": round(state.epoch + state.offset / s.per_epoch, 3), "step": state.step,
                              "test_nats_per_dim": nll, "test_nats_per_image": nll * dims, "images_per_s": rate})
        print(f"epoch {state.history[-1]['epoch']}: test NLL {nll:.4f} nats/dim, {nll * dims:.2f} nats/image, "
              f"{nll / math.log(2):.4f} bits/dim, {rate:.0f} images/s")
        if nll < state.best:
            state.best = nll
            write_weights(s, state)
    if s.lead:
        state.save(s.ckpt)
    if s.world > 1:
        dist.barrier()  # the others wait for rank 0's evaluation


def write_weights(s, state):
    """The weights, and beside them the facts of their evaluation (the last in the history);
    nothing where a weight is not finite."""
    args, net, history = s.args, state.net, state.history
    if weights.non_finite(net.state_dict()) is not None:
        print("warning: non-finite weights, not written")
        return
    weights.save(net, s.weights_file)
    h = history[-1]
    facts = {"model": args.model, "dataset": args.dataset, "epoch": h["epoch"], "epochs": args.epochs,
             "step": h["step"], "test_nats_per_dim": h["test_nats_per_dim"],
             "test_nats_per_image": h["test_nats_per_image"], "test_bits_per_dim": h["test_nats_per_dim"] / math.log(2),
             "images_per_s": h["images_per_s"], "date": datetime.now(UTC).isoformat(timespec="seconds"),
             "command": args.command,
             "config": net.config.to_dict(), "history": history}  # the test curve up to these weights
    if args.dataset in ("shapes", "color_shapes"):
        facts["entropy_bound_nats_per_image"] = datasets.entropy_bound(args.dataset)
    if state.started_from:  # kept in the checkpoint: a run resumed says it too
        facts["started_from"] = state.started_from
    files.write_facts(s.weights_file, facts)


def parent(init):
    """What the weights a run started from (--init) were: their run's command and test curve,
    and those of the run they in turn started from, so the facts say how to retrain them."""
    facts = files.read_facts(Path(init))
    return {"weights": str(init), **{k: facts[k] for k in LINEAGE if k in facts}}


LINEAGE = ("command", "date", "test_nats_per_image", "history", "started_from")


def record_range(s, best):
    """The bits/dim range of the first test images under the best weights, in their facts: the
    app compares a picture with it at once, instead of scoring them on its first request."""
    x, y = (t[:RANGE_IMAGES] for t in s.test)
    facts = files.read_facts(s.weights_file)
    facts["test_bits_per_dim_percentiles"] = bits_range(best, x, y)
    files.write_facts(s.weights_file, facts)


def finish(s, state):
    """Rank 0, after the last step: the loss curve, a grid drawn by the best weights, the Hub."""
    args, out, name = s.args, s.weights_file.parent, s.weights_file.stem
    if state.history and not s.weights_file.exists():
        init = state.started_from and Path(state.started_from["weights"])
        facts = files.read_facts(init) if init else {}
        if facts and state.best == facts.get("test_nats_per_dim"):  # never beaten: they are its best
            files.write_atomic(s.weights_file, lambda tmp: shutil.copyfile(init, tmp))
            files.write_facts(s.weights_file, facts)
        else:  # resumed a run that had finished elsewhere
            write_weights(s, state)
    images.plot_curve(state.history, state.steps, out / f"{name}_curve.png", f"{args.model} on {args.dataset}")
    best = pixelcnn.load(args.model, args.dataset, out)  # on the CPU, as the app and the cached sampler run
    record_range(s, best)
    if args.samples:
        label = torch.arange(args.samples) % best.config.classes if best.config.classes else None
        x = best.sample(args.samples, seed=0, label=label)
        images.grid(x, best.levels, scale=4).save(out / f"{name}_samples.png")
    print(f"wrote {out / name}.safetensors (.json, _samples.png, _curve.png)")
    if args.push_to_hub:
        try:
            weights.push(args.model, args.dataset, args.push_to_hub, out)
        except OSError as e:  # offline, no token, refused: the files written stay
            sys.exit(f"error: could not push to {args.push_to_hub} ({e}); the files are written in {out}")
        print(f"pushed to https://huggingface.co/{args.push_to_hub}")


# ---------------------------------------------------------------------------------------------
# The run, top to bottom


def run(args, rank, world, device):
    """Setup; the epochs, each followed by evaluate-and-save; then the pictures."""
    s, state = setup(args, rank, world, device)
    if s.done(state) and (s.weights_file.exists() or not state.history):  # resumed a run this far already
        if s.lead:
            print(f"nothing to do: {s.ckpt} is at step {state.step}, where this run ends; nothing written")
        return
    if s.lead:
        print(f"{args.model} on {args.dataset}: {sum(p.numel() for p in state.net.parameters()):,} parameters, "
              f"{len(s.train[0]):,} train / {len(s.test[0]):,} test images, {s.total:,} steps, "
              f"{training.precision(s.bf16)} on {device} with {args.threads} threads"
              + (f", {world} processes" if world > 1 else ""))
    try:
        while not s.done(state):
            rate = train_epoch(s, state)
            evaluate_and_save(s, state, rate)
    except FloatingPointError as e:  # before the step that would have written non-finite weights
        sys.exit(f"error: {e} at step {state.step}; stopping. The last good checkpoint and weights are "
                 "untouched. Try a lower --lr" + (" or --no-bf16." if s.bf16 else "."))
    except KeyboardInterrupt:
        if s.lead:
            state.save(s.ckpt)
        sys.exit(f"\ninterrupted at step {state.step}: checkpoint written to {s.ckpt}; continue with --resume")
    except OSError as e:  # a full disk, a folder gone: what was written before is intact
        sys.exit(f"error: could not write ({e}); the last checkpoint and weights written are intact")
    if s.lead:
        finish(s, state)


def interrupt(signum, frame):
    raise KeyboardInterrupt  # checkpoint and stop, as on Ctrl-C


def main(argv=None):
    args = parse_args(argv)
    args.command = "python train.py " + " ".join(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(args.threads)
    rank, world, device = distributed(args.device)
    try:
        run(args, rank, world, device)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, interrupt)  # here, not in main(): a caller's process keeps its own
    main()
