"""limitlab: train classifiers that do not memorize label noise (LIMIT, Harutyunyan et al., ICML 2020).

The method itself, usable in any training loop, is :func:`limit_loss` / :class:`LIMIT`
(``limitlab/limit.py``). Noise models are in :mod:`limitlab.noise`; the paper's protocol runs
through :func:`train` with a :class:`Config`, or the ``limitlab`` command; scikit-learn users have
:class:`LimitClassifier` and :func:`find_label_issues` (``pip install 'limitlab[sklearn]'``).

Importing the package is cheap: each public name is imported on first use (so that, for example,
``limitlab presets`` never loads torch).
"""

import sys
import types
from importlib import import_module
from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("limitlab")
except _metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

# public name -> module that defines it
_EXPORTS = {
    "LIMIT": "limit", "limit_loss": "limit",
    "Config": "config",
    "train": "train",
}
__all__ = [*_EXPORTS, "__version__"]
# Need the optional scikit-learn and pandas, so they stay out of ``import *``.
_EXPORTS.update(LimitClassifier="estimator", find_label_issues="estimator")


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'limitlab' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_EXPORTS])


class _Package(types.ModuleType):
    """Keeps ``limitlab.train`` the function :func:`limitlab.train.train` once its module is imported:
    the import system binds a loaded submodule as an attribute of its package, which would turn
    ``limitlab.train`` into the module after the first call. The module itself is reached with
    ``from limitlab.train import ...`` (or ``sys.modules["limitlab.train"]``)."""

    def __setattr__(self, name, value):
        if name in _EXPORTS and isinstance(value, types.ModuleType) and value.__name__ == f"{__name__}.{name}":
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
