"""Test-set NLL of trained weights, recomputed in fp32:

    python -m pixelcnn.evaluate --model pixelcnn --dataset mnist --data-dir ../shared/data
"""
import argparse
import math

import torch
import torch.nn.functional as F

import pixelcnn
from pixelcnn import datasets, files, weights
from pixelcnn.analysis import bits_per_dim


@torch.no_grad()
def nll(net, data, labels=None, batch_size=500):
    """Mean NLL in nats per sub-pixel of the levels `data`, in fp32, in eval mode; a
    class-conditional model is given the true `labels`."""
    if net.config.classes and labels is None:
        raise ValueError(f"{net.config.model} is class-conditional: give the labels")
    total = 0.0
    with net.evaluating():
        for k in range(0, len(data), batch_size):
            x = data[k:k + batch_size].to(net.device).long()
            label = labels[k:k + batch_size].to(net.device) if net.config.classes else None
            total += F.cross_entropy(net(x, label).float(), x, reduction="sum").item()
    return total / data.numel()


PERCENTILES = (5, 25, 50, 75, 95)
RANGE_IMAGES = 500  # the first test images whose bits/dim give the range a drawing is compared with


def bits_range(net, data, labels=None):
    """{percentile: bits/dim} of the images' own bits/dim (the app's "range on test images")."""
    bpd = bits_per_dim(net, data, labels if net.config.classes else None).double()
    return {str(p): round(torch.quantile(bpd, p / 100).item(), 5) for p in PERCENTILES}


def range_on_test_images(net, data_dir=None, weights_dir=None):
    """bits_range of the first RANGE_IMAGES test images (with their true labels) from the
    dataset, else as recorded in the facts file beside the weights (where the dataset cannot
    be read, as on a Space without MNIST); None if neither."""
    model, dataset = net.config.model, net.config.dataset
    try:
        x, y = datasets.load(dataset, "test", data_dir)
    except (FileNotFoundError, ValueError):
        return files.read_facts(weights.weights_path(model, dataset, weights_dir)).get("test_bits_per_dim_percentiles")
    return bits_range(net, x[:RANGE_IMAGES], y[:RANGE_IMAGES])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, choices=pixelcnn.MODELS)
    p.add_argument("--dataset", required=True, choices=pixelcnn.DATASETS)
    p.add_argument("--data-dir", default=None, help="folder holding mnist/ (default: $PIXELCNN_DATA, else ./data)")
    p.add_argument("--weights-dir", default=None, help="default weights/")
    p.add_argument("--update-facts", action="store_true",
                   help=f"write the bits/dim percentiles of the first {RANGE_IMAGES} test images into the facts "
                        "file, for the app where the dataset cannot be read")
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
    path = weights.weights_path(args.model, args.dataset, args.weights_dir)
    facts = files.read_facts(path)
    if "test_nats_per_dim" in facts:
        print(f"train.py recorded {facts['test_nats_per_dim']:.4f} nats/dim")
    if args.update_facts:
        facts["test_bits_per_dim_percentiles"] = bits_range(net, test[:RANGE_IMAGES], labels[:RANGE_IMAGES])
        print(f"wrote the bits/dim percentiles into {files.write_facts(path, facts)}")
    return d


if __name__ == "__main__":
    main()
