"""Task files, grading, the built-in set, config validation and resumable collection."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from ladder.backends.fake import FakeBackend
from ladder.collect import CollectError, collect, finished_pairs
from ladder.config import ConfigError, Price, config_from_dict, load_config
from ladder.rung import Rung, rungs_from_config
from ladder.runlog import load_runlog
from ladder.tasks import Item, TaskError, builtin_tasks, extract_answer, grade, load_tasks


def test_builtin_set_is_large_varied_and_valid() -> None:
    items = builtin_tasks()
    assert len(items) >= 300
    domains = Counter(i.domain for i in items)
    assert len(domains) >= 6 and min(domains.values()) >= 30
    assert len({i.id for i in items}) == len(items)
    assert len({i.prompt.lower() for i in items}) == len(items)
    for item in items:
        assert item.type == "choice" and item.reference in item.options
    positions = Counter(i.options.index(i.reference) for i in items)
    assert min(positions.values()) > 0.2 * len(items)  # the right option is not always first


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(("line", "message"), [
    ('{"prompt": "x"}', "line 1: 'id' is required"),
    ('{"id": "a", "prompt": "x", "type": "essay"}', "'type' is 'essay'"),
    ('{"id": "a", "prompt": "x", "options": ["p"]}', "at least two"),
    ('{"id": "a", "prompt": "x", "options": ["p", "q"], "reference": "r"}', "not one of"),
    ('{"id": "a", "prompt": "x", "type": "number", "reference": "many"}', "must be a number"),
    ('{"id": "a", "prompt": "x"', "not valid JSON"),
])
def test_bad_task_lines_are_named(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(TaskError, match=message):
        load_tasks(_write(tmp_path, [line]))


def test_duplicate_ids_and_missing_file(tmp_path: Path) -> None:
    line = '{"id": "a", "prompt": "x"}'
    with pytest.raises(TaskError, match="line 2: duplicate id"):
        load_tasks(_write(tmp_path, [line, line]))
    with pytest.raises(TaskError, match="cannot read"):
        load_tasks(tmp_path / "nope.jsonl")


def test_grading_and_extraction() -> None:
    choice = Item("c", "Capital of France?", "choice", ("Paris", "Lyon"), "Paris")
    assert grade(choice, "Paris") == 1.0 and grade(choice, "Lyon") == 0.0
    assert grade(choice, None) == 0.0
    assert extract_answer(choice, " paris.\nmore") == "Paris"
    number = Item("n", "2+2?", "number", reference=4.0)
    assert grade(number, "The answer is 4") == 1.0 and grade(number, "5") == 0.0
    short = Item("s", "Who?", "short", reference=("Marie Curie", "Curie"))
    assert grade(short, extract_answer(short, "The Curie\n")) == 1.0
    assert grade(Item("u", "?"), "x") is None


def test_price_combines_tokens_calls_and_seconds() -> None:
    price = Price(input_per_mtok=2.0, output_per_mtok=4.0, per_call=0.5, per_second=0.1)
    assert price.cost(1_000_000, 500_000, 3.0) == pytest.approx(2.0 + 2.0 + 0.5 + 0.3)


@pytest.mark.parametrize(("data", "message"), [
    ({"models": []}, "models: List should have at least 1 item"),
    ({"models": [{"name": "a", "backend": "magic"}]}, "models.0: unknown backend"),
    ({"models": [{"name": "a", "backend": "openai", "model": "m"}]},
     "models.0.openai.base_url: Field required"),
    ({"models": [{"name": "a", "backend": "fake", "skil": 1}]}, "models.0.fake.skil: unknown key"),
    ({"models": [{"name": "a", "backend": "fake"}, {"name": "a", "backend": "fake"}]},
     "repeated: a"),
    ({"models": [{"name": "a", "backend": "fake", "price": {"per_call": -1}}]},
     "price.per_call: Input should be greater than or equal to 0"),
    ({"models": [{"name": "a", "backend": "fake", "template": "no slot"}]}, "{prompt}"),
    ({"models": [{"name": "a", "backend": "fake"}], "task": {"type": "essay"}}, "task.type"),
    (["models"], "expected a mapping"),
])
def test_config_errors_name_key_and_problem(data: object, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        config_from_dict(data)
    assert message in str(error.value)


def test_config_file_paths_are_relative_to_it(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "ladder.yaml"
    path.write_text("models:\n  - {name: a, backend: fake, skill: 1.0}\npolicy: p.json\n"
                    "task: {type: choice, max_tokens: 8}\n")
    config = load_config(path)
    assert config.policy_path() == tmp_path / "sub" / "p.json"
    assert config.task.max_tokens == 8
    rung = rungs_from_config(config)["a"]
    assert rung.max_tokens == 8 and isinstance(rung.backend, FakeBackend)
    path.write_text("models: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def _items(n: int) -> list[Item]:
    return [Item(f"q{k}", f"question {k}?", "choice", ("yes", "no"), "yes") for k in range(n)]


def test_collect_resumes_and_repairs_a_cut_line(tmp_path: Path) -> None:
    items = _items(12)
    truths = {i.prompt: "yes" for i in items}
    rungs = {m: Rung(m, FakeBackend(truths, seed=s), Price(per_call=c))
             for m, s, c in (("a", 1, 1.0), ("b", 2, 3.0))}
    out = tmp_path / "log.jsonl"
    first = collect(items[:5], rungs, out)
    assert (first.written, first.skipped) == (10, 0)
    with out.open("a") as f:
        f.write('{"query_id": "q5", "mod')  # a kill in the middle of a write
    done, repaired = finished_pairs(out)
    assert repaired and len(done) == 10
    second = collect(items, rungs, out)
    assert (second.written, second.skipped, second.repaired_line) == (14, 10, False)
    df = load_runlog(out)
    assert len(df) == 24 and not df.duplicated(["query_id", "model"]).any()
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["cost"] for r in rows} == {1.0, 3.0}
    assert all(r["quality"] in (0.0, 1.0) and r["answer"] in ("yes", "no") for r in rows)


def test_collect_refuses_foreign_files_and_ungraded_items(tmp_path: Path) -> None:
    rungs = {"a": Rung("a", FakeBackend(), Price())}
    with pytest.raises(CollectError, match=r"\.jsonl"):
        collect(_items(1), rungs, tmp_path / "log.csv")
    bad = tmp_path / "log.jsonl"
    bad.write_text("not json\n")
    with pytest.raises(CollectError, match="line 1"):
        collect(_items(1), rungs, bad)
    with pytest.raises(TaskError, match="reference"):
        collect([Item("x", "?")], rungs, tmp_path / "other.jsonl")
