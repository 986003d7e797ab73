"""limitlab: train classifiers that do not memorize label noise (LIMIT, Harutyunyan et al., ICML 2020).

The method itself, usable in any training loop, is :func:`limit_loss` / :class:`LIMIT`
(``limitlab/limit.py``). Noise models are in :mod:`limitlab.noise`; the paper's protocol runs
through :func:`train` with a :class:`Config`, or the ``limitlab`` command.
"""

from importlib import metadata as _metadata

from .limit import LIMIT, limit_loss

try:
    __version__ = _metadata.version("limitlab")
except _metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
__all__ = ["LIMIT", "limit_loss", "Config", "train", "__version__"]


def __getattr__(name):
    # The loop and config import the data layer; keep ``import limitlab`` light for users who only
    # want the objective in their own loop.
    if name == "Config":
        from .config import Config
        return Config
    if name == "train":
        from .train import train
        return train
    raise AttributeError(f"module 'limitlab' has no attribute {name!r}")
