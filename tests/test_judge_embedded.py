"""The judge experiment's embedded unit on a few built-in questions: Gemma-3-270M in
process grading SmolLM2's free-text answers (slow: runs a real model)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ladder.experiments.judge_embedded import (
    LABELLINGS,
    SHADOW,
    embedded_available,
    render_embedded,
    run_embedded,
)

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not embedded_available(), reason="needs the 'local' extra "
                                 "(llama-cpp-python) to run the judge model in process")]


def test_gemma_grades_every_cell_it_is_asked_and_a_rerun_asks_nothing(tmp_path: Path):
    result = run_embedded(tmp_path, limit=12)
    assert result["n"] == 24 and result["n_train"] == result["n_test"] == 12
    for name, stats in result["labellings"].items():
        candidate, mode = stats["candidate"], LABELLINGS[name][0]
        assert 0 <= candidate["error"]["point"] <= 1
        assert candidate["cells"] == 24
        if mode == "agreement":  # long answers it cannot compare stay unlabelled, counted
            assert set(stats["failures"]) <= {"undecidable"}, name
            undecided = stats["failures"].get("undecidable", 0)
            assert candidate["labelled"] > 0
            assert undecided == stats["all"]["cells"] - stats["all"]["labelled"]  # each one
        else:  # the model in process never fails here, and answers every cell
            assert stats["failures"] == {}, name
            assert candidate["labelled"] == 24, name
    shadow, agreed = (result["labellings"][n]["candidate"] for n in
                      (SHADOW, "agreement with Gemma's answer"))
    assert shadow["labelled"] >= agreed["labelled"]  # the model fills what agreement cannot
    cached = (tmp_path / "embedded-verdicts.jsonl").read_text().count("\n")
    again = run_embedded(tmp_path, limit=12)
    assert (tmp_path / "embedded-verdicts.jsonl").read_text().count("\n") == cached
    assert again["labellings"] == result["labellings"]
    text = render_embedded(result, tmp_path, tmp_path / "page.md")
    assert "Shadow-labelled minus true-labelled" in text
