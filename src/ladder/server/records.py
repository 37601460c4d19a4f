"""What the gateway writes for each request and each feedback: the rows of the store.

Plain dataclasses, so the serving logic, the store and the learner agree on one shape
without importing each other. A request's stages become run-log rows on export.
"""

from __future__ import annotations

from dataclasses import dataclass

SHADOW = "shadow"  # the decision of a stage a shadow run ran, after the response was sent


@dataclass(frozen=True)
class StageRecord:
    """One rung run for a request: its answer, signals, the policy's view, and its price."""

    stage: int  # 0-based position in the chain climbed
    model: str
    answer: str | None  # the extracted answer (what agreement and grading compare)
    text: str  # the generated text
    signals: dict[str, float]  # SIGNAL_COLUMNS values; NaN where unknown
    predicted_quality: float | None
    decision: str  # 'stop', 'escalate', 'failed' or SHADOW
    error: str | None  # why a failed stage failed (never a key)
    cost: float
    latency_s: float
    tokens_in: float
    tokens_out: float


@dataclass(frozen=True)
class RequestRecord:
    """One served request. `policy` is the name the request asked for; `model` the model
    whose answer was returned (None when every stage failed)."""

    id: str  # the response id the client sends back with feedback
    created: float  # unix time
    replica: str  # which gateway process served it
    key_id: str | None  # a digest prefix of the bearer key, never the key
    policy: str
    kind: str  # 'cascade' or 'passthrough'
    endpoint: str  # 'chat' or 'completions'
    prompt: str | None  # None when the config says not to store prompts
    model: str | None
    stage: int
    cost: float
    saved: float  # estimated cost of the top rung minus cost
    status: int  # HTTP status returned
    error: str | None
    latency_s: float
    overhead_s: float
    stages: tuple[StageRecord, ...]
    prompt_len: int | None = None  # the prompt's length in characters, kept even when the
    # prompt is not (a feature of the learned policies)


@dataclass(frozen=True)
class FeedbackRecord:
    """A quality label (in [0, 1]) for a served request's answer, or for the answer of one
    of the stages it ran (`model`; None: the model whose answer was returned)."""

    request_id: str
    quality: float
    created: float
    key_id: str | None
    model: str | None = None
    source: str | None = None  # None: a person (/v1/feedback); 'reference' or 'judge': a
    # shadow run's judge (ladder.judge), which a person's label overrides
    judge: str | None = None  # the judge's provenance: model, reference rung, rubric, mode
    cost: float | None = None  # what the judge's call cost (None: a person's label)


@dataclass(frozen=True)
class ShadowRecord:
    """What a shadow run adds to a served request: the rungs it ran (stages numbered after
    the served ones, decision 'shadow') and the judge's labels, each naming its model."""

    request_id: str
    stages: tuple[StageRecord, ...]
    labels: tuple[FeedbackRecord, ...]
