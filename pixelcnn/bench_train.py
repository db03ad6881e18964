"""Training speed of the reference PixelCNN, two ways, side by side in one run:

    python -m pixelcnn.bench_train --data-dir ../shared/data --steps 100

plain: full 7x7 kernels multiplied by their masks, fp32 (the textbook form);
ours:  split masked convolutions, bf16 autocast, channels-last (what train.py does).
Both start from the same initial weights and see the same batches; each then reports
its test NLL on the first 2,000 MNIST test images (in fp32).
"""
import argparse
import time

import torch
import torch.nn.functional as F

import pixelcnn
from pixelcnn import datasets
from pixelcnn.evaluate import nll


def train(net, data, steps, batch_size, bf16, lr=2e-3):
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    t = time.perf_counter()
    for s in range(steps):
        x = data[s * batch_size:(s + 1) * batch_size].long()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = net(x)
        loss = F.cross_entropy(logits.float(), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * batch_size / (time.perf_counter() - t)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=64)
    args = p.parse_args(argv)
    train_x, _ = datasets.load("mnist", "train", args.data_dir)
    test_x, _ = datasets.load("mnist", "test", args.data_dir)
    perm = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(0))
    data = train_x[perm[:args.steps * args.batch_size]]
    torch.manual_seed(0)
    init = pixelcnn.build("pixelcnn", "mnist").state_dict()
    rows = []
    for name, split, bf16, fmt in (("plain 7x7 masked, fp32", False, False, torch.contiguous_format),
                                   ("split, bf16, channels-last", True, True, torch.channels_last)):
        net = pixelcnn.build("pixelcnn", "mnist", split=split)
        net.load_state_dict(init)
        net = net.to(memory_format=fmt)
        rate = train(net, data, args.steps, args.batch_size, bf16)
        rows.append((name, rate, nll(net, test_x[:2000])))
        print(f"{name:<28} {rate:8.1f} images/s   test NLL after {args.steps} steps: {rows[-1][2]:.4f} nats/dim",
              flush=True)
    print(f"speed-up: {rows[1][1] / rows[0][1]:.2f}x; NLL difference {rows[1][2] - rows[0][2]:+.4f} nats/dim")


if __name__ == "__main__":
    main()
