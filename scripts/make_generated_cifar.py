"""Write generated images in the CIFAR-10 pickle format (for machines without CIFAR-10):

    .venv/bin/python scripts/make_generated_cifar.py runs/generated_cifar10 [--per-batch 1000]
                                                     [--test 1000] [--seed 0]

then train on them with ``experiment=kefan_cifar`` (its dataset.root points there). See
bbbprune.data.generated_cifar for what the images are; they are not CIFAR-10.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bbbprune.data.generated_cifar import write_generated_cifar


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--per-batch", type=int, default=1000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    folder = write_generated_cifar(args.root, args.per_batch, args.test, args.seed)
    print(f"wrote {5 * args.per_batch} training and {args.test} test images to {folder}")


if __name__ == "__main__":
    main()
