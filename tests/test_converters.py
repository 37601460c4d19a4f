"""Converters against the shared real data: each must reproduce the figures in its SOURCE.md."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ladder.runlog import QueryTable, RunLogError, validate_runlog, write_runlog
from ladder.runlog.converters import CONVERTERS, convert, detect_format
from ladder.runlog.converters.mot import convert_mot
from ladder.runlog.converters.routellm import STRONG, WEAK, convert_routellm
from ladder.runlog.converters.routerbench import convert_routerbench
from ladder.runlog.converters.routerdc import convert_routerdc

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def data(name: str) -> Path:
    folder = DATA / name
    if not folder.is_dir():
        pytest.skip(f"shared data folder {folder} is absent (real data lives outside the repo)")
    return folder


def printed(text: str) -> object:
    """pytest.approx that accepts any value which rounds to `text` at its printed precision."""
    exponent = Decimal(text).as_tuple().exponent
    assert isinstance(exponent, int)
    return pytest.approx(float(text), abs=0.5 * 10.0**exponent + 1e-12)


# --- Zellinger ---------------------------------------------------------------------------------

ZELLINGER_MMLU_TEST = {  # model: (accuracy, mean cost $)
    "llama3.2-1b": ("0.4246", "1.914e-05"),
    "llama3.2-3b": ("0.5722", "1.914e-05"),
    "llama3.1-8b": ("0.6336", "3.849e-05"),
    "llama3.1-70b": ("0.8145", "1.723e-04"),
    "llama3.1-405b": ("0.8517", "5.743e-04"),
    "gpt-4o-mini": ("0.7492", "2.849e-05"),
    "qwen2.5-32b-coder-instruct": ("0.7531", "1.740e-04"),
    "qwen2.5-72b-instruct": ("0.8204", "1.740e-04"),
    "gpt-4o": ("0.8361", "4.748e-04"),
}


@pytest.fixture(scope="module")
def zellinger() -> pd.DataFrame:
    return validate_runlog(convert(data("zellinger-cascades"), "zellinger"))


def test_zellinger_shape(zellinger: pd.DataFrame) -> None:
    assert len(zellinger) == 42_444
    assert zellinger["query_id"].nunique() == 4_716
    assert zellinger["model"].nunique() == 9
    assert zellinger["prompt"].notna().all()


def test_zellinger_mmlu_test_per_model(zellinger: pd.DataFrame) -> None:
    mmlu = zellinger[(zellinger["benchmark"] == "mmlu") & (zellinger["split"] == "test")]
    table = QueryTable.from_runlog(mmlu)
    assert table.n == 1531 and table.dropped == 0
    for model, (acc, cost) in ZELLINGER_MMLU_TEST.items():
        i = table.index(model)
        assert table.quality[:, i].mean() == printed(acc), model
        assert table.cost[:, i].mean() == printed(cost), model
    assert table.quality.max(axis=1).mean() == printed("0.9693")


def test_zellinger_cascade_check(zellinger: pd.DataFrame) -> None:
    mmlu = zellinger[(zellinger["benchmark"] == "mmlu") & (zellinger["split"] == "test")]
    table = QueryTable.from_runlog(mmlu, models=["llama3.1-8b", "llama3.1-405b"])
    stop = table.signals["confidence"][:, 0] >= 0.9
    quality = np.where(stop, table.quality[:, 0], table.quality[:, 1])
    cost = table.cost[:, 0] + np.where(stop, 0.0, table.cost[:, 1])
    assert 100 * stop.mean() == printed("34.75")
    assert quality.mean() == printed("0.8341")
    assert cost.mean() == printed("4.349e-04")


# --- RouteLLM ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def routellm() -> pd.DataFrame:
    return validate_runlog(convert_routellm(data("routellm-gpt4-mixtral")))


@pytest.fixture(scope="module")
def routellm_all() -> pd.DataFrame:
    return validate_runlog(convert_routellm(data("routellm-gpt4-mixtral"), decontaminate=False))


def _pair(df: pd.DataFrame, benchmark: str) -> QueryTable:
    return QueryTable.from_runlog(df, models=[WEAK, STRONG], benchmark=benchmark)


@pytest.mark.parametrize(
    ("clean", "benchmark", "n", "weak", "strong", "both", "only_strong", "only_weak", "oracle"),
    [
        (True, "gsm8k", 1307, "0.6373", "0.8577", "0.5654", "0.2923", "0.0719", "0.9296"),
        (False, "gsm8k", 1319, "0.6384", "0.8567", "0.5663", "0.2904", "0.0720", "0.9287"),
        (True, "mmlu", 14037, "0.6809", "0.8059", "0.6281", "0.1778", "0.0529", "0.8587"),
        (False, "mmlu", 14042, "0.6808", "0.8058", "0.6280", "0.1778", "0.0528", "0.8586"),
    ],
)
def test_routellm_correctness_figures(
    request: pytest.FixtureRequest,
    clean: bool,
    benchmark: str,
    n: int,
    weak: str,
    strong: str,
    both: str,
    only_strong: str,
    only_weak: str,
    oracle: str,
) -> None:
    df = request.getfixturevalue("routellm" if clean else "routellm_all")
    table = _pair(df, benchmark)
    w, s = table.quality[:, 0], table.quality[:, 1]
    assert table.n == n and table.dropped == 0
    assert w.mean() == printed(weak)
    assert s.mean() == printed(strong)
    assert (w * s).mean() == printed(both)
    assert ((1 - w) * s).mean() == printed(only_strong)
    assert (w * (1 - s)).mean() == printed(only_weak)
    assert np.maximum(w, s).mean() == printed(oracle)
    # RouteLLM's cost measure: mean cost of a model = its share of strong-model calls
    assert table.mean_cost().tolist() == [0.0, 1.0]


def test_routellm_columns(routellm: pd.DataFrame, routellm_all: pd.DataFrame) -> None:
    assert "gsm8k/0" not in set(routellm["query_id"])  # contaminated (eval_idx 0)
    gsm8k = routellm_all[routellm_all["benchmark"] == "gsm8k"]
    first = gsm8k[(gsm8k["query_id"] == "gsm8k/0") & (gsm8k["model"] == WEAK)].iloc[0]
    assert first["answer"] == "18"
    assert "#### 18" in first["output"]
    assert first["prompt"].startswith("Janet")
    mmlu = routellm[routellm["benchmark"] == "mmlu"]
    assert mmlu["subject"].nunique() == 57
    assert mmlu["query_id"].str.match(r"^mmlu/[a-z_]+/\d+$").all()
    assert mmlu["answer"].isna().all()  # no response text for MMLU
    assert set(routellm["model"]) == {WEAK, STRONG}


def test_routellm_mt_bench(routellm: pd.DataFrame, routellm_all: pd.DataFrame) -> None:
    everything = routellm_all[routellm_all["benchmark"] == "mt_bench"]
    assert len(everything) == 320
    score = everything["quality"] * 9 + 1
    by_turn = score.groupby([everything["model"], everything["turn"]]).mean()
    expected = {(STRONG, 1): "9.406", (STRONG, 2): "9.05", (WEAK, 1): "8.694", (WEAK, 2): "7.988"}
    for key, value in expected.items():
        assert by_turn[key] == printed(value), key
    by_model = score.groupby(everything["model"]).mean()
    assert by_model[STRONG] == printed("9.228")
    assert by_model[WEAK] == printed("8.341")
    clean = routellm[routellm["benchmark"] == "mt_bench"]
    dropped = set(everything["query_id"]) - set(clean["query_id"])
    assert {int(q.split("/")[1]) for q in dropped} == {81, 88, 91, 92, 101, 104, 120, 122}
    assert len(clean) == 320 - 8 * 2 * 2
    assert clean["prompt"].notna().all()


def test_routellm_single_files() -> None:
    folder = data("routellm-gpt4-mixtral")
    gsm8k = convert_routellm(folder / "gsm8k" / "gsm8k_responses.csv")
    assert gsm8k["query_id"].nunique() == 1307
    mmlu = convert_routellm(folder / "mmlu")
    assert mmlu["query_id"].nunique() == 14037
    anatomy = convert_routellm(folder / "mmlu" / "responses" / "mmlu_anatomy.csv")
    assert set(anatomy["subject"]) == {"anatomy"}


def test_routellm_rejects_other_layouts(tmp_path: Path) -> None:
    with pytest.raises(RunLogError, match="not a RouteLLM"):
        convert_routellm(tmp_path)
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(RunLogError, match="not a RouteLLM"):
        convert_routellm(other)


# --- MoT ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mot() -> pd.DataFrame:
    return validate_runlog(convert_mot(data("mot-cascade-date")))


def test_mot_accuracies_and_costs(mot: pd.DataFrame) -> None:
    table = QueryTable.from_runlog(mot)
    assert table.n == 369 and len(mot) == 3 * 369
    assert table.models == ("llama-2-13b", "gpt-3.5-turbo", "gpt-4")  # ordered by mean cost
    for model, acc in [("llama-2-13b", "0.5772"), ("gpt-3.5-turbo", "0.6450"), ("gpt-4", "0.8645")]:
        assert table.quality[:, table.index(model)].mean() == printed(acc), model
    n_samples = mot.groupby("model")["samples"].agg(lambda s: {len(x) for x in s})
    assert n_samples.to_dict() == {"gpt-3.5-turbo": {20}, "gpt-4": {1}, "llama-2-13b": {20}}
    row = mot.iloc[0]
    assert row["tokens_in"] == round((1785 + len(row["prompt"])) / 4)
    assert row["query_id"] == "date/0" and row["benchmark"] == "date"


def test_mot_cascade_checks(mot: pd.DataFrame) -> None:
    table = QueryTable.from_runlog(mot)
    share = table.sample_share
    assert share is not None
    g35, g4 = table.index("gpt-3.5-turbo"), table.index("gpt-4")
    assert share[:, g35].mean() == printed("0.822")
    for threshold, rate, acc in [
        (0.6, "0.1491", "0.7425"),
        (0.8, "0.3117", "0.8049"),
        (1.0, "0.5556", "0.8509"),
    ]:
        escalate = share[:, g35] < threshold
        quality = np.where(escalate, table.quality[:, g4], table.quality[:, g35])
        assert escalate.mean() == printed(rate), threshold
        assert quality.mean() == printed(acc), threshold
    assert (share[:, table.index("llama-2-13b")] < 0.8).mean() == printed("0.7182")


def test_mot_pot_set_keeps_failed_samples() -> None:
    df = validate_runlog(convert_mot(data("mot-cascade-date"), prompt_set="pot1"))
    table = QueryTable.from_runlog(df)
    assert table.quality.mean(axis=0) == pytest.approx([0.4905, 0.8022, 0.8672], abs=5e-5)
    assert any(None in s for s in df["samples"])  # failed executions stay None
    assert table.sample_share is not None
    # all-None samples count as share 0, as in SOURCE.md's top-answer share
    assert table.sample_share[:, table.index("gpt-3.5-turbo")].mean() == printed("0.897")
    assert table.sample_share[:, table.index("gpt-4")].mean() == printed("0.989")


def test_mot_errors(tmp_path: Path) -> None:
    with pytest.raises(RunLogError, match="prompt set"):
        convert_mot(data("mot-cascade-date"), prompt_set="cot3")
    with pytest.raises(RunLogError, match="not the MoT layout"):
        convert_mot(tmp_path)


# --- RouterDC ----------------------------------------------------------------------------------

ROUTERDC = {  # file: (n, per-model mean quality in SOURCE.md's column order, oracle)
    "gsm8k-test.json": (1319, "0.3671 0.6963 0.4103 0.3300 0.5238 0.4776 0.6981", "0.9545"),
    "MATH_prealgebra.json": (871, "0.2480 0.3915 0.1848 0.2078 0.2928 0.2767 0.3972", "0.6705"),
    "mbpp.json": (500, "0.3790 0.3774 0.2964 0.3114 0.4486 0.4302 0.4734", "0.7480"),
    "humaneval_test.json": (49, "0.2898 0.2980 0.2143 0.2204 0.4510 0.2673 0.4939", "0.8367"),
    # multiple choice: quality = accuracy (score > 0)
    "mmlu_test.json": (4213, "0.6214 0.5986 0.5742 0.5981 0.6053 0.6459 0.5946", "0.8526"),
    "arc_easy_test.json": (713, "0.8121 0.8205 0.7756 0.8177 0.8303 0.8233 0.7826", "0.9313"),
    "arc_challenge_test.json": (352, "0.4943 0.4830 0.4347 0.5795 0.5256 0.4943 0.4943", "0.7244"),
}


@pytest.fixture(scope="module")
def routerdc() -> pd.DataFrame:
    return validate_runlog(convert_routerdc(data("routerdc-7b-scores")))


@pytest.mark.parametrize("name", sorted(ROUTERDC))
def test_routerdc_per_file(routerdc: pd.DataFrame, name: str) -> None:
    n, means, oracle = ROUTERDC[name]
    stem = name.removesuffix(".json")
    part = routerdc[routerdc["query_id"].str.startswith(stem + "/")]
    assert part["query_id"].nunique() == n
    per_model = part.groupby("model", sort=False)["quality"].mean()
    for value, expected in zip(per_model, means.split(), strict=True):
        assert value == printed(expected)
    table = QueryTable.from_runlog(part)
    assert (table.quality > 0).any(axis=1).mean() == printed(oracle)


def test_routerdc_columns(routerdc: pd.DataFrame) -> None:
    assert "confidence" not in routerdc.columns and "score" not in routerdc.columns
    assert routerdc["query_id"].str.split("/").str[0].nunique() == 13
    names = routerdc.drop_duplicates("query_id").set_index("query_id")
    assert names.loc["gsm8k-test/0", "benchmark"] == "gsm8k"
    assert names.loc["gsm8k-test/0", "split"] == "test"
    assert names.loc["arc_challenge_train/0", "benchmark"] == "arc_challenge"
    assert names.loc["arc_challenge_train/0", "split"] == "train"
    assert pd.isna(names.loc["mbpp/0", "split"])
    cost = routerdc.groupby("model")["cost"].first()
    assert cost["meta-llama/Meta-Llama-3-8B"] == 8.03
    assert cost["cognitivecomputations/dolphin-2.9-llama3-8b"] == 8.03
    assert cost["mistralai/Mistral-7B-v0.1"] == 7.24
    gsm8k = QueryTable.from_runlog(routerdc, benchmark="gsm8k")
    test = gsm8k.rows(gsm8k.split == "test")
    assert (test.quality == 1.0).all(axis=1).mean() == printed("0.0205")
    assert (test.quality.mean(axis=1) >= 0.8).mean() == printed("0.2085")


def test_routerdc_single_file_and_errors(tmp_path: Path) -> None:
    df = convert_routerdc(data("routerdc-7b-scores") / "mmlu_train.json")
    assert df["query_id"].nunique() == 2000 and set(df["split"]) == {"train"}
    assert "cluster_id" in df.columns
    bad = tmp_path / "bad.json"
    bad.write_text('[{"q": 1}]')
    with pytest.raises(RunLogError, match="not a RouterDC file"):
        convert_routerdc(bad)


# --- RouterBench (synthetic; the real release is a pickle and is not kept) ---------------------

MODELS = ("gpt-4-1106-preview", "mistralai/mistral-7b-chat")


def _routerbench_table() -> pd.DataFrame:
    table = pd.DataFrame(
        {
            "sample_id": ["mmlu-a.0", "mmlu-a.1", "gsm8k.0"],
            "prompt": ["What is A?", "What is B?", "2+2?"],
            "eval_name": ["mmlu-a", "mmlu-a", "grade-school-math"],
            MODELS[0]: [1.0, 1.0, 1.0],
            MODELS[1]: [0.0, 1.0, np.nan],  # not run on the last prompt
            "oracle_model_to_route_to": [MODELS[0], MODELS[1], MODELS[0]],
        }
    )
    for i, model in enumerate(MODELS):
        table[f"{model}|model_response"] = [f"{model} says {j}" for j in range(3)]
        table[f"{model}|total_cost"] = [0.01 / (i + 1), 0.02 / (i + 1), 0.03 / (i + 1)]
    return table


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_routerbench_synthetic(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"routerbench{suffix}"
    table = _routerbench_table()
    if suffix == ".csv":
        table.to_csv(path, index=False)
    else:
        table.to_parquet(path, index=False)
    assert detect_format(path) == "routerbench"
    df = validate_runlog(convert(path))
    assert len(df) == 5  # the missing (gsm8k.0, mistral) cell gives no row
    row = df[(df["query_id"] == "mmlu-a.1") & (df["model"] == MODELS[1])].iloc[0]
    assert row["quality"] == 1.0
    assert row["cost"] == pytest.approx(0.01)
    assert row["output"] == f"{MODELS[1]} says 1"
    assert row["benchmark"] == "mmlu-a" and row["prompt"] == "What is B?"
    pivot = QueryTable.from_runlog(df)
    assert pivot.n == 2 and pivot.dropped == 1
    assert pivot.models == (MODELS[1], MODELS[0])  # cheaper first


def test_routerbench_rejects(tmp_path: Path) -> None:
    pickle = tmp_path / "routerbench_0shot.pkl"
    pickle.write_bytes(b"not read")
    with pytest.raises(RunLogError, match="pickle"):
        convert_routerbench(pickle)
    plain = tmp_path / "plain.csv"
    plain.write_text("a,b\n1,2\n")
    with pytest.raises(RunLogError, match="not a RouterBench table"):
        convert_routerbench(plain)


# --- format detection --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("zellinger-cascades", "zellinger"),
        ("zellinger-cascades/flat/model_outputs.jsonl.gz", "zellinger"),
        ("mot-cascade-date", "mot"),
        ("routellm-gpt4-mixtral", "routellm"),
        ("routellm-gpt4-mixtral/gsm8k/gsm8k_responses.csv", "routellm"),
        ("routellm-gpt4-mixtral/mmlu", "routellm"),
        ("routellm-gpt4-mixtral/mmlu/responses", "routellm"),
        ("routellm-gpt4-mixtral/mmlu/responses/mmlu_anatomy.csv", "routellm"),
        ("routellm-gpt4-mixtral/mt_bench", "routellm"),
        ("routerdc-7b-scores", "routerdc"),
        ("routerdc-7b-scores/mbpp.json", "routerdc"),
    ],
)
def test_detect_format_real_layouts(relative: str, expected: str) -> None:
    folder, _, rest = relative.partition("/")
    path = data(folder) / rest if rest else data(folder)
    assert detect_format(path) == expected


def test_detect_format_plain_runlog_stays_runlog(tmp_path: Path) -> None:
    log = pd.DataFrame(
        {
            "query_id": ["q1", "q1"],
            "model": ["a", "b"],
            "quality": [1, 0],
            "cost": [0.1, 1.0],
            "note|total_cost": [0.0, 0.0],  # a look-alike column must not fool detection
        }
    )
    for name in ("log.csv", "log.parquet", "log.jsonl", "mmlu_log.csv"):
        path = write_runlog(log, tmp_path / name)
        assert detect_format(path) == "runlog", name
        assert len(validate_runlog(convert(path))) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RunLogError, match="not one of the known layouts"):
        detect_format(empty)


def test_unknown_format_name(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("query_id,model,quality,cost\nq,a,1,0\nq,b,0,1\n")
    with pytest.raises(RunLogError, match="unknown format 'nope'"):
        convert(path, "nope")
    assert {"routellm", "mot", "routerdc", "routerbench"} <= set(CONVERTERS)


# --- unreadable input: every converter says so, as a RunLogError ---------------------------------

GARBAGE = bytes(range(256)) * 2  # not UTF-8, not gzip, not Parquet


def _bad_inputs(tmp_path: Path) -> dict[str, Path]:
    """A wrong folder, a CSV, binary garbage under several names, and files of the right name
    but the wrong content, for every layout."""
    csv = tmp_path / "table.csv"
    csv.write_text("a,b\n1,2\n")
    json_object = tmp_path / "object.json"
    json_object.write_text('{"a": 1}')
    folder = tmp_path / "folder"
    (folder / "gsm8k").mkdir(parents=True)
    (folder / "gsm8k" / "gsm8k_responses.csv").write_bytes(GARBAGE)
    non_numeric = tmp_path / "scores.json"
    non_numeric.write_text('[{"question": "q", "scores": {"m": "x"}}]')
    paths = {"csv": csv, "json object": json_object, "wrong folder": folder,
             "non-numeric scores": non_numeric}
    for name in ("garbage.bin", "model_outputs.jsonl.gz", "garbage.json", "garbage.parquet",
                 "gsm8k_responses.csv"):
        (tmp_path / name).write_bytes(GARBAGE)
        paths[name] = tmp_path / name
    return paths


@pytest.mark.parametrize("layout", sorted(CONVERTERS))
def test_every_converter_refuses_unreadable_input_with_a_runlog_error(tmp_path: Path,
                                                                      layout: str) -> None:
    for case, path in _bad_inputs(tmp_path).items():
        with pytest.raises(RunLogError):
            validate_runlog(convert(path, layout))  # what load_runlog does
            pytest.fail(f"{layout} accepted {case}")


def test_convert_zellinger_on_a_csv_or_wrong_folder_exits_2(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ladder.cli import app

    (tmp_path / "table.csv").write_text("a,b\n1,2\n")
    for source in (tmp_path / "table.csv", tmp_path):
        result = CliRunner().invoke(app, ["convert", str(source), "-f", "zellinger",
                                          "-o", str(tmp_path / "out.jsonl")])
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output and "Zellinger" in result.output
