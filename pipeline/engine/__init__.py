"""The rule engine: compiled rules, indexed by event type, evaluated per event."""

from pipeline.engine.engine import EMPTY, Engine, EngineRule, EvaluationError
from pipeline.engine.evttypes import ALL, EvttypeSet, evttypes_of

__all__ = ["ALL", "EMPTY", "Engine", "EngineRule", "EvaluationError", "EvttypeSet", "evttypes_of"]
