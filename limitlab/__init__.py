"""limitlab: train classifiers that do not memorize label noise (LIMIT, Harutyunyan et al., ICML 2020).

The method itself, usable in any training loop, is :func:`limit_loss` / :class:`LIMIT`
(``limitlab/limit.py``). Noise models are in :mod:`limitlab.noise`; the paper's protocol runs
through :func:`train` with a :class:`Config`, or the ``limitlab`` command; scikit-learn users have
:class:`LimitClassifier` and :func:`find_label_issues` (``pip install 'limitlab[sklearn]'``).
"""

from .limit import LIMIT, limit_loss

__version__ = "0.1.0"
__all__ = ["LIMIT", "limit_loss", "Config", "train", "LimitClassifier", "find_label_issues", "__version__"]


def __getattr__(name):
    # The loop and config import the data layer; keep ``import limitlab`` light for users who only
    # want the objective in their own loop.
    if name == "Config":
        from .config import Config
        return Config
    if name == "train":
        from .train import train
        return train
    if name in ("LimitClassifier", "find_label_issues"):  # needs the optional scikit-learn and pandas
        from . import estimator
        return getattr(estimator, name)
    raise AttributeError(f"module 'limitlab' has no attribute {name!r}")
