"""Human-readable views of the key set for the key scripts."""

from datetime import UTC, datetime

from issuer.keys import KeyManifest, RotationPolicy


def format_time(timestamp: int | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def status_rows(manifest: KeyManifest, policy: RotationPolicy) -> list[tuple[str, ...]]:
    """One row a key: kid, state, created, may activate, may retire."""
    rows: list[tuple[str, ...]] = []
    for key in manifest.keys:
        state = f"{key.state} (revoked)" if key.revoked else str(key.state)
        rows.append(
            (
                key.kid,
                state,
                format_time(key.created_at),
                format_time(key.may_activate_at(policy)),
                format_time(key.may_retire_at(policy) or key.retired_at),
            )
        )
    return rows


def print_status(manifest: KeyManifest, policy: RotationPolicy) -> None:
    header = ("kid", "state", "created", "may activate", "retires")
    rows = [header, *status_rows(manifest, policy)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
