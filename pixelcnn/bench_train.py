"""Training speed of the reference PixelCNN, two ways, side by side in one run:

    python -m pixelcnn.bench_train --data-dir ../shared/data --steps 200 --seeds 3

plain: full 7x7 kernels multiplied by their masks, fp32 (the textbook form);
ours:  split masked convolutions, channels-last, in train.py's precision: bf16 autocast where
       this CPU has native bf16, else fp32 (--bf16 and --no-bf16 force it), as train.py does.
--compile adds a third way, ours through torch.compile (train.py --compile); --model gated
times Gated PixelCNN instead (its masked convolutions are split in every way).
For each seed all start from the same initial weights, see the same batches and take
train.py's training step on its learning-rate schedule (warm-up, cosine to 0 at the last
step); each then reports its test NLL on the first 2,000 MNIST test images (--test-images;
in fp32). Different seeds give the run-to-run spread that an NLL difference between the
ways is measured against.
Images/s leave out the first WARM = 3 steps (warm-up, and compiling).
"""
import argparse
import statistics
import time

import torch

import pixelcnn
from pixelcnn import datasets
from pixelcnn.evaluate import nll
from pixelcnn.training import lr_at, train_step, use_bf16

WARM = 3  # steps left out of the timing: warm-up, and compiling


def train(net, data, steps, batch_size, bf16, compile=False, lr=2e-3):
    """Train `net` on `data` with train.py's step and schedule; returns images/s past the first WARM steps."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    model = torch.compile(net) if compile else net
    for s in range(steps):
        if s == WARM:
            t = time.perf_counter()
        x = data[s * batch_size:(s + 1) * batch_size].long()
        train_step(model, opt, x, None, lr_at(s, steps, lr, warmup=min(200, steps // 4)), bf16)
    return (steps - WARM) * batch_size / (time.perf_counter() - t)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seeds", type=int, default=1, help="repeat with this many seeds (init and batches)")
    p.add_argument("--model", default="pixelcnn", choices=("pixelcnn", "gated"))
    p.add_argument("--compile", action="store_true", help="add a third way: ours, through torch.compile")
    p.add_argument("--test-images", type=int, default=2000, help="evaluate on the first N test images")
    p.add_argument("--bf16", dest="bf16", action="store_true", default=None,
                   help="ours under bf16 autocast (default: where this CPU has native bf16)")
    p.add_argument("--no-bf16", dest="bf16", action="store_false", default=None, help="ours in fp32")
    args = p.parse_args(argv)
    if args.steps <= WARM:
        p.error(f"--steps must be more than the {WARM} warm-up steps")
    train_x, _ = datasets.load("mnist", "train", args.data_dir)
    test_x, _ = datasets.load("mnist", "test", args.data_dir)
    bf16 = use_bf16(args.bf16, "cpu")
    precision = "bf16" if bf16 else "fp32"
    # (name, split, bf16, memory format, compiled)
    plain = "plain 7x7 masked, fp32" if args.model == "pixelcnn" else "fp32"
    ways = [(plain, False, False, torch.contiguous_format, False),
            (f"split, {precision}, channels-last", True, bf16, torch.channels_last, False)]
    if args.compile:
        ways.append((f"split, {precision}, channels-last, compiled", True, bf16, torch.channels_last, True))
    rates, nlls = ([[] for _ in ways] for _ in range(2))
    for seed in range(args.seeds):
        perm = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(seed))
        data = train_x[perm[:args.steps * args.batch_size]]
        torch.manual_seed(seed)
        init = pixelcnn.build(args.model, "mnist").state_dict()
        for k, (name, split, bf16, fmt, compiled) in enumerate(ways):
            net = pixelcnn.build(args.model, "mnist", split=split)
            net.load_state_dict(init)
            net = net.to(memory_format=fmt)
            rates[k].append(train(net, data, args.steps, args.batch_size, bf16, compile=compiled))
            nlls[k].append(nll(net, test_x[:args.test_images]))
            print(f"seed {seed}  {name:<36} {rates[k][-1]:8.1f} images/s   "
                  f"test NLL after {args.steps} steps: {nlls[k][-1]:.4f} nats/dim", flush=True)
    for k in range(1, len(ways)):
        ratio = statistics.mean(rates[k]) / statistics.mean(rates[0])
        diffs = [b - a for a, b in zip(nlls[0], nlls[k])]
        print(f"{ways[k][0]}: speed-up {ratio:.2f}x over {ways[0][0]}; NLL difference per seed: "
              + ", ".join(f"{d:+.4f}" for d in diffs) + f"; mean {statistics.mean(diffs):+.4f} nats/dim")
    if args.compile:
        ratio = statistics.mean(rates[2]) / statistics.mean(rates[1])
        print(f"compiled over eager (both split, {precision}): {ratio:.2f}x")
    if args.seeds > 1:
        print("seed-to-seed spread (standard deviation) of the NLL: "
              + ", ".join(f"{name.split(',')[0]} {statistics.stdev(v):.4f}" for (name, *_), v in zip(ways, nlls)))


if __name__ == "__main__":
    main()
