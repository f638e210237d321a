"""Human-readable views of the key set for the key scripts."""

import io

from rich.console import Console
from rich.table import Table

from issuer.keys.model import KeyManifest, RotationPolicy, format_timestamp


def format_time(timestamp: int | None) -> str:
    return "-" if timestamp is None else format_timestamp(timestamp)


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


_STATE_STYLE = {"active": "bold green", "next": "cyan", "retiring": "yellow", "retired": "dim"}


def status_lines(manifest: KeyManifest, policy: RotationPolicy) -> list[str]:
    """The key set as a table (colours on a terminal, plain text in a pipe), for the scripts'
    one writer of standard output (rich's own print ends the process, exit 1 without a word,
    on a closed pipe)."""
    table = Table(title="Signing keys", title_justify="left")
    for name in ("kid", "state", "created", "may activate", "retires"):
        table.add_column(name, no_wrap=True)
    for row in status_rows(manifest, policy):
        style = _STATE_STYLE.get(row[1].split()[0], "")
        table.add_row(*row, style=style)
    terminal, rendered = Console(), io.StringIO()  # colours only for a terminal, as its own
    console = Console(
        file=rendered, width=max(170, terminal.width), force_terminal=terminal.is_terminal
    )
    console.print(table)
    return rendered.getvalue().splitlines()
