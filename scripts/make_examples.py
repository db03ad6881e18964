"""Write the example inputs the app offers: a few test-set images per dataset, as PNGs
upscaled 4x (nearest neighbour), so the app works without the MNIST files.

    python scripts/make_examples.py --data-dir ../shared/data   # writes examples/*.png
"""
import argparse
from pathlib import Path

import torch

from pixelcnn import datasets, images

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

PICK = {  # dataset -> labels of the test images to keep (the first of each)
    "mnist": (0, 2, 3, 7),
    "shapes": (0, 1, 2, 4),
    "color_mnist": (1, 4, 5, 9),
    "color_shapes": (0, 1, 2, 4),
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None, help="folder holding mnist/ (default: $PIXELCNN_DATA, else ./data)")
    p.add_argument("--out", default=str(EXAMPLES), help="where the PNGs go (default: examples/)")
    args = p.parse_args(argv)
    for name, labels in PICK.items():
        x, y = datasets.load(name, "test", args.data_dir)
        levels = datasets.shape_of(name)[3]
        for label in labels:
            i = int(torch.nonzero(y == label)[0])
            path = Path(args.out) / f"{name}_{label}.png"
            images.grid(x[i:i + 1], levels, scale=4, pad=0).save(path, optimize=True)
            print("wrote", path)


if __name__ == "__main__":
    main()
