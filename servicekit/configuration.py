"""Settings read from the environment, refused at start with one line for each bad variable
(not a traceback naming a field the operator never wrote)."""

import re
import sys
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsError

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def settings_problems(exc: ValidationError, settings: type[BaseSettings]) -> list[str]:
    """`ISSUER_ACCESS_TOKEN_TTL: Input should be greater than 0`, one line for each error."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    lines = []
    for error in exc.errors():
        # A message from a validator is "Value error, ...": the variable says it is a value.
        message = error["msg"].removeprefix("Value error, ")
        if error["loc"]:
            lines.append(f"{prefix}{error['loc'][0]}".upper() + f": {message}")
        else:  # a rule over several variables
            lines.append(f"{prefix.rstrip('_')} settings: {message}")
    return lines


def load_settings(settings: type[SettingsT], **overrides: Any) -> SettingsT:
    """The settings from the environment (and `overrides`, a script's own flags); an invalid
    value ends the process with exit status 2 and one line on stderr for each problem."""
    try:
        return settings(**overrides)
    except ValidationError as exc:
        problems = settings_problems(exc, settings)
    except SettingsError as exc:  # a list or object setting that is not JSON
        problems = [_unparsed(exc, settings)]
    for line in problems:
        print(f"error: invalid setting {line}", file=sys.stderr)
    raise SystemExit(2)


def _unparsed(exc: SettingsError, settings: type[BaseSettings]) -> str:
    field = re.search(r'field "(\w+)"', str(exc))
    if field is None:
        return str(exc)
    prefix = str(settings.model_config.get("env_prefix", ""))
    return f"{prefix}{field.group(1)}".upper() + ': not JSON (a list is written ["a", "b"])'
