"""The first thing to run on a GPU machine: one command, no download, about 5 minutes on one GPU
(``--budget-s`` keeps it under 8 by skipping the compile steps that would not fit).

    python benchmarks/gpu_check.py                  # writes gpu_check.json and prints a table
    python benchmarks/gpu_check.py --smoke          # every section on CPU with tiny sizes (the tests run this)

Sections; each is recorded even when another one fails, and the exit code is 1 if any failed:

  env       torch, CUDA, the GPU, bf16 support.
  resnet    training images/s for CE and LIMIT_L, ResNet-34 (CIFAR variant) on generated CIFAR-shaped
            uint8 data held on the device, crop/flip on the device, batch 512: fp32 eager (NCHW; TF32
            as in limitlab runs), bf16 autocast + channels_last, and the same + torch.compile; peak
            GPU memory of each; the LIMIT/CE time ratio.
  train     ``limitlab train`` for 2 epochs on a CIFAR-10 archive written here in the official
            format (class-dependent images, so the run has something to learn), bf16 + --compile.
  ddp       ``torchrun --nproc-per-node 1 -m limitlab train``: NCCL process group, the DDP-wrapped
            step and the collectives of the loop (gloo in --smoke).
  sharing   cnn4 LIMIT_L on MNIST-shaped data in 1, 2 and 4 processes on the same GPU at once:
            images/s of each and in total (what ``limitlab sweep --runs-per-gpu`` relies on).

Nothing is downloaded; every dataset is generated. The JSON holds every figure and error.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # one command from a fresh checkout, installed or not

from limitlab.config import Config  # noqa: E402
from limitlab.data.run import RunData, Split  # noqa: E402
from limitlab.methods import build_objective  # noqa: E402
from limitlab.models import build_model  # noqa: E402
from limitlab.runtime import start_runtime  # noqa: E402
from limitlab.train import make_optimizer, train_one_epoch  # noqa: E402

# Sizes per mode. GPU: enough images for steady timings, divisible by the batch (no recompilation
# for a smaller last batch). Smoke: the smallest that runs every code path on a CPU in seconds.
SIZES = {
    # gpu: archive_train 12800 leaves 10,240 training images after the 20% validation split, 20 batches of 512
    "gpu": dict(resnet="resnet34", resnet_side=32, resnet_images=10240, resnet_batch=512, resnet_epochs=2,
                archive_train=12800, archive_test=2000, train_size=None, train_batch=512, ddp_train_size=2048,
                share_images=16384, share_batch=256, share_seconds=10.0, share_procs=(1, 2, 4)),
    "smoke": dict(resnet="resnet18", resnet_side=8, resnet_images=4, resnet_batch=4, resnet_epochs=1,
                  archive_train=20, archive_test=4, train_size=8, train_batch=4, ddp_train_size=8,
                  share_images=256, share_batch=128, share_seconds=0.5, share_procs=(1, 2)),
}
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def generated_data(n: int, shape: tuple[int, ...], device: torch.device, seed: int, mean, std,
                   augmentation: str | None = None) -> RunData:
    """Random uint8 images and labels on ``device`` as the loop's RunData (training split only)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8).to(device)
    labels = torch.randint(0, 10, (n,), generator=g).to(device)
    mean = torch.tensor(mean, device=device).view(-1, 1, 1)
    std = torch.tensor(std, device=device).view(-1, 1, 1)
    return RunData(train=Split(labels, images), train_true=labels, val=Split(labels[:0], images[:0]), test=None,
                   num_classes=10, input_shape=shape, scale=1.0 / (255.0 * std), shift=mean / std,
                   noisy_entropy_bits=0.0, record={}, augmentation=augmentation)


# ------------------------------------------------------------------------------------------- env
def env_section(device: torch.device) -> dict:
    out = {"torch": torch.__version__, "python": sys.version.split()[0], "device": str(device)}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        out.update(gpu=props.name, capability=f"{props.major}.{props.minor}", memory_gib=props.total_memory / 2**30,
                   cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
                   bf16=torch.cuda.is_bf16_supported(), gpus=torch.cuda.device_count())
    return out


# ------------------------------------------------------------------------------------------- resnet34
def resnet_variant(device, method: str, precision: str, channels_last: bool, compiled: bool, s: dict,
                   seed: int) -> dict:
    """Training images/s of one (method, variant): one warm-up epoch (compilation included), then the
    best of ``resnet_epochs`` timed epochs."""
    runtime = start_runtime(Config(device=str(device), precision=precision))  # limitlab's flags (TF32, cudnn)
    shape = (3, s["resnet_side"], s["resnet_side"])
    data = generated_data(s["resnet_images"], shape, device, seed, CIFAR_MEAN, CIFAR_STD, "crop-flip")
    if not channels_last:  # the plain layout: shadow the loop's channels_last conversion
        data.to_input = lambda im, d=data: im.float().mul_(d.scale).sub_(d.shift)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    torch.manual_seed(seed)
    config = Config(method=method, beta=10.0)
    objective = build_objective(method, lambda role: build_model(s["resnet"], shape, 10, role=role, stem="cifar"), config)
    objective = objective.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    optimizer = make_optimizer(objective, config, device)
    step = torch.compile(objective) if compiled else objective
    g = torch.Generator().manual_seed(seed)
    times = []
    for epoch in range(1 + s["resnet_epochs"]):
        synchronize(device)
        t0 = time.perf_counter()
        train_one_epoch(objective, optimizer, data, batch_size=s["resnet_batch"], generator=g, runtime=runtime,
                        step=step)
        synchronize(device)
        times.append(time.perf_counter() - t0)
    best = min(times[1:])
    out = {"images_per_s": s["resnet_images"] / best, "epoch_s": best, "first_epoch_s": times[0]}
    if device.type == "cuda":
        out["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    if compiled:
        torch._dynamo.reset()
    return out


RESNET_VARIANTS = [("fp32 eager", "fp32", False, False), ("bf16 + channels_last", "bf16", True, False),
                   ("bf16 + channels_last + compile", "bf16", True, True)]


def resnet_section(device, s: dict, smoke: bool, seed: int, deadline: float, rows: dict, compiled_only: bool) -> dict:
    """The eager variants (``compiled_only=False``) or the compiled ones, added to ``rows``."""
    variants = [v for v in RESNET_VARIANTS if v[3] == compiled_only]
    for name, precision, channels_last, compiled in variants:
        for method in ("ce", "limit-l"):
            key = f"{method} | {name}"
            if compiled and smoke:
                rows[key] = {"skipped": "no torch.compile in --smoke (minutes on a CPU)"}
                continue
            if compiled and time.monotonic() > deadline - 150:
                rows[key] = {"skipped": "not enough of --budget-s left for a compilation"}
                continue
            try:
                rows[key] = resnet_variant(device, method, precision, channels_last, compiled, s, seed)
            except Exception as e:  # one failing variant must not hide the others
                rows[key] = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=-3)}
            print(f"  {s['resnet']} {key}: {_short(rows[key])}", flush=True)
    ratios = {}
    for name, *_ in RESNET_VARIANTS:
        ce, lim = rows.get(f"ce | {name}", {}), rows.get(f"limit-l | {name}", {})
        if "epoch_s" in ce and "epoch_s" in lim:
            ratios[name] = lim["epoch_s"] / ce["epoch_s"]
    return {"model": s["resnet"], "image_side": s["resnet_side"], "images": s["resnet_images"],
            "batch_size": s["resnet_batch"], "variants": rows,
            "limit_over_ce_time": ratios}


# ------------------------------------------------------------------------------------------- CIFAR archive
def write_cifar10_archive(path: Path, n_train: int, n_test: int, seed: int = 0) -> None:
    """A CIFAR-10 archive in the official format (``cifar-10-batches-py/data_batch_1..5``,
    ``test_batch``, ``batches.meta``: pickled dicts with bytes keys) holding generated images: each
    class has its own colour plus pixel noise, so a network can learn it (through crops and flips)."""
    rng = np.random.default_rng(seed)
    patterns = np.repeat(rng.integers(40, 216, (10, 3)), 1024, axis=1).astype(np.int16)  # [10, 3072]

    def batch(n):
        labels = rng.integers(0, 10, n)
        noise = rng.integers(-60, 61, (n, 3072), dtype=np.int16)
        data = np.clip(patterns[labels] + noise, 0, 255).astype(np.uint8)
        return {b"batch_label": b"generated", b"labels": labels.tolist(), b"data": data,
                b"filenames": [f"img_{i}.png".encode() for i in range(n)]}

    per_batch = -(-n_train // 5)
    files = {f"data_batch_{i + 1}": batch(min(per_batch, n_train - i * per_batch)) for i in range(5)}
    files["test_batch"] = batch(n_test)
    files["batches.meta"] = {b"label_names": [f"class{i}".encode() for i in range(10)],
                             b"num_cases_per_batch": per_batch, b"num_vis": 3072}
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name, obj in files.items():
            raw = pickle.dumps(obj, protocol=3)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))


def _child_env(extra: dict | None = None) -> dict:
    """The environment of a child process: this checkout of limitlab first on its path."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **(extra or {})}


def _limitlab(args: list[str], timeout: float, env: dict | None = None, torchrun: bool = False):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1"] \
        if torchrun else [sys.executable]
    t0 = time.perf_counter()
    proc = subprocess.run([*launcher, "-m", "limitlab", "train", *args], capture_output=True, text=True,
                          timeout=timeout, env=_child_env(env))
    return proc, time.perf_counter() - t0


def _error_text(proc) -> str:
    """limitlab's one-line error if it printed one (last), after the end of the output."""
    text = proc.stdout[-1000:] + proc.stderr[-3000:]
    ours = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "limitlab: error:" in ln]
    return text + ("\n" + ours[-1] if ours else "")


def _run_files(run: Path) -> tuple[dict, list[dict]]:
    summary = json.loads((run / "summary.json").read_text())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return summary, rows


def train_section(device, s: dict, smoke: bool, data_dir: Path, work: Path, deadline: float) -> dict:
    # GPU: the CIFAR default model (resnet34), bf16, compiled. Smoke: resnet18 in fp32 without
    # compilation (bf16 autocast on a CPU without bf16 units is ~100× slower; the resnet section covers it)
    fast = ["--model", "resnet18", "--precision", "fp32"] if smoke else ["--precision", "bf16", "--compile"]
    if not smoke and time.monotonic() > deadline - 150:  # a cold compilation would not fit
        fast = ["--precision", "bf16"]
    run = work / "train"
    args = ["--dataset", "cifar10", "--data-dir", str(data_dir), "--noise", "uniform:0.2", "--method", "limit-l",
            "--epochs", "2", "--batch-size", str(s["train_batch"]), *fast,
            *(["--train-size", str(s["train_size"])] if s["train_size"] else []),
            "--device", str(device), "--quiet", "--out", str(run)]
    proc, seconds = _limitlab(args, timeout=max(60.0, deadline - time.monotonic()))
    out = {"command": "limitlab train " + " ".join(args), "seconds": seconds, "returncode": proc.returncode,
           "compile": "--compile" in args}
    if proc.returncode != 0:
        out["error"] = _error_text(proc)
        return out
    summary, rows = _run_files(run)
    out.update(test_accuracy=summary["test_accuracy"], train_size=summary["train_size"],
               epoch_train_seconds=[r["train_seconds"] for r in rows], epoch_seconds=[r["seconds"] for r in rows],
               learned=None if smoke else summary["test_accuracy"] > 0.3)  # chance is 0.1
    return out


def ddp_section(device, s: dict, data_dir: Path, work: Path, deadline: float) -> dict:
    run = work / "ddp"
    args = ["--dataset", "cifar10", "--data-dir", str(data_dir), "--model", "resnet18", "--method", "limit-l",
            "--train-size", str(s["ddp_train_size"]), "--epochs", "1", "--batch-size", str(s["train_batch"]),
            "--device", str(device), "--quiet", "--out", str(run)]
    proc, seconds = _limitlab(args, timeout=max(60.0, deadline - time.monotonic()), torchrun=True)
    out = {"command": "torchrun --standalone --nproc-per-node 1 -m limitlab train " + " ".join(args),
           "backend": "nccl" if device.type == "cuda" else "gloo", "seconds": seconds,
           "returncode": proc.returncode}
    if proc.returncode != 0:
        out["error"] = _error_text(proc)
        return out
    summary, _ = _run_files(run)
    out["test_accuracy"] = summary["test_accuracy"]
    return out


# ------------------------------------------------------------------------------------------- sharing
def share_worker(args) -> None:
    """One of several processes on the same device: cnn4 LIMIT_L on MNIST-shaped data; after a
    warm-up epoch it waits for the others, then trains for ``--seconds`` and writes its images/s."""
    device = torch.device(args.device)
    runtime = start_runtime(Config(device=args.device))
    data = generated_data(args.images, (1, 28, 28), device, args.seed, (0.1307,), (0.3081,))
    torch.manual_seed(args.seed)
    config = Config(method="limit-l", beta=10.0)
    objective = build_objective("limit-l", lambda role: build_model("cnn4", (1, 28, 28), 10, role=role), config)
    objective = objective.to(device, memory_format=torch.channels_last)
    optimizer = make_optimizer(objective, config, device)
    g = torch.Generator().manual_seed(args.seed)
    train_one_epoch(objective, optimizer, data, batch_size=args.batch_size, generator=g, runtime=runtime)
    ready = Path(args.sync_dir)
    (ready / f"ready-{args.rank}").touch()
    while len(list(ready.glob("ready-*"))) < args.procs:
        time.sleep(0.01)
    images, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < args.seconds:
        train_one_epoch(objective, optimizer, data, batch_size=args.batch_size, generator=g,
                        runtime=runtime)  # ends with a sync
        images += args.images
    seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    Path(args.result).write_text(json.dumps({"images_per_s": images / seconds, "peak_memory_gib": peak}))


def sharing_section(device, s: dict, work: Path, deadline: float, smoke: bool) -> dict:
    rows = {}
    for procs in s["share_procs"]:
        if time.monotonic() > deadline - 30:
            rows[str(procs)] = {"skipped": "not enough of --budget-s left"}
            continue
        sync = work / f"share-{procs}"
        sync.mkdir()
        env = _child_env({"OMP_NUM_THREADS": "1"} if smoke else None)
        cmds = [[sys.executable, __file__, "--share-worker", "--device", str(device), "--images", str(s["share_images"]),
                 "--batch-size", str(s["share_batch"]), "--seconds", str(s["share_seconds"]), "--procs", str(procs),
                 "--rank", str(r), "--sync-dir", str(sync), "--result", str(sync / f"result-{r}.json")]
                for r in range(procs)]
        started = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for c in cmds]
        errors = []
        for p in started:
            try:
                _, err = p.communicate(timeout=max(30.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                _, err = p.communicate()
            if p.returncode != 0:
                errors.append(err[-2000:])
        if errors:
            rows[str(procs)] = {"error": errors[0]}
        else:
            each = [json.loads((sync / f"result-{r}.json").read_text()) for r in range(procs)]
            rows[str(procs)] = {"images_per_s_each": [e["images_per_s"] for e in each],
                                "images_per_s_total": sum(e["images_per_s"] for e in each),
                                "peak_memory_gib_each": [e["peak_memory_gib"] for e in each]}
        print(f"  sharing {procs} process(es): {_short(rows[str(procs)])}", flush=True)
    base = rows.get("1", {}).get("images_per_s_total")
    for r in rows.values():
        if base and "images_per_s_total" in r:
            r["total_over_one_process"] = r["images_per_s_total"] / base
    return {"model": "cnn4", "method": "limit-l", "images": s["share_images"], "batch_size": s["share_batch"],
            "seconds": s["share_seconds"], "processes": rows}


# ------------------------------------------------------------------------------------------- report
def _short(row: dict) -> str:
    if "error" in row:
        return "ERROR " + row["error"].strip().splitlines()[-1][:200]
    if "skipped" in row:
        return "skipped: " + row["skipped"]
    return ", ".join(f"{k} {v:,.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()
                     if not isinstance(v, (list, dict)))


def print_report(r: dict) -> None:
    e = r["sections"].get("env", {})
    print(f"\n# gpu_check ({r['mode']}): {e.get('gpu', e.get('device'))}, torch {e.get('torch')}, "
          f"CUDA {e.get('cuda')}, {r['seconds']:.0f} s\n")
    res = r["sections"].get("resnet", {})
    if "variants" in res:
        side = res["image_side"]
        print(f"{res['model']} (CIFAR variant), {res['images']} generated 3×{side}×{side} images on the device, batch "
              f"{res['batch_size']}, crop/flip on the device, best timed epoch:\n")
        print("| method | variant | images/s | peak memory GiB | first epoch s |")
        print("|---|---|---|---|---|")
        for key, v in res["variants"].items():
            method, variant = key.split(" | ")
            if "images_per_s" in v:
                mem = f"{v['peak_memory_gib']:.2f}" if "peak_memory_gib" in v else "-"
                print(f"| {method} | {variant} | {v['images_per_s']:,.0f} | {mem} | {v['first_epoch_s']:.1f} |")
            else:
                print(f"| {method} | {variant} | {_short(v)} | | |")
        for variant, ratio in res["limit_over_ce_time"].items():
            print(f"LIMIT / CE time per epoch, {variant}: {ratio:.2f}")
    for name in ("train", "ddp"):
        if name not in r["sections"]:
            continue
        v = r["sections"][name]
        status = "ok" if v.get("returncode") == 0 else "FAILED"
        extra = f", test accuracy {v['test_accuracy']:.3f}" if "test_accuracy" in v else ""
        if name == "train" and "epoch_train_seconds" in v:
            extra += ", training seconds per epoch " + " / ".join(f"{t:.1f}" for t in v["epoch_train_seconds"])
        print(f"\n{name}: {status} in {v.get('seconds', 0):.0f} s{extra}\n  {v.get('command', '')}")
        if "error" in v:
            print("  " + v["error"].strip().splitlines()[-1][:300] if v["error"].strip() else "")
    sh = r["sections"].get("sharing", {})
    if "processes" in sh:
        print(f"\ncnn4 LIMIT_L, MNIST-shaped, batch {sh['batch_size']}, processes sharing the device:\n")
        print("| processes | images/s total | per process | × one process |")
        print("|---|---|---|---|")
        for procs, v in sh["processes"].items():
            if "images_per_s_total" in v:
                print(f"| {procs} | {v['images_per_s_total']:,.0f} | "
                      f"{', '.join(f'{x:,.0f}' for x in v['images_per_s_each'])} | "
                      f"{v.get('total_over_one_process', float('nan')):.2f} |")
            else:
                print(f"| {procs} | {_short(v)} | | |")
    failed = [k for k, v in r["sections"].items() if "error" in v or _has_error(v)]
    print(f"\n{'all sections ran' if not failed else 'FAILED: ' + ', '.join(failed)}; figures: {r['json']}")


def _has_error(v) -> bool:
    if isinstance(v, dict):
        return "error" in v or any(_has_error(x) for x in v.values())
    return False


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="every section on CPU with tiny sizes, no compilation")
    ap.add_argument("--device", default=None, help="default: cuda (cpu with --smoke)")
    ap.add_argument("--out", default="gpu_check.json", help="the JSON file to write")
    ap.add_argument("--budget-s", type=float, default=450.0,
                    help="compile steps that would not fit in this many seconds are skipped")
    # cheap sections first, the compilations last: what a short lease gets through is the most
    ap.add_argument("--sections", nargs="*", default=["env", "resnet", "ddp", "sharing", "resnet-compile", "train"])
    ap.add_argument("--seed", type=int, default=0)
    # the worker of the sharing section (started by this script)
    ap.add_argument("--share-worker", action="store_true", help=argparse.SUPPRESS)
    for flag, typ in (("--images", int), ("--batch-size", int), ("--seconds", float), ("--procs", int),
                      ("--rank", int), ("--sync-dir", str), ("--result", str)):
        ap.add_argument(flag, type=typ, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.share_worker:
        share_worker(args)
        return 0

    device = torch.device(args.device or ("cpu" if args.smoke else "cuda"))
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU here; run with --smoke for the CPU check of every section", file=sys.stderr)
        return 2
    mode = "smoke" if args.smoke else "gpu"
    s = SIZES[mode]
    start = time.monotonic()
    deadline = start + args.budget_s
    sections: dict = {}
    resnet_rows: dict = {}  # both resnet sections fill one table
    result = {"mode": mode, "sizes": s, "sections": sections, "json": args.out}
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        work = Path(tmp)
        data_dir = work / "data"
        def compile_section():  # its rows join the resnet table (one table, one set of ratios)
            ratios = resnet_section(device, s, args.smoke, args.seed, deadline, resnet_rows, True)["limit_over_ce_time"]
            if "resnet" in sections:
                sections["resnet"]["limit_over_ce_time"] = ratios
            return {"variants": [k for k in resnet_rows if k.endswith("compile")], "rows": "in resnet.variants"}

        runners = {
            "env": lambda: env_section(device),
            "resnet": lambda: resnet_section(device, s, args.smoke, args.seed, deadline, resnet_rows, False),
            "resnet-compile": lambda: compile_section(),
            "train": lambda: train_section(device, s, args.smoke, data_dir, work, deadline),
            "ddp": lambda: ddp_section(device, s, data_dir, work, deadline),
            "sharing": lambda: sharing_section(device, s, work, deadline, args.smoke),
        }
        for name in args.sections:
            if name in ("train", "ddp") and not (data_dir / "cifar10").exists():
                write_cifar10_archive(data_dir / "cifar10" / "cifar-10-python.tar.gz", s["archive_train"],
                                      s["archive_test"], args.seed)
            print(f"[{time.monotonic() - start:5.0f} s] {name}", flush=True)
            t0 = time.monotonic()
            try:
                sections[name] = runners[name]()
            except Exception as e:
                sections[name] = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=-5)}
            sections[name]["section_seconds"] = time.monotonic() - t0
            result["seconds"] = time.monotonic() - start
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(result, indent=2, default=str) + "\n")  # partial results survive
    print_report(result)
    return 1 if any(_has_error(v) for v in sections.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
