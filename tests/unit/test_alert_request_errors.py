"""What `peregrine alerts` says when OpenSearch refuses a request, and which indices are a prefix's days."""

from __future__ import annotations

from datetime import date

from opensearchpy.exceptions import RequestError

from pipeline.errors import ConfigError, StackError
from pipeline.sinks.daily_indices import index_day
from pipeline.sinks.request_errors import refusal_reason, request_failure

PARSE_FAILURE = {"error": {
    "root_cause": [{"type": "query_shard_exception", "reason": "Failed to parse query [AND priority]"}],
    "type": "search_phase_execution_exception", "reason": "all shards failed",
    "caused_by": {"type": "query_shard_exception", "reason": "Failed to parse query [AND priority]",
                  "caused_by": {"type": "parse_exception",
                                "reason": "Cannot parse 'AND priority': Encountered \" <AND> \"AND \"\" at line 1, column 0.\n"
                                          "Was expecting one of:\n    <NOT> ...\n",
                                "caused_by": {"type": "parse_exception", "reason": "Encountered ..."}}}},
    "status": 400}


def test_a_query_that_does_not_parse_is_the_users_error_with_lucenes_first_line():
    failure = request_failure("http://os:9200", RequestError(400, "search_phase_execution_exception", PARSE_FAILURE))
    assert isinstance(failure, ConfigError)
    assert str(failure) == "the query does not parse: Cannot parse 'AND priority': Encountered \" <AND> \"AND \"\" at line 1, column 0."


def test_another_refusal_names_its_innermost_cause():
    body = {"error": {"root_cause": [{"type": "illegal_argument_exception", "reason": "No mapping found for [time]"}],
                      "type": "search_phase_execution_exception", "reason": "all shards failed"}, "status": 400}
    assert refusal_reason(body) == ("illegal_argument_exception", "No mapping found for [time]")
    failure = request_failure("http://os:9200", RequestError(400, "search_phase_execution_exception", body))
    assert isinstance(failure, StackError)
    assert str(failure) == ("OpenSearch at http://os:9200 refused the request (HTTP 400, illegal_argument_exception): "
                            "No mapping found for [time]")


def test_a_body_without_an_error_object_keeps_the_plain_message():
    assert refusal_reason("not json") is None
    assert "RequestError" in str(request_failure("http://os:9200", RequestError(400, "x", "not json")))


def test_a_daily_index_is_the_prefix_and_a_date_nothing_more():
    assert index_day("soc-2025.11.22", "soc-") == date(2025, 11, 22)
    for name in ("soc-eu-2025.11.22", "soc-2025.11.22-restored", "soc-2025.13.45", "soc-2025.1.2", "other-2025.11.22", "soc-"):
        assert index_day(name, "soc-") is None, name
