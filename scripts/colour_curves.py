"""The colour models' test curves against their targets (issue #4's for colour shapes, #16's
for colour MNIST), from the shipped facts files.

    python scripts/colour_curves.py   # reads weights/*.json, writes docs/colour_curves.png

Each facts file holds its run's test NLL after every evaluated epoch, up to the shipped weights,
and those of the run it started from (train.py --init), drawn before it.
"""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from pixelcnn import datasets, files, weights  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

MODELS = {"pixelrcnn": "PixelRCNN", "pixelrcnn_ar": "PixelRCNN, R→G→B", "gated": "Gated PixelCNN"}
TARGETS = {"color_shapes": 1.15 * datasets.entropy_bound("color_shapes"), "color_mnist": 70.0}


def curve(facts):
    """(step, test NLL) after each evaluation, the runs a run started from (--init) first."""
    before = curve(facts["started_from"]) if "started_from" in facts else []
    offset = before[-1][0] if before else 0
    return before + [(offset + h["step"], h["test_nats_per_image"]) for h in facts["history"]]


def main(out=ROOT / "docs" / "colour_curves.png"):
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    for ax, (dataset, target) in zip(axes, TARGETS.items()):
        best = []
        for model, label in MODELS.items():
            facts = files.read_facts(weights.weights_path(model, dataset))
            if not facts:
                continue
            steps, nats = zip(*curve(facts))
            ax.plot(steps, nats, "o-", ms=3,
                    label=f"{label}: {facts['test_nats_per_image']:.2f}")
            best.append(facts["test_nats_per_image"])
        ax.axhline(target, color="k", ls="--", lw=1, label=f"target {target:.1f}")
        low = target
        if dataset == "color_shapes":
            low = datasets.entropy_bound(dataset)
            ax.axhline(low, color="k", ls=":", lw=1, label=f"entropy bound {low:.2f}")
        ax.set_ylim(0.8 * low, 1.3 * max(best))  # the first epochs' NLL dwarfs the rest
        ax.set(title=dataset, xlabel="training step (64 images)", ylabel="test NLL (nats/image)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
