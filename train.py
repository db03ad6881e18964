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
import json
import math
import os
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler
from tqdm import tqdm

import pixelcnn
from pixelcnn import datasets, images, weights
from pixelcnn.evaluate import nll as evaluate
from pixelcnn.schedule import lr_at


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, choices=pixelcnn.MODELS, help="which model to train")
    p.add_argument("--dataset", required=True, choices=pixelcnn.DATASETS, help="which dataset to train on")
    p.add_argument("--epochs", type=int, default=10, help="passes over the training set (default 10)")
    p.add_argument("--batch-size", type=int, default=64, help="images per step (default 64)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak Adam learning rate; warm-up, then cosine decay to 0")
    p.add_argument("--warmup", type=int, default=200, help="learning-rate warm-up steps (default 200)")
    p.add_argument("--data-dir", default=None, help="folder holding mnist/ with the four MNIST IDX files "
                   "(default: $PIXELCNN_DATA, else ./data)")
    p.add_argument("--download", action="store_true", help="download MNIST into --data-dir first (needs internet)")
    p.add_argument("--out", default=str(weights.WEIGHTS_DIR), help="where weights, samples and curves go (default weights/)")
    p.add_argument("--checkpoint-dir", default="checkpoints", help="where resumable checkpoints go (default checkpoints/)")
    p.add_argument("--eval-every", type=int, default=1,
                   help="evaluate the test NLL after every Nth epoch and after the last (default 1)")
    p.add_argument("--checkpoint-every", type=int, default=300, help="steps between checkpoints (default 300)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --checkpoint-dir")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh even where this pair's checkpoint or weights exist, replacing them "
                        "(without it, such a run stops before touching them)")
    p.add_argument("--no-bf16", dest="bf16", action="store_false", help="train in fp32 instead of bf16 autocast")
    p.add_argument("--compile", action="store_true",
                   help="compile the training step's model with torch.compile: under a minute to start, "
                        "then about 10%% faster for gated on 2 CPU cores (python -m pixelcnn.bench_train "
                        "--model gated --compile measures it)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads (default: all cores)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    p.add_argument("--seed", type=int, default=0, help="seed for initialisation and data order")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (for quick runs)")
    p.add_argument("--train-limit", type=int, default=None, help="use only the first N training images")
    p.add_argument("--train-images", type=int, default=None,
                   help="shapes and color_shapes: generate N training images (default 10,000)")
    p.add_argument("--test-limit", type=int, default=None, help="evaluate on only the first N test images")
    p.add_argument("--samples", type=int, default=16, help="images in the sample grid (0: none)")
    p.add_argument("--push-to-hub", metavar="REPO", default=None,
                   help="upload the weights, facts, samples and a model card to this Hugging Face Hub repo")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="override the model config, e.g. --set filters=32 layers=3 split=false")
    args = p.parse_args(argv)
    if args.eval_every < 1:
        p.error(f"--eval-every must be at least 1, got {args.eval_every}")
    return args


def overrides(pairs):
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if not value:
            raise SystemExit(f"--set expects KEY=VALUE, got {pair!r}")
        out[key] = {"true": True, "false": False}.get(value.lower()) if value.lower() in ("true", "false") else int(value)
    return out


def save_atomic(obj, path):
    tmp = Path(str(path) + ".part")
    try:
        torch.save(obj, tmp)
    except BaseException:  # a full disk, an interrupt: leave the old file and no half-written one
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def plot_curve(history, steps, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    if steps:
        s, loss = zip(*steps)
        k = max(1, len(loss) // 100)  # smooth the per-step loss into ~100 points
        ax.plot([s[i] for i in range(k - 1, len(s), k)],
                [sum(loss[i - k + 1:i + 1]) / k for i in range(k - 1, len(loss), k)], label="train")
    if history:
        ax.plot([h["step"] for h in history], [h["test_nats_per_dim"] for h in history], "o-", label="test")
    if history:  # the first steps' loss dwarfs the rest: zoom in on the test curve
        test = [h["test_nats_per_dim"] for h in history]
        ax.set_ylim(min(test) * 0.95, max(test) * 1.3)
    ax.set(xlabel="step", ylabel="NLL (nats/dim)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


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


def run(args, rank, world, device):
    lead = rank == 0  # only rank 0 evaluates and writes
    say = print if lead else (lambda *a, **k: None)
    if args.batch_size % world:
        sys.exit(f"error: --batch-size {args.batch_size} does not split evenly across {world} processes")
    name = f"{args.model}_{args.dataset}"
    out, ckdir = Path(args.out), Path(args.checkpoint_dir)
    ckpt_path, weights_file = ckdir / f"{name}.pt", weights.weights_path(args.model, args.dataset, out)
    there = [str(f) for f in (ckpt_path, weights_file) if f.exists()]
    if there and not (args.resume or args.overwrite):  # a fresh run would replace them at its first save
        sys.exit(f"error: {' and '.join(there)} already exist: --resume continues that run, --overwrite starts "
                 "afresh and replaces them, --out and --checkpoint-dir write elsewhere")
    if args.download:
        datasets.download_mnist(args.data_dir)
    try:
        train_x, train_y = datasets.load(args.dataset, "train", args.data_dir, count=args.train_images)
        test_x, test_y = datasets.load(args.dataset, "test", args.data_dir)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    train_x, train_y = train_x[:args.train_limit], train_y[:args.train_limit]
    test_x, test_y = test_x[:args.test_limit], test_y[:args.test_limit]

    torch.manual_seed(args.seed)
    # channels-last convolutions are ~15% faster on this CPU (oneDNN)
    net = pixelcnn.build(args.model, args.dataset, **overrides(args.set)).to(device, memory_format=torch.channels_last)
    model = net if world == 1 else DistributedDataParallel(net, device_ids=[device.index] if device.index is not None else None)
    if args.compile:
        model = torch.compile(model)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    if lead:
        out.mkdir(parents=True, exist_ok=True)
        ckdir.mkdir(parents=True, exist_ok=True)
    step, epoch, offset, history, steps, best = 0, 0, 0, [], [], math.inf
    if args.resume:
        if not ckpt_path.exists():
            sys.exit(f"error: --resume, but there is no checkpoint at {ckpt_path}")
        ck = torch.load(ckpt_path, weights_only=True, map_location=device)
        if pixelcnn.from_config(ck["config"]).config != net.config:
            sys.exit(f"error: the checkpoint is of another model config: {ck['config']}")
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, epoch, offset, best = ck["step"], ck["epoch"], ck["offset"], ck["best"]
        history, steps = json.loads(ck["history"]), json.loads(ck["steps"])
        say(f"resumed from {ckpt_path}: epoch {epoch}, step {step}")

    per_epoch = len(train_x) // args.batch_size
    if per_epoch == 0:
        sys.exit(f"error: --batch-size {args.batch_size} is more than the {len(train_x)} training images")
    local = args.batch_size // world  # images per step in this process
    shard = DistributedSampler(range(len(train_x)), num_replicas=world, rank=rank, shuffle=True,
                               seed=args.seed, drop_last=True)
    total = args.epochs * per_epoch if args.max_steps is None else min(args.max_steps, args.epochs * per_epoch)
    dims = math.prod(net.image_shape)

    def checkpoint():
        if lead:
            save_atomic({"config": net.config.to_dict(), "model": net.state_dict(), "opt": opt.state_dict(),
                         "step": step, "epoch": epoch, "offset": offset, "best": best,
                         "history": json.dumps(history), "steps": json.dumps(steps)}, ckpt_path)

    say(f"{args.model} on {args.dataset}: {sum(p.numel() for p in net.parameters()):,} parameters, "
          f"{len(train_x):,} train / {len(test_x):,} test images, {total:,} steps, "
          f"{'bf16 autocast' if args.bf16 else 'fp32'} on {device} with {args.threads} threads"
          + (f", {world} processes" if world > 1 else ""))
    net.train()
    t_start, seen = time.time(), 0
    try:
        while epoch < args.epochs and step < total:
            shard.set_epoch(epoch)  # every epoch's order is randperm(seed + epoch), dealt to the processes
            perm = torch.tensor(list(shard))
            bar = tqdm(range(offset, per_epoch), desc=f"epoch {epoch + 1}/{args.epochs}", unit="step",
                       dynamic_ncols=True, mininterval=1.0, file=sys.stdout, disable=not lead)
            t_epoch, first = time.time(), offset
            for b in bar:
                idx = perm[b * local:(b + 1) * local]
                x = train_x[idx].to(device).long()
                label = train_y[idx].to(device) if net.config.classes else None
                for g in opt.param_groups:
                    g["lr"] = lr_at(step, total, args.lr, args.warmup)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
                    logits = model(x, label)
                loss = F.cross_entropy(logits.float(), x)
                mean = loss.detach().clone()
                if world > 1:  # the loss over every process's images, the same in all of them
                    dist.all_reduce(mean)
                    mean /= world
                if not torch.isfinite(mean):
                    sys.exit(f"error: loss became {mean.item()} at step {step}; stopping. The last good "
                             f"checkpoint and weights are untouched. Try a lower --lr or --no-bf16.")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step, offset, seen = step + 1, b + 1, seen + len(x) * world
                steps.append((step, mean.item()))
                bar.set_postfix(loss=f"{mean.item():.4f}", img_s=f"{seen / (time.time() - t_start):.0f}",
                                refresh=False)
                if step % args.checkpoint_every == 0:
                    checkpoint()
                if step >= total:
                    break
            bar.close()
            if offset == per_epoch:
                epoch, offset = epoch + 1, 0
            rate = (b + 1 - first) * args.batch_size / (time.time() - t_epoch)
            if lead and (epoch % args.eval_every == 0 or step >= total):
                nll = evaluate(net, test_x, test_y)
                history.append({"epoch": round(epoch + offset / per_epoch, 3), "step": step,
                                "test_nats_per_dim": nll, "test_nats_per_image": nll * dims, "images_per_s": rate})
                say(f"epoch {history[-1]['epoch']}: test NLL {nll:.4f} nats/dim, {nll * dims:.2f} nats/image, "
                    f"{nll / math.log(2):.4f} bits/dim, {rate:.0f} images/s")
                if nll < best:
                    best = nll
                    write_weights(net, out, name, args, history)
            checkpoint()
            if world > 1:
                dist.barrier()  # the others wait for rank 0's evaluation
    except KeyboardInterrupt:
        checkpoint()
        sys.exit(f"\ninterrupted at step {step}: checkpoint written to {ckpt_path}; continue with --resume")
    except OSError as e:  # a full disk, a folder gone: what was written before is intact
        sys.exit(f"error: could not write ({e}); the last checkpoint and weights written are intact")
    if not lead:
        return
    if history and not weights_file.exists():  # resumed a run that had finished elsewhere
        write_weights(net, out, name, args, history)
    plot_curve(history, steps, out / f"{name}_curve.png", f"{args.model} on {args.dataset}")
    if args.samples:
        best_net = pixelcnn.load(args.model, args.dataset, out)  # the cached sampler runs on the CPU
        label = torch.arange(args.samples) % best_net.config.classes if best_net.config.classes else None
        x = best_net.sample(args.samples, seed=0, label=label)
        images.grid(x, best_net.levels, scale=4).save(out / f"{name}_samples.png")
    print(f"wrote {out / name}.safetensors (.json, _samples.png, _curve.png)")
    if args.push_to_hub:
        weights.push(args.model, args.dataset, args.push_to_hub, out)
        print(f"pushed to https://huggingface.co/{args.push_to_hub}")


def write_weights(net, out, name, args, history):
    if not all(torch.isfinite(p).all() for p in net.state_dict().values() if p.is_floating_point()):
        print("warning: non-finite weights, not written")
        return
    weights.save(net, weights.weights_path(args.model, args.dataset, out))
    h = history[-1]
    facts = {"model": args.model, "dataset": args.dataset, "epoch": h["epoch"], "epochs": args.epochs,
             "step": h["step"], "test_nats_per_dim": h["test_nats_per_dim"],
             "test_nats_per_image": h["test_nats_per_image"], "test_bits_per_dim": h["test_nats_per_dim"] / math.log(2),
             "images_per_s": h["images_per_s"], "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
             "command": args.command,
             "config": net.config.to_dict(), "history": history}  # the test curve up to these weights
    if args.dataset in ("shapes", "color_shapes"):
        facts["entropy_bound_nats_per_image"] = datasets.entropy_bound(args.dataset)
    tmp = out / f"{name}.json.part"
    tmp.write_text(json.dumps(facts, indent=2) + "\n")
    os.replace(tmp, out / f"{name}.json")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, interrupt)  # here, not in main(): a caller's process keeps its own
    main()
