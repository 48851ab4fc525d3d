"""One home for every explanation default: the API, the CLI and the README agree."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
from pathlib import Path

import numpy as np
import pytest

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


# ------------------------------------------------------------------------------------------------ flip
from freqrex.cli import build_parser  # noqa: E402
from freqrex.cli.dataclass_options import CliOption, add_options, dataclass_defaults, help_suffix  # noqa: E402
from freqrex.cli.evaluate import EVALUATE_CLI, protocol  # noqa: E402
from freqrex.cli.flip import EXPLANATION_CLI, FLIP_CLI  # noqa: E402
from freqrex.errors import ParameterError  # noqa: E402
from freqrex.manipulation import FlipOptions  # noqa: E402

FLIP_DEFAULTS = dataclass_defaults(FlipOptions)
#: The arguments ``freqrex evaluate`` requires.
EVALUATE_ARGS = ("clips", "--model", "m", "--out", "r.jsonl")
EVAL_DEFAULTS = dataclass_defaults(EvalOptions)


def command(name):
    """The sub-parser of ``freqrex NAME``."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def check_generated(p, table, defaults, required=()):
    """Every option of ``table``: not given -> None; its help ends with the dataclass's default."""
    args = p.parse_args(list(required))
    helps = {a.dest: a.help for a in p._actions}
    for option in table:
        assert getattr(args, option.field) is None, option.field
        assert helps[option.field].endswith(help_suffix(option, defaults[option.field])), option.field


def test_flip_cli_has_one_option_per_field_each_showing_the_dataclass_default():
    assert sorted(o.field for o in FLIP_CLI) == sorted(FLIP_DEFAULTS)
    p = command("flip")
    check_generated(p, FLIP_CLI, FLIP_DEFAULTS)
    check_generated(p, EXPLANATION_CLI, DEFAULTS)
    helps = {a.dest: a.help for a in p._actions}
    assert helps["budget"].endswith("(default 100)") and helps["k"].endswith("(default 1)")


def test_flip_cli_keeps_its_flag_names():
    flags = {s for a in command("flip")._actions for s in a.option_strings}
    for old in ("--k", "--space", "--budget", "--explain-budget", "--iterations", "--strategy", "--change",
                "--probe-snr-db", "--min-snr-db", "--max-gain-db", "--target", "--seed", "--cuts", "--n-fft",
                "--hop-length", "--duration", "--out", "--report", "--save-closest", "--vulnerability"):
        assert old in flags, old


def test_flip_api_takes_every_default_from_flip_options():
    sig = inspect.signature(freqrex.flip)
    own = {n: prm for n, prm in sig.parameters.items() if prm.kind is prm.KEYWORD_ONLY}
    assert set(own) == set(FLIP_DEFAULTS) | {"options", "explanation", "progress", "start_from", "_cache"}
    assert all(prm.default is None for prm in own.values())  # None: FlipOptions' value
    vsig = inspect.signature(freqrex.vulnerability)
    assert all(prm.default is None for prm in vsig.parameters.values() if prm.kind is prm.KEYWORD_ONLY)


def test_flip_options_validate_with_our_error():
    for bad in ({"k": 0}, {"budget": 0}, {"space": "wavelet"}, {"tol_db": 0.0}, {"max_gain_db": 0.0},
                {"probe_snr_db": 70.0}, {"minimize": "yes"}, {"n_fft": 64, "hop_length": 64},
                {"strategy": "tone_scan", "space": "stft"}, {"explain_iterations": 0}):
        with pytest.raises(ParameterError):
            FlipOptions(**bad)
    o = FlipOptions(k=np.int64(3), probe_snr_db=25)
    assert type(o.k) is int and o.k == 3 and type(o.probe_snr_db) is float


def test_flip_options_and_keywords_combine():
    from freqrex.manipulation.options import resolve_flip_options

    base = FlipOptions(k=2, budget=7)
    assert resolve_flip_options(base, {"budget": 9, "k": None}) == FlipOptions(k=2, budget=9)
    assert resolve_flip_options(None, {}) == FlipOptions()
    with pytest.raises(ParameterError):
        resolve_flip_options({"k": 2}, {})


def test_readme_quotes_the_flip_defaults():
    assert re.search(rf"`budget`, default {FLIP_DEFAULTS['budget']} model calls", README)
    assert re.search(rf"\({FLIP_DEFAULTS['probe_snr_db']:g} dB before the first\)", README)
    assert f"freqrex flip [AUDIO] --k {FLIP_DEFAULTS['k']} --budget {FLIP_DEFAULTS['budget']}" in README
    assert f'`strategy="{FLIP_DEFAULTS["strategy"]}"` (the default)' in README


@pytest.mark.parametrize("options, explanation_given, runs", [
    ({}, False, "additive"),                       # an fft quietest flip needs no explanation
    ({}, True, "causal"),                          # an explanation given is used
    ({"space": "stft"}, False, "causal"),          # the masked search has no additive variant
    ({"change": "remove"}, False, "causal"),       # fixed changes rank bins
    ({"strategy": "tone_scan"}, False, "tone_scan"),
    ({"strategy": "causal"}, False, "causal"),
])
def test_auto_strategy_resolves_by_space_change_and_explanation(options, explanation_given, runs):
    assert FlipOptions().strategy == "auto"
    assert FlipOptions(**options).strategy_for(explanation_given) == runs


def test_readme_inline_name_equals_value_quotes_agree_with_the_dataclasses():
    """Every inline `name=number` of the README naming an option whose default is the same in every options
    dataclass that has it (ExplainOptions, FlipOptions, EvalOptions) quotes that default."""
    tables = (DEFAULTS, FLIP_DEFAULTS, EVAL_DEFAULTS)
    checked = set()
    for name, value in re.findall(r"`(\w+)=(-?[0-9.]+)`", README):
        defaults = {t[name] for t in tables if name in t}
        if len(defaults) != 1:
            continue  # not an option, or one whose default differs between tasks (budget, batch_size)
        assert float(value) == float(next(iter(defaults))), (name, value)
        checked.add(name)
    assert {"max_queries", "tol_db", "masking_safety_db", "margin_tol"} <= checked


# -------------------------------------------------------------------------------------------- evaluate
def test_evaluate_cli_has_one_option_per_field_each_showing_the_dataclass_default():
    assert sorted(o.field for o in EVALUATE_CLI) == sorted(EVAL_DEFAULTS)
    p = command("evaluate")
    check_generated(p, EVALUATE_CLI, EVAL_DEFAULTS, required=EVALUATE_ARGS)
    helps = {a.dest: a.help for a in p._actions}
    assert helps["strategies"].endswith("(default causal,random,magnitude,tone_scan)")
    assert helps["ks"].endswith("(default 1,2,3,4,5)")


def test_evaluate_cli_keeps_its_flag_names_and_builds_the_protocol():
    p = command("evaluate")
    flags = {s for a in p._actions for s in a.option_strings}
    for old in ("--budget", "--iterations", "--flip-budget", "--no-equal-total", "--probe-snr-db", "--min-snr-db",
                "--ks", "--strategies", "--change", "--max-gain-db", "--no-stft", "--stft-budget", "--stft-k",
                "--stft-flip-budget", "--cuts", "--extraction-batch", "--tol", "--seed", "--duration", "--out",
                "--summary", "--limit", "--summarize-only", "--report", "--workers", "--address",
                "--threads-per-worker", "--max-retries", "--no-transfer"):
        assert old in flags, old
    base = list(EVALUATE_ARGS)
    assert protocol(p.parse_args(base)) == EvalOptions()  # nothing given: the same resume key as the API
    assert protocol(p.parse_args(base)).key("m") == EvalOptions().key("m")
    o = protocol(p.parse_args(base + ["--iterations", "2", "--no-stft", "--no-equal-total", "--ks", "1,3",
                                      "--strategies", "random, causal", "--budget", "50"]))
    assert o == EvalOptions(explain_iterations=2, stft_explain_iterations=2, stft=False, equal_total=False,
                            ks=(1, 3), strategies=("causal", "random"), explain_budget=50)
    # flip's name for the explanation's budget works here too, and --budget stays the same option
    assert protocol(p.parse_args(base + ["--explain-budget", "50"])) == protocol(p.parse_args(base + ["--budget", "50"]))
    assert "--explain-budget" in flags and protocol(p.parse_args(base + ["--explain-budget", "50"])).explain_budget == 50
    assert "--explain-budget" in {s for a in command("flip")._actions for s in a.option_strings}
    o = protocol(p.parse_args(base + ["--iterations", "2", "--stft-iterations", "3"]))
    assert (o.explain_iterations, o.stft_explain_iterations) == (2, 3)
    with pytest.raises(ParameterError):
        protocol(p.parse_args(base + ["--probe-snr-db", "90"]))  # above max_snr_db: FlipOptions' bound


def test_evaluate_flips_with_the_flip_defaults():
    o = EvalOptions()
    for eval_name, flip_name in (("flip_budget", "budget"), ("stft_flip_budget", "budget"),
                                 ("explain_budget", "explain_budget"), ("explain_iterations", "explain_iterations"),
                                 ("change", "change"), ("probe_snr_db", "probe_snr_db"), ("tol_db", "tol_db"),
                                 ("min_snr_db", "min_snr_db"), ("max_snr_db", "max_snr_db"),
                                 ("masking_safety_db", "masking_safety_db"), ("max_gain_db", "max_gain_db"),
                                 ("n_fft", "n_fft"), ("hop_length", "hop_length"), ("seed", "seed")):
        assert getattr(o, eval_name) == FLIP_DEFAULTS[flip_name], eval_name
    assert o.flip_options() == FlipOptions()


def test_readme_quotes_the_evaluate_defaults():
    p = command("evaluate")
    defaults = {a.dest: a.default for a in p._actions}
    assert defaults["threads_per_worker"] is None  # 1 on Ray (RayExecutor), the models' own in this process
    assert "`--threads-per-worker`, default 1 on Ray" in README
    assert f"`--max-retries`, default {defaults['max_retries']}" in README
    assert f"k = {min(EVAL_DEFAULTS['ks'])} and k <= {max(EVAL_DEFAULTS['ks'])}" in README


def test_generated_options_refuse_a_table_that_does_not_match_the_dataclass():
    p = argparse.ArgumentParser()
    with pytest.raises(TypeError):
        add_options(p, FlipOptions, [CliOption("no_such_field", "x")])
    with pytest.raises(TypeError):
        add_options(p, FlipOptions, [CliOption("target", "x")])  # default None: no parser to infer
