"""The plain Python PyTorch side of tools/bench_e2e: the job of
configs/mlp_fashion.json (5 epochs by default) written as a user would write
it, with nothing but PyTorch and NumPy.

  /usr/bin/python3 tools/bench_e2e_pytorch.py --epochs 5 --threads 1

Fashion-MNIST from Debian's dataset-fashion-mnist (gzip IDX), 6,000 of the
60,000 training images held out for validation, the 10,000 test images;
MLP 784-256-128-10 with ReLU and dropout 0.2 after each hidden layer; Adam
(lr 1e-3) with cosine warm restarts (T_0 20 epochs, eta_min 1e-5, stepped
per batch); batch 128, shuffled every epoch; validation accuracy after every
epoch, test accuracy at the end. Intra-op threads: --threads (OpenMP);
OpenBLAS's: --blas_threads, through openblas_set_num_threads (OpenBLAS's
OpenMP build ignores OPENBLAS_NUM_THREADS), set before torch's count
because that build's setter also sets OpenMP's.

Prints one line per phase with its seconds (the time since the process
started, as the driver measures main's), then: test_accuracy=<float>.
"""
import argparse
import ctypes
import time

START = time.perf_counter()

import numpy as np
import torch

from bench_mlp_pytorch import read_idx  # the IDX reader of tools/bench_mlp

DIR = "/usr/share/datasets/fashion-mnist"


def load(split):
    images = read_idx(f"{DIR}/{split}-images-idx3-ubyte.gz")
    labels = read_idx(f"{DIR}/{split}-labels-idx1-ubyte.gz")
    return (torch.from_numpy(images.astype(np.float32) / 255.0),
            torch.from_numpy(labels.astype(np.int64)))


def accuracy(model, images, labels):
    model.eval()
    with torch.no_grad():
        correct = 0
        for start in range(0, len(images), 1000):
            logits = model(images[start:start + 1000])
            correct += (logits.argmax(1) == labels[start:start + 1000]).sum().item()
    model.train()
    return correct / len(images)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--blas_threads", type=int, default=0,
                        help="0: OpenBLAS's own default")
    parser.add_argument("--batch_size", type=int, default=128)
    args = parser.parse_args()
    if args.blas_threads > 0:
        ctypes.CDLL("libopenblas.so.0").openblas_set_num_threads(
            args.blas_threads)
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    print(f"phase started {time.perf_counter() - START:.3f}", flush=True)

    train_images, train_labels = load("train")
    test_images, test_labels = load("t10k")
    order = torch.randperm(len(train_images))
    val_idx, train_idx = order[:6000], order[6000:]
    val_images, val_labels = train_images[val_idx], train_labels[val_idx]
    train_images, train_labels = train_images[train_idx], train_labels[train_idx]
    print(f"phase data {time.perf_counter() - START:.3f}", flush=True)

    model = torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Dropout(0.2),
        torch.nn.Linear(256, 128), torch.nn.ReLU(), torch.nn.Dropout(0.2),
        torch.nn.Linear(128, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    steps_per_epoch = (len(train_images) + args.batch_size - 1) // args.batch_size
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        optimizer, T_0=20 * steps_per_epoch, eta_min=1e-5)
    loss_fn = torch.nn.CrossEntropyLoss()
    for epoch in range(args.epochs):
        permutation = torch.randperm(len(train_images))
        for start in range(0, len(train_images), args.batch_size):
            batch = permutation[start:start + args.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(train_images[batch]), train_labels[batch])
            loss.backward()
            optimizer.step()
            scheduler.step()
        val = accuracy(model, val_images, val_labels)
        print(f"epoch {epoch + 1}: loss {loss.item():.4f} val accuracy "
              f"{val:.4f}", flush=True)
    print(f"phase trained {time.perf_counter() - START:.3f}", flush=True)
    test = accuracy(model, test_images, test_labels)
    print(f"phase tested {time.perf_counter() - START:.3f}", flush=True)
    print(f"test_accuracy={test:.4f}")


if __name__ == "__main__":
    main()
