"""peregrine worker's start-up check of OpenSearch: refused credentials are a misconfiguration
(ConfigError); an OpenSearch that does not answer is an outage (a warning, the worker starts).
The refusal comes from a stand-in HTTP server answering as OpenSearch's security plugin does
(the local OpenSearch runs without it); TLS and the outage are tested on the real server
(tests/integration/test_pipeline_cli.py, test_pipeline_failures.py)."""

from __future__ import annotations

import socket

import pytest
from aiohttp import web

from pipeline.cli.worker import check_opensearch
from pipeline.errors import ConfigError
from pipeline.stream.settings import PipelineSettings


async def _server(status: int) -> tuple[web.AppRunner, str]:
    async def root(request: web.Request) -> web.Response:
        return web.json_response({"error": {"type": "security_exception", "reason": "Unauthorized"}, "status": status},
                                 status=status)

    app = web.Application()
    app.router.add_get("/", root)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return runner, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_credentials_are_a_misconfiguration(status):
    runner, url = await _server(status)
    try:
        settings = PipelineSettings.from_env(opensearch_url=url, opensearch_username="analyst", opensearch_password="wrong",
                                             startup_timeout_s=5)
        with pytest.raises(ConfigError) as error:
            await check_opensearch(settings)
    finally:
        await runner.cleanup()
    assert str(error.value) == (f"OpenSearch at {url} refused the credentials of user analyst (HTTP {status}): "
                                "check PEREGRINE_OPENSEARCH_USERNAME/PASSWORD")


async def test_another_http_server_is_a_misconfiguration_and_a_503_an_outage():
    runner, url = await _server(404)
    try:
        with pytest.raises(ConfigError) as error:
            await check_opensearch(PipelineSettings.from_env(opensearch_url=url, startup_timeout_s=5))
        assert str(error.value) == (f"OpenSearch at {url} answered HTTP 404 to GET / (NotFoundError): "
                                    "is PEREGRINE_OPENSEARCH_URL an OpenSearch?")
    finally:
        await runner.cleanup()
    runner, url = await _server(503)
    warnings: list[str] = []
    try:
        await check_opensearch(PipelineSettings.from_env(opensearch_url=url, startup_timeout_s=5), warn=warnings.append)
    finally:
        await runner.cleanup()
    assert len(warnings) == 1 and f"OpenSearch at {url} answers HTTP 503" in warnings[0]


async def test_an_opensearch_that_does_not_answer_is_a_warning_not_an_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    warnings: list[str] = []
    settings = PipelineSettings.from_env(opensearch_url=f"http://127.0.0.1:{port}", startup_timeout_s=5)
    await check_opensearch(settings, warn=warnings.append)
    assert len(warnings) == 1 and f"OpenSearch at http://127.0.0.1:{port} does not answer (ConnectionError)" in warnings[0]
