"""The ``limitlab`` command: parse flags, build a Config, call the library. Nothing imports this."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .config import Config
from .errors import LimitlabError

DEFAULTS = Config()


def _optional_int(text: str) -> int | None:
    return None if text.lower() in ("none", "off", "0") else int(text)


def _optional_float(text: str) -> float | None:
    return None if text.lower() in ("none", "off") else float(text)


def _positive_size(text: str) -> int | None:
    """--train-size: a number of examples, or 'all'/'none' for the whole training split."""
    return None if text.lower() in ("none", "all") else int(text)


# (flag, config field, type, help). Defaults come from Config and are shown in --help; the choices
# of --dataset, --noise, --model and --method come from their registries (see _registry_help), and a
# method option's help names the methods that read it.
TRAIN_FLAGS = [
    ("--dataset", "dataset", str, "dataset: {datasets}"),
    ("--label-column", "label_column", str, "table:FILE (.csv/.parquet): the column holding the labels (default: label)"),
    ("--data-dir", "data_dir", str, "folder holding <dataset>/ files (else $LIMITLAB_DATA, else ~/.cache/limitlab)"),
    ("--noise", "noise", str, "label noise: {noise} (labels:FILE[:KEY] imports noisy labels for the official "
                              "training set, e.g. labels:CIFAR-10_human.pt:aggre_label)"),
    ("--train-size", "train_size", _positive_size, "use only the first N examples of the shuffled training split "
                                                   "('all': the whole split)"),
    ("--val-fraction", "val_fraction", float, "share of the official training set held out for validation"),
    ("--model", "model", str, "architecture: {models}, or your own network as package.module:factory, called "
                              "factory(input_shape, num_classes) for each network (default: cnn4 for 28×28 images, "
                              "resnet34 for colour images up to 64×64, resnet50 above, mlp otherwise)"),
    ("--method", "method", str, "training method: {methods}"),
    ("--beta", "beta", float, "weight of the predicted-gradient norm penalty β‖s(f) − s(q)‖²"),
    ("--sample-lambda", "sample_lambda", _optional_float,
     "+S: give the classifier a sample around the predicted gradient (Gaussian std √(1/2λ) / Laplace scale 1/λ)"),
    ("--warmup", "warmup", int, "epochs at the start in which only the q-network trains"),
    ("--grad-noise", "grad_noise", str, "noise on each example's logit gradient, gaussian:SIGMA or laplace:SIGMA"),
    ("--gce-q", "gce_q", float, "the exponent q in (0, 1]"),
    ("--penalty-lambda", "penalty_lambda", float, "λ of ‖z‖²‖e_y − s(q)‖²"),
    ("--penalty-beta", "penalty_beta", float, "β of ‖z‖²‖s(f) − s(q)‖²"),
    ("--transition", "transition", str, "a known K×K noise matrix T (.npy/.csv/.txt) instead of the estimate"),
    ("--init-from", "init_from", str, "a CE run directory: the classifier starts from its best checkpoint (fw, dmi)"),
    ("--q-init-from", "q_init_from", str,
     "'+': the q-network starts from this CE run's best classifier (weights and BatchNorm buffers)"),
    ("--dropout", "dropout", float, "dropout rate in the hidden layers"),
    ("--weight-decay", "weight_decay", float, "Adam weight decay"),
    ("--lr", "lr", float, "Adam learning rate (one optimizer over all networks)"),
    ("--batch-size", "batch_size", int, "training batch size"),
    ("--epochs", "epochs", int, "maximum number of epochs"),
    ("--patience", "patience", _optional_int,
     "stop after this many epochs without a better validation accuracy ('none' or 0: never stop early)"),
    ("--seed", "seed", int, "seed of the split, the label noise, the initialisation and the batch order"),
    ("--device", "device", str, "auto (cuda when available), cpu, cuda, cuda:N"),
    ("--precision", "precision", str, "auto (bf16 autocast on CUDA, fp32 on CPU), fp32 or bf16"),
    ("--image-size", "image_size", _optional_int,
     "image-file datasets: crop size, after resizing the shorter side to 8/7 of it (default: the dataset's, 224)"),
    ("--workers", "workers", int, "loader processes for image-file datasets (clothing1m, imagefolder)"),
    ("--train-eval-every", "train_eval_every", int,
     "pass over the training set for the memorization metrics every k epochs (0: never; large datasets)"),
    ("--eval-batch-size", "eval_batch_size", int,
     "batch size of the evaluation passes (lower it for large images on a small GPU)"),
    ("--test-every", "test_every", int,
     "also a test-set pass every k epochs, for per-epoch test curves (0: only at a new best validation epoch "
     "and at the last epoch, all that the reported test accuracy needs)"),
]


def _registry_help(text: str, field: str) -> str:
    """A flag's help with the registries' choices filled in, and, for a method's own option, the
    methods that read it."""
    if "{" in text:
        from .data import dataset_specs_text
        from .methods import METHODS
        from .models import MODELS
        from .noise import noise_specs_text

        text = text.format(datasets=dataset_specs_text(), noise=noise_specs_text(), models=MODELS.choices_text(),
                           methods=METHODS.choices_text())
    from .methods import option_fields, readers

    if field in option_fields():
        text = f"{', '.join(readers(field))}: {text}"
    return text


def _add_train_flags(p: argparse.ArgumentParser) -> None:
    for flag, field, typ, text in TRAIN_FLAGS:
        default = getattr(DEFAULTS, field)
        shown = "" if default is None else f" (default: {default})"
        # SUPPRESS: only flags the user gave reach the namespace, so --resume can tell them apart.
        p.add_argument(flag, dest=field, type=typ, default=argparse.SUPPRESS, metavar=field.upper(),
                       help=_registry_help(text, field) + shown)
    p.add_argument("--clean-validation", dest="clean_validation", action="store_true", default=argparse.SUPPRESS,
                   help="validate on true labels instead of noisy ones (default: noisy validation, as in the paper)")
    p.add_argument("--compile", dest="compile", action="store_true", default=argparse.SUPPRESS,
                   help="torch.compile the training step (worth it on GPUs; minutes of start-up on CPU)")
    p.add_argument("--pretrained", dest="pretrained", action="store_true", default=argparse.SUPPRESS,
                   help="start resnet50 from ImageNet weights (needs torchvision: pip install 'limitlab[pretrained]')")


def _given(args: argparse.Namespace) -> dict:
    fields = {field for _, field, _, _ in TRAIN_FLAGS} | {"clean_validation", "compile", "pretrained"}
    return {k: v for k, v in vars(args).items() if k in fields}


def cmd_train(args: argparse.Namespace) -> int:
    from .train import train

    given = _given(args)
    if args.resume:
        saved = Config.load(Path(args.out) / "config.json") if (Path(args.out) / "config.json").exists() else None
        if saved is not None:
            differing = [k for k, v in given.items() if getattr(saved, k) != v and k != "device"]
            if differing:
                raise LimitlabError(f"--resume continues the saved run, but {', '.join('--' + k.replace('_', '-') for k in differing)} "
                                    "differ from its config.json; drop those flags or start a new --out")
        # Everything comes from the saved config, except a --device given now (another machine).
        config = Config(device=given.get("device", saved.device if saved else "auto"))
    elif args.config:
        # A config file (e.g. a run's config.json, or one written by a sweep); flags override it.
        config = Config.from_dict({**Config.load(args.config).to_dict(), **given})
    else:
        config = Config(**given)
    summary = train(config, args.out, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for all
        _print_summary([summary])
        print(f"run directory: {args.out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The README's main job: CE vs LIMIT on the embedded digits with synthetic label noise."""
    from .train import train

    rows = []
    for method in ("ce", "limit-l"):
        config = Config(dataset="digits", noise=args.noise, method=method, epochs=args.epochs,
                        patience=None, seed=args.seed, batch_size=128, **({"beta": args.beta} if method != "ce" else {}))
        print(f"training {method} on digits with {args.noise} label noise ({args.epochs} epochs) ...", file=sys.stderr)
        rows.append(train(config, Path(args.out) / method, overwrite=True, progress=not args.quiet))
    _print_summary(rows)
    print(f"run directories: {Path(args.out) / 'ce'}, {Path(args.out) / 'limit-l'}")
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    from .analysis.report import write_study
    from .experiments.presets import memorization_configs
    from .experiments.studies import run_study

    configs = memorization_configs(epochs=args.epochs, train_size=args.train_size, data_dir=args.data_dir,
                                   seed=args.seed, dropout=args.dropout, weight_decay=args.weight_decay,
                                   beta=args.beta, dataset=args.dataset, noise=args.noise)
    size = "all" if args.train_size is None else args.train_size
    title = f"{args.dataset}, {args.noise} label noise, MLP, {size} training examples"
    summaries, runs = run_study(configs, args.out, progress=not args.quiet)
    write_study(args.out, "memorization", runs, title)
    _print_summary([{**s, "method": name} for name, s in summaries.items()])
    print(f"curves: {Path(args.out) / 'memorization.csv'}, plot: {Path(args.out) / 'memorization.png'}")
    return 0


def cmd_detect(args: argparse.Namespace) -> int:
    from .analysis.detect import detect

    result = detect(args.run, score=args.score, top=args.top, out=args.out, batch_size=args.batch_size,
                    progress=not args.quiet, device=args.device, data_dir=args.data_dir)
    print(json.dumps(result, indent=2))
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    from .experiments.presets import list_presets

    presets = list_presets()
    width = max(len(name) for name, _ in presets)
    for name, description in presets:
        if args.filter is None or args.filter in name:
            print(f"{name.ljust(width)}  {description}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from .experiments.sweep import run_sweep

    options = dict(item.split("=", 1) for item in args.launcher_option)
    statuses = run_sweep(args.preset, args.out, jobs=args.jobs, dry_run=args.dry_run, launcher=args.launcher,
                         progress=not args.quiet, launcher_options=options or None, threads=args.threads,
                         runs_per_gpu=args.runs_per_gpu)
    failed = [s for s in statuses if not s.ok]
    if failed and not args.dry_run:
        print(f"limitlab: {len(failed)} of {len(statuses)} runs did not complete: "
              + "; ".join(f"{s.name} ({s.state}: {s.message})" for s in failed[:5]), file=sys.stderr)
        return 1
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .analysis.report import write_report

    if not Path(args.dir).is_dir():
        raise LimitlabError(f"{args.dir} is not a directory; give the folder that holds the run directories")
    written = write_report(args.dir, out=args.out, preset=args.preset)
    print(written["report.md"].read_text())
    print("written: " + ", ".join(str(p) for p in written.values()))
    return 0


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: X)" only where X says something: not for None, an off switch or an empty
    list, nor where the help text already names its default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is None or action.default is False or action.default == [] or "(default" in text:
            return text
        return super()._get_help_string(action)


def _print_summary(rows: list[dict]) -> None:
    cols = [("method", "method", "{}"), ("test acc (best val)", "test_accuracy", "{:.3f}"),
            ("test acc (last)", "final_test_accuracy", "{:.3f}"),
            ("train acc on noisy labels", "final_train_noisy_accuracy", "{:.3f}"),
            ("memorized", "memorized_fraction", "{:.3f}"), ("corrected", "corrected_fraction", "{:.3f}"),
            ("info bound (bits)", "info_lower_bound_bits", "{:.3f}"), ("best epoch", "best_epoch", "{}")]
    cell = lambda v, fmt: "-" if v is None else fmt.format(v)  # noqa: E731  (None: not measured)
    table = [[c[0] for c in cols]] + [[cell(r[key], fmt) for _, key, fmt in cols] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    for row in table:
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths)))


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``limitlab`` parser. With ``command``, only that subcommand gets its arguments (the others
    are listed by name), so that ``limitlab --help`` and ``limitlab presets`` stay free of torch and
    of the data layer, whose registries the training flags' help texts are built from."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="limitlab",
        description="Train classifiers that do not memorize label noise (LIMIT, Harutyunyan et al., ICML 2020).",
    )
    parser.add_argument("--version", action="version", version=f"limitlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("train", help="train one run under the paper protocol and write its run directory",
                       description="Train one run: seeded 80/20 split, synthetic noise on training and validation "
                                   "labels, Adam, early stopping on (noisy) validation accuracy, clean test accuracy "
                                   "at the best-validation epoch. Writes config.json, metrics.jsonl, "
                                   "noisy_labels.npz, checkpoints/{last,best}.pt and summary.json into --out.",
                       epilog="example: limitlab train --dataset mnist --noise uniform:0.8 --train-size 1000 "
                              "--method limit-g --beta 1 --seed 0 --out runs/x")
    p.set_defaults(func=cmd_train)
    if command in (None, "train"):
        _add_train_flags(p)
        p.add_argument("--config", help="start from this config JSON (e.g. another run's config.json); flags override it")
        p.add_argument("--out", required=True, help="run directory to create (must be missing or empty)")
        p.add_argument("--resume", action="store_true", help="continue the run in --out from checkpoints/last.pt")
        p.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out")
        p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("demo", help="CE vs LIMIT on the embedded digits data with label noise (about a minute)",
                       description="Trains cross-entropy and LIMIT_L on the embedded 8×8 digits (UCI, no download) "
                                   "with synthetic label noise and prints their results side by side.",
                       formatter_class=_DefaultsFormatter)
    p.set_defaults(func=cmd_demo)
    if command in (None, "demo"):
        p.add_argument("--noise", default="uniform:0.6", help="label noise spec")
        p.add_argument("--epochs", type=int, default=100, help="epochs (no early stopping: watch CE memorize)")
        p.add_argument("--beta", type=float, default=10.0, help="LIMIT's β")
        p.add_argument("--seed", type=int, default=0, help="seed")
        p.add_argument("--out", default="runs/demo", help="where the two run directories go (earlier demo runs there are replaced)")
        p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("study", help="multi-run studies of the paper (memorization: the paper's first figure)",
                       description="memorization: MNIST with 80%% uniform label noise, the 4-layer MLP, no early "
                                   "stopping, clean validation; trains CE, CE + dropout, CE + weight decay and "
                                   "LIMIT_L, and writes memorization.png (training accuracy on the noisy labels and "
                                   "clean test accuracy per epoch) and memorization.csv (the curves and the "
                                   "information lower bound). Finished runs in --out are reused, interrupted ones "
                                   "resumed. For a short CPU version: --epochs 30 --train-size 5000.",
                       formatter_class=_DefaultsFormatter)
    p.set_defaults(func=cmd_study)
    if command in (None, "study"):
        p.add_argument("name", choices=["memorization"], help="which study")
        p.add_argument("--out", required=True, help="study directory (one run directory per method inside)")
        p.add_argument("--epochs", type=int, default=400, help="epochs per run (the paper: 400)")
        p.add_argument("--train-size", type=_positive_size, default=None, help="training examples (default: all 48k)")
        p.add_argument("--dataset", default="mnist", help="dataset")
        p.add_argument("--data-dir", default=None, help="data folder (else $LIMITLAB_DATA, else ~/.cache/limitlab)")
        p.add_argument("--noise", default="uniform:0.8", help="label noise")
        p.add_argument("--dropout", type=float, default=0.5, help="dropout of the CE + dropout run")
        p.add_argument("--weight-decay", type=float, default=1e-4, help="weight decay of the CE + weight decay run")
        p.add_argument("--beta", type=float, default=10.0, help="LIMIT_L's β")
        p.add_argument("--seed", type=int, default=0, help="seed")
        p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("detect", help="score every training label of a run for how likely it is wrong",
                       description="Scores each training example of RUN's best checkpoint for how likely its label "
                                   "is wrong: limit_gradient_mismatch = ‖ĝ − g‖ = ‖e_y − s(q)‖ for LIMIT runs, "
                                   "classifier_disagreement = 1 − s(f)_y for any run. Writes label_errors.csv "
                                   "(ranked: index into the official training set, given label, predicted label, "
                                   "score), suspects.png (the top suspects with given → predicted labels) and "
                                   "detection.json (AUROC, precision@k, recall@k, and precision/recall/F1 of the "
                                   "examples whose prediction differs from their label, when the corruption is "
                                   "known).",
                       formatter_class=_DefaultsFormatter)
    p.set_defaults(func=cmd_detect)
    if command in (None, "detect"):
        p.add_argument("run", help="a run directory written by limitlab train")
        p.add_argument("--score", default="auto",
                       help="auto (limit_gradient_mismatch for LIMIT runs, else classifier_disagreement), "
                            "limit_gradient_mismatch or classifier_disagreement")
        p.add_argument("--top", type=int, default=64, help="suspects in the image grid, and the k of precision@k")
        p.add_argument("--out", default=None, help="where to write the files (default: the run directory)")
        p.add_argument("--batch-size", type=int, default=256, help="batch size of the scoring pass")
        p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
        p.add_argument("--data-dir", default=None,
                       help="where the run's data are now (default: the run's saved --data-dir if it still exists, "
                            "else $LIMITLAB_DATA, else ~/.cache/limitlab)")
        p.add_argument("--quiet", action="store_true", help="no progress messages")

    p = sub.add_parser("presets", help="list the named presets (the paper's experiments), one line each")
    p.set_defaults(func=cmd_presets)
    if command in (None, "presets"):
        p.add_argument("filter", nargs="?", default=None, help="show only names containing this text, e.g. mnist-n1000")

    p = sub.add_parser("sweep", help="run every run of a preset or grid file, N at a time, resumably",
                       description="Expands PRESET (a name from `limitlab presets`, or a JSON grid file with "
                                   "description, base, axes, seeds, select) into runs, one run directory each under "
                                   "--out named from its settings, and runs up to --jobs at a time (CPU threads "
                                   "split between them, or one GPU each). Complete runs are skipped, interrupted ones "
                                   "resumed, runs locked by another live process left alone; fw/dmi/'+' runs start "
                                   "after the CE run they build on. Re-run the same command after a stop.",
                       formatter_class=_DefaultsFormatter)
    p.set_defaults(func=cmd_sweep)
    if command in (None, "sweep"):
        p.add_argument("preset", help="preset name or JSON grid file")
        p.add_argument("--out", required=True, help="sweep directory")
        p.add_argument("--jobs", type=int, default=None,
                       help="runs at a time (default: 1, or with --runs-per-gpu N on a GPU machine, N × the GPUs)")
        p.add_argument("--runs-per-gpu", type=int, default=None, metavar="N",
                       help="up to N runs share each GPU at once (small models such as cnn4 use a fraction of a "
                            "modern GPU; benchmarks/gpu_check.py measures the gain); default: one GPU per run, "
                            "shared only when --jobs exceeds the GPUs")
        p.add_argument("--threads", type=int, default=None, help="CPU threads per run (default: cores / jobs)")
        p.add_argument("--dry-run", action="store_true", help="print the runs and their state; run nothing")
        p.add_argument("--launcher", default="local", choices=["local", "submitit"],
                       help="local processes, or submit through submitit (SLURM; pip install submitit)")
        p.add_argument("--launcher-option", action="append", default=[], metavar="KEY=VALUE",
                       help="submitit options, e.g. cluster=slurm, slurm_partition=gpu, timeout_min=600")
        p.add_argument("--quiet", action="store_true", help="no progress lines")

    p = sub.add_parser("report", help="aggregate the runs under DIR into the paper's tables and plots",
                       description="Collects every run directory under DIR; per table cell (dataset, noise, train "
                                   "size, method) selects the hyperparameters with the best mean noisy-validation "
                                   "accuracy over seeds (docs/method.md §7) and reports mean ± std over seeds of the test "
                                   "accuracy at the best-validation epoch and of the final training accuracy on the "
                                   "noisy labels. Writes report.md, report.csv, accuracy_vs_noise.png and curves.png; "
                                   "missing cells and seeds of a partial sweep are marked.",
                       formatter_class=_DefaultsFormatter)
    p.set_defaults(func=cmd_report)
    if command in (None, "report"):
        p.add_argument("dir", help="a sweep directory (or any folder of run directories)")
        p.add_argument("--out", default=None, help="where to write the report (default: DIR)")
        p.add_argument("--preset", default=None, help="the preset of the sweep, to mark missing cells and seeds")
    return parser


def _one_sentence(error: LimitlabError) -> str:
    """The message, without the traceback a DataLoader worker wraps around errors it re-raises."""
    text = str(error)
    if text.startswith("Caught LimitlabError"):
        text = text.strip().splitlines()[-1].split("LimitlabError: ", 1)[-1]
    return " ".join(text.splitlines())  # one line, whatever a quoted value held


def main(argv: list[str] | None = None) -> int:
    # OpenMP threads that wait sleep instead of spinning on cores other jobs need (read when torch
    # loads, so set before; benchmarks/RESULTS.md, "Threads"); the user's own setting wins
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), "")
    args = build_parser(command).parse_args(argv)
    try:
        return args.func(args)
    except LimitlabError as e:
        print(f"limitlab: error: {_one_sentence(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("limitlab: interrupted; continue with --resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `limitlab presets | head`
        sys.stdout = open(os.devnull, "w")
        return 0
