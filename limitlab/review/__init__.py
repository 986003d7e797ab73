"""``limitlab review``: a local page to review a run's suspected label errors with the keyboard, and
the corrected labels it exports (docs/review.md). Needs ``pip install 'limitlab[review]'``.

From Python, :func:`review_labels` serves the same page for a fitted LimitClassifier or a
find_label_issues table and returns the corrected labels."""

from .api import review_labels

__all__ = ["review_labels"]
