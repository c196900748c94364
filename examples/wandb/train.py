"""A plain W&B training script: nothing in it knows hq-sweep (examples/wandb/sweep.yaml).

It is written as for `wandb agent`: the trial's parameters come from `wandb.config`, each
epoch's validation accuracy goes to `wandb.log`. Under `hq-sweep run` it runs offline, and
every `wandb.log` reaches the sweep as it happens, so `early_terminate` stops weak runs
mid-training. By hand: `WANDB_MODE=offline python examples/wandb/train.py`.
"""

import numpy as np
import wandb
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

DEFAULTS = {"lr": 3e-3, "hidden": 64, "alpha": 1e-4, "epochs": 8, "seed": 0}


def main() -> None:
    run = wandb.init(config=DEFAULTS)  # a sweep's values override these
    cfg = wandb.config
    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=0.25, random_state=cfg.seed, stratify=y)
    scaler = StandardScaler().fit(x_train)
    x_train, x_val = scaler.transform(x_train), scaler.transform(x_val)
    model = MLPClassifier(hidden_layer_sizes=(cfg.hidden,), learning_rate_init=cfg.lr,
                          alpha=cfg.alpha, batch_size=128, random_state=cfg.seed)
    classes = np.unique(y)
    best = 0.0
    for epoch in range(cfg.epochs):
        model.partial_fit(x_train, y_train, classes=classes)
        accuracy = float(np.mean(model.predict(x_val) == y_val))
        best = max(best, accuracy)
        wandb.log({"val_accuracy": accuracy, "train_loss": model.loss_, "epoch": epoch})
    run.summary["best_val_accuracy"] = best
    run.finish()


if __name__ == "__main__":
    main()
