"""What a correlation is, once loaded: frozen values with compiled matchers.

Three kinds, after EQL sequences and Sigma correlation rules (v2.1):

* :class:`Sequence`: ordered :class:`Step` s in one group, the whole chain
  within ``maxspan`` of the first step's event time; ``until`` discards a
  partial match; a step may ``bind`` a field's value to a name that a later
  step must ``match``.
* :class:`Threshold`: at least ``count`` matching events per group in a
  sliding ``window``.
* :class:`DistinctCount`: at least ``count`` distinct values of ``field``
  per group in a sliding ``window``.

Times are nanoseconds of event time. Matchers (``event -> bool``) and field
extractors are compiled at load, so evaluation reads each field once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Union

from pipeline.errors import ConfigError, SourceLocation
from pipeline.rules.model import Priority

NS_PER_SECOND = 1_000_000_000

Matcher = Callable[[Any], bool]
Extract = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class CorrelationLimits:
    """Bounds on correlation state; every one is a setting.

    ``max_window_ns``: the longest ``maxspan``/``window`` a correlation may
    declare (a longer one is refused at load, naming this limit).
    ``max_groups``: open groups per evaluator (all correlations together);
    beyond it the least recently touched group is evicted and counted.
    ``max_partials_per_group``: open partial matches of one sequence in one
    group; beyond it the oldest is dropped and counted.
    ``max_held_per_group``: events of one sequence group held for an earlier
    step that may still arrive (pipeline/correlation/held.py); beyond it the
    oldest is dropped and counted.
    ``max_count``: the largest ``count`` of a threshold or distinct rule
    (their state holds up to ``count`` entries per group).
    ``allowed_lateness_ns``: how far behind the newest event time an event
    may arrive and still take part; state is expired only once the
    watermark (newest time minus lateness) has passed its end.
    ``throttle_ns``: default de-duplication period per rule and group key
    (0: every completed match alerts).
    ``max_future_ns``: how far ahead of the wall clock an event's time may be
    and still move its clock. One event stamped in the year 2100 (a broken
    node clock, a hostile producer) would otherwise set its partition's
    watermark there, and every later event of that partition would be late:
    its correlations silenced for good. Such an event takes no part in
    correlations (counted as ``future``); its rules still run.
    ``regroup_idle_ns``: how long, in event time, an input partition that
    forwards nothing may hold back a regrouped clock's watermark. A regrouped
    clock merges the events forwarded from every input partition (its
    *origins*) and its watermark is the oldest of their newest times minus
    the lateness, so one partition lagging behind the others loses nothing;
    an origin from which nothing came while the clock's newest time moved on
    by more than this is idle and left out until it forwards again, as are
    the origins not heard from yet for this long after the clock starts or
    is recovered (pipeline/correlation/evaluate.py). Event time, not the wall
    clock: a worker that stalls makes no origin idle, and a replay runs the
    same. 0: an origin counts only while it keeps up with the newest.
    ``max_regroup_origins``: origins tracked per regrouped clock; beyond it the
    one heard from least recently is forgotten (as if idle) and counted.
    """

    max_window_ns: int = 3600 * NS_PER_SECOND
    max_groups: int = 200_000
    max_partials_per_group: int = 8
    max_held_per_group: int = 16
    max_count: int = 10_000
    allowed_lateness_ns: int = 5 * NS_PER_SECOND
    throttle_ns: int = 0
    max_future_ns: int = 3600 * NS_PER_SECOND
    regroup_idle_ns: int = 600 * NS_PER_SECOND
    max_regroup_origins: int = 256

    @classmethod
    def from_settings(cls, settings: "dict[str, Any] | None") -> "CorrelationLimits":
        """From a settings mapping as written in a config file or environment:
        ``max_window``, ``allowed_lateness``, ``throttle``, ``max_future``, ``regroup_idle`` as durations
        (``1h``, ``5s``); ``max_groups``, ``max_partials_per_group``, ``max_held_per_group``, ``max_count``,
        ``max_regroup_origins`` as integers."""
        from pipeline.correlation.parse import parse_duration

        values: dict[str, int] = {}
        durations = {"max_window": "max_window_ns", "allowed_lateness": "allowed_lateness_ns", "throttle": "throttle_ns",
                     "max_future": "max_future_ns", "regroup_idle": "regroup_idle_ns"}
        counts = ("max_groups", "max_partials_per_group", "max_held_per_group", "max_count", "max_regroup_origins")
        for key, value in (settings or {}).items():
            if key in durations:
                ns = parse_duration(str(value))
                if ns is None:
                    raise ConfigError(f"correlation setting {key} must be a duration such as 30s, 5m or 1h, got {value!r}")
                values[durations[key]] = ns
            elif key in counts:
                if isinstance(value, bool) or not str(value).strip().isdigit():
                    raise ConfigError(f"correlation setting {key} must be a positive integer, got {value!r}")
                values[key] = int(value)
            else:
                known = ", ".join(sorted((*durations, *counts)))
                raise ConfigError(f"unknown correlation setting {key!r}; known: {known}")
        return cls(**values)

    def __post_init__(self) -> None:
        for name in ("max_window_ns", "max_groups", "max_partials_per_group", "max_held_per_group", "max_count",
                     "max_regroup_origins"):
            if getattr(self, name) < 1:
                raise ConfigError(f"correlation limit {name} must be at least 1, got {getattr(self, name)}")
        if self.allowed_lateness_ns < 0 or self.throttle_ns < 0 or self.max_future_ns < 0 or self.regroup_idle_ns < 0:
            raise ConfigError("correlation allowed_lateness, throttle, max_future and regroup_idle must not be negative")


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a sequence (also the single matcher of threshold/distinct rules).

    ``condition_text`` is the condition as written, or ``rule:<name>`` for a
    step that reuses a rule. ``binds`` are (variable, field) pairs recorded
    when the step matches; ``matches`` are (field, variable) pairs that must
    equal a value bound by an earlier step.
    """

    name: str
    condition_text: str
    matcher: Matcher = field(compare=False, repr=False)
    binds: tuple[tuple[str, Extract], ...] = field(default=(), compare=False, repr=False)
    bind_names: tuple[tuple[str, str], ...] = ()
    matches: tuple[tuple[Extract, str], ...] = field(default=(), compare=False, repr=False)
    match_names: tuple[tuple[str, str], ...] = ()
    rule: str | None = None
    # fields the output reads from this step's event (%step.<name>.<field>): (field, extractor)
    record: tuple[tuple[str, Extract], ...] = field(default=(), compare=False, repr=False)
    # the condition with every macro inlined, for the evaluator's evt.type-indexed engine
    condition: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class _Common:
    name: str
    source: str
    by: tuple[str, ...]
    priority: Priority
    output: str
    desc: str = ""
    tags: tuple[str, ...] = ()
    enabled: bool = True
    throttle_ns: int | None = None  # None: the limits' default
    location: SourceLocation | None = field(default=None, compare=False)
    by_extract: tuple[Extract, ...] = field(default=(), compare=False, repr=False)
    # the output compiled by the rules' formatter (pipeline/correlation/output.py): render(Match, time)
    output_format: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Sequence(_Common):
    steps: tuple[Step, ...] = ()
    maxspan_ns: int = 0
    until: Step | None = None
    kind: str = "sequence"

    @property
    def span_ns(self) -> int:
        return self.maxspan_ns


@dataclass(frozen=True, slots=True)
class Threshold(_Common):
    step: Step | None = None
    window_ns: int = 0
    count: int = 1
    kind: str = "threshold"

    @property
    def span_ns(self) -> int:
        return self.window_ns


@dataclass(frozen=True, slots=True)
class DistinctCount(_Common):
    step: Step | None = None
    window_ns: int = 0
    count: int = 1
    field_name: str = ""
    field_extract: Extract | None = field(default=None, compare=False, repr=False)
    kind: str = "distinct"

    @property
    def span_ns(self) -> int:
        return self.window_ns


Correlation = Union[Sequence, Threshold, DistinctCount]
