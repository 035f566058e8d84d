"""Tests for workbench.evaluation.params: the evaluation schema, read and checked all at once."""

from __future__ import annotations

import subprocess
import sys

import pytest

from workbench.evaluation.params import EvalParams, Sampling, load_eval_params
from workbench.training.param_schema import schema
from workbench.training.params import ParamsError


def test_params_reject_unknown_keys_and_bad_values(tmp_path):
    with pytest.raises(ParamsError) as info:
        load_eval_params(None, {"adapter": ["x"], "temperature": -1, "select_by": "vibes", "max_samples": 0})
    message = str(info.value)
    assert "did you mean 'adapters'" in message and "temperature" in message
    assert "select_by" in message and "max_samples" in message
    file = tmp_path / "p.yaml"
    file.write_text(
        "05_evaluate:\n  base_model: m\n  eval_data: e.jsonl\n  adapters: one/dir\n  max_new_tokens: 12\n"
    )
    params = load_eval_params(file)
    assert params.adapters == ["one/dir"] and params.max_new_tokens == 12
    assert params.sampling() == Sampling(max_new_tokens=12)


def test_wrong_types_name_the_file_the_key_and_both_types(tmp_path):
    file = tmp_path / "eval.yaml"
    file.write_text("base_model: m\neval_data: e.jsonl\nadapters: [a]\nmax_listen: many\ntop_p: None\n")
    with pytest.raises(ParamsError) as info:
        load_eval_params(file)
    assert str(info.value).startswith(f"{file}: 2 parameter problem(s):")
    assert info.value.problems == [
        "max_listen: expected int, got 'many'",
        "top_p: expected float | None, got 'None' (write null for None)",
    ]


def test_the_sampling_fields_are_declared_once():
    """EvalParams takes its generation fields from Sampling: same type, default and help."""
    evaluation = {f.name: f for f in schema(EvalParams)}
    for field in schema(Sampling):
        assert evaluation[field.name] == field, field.name
        assert field.help, field.name
    assert all(f.help for f in schema(EvalParams))


def test_reading_the_evaluation_params_loads_no_torch():
    """The command line builds the evaluate flags from this module: it stays light."""
    code = "import sys, workbench.evaluation.params; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(("family", "temperature"), [("higgs-audio-v2", 0.3), ("higgs-tts-3", 1.0)])
def test_an_unset_temperature_is_the_model_familys_serving_default(family, temperature, tmp_path, caplog):
    from workbench.demo import make_tiny_model
    from workbench.evaluation.synthesis import generation_config
    from workbench.models.families import load_model_and_processor

    model, _ = load_model_and_processor(make_tiny_model(tmp_path / "m", family=family))
    config = generation_config(model, Sampling())
    assert (
        config.do_sample and config.temperature == temperature and (config.top_k, config.top_p) == (50, 0.95)
    )
    greedy = generation_config(model, Sampling(temperature=0.0))
    assert not greedy.do_sample and greedy.temperature is None
    assert generation_config(model, Sampling(temperature=0.7)).temperature == 0.7
    with caplog.at_level("WARNING", logger="workbench.evaluation.synthesis"):
        generation_config(model, Sampling(ras_win_len=7))
    ignored = "ras_win_len 7 has no effect on Higgs TTS 3" in caplog.text
    assert ignored == (family == "higgs-tts-3"), caplog.text
