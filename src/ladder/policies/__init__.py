"""Cascade and routing policies, scikit-learn style, and their safe policy files.

The classes live in the submodules; this package only re-exports them so that
`from ladder.policies import DPCascade` works. No submodule imports the package itself
(persist imports the classes from their own modules), so this adds no import cycle.
"""

from ladder.policies.auto import AutoCascade
from ladder.policies.baselines import FixedModel, Oracle, RandomMix
from ladder.policies.chains import BestChain
from ladder.policies.dp import DPCascade
from ladder.policies.persist import load_policy, save_policy
from ladder.policies.seed_heuristic import SeedHeuristic
from ladder.policies.threshold import ThresholdCascade

__all__ = [
    "AutoCascade",
    "BestChain",
    "DPCascade",
    "FixedModel",
    "Oracle",
    "RandomMix",
    "SeedHeuristic",
    "ThresholdCascade",
    "load_policy",
    "save_policy",
]
