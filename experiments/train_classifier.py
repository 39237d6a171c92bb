"""Train the small MNIST classifier that ganlab's digit metrics use, and report its accuracy.

    python experiments/train_classifier.py            # writes src/ganlab/metrics/mnist_classifier.pt

Trained on the first 4,000 digits of the shipped subset, tested on the other 1,000; seeded and
single-threaded, so the same command gives the same weights on the same machine.
"""

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from ganlab.data.mnist import load_mnist
from ganlab.files import check_writable, written_whole
from ganlab.metrics.mnist import WEIGHTS, DigitClassifier


def to_tensor(images):
    return (torch.from_numpy(images).float().unsqueeze(1) - 127.5) / 127.5


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--out", default=str(WEIGHTS))
    args = parser.parse_args()
    try:
        check_writable(Path(args.out))
    except OSError as error:
        parser.error(f"cannot write {args.out} ({error.strerror or error}); choose another file with --out PATH")
    torch.manual_seed(0)
    torch.set_num_threads(1)

    images, labels, _ = load_mnist(None)
    x, y = to_tensor(images), torch.from_numpy(labels.astype("int64"))
    x_train, y_train, x_test, y_test = x[:4000], y[:4000], x[4000:], y[4000:]
    model = DigitClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(args.epochs):
        model.train()
        for idx in torch.randperm(len(x_train)).split(64):
            batch = x_train[idx]
            # random shifts of up to 2 pixels: a cheap guard against overfitting 4,000 digits
            dx, dy = torch.randint(-2, 3, (2,)).tolist()
            batch = torch.roll(batch, shifts=(dy, dx), dims=(2, 3))
            loss = F.cross_entropy(model(batch), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
        print(f"epoch {epoch + 1}: test accuracy {accuracy:.4f}")
    with written_whole(Path(args.out)) as f:  # the shipped weights are replaced whole or not at all
        torch.save(model.state_dict(), f)
    print(json.dumps({"test_accuracy": accuracy, "train": 4000, "test": 1000, "epochs": args.epochs}))


if __name__ == "__main__":
    main()
