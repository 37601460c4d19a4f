"""Saving fitted policies to a safe, versioned JSON file (never a pickle).

Plain fitted attributes (chains, thresholds) are written as JSON; fitted
scikit-learn estimators are embedded as skops bytes (base64), and loading refuses
any type outside scikit-learn, numpy and ladder itself.
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import numpy as np
import skops.io as sio
from sklearn.base import BaseEstimator

from ladder.policies.auto import AutoCascade
from ladder.policies.baselines import FixedModel, Oracle, RandomMix
from ladder.policies.chains import BestChain
from ladder.policies.dp import DPCascade
from ladder.policies.moa import PyramidMoA
from ladder.policies.routed import RoutedCascade
from ladder.policies.router import Router
from ladder.policies.seed_heuristic import SeedHeuristic
from ladder.policies.threshold import ThresholdCascade

FORMAT = "ladder-policy"
# 3: moa, router, routed (policies inside policies); 2: cross-fitted calibration, plug-in α,
# vote, auto; margin and entropy features
VERSION = 3
# (family "moa" added within version 2: files of the other families are unchanged)
CLASSES: dict[str, type[BaseEstimator]] = {
    "fixed": FixedModel,
    "random": RandomMix,
    "oracle": Oracle,
    "threshold": ThresholdCascade,
    "dp": DPCascade,
    "seed_heuristic": SeedHeuristic,
    "moa": PyramidMoA,
    "router": Router,
    "routed": RoutedCascade,
}
# Beyond skops' own default-trusted scikit-learn types, exactly what ladder's estimators hold.
TRUSTED_TYPES = frozenset({
    "ladder.policies.router.CostModel",
    "ladder.policies.router.PromptQuality",
    "ladder.policies.router_models.IRTQuality",
    "ladder.policies.router_models.KNNQuality",
    "ladder.policies.router_models.LogisticQuality",
    "ladder.predictors.QualityPredictor",
    "ladder.predictors.TaskInteractions",
    "ladder.prompt_features.EmbeddingFeatures",
    "ladder.prompt_features.TextFeatures",
    "numpy.dtype",
    "scipy.sparse._csr.csr_matrix",  # the kNN router's training prompts
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
})


TUPLES = ("chain_", "models_", "inputs_", "layer1_")  # saved as JSON lists, restored as tuples
# how the fit did on its training folds, and the variant / layer searches: not deployed
TRAINING_ONLY = ("held_out_", "choice_", "candidates_")


class PolicyFileError(ValueError):
    """A policy file that cannot be loaded safely."""


def _encode_float(x: float) -> float | dict:
    """Strict JSON has no infinities: those are tagged, so a string 'inf' stays a string."""
    if math.isfinite(x):
        return x
    return {"float": "inf" if x > 0 else "-inf" if x < 0 else "nan"}


def _encode(value: object) -> object:
    if isinstance(value, BaseEstimator) and getattr(value, "family", None) in CLASSES:
        return {"policy": _document(value)}  # a policy inside a policy (routed's plans)
    if isinstance(value, BaseEstimator):
        return {"skops": base64.b64encode(sio.dumps(value)).decode("ascii")}
    if isinstance(value, np.ndarray):
        return {"array": [_encode(v) for v in value.tolist()]}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {"dict": {str(k): _encode(v) for k, v in value.items()}}
    if isinstance(value, float | np.floating):
        return _encode_float(float(value))
    if isinstance(value, np.integer):
        return int(value)
    if value is None or isinstance(value, str | int | bool):
        return value
    raise TypeError(f"cannot save a {type(value).__name__} in a policy file")


def _decode(value: object) -> object:
    if isinstance(value, dict) and "skops" in value:
        data = base64.b64decode(value["skops"])
        untrusted = sio.get_untrusted_types(data=data)
        refused = [t for t in untrusted if t not in TRUSTED_TYPES]
        if refused:
            raise PolicyFileError(f"policy file holds types ladder does not load: {refused}")
        return sio.loads(data, trusted=untrusted)
    if isinstance(value, dict) and "policy" in value:
        return _restore(value["policy"])
    if isinstance(value, dict) and "dict" in value:
        return {k: _decode(v) for k, v in value["dict"].items()}
    if isinstance(value, dict) and "array" in value:
        return np.array([_decode(v) for v in value["array"]], dtype=float)
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict) and "float" in value:
        return float(value["float"])
    return value


def _document(policy: BaseEstimator) -> dict:
    """A fitted policy's family, parameters and deployable fitted attributes."""
    fitted = {k: v for k, v in vars(policy).items()
              if k.endswith("_") and not k.startswith("_") and k not in TRAINING_ONLY}
    if not fitted:
        raise ValueError("the policy is not fitted; call fit() first")
    return {"family": policy.family,
            "params": _encode(list(policy.get_params(deep=False).items())),
            "fitted": {k: _encode(v) for k, v in fitted.items()}}


def _restore(document: dict) -> BaseEstimator:
    family = document.get("family")
    if family not in CLASSES:
        raise PolicyFileError(f"unknown policy family {family!r}")
    params = {k: _decode(v) for k, v in document["params"]}
    policy = CLASSES[family](**params)
    for name, value in document["fitted"].items():
        decoded = _decode(value)
        setattr(policy, name, tuple(decoded) if name in TUPLES else decoded)
    return policy


def save_policy(policy: BaseEstimator, path: str | Path) -> Path:
    """Write a fitted policy (a BestChain or auto is saved as the policy it chose)."""
    while isinstance(policy, BestChain | AutoCascade):
        policy = policy.policy_
    document = {"format": FORMAT, "version": VERSION, **_document(policy)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1))
    return path


def load_policy(path: str | Path) -> BaseEstimator:
    """Read a policy file written by save_policy."""
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise PolicyFileError(f"{path}: not a readable policy file ({error})") from error
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise PolicyFileError(f"{path}: not a ladder policy file")
    if document.get("version") != VERSION:
        raise PolicyFileError(
            f"{path}: policy file version {document.get('version')}; this ladder reads {VERSION}"
        )
    try:
        return _restore(document)
    except PolicyFileError as error:
        raise PolicyFileError(f"{path}: {error}") from None
