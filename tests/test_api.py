"""The Python API: docs/api.md's worked example as written, and bad arguments as the command line reports them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from t5lab import pretrain
from t5lab.cli import main
from t5lab.errors import ConfigError

DOCS = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def _worked_example() -> str:
    text = DOCS.read_text(encoding="utf-8").split("## Worked example", 1)[1]
    return re.search(r"```python\n(.*?)```", text, flags=re.DOTALL).group(1)


@pytest.mark.slow
def test_the_worked_example_pretrains_finetunes_and_returns_metrics(tmp_path, monkeypatch, shared_data):
    # the example's paths are relative to the repository root, beside which ../shared/data lies
    code = _worked_example().replace("../shared/data", str(shared_data))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, str(DOCS), "exec"), namespace)
    assert {"train_loss", "eval_loss", "eval_token_accuracy", "eval_encoder_gain"} <= set(namespace["pretrain_metrics"])
    results = namespace["results"]
    assert {"eval_accuracy", "eval_invalid_rate", "eval_loss"} <= set(results)
    assert 0.0 <= results["eval_accuracy"] <= 1.0
    finetuned = tmp_path / "runs" / "api-sst2"
    for name in ("model.safetensors", "README.md", "eval_results.json", "predictions/sst2_validation.jsonl"):
        assert (finetuned / name).is_file(), name


def test_an_unknown_keyword_is_the_command_lines_unknown_flag(tmp_path, wikitext_file, capsys):
    flags = {"train_file": str(wikitext_file), "output_dir": str(tmp_path / "out")}
    with pytest.raises(ConfigError) as raised:
        pretrain(**flags, input_lenght=64)
    assert str(raised.value) == "unknown argument '--input_lenght'. Did you mean '--input_length'? (see --help)"
    code = main(["pretrain", *(f"--{k}={v}" for k, v in flags.items()), "--input_lenght", "64"])
    assert code == 2
    assert capsys.readouterr().err.strip() == f"t5lab pretrain: error: {raised.value}"
    assert not (tmp_path / "out").exists()


def test_keywords_override_the_config_file_and_mappings_go_as_in_yaml(tmp_path, wikitext_file):
    config = tmp_path / "run.yaml"
    config.write_text(f"train_file: {wikitext_file}\nnoise_density: 0.15\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^--noise_density must be strictly between 0 and 1, got 1.5.$"):
        pretrain(config=config, noise_density=1.5, output_dir=str(tmp_path / "out"))
    # a mapping is a mixture, as in a YAML config; its unknown objective is named
    with pytest.raises(ConfigError, match="span_corruptoin"):
        pretrain(config=config, objective={"span_corruptoin": 0.5, "prefix_lm": 0.5}, output_dir=str(tmp_path / "o"))
