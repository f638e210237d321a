"""A stand-in issuer on loopback whose JWKS (and metadata) can stall: a byte every 2 s.

Started in a thread of the test process; `stop()` ends every trickle and the server.
"""

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support import public_jwk, sign_jwt

JWKS_PATH = "/.well-known/jwks.json"


class FakeIssuer:
    """Serves one key's JWKS with `max-age=1`; with `trickling` set, bodies crawl instead."""

    def __init__(self, private_key: rsa.RSAPrivateKey, kid: str = "k1", byte_every: float = 2):
        self.private_key = private_key
        self.kid = kid
        self.trickling = threading.Event()
        self.jwks_requests = 0
        self._stopping = threading.Event()
        self._jwks = json.dumps({"keys": [public_jwk(private_key, kid)]}).encode()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == JWKS_PATH:
                    fake.jwks_requests += 1
                    fake._answer(self, self.path, fake._jwks)
                else:
                    # No metadata: the verifier falls back to the well-known JWKS path.
                    fake._answer(self, self.path, b'{"error": "not_found"}', status=404)

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._byte_every = byte_every
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _answer(
        self, handler: BaseHTTPRequestHandler, path: str, body: bytes, status: int = 200
    ) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Cache-Control", "max-age=1")
        handler.end_headers()
        with contextlib.suppress(OSError):  # the verifier hangs up at its deadline
            if not self.trickling.is_set():
                handler.wfile.write(body)
                return
            for byte in body:
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
                if self._stopping.wait(self._byte_every):
                    return

    def token(self, kid: str | None = None, audience: str = "api") -> str:
        """A new access token this issuer would sign (under another kid if asked).

        Each one is distinct, so the verifier's cache of verified tokens never answers it.
        """
        now = int(time.time())
        claims = {
            "iss": self.url,
            "sub": "7",
            "aud": audience,
            "exp": now + 300,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "client_id": "public",
            "scope": "profile",
        }
        header = {"alg": "RS256", "typ": "at+jwt", "kid": kid or self.kid}
        return sign_jwt(self.private_key, header, claims)

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@contextlib.contextmanager
def fake_issuer(private_key: rsa.RSAPrivateKey) -> Iterator[FakeIssuer]:
    """A running `FakeIssuer`, always stopped."""
    issuer = FakeIssuer(private_key)
    try:
        yield issuer
    finally:
        issuer.stop()
