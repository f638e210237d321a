"""Zero-downtime rotation on a live issuer and resource server."""

import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import jwt as pyjwt

from servicekit.processes import run_script
from tests.e2e.stack import running_stack


def fetches_by_reason(metrics_text: str) -> dict[str, float]:
    counts: dict[str, float] = {}
    pattern = r'^rs_jwks_fetches_total\{outcome="(\w+)",reason="(\w+)"\} (\S+)$'
    for outcome, reason, value in re.findall(pattern, metrics_text, re.MULTILINE):
        counts[f"{reason}:{outcome}"] = float(value)
    return counts


def test_three_rotations_under_traffic_fail_no_request_and_need_no_unknown_kid_fetch(tmp_path):
    with running_stack(
        tmp_path,
        ISSUER_JWKS_MAX_AGE="2",
        ISSUER_ROTATION_LEEWAY="1",
        ISSUER_ACCESS_TOKEN_TTL="120",
        RS_JWKS_MIN_TTL="1",
    ) as stack:
        tokens = [stack.token()]
        statuses: list[int] = []
        stop = threading.Event()

        def mint() -> None:
            while not stop.is_set():
                tokens.append(stack.token())
                time.sleep(0.2)

        def call() -> None:
            # A connection per request: under the parallel suite's load a kept-alive one could
            # reach the server's 5 s idle timeout and be closed as the next request was sent
            # ("Server disconnected without sending a response"), a race of the transport,
            # not a refusal of a token.
            with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0)) as client:
                while not stop.is_set():
                    token = random.choice(tokens[-3:] if random.random() < 0.5 else tokens)
                    response = client.get(
                        f"{stack.rs_url}/users/me", headers={"Authorization": f"Bearer {token}"}
                    )
                    statuses.append(response.status_code)

        threads = [threading.Thread(target=mint)] + [
            threading.Thread(target=call) for _ in range(3)
        ]
        for thread in threads:
            thread.start()
        try:
            for _ in range(3):
                deadline = time.monotonic() + 30
                while (result := run_script("rotate_keys.py", env=stack.env)).returncode == 3:
                    assert time.monotonic() < deadline, result.stderr
                    time.sleep(0.3)
                assert result.returncode == 0, result.stderr
            time.sleep(2)  # traffic continues on the final key
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        kids = {pyjwt.get_unverified_header(token)["kid"] for token in tokens}
        assert len(kids) == 4  # the initial active key and three rotations
        assert len(statuses) > 100
        failures = [s for s in statuses if s != 200]
        assert failures == [], f"{len(failures)} of {len(statuses)} requests failed"
        counts = fetches_by_reason(httpx.get(f"{stack.rs_url}/metrics").text)
        assert counts.get("refresh_ahead:ok", 0) > 0
        assert counts.get("unknown_kid:ok", 0) == counts.get("unknown_kid:error", 0) == 0
        assert counts.get("bad_signature:ok", 0) == 0


def test_every_issuer_process_sharing_the_keys_dir_signs_with_the_new_key_within_2_s(tmp_path):
    with running_stack(tmp_path, issuer_workers=2, ISSUER_KEYS_POLL_INTERVAL="1") as stack:
        result = run_script("rotate_keys.py", "--force", env=stack.env)
        assert result.returncode == 0, result.stderr
        rotated_at = time.monotonic()
        new_kid = stack.active_private_key()[0]
        time.sleep(2)
        # Many requests at once, spread over both worker processes: all sign with the new key.
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=10) as pool:
            tokens = list(pool.map(lambda _: stack.token(), range(30)))
        assert {pyjwt.get_unverified_header(token)["kid"] for token in tokens} == {new_kid}
        # Asked for right after the 2 s; a loaded machine answering later makes the check
        # weaker, never wrong (the total time is not asserted: it failed under CI's load).
        assert started - rotated_at < 3
