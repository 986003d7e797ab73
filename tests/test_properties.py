"""Property-based tests of the parsers of user input (noise specs, grid files, config files): any
input either parses or raises LimitlabError (one sentence for the CLI), never another exception."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from limitlab.config import Config, field_types  # noqa: E402
from limitlab.errors import LimitlabError  # noqa: E402
from limitlab.noise import NOISE_MODELS, parse_noise  # noqa: E402
from limitlab.experiments.presets import load_grid, preset_from_dict  # noqa: E402
from limitlab.experiments.expand import expand  # noqa: E402

FAST = settings(max_examples=int(os.environ.get("LIMITLAB_HYPOTHESIS_EXAMPLES", "200")), deadline=None)
FIELDS = [f.name for f in dataclasses.fields(Config)]

# JSON values, with the awkward ones (NaN, huge integers, nesting) in reach
scalars = (st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=12) | st.sampled_from(["ce", "limit-l", "digits", "uniform:0.4", "@ce", "auto", "fw"]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
field_names = st.sampled_from(FIELDS) | st.text(max_size=10)


def _only_limitlab_errors(call, *args):
    try:
        return call(*args)
    except LimitlabError as e:
        assert str(e).strip() and "\n" not in str(e)  # one sentence
        return None


@FAST
@given(spec=st.text(max_size=30) | st.builds(lambda name, arg: f"{name}:{arg}", st.sampled_from(sorted(NOISE_MODELS)),
                                              st.text(max_size=20) | st.floats().map(str)),
       k=st.integers(-2, 12))
def test_any_noise_spec_parses_or_is_one_sentence(spec, k):
    with tempfile.TemporaryDirectory() as tmp:  # relative matrix:FILE names resolve in an empty folder
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            t = _only_limitlab_errors(parse_noise, spec, k)
        finally:
            os.chdir(cwd)
    if t is not None:
        assert t.shape == (k, k)


@FAST
@given(d=st.dictionaries(field_names, json_values, max_size=6) | json_values)
def test_any_config_dict_reads_or_is_one_sentence(d):
    config = _only_limitlab_errors(Config.from_dict, d)
    if config is not None:
        _only_limitlab_errors(config.validate)
        for name, (types, optional) in field_types().items():
            value = getattr(config, name)
            assert (value is None and optional) or isinstance(value, types)


grid_dicts = st.fixed_dictionaries({}, optional={
    "base": st.dictionaries(field_names, json_values, max_size=3) | json_values,
    "axes": st.dictionaries(field_names, st.lists(json_values, max_size=3) | json_values, max_size=2) | json_values,
    "seeds": st.lists(st.integers(-3, 3) | json_values, max_size=3) | json_values,
    "select": st.lists(field_names, max_size=2) | json_values,
    "description": json_values,
})
grid_files = grid_dicts | st.fixed_dictionaries({"grids": st.lists(grid_dicts, max_size=2) | json_values}) | json_values


@FAST
@given(d=grid_files)
def test_any_grid_reads_and_expands_or_is_one_sentence(d):
    preset = _only_limitlab_errors(preset_from_dict, d, "grid")
    if preset is not None:
        _only_limitlab_errors(expand, preset)


@FAST
@given(text=st.text(max_size=60) | grid_files.map(json.dumps))
def test_any_grid_file_reads_or_is_one_sentence(text):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "grid.json"
        path.write_text(text)
        _only_limitlab_errors(load_grid, str(path))
