"""The ``limitlab train`` flags, derived from the Config fields' declarations (limitlab.config.setting):
one flag per field, its help text and parser from the field, its default shown from Config, the
choices of --dataset, --noise, --model and --method from their registries, and a method option's
help prefixed with the methods that read it."""

from __future__ import annotations

import argparse

from .config import Config, field_infos, parse_size

positive_size = parse_size  # --train-size's parser, also used by `limitlab study`


def registry_help(text: str, field: str) -> str:
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


def add_train_flags(p: argparse.ArgumentParser) -> None:
    """One flag per Config field. SUPPRESS: only flags the user gave reach the namespace, so
    --resume can tell them apart."""
    defaults = Config()
    for info in field_infos():
        if info.parse is None:  # a switch
            p.add_argument(info.flag, dest=info.name, action="store_true", default=argparse.SUPPRESS,
                           help=registry_help(info.help, info.name))
            continue
        default = getattr(defaults, info.name)
        shown = "" if default is None or "(default" in info.help else f" (default: {default})"
        p.add_argument(info.flag, dest=info.name, type=info.parse, default=argparse.SUPPRESS,
                       metavar=info.name.upper(), help=registry_help(info.help, info.name) + shown)


def given_fields(args: argparse.Namespace) -> dict:
    """The Config fields the user gave as flags."""
    fields = {info.name for info in field_infos()}
    return {k: v for k, v in vars(args).items() if k in fields}
