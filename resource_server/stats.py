"""What the verifier and its key set did, counted for /metrics (read at scrape time).

Plain counters, so the request path pays an addition, not a metrics-library call. The
application owns one `VerifierStats` and hands it to the `Verifier` and `RemoteKeySet`.
"""

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class VerifierStats:
    # Rejected tokens by a short, fixed reason label (the description is for the developer).
    rejections: Counter[str] = field(default_factory=Counter)
    cache_hits: int = 0
    cache_misses: int = 0
    # JWKS fetches started, by (reason, outcome).
    fetches: Counter[tuple[str, str]] = field(default_factory=Counter)
