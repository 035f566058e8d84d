"""`workbench bench generate`: frames a forced-ending tiny model generates after an original-layout import."""

from __future__ import annotations

import json
from pathlib import Path

from workbench.bench.generate import bench_generate
from workbench.cli import main
from workbench.models.chat_template import BOS, PAD_EOS


def test_imported_model_stops_at_once_and_release_ids_run_to_the_limit(tmp_path: Path) -> None:
    result = bench_generate(max_new_tokens=40, workdir=tmp_path / "work")
    assert result.imported_frames == result.num_codebooks + 1 == 9
    assert result.release_frames == 40
    assert result.imported_eos == result.config_eos != result.release_eos
    assert abs(result.imported_ratio - 9 / 40) < 1e-9 and result.release_ratio == 1.0
    text = result.format_text()
    assert "9 of 40 frames = 0.225 of max_new_tokens" in text
    assert "40 of 40 frames = 1.000 of max_new_tokens" in text and "4.4x fewer frames" in text

    # The checkpoint it imported carries the release's ids, read from its own tokenizer.
    original = tmp_path / "work" / "original"
    ids = {
        t["content"]: t["id"] for t in json.loads((original / "tokenizer.json").read_text())["added_tokens"]
    }
    generation = json.loads((original / "generation_config.json").read_text())
    assert (generation["bos_token_id"], generation["eos_token_id"]) == (ids[BOS], ids[PAD_EOS])
    config = json.loads((original / "config.json").read_text())
    assert "eos_token_id" not in config and config["text_config"]["eos_token_id"] == ids[PAD_EOS]


def test_cli_prints_the_ratio_and_refuses_a_bad_budget(tmp_path: Path, capsys) -> None:
    assert main(["bench", "generate", "--max-new-tokens", "0"]) == 2
    assert "--max-new-tokens" in capsys.readouterr().err
    assert main(["bench", "generate", "--max-new-tokens", "30", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "9 of 30 frames = 0.300 of max_new_tokens" in out and "30 of 30 frames = 1.000" in out
