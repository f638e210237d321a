"""`FrontedFastAPI` takes only plain requests for its front routes; the rest go the full way.
`HEAD` is answered on the routes named for it."""

from prometheus_client import CollectorRegistry
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from issuer.app import create_app as create_issuer
from issuer.settings import Settings as IssuerSettings
from resource_server.app import create_app as create_rs
from resource_server.settings import Settings as RSSettings
from servicekit.front import FrontedFastAPI
from servicekit.observability import RequestContext, request_histogram
from tests.support import call_asgi, fresh_key_set, http_scope, running, served


def make_app() -> FrontedFastAPI:
    app = FrontedFastAPI()
    histogram = request_histogram(CollectorRegistry(), "t")

    @app.api_route("/hot", methods=["GET", "HEAD", "POST"])
    async def full() -> PlainTextResponse:
        return PlainTextResponse("full")

    async def front(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("front")(scope, receive, send)

    app.in_context(lambda inner: RequestContext(inner, histogram))
    app.front("GET", "/hot", front)
    return app


async def test_only_plain_requests_take_the_front():
    async with running(make_app()) as client:
        assert (await client.get("/hot")).text == "front"
        assert (await client.get("/hot?x=1")).text == "front"
        assert (await client.get("/hot", headers={"Origin": "http://a.test"})).text == "full"
        assert (await client.post("/hot")).text == "full"
        assert (await client.head("/hot")).status_code == 200
        # The audit: a 307 to a Location built from the client's Host, echoing the query.
        slashed = await client.get("/hot/?access_token=x", headers={"Host": "evil.example"})
        assert slashed.status_code == 404 and "location" not in slashed.headers
        assert "x-request-id" in (await client.get("/hot")).headers
        assert "x-request-id" in (await client.get("/hot", headers={"Origin": "http://a"})).headers


def test_a_front_route_must_exist_in_the_app():
    app = FrontedFastAPI()
    try:
        app.front("GET", "/missing", PlainTextResponse("x"))
    except ValueError as exc:
        assert "/missing" in str(exc)
    else:
        raise AssertionError("a front route without a FastAPI route was accepted")


async def test_head_is_answered_as_get_without_the_body_on_the_routes_named():
    app = FrontedFastAPI()

    @app.get("/probe")
    async def probe() -> PlainTextResponse:
        return PlainTextResponse("alive")

    @app.get("/act")
    async def act() -> PlainTextResponse:  # a GET with an effect: no HEAD
        return PlainTextResponse("done")

    app.answer_head("/probe")
    async with running(app) as client:
        head = await client.head("/probe")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == "5"  # as for GET (RFC 9110 9.3.2)
        assert (await client.head("/act")).status_code == 405
        assert (await client.get("/probe")).text == "alive"


async def test_a_head_answered_as_get_is_counted_as_head():
    # The audit: HEAD on /readyz was counted in the request metrics as a GET.
    app = FrontedFastAPI()
    histogram = request_histogram(CollectorRegistry(), "t")

    @app.get("/probe")
    async def probe() -> PlainTextResponse:
        return PlainTextResponse("alive")

    app.in_context(lambda inner: RequestContext(inner, histogram))
    app.answer_head("/probe")
    async with running(app) as client:
        await client.head("/probe")
        await client.head("/probe")
        await client.get("/probe")
    counts = {
        sample.labels["method"]: sample.value
        for metric in histogram.collect()
        for sample in metric.samples
        if sample.name.endswith("_count") and sample.labels["route"] == "/probe"
    }
    assert counts == {"HEAD": 2, "GET": 1}


async def test_the_services_answer_head_on_their_probes_and_documents(tmp_path):
    # The audit: uptime probes sending HEAD got 405 from every route.
    issuer = create_issuer(
        IssuerSettings(
            keys_dir=fresh_key_set(tmp_path / "keys"),
            database_url=f"sqlite:///{tmp_path / 'issuer.db'}",
        )
    )
    async with running(issuer) as client:
        for path in (
            "/healthz",
            "/readyz",
            "/.well-known/jwks.json",
            "/.well-known/openid-configuration",
            "/openapi.json",
            "/docs",
            "/docs/oauth2-redirect",
        ):
            got, head = await client.get(path), await client.head(path)
            assert (head.status_code, head.content) == (got.status_code, b""), path
            assert head.headers["content-length"] == got.headers["content-length"], path
        for path in ("/authorize", "/logout", "/token"):
            assert (await client.head(path)).status_code == 405, path
    async with running(create_rs(RSSettings())) as client:
        for path in ("/healthz", "/docs", "/openapi.json"):
            assert (await client.head(path)).status_code == 200, path
        assert (await client.head("/users/me")).status_code == 405


async def test_the_fronts_vary_adds_origin_to_the_values_the_handler_set():
    app = FrontedFastAPI()

    @app.get("/hot")
    async def full() -> PlainTextResponse:
        return PlainTextResponse("full")

    async def front(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("front", headers={"Vary": "Accept-Encoding"})(scope, receive, send)

    app.front("GET", "/hot", front)
    app.allow_cors(allow_origins=["http://a.test"])
    async with running(app) as client:
        response = await client.get("/hot")
    assert response.text == "front"
    assert response.headers.get_list("vary") == ["Accept-Encoding, Origin"]


async def test_a_head_answered_as_get_sends_no_body_bytes_to_the_server():
    # httpx drops a HEAD answer's body itself: what the app sends is checked at the ASGI level.
    app = make_app()
    app.answer_head("/hot", "/cold")

    @app.get("/cold")
    async def cold() -> PlainTextResponse:
        return PlainTextResponse("cold")

    async with served(app) as asgi:
        for path, length in (("/hot", b"5"), ("/cold", b"4")):  # the front, the full way
            sent = await call_asgi(asgi, http_scope("HEAD", path, []))
            assert sent[0]["status"] == 200, path
            assert (b"content-length", length) in sent[0]["headers"], path
            assert b"".join(m.get("body", b"") for m in sent[1:]) == b"", path


async def test_cookies_full_of_escapes_are_left_out_before_the_framework_reads_them():
    # The audit: Python before 3.11.10 unquotes `"\0\0..."` in quadratic time, and the
    # framework reads the cookies of every request it routes; 20,000 escapes held the loop
    # for 5 s. The guard counts backslashes, so it holds on any Python; the other cookies
    # (ours never hold a backslash) still arrive.
    app = make_app()

    @app.get("/cookies")
    async def cookies(request: Request) -> dict[str, str]:
        return request.cookies

    flood = 'a="' + "\\0" * 20_000 + '"'
    async with running(app) as client:
        for headers in (
            {"Cookie": f"keep=1; {flood}; also=2"},
            {"Cookie": f"keep=1; also=2; {flood}", "Origin": "http://app.test"},
        ):
            got = await client.get("/cookies", headers=headers)
            assert got.json() == {"keep": "1", "also": "2"}
        assert (await client.get("/cookies", headers={"Cookie": flood})).json() == {}
        # A few escapes are a cookie like any other.
        few = 'a="' + "\\0" * 32 + '"'
        assert (await client.get("/cookies", headers={"Cookie": few})).json() == {"a": "0" * 32}


async def test_a_request_whose_cookies_were_left_out_is_counted_under_its_route():
    # The audit: the cookies were left out of a copy of the request, into which the routing
    # then wrote the route, so the latency histogram counted the request as `unmatched`.
    app = FrontedFastAPI()
    histogram = request_histogram(CollectorRegistry(), "t")

    @app.get("/page")
    async def page() -> PlainTextResponse:
        return PlainTextResponse("page")

    app.in_context(lambda inner: RequestContext(inner, histogram))
    flood = 'a="' + "\\0" * 100 + '"'
    async with running(app) as client:
        assert (await client.get("/page", headers={"Cookie": flood})).status_code == 200
    (family,) = histogram.collect()
    assert {sample.labels["route"] for sample in family.samples} == {"/page"}
