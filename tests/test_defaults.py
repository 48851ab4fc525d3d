"""One home for every explanation default: the API, the CLI and the README agree."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
from pathlib import Path

import freqrex
from freqrex.cli.explain_options import QUALITY_QUERIES, _CLI, add_explain_options, explain_kwargs
from freqrex.options import ExplainOptions
from freqrex.evaluation.protocol import EvalOptions

DEFAULTS = {f.name: f.default for f in dataclasses.fields(ExplainOptions)}
README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def parser():
    p = argparse.ArgumentParser()
    add_explain_options(p)
    p.add_argument("--no-quality", action="store_true")
    return p


def test_cli_options_default_to_none_and_show_the_dataclass_default():
    p = parser()
    args = p.parse_args([])
    for name in _CLI:
        assert getattr(args, name) is None  # nothing given: the API's default applies
    helps = {a.dest: a.help for a in p._actions}
    for name in _CLI:
        assert helps[name].endswith(f"(default {DEFAULTS[name]})"), name


def test_cli_passes_only_what_was_given_and_keeps_the_quality_curves_inside_the_total():
    p = parser()
    assert explain_kwargs(p.parse_args(["--no-quality"])) == {}
    assert explain_kwargs(p.parse_args([])) == {"max_queries": DEFAULTS["max_queries"] - QUALITY_QUERIES}
    assert explain_kwargs(p.parse_args(["--max-queries", "100", "--rule", "rex", "--no-quality"])) == \
        {"max_queries": 100, "rule": "rex"}


def test_api_has_no_defaults_of_its_own():
    sig = inspect.signature(freqrex.explain)
    own = [n for n, prm in sig.parameters.items() if prm.kind is prm.KEYWORD_ONLY]
    assert set(own) <= {"progress", "backend"}  # every explanation option comes from ExplainOptions


def test_the_default_explanation_is_400_queries_in_all_and_the_readme_says_so():
    assert DEFAULTS["max_queries"] == 400 and DEFAULTS["rule"] == "margin"
    assert "max_queries=400" in README
    assert re.search(r"at most 400 model queries", README)


def test_evaluate_explains_with_the_same_budget():
    o = EvalOptions()
    assert o.explain_budget == DEFAULTS["budget"]
