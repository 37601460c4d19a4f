"""Model backends behind one small interface (see base.Backend): openai, llamacpp, replay, fake."""

from ladder.backends.base import Backend, BackendError, Generation, ModelOutput, OptionScores

__all__ = ["Backend", "BackendError", "Generation", "ModelOutput", "OptionScores"]
