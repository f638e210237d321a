"""Access tokens for the benchmark: minted in bulk, streamed to wrk, decoded for the reader."""

import json
import math
import re
from pathlib import Path
from typing import Any

import httpx
from load import DURATION, Load, wrk
from servers import Service

from resource_server.base64url import b64url_decode

STREAM_LUA = Path(__file__).with_name("token_stream.lua")
MINT_LUA = Path(__file__).with_name("mint_tokens.lua")


def client_credentials(url: str, client_id: str, secret: str, scope: str) -> str:
    """One access token from `url`/token for the client itself."""
    response = httpx.post(
        f"{url}/token",
        data={"grant_type": "client_credentials", "scope": scope},
        auth=(client_id, secret),
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def mint(url: str, client_id: str, secret: str, scope: str, count: int, work: Path) -> list[str]:
    """`count` distinct tokens from `url`/token (client_credentials), requested by wrk (a
    Python client would take minutes): runs of an estimated length until there are enough.
    """
    out = work / "minted.txt"
    headers = {"Authorization": httpx.BasicAuth(client_id, secret)._auth_header}
    body = f"grant_type=client_credentials&scope={scope}"
    env = {"WRK_TOKENS_OUT": str(out)}
    minted: list[str] = []
    seconds = 2
    while len(minted) < count:
        before = len(minted)
        wrk(f"{url}/token", headers, body, seconds, script=MINT_LUA, env=env)
        minted = list(dict.fromkeys(out.read_text().split()))
        if len(minted) == before:
            raise RuntimeError(f"{url}/token issued no tokens:\n{out.read_text()[:500]}")
        # 10% over the estimate from this run's rate; a run too short leads to one more.
        rate = (len(minted) - before) / seconds
        seconds = math.ceil((count - len(minted)) / rate * 1.1)
    return minted[:count]


class TokenStream:
    """A file of distinct tokens that wrk cycles through, one token per request.

    Each server continues from where its previous run stopped, so a token comes back only
    after every other token in the file has been sent to that server once.
    """

    def __init__(self, path: Path, tokens: list[str]):
        path.write_text("\n".join(tokens) + "\n")
        self.path, self.count = path, len(tokens)
        self._positions: dict[str, int] = {}

    def run(self, service: Service, seconds: float = DURATION) -> Load:
        position = self._positions.get(service.url, 0)
        env = {"WRK_TOKENS": str(self.path), "WRK_TOKEN_OFFSET": str(position)}
        load = wrk(
            f"{service.url}/users/me", seconds=seconds, server=service, script=STREAM_LUA, env=env
        )
        self._positions[service.url] = position + load.sent
        return load

    def sent(self, service: Service) -> int:
        return self._positions.get(service.url, 0)


def cache_lookups(rs_url: str) -> dict[str, int]:
    """Our resource server's verified-token cache hits and misses, from its /metrics."""
    text = httpx.get(f"{rs_url}/metrics").text
    found = re.findall(r'^rs_token_cache_lookups_total\{result="(\w+)"\} (\S+)$', text, re.M)
    return {result: int(float(value)) for result, value in found}


def decode(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a JWS compact token, NOT verified (for display only)."""
    header, claims = (json.loads(b64url_decode(part)) for part in token.split(".")[:2])
    return header, claims


def side_by_side(tokens: dict[str, str], width: int = 46) -> list[str]:
    """Lines showing each token's header and claims in a column of its own."""
    decoded = {name: decode(token) for name, token in tokens.items()}
    labels = [f"header {key}" for pair in decoded.values() for key in pair[0]]
    labels += [f"claims {key}" for pair in decoded.values() for key in pair[1]]
    label_width = max(len(label) for label in [*labels, "size (bytes)"]) + 2
    lines = ["".ljust(label_width) + "".join(name.ljust(width) for name in tokens)]
    for index, part in enumerate(("header", "claims")):
        names = dict.fromkeys(key for pair in decoded.values() for key in pair[index])
        for key in names:
            cells = []
            for pair in decoded.values():
                value = pair[index].get(key, "-")
                text = value if isinstance(value, str) else json.dumps(value)
                cells.append(
                    (text if len(text) < width - 1 else text[: width - 4] + "...").ljust(width)
                )
            lines.append(f"{part} {key}".ljust(label_width) + "".join(cells).rstrip())
    sizes = "".join(str(len(token)).ljust(width) for token in tokens.values())
    lines.append("size (bytes)".ljust(label_width) + sizes.rstrip())
    lines[0] = lines[0].rstrip()
    return lines
