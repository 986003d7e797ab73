"""Training throughput, in one process on the same data and model (the paper's MNIST CNN):

  (a) a minimal plain-PyTorch CE loop written here (uint8 tensor, index slices, Adam),
  (b) limitlab's CE   (limitlab.train.train_one_epoch with the CE objective),
  (c) limitlab's LIMIT (the same with LIMIT_G: two networks, one backward).

Epochs of (a), (b), (c) are interleaved and repeated; the median epoch time of each is reported as
training images/s, with the ratios b/a (target ≥ 0.9) and time(c)/time(b) (target ≤ 2.1).

With a GPU (or --resnet), a second section times ResNet-34 (CIFAR variant) on synthetic CIFAR-size
tensors on the device, CE and LIMIT, fp32 eager vs bf16 autocast + channels_last vs + torch.compile.

    python benchmarks/speed.py                      # MNIST from $LIMITLAB_DATA, else synthetic 28×28
    python benchmarks/speed.py --train-size 4096 --repeats 7
    python benchmarks/speed.py --skip-cnn4 --resnet --device cpu --resnet-train-size 64 --resnet-batch-size 32 \
        --repeats 1 --no-compile      # a CPU smoke run of the GPU section
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from limitlab.config import Config
from limitlab.models import build_model
from limitlab.methods import build_objective
from limitlab.data.run import RunData, Split
from limitlab.runtime import Runtime
from limitlab.train import train_one_epoch


def load_images(n: int, seed: int):
    try:
        from limitlab.data import load_dataset

        data = load_dataset("mnist", download=False)
        return data.train_images[:n], data.train_labels[:n], "MNIST", data.mean, data.std
    except Exception as e:  # no MNIST here: same shapes, synthetic content (speed does not depend on it)
        g = torch.Generator().manual_seed(seed)
        print(f"(MNIST not available: {e}; using synthetic 28×28 images)")
        return (torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8),
                torch.randint(0, 10, (n,), generator=g), "synthetic", (0.5,), (0.25,))


def plain_ce_epoch(model, optimizer, images, labels, mean, std, batch_size, generator):
    """(a) The reference: what a careful user writes by hand."""
    model.train()
    order = torch.randperm(len(labels), generator=generator)
    for start in range(0, len(labels), batch_size):
        idx = order[start:start + batch_size]
        x = (images[idx].float() / 255 - mean) / std
        loss = F.cross_entropy(model(x), labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def resnet_section(args):
    """GPU fast path: ResNet-34 (CIFAR variant) on synthetic CIFAR-size uint8 tensors on the device,
    CE and LIMIT, fp32 eager (NCHW) vs bf16 autocast + channels_last vs + torch.compile."""
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(args.seed)
    n = args.resnet_train_size
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8).to(device)
    labels = torch.randint(0, 10, (n,), generator=g).to(device)
    mean = torch.tensor((0.4914, 0.4822, 0.4465), device=device).view(-1, 1, 1)
    std = torch.tensor((0.2470, 0.2435, 0.2616), device=device).view(-1, 1, 1)
    variants = [("fp32 eager", "fp32", False, False), ("bf16 + channels_last", "bf16", True, False)]
    if not args.no_compile:
        variants.append(("bf16 + channels_last + compile", "bf16", True, True))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rows = []
    for method in ("ce", "limit-g"):
        for name, precision, channels_last, compiled in variants:
            data = RunData(train=Split(labels, images), train_true=labels, val=Split(labels[:0], images[:0]), test=None,
                           num_classes=10, input_shape=(3, 32, 32), scale=1.0 / (255.0 * std), shift=mean / std,
                           noisy_entropy_bits=0.0, record={}, augmentation="crop-flip")
            if not channels_last:  # the plain layout: shadow the channels_last conversion
                data.to_input = lambda im, d=data: im.float().mul_(d.scale).sub_(d.shift)
            torch.manual_seed(args.seed)
            make = lambda role: build_model("resnet34", (3, 32, 32), 10, role=role)  # noqa: E731
            obj = build_objective(method, make, Config(method=method, beta=1.0)).to(device)
            if channels_last:
                obj = obj.to(memory_format=torch.channels_last)
            opt = torch.optim.Adam(obj.parameters(), 1e-3)
            runtime = Runtime(device, precision=precision)
            step = torch.compile(obj) if compiled else obj
            times = []
            for rep in range(args.repeats + 1):  # epoch 0: warm-up (and compilation)
                sync()
                t0 = time.perf_counter()
                train_one_epoch(obj, opt, data, batch_size=args.resnet_batch_size, generator=g, runtime=runtime, step=step)
                sync()
                if rep > 0:
                    times.append(time.perf_counter() - t0)
            rows.append((method, name, statistics.median(times)))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"\nResNet-34 (CIFAR variant), synthetic 3×32×32 uint8 on {name}, {n} images, batch "
          f"{args.resnet_batch_size}, crop/flip on the device, median of {args.repeats} epochs, torch {torch.__version__}")
    print("| method | variant | s/epoch | images/s |")
    print("|---|---|---|---|")
    for method, variant, t in rows:
        print(f"| {method} | {variant} | {t:.3f} | {n / t:,.0f} |")
    by = {(m, v): t for m, v, t in rows}
    for variant, *_ in variants:
        print(f"LIMIT / CE time per epoch, {variant}: {by[('limit-g', variant)] / by[('ce', variant)]:.2f}")
    base = variants[0][0]
    for variant, *_ in variants[1:]:
        print(f"speed-up over fp32 eager, {variant}: CE {by[('ce', base)] / by[('ce', variant)]:.2f}×, "
              f"LIMIT {by[('limit-g', base)] / by[('limit-g', variant)]:.2f}×")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-size", type=int, default=4096)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5, help="timed epochs per variant (after one warm-up epoch)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resnet", action="store_true",
                    help="also the GPU section (ResNet-34, CIFAR size); on by default when CUDA is available")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="device of the ResNet section")
    ap.add_argument("--resnet-train-size", type=int, default=16384)
    ap.add_argument("--resnet-batch-size", type=int, default=512)
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    ap.add_argument("--skip-cnn4", action="store_true", help="only the ResNet section")
    args = ap.parse_args()
    if not args.skip_cnn4:
        cnn4_section(args)
    if args.resnet or torch.cuda.is_available():
        resnet_section(args)


def cnn4_section(args):

    images, labels, source, mean, std = load_images(args.train_size, args.seed)
    n = len(labels)
    mean_t, std_t = torch.tensor(mean).view(-1, 1, 1), torch.tensor(std).view(-1, 1, 1)
    data = RunData(train=Split(labels, images), train_true=labels, val=Split(labels[:0], images[:0]), test=None,
                   num_classes=10, input_shape=tuple(images.shape[1:]), scale=1.0 / (255.0 * std_t),
                   shift=mean_t / std_t, noisy_entropy_bits=0.0, record={})

    torch.manual_seed(args.seed)
    plain = build_model("cnn4", data.input_shape, 10)
    plain_opt = torch.optim.Adam(plain.parameters(), 1e-3)
    objectives = {}
    for name, method in (("limitlab CE", "ce"), ("limitlab LIMIT", "limit-g")):
        config = Config(method=method, beta=1.0)
        make = lambda role: build_model("cnn4", data.input_shape, 10, role=role)  # noqa: E731
        obj = build_objective(method, make, config).to(memory_format=torch.channels_last)
        objectives[name] = (obj, torch.optim.Adam(obj.parameters(), 1e-3))

    g = torch.Generator().manual_seed(args.seed)
    runs = {
        "plain CE loop": lambda: plain_ce_epoch(plain, plain_opt, images, labels, mean_t, std_t, args.batch_size, g),
        **{name: (lambda o=o, opt=opt: train_one_epoch(o, opt, data, batch_size=args.batch_size, generator=g))
           for name, (o, opt) in objectives.items()},
    }
    times = {name: [] for name in runs}
    for rep in range(args.repeats + 1):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            if rep > 0:  # the first epoch of each is warm-up
                times[name].append(time.perf_counter() - t0)

    med = {name: statistics.median(ts) for name, ts in times.items()}
    print(f"data: {source}, {n} training images 1×28×28, batch {args.batch_size}, cnn4, "
          f"{torch.get_num_threads()} CPU threads, torch {torch.__version__}, median of {args.repeats} epochs")
    print("| variant | s/epoch | images/s |")
    print("|---|---|---|")
    for name, t in med.items():
        print(f"| {name} | {t:.3f} | {n / t:,.0f} |")
    print(f"limitlab CE / plain CE throughput (b/a): {med['plain CE loop'] / med['limitlab CE']:.2f}  (target ≥ 0.90)")
    print(f"LIMIT / CE time per epoch (c/b): {med['limitlab LIMIT'] / med['limitlab CE']:.2f}  (target ≤ 2.1)")


if __name__ == "__main__":
    main()
