"""Which policy or model a request's `model` names, and getting every policy ready.

Names: a configured policy (`ladder-balanced`), `ladder` for the default one, an override
fitted on demand on `server.log` (`ladder:lambda=0.5`, `ladder:budget=2e-6`), or a
configured model (pass-through). Policies fitted from a log are cached on disk by a digest
of the log, the fit's settings and the library versions, so a restart (or a second
replica, or worker) loads the file instead of refitting.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import os
import re
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import sklearn

from ladder import __version__
from ladder.config import Config, ConfigError, FitSpec, PolicySpec
from ladder.paths import data_dir
from ladder.policies.persist import PolicyFileError, load_policy, save_policy
from ladder.rung import Rung
from ladder.runtime import Cascade, policy_chain
from ladder.server.errors import ClientError, Unavailable, UnknownModel
from ladder.server.learner import SharedLearner
from ladder.server.protocol import LADDER
from ladder.server.store import Store

OVERRIDE = re.compile(r"^(?P<base>[\w.-]+):(?P<key>lambda|budget)=(?P<value>[^:]+)$")
MAX_OVERRIDES = 16  # fitted overrides kept in memory (least recently used dropped)
log = logging.getLogger("ladder.server")


@dataclass
class Target:
    """What serves a request: a cascade (`cascade` set) or one model (`rung` set)."""

    name: str
    cascade: Cascade | None = None
    rung: Rung | None = None
    learner: SharedLearner | None = None


def _digest(log: Path, spec: FitSpec) -> str:
    h = hashlib.sha256(log.read_bytes())
    fit = spec.model_dump(exclude={"refit_every_s"})  # when to refit changes no fit
    h.update(json.dumps([fit, __version__, sklearn.__version__]).encode())
    return h.hexdigest()[:24]


def fit_from_log(log: Path, spec: FitSpec, cache_dir: Path | None = None) -> object:
    """A policy fitted on the log's train split (every row when it has none), at the
    spec's λ, budget or quality target; loaded from `cache_dir` when fitted before."""
    from ladder.fit import fit_from_runlog

    cached = None if cache_dir is None else cache_dir / f"policy-{_digest(log, spec)}.json"
    if cached is not None and cached.exists():
        try:
            return load_policy(cached)
        except PolicyFileError:
            pass  # written by another version, or half-written: refit
    policy = fit_from_runlog(log, spec.policy, lam=spec.lam, budget=spec.budget,
                             target=spec.target_quality)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.tmp")
        save_policy(policy, partial)
        partial.replace(cached)  # atomic: a concurrent worker never reads half a file
    return policy


class Catalog:
    """The served names. `start()` loads or fits every configured policy (in threads, so
    /healthz answers meanwhile); `ready` says when all of them are."""

    def __init__(self, config: Config, rungs: dict[str, Rung], cache_dir: Path | None = None):
        self.config = config
        self.rungs = rungs
        self.cache_dir = cache_dir if cache_dir is not None else data_dir() / "cache"
        self.targets: dict[str, Target] = {}
        self.learners: list[SharedLearner] = []
        self.pending = [p.name for p in config.server.policies]
        self.errors: dict[str, str] = {}
        self._overrides: OrderedDict[str, asyncio.Task[Target]] = OrderedDict()
        self._fitting = asyncio.Lock()
        server = config.server
        if server.default_policy is not None and server.default_policy not in self.pending:
            raise ConfigError(f"server.default_policy: no policy named "
                              f"{server.default_policy!r}")
        clash = set(self.pending) & set(rungs)
        if clash:
            raise ConfigError(f"server.policies: {', '.join(sorted(clash))} also names a model")
        if any(p.fit for p in server.policies) and server.log is None:
            raise ConfigError("server.log: 'fit' policies are fitted on a run log; name it")

    @property
    def ready(self) -> bool:
        return not self.pending and not self.errors

    @property
    def default_name(self) -> str | None:
        names = [p.name for p in self.config.server.policies]
        return self.config.server.default_policy or (names[0] if names else None)

    def log_path(self) -> Path | None:
        log = self.config.server.log
        return None if log is None else (log if log.is_absolute() else self.config.base_dir / log)

    async def start(self) -> None:
        """Load, fit or warm-start every policy; a failure is kept per policy (readyz
        reports it) rather than stopping the others."""
        await asyncio.gather(*(self._start_one(spec) for spec in self.config.server.policies))

    async def _start_one(self, spec: PolicySpec) -> None:
        try:
            if spec.online is not None:  # a warm start is fitted as the learner is built
                learner = await asyncio.to_thread(SharedLearner, spec.name, spec.online,
                                                  self.config.base_dir)
                self.learners.append(learner)
                target = Target(spec.name, self._cascade(learner.policy), learner=learner)
            else:
                target = Target(spec.name, self._cascade(await asyncio.to_thread(
                    self._load, spec)))
        except (ConfigError, PolicyFileError, ValueError, OSError) as error:
            self.errors[spec.name] = str(error)
        else:
            self.targets[spec.name] = target
        finally:
            self.pending.remove(spec.name)

    def _load(self, spec: PolicySpec) -> object:
        if spec.file is not None:
            path = spec.file if spec.file.is_absolute() else self.config.base_dir / spec.file
            return load_policy(path)
        assert spec.fit is not None
        return fit_from_log(self.log_path(), spec.fit, self.cache_dir)

    def _cascade(self, policy: object) -> Cascade:
        missing = [m for m in policy_chain(policy) if m not in self.rungs]
        if missing:
            raise ConfigError(f"the policy climbs {', '.join(policy_chain(policy))} but the "
                              f"config has no model named {', '.join(missing)}")
        return Cascade(self.rungs, policy, self.config.task.type, owns_backends=False)

    async def resolve(self, name: str) -> Target:
        """The target a request's model name asks for; overrides are fitted on first use
        (concurrent requests for the same one wait for one fit)."""
        if name == LADDER and self.default_name is not None:
            name = self.default_name
        if name in self.targets:
            return self.targets[name]
        if name in self.rungs:
            return Target(name, rung=self.rungs[name])
        if name in self.pending:  # a worker that has just started: it exists, not yet ready
            raise Unavailable(f"the policy '{name}' is still being loaded or fitted; retry "
                              "shortly (/readyz tells when)", retry_after=1)
        if name in self.errors:
            raise Unavailable(f"the policy '{name}' could not be loaded: {self.errors[name]}",
                              retry_after=30)
        match = OVERRIDE.match(name)
        if match is None:
            raise UnknownModel(f"the model '{name}' does not exist; this gateway serves "
                               f"{', '.join(self.names())}")
        return await self._override(name, match)

    async def _override(self, name: str, match: re.Match[str]) -> Target:
        if match["base"] != LADDER:
            raise UnknownModel(f"overrides are spelt '{LADDER}:lambda=…' or "
                               f"'{LADDER}:budget=…', not '{name}'")
        if self.log_path() is None:
            raise UnknownModel("this gateway has no server.log to fit an override on")
        try:
            value = float(match["value"])
        except ValueError:
            raise ClientError(f"'{name}': {match['key']} must be a number", "model") from None
        if not (math.isfinite(value) and value >= 0):
            raise ClientError(f"'{name}': {match['key']} must be a finite number ≥ 0", "model")
        key = f"{LADDER}:{match['key']}={value:g}"
        task = self._overrides.get(key)
        if task is None and self._fitting.locked():
            # one override fit at a time (a budget fit takes seconds of CPU): a client
            # asking for many values waits its turn instead of taking every core
            raise Unavailable(f"'{name}' must be fitted first and another override is being "
                              "fitted; retry shortly", retry_after=5)
        if task is None:
            point = {"lam": value} if match["key"] == "lambda" else {"budget": value}
            family = self.config.server.override_policy if match["key"] == "lambda" else "auto"
            spec = FitSpec(policy=family, **point)
            task = asyncio.ensure_future(self._fit_override(key, spec))
            self._overrides[key] = task
            while len(self._overrides) > MAX_OVERRIDES:
                self._overrides.popitem(last=False)
        self._overrides.move_to_end(key)
        try:
            return await asyncio.shield(task)
        except ValueError as error:  # e.g. a λ that prices cost beyond any quality
            self._overrides.pop(key, None)  # a bad value is not cached
            raise ClientError(f"'{name}': {error}", "model") from None

    async def _fit_override(self, key: str, spec: FitSpec) -> Target:
        async with self._fitting:
            policy = await asyncio.to_thread(fit_from_log, self.log_path(), spec,
                                             self.cache_dir)
        return Target(key, self._cascade(policy))

    def refitting(self, store: Store) -> list[asyncio.Task[None]]:
        """A task per `fit` policy with `refit_every_s`: see `_refit_loop`."""
        return [asyncio.create_task(self._refit_loop(spec, store))
                for spec in self.config.server.policies
                if spec.fit is not None and spec.fit.refit_every_s is not None]

    async def _refit_loop(self, spec: PolicySpec, store: Store) -> None:
        """Every `refit_every_s`, fit the policy again on `server.log` plus the labelled
        traffic it served (people's and shadow runs' labels), in a thread, and swap the new
        one in whole (a request runs the old or the new, never a mix). A refit that fails
        is logged and the old policy kept."""
        while True:
            await asyncio.sleep(spec.fit.refit_every_s)
            try:
                policy = await asyncio.to_thread(self._refit, spec, store)
                self.targets[spec.name] = Target(spec.name, self._cascade(policy))
            except Exception:
                log.exception("policy %s: refit on the traffic failed; kept the old one",
                              spec.name)
            else:
                log.info("policy %s: refitted on the labelled traffic", spec.name)

    def _refit(self, spec: PolicySpec, store: Store) -> object:
        from ladder.fit import fit_from_runlog
        from ladder.server.export import with_traffic

        fit = spec.fit
        with tempfile.TemporaryDirectory(prefix="ladder-refit-") as folder:
            path = Path(folder) / "traffic.jsonl"
            with_traffic(self.log_path(), store.served(spec.name), path)
            return fit_from_runlog(path, fit.policy, lam=fit.lam, budget=fit.budget,
                                   target=fit.target_quality)

    def names(self) -> list[str]:
        """Every name /v1/models lists: the policies, then the models (pass-through)."""
        return [*(p.name for p in self.config.server.policies), *self.rungs]
