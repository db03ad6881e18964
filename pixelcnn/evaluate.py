"""Test-set NLL of trained weights, recomputed in fp32:

    python -m pixelcnn.evaluate --model pixelcnn --dataset mnist --data-dir ../shared/data
"""
import argparse
import json
import math

import torch
import torch.nn.functional as F

import pixelcnn
from pixelcnn import datasets, weights


@torch.no_grad()
def nll(net, data, labels=None, batch_size=500):
    """Mean NLL in nats per sub-pixel of the levels `data`, in fp32, in eval mode; a
    class-conditional model is given the true `labels`."""
    if net.config.classes and labels is None:
        raise ValueError(f"{net.config.model} is class-conditional: give the labels")
    was = net.training
    net.eval()
    total = 0.0
    for k in range(0, len(data), batch_size):
        x = data[k:k + batch_size].to(net.device).long()
        label = labels[k:k + batch_size].to(net.device) if net.config.classes else None
        total += F.cross_entropy(net(x, label).float(), x, reduction="sum").item()
    net.train(was)
    return total / data.numel()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, choices=pixelcnn.MODELS)
    p.add_argument("--dataset", required=True, choices=pixelcnn.DATASETS)
    p.add_argument("--data-dir", default=None, help="folder holding mnist/ (default: $PIXELCNN_DATA, else ./data)")
    p.add_argument("--weights-dir", default=None, help="default weights/")
    args = p.parse_args(argv)
    net = pixelcnn.load(args.model, args.dataset, args.weights_dir)
    test, labels = datasets.load(args.dataset, "test", args.data_dir)
    d = nll(net, test, labels)
    dims = math.prod(net.image_shape)
    print(f"{args.model} on {args.dataset}: test NLL {d:.4f} nats/dim, {d * dims:.2f} nats/image, "
          f"{d / math.log(2):.4f} bits/dim ({len(test):,} images)")
    if args.dataset in ("shapes", "color_shapes"):
        bound = datasets.entropy_bound(args.dataset)
        print(f"entropy bound {bound:.2f} nats/image: NLL / bound = {d * dims / bound:.3f}")
    facts = weights.weights_path(args.model, args.dataset, args.weights_dir).with_suffix(".json")
    if facts.exists():
        print(f"train.py recorded {json.loads(facts.read_text())['test_nats_per_dim']:.4f} nats/dim")
    return d


if __name__ == "__main__":
    main()
