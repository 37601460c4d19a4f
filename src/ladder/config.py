"""The runtime's one YAML file: models, task, policy and defaults, validated up front.

Errors name the key path (e.g. `models.1.base_url`) and the problem, so a typo is
found before any model loads. Relative paths are relative to the config file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ladder.backends.base import DEFAULT_TEMPLATE, Backend
from ladder.judge.agreement import SHORT_WORDS
from ladder.judge.rubric import REFERENCE_PROMPT, SOLO_PROMPT, check_prompt


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the key and the problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Price(_Strict):
    """What one call costs: per million tokens in and out, per call, per second of latency."""

    input_per_mtok: float = Field(0.0, ge=0)
    output_per_mtok: float = Field(0.0, ge=0)
    per_call: float = Field(0.0, ge=0)
    per_second: float = Field(0.0, ge=0)

    def cost(self, tokens_in: float, tokens_out: float, latency_s: float) -> float:
        return (self.per_call + self.per_second * latency_s
                + (self.input_per_mtok * tokens_in + self.output_per_mtok * tokens_out) / 1e6)


class Breaker(_Strict):
    """A per-backend circuit breaker: after `failures` consecutive failed calls the backend
    is skipped for `cooldown_s` seconds (calls fail at once), then tried again."""

    failures: int = Field(5, ge=1)
    cooldown_s: float = Field(30.0, gt=0)


class _ModelSpec(_Strict):
    name: str = Field(min_length=1)
    price: Price = Price()
    template: str | None = None  # overrides task.template for this model
    breaker: Breaker = Breaker()

    @field_validator("template")
    @classmethod
    def _has_slot(cls, value: str | None) -> str | None:
        if value is not None and "{prompt}" not in value:
            raise ValueError("must contain {prompt}")
        return value


class OpenAIModelSpec(_ModelSpec):
    backend: Literal["openai"]
    base_url: str
    model: str
    endpoint: Literal["completions", "chat"] = "completions"
    api_key_env: str | None = None
    timeout_s: float = Field(60.0, gt=0)
    logprobs: bool = True
    max_retries: int = Field(2, ge=0)

    def build(self, base_dir: Path) -> Backend:
        from ladder.backends.openai import OpenAIBackend

        return OpenAIBackend(self.base_url, self.model, endpoint=self.endpoint,
                             api_key_env=self.api_key_env, timeout_s=self.timeout_s,
                             logprobs=self.logprobs, max_retries=self.max_retries)


class LlamaCppModelSpec(_ModelSpec):
    backend: Literal["llamacpp"]
    model: str  # an embedded model's name or a path to a .gguf file
    n_ctx: int = Field(512, ge=64)
    n_threads: int | None = Field(None, ge=1)

    def build(self, base_dir: Path) -> Backend:
        from ladder.backends.llamacpp import LlamaCppBackend

        return LlamaCppBackend(_resolve_model(self.model, base_dir), n_ctx=self.n_ctx,
                               n_threads=self.n_threads)


class ReplayModelSpec(_ModelSpec):
    backend: Literal["replay"]
    log: Path
    model: str | None = None  # the model's name in the log (default: name)
    format: str = "auto"

    def build(self, base_dir: Path) -> Backend:
        from ladder.backends.replay import ReplayBackend

        return ReplayBackend(_resolve(self.log, base_dir), self.model or self.name, self.format)


class FakeModelSpec(_ModelSpec):
    backend: Literal["fake"]
    skill: float = Field(0.7, ge=0, le=1)
    seed: int = 0
    latency_s: float = Field(0.0, ge=0)
    tasks: Path | None = None  # task file whose references the fake knows

    def build(self, base_dir: Path) -> Backend:
        from ladder.backends.fake import FakeBackend
        from ladder.tasks import load_tasks

        items = load_tasks(_resolve(self.tasks, base_dir)) if self.tasks else []
        truths = {i.prompt: str(i.reference) for i in items if i.reference is not None}
        return FakeBackend(truths, self.skill, self.seed, self.latency_s)


ModelSpec = Annotated[
    OpenAIModelSpec | LlamaCppModelSpec | ReplayModelSpec | FakeModelSpec,
    Field(discriminator="backend"),
]


class TaskSpec(_Strict):
    type: Literal["choice", "short", "number"] = "short"  # of prompts given as plain strings
    template: str = DEFAULT_TEMPLATE
    max_tokens: int = Field(32, ge=1)


class JudgeSpec(_Strict):
    """Who grades answers where no human label exists (`ladder label`, shadow runs): a
    configured model asked a fixed rubric, a reference rung whose answer others are
    compared with, or both. Recorded with every label it gives."""

    model: str | None = None  # a configured model's name (None: agreement only)
    reference: str | None = None  # the rung whose answer is the reference (usually the top)
    mode: Literal["auto", "agreement", "model"] = "auto"
    prompt: str = REFERENCE_PROMPT  # with {query}, {answer} and {reference}
    solo_prompt: str = SOLO_PROMPT  # with {query} and {answer}: the judge alone
    short_words: int = Field(SHORT_WORDS, ge=1)  # answers this short compare by agreement
    timeout_s: float = Field(30.0, gt=0)

    @field_validator("prompt")
    @classmethod
    def _reference_slots(cls, value: str) -> str:
        return check_prompt(value, ("query", "answer", "reference"))

    @field_validator("solo_prompt")
    @classmethod
    def _solo_slots(cls, value: str) -> str:
        return check_prompt(value, ("query", "answer"))

    @model_validator(mode="after")
    def _someone_grades(self) -> JudgeSpec:
        if self.model is None and self.reference is None:
            raise ValueError("name a judge 'model', a 'reference' rung, or both")
        if self.mode == "model" and self.model is None:
            raise ValueError("mode 'model' needs a judge 'model'")
        return self


class ShadowSpec(JudgeSpec):
    """Shadow runs in the gateway: for a sampled share of cascade requests, after the
    response has been sent, run the rungs the cascade skipped and grade every rung with
    the judge; the labels are stored as feedback with their source. Shadow work has its
    own concurrency limit and budget and is dropped first under load."""

    rate: float = Field(0.05, ge=0, le=1)  # share of cascade requests shadowed
    max_concurrency: int = Field(1, ge=1)  # shadow runs in flight per replica
    max_pending: int = Field(16, ge=0)  # shadow runs waiting; more are dropped
    budget: float | None = Field(None, ge=0)  # most shadow cost per served request, on average
    busy_share: float = Field(0.5, gt=0, le=1)  # no shadow work above this share of
    # server.max_concurrency requests in flight


class Defaults(_Strict):
    concurrency: int = Field(4, ge=1)


class OnlineSpec(_Strict):
    """A policy that learns from `/v1/feedback` (theory.md §6): a threshold cascade over
    `chain`, warm-started from a run log and refitted on the feedback every replica stores."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    chain: list[str] = Field(min_length=1)
    lam: float = Field(alias="lambda", ge=0)
    warm_start: Path | None = None  # a run log over the chain's models
    exploration: float = Field(0.1, ge=0)  # c of ε_t = min(1, c/√t)
    window: int = Field(5000, ge=10)  # the most recent queries the learner refits on
    refit_every: int = Field(20, ge=1)


class FitSpec(_Strict):
    """A policy fitted on `server.log` when the server starts (cached on disk), at a λ, a
    budget (mean cost per query) or a quality target (share of the best model's)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    policy: str = "auto"  # a `ladder fit --policy` family
    lam: float | None = Field(None, alias="lambda", ge=0)
    budget: float | None = Field(None, ge=0)
    target_quality: float | None = Field(None, gt=0, le=1)
    refit_every_s: float | None = Field(None, gt=0)  # refit on the log plus the labelled
    # traffic this often (None: never)

    @model_validator(mode="after")
    def _one_point(self) -> FitSpec:
        given = [v for v in (self.lam, self.budget, self.target_quality) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'lambda', 'budget' and 'target_quality'")
        return self


class PolicySpec(_Strict):
    """One name a request's `model` can ask for: a fitted policy file, a policy fitted on
    `server.log` at start, or an online learner."""

    name: str = Field(min_length=1)
    file: Path | None = None  # written by `ladder fit`
    fit: FitSpec | None = None
    online: OnlineSpec | None = None

    @model_validator(mode="after")
    def _one_source(self) -> PolicySpec:
        if sum(x is not None for x in (self.file, self.fit, self.online)) != 1:
            raise ValueError("give exactly one of 'file', 'fit' and 'online'")
        return self


class ServerSpec(_Strict):
    """`ladder serve`: the names served, the database, keys and limits."""

    policies: list[PolicySpec] = []
    default_policy: str | None = None  # the policy behind model "ladder" (default: the first)
    log: Path | None = None  # the run log that `fit` policies and `ladder:lambda=…` fit on
    override_policy: str = "threshold"  # the family fitted for `ladder:lambda=…` overrides
    database: str = "sqlite:///ladder.db"  # SQLAlchemy URL; sqlite paths relative to this file
    api_keys: list[str] = []  # bearer keys accepted (also LADDER_API_KEYS, comma-separated)
    max_concurrency: int = Field(64, ge=1)  # requests in flight; more get 429 + Retry-After
    max_body_bytes: int = Field(1_000_000, ge=1024)  # larger bodies get 413
    request_timeout_s: float = Field(120.0, gt=0)
    sync_s: float = Field(1.0, gt=0)  # how often each replica reads others' feedback
    log_prompts: bool = True  # store prompts and answers (needed by `ladder logs export`)
    shadow: ShadowSpec | None = None  # judge-labelled shadow runs (None: off)


class Config(_Strict):
    models: list[ModelSpec] = Field(min_length=1)
    policy: Path | None = None
    task: TaskSpec = TaskSpec()
    defaults: Defaults = Defaults()
    server: ServerSpec = ServerSpec()
    judge: JudgeSpec | None = None  # `ladder label`'s judge (its flags override)
    base_dir: Path = Field(Path("."), exclude=True)

    @field_validator("models")
    @classmethod
    def _unique_names(cls, models: list[Any]) -> list[Any]:
        names = [m.name for m in models]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"model names must be unique; repeated: {', '.join(repeated)}")
        return models

    @model_validator(mode="after")
    def _judges_are_models(self) -> Config:
        names = {m.name for m in self.models}
        # offline, the reference is a model of the log; a shadow run runs it, so it must
        # be configured
        for where, spec, keys in (("judge", self.judge, ("model",)),
                                  ("server.shadow", self.server.shadow, ("model", "reference"))):
            for key in keys:
                name = None if spec is None else getattr(spec, key)
                if name is not None and name not in names:
                    raise ValueError(f"{where}.{key}: no model named {name!r} among the "
                                     f"models ({', '.join(sorted(names))})")
        return self

    def policy_path(self) -> Path | None:
        return None if self.policy is None else _resolve(self.policy, self.base_dir)

    def spec(self, name: str) -> _ModelSpec:
        for model in self.models:
            if model.name == name:
                return model
        raise ConfigError(f"model '{name}' is not in the config's models "
                          f"({', '.join(m.name for m in self.models)})")


def _resolve(path: Path | None, base_dir: Path) -> Path:
    assert path is not None
    return path if path.is_absolute() else base_dir / path


def _resolve_model(model: str, base_dir: Path) -> str:
    """Embedded names stay names; anything else is a GGUF path relative to the config."""
    from ladder.backends.embedded import EMBEDDED

    return model if model in EMBEDDED else str(_resolve(Path(model), base_dir))


def _describe(error: ValidationError) -> str:
    lines = []
    for problem in error.errors():
        where = ".".join(str(p) for p in problem["loc"]) or "(top level)"
        message = problem["msg"]
        if problem["type"] == "extra_forbidden":
            message = "unknown key"
        elif problem["type"] == "union_tag_invalid":
            message = "unknown backend; choose one of openai, llamacpp, replay, fake"
        lines.append(f"{where}: {message}")
    return "\n".join(lines)


def config_from_dict(data: object, base_dir: Path = Path("."), source: str = "config") -> Config:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys (models, policy, task, ...)")
    try:
        return Config.model_validate({**data, "base_dir": base_dir})
    except ValidationError as error:
        raise ConfigError(f"{source}:\n{_describe(error)}") from None


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"cannot read config {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from None
    return config_from_dict(data, path.parent, str(path))
