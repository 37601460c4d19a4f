"""The judge: agreement on hand-checked answer pairs, the rubric's soft label, failures
that leave a cell unlabelled, and `ladder label` on run logs (sources kept through round
trips, resumable, real labels left alone)."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ladder.backends.base import Backend, BackendError, Generation, OptionScores, Usage
from ladder.cli import app
from ladder.config import Price
from ladder.judge.agreement import agreement
from ladder.judge.grader import Judge
from ladder.judge.label import journal_path, label_runlog
from ladder.judge.rubric import JudgeGarbage, Rubric, read_words, render, yes_share
from ladder.rung import Rung
from ladder.runlog import RunLogError, load_runlog, read_runlog, validate_runlog, write_runlog

runner = CliRunner()

# (candidate, reference, label): checked by hand
AGREEMENT = [
    ("A", "A", 1.0), ("(b)", "B", 1.0), ("C", "D", 0.0),
    ("12", "12.0", 1.0), ("1,200", "1200", 1.0), ("12", "13", 0.0),
    ("Paris", "paris, France", 1.0), ("The Amazon", "amazon river", 1.0),
    ("Paris or Lyon", "Paris", 0.0), ("Berlin", "Paris", 0.0),
    ("Noo-Noo", "noonoo", 1.0), ("four", "4", 1.0),
    (None, "Paris", 0.0), ("", "Paris", 0.0),
]
UNDECIDABLE = [
    ("The capital of France is Paris, a city on the Seine", "Paris"),  # long: a model's job
    ("Paris", None), ("Paris", "  "),  # no reference answer to compare with
]


@pytest.mark.parametrize(("candidate", "reference", "label"), AGREEMENT)
def test_agreement_labels_hand_checked_pairs(candidate, reference, label):
    assert agreement(candidate, reference) == label


@pytest.mark.parametrize(("candidate", "reference"), UNDECIDABLE)
def test_agreement_says_when_it_cannot_tell(candidate, reference):
    assert agreement(candidate, reference) is None


def test_the_soft_label_is_p_yes_over_yes_and_no():
    assert yes_share(math.log(0.3), math.log(0.1)) == pytest.approx(0.75)
    assert yes_share(-1000.0, -1001.0) == pytest.approx(1 / (1 + math.exp(-1)))
    with pytest.raises(JudgeGarbage):
        yes_share(-math.inf, -math.inf)
    with pytest.raises(JudgeGarbage):
        yes_share(math.nan, -1.0)
    assert read_words(" Yes, it is.") == 1.0 and read_words("no") == 0.0
    with pytest.raises(JudgeGarbage):
        read_words("maybe so")


def test_the_rubric_keeps_braces_in_answers():
    text = render(Rubric().prompt, "What is {x}?", "{y} }", "{z")
    assert "Question: What is {x}?" in text and "Candidate answer: {y} }" in text
    assert "Reference answer: {z" in text


class ScriptedJudge(Backend):
    """A judge model whose yes/no log-probabilities (or words, or failure) are given."""

    def __init__(self, yes: float = -0.1, no: float = -2.0, *, words: str | None = None,
                 error: bool = False, delay: float = 0.0):
        self.yes, self.no, self.words, self.error, self.delay = yes, no, words, error, delay
        self.scores_options = words is None
        self.prompts: list[str] = []

    async def _call(self, prompt: str) -> None:
        self.prompts.append(prompt)
        await asyncio.sleep(self.delay)
        if self.error:
            raise BackendError("judge server down")

    async def generate(self, prompt: str, *, max_tokens: int = 32,
                       stop: Sequence[str] = ("\n",), temperature: float = 0.0) -> Generation:
        await self._call(prompt)
        return Generation(self.words or "", (), Usage(len(prompt.split()), 1, 0.0))

    async def score_options(self, prompt: str, options: Sequence[str]) -> OptionScores:
        await self._call(prompt)
        assert tuple(options) == (" yes", " no")
        return OptionScores(((self.yes,), (self.no,)), Usage(10, 0, 0.0))


def judge_of(backend: Backend, **kwargs) -> Judge:
    return Judge(Rung("judge", backend, Price(per_call=0.5)), **kwargs)


def grade(judge: Judge, *args, **kwargs):
    return asyncio.run(judge.grade(*args, **kwargs))


def test_short_answers_are_graded_by_agreement_without_a_model_call():
    backend = ScriptedJudge()
    verdict = grade(judge_of(backend, reference="top"), "Capital of France?", "Paris",
                    "Paris, France")
    assert (verdict.quality, verdict.source, verdict.cost) == (1.0, "reference", 0.0)
    assert backend.prompts == []


def test_free_text_goes_to_the_judge_model_with_the_reference_rubric():
    backend = ScriptedJudge(yes=math.log(0.8), no=math.log(0.2))
    verdict = grade(judge_of(backend, reference="top"), "Capital of France?",
                    "It is the city of Paris, on the Seine river", "Paris")
    assert verdict.source == "judge" and verdict.quality == pytest.approx(0.8)
    assert verdict.cost == 0.5
    assert "Reference answer: Paris" in backend.prompts[0]
    solo = grade(judge_of(backend), "Capital of France?", "Paris")
    assert solo.source == "judge" and "Proposed answer: Paris" in backend.prompts[1]
    assert "Reference answer" not in backend.prompts[1]


def test_mode_model_asks_the_judge_even_for_short_answers():
    backend = ScriptedJudge(yes=math.log(0.1), no=math.log(0.9))
    verdict = grade(judge_of(backend, reference="top", mode="model"), "Q?", "Paris", "Paris")
    assert verdict.quality == pytest.approx(0.1) and len(backend.prompts) == 1


@pytest.mark.parametrize(("backend", "kind"), [
    (ScriptedJudge(error=True), "backend"),
    (ScriptedJudge(delay=1.0), "timeout"),
    (ScriptedJudge(words="perhaps"), "garbage"),
    (ScriptedJudge(yes=-math.inf, no=-math.inf), "garbage"),
])
def test_a_failing_judge_gives_no_label_and_counts_why(backend, kind):
    judge = judge_of(backend, timeout_s=0.05)
    verdict = grade(judge, "Q?", "a long answer that agreement cannot compare at all here",
                    None)
    assert verdict.quality is None and verdict.source is None and kind in verdict.error
    assert judge.failures == {kind: 1}


def test_a_chat_only_judge_answers_in_words():
    verdict = grade(judge_of(ScriptedJudge(words="Yes.")), "Q?", "an answer")
    assert (verdict.quality, verdict.source) == (1.0, "judge")


def test_agreement_only_cannot_grade_free_text():
    judge = Judge(None, reference="top")
    verdict = grade(judge, "Q?", "a long answer that agreement cannot compare with it", "Paris")
    assert verdict.quality is None and judge.failures == {"undecidable": 1}
    with pytest.raises(ValueError):
        Judge(None)


def small_log() -> pd.DataFrame:
    rows = []
    answers = {"q1": ("Paris", "Paris"), "q2": ("Lyon", "Paris"),
               "q3": ("It could be Marseille or maybe Nice, in the south", "Nice"),
               "q4": ("7", "7")}
    for qid, (cheap, top) in answers.items():
        rows.append({"query_id": qid, "model": "cheap", "quality": None, "cost": 1.0,
                     "prompt": f"question {qid}", "answer": cheap})
        rows.append({"query_id": qid, "model": "top", "quality": None, "cost": 5.0,
                     "prompt": f"question {qid}", "answer": top})
    df = pd.DataFrame(rows)
    df.loc[(df.query_id == "q4") & (df.model == "cheap"), "quality"] = 0.0  # a human label
    return validate_runlog(df)


def test_label_fills_only_empty_cells_and_marks_their_source(tmp_path: Path):
    out = tmp_path / "labelled.jsonl"
    backend = ScriptedJudge(yes=math.log(0.25), no=math.log(0.75))
    summary = asyncio.run(label_runlog(small_log(), judge_of(backend, reference="top"), out))
    df = load_runlog(out).set_index(["query_id", "model"])
    assert df.loc[("q1", "cheap"), "quality"] == 1.0
    assert df.loc[("q2", "cheap"), "quality"] == 0.0
    assert df.loc[("q1", "cheap"), "label_source"] == "reference"
    assert df.loc[("q3", "cheap"), "quality"] == pytest.approx(0.25)  # free text: the model
    assert df.loc[("q3", "cheap"), "label_source"] == "judge"
    assert df.loc[("q4", "cheap"), "quality"] == 0.0  # the human label is left alone ...
    assert df.loc[("q4", "cheap"), "label_source"] == "human"
    assert df.loc[("q4", "cheap"), "judge_quality"] == 1.0  # ... and the judge's kept beside
    assert (df.xs("top", level="model")["label_source"] == "judge").all()  # graded alone
    assert df["label_judge"].dropna().str.startswith("judge=judge;reference=top").all()
    assert summary.kept == 1 and summary.calibrated == 1 and summary.unlabelled == 0
    assert summary.filled == {"reference": 2, "judge": 5}


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet", ".jsonl.gz"])
def test_label_sources_survive_a_round_trip(tmp_path: Path, suffix: str):
    out = tmp_path / f"labelled{suffix}"
    asyncio.run(label_runlog(small_log(), judge_of(ScriptedJudge(), reference="top"), out))
    first = load_runlog(out)
    again = tmp_path / f"again{suffix}"
    write_runlog(first, again)
    second = load_runlog(again)
    for column in ("quality", "label_source", "label_judge", "judge_quality"):
        assert first[column].tolist() == second[column].tolist() or np.allclose(
            first[column], second[column], equal_nan=True)
    assert set(second["label_source"]) == {"human", "reference", "judge"}


def test_a_rerun_resumes_and_a_changed_judge_starts_afresh(tmp_path: Path):
    out = tmp_path / "labelled.jsonl"
    asyncio.run(label_runlog(small_log(), judge_of(ScriptedJudge(), reference="top"), out))
    assert journal_path(out).exists()
    down = ScriptedJudge(error=True)  # same judge settings, server now down: all resumed
    summary = asyncio.run(label_runlog(small_log(), judge_of(down, reference="top"), out))
    assert down.prompts == [] and summary.resumed == 8 and summary.unlabelled == 0
    other = judge_of(ScriptedJudge(error=True), reference="top", mode="model")
    summary = asyncio.run(label_runlog(small_log(), other, out))
    assert summary.resumed == 0 and summary.unlabelled == 7  # every cell re-asked, failed
    df = load_runlog(out)
    assert df["quality"].isna().sum() == 7  # no made-up label
    assert summary.failures == {"backend": 8}


def test_the_reference_agrees_with_itself_when_no_judge_model_is_given(tmp_path: Path):
    out = tmp_path / "labelled.jsonl"
    summary = asyncio.run(label_runlog(small_log(), Judge(None, reference="top"), out))
    df = load_runlog(out).set_index(["query_id", "model"])
    assert (df.xs("top", level="model")["quality"] == 1.0).all()
    assert np.isnan(df.loc[("q3", "cheap"), "quality"])  # free text, nobody to ask
    assert summary.failures == {"undecidable": 1}


def test_a_sampling_judge_sees_only_its_share_of_queries(tmp_path: Path):
    out = tmp_path / "labelled.jsonl"
    asyncio.run(label_runlog(small_log(), Judge(None, reference="top"), out, sample=0.5))
    df = load_runlog(out)
    judged = df.groupby("query_id")["label_source"].apply(lambda s: s.isin(
        ["reference", "judge"]).any())
    assert judged.sum() in (1, 2) and not judged.all()


def test_the_run_log_refuses_bad_label_sources():
    df = small_log()
    df["label_source"] = None
    bad = df.copy()
    bad.loc[6, "label_source"] = "oracle"
    with pytest.raises(RunLogError, match=r"label_source.*'oracle'"):
        validate_runlog(bad)
    unlabelled = df.copy()
    unlabelled.loc[0, "label_source"] = "judge"
    with pytest.raises(RunLogError, match="quality is empty"):
        validate_runlog(unlabelled)
    outside = df.copy()
    outside["judge_quality"] = 1.5
    with pytest.raises(RunLogError, match="judge_quality"):
        validate_runlog(outside)


@pytest.fixture()
def cli_setup(tmp_path: Path) -> tuple[Path, Path]:
    log = tmp_path / "log.jsonl"
    write_runlog(small_log(), log)
    config = tmp_path / "ladder.yaml"
    config.write_text("models:\n  - {name: grader, backend: fake, skill: 0.9}\n"
                      "judge: {model: grader, mode: auto}\n")
    return log, config


def test_ladder_label_end_to_end(cli_setup: tuple[Path, Path], tmp_path: Path):
    log, config = cli_setup
    out = tmp_path / "labelled.csv"
    result = runner.invoke(app, ["label", str(log), "--config", str(config), "--reference",
                                 "top", "-o", str(out)])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "by reference" in said and "by judge" in said and f"wrote {out}" in said
    df = read_runlog(out)
    assert df["quality"].notna().all()
    assert json.loads(json.dumps(sorted(set(df["label_source"])))) == ["human", "judge",
                                                                        "reference"]


@pytest.mark.parametrize(("args", "message"), [
    ([], "name a judge 'model', a 'reference' rung, or both"),
    (["--reference", "nobody"], "reference rung 'nobody' is not a model of the log"),
    (["--judge", "grader"], "name the config"),
    (["--reference", "top", "--mode", "sometimes"], "mode"),
    (["--reference", "top", "--sample", "0"], "--sample"),
])
def test_ladder_label_explains_bad_input(cli_setup, tmp_path: Path, args, message):
    log, _ = cli_setup
    result = runner.invoke(app, ["label", str(log), "-o", str(tmp_path / "o.jsonl"), *args])
    assert result.exit_code == 2 and message in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_the_top_model_as_reference_on_real_mcq_labels_like_the_benchmark(shared_data, tmp_path):
    """Agreement with the dearest model stands in for MMLU's true labels: it must agree
    with them on most cells (the top model is right on ~85% of MMLU)."""
    df = load_runlog(shared_data / "zellinger-cascades", "zellinger")
    df = df[(df["benchmark"] == "mmlu") & (df["split"] == "train")]
    truth = df.set_index(["query_id", "model"])["quality"]
    top = df.groupby("model")["cost"].mean().idxmax()
    hidden = df.assign(quality=None)
    out = tmp_path / "mmlu.jsonl"
    asyncio.run(label_runlog(validate_runlog(hidden), Judge(None, reference=top), out))
    judged = load_runlog(out).set_index(["query_id", "model"])["quality"]
    assert judged.notna().all()
    error = float((judged.loc[truth.index] != truth).mean())
    assert 0.03 < error < 0.25, error


def test_agreement_with_the_reference_matches_hand_judged_answers():
    """80 answers of the embedded models judged by hand against the built-in questions'
    references: agreement must give the hand's verdict wherever it can tell."""
    from ladder.server.default import free_text_items

    items = {item.id: item for item in free_text_items()}
    rows = [json.loads(line) for line in
            (Path(__file__).parent / "data" / "free-text-judged.jsonl").read_text().splitlines()]
    verdicts = [(agreement(r["text"], str(items[r["query_id"]].reference)), r["judged"])
                for r in rows if r["query_id"] in items]
    decided = [(a, hand) for a, hand in verdicts if a is not None]
    assert len(decided) >= 0.75 * len(verdicts)  # the rest is long free text
    assert sum(a == hand for a, hand in decided) >= 0.95 * len(decided)
