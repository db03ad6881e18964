"""Test-set NLL of trained weights, recomputed in fp32, and for colour models how often their
samples have two colours, as real images do:

    python -m pixelcnn.evaluate --model pixelcnn --dataset mnist --data-dir ../shared/data
    python -m pixelcnn.evaluate --model gated --dataset color_mnist --samples 200 --update-facts

A class-conditional model is scored given each image's own class, and again told another class
at random (other_labels): the gap is what the label is worth to it.
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


def other_labels(labels, classes, seed=0):
    """Another class than each of `labels` (n,), uniformly among the classes - 1 others, seeded."""
    shift = torch.randint(1, classes, labels.shape, generator=torch.Generator().manual_seed(seed))
    return (labels + shift) % classes


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


def colour_codes(x, levels):
    """Each pixel's colour as one number: levels (N, C, H, W) -> (N, H * W) long."""
    codes = torch.zeros(x.shape[0], x.shape[2] * x.shape[3], dtype=torch.long)
    for k in range(x.shape[1]):
        codes = codes * levels + torch.as_tensor(x[:, k]).long().flatten(1)
    return codes


def two_colours(x):
    """How far colour images (N, C, H, W) of levels are from having two colours each, as every
    real colour-shapes and colour-MNIST image has (a background and a foreground): (the share of
    images with exactly two colours, the share of all pixels in a colour other than their
    image's two commonest)."""
    x = torch.as_tensor(x).long()
    n, c, h, w = x.shape
    levels = int(x.max()) + 1
    codes = colour_codes(x, levels)
    counts = torch.zeros(n, levels ** c, dtype=torch.long).scatter_add_(1, codes, torch.ones_like(codes))
    two = (counts > 0).sum(1) == 2
    third = (h * w - counts.topk(min(2, counts.shape[1]), dim=1).values.sum(1)).sum()
    return two.double().mean().item(), third.item() / (n * h * w)


def sample_figures(net, samples, seed=0):
    """two_colours of `samples` samples at temperature 1, seeded (a class-conditional model's
    classes in turn), as the facts file keeps them."""
    label = torch.arange(samples) % net.config.classes if net.config.classes else None
    two, third = two_colours(net.sample(samples, seed=seed, label=label))
    return {"samples": samples, "seed": seed, "images_with_two_colours": round(two, 4),
            "pixels_in_a_third_colour": round(third, 5)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, choices=pixelcnn.MODELS)
    p.add_argument("--dataset", required=True, choices=pixelcnn.DATASETS)
    p.add_argument("--data-dir", default=None, help="folder holding mnist/ (default: $PIXELCNN_DATA, else ./data)")
    p.add_argument("--weights-dir", default=None, help="default weights/")
    p.add_argument("--samples", type=int, default=0,
                   help="colour datasets: draw N samples (temperature 1, seed 0) and say how many have exactly "
                        "two colours, as real images do, and how many pixels are in a third")
    p.add_argument("--update-facts", action="store_true",
                   help=f"write the bits/dim percentiles of the first {RANGE_IMAGES} test images (and with "
                        "--samples, the two-colour figures) into the facts file, for the app and README")
    args = p.parse_args(argv)
    net = pixelcnn.load(args.model, args.dataset, args.weights_dir)
    test, labels = datasets.load(args.dataset, "test", args.data_dir)
    d = nll(net, test, labels)
    dims = math.prod(net.image_shape)
    print(f"{args.model} on {args.dataset}: test NLL {d:.4f} nats/dim, {d * dims:.2f} nats/image, "
          f"{d / math.log(2):.4f} bits/dim ({len(test):,} images)")
    if net.config.classes:
        other = nll(net, test, other_labels(labels, net.config.classes))
        print(f"told another class at random (seed 0): {other * dims:.2f} nats/image, "
              f"{(other - d) * dims:.2f} more than given its own")
    if args.dataset in ("shapes", "color_shapes"):
        bound = datasets.entropy_bound(args.dataset)
        print(f"entropy bound {bound:.2f} nats/image: NLL / bound = {d * dims / bound:.3f}")
    path = weights.weights_path(args.model, args.dataset, args.weights_dir)
    facts = files.read_facts(path)
    if "test_nats_per_dim" in facts:
        print(f"train.py recorded {facts['test_nats_per_dim']:.4f} nats/dim")
    if args.samples and net.image_shape[0] > 1:
        facts["samples_two_colours"] = figures = sample_figures(net, args.samples)
        real = two_colours(test[:args.samples])
        print(f"{args.samples} samples: {figures['images_with_two_colours']:.1%} with exactly two colours, "
              f"{figures['pixels_in_a_third_colour']:.2%} of pixels in a third colour (real images: "
              f"{real[0]:.0%} and {real[1]:.0%})")
    if args.update_facts:
        facts["test_bits_per_dim_percentiles"] = bits_range(net, test[:RANGE_IMAGES], labels[:RANGE_IMAGES])
        print(f"wrote the bits/dim percentiles into {files.write_facts(path, facts)}")
    return d


if __name__ == "__main__":
    main()
