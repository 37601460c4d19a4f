"""The results page: how it was made, the claims table (every seed claim, our figure with
its interval and the verdict), then one section per experiment, all rendered from
summary.json so that rerunning one experiment re-renders the page without losing the rest."""

from __future__ import annotations

from pathlib import Path

from ladder.experiments.base import (
    HOLDS,
    NAMES,
    UNTESTABLE,
    Finding,
    Section,
    experiment,
    relative,
)
from ladder.experiments.claims import CLAIMS
from ladder.experiments.data import READ

COMMAND = "ladder experiments --experiments all --out docs/results --page docs/results.md"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def claims_table(sections: dict[str, Section], ran: set[str]) -> list[str]:
    """One row per finding of each claim; a claim nobody measured says why."""
    rows = ["| seed | claim | measured here (interval) | verdict |", "|---|---|---|---|"]
    found: dict[str, list[Finding]] = {}
    for section in sections.values():
        for finding in section.findings:
            found.setdefault(finding.claim, []).append(finding)
    for claim in CLAIMS:
        if claim.experiment is None:
            cells = [[claim.untestable, UNTESTABLE]]
        elif claim.key in found:
            cells = [[f.measured, f.verdict] for f in found[claim.key]]
        elif claim.experiment in ran:
            cells = [["the experiment ran but found no dataset to test this on", UNTESTABLE]]
        else:
            cells = [[f"not run: `--experiments {claim.experiment}`", "—"]]
        rows += [f"| {claim.source} | {_cell(claim.text)} | {_cell(m)} | {v} |"
                 for m, v in cells]
    return rows


def render_page(summary: dict, out: Path, page: Path) -> None:
    """Write `page` from the summary (every experiment it holds)."""
    runs = summary.get("experiments", {})
    sections: dict[str, Section] = {}
    for name in NAMES:
        if name in runs:
            exp = experiment(name)
            section = exp.render(runs[name]["units"], out / name, page)
            errors = runs[name].get("errors") or {}
            if errors:
                section.markdown += "\n\n" + "\n".join(
                    f"- **{unit} failed**: {_cell(message)}" for unit, message in errors.items())
            sections[name] = section
    tally = [f.verdict for s in sections.values() for f in s.findings]
    found = summary.get("datasets", {})
    unread = sorted(name for kind, name in found.items() if kind not in READ)
    last = summary.get("last_run", {})
    full = summary.get("full_run")
    timing = (f"; the last run of all experiments took {full['seconds']:.0f} s with "
              f"{full['jobs']} processes on {full['date']}" if full and full != last else "")
    lines = [
        "# Results: what ladder measures on real logged model outputs", "",
        f"Produced by `{COMMAND}` (the data folder: `{summary.get('data', '?')}`; Python "
        f"{summary.get('python', '?')}; last run {last.get('date', '?')}: "
        f"{', '.join(last.get('experiments', []))} in {last.get('seconds', 0):.0f} s with "
        f"{last.get('jobs', '?')} processes{timing}). Every number below is recomputed by that "
        "command; each section says how it was measured. Every choice (thresholds, chains, "
        "λ, hyper-parameters, operating points) is made on training data, by held-out "
        "folds where a search is involved; test splits are only replayed. Raw numbers: "
        f"[summary.json]({relative(out / 'summary.json', page)}). Logs found: "
        f"{', '.join(sorted(found.values())) or 'not recorded'}"
        + (f"; recognised but read by no experiment: {', '.join(unread)}" if unread else "")
        + ".", "",
        "## The seeds' claims", "",
        f"{sum(v == HOLDS for v in tally)} of {len(tally)} measured findings hold. A "
        "verdict needs the whole interval on one side of the claim; otherwise the section "
        "says what the interval allows.", "",
        *claims_table(sections, set(runs)), "",
    ]
    for name, section in sections.items():
        seconds = sum(runs[name]["seconds"].values())
        lines += [f"## {experiment(name).title}", "",
                  f"`--experiments {name}`, run {runs[name]['date']}, "
                  f"{seconds:.0f} s of worker time.", "", section.markdown.strip(), ""]
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text("\n".join(lines).rstrip() + "\n")
