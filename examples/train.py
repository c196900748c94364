"""A standalone training script for command mode (examples/wandb_command.yaml).

It knows nothing of hq-sweep: it takes W&B-style `--name=value` arguments and prints one
`@hq-sweep {...}` line per epoch, which the worker turns into trial.report() calls.
Run by hand:  python examples/train.py --lr=0.005 --hidden=64 --epochs=5
"""

import argparse
import json

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--alpha", type=float, default=1e-4)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=0.25, random_state=args.seed, stratify=y
    )
    scaler = StandardScaler().fit(x_train)
    x_train, x_val = scaler.transform(x_train), scaler.transform(x_val)
    model = MLPClassifier(
        hidden_layer_sizes=(args.hidden,),
        learning_rate_init=args.lr,
        alpha=args.alpha,
        batch_size=128,
        random_state=args.seed,
    )
    classes = np.unique(y)
    for epoch in range(args.epochs):
        model.partial_fit(x_train, y_train, classes=classes)
        accuracy = float(np.mean(model.predict(x_val) == y_val))
        # flush: hq-sweep prunes from these lines while the script runs
        # step = epochs done (1, 2, ...), so early_terminate's min_iter counts epochs
        print("@hq-sweep " + json.dumps({"val_accuracy": accuracy, "step": epoch + 1}),
              flush=True)
    print(f"done: val_accuracy={accuracy:.4f}")


if __name__ == "__main__":
    main()
