"""scikit-learn estimator: :class:`LimitClassifier`, and :func:`find_label_issues` in cleanlab's
conventions. Needs the optional extra ``pip install 'limitlab[sklearn]'`` (scikit-learn, pandas).

    from limitlab import LimitClassifier, find_label_issues

    clf = LimitClassifier(epochs=50).fit(X, y)        # y: noisy labels of any type
    clf.predict(X_new), clf.predict_proba(X_new)
    issues = clf.label_issues_                        # one row per training example, input order
    ranked = find_label_issues(X, y, return_indices_ranked_by="label_quality")

It trains with the project's own pieces (objectives, models, the epoch and evaluation functions of
:mod:`limitlab.train`): the data live as tensors on the device, batches are index slices, and early
stopping uses a seeded split of the given (noisy) labels, as in the paper protocol.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

try:
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as e:  # scikit-learn < 1.6 lacks validate_data
    raise ImportError("LimitClassifier needs scikit-learn >= 1.6 and pandas: pip install 'limitlab[sklearn]'") from e

from . import metrics, noise
from .analysis.detect import label_issues as score_label_issues
from .budget import resolve
from .data.core import split_train_val
from .data.run import RunData, Split, standardisation
from .data.table import (DataError, check_features, check_label_values, check_not_sparse, check_same_length,
                         encode_labels)
from .epoch import predict
from .errors import LimitlabError
from .estimator_params import (OPTION_PREFIX, check_params, is_users_network, make_config, model_builder,
                               module_name, seed_of, tensor)
from .loop import BestWeightsInMemory, Loop, ProgressBar, run_epochs
from .methods import build_objective
from .onecycle import Adam
from .runtime import Runtime, machine_thread_count, resolve_device, resolve_precision
from .train import check_networks

__all__ = ["LimitClassifier", "find_label_issues"]

ISSUE_COLUMNS = ["is_label_issue", "label_quality", "given_label", "predicted_label"]


class LimitClassifier(ClassifierMixin, BaseEstimator):
    """A neural-network classifier trained with LIMIT (or any registered method) on noisy labels.

    Parameters
    ----------
    method : str, default "limit-l"
        A registered method (``limitlab.objectives.METHODS``): "limit-l", "limit-g", "ce", "gce", ...
        "ce" trains the same network with cross-entropy (e.g. as the classifier inside cleanlab's
        ``CleanLearning``).
    beta : float, default 10.0
        LIMIT's predicted-gradient norm penalty.
    module : None, str or callable, default None
        The network. None: for 2-D X an MLP sized to the features (2 × [fc W, BatchNorm, ReLU] with
        W a power of two near 8 × n_features, between 64 and 512; ``"mlp"`` is the memorization
        study's 4 × [fc512, BatchNorm, ReLU] whatever the width); for images the project's default
        for image arrays [N, C, H, W] (the paper's CNN for 28×28, a ResNet for colour images of
        32×32 and more, else the MLP). A string: a registered model name ("mlp", "linear", "cnn4", ...)
        or ``"package.module:factory"``. A callable ``module(input_shape, num_classes) -> nn.Module``
        (a fresh network per call; define it at module level so the estimator pickles).
    epochs : "auto" or int, default "auto"
        "auto": a budget of optimizer steps (:mod:`limitlab.budget`: 500 steps, at least 20 and at
        most 300 epochs) with a one-cycle learning rate (warm-up to ``lr`` over 30% of the steps,
        then cosine decay), whatever the number of rows. An int: at most that many epochs at a
        constant ``lr``.
    patience : "auto", int or None, default "auto"
        Stop after this many epochs without a better validation accuracy (None: never early).
        "auto": 400 optimizer steps' worth of epochs with ``epochs="auto"``, else 20.
    validation_fraction : "auto" or float, default "auto"
        The seeded share of the training rows held out, with their given (noisy) labels, to pick the
        best epoch. 0 (or too few rows): no early stopping; the last epoch is kept. "auto": 0.1 from
        2,000 rows on, 0 below (a few hundred noisy labels pick an epoch badly; the whole budget
        trains on every row instead).
    batch_size : "auto" or int, default "auto"
        "auto": a power of two near the training rows / 10, between 32 and 1024.
    lr : "auto" or float, default "auto"
        Adam's learning rate (one optimizer over both of LIMIT's networks; the peak of the one-cycle
        schedule with ``epochs="auto"``). "auto": 3e-3 with ``epochs="auto"``, else 1e-3.
        ``epochs=100, patience=20, validation_fraction=0.2, batch_size=256, lr=1e-3`` is the
        constant-rate protocol of earlier versions. On the CPU, ``fit`` uses the machine's free
        cores as torch threads (``OMP_NUM_THREADS`` when set) and restores the thread count after.
    weight_decay : float, default 0.0
    method_options : dict or None, default None
        Further :class:`limitlab.Config` fields for the method, e.g. ``{"warmup": 5}``,
        ``{"sample_lambda": 1.0}``, ``{"gce_q": 0.7}``, ``{"dropout": 0.2}`` (any field but the
        data's and the estimator's own parameters; each value is checked against its field's type).
        ``set_params(method_options__warmup=5)`` sets one of them, so
        ``GridSearchCV(LimitClassifier(), {"method_options__warmup": [0, 5]})`` searches it.
    device : str, default "auto"
        "auto" (CUDA when available), "cpu", "cuda", "cuda:N".
    random_state : int in [0, 2**32 - 1], RandomState or None, default None
        Seeds the validation split, the initialisation and the batch order.
    verbose : bool, default False
        Show a progress bar over epochs.

    Attributes
    ----------
    classes_ : np.ndarray
        The distinct labels of y, sorted.
    classifier_ : torch.nn.Module
        The trained classifier (the best-validation epoch's weights), in eval mode.
    q_network_ : torch.nn.Module or None
        LIMIT's q-network (None for methods without one).
    history_ : list of dict
        One record per epoch: loss parts, ``train_noisy_accuracy`` (how many given training labels
        the classifier reproduces: the memorization signal; measured with ``fit(..., true_labels=...)``
        or ``method_options={"train_eval_every": 1}``, else None), ``val_accuracy`` (on the held-out noisy
        labels; None without validation rows), ``test_accuracy`` (None: there is no test split) and
        seconds; with ``fit(..., true_labels=...)`` also ``train_clean_accuracy``,
        ``memorized_fraction``, ``corrected_fraction`` and ``info_lower_bound_bits``.
    best_epoch_ : int
    n_features_in_ : int
    feature_names_in_ : np.ndarray
        Only when X was a pandas DataFrame with string column names.
    encoding_summary_ : dict
        Only when X was a pandas DataFrame: how each column became features (the table step of
        ``--dataset table:FILE``, docs/your-data.md): ``columns`` (column, used_as, width), ``width``,
        ``features``. IDs are dropped, text and dates encoded, missing cells imputed.
    label_issues_ : pandas.DataFrame
        One row per training example in input order: ``is_label_issue`` (the prediction differs from
        the given label), ``label_quality`` (in [0, 1], low = suspicious), ``given_label``,
        ``predicted_label`` (cleanlab's columns; see :func:`find_label_issues`).
    """

    def __init__(self, *, method="limit-l", beta=10.0, module=None, epochs="auto", patience="auto",
                 validation_fraction="auto", batch_size="auto", lr="auto", weight_decay=0.0, method_options=None,
                 device="auto", random_state=None, verbose=False):
        self.method = method
        self.beta = beta
        self.module = module
        self.epochs = epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.method_options = method_options
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False          # dense tensors on the device; sparse X is refused with a reason
        tags.input_tags.three_d_array = True    # [N, H, W] images get a channel axis
        return tags

    # ------------------------------------------------------------------------------------ fit
    def fit(self, X, y, *, validation_data=None, true_labels=None, callbacks=()):
        """Train on X with the (possibly noisy) labels y.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            numpy array, pandas DataFrame (any columns: numbers, text, dates, missing cells; encoded
            as ``--dataset table:FILE`` does, fitted on these rows), or torch tensor.
        y : array-like of shape (n_samples,)
            Labels of any type (strings, non-contiguous integers).
        validation_data : tuple (X_val, y_val), optional
            Pick the best epoch on these instead of a share of X.
        true_labels : array-like of shape (n_samples,), optional
            For studies with known (synthetic) noise: the clean labels of X; adds the memorization
            measurements to ``history_``. Never used for training.
        callbacks : sequence of limitlab.loop.Callback, optional
            Called by the training loop, e.g. ``EpochCallback(fn)`` with ``fn(epoch, objective, data, row)``
            after every epoch (the classifier is ``objective.classifier``; ``data.train`` the
            training rows, as tensors on the device).

        Returns
        -------
        self
        """
        try:
            return self._fit(X, y, validation_data, true_labels, callbacks)
        except DataError:
            raise
        except LimitlabError as e:  # the same sentence, as the ValueError scikit-learn callers expect
            raise ValueError(str(e)) from None

    def _fit(self, X, y, validation_data, true_labels, callbacks):
        check_params(self)
        x, y = self._validate(X, y, reset=True, fitting=True)
        self._input_shape = x.shape[1:]
        check_classification_targets(y)
        classes, y_idx, _ = encode_labels(y)
        n, k = len(y_idx), len(classes)
        seed = seed_of(self.random_state)
        plan = resolve(n, math.prod(x.shape[1:]), epochs=self.epochs, patience=self.patience, lr=self.lr,
                       validation_fraction=self.validation_fraction, batch_size=self.batch_size,
                       given_validation=validation_data is not None)
        config = make_config(self, seed, plan, true_labels is not None)
        device = resolve_device(self.device)
        runtime = Runtime(device, precision=resolve_precision(config.precision, device))

        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise DataError("validation_data must be a pair (X_val, y_val)")
            x_val, y_val = self._validate(*validation_data, reset=False)
            _, _, y_val_idx = encode_labels(y, y_val, test_what="validation_data")
            train_idx, val_idx = np.arange(n), np.zeros(0, dtype=np.int64)
        else:
            n_val = int(round(plan.validation_fraction * n))
            if n_val >= 1 and n - n_val >= 2:
                train_idx, val_idx = split_train_val(n, plan.validation_fraction, seed)
            else:
                train_idx, val_idx = np.arange(n), np.zeros(0, dtype=np.int64)
            x_val, y_val_idx = x[val_idx], y_idx[val_idx]

        truth = y_idx
        if true_labels is not None:
            true_labels = np.asarray(true_labels.cpu() if torch.is_tensor(true_labels) else true_labels)
            check_same_length(n, len(true_labels), "X and true_labels")
            _, _, truth = encode_labels(y, true_labels, test_what="true_labels")
        noisy_entropy = float("nan")
        if true_labels is not None:
            freq = np.bincount(truth[train_idx], minlength=k)
            noisy_entropy = metrics.noisy_label_entropy_bits(
                noise.empirical_transition(truth[train_idx], y_idx[train_idx], k), freq)

        scale, shift = standardisation(torch.as_tensor(x[train_idx]), device, per_channel=x.ndim == 4)
        as_tensor = lambda a: tensor(a, device)  # noqa: E731
        x_all = as_tensor(x)
        data = self._run_data(Split(as_tensor(y_idx[train_idx]), x_all[as_tensor(train_idx)]),
                              Split(as_tensor(y_val_idx), as_tensor(x_val)), as_tensor(truth[train_idx]),
                              x.shape[1:], k, scale, shift, noisy_entropy)

        forked = [device] if device.type == "cuda" else []
        # leave the caller's global RNG (and torch's thread count) as they were
        with torch.random.fork_rng(devices=forked), machine_thread_count():
            torch.manual_seed(seed)
            make_model = model_builder(self.module, self.method, tuple(x.shape[1:]), k, config.dropout, plan)
            objective = build_objective(self.method, make_model, config, {"num_train": len(data.train), "num_classes": k})
            objective = objective.to(device, memory_format=torch.channels_last)
            check_networks(objective, data, module_name(self.module))
            # The loop of `limitlab train` (limitlab.loop), with the best weights kept in memory and
            # Adam without torch._dynamo's import (limitlab.onecycle), one-cycle over the step budget
            steps = config.epochs * math.ceil(len(data.train) / config.batch_size) if plan.one_cycle else None
            optimizer = Adam(objective.optimized_parameters(), lr=config.lr, weight_decay=config.weight_decay,
                             total_steps=steps)
            loop = Loop(objective, optimizer, data, config, runtime,
                        torch.Generator().manual_seed(seed), lr_name="lr", truth_known=true_labels is not None,
                        network=module_name(self.module) if is_users_network(self.module) else None)
            bar = [ProgressBar(f"LimitClassifier {self.method}", always=True)] if self.verbose else []
            run_epochs(loop, [BestWeightsInMemory(), *bar, *callbacks])

        self.classes_ = classes
        self.classifier_ = objective.classifier.eval()
        self.q_network_ = getattr(objective, "q_network", None)
        if self.q_network_ is not None:
            self.q_network_.eval()
        self.history_, self.best_epoch_ = loop.history, loop.best["epoch"]
        self._scale, self._shift, self._runtime = data.scale, data.shift, runtime
        self._eval_batch_size = config.eval_batch_size
        self.label_issues_ = self._issue_table(x_all, y_idx)
        return self

    def set_params(self, **params):
        """scikit-learn's ``set_params``; ``method_options__FIELD=value`` sets one method option
        (a Config field) in a copy of ``method_options``, so ``GridSearchCV`` can search any of them,
        e.g. ``param_grid={"method_options__warmup": [0, 5]}``."""
        options = {k[len(OPTION_PREFIX):]: params.pop(k) for k in list(params) if k.startswith(OPTION_PREFIX)}
        if options:
            self.method_options = {**(self.method_options or {}), **options}
        return super().set_params(**params)

    # ------------------------------------------------------------------------------------ predict
    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities [n_samples, n_classes], columns in the order of ``classes_``."""
        check_is_fitted(self)
        x, _ = self._validate(X, None, reset=False)
        return self._proba(self.classifier_, tensor(x, self._scale.device))

    def predict(self, X) -> np.ndarray:
        """The most probable class of each row, as a label from ``classes_``."""
        probs = self.predict_proba(X)
        return self.classes_[probs.argmax(1)]

    # ------------------------------------------------------------------------------------ internals
    def _validate(self, X, y, *, reset: bool, fitting: bool = False):
        """X as float32 (uint8 image arrays stay uint8) numpy [N, ...] and y as a 1-D array."""
        if torch.is_tensor(X):
            X = X.detach().cpu().numpy()
        if torch.is_tensor(y):
            y = y.detach().cpu().numpy()
        check_not_sparse(X)
        if not hasattr(X, "iloc") and np.asarray(X).ndim == 1:
            check_features(np.asarray(X))
        if y is not None and hasattr(X, "__len__") and hasattr(y, "__len__"):
            check_same_length(len(X), len(y))
        options = dict(reset=reset, allow_nd=True, ensure_all_finite=False, dtype="numeric")
        table = hasattr(X, "columns") and hasattr(X, "iloc")  # a DataFrame: the features step of table:FILE
        if table or not reset and hasattr(self, "table_encoder_"):
            options = dict(reset=reset, skip_check_array=True)
        elif reset:  # an array after a DataFrame: the old table encoding no longer applies
            for name in ("table_encoder_", "encoding_summary_"):
                self.__dict__.pop(name, None)
        if fitting or y is not None:  # fitting without y: scikit-learn's "requires y to be passed"
            x, y = validate_data(self, X, y, **options)
        else:
            x = validate_data(self, X, **options)
        if "skip_check_array" in options:
            from .data.encoding import estimator_features
            x, y = estimator_features(self, x, reset), None if y is None else np.asarray(y)
        if fitting:
            check_label_values(y)
        if x.ndim == 3:
            x = x[:, None]
        if x.ndim > 4:
            raise DataError(f"X has {x.ndim} dimensions; give rows of features [N, D] or images [N, C, H, W]")
        if not (x.ndim == 4 and x.dtype == np.uint8):
            x = x.astype(np.float32, copy=False)
        check_features(x, getattr(self, "feature_names_in_", None))
        if reset:
            return x, y
        if tuple(x.shape[1:]) != tuple(self._input_shape):
            raise DataError(f"X has rows of shape {tuple(x.shape[1:])}, but {type(self).__name__} was fitted on "
                            f"rows of shape {tuple(self._input_shape)}")
        return x, y

    def _run_data(self, train: Split, val: Split, train_true, input_shape, num_classes, scale, shift,
                  noisy_entropy: float = float("nan")) -> RunData:
        return RunData(train=train, train_true=train_true, val=val, test=None, num_classes=num_classes,
                       input_shape=tuple(input_shape), scale=scale, shift=shift, noisy_entropy_bits=noisy_entropy,
                       record={})

    def _proba(self, model: nn.Module, x: torch.Tensor) -> np.ndarray:
        labels = torch.zeros(len(x), dtype=torch.int64, device=x.device)
        data = self._run_data(Split(labels, x), Split(labels[:0], x[:0]), labels, self._input_shape,
                              len(self.classes_), self._scale, self._shift)
        probs = predict(model, data, data.train, batch_size=self._eval_batch_size, runtime=self._runtime,
                        proba=True)
        probs = probs.double().cpu().numpy()
        return probs / probs.sum(1, keepdims=True)

    def _issue_table(self, x: torch.Tensor, y_idx: np.ndarray):
        import pandas as pd

        probs_q = None if self.q_network_ is None else self._proba(self.q_network_, x)
        issues = score_label_issues(self._proba(self.classifier_, x), y_idx, probs_q)
        return pd.DataFrame({"is_label_issue": issues.is_label_issue, "label_quality": issues.label_quality,
                             "given_label": self.classes_[y_idx], "predicted_label": self.classes_[issues.predicted]},
                            columns=ISSUE_COLUMNS)


def find_label_issues(X, y, *, return_indices_ranked_by: str | None = None, **estimator_params):
    """Find the examples whose given label looks wrong, with one training run (no cross-validation).

    A :class:`LimitClassifier` is fitted on (X, y); LIMIT's classifier never sees the labels, and its
    q-network is kept from memorizing wrong ones, so their outputs on the training examples behave
    like out-of-sample predictions.

    Parameters
    ----------
    X, y : as for :meth:`LimitClassifier.fit`
    return_indices_ranked_by : None or "label_quality"
        None: return the table. "label_quality": return the positions of the flagged examples
        (``is_label_issue``), most suspicious first (like cleanlab's ``find_label_issues``).
    **estimator_params
        Parameters of :class:`LimitClassifier` (method, beta, epochs, random_state, ...).

    Returns
    -------
    pandas.DataFrame or np.ndarray
        The table has one row per example, in input order, with cleanlab's columns:
        ``is_label_issue`` (bool: the classifier predicts another class than the given label),
        ``label_quality`` (in [0, 1], low = suspicious: 1 − ‖e_ỹ − s(q)‖₂/√2 for LIMIT, cleanlab's
        normalized margin of s(f) for methods without a q-network), ``given_label``, ``predicted_label``. Sort by
        ``label_quality`` to rank all examples.
    """
    if return_indices_ranked_by not in (None, "label_quality"):
        raise ValueError(f"return_indices_ranked_by must be None or 'label_quality', not {return_indices_ranked_by!r}")
    table = LimitClassifier(**estimator_params).fit(X, y).label_issues_
    if return_indices_ranked_by is None:
        return table
    flagged = np.flatnonzero(table["is_label_issue"].to_numpy())
    return flagged[np.argsort(table["label_quality"].to_numpy()[flagged], kind="stable")]
