"""The scripts run for real: messages, exit codes, and two rotations at once."""

import contextlib
import json
import os
import select
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from issuer.builders import open_database
from issuer.oauth.clients import ClientRepository
from issuer.settings import Settings
from issuer.storage import schema
from issuer.storage.engine import make_engine, make_sessions
from servicekit.processes import ROOT, run_script
from tests.support import users_differing_only_in_case


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"ISSUER_KEYS_DIR": str(tmp_path / "keys")}


def manifest(env: dict[str, str]) -> dict:
    return json.loads((Path(env["ISSUER_KEYS_DIR"]) / "manifest.json").read_text())


def test_rotation_too_soon_is_refused_with_exit_3_and_a_time(env):
    assert run_script("generate_keys.py", env=env).returncode == 0
    before = manifest(env)
    result = run_script("rotate_keys.py", env=env)
    assert result.returncode == 3
    assert "safe from" in result.stderr and "--force" in result.stderr
    assert manifest(env) == before


def test_rotation_when_safe_succeeds_and_says_what_changed(env):
    env = {**env, "ISSUER_JWKS_MAX_AGE": "0", "ISSUER_ROTATION_LEEWAY": "0"}
    run_script("generate_keys.py", env=env)
    result = run_script("rotate_keys.py", env=env)
    assert result.returncode == 0, result.stderr
    assert "next -> active" in result.stdout and "active -> retiring" in result.stdout


def test_dry_run_shows_the_step_and_changes_nothing(env):
    run_script("generate_keys.py", env=env)
    before = manifest(env)
    result = run_script("rotate_keys.py", "--dry-run", "--force", env=env)
    assert result.returncode == 0
    assert "would change" in result.stdout and "next -> active" in result.stdout
    assert manifest(env) == before


def test_a_revocation_leaving_another_key_lost_exits_1_and_says_so(env):
    run_script("generate_keys.py", env=env)
    keys = manifest(env)["keys"]
    for key in keys:
        (Path(env["ISSUER_KEYS_DIR"]) / f"{key['kid']}.pem").unlink()
    active = next(k["kid"] for k in keys if k["state"] == "active")
    result = run_script("rotate_keys.py", "--revoke", active, env=env)
    assert result.returncode == 1
    assert "changed:" in result.stdout and "cannot load the key set" in result.stderr


def test_encrypt_dry_run_names_the_keys_and_encrypts_nothing(env):
    run_script("generate_keys.py", env=env)
    pems = sorted(Path(env["ISSUER_KEYS_DIR"]).glob("*.pem"))
    before = {pem: pem.read_bytes() for pem in pems}
    encrypting = {**env, "ISSUER_KEYS_PASSPHRASE": "correct horse battery"}
    result = run_script("rotate_keys.py", "--encrypt", "--dry-run", env=encrypting)
    assert result.returncode == 0, result.stderr
    assert "would encrypt (dry run)" in result.stdout
    assert all(pem.stem in result.stdout for pem in pems)
    # The audit: it encrypted them, and an issuer without the passphrase could not reload.
    assert {pem: pem.read_bytes() for pem in pems} == before


def test_status_lists_each_key_with_its_times(env):
    run_script("generate_keys.py", env=env)
    result = run_script("rotate_keys.py", "--status", env=env)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    header = next(line for line in lines if "kid" in line)
    for column in ("kid", "state", "created", "may activate", "retires"):
        assert column in header
    for key in manifest(env)["keys"]:
        assert any(key["kid"] in line and key["state"] in line for line in lines)


def test_every_key_change_leaves_an_audit_line(env):
    # The store logs them to issuer.audit; the scripts set up no logging, so none was written.
    env = {**env, "ISSUER_LOG_FORMAT": "text"}
    created = run_script("generate_keys.py", env=env)
    assert "key set created" in created.stderr
    rotated = run_script("rotate_keys.py", "--force", env=env)
    assert rotated.returncode == 0 and "key set changed" in rotated.stderr
    revoked = run_script("rotate_keys.py", "--revoke", manifest(env)["keys"][0]["kid"], env=env)
    assert revoked.returncode == 0 and "revoked" in revoked.stderr


def test_a_rotation_leaves_the_operators_files_and_reports_a_failed_cleanup(env):
    # The audit: `rotate_keys.py --force` deleted tls.pem and .backup.tmp from the keys dir;
    # with a directory old.pem there it exited 1 with "Is a directory" although the change
    # had been committed (no "changed:", no audit line, no announcement).
    env = {**env, "ISSUER_LOG_FORMAT": "text"}
    run_script("generate_keys.py", env=env)
    directory = Path(env["ISSUER_KEYS_DIR"])
    (directory / "tls.pem").write_text("cert")
    (directory / ".backup.tmp").write_text("n")
    (directory / "old.pem").mkdir()
    result = run_script("rotate_keys.py", "--force", env=env)
    assert result.returncode == 0, result.stderr
    assert "changed:" in result.stdout and "key set changed" in result.stderr
    assert (directory / "tls.pem").read_text() == "cert"
    assert (directory / ".backup.tmp").read_text() == "n"
    assert (directory / "old.pem").is_dir()
    # A retired key's file that cannot be deleted: the change stands, with a warning.
    retired = manifest(env)["keys"][0]["kid"]
    revoked = run_script("rotate_keys.py", "--revoke", retired, env=env)
    assert revoked.returncode == 0, revoked.stderr
    (directory / f"{retired}.pem").mkdir()
    before = manifest(env)
    again = run_script("rotate_keys.py", "--force", env=env)
    assert again.returncode == 0, again.stderr
    assert "changed:" in again.stdout and manifest(env) != before
    assert "WARNING" in again.stderr and retired in again.stderr
    assert "Traceback" not in again.stderr


def test_revoke_drops_the_key_and_explains_the_effect(env):
    run_script("generate_keys.py", env=env)
    active = next(k["kid"] for k in manifest(env)["keys"] if k["state"] == "active")
    planned = run_script("rotate_keys.py", "--revoke", active, "--dry-run", env=env)
    assert planned.returncode == 0, planned.stderr
    assert f"Once applied, tokens signed by {active} stop verifying" in planned.stdout
    result = run_script("rotate_keys.py", "--revoke", active, env=env)
    assert result.returncode == 0, result.stderr
    assert f"\nTokens signed by {active} stop verifying" in result.stdout
    states = {k["kid"]: k["state"] for k in manifest(env)["keys"]}
    assert states[active] == "retired"
    assert not (Path(env["ISSUER_KEYS_DIR"]) / f"{active}.pem").exists()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--revoke", "no-such-kid-at-all"], 1, "no key"),
        (["--key-size", "1024"], 2, "invalid choice"),
        (["--status", "--revoke", "x"], 2, "not allowed with"),
        # The audit: `--revoke ""` (an unset variable) rotated, with --force too, and exited 0.
        (["--revoke", ""], 2, "KID must not be empty"),
        (["--revoke=", "--force"], 2, "KID must not be empty"),
        (["--dry-run", "--revoke", ""], 2, "KID must not be empty"),
    ],
)
def test_misuse_gets_a_clear_message_and_exit_code(env, args, code, message):
    run_script("generate_keys.py", env=env)
    before = manifest(env)
    result = run_script("rotate_keys.py", *args, env=env)
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr and "change" not in result.stdout
    assert manifest(env) == before


def key_files(env: dict[str, str]) -> dict[str, bytes]:
    directory = Path(env["ISSUER_KEYS_DIR"])
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.name != ".lock"}


@pytest.mark.parametrize(
    ("stored", "given"),
    [("pp", None), ("pp", "wrong"), (None, "pp")],
    ids=["no passphrase", "wrong passphrase", "passphrase for an unencrypted set"],
)
def test_a_rotation_with_a_passphrase_that_does_not_open_the_keys_is_refused(env, stored, given):
    # The audit: `rotate_keys.py --force` without the passphrase wrote a plaintext key beside
    # encrypted ones, printed "changed:" and exited 0.
    with_passphrase = {"ISSUER_KEYS_PASSPHRASE": stored} if stored else {}
    assert run_script("generate_keys.py", env={**env, **with_passphrase}).returncode == 0
    before = key_files(env)
    # An empty variable is no passphrase, as the issuer reads it.
    result = run_script(
        "rotate_keys.py", "--force", env={**env, "ISSUER_KEYS_PASSPHRASE": given or ""}
    )
    assert result.returncode == 1, result.stdout
    assert "ISSUER_KEYS_PASSPHRASE" in result.stderr and "was not changed" in result.stderr
    assert "Traceback" not in result.stderr and "changed:" not in result.stdout
    assert key_files(env) == before


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_key_scripts_report_a_set_the_issuer_cannot_load(env, damage):
    # The audit: with the active key's .pem deleted, generate_keys.py said "a key set already
    # exists ...; nothing changed" and exited 0 (so the compose `keys` one-shot passed), and
    # `rotate_keys.py --status` showed a normal table; a corrupt .pem already exited 1.
    run_script("generate_keys.py", env=env)
    active = next(k["kid"] for k in manifest(env)["keys"] if k["state"] == "active")
    pem = Path(env["ISSUER_KEYS_DIR"]) / f"{active}.pem"
    if damage == "missing":
        pem.unlink()
    else:
        pem.write_text("not a key")
    before = key_files(env)
    named = str(pem) if damage == "missing" else active
    generated = run_script("generate_keys.py", env=env)
    assert generated.returncode == 1 and generated.stdout == ""
    [line] = generated.stderr.splitlines()
    assert line.startswith("error: ") and named in line and "was not changed" in line
    status = run_script("rotate_keys.py", "--status", env=env)
    assert status.returncode == 1
    assert active in status.stdout  # the table still shows the kids, to revoke or restore
    [line] = status.stderr.splitlines()
    assert line.startswith("error: ") and named in line
    assert key_files(env) == before


def test_status_of_an_encrypted_set_needs_no_passphrase(env):
    # The review: --status, a read-only check, had come to need the keys' secret (exit 1).
    encrypted = {**env, "ISSUER_KEYS_PASSPHRASE": "correct horse battery staple"}
    assert run_script("generate_keys.py", env=encrypted).returncode == 0
    status = run_script("rotate_keys.py", "--status", env=env)
    assert status.returncode == 0, status.stderr
    assert "encrypted and were not opened" in status.stderr
    assert run_script("rotate_keys.py", "--status", env=encrypted).stderr == ""


def test_status_without_the_passphrase_still_names_a_lost_key_file(env):
    # The audit: with the first key encrypted, --status without the passphrase stopped at it
    # ("were not opened", exit 0) and never looked for the next key's file, which was lost.
    encrypted = {**env, "ISSUER_KEYS_PASSPHRASE": "correct horse battery staple"}
    assert run_script("generate_keys.py", env=encrypted).returncode == 0
    upcoming = next(k["kid"] for k in manifest(env)["keys"] if k["state"] == "next")
    pem = Path(env["ISSUER_KEYS_DIR"]) / f"{upcoming}.pem"
    pem.unlink()
    status = run_script("rotate_keys.py", "--status", env=env)
    assert status.returncode == 1
    [line] = status.stderr.splitlines()
    assert line.startswith("error: ") and str(pem) in line


def test_a_rotation_of_database_keys_with_a_wrong_passphrase_is_refused(tmp_path: Path):
    env = {
        "ISSUER_DATABASE_URL": f"sqlite:///{tmp_path / 'issuer.db'}",
        "ISSUER_KEYS_BACKEND": "database",
        "ISSUER_KEYS_PASSPHRASE": "pp",
    }
    assert run_script("generate_keys.py", env=env).returncode == 0
    before = run_script("rotate_keys.py", "--status", env=env).stdout
    result = run_script("rotate_keys.py", "--force", env={**env, "ISSUER_KEYS_PASSPHRASE": "wrong"})
    assert result.returncode == 1, result.stdout
    assert "wrong ISSUER_KEYS_PASSPHRASE" in result.stderr and "Traceback" not in result.stderr
    assert run_script("rotate_keys.py", "--status", env=env).stdout == before


def test_status_of_a_manifest_with_an_impossible_time_is_an_error(env):
    run_script("generate_keys.py", env=env)
    path = Path(env["ISSUER_KEYS_DIR"]) / "manifest.json"
    document = json.loads(path.read_text())
    document["keys"][0]["created_at"] = 1e300
    path.write_text(json.dumps(document))
    result = run_script("rotate_keys.py", "--status", env=env)
    assert result.returncode == 1
    assert "created_at" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("where", ["variable", "option"])
def test_an_empty_keys_dir_is_a_configuration_error(where):
    # The audit: an empty ISSUER_KEYS_DIR (or --keys-dir "") was the current directory. The
    # message names what was given: the variable, or the flag.
    env = {"ISSUER_KEYS_DIR": ""} if where == "variable" else {}
    args = ["--keys-dir", ""] if where == "option" else []
    named = "ISSUER_KEYS_DIR: " if where == "variable" else "argument --keys-dir: "
    for script, *more in (("rotate_keys.py", "--status"), ("generate_keys.py",)):
        result = run_script(script, *more, *args, env=env)
        assert result.returncode == 2, result.stderr
        assert f"{named}must name a directory" in result.stderr
    assert not (ROOT / "manifest.json").exists()


def test_the_database_backend_without_a_passphrase_touches_no_database(tmp_path: Path):
    # The audit: the scripts created a fresh database's schema, then said the passphrase
    # was missing (exit 1).
    database = tmp_path / "issuer.db"
    env = {"ISSUER_DATABASE_URL": f"sqlite:///{database}", "ISSUER_KEYS_BACKEND": "database"}
    result = run_script("generate_keys.py", env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        "error: invalid setting ISSUER_KEYS_BACKEND: database needs ISSUER_KEYS_PASSPHRASE "
        "(the keys are stored encrypted with it)\n"
    )
    assert not database.exists()


def test_keys_dir_is_refused_when_the_key_set_is_in_the_database(tmp_path: Path):
    # The scripts audit: taken and ignored. `generate_keys.py --keys-dir DIR` made a key set
    # in the database, and `rotate_keys.py --keys-dir DIR` would rotate the database's keys,
    # for an operator who had named a directory.
    database = tmp_path / "issuer.db"
    env = {
        "ISSUER_DATABASE_URL": f"sqlite:///{database}",
        "ISSUER_KEYS_BACKEND": "database",
        "ISSUER_KEYS_PASSPHRASE": "correct horse battery staple",
    }
    for script in ("generate_keys.py", "rotate_keys.py"):
        result = run_script(script, "--keys-dir", str(tmp_path / "keys"), env=env)
        assert result.returncode == 2, result.stdout
        assert "--keys-dir applies to the files backend" in result.stderr
        assert "ISSUER_KEYS_BACKEND is database" in result.stderr
        assert "Traceback" not in result.stderr and result.stdout == ""
    assert not database.exists() and not (tmp_path / "keys").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--status", "--force"], "--force applies to a rotation only"),
        (["--revoke", "some-kid", "--force"], "--force applies to a rotation only"),
        (["--encrypt", "--force"], "--force applies to a rotation only"),
        (["--status", "--dry-run"], "--status changes nothing; --dry-run does not apply"),
        # The audit: --key-size was taken and ignored by --status and --encrypt too (the
        # latter re-writes the keys there are, at the size they have).
        (["--status", "--key-size", "4096"], "--key-size applies to the new key of a rotation"),
        (["--encrypt", "--key-size", "4096"], "--key-size applies to the new key of a rotation"),
    ],
)
def test_rotate_refuses_a_flag_it_would_ignore(env, args, message):
    # The scripts audit: taken and ignored, as if acted on.
    run_script("generate_keys.py", env=env)
    before = (Path(env["ISSUER_KEYS_DIR"]) / "manifest.json").read_text()
    result = run_script("rotate_keys.py", *args, env=env)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert (Path(env["ISSUER_KEYS_DIR"]) / "manifest.json").read_text() == before


def test_rotate_without_keys_says_how_to_create_them_and_leaves_nothing(env):
    # The audit: it created the missing keys directory, and a .lock in it.
    for args in ([], ["--force"], ["--status"]):
        result = run_script("rotate_keys.py", *args, env=env)
        assert result.returncode == 1
        assert result.stderr.splitlines() == [
            f"error: no key set in {env['ISSUER_KEYS_DIR']}; create one with "
            "scripts/generate_keys.py"
        ]
    assert not Path(env["ISSUER_KEYS_DIR"]).exists()


def test_two_concurrent_rotations_leave_one_active_key(env):
    run_script("generate_keys.py", env=env)
    argv = [sys.executable, str(ROOT / "scripts" / "rotate_keys.py"), "--force"]
    procs = [
        subprocess.Popen(argv, env={**os.environ, **env}, cwd=ROOT, stdout=subprocess.DEVNULL)
        for _ in range(2)
    ]
    assert [p.wait(60) for p in procs] == [0, 0]
    keys = manifest(env)["keys"]
    states = [k["state"] for k in keys]
    assert states.count("active") == 1 and states.count("next") == 1
    assert len(keys) == 4  # two initial keys and one new next key per rotation
    for key in keys:
        assert (Path(env["ISSUER_KEYS_DIR"]) / f"{key['kid']}.pem").exists()


def test_scripts_treat_a_fresh_database_as_the_issuer_does(postgres_url):
    env = {
        "ISSUER_DATABASE_URL": postgres_url,
        "ISSUER_KEYS_BACKEND": "database",
        "ISSUER_KEYS_PASSPHRASE": "correct horse battery staple",
    }
    created = run_script("generate_keys.py", env=env)
    assert created.returncode == 0, created.stderr
    assert "created key set in the database" in created.stdout
    status = run_script("rotate_keys.py", "--status", env=env)
    assert status.returncode == 0, status.stderr
    assert "active" in status.stdout and "next" in status.stdout
    # The migrations that made the schema are logged; Alembic's chatter at every look at the
    # schema's version ("Context impl PostgresqlImpl.", "Will assume transactional DDL.") not.
    assert "Running upgrade" in created.stderr
    for result in (created, status):
        assert "Context impl" not in result.stderr and "Will assume" not in result.stderr


def test_scripts_refuse_an_older_schema_and_name_the_command(postgres_url):
    from issuer.storage import schema
    from issuer.storage.engine import make_engine

    engine = make_engine(postgres_url)
    schema.upgrade(engine, "0001")
    engine.dispose()
    env = {
        "ISSUER_DATABASE_URL": postgres_url,
        "ISSUER_KEYS_BACKEND": "database",
        "ISSUER_KEYS_PASSPHRASE": "correct horse battery staple",
    }
    for script in ("generate_keys.py", "rotate_keys.py"):
        result = run_script(script, env=env)
        assert result.returncode == 1, result.stderr
        assert "make migrate" in result.stderr and "Traceback" not in result.stderr
    user = run_script("create_user.py", "alice", "--password-stdin", env=env, stdin="wonderland1\n")
    assert user.returncode == 1 and "make migrate" in user.stderr


def test_create_user_names_the_account_as_it_signs_in(tmp_path: Path):
    env = {
        "ISSUER_DATABASE_URL": f"sqlite:///{tmp_path / 'issuer.db'}",
        "ISSUER_BCRYPT_ROUNDS": "4",
    }
    created = run_script(
        "create_user.py", "Alice", "--password-stdin", env=env, stdin="wonderland1\n"
    )
    assert created.returncode == 0, created.stderr
    assert "created user 'alice'" in created.stdout
    again = run_script(
        "create_user.py", "ALICE", "--password-stdin", "--exist-ok", env=env, stdin="wonderland1\n"
    )
    assert "user 'alice' already exists" in again.stdout


def test_manage_user_and_manage_client_change_what_create_made(tmp_path: Path):
    env = {
        "ISSUER_DATABASE_URL": f"sqlite:///{tmp_path / 'issuer.db'}",
        "ISSUER_BCRYPT_ROUNDS": "4",
    }
    stdin = "wonderland1\n"
    assert (
        run_script("create_user.py", "alice", "--password-stdin", env=env, stdin=stdin).returncode
        == 0
    )
    disabled = run_script("manage_user.py", "Alice", "--disable", env=env)
    assert disabled.returncode == 0, disabled.stderr
    assert "user 'alice' disabled" in disabled.stdout and "signed out everywhere" in disabled.stdout
    enabled = run_script("manage_user.py", "alice", "--enable", env=env)
    assert enabled.returncode == 0 and "user 'alice' enabled" in enabled.stdout
    new = run_script(
        "manage_user.py",
        "alice",
        "--set-password",
        "--password-stdin",
        env=env,
        stdin="curiouser2\n",
    )
    assert new.returncode == 0 and "new password" in new.stdout, new.stderr
    unknown = run_script("manage_user.py", "nobody", "--disable", env=env)
    assert unknown.returncode == 1 and "error: no user 'nobody'" in unknown.stderr
    assert run_script("manage_user.py", "alice", env=env).returncode == 2  # no action
    created = run_script("create_client.py", "reports", "--grant", "client_credentials", env=env)
    secret = created.stdout.splitlines()[-1]
    renewed = run_script("manage_client.py", "reports", "--new-secret", env=env)
    assert renewed.returncode == 0, renewed.stderr
    assert renewed.stdout.splitlines()[-1] not in (secret, "")  # the new secret, alone, last
    gone = run_script("manage_client.py", "reports", "--disable", env=env)
    assert gone.returncode == 0 and "client 'reports' disabled" in gone.stdout
    for result in (disabled, enabled, new, unknown, renewed, gone):
        assert "Traceback" not in result.stderr


def test_create_user_given_an_empty_password_says_it_is_empty(tmp_path: Path):
    env = {"ISSUER_DATABASE_URL": f"sqlite:///{tmp_path / 'issuer.db'}"}
    result = run_script("create_user.py", "ada", "--password-stdin", env=env, stdin="\n")
    assert result.returncode == 1
    assert "password is empty" in result.stderr and "control" not in result.stderr


def test_create_user_without_a_terminal_to_prompt_on_says_so_in_one_line(tmp_path: Path):
    # The audit: `create_user.py NAME </dev/null` printed a GetPassWarning, "Password input
    # may be echoed" and an EOFError traceback. (A new session: no terminal of the test's.)
    env = {"ISSUER_DATABASE_URL": f"sqlite:///{tmp_path / 'issuer.db'}"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "create_user.py"), "ada"],
        stdin=subprocess.DEVNULL,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        cwd=ROOT,
        start_new_session=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: no terminal to prompt for the password on; give it on standard input with "
        "--password-stdin"
    ]


def run_redirected(
    script: str,
    redirect: str,
    *args: str,
    env: dict[str, str],
    stdin: str | None = None,
    exits: int = 1,
) -> str:
    """`script args` with a shell redirection (">&-" closes standard output); its stderr,
    after asserting it exited `exits` in one line, without a traceback."""
    command = f"{shlex.join([sys.executable, str(ROOT / 'scripts' / script), *args])} {redirect}"
    result = subprocess.run(
        ["bash", "-c", command],
        input=stdin,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == exits, result
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr
    return result.stderr


def test_a_secret_standard_output_cannot_show_is_never_lost_unsaid(tmp_path: Path):
    # The scripts audit: with standard output closed both scripts exited 0, and the secret
    # (a new one replacing the old) was never shown; into a full disk they ended in tracebacks.
    env = {"ISSUER_DATABASE_URL": f"sqlite:///{tmp_path / 'issuer.db'}"}
    closed = run_redirected("create_client.py", ">&-", "reports", env=env)
    assert "standard output is closed" in closed and "nothing changed" in closed
    assert run_script("manage_client.py", "reports", "--disable", env=env).returncode == 1
    full = run_redirected("create_client.py", ">/dev/full", "reports", env=env)
    assert "'reports' was registered, but its secret could not be written" in full
    assert "manage_client.py reports --new-secret" in full
    first = run_script("manage_client.py", "reports", "--new-secret", env=env)
    assert first.returncode == 0
    closed = run_redirected("manage_client.py", ">&-", "reports", "--new-secret", env=env)
    assert "nothing changed" in closed
    full = run_redirected("manage_client.py", ">/dev/full", "reports", "--new-secret", env=env)
    assert "was replaced, but the new one could not be written" in full
    assert "old one no longer works" in full


def _stood(what: str, tmp_path: Path, env: dict[str, str]) -> bool:
    """Whether the change a script reported stands, read from the database or key set."""
    if what in ("key set", "rotation"):
        manifest = tmp_path / "keys" / "manifest.json"
        states = [key["state"] for key in json.loads(manifest.read_text())["keys"]]
        return what == "key set" or "retiring" in states  # a rotation retires the active key
    if what == "schema":
        return "nothing to do" in run_script("migrate.py", env=env).stdout
    table, name, column = {
        "ada": ("users", "ada", "username"),
        "bob disabled": ("users", "bob", "username"),
        "reports disabled": ("clients", "reports", "client_id"),
    }[what]
    with contextlib.closing(sqlite3.connect(tmp_path / "issuer.db")) as db:
        row = db.execute(f"SELECT disabled FROM {table} WHERE {column} = ?", (name,)).fetchone()
    return row is not None and (what == "ada" or bool(row[0]))


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (("generate_keys.py",), "key set"),
        (("rotate_keys.py", "--force"), "rotation"),
        (("migrate.py",), "schema"),
        (("create_user.py", "ada", "--password-stdin"), "ada"),
        (("manage_user.py", "bob", "--disable"), "bob disabled"),
        (("manage_client.py", "reports", "--disable"), "reports disabled"),
    ],
    ids=["generate_keys", "rotate_keys", "migrate", "create_user", "manage_user", "manage_client"],
)
def test_a_change_whose_report_cannot_be_written_stands_and_says_so_in_one_line(
    tmp_path: Path, args, what
):
    # The audit: into a full disk (a cron job's log) or a closed pipe the change was made, and
    # then the script ended in a traceback (OSError: No space left on device) and exit 1.
    env = {
        "ISSUER_DATABASE_URL": f"sqlite:///{tmp_path / 'issuer.db'}",
        "ISSUER_KEYS_DIR": str(tmp_path / "keys"),
    }
    if args[0] == "rotate_keys.py":
        assert run_script("generate_keys.py", env=env).returncode == 0
    if args[0] != "migrate.py":  # which must find the database empty, to have work to do
        created = run_script(
            "create_user.py", "bob", "--password-stdin", env=env, stdin="pw-of-bob\n"
        )
        assert created.returncode == 0
        assert run_script("create_client.py", "reports", env=env).returncode == 0
    if what not in ("key set", "schema"):  # neither can be read before it is made
        assert not _stood(what, tmp_path, env)
    script, *rest = args
    stderr = run_redirected(script, ">/dev/full", *rest, env=env, stdin="pw-of-ada\n", exits=0)
    assert stderr.splitlines()[-1] == (
        "warning: standard output could not be written (No space left on device); "
        "what this run did stands"
    )
    assert _stood(what, tmp_path, env)


@pytest.mark.parametrize(
    ("redirect", "reason"),
    [
        (">/dev/full", "No space left on device"),
        # A reader gone before the table is written (`| grep -q active`, say).
        ("| (exec 0<&-; sleep 1); exit ${PIPESTATUS[0]}", "Broken pipe"),
    ],
)
def test_a_status_table_that_cannot_be_written_fails_in_one_line(env, redirect, reason):
    # The scripts audit: into a closed pipe --status exited 1 without a word (rich ended the
    # process), and into a full disk it gave the bare errno line.
    assert run_script("generate_keys.py", env=env).returncode == 0
    stderr = run_redirected("rotate_keys.py", redirect, "--status", env=env)
    assert stderr == f"error: standard output could not be written ({reason})\n"


@pytest.mark.parametrize("args", [("--dry-run", "--force"), ("--encrypt", "--dry-run")])
def test_a_dry_run_whose_plan_cannot_be_written_fails_in_one_line(tmp_path: Path, args):
    # The review: a dry run is only its output; into a full disk it said "what this run did
    # stands" and exited 0 (the --encrypt one ended in a traceback).
    env = {"ISSUER_KEYS_DIR": str(tmp_path / "keys"), "ISSUER_KEYS_PASSPHRASE": "correct horse"}
    plain = {"ISSUER_KEYS_DIR": env["ISSUER_KEYS_DIR"]}  # a set --encrypt has work to plan for
    assert run_script("generate_keys.py", env=plain).returncode == 0
    before = (tmp_path / "keys" / "manifest.json").read_text()
    stderr = run_redirected(
        "rotate_keys.py", ">/dev/full", *args, env=env if "--encrypt" in args else plain
    )
    assert stderr.splitlines()[-1] == (
        "error: standard output could not be written (No space left on device)"
    )
    assert (tmp_path / "keys" / "manifest.json").read_text() == before


@pytest.mark.parametrize(
    "args",
    [("create_user.py", "ada"), ("manage_user.py", "ada", "--set-password")],
    ids=["create_user", "manage_user"],
)
def test_a_password_on_a_closed_standard_input_is_refused_in_one_line(tmp_path: Path, args):
    env = {"ISSUER_DATABASE_URL": f"sqlite:///{tmp_path / 'issuer.db'}"}
    script, *rest = args
    stderr = run_redirected(script, "<&-", *rest, "--password-stdin", env=env)
    assert stderr.splitlines() == [
        "error: standard input is closed; nothing to read the password from"
    ]


def prompted(
    env: dict[str, str], answer: Callable[[subprocess.Popen[bytes], int], None]
) -> tuple[int, str]:
    """create_user.py prompting on a terminal (a pty): `answer` at the first prompt; its exit
    status and the terminal's text after it."""
    master, terminal = os.openpty()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "create_user.py"), "ada"],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env={**os.environ, **env},
        cwd=ROOT,
        start_new_session=True,
    )
    os.close(terminal)
    try:
        seen = b""
        while b"Password: " not in seen:
            assert select.select([master], [], [], 30)[0], seen
            seen += os.read(master, 1024)
        answer(process, master)
        status = process.wait(30)
        rest = b""
        with contextlib.suppress(OSError):  # EIO once the terminal has no process left
            while chunk := os.read(master, 1024):
                rest += chunk
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
    return status, rest.decode()


@pytest.mark.parametrize(
    ("answer", "message", "exits"),
    [
        (lambda process, terminal: os.write(terminal, b"\x04"), "no password given", 1),  # Ctrl-D
        # Ctrl-C: the shell's status for SIGINT, as anywhere else in the scripts.
        (lambda process, terminal: process.send_signal(signal.SIGINT), "interrupted", 130),
    ],
    ids=["end of input", "interrupt"],
)
def test_create_user_given_no_password_at_the_prompt_says_so_in_one_line(
    tmp_path: Path, answer, message, exits
):
    # The audit: EOF or Ctrl-C at the prompt ended in a traceback.
    env = {"ISSUER_DATABASE_URL": f"sqlite:///{tmp_path / 'issuer.db'}"}
    status, after_prompt = prompted(env, answer)
    assert status == exits
    lines = [line for line in after_prompt.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    # On a line of its own, not after "Password: " (the newcomer's audit).
    assert after_prompt.lstrip("^C").startswith(("\n", "\r\n")), after_prompt


def waiting_to_read_stdin(pid: int, timeout: float = 30) -> None:
    """Until process `pid` sleeps in read(2) on its standard input (Linux's /proc)."""
    reads = {"x86_64": "0", "aarch64": "63"}[os.uname().machine]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            # "running" while it runs; else the system call's number and arguments.
            if Path(f"/proc/{pid}/syscall").read_text().split()[:2] == [reads, "0x0"]:
                return
        time.sleep(0.02)
    raise AssertionError(f"process {pid} never waited on its standard input")


def test_a_script_interrupted_by_ctrl_c_says_so_in_one_line_and_exits_130(tmp_path: Path):
    # A traceback used to end a Ctrl-C anywhere but at the password prompt.
    env = {"ISSUER_DATABASE_URL": f"sqlite:///{tmp_path / 'issuer.db'}"}
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "create_user.py"), "ada", "--password-stdin"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
        cwd=ROOT,
        text=True,
        start_new_session=True,
    )
    try:
        waiting_to_read_stdin(process.pid)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130
    assert stderr.splitlines() == ["error: interrupted"] and stdout == ""
    # Nothing was created: the name is still free.
    again = run_script(
        "create_user.py", "ada", "--password-stdin", env=env, stdin="correct horse battery\n"
    )
    assert again.returncode == 0 and "created user" in again.stdout, again


@pytest.mark.parametrize(
    ("command", "created"),
    [
        (["create_user.py", "racer", "--password-stdin", "--exist-ok"], "created user"),
        (["create_client.py", "racer", "--exist-ok"], "created confidential client"),
    ],
    ids=["user", "client"],
)
def test_concurrent_runs_with_exist_ok_all_succeed(database_url, command, created):
    # The audit: of 6 such runs at once, one said "created" and five "error: ... already
    # exists" with exit 1 (each had found the name free before inserting).
    env = {**os.environ, "ISSUER_DATABASE_URL": database_url}
    assert run_script("migrate.py", env=env).returncode == 0
    script, *args = command
    argv = [sys.executable, str(ROOT / "scripts" / script), *args]
    runs = [
        subprocess.Popen(
            argv,
            env=env,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    outputs = [run.communicate("wonderland1\n", timeout=60) for run in runs]
    assert [run.returncode for run in runs] == [0] * 6, outputs
    assert sum(created in out for out, _ in outputs) == 1
    assert sum("already exists; nothing changed" in out + err for out, err in outputs) == 5


# Every script that opens the database, with arguments that would otherwise succeed.
DATABASE_SCRIPTS = [
    ("migrate.py",),
    ("create_user.py", "alice", "--password-stdin"),
    ("create_client.py", "service"),
    ("generate_keys.py",),
    ("rotate_keys.py", "--status"),
]


def test_every_script_refuses_a_newer_schema_and_says_to_upgrade_the_issuer(tmp_path: Path):
    from sqlalchemy import text

    from issuer.storage import schema
    from issuer.storage.engine import make_engine

    database_url = f"sqlite:///{tmp_path / 'issuer.db'}"
    engine = make_engine(database_url)
    schema.upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    env = {
        "ISSUER_DATABASE_URL": database_url,
        "ISSUER_KEYS_BACKEND": "database",
        "ISSUER_KEYS_PASSPHRASE": "correct horse battery staple",
    }
    for script, *args in DATABASE_SCRIPTS:
        result = run_script(script, *args, env=env, stdin="wonderland1\n")
        assert result.returncode == 1, (script, result.stderr)
        assert "0099, newer than this issuer" in result.stderr, script
        assert "upgrade the issuer" in result.stderr and "Traceback" not in result.stderr, script


@pytest.mark.parametrize("command", DATABASE_SCRIPTS, ids=lambda command: command[0])
def test_a_bad_setting_is_a_configuration_error_with_exit_2(tmp_path: Path, command):
    script, *args = command
    env = {
        "ISSUER_DATABASE_URL": f"sqlite:///{tmp_path / 'issuer.db'}",
        "ISSUER_KEYS_DIR": str(tmp_path / "keys"),
        "ISSUER_ACCESS_TOKEN_TTL": "fifteen minutes",
    }
    result = run_script(script, *args, env=env, stdin="wonderland1\n")
    assert result.returncode == 2, result.stderr
    # One line naming the variable, as the services say it at start.
    assert result.stderr == (
        "error: invalid setting ISSUER_ACCESS_TOKEN_TTL: "
        "Input should be a valid integer, unable to parse string as an integer\n"
    )
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("backend", ["files", "database"])
def test_a_passphrase_that_is_not_utf8_is_a_configuration_error(tmp_path: Path, backend):
    # The scripts audit: environment bytes that are not UTF-8 (a surrogate escape here) ended
    # generate_keys.py in a traceback, after it had made the keys directory and its .lock.
    env = {
        "ISSUER_DATABASE_URL": f"sqlite:///{tmp_path / 'issuer.db'}",
        "ISSUER_KEYS_DIR": str(tmp_path / "keys"),
        "ISSUER_KEYS_BACKEND": backend,
        "ISSUER_KEYS_PASSPHRASE": "pass\udcffphrase",
    }
    result = run_script("generate_keys.py", env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr == "error: invalid setting ISSUER_KEYS_PASSPHRASE: not valid UTF-8\n"
    assert not (tmp_path / "keys").exists() and not (tmp_path / "issuer.db").exists()


# argv bytes that are not UTF-8 arrive as surrogate escapes ("\udcff" is the byte 0xff).
@pytest.mark.parametrize(
    ("script", "args", "message"),
    [
        ("create_user.py", ["zed2", "--email", "\udcff@x"], "argument --email: not valid UTF-8"),
        ("create_user.py", ["z\udcff"], "argument username: not valid UTF-8"),
        ("create_client.py", ["c1", "--name", "\udcff"], "argument --name: not valid UTF-8"),
        ("create_client.py", ["c1", "--audience", "\udcff"], "argument --audience: not valid"),
        ("create_client.py", ["c1", "--redirect-uri", "https://x/\udcff"], "--redirect-uri: not"),
        ("create_client.py", ["c7", "--access-token-ttl", "9" * 21], "less than or equal to 86400"),
        ("create_client.py", ["c7", "--access-token-ttl", "86401"], "less than or equal to 86400"),
        ("create_client.py", ["c7", "--access-token-ttl", "0"], "greater than 0"),
    ],
)
def test_account_scripts_refuse_bad_arguments_with_a_usage_error(tmp_path, script, args, message):
    env = {"ISSUER_DATABASE_URL": f"sqlite:///{tmp_path / 'issuer.db'}"}
    result = run_script(script, *args, env=env, stdin="wonderland1\n")
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "issuer.db").exists()  # refused before the database was opened


@pytest.mark.parametrize("encoding", ["utf-8:strict", "utf-8:surrogateescape"])
def test_a_password_that_is_not_utf8_is_refused_as_such(tmp_path, encoding):
    # The scripts audit: under a UTF-8 locale (surrogate escapes) it was said to hold
    # "control characters".
    env = {"ISSUER_DATABASE_URL": f"sqlite:///{tmp_path / 'issuer.db'}"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "create_user.py"), "ada", "--password-stdin"],
        input=b"wonder\xffland1\n",
        env={**os.environ, **env, "PYTHONIOENCODING": encoding},
        capture_output=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr == b"error: the password is not valid UTF-8\n"


@pytest.mark.parametrize(
    ("script", "args"),
    [
        ("create_user.py", ["ada", "--password-stdin"]),
        ("create_client.py", ["reports"]),
        ("manage_user.py", ["ada", "--disable"]),
        ("migrate.py", []),
    ],
)
def test_a_database_out_of_reach_is_said_in_one_line(script, args):
    # The scripts audit: SQLAlchemy's message came with its documentation link (three lines),
    # and migrate.py said the migration "was rolled back" when none had begun.
    env = {"ISSUER_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"}
    result = run_script(script, *args, env=env, stdin="wonderland1\n")
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and "127.0.0.1" in line and "sqlalche.me" not in line
    assert "rolled back" not in line


@pytest.mark.parametrize(
    ("revision", "message"),
    [
        ("0099", "0099"),
        ("", "revision must not be empty"),  # an AssertionError traceback
        # The review: a step back from head went past the downgrade check, "nothing to do".
        ("head-1", "name a revision (such as 0006) or head, not a step from one"),
        ("0005+1", "not a step from one"),
    ],
)
def test_migrate_to_a_revision_it_does_not_know_is_a_usage_error(tmp_path, revision, message):
    env = {"ISSUER_DATABASE_URL": f"sqlite:///{tmp_path / 'issuer.db'}"}
    result = run_script("migrate.py", "--revision", revision, env=env)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("revision", ["0003", "base", "-1"])
def test_migrate_refuses_to_go_back_and_changes_nothing(tmp_path, revision):
    # The audit: `--revision 0003` on a database at 0007 (then the newest) printed "0007 -> 0007".
    env = {"ISSUER_DATABASE_URL": f"sqlite:///{tmp_path / 'issuer.db'}"}
    assert run_script("migrate.py", env=env).returncode == 0
    result = run_script("migrate.py", "--revision", revision, env=env)
    assert result.returncode == 2, result.stdout
    assert result.stderr.splitlines() == [
        f"error: the database is at revision 0010, past {revision}; migrate.py does not downgrade"
    ]
    again = run_script("migrate.py", env=env)
    assert again.stdout == "database schema: already at 0010; nothing to do\n"


def test_migrate_says_what_it_did_in_words_that_are_true(tmp_path):
    # The audit: `--revision base` on an empty database printed "(empty) -> None".
    env = {"ISSUER_DATABASE_URL": f"sqlite:///{tmp_path / 'issuer.db'}"}
    base = run_script("migrate.py", "--revision", "base", env=env)
    assert base.returncode == 0, base.stderr
    assert base.stdout == "database schema: already at base (empty); nothing to do\n"
    assert run_script("migrate.py", "--revision", "0003", env=env).stdout == (
        "database schema: base (empty) -> 0003\n"
    )
    assert run_script("migrate.py", env=env).stdout == "database schema: 0003 -> 0010\n"


def test_a_migration_refusing_the_data_it_finds_is_said_in_one_line(tmp_path):
    # The review: 0003 refusing usernames that differ only in case ended migrate.py in a
    # traceback; its message, the one thing the operator needs, was on its last line.
    url = f"sqlite:///{tmp_path / 'issuer.db'}"
    engine = make_engine(url)
    users_differing_only_in_case(engine)
    engine.dispose()
    result = run_script("migrate.py", env={"ISSUER_DATABASE_URL": url})
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: nothing was migrated: usernames that differ only in case must be merged or "
        "renamed before this migration: bob"
    ]
    engine = make_engine(url)
    assert schema.current(engine) == "0002"
    engine.dispose()


def without_write_override() -> list[str]:
    """A command prefix under which a directory of mode 555 cannot be written: none for a
    user without the privilege, setpriv dropping it for root; a skip where neither works."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("root, and no setpriv to drop CAP_DAC_OVERRIDE with")
    dropped = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={dropped}", f"--bounding-set={dropped}"]


@pytest.mark.parametrize("unwritable", ["file", "mode 555"])
def test_every_script_names_a_database_file_it_cannot_create_in_one_line(tmp_path, unwritable):
    # The audit: a SQLite database in a directory without write permission gave a traceback.
    (tmp_path / "a-file").touch()
    (tmp_path / "read-only").mkdir(mode=0o555)
    (tmp_path / "read-only").chmod(0o555)
    prefix, where, cause = [], tmp_path / "a-file" / "new.db", "Not a directory"
    if unwritable == "mode 555":
        prefix, where = without_write_override(), tmp_path / "read-only" / "new.db"
        cause = "Permission denied"
    env = {
        "ISSUER_DATABASE_URL": f"sqlite:///{where}",
        "ISSUER_KEYS_BACKEND": "database",
        "ISSUER_KEYS_PASSPHRASE": "correct horse battery staple",
    }
    for script, *args in DATABASE_SCRIPTS:
        result = run_script(script, *args, env=env, stdin="wonderland1\n", prefix=prefix)
        assert result.returncode == 1, (script, result.stderr)
        assert result.stderr == f"error: cannot create the database {where}: {cause}\n", script
    assert not where.exists()


def a_key_set_it_may_only_read(env: dict[str, str]) -> Path:
    """A key set the issuer loads, in a keys directory (mode 555: a read-only secret volume)
    that a script run under `without_write_override()` may not write."""
    assert run_script("generate_keys.py", env=env).returncode == 0
    keys = Path(env["ISSUER_KEYS_DIR"])
    (keys / ".lock").unlink()
    keys.chmod(0o555)
    return keys


def test_generate_keys_on_a_set_in_a_directory_it_cannot_write_says_the_set_exists(env):
    # The review: with a set the issuer loads in a keys directory the script may not write
    # (mode 555, a read-only secret volume), generate_keys.py exited 1 on `.lock`.
    prefix = without_write_override()
    keys = a_key_set_it_may_only_read(env)
    result = run_script("generate_keys.py", env=env, prefix=prefix)
    keys.chmod(0o700)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"a key set already exists in {keys}; nothing changed\n"
    assert not (keys / ".lock").exists()


def test_an_encrypt_dry_run_takes_no_lock_as_the_other_dry_runs(env):
    # The scripts audit: `--encrypt --dry-run` took the writers' lock, so it made a `.lock` in
    # the keys directory, and on one it may only read (mode 555, a read-only secret volume)
    # failed, exit 1, where `--dry-run` of a rotation or a revocation showed its plan.
    prefix = without_write_override()
    keys = a_key_set_it_may_only_read(env)
    encrypting = {**env, "ISSUER_KEYS_PASSPHRASE": "correct horse battery"}
    result = run_script("rotate_keys.py", "--encrypt", "--dry-run", env=encrypting, prefix=prefix)
    keys.chmod(0o700)
    assert result.returncode == 0, result.stderr
    kids = sorted(key["kid"] for key in manifest(env)["keys"])
    assert result.stdout == f"would encrypt (dry run): {', '.join(kids)}\n"
    assert not (keys / ".lock").exists()


def test_create_client_takes_several_grants_and_audiences_after_one_flag(tmp_path: Path):
    # `--grant TYPE ...` and `--audience AUD ...`: "--grant password refresh_token" said
    # "unrecognized arguments: refresh_token"; repeating the flag works as before.
    env = {"ISSUER_DATABASE_URL": f"sqlite:///{tmp_path / 'issuer.db'}"}
    args = ["--grant", "client_credentials", "--audience", "api", "reports", "--audience", "x"]
    args += ["--resource-server", "api", "billing"]
    assert run_script("create_client.py", "gateway", *args, env=env).returncode == 0
    both = ["--public", "--grant", "password", "refresh_token", "--grant", "authorization_code"]
    made = run_script(
        "create_client.py", "cli", *both, "--redirect-uri", "http://127.0.0.1/cb", env=env
    )
    assert made.returncode == 0, made.stderr
    settings = Settings(database_url=env["ISSUER_DATABASE_URL"])
    with open_database(settings) as engine:
        clients = ClientRepository(make_sessions(engine))
        gateway, cli = clients.get("gateway"), clients.get("cli")
    assert gateway is not None and gateway.audience_list == ["api", "reports", "x"]
    assert gateway.resource_audiences.split() == ["api", "billing"]
    assert cli is not None and cli.grant_types.split() == [
        "password",
        "refresh_token",
        "authorization_code",
    ]


def test_create_client_says_the_access_token_ttl_its_tokens_get(tmp_path: Path):
    # The audit: --access-token-ttl 3600 was taken without a word, and tokens lived 900 s.
    env = {"ISSUER_DATABASE_URL": f"sqlite:///{tmp_path / 'issuer.db'}"}
    longer = run_script("create_client.py", "long", "--access-token-ttl", "3600", env=env)
    assert longer.returncode == 0, longer.stderr
    assert "access token TTL: 900 s (ISSUER_ACCESS_TOKEN_TTL is shorter)" in longer.stdout
    shorter = run_script("create_client.py", "short", "--access-token-ttl", "60", env=env)
    assert "access token TTL: 60 s\n" in shorter.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--audience", ""], "--audience: an audience must not be empty"),
        (["--audience", "a b"], "--audience: audience 'a b' must be one word"),
        (["--resource-server", ""], "--resource-server: an audience must not be empty"),
        (["--resource-server", "a\tb"], "--resource-server: audience 'a\\tb' must be one word"),
        (["--public", "--resource-server", "api"], "a public client cannot act as a resource"),
        (
            ["--grant", "password", "--redirect-uri", "https://app.example/cb"],
            "--redirect-uri needs the authorization_code grant",
        ),
        (
            ["--post-logout-redirect-uri", "https://app.example/bye"],
            "--post-logout-redirect-uri needs the authorization_code grant",
        ),
        (["--public", "--require-consent"], "--require-consent needs the authorization_code"),
        (["--public", "--grant", "refresh_token"], "the refresh_token grant needs"),
    ],
)
def test_create_client_refuses_what_it_could_not_keep_in_one_line(tmp_path, args, message):
    # The audit: --audience "" was dropped unsaid and --audience "a b" became two audiences.
    env = {"ISSUER_DATABASE_URL": f"sqlite:///{tmp_path / 'issuer.db'}"}
    result = run_script("create_client.py", "c1", *args, env=env)
    assert result.returncode == 1, result.stdout
    assert result.stderr.startswith(f"error: {message}") and result.stderr.count("\n") == 1
    assert result.stdout == ""


def test_create_client_defaults_to_the_code_grant_for_browser_options(tmp_path):
    env = {"ISSUER_DATABASE_URL": f"sqlite:///{tmp_path / 'issuer.db'}"}
    result = run_script(
        "create_client.py", "web", "--redirect-uri", "https://app.example/cb",
        "--post-logout-redirect-uri", "https://app.example/bye", "--require-consent", env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "grant types: authorization_code refresh_token" in result.stdout


@pytest.mark.parametrize("email", ["not an email", "", "a\x01b@c"])
def test_create_user_refuses_an_email_that_is_not_an_address_in_one_line(tmp_path, email):
    env = {
        "ISSUER_DATABASE_URL": f"sqlite:///{tmp_path / 'issuer.db'}",
        "ISSUER_BCRYPT_ROUNDS": "4",
    }
    result = run_script(
        "create_user.py",
        "ada",
        "--email",
        email,
        "--password-stdin",
        env=env,
        stdin="wonderland1\n",
    )
    assert result.returncode == 1, result.stdout
    assert result.stderr.startswith(f"error: email {email!r} is not an email address")
    assert result.stderr.count("\n") == 1 and result.stdout == ""
