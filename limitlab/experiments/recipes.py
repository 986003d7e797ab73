"""CIFAR presets for the methods compared today (docs/method.md): each registered method with a
``recipe`` (:class:`limitlab.methods.MethodSpec`) is run with its paper's epochs and batch size on
ResNet-34, beside CE under the same settings, on CIFAR-10N's human labels and CIFAR-10 with uniform
noise. Called by :mod:`limitlab.experiments.presets`; imports neither torch nor the loop."""

from __future__ import annotations

from ..methods import METHODS

# The methods compared today, each with its paper's CIFAR epochs and batch size (MethodSpec.recipe) on
# ResNet-34, beside CE under the same settings.
RECIPE_CELLS = (
    *((f"cifar10n-{name}", f"labels:cifar10/CIFAR-10_human.pt:{key}", f"CIFAR-10N {name} human labels")
      for name, key in (("aggre", "aggre_label"), ("random1", "random_label1"), ("worst", "worse_label"))),
    *((f"cifar10-uniform{p:g}", f"uniform:{p:g}", f"CIFAR-10, uniform noise {p:g}") for p in (0.2, 0.5, 0.8)),
)
RECIPE_NOTE = ("Adam 1e-3 without a schedule and no weight decay replace the paper's SGD (momentum 0.9, weight decay, "
               "step or cosine schedule), which the loop does not have, so this is not the papers' protocol")


def add_recipe_presets(add, make_grid, count_text, seeds) -> None:
    """Presets ``<cell>-<method>`` for every method with a recipe, the groups ``<cell>-recipes`` (those
    methods and CE with each recipe) and ``recipes`` (every cell), through the presets module's
    ``add(name, description, grids)``, ``make_grid(base, overrides, axes, seeds)`` and ``count_text(grid)``."""
    specs = [s for s in METHODS.specs() if s.recipe]
    every = []
    for cell, noise_spec, text in RECIPE_CELLS:
        base = {"dataset": "cifar10", "model": "resnet34", "noise": noise_spec, "patience": None}
        grids = []
        for spec in specs:
            grid = make_grid(base, {"method": spec.name, **spec.recipe}, spec.grid, seeds)
            ce = make_grid(base, {"method": "ce", **spec.recipe}, {}, seeds)
            add(f"{cell}-{spec.name}", f"{text}, {spec.name} with its paper's {spec.recipe['epochs']} epochs, batch "
                f"{spec.recipe['batch_size']}, ResNet-34: {count_text(grid)}; {RECIPE_NOTE}", [grid])
            grids += [g for g in (ce, grid) if g not in grids]
        add(f"{cell}-recipes", f"{text}: {', '.join(s.name for s in specs)} with their papers' epochs and CE beside "
            f"each, ResNet-34; {RECIPE_NOTE}", grids)
        every += grids
    add("recipes", "CIFAR-10N (aggre, random1, worst) and CIFAR-10 uniform 0.2/0.5/0.8: the methods compared today "
        f"with their papers' epochs, CE beside each, ResNet-34; {RECIPE_NOTE}", every)
