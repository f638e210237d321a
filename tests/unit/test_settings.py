"""Bounds of the issuer's settings: a value no wait or date can hold is refused at start."""

import pytest
from pydantic import ValidationError

from issuer.settings import Settings


def test_a_rotation_leeway_beyond_a_day_is_refused():
    # 10**20 s was accepted, and then failed as an OverflowError where a date was written.
    assert Settings(rotation_leeway=86400).rotation_leeway == 86400
    with pytest.raises(ValidationError, match="rotation_leeway"):
        Settings(rotation_leeway=10**20)
