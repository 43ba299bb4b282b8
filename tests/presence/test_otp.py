from __future__ import annotations

import re

import pytest

from integrations.presence import otp
from integrations.presence.otp import OtpPolicy, OtpUnavailable, codes_equal, new_code, normalize


def test_new_code_is_six_ascii_digits() -> None:
    codes = {new_code() for _ in range(200)}
    assert all(re.fullmatch(r"[0-9]{6}", c) for c in codes)
    assert len(codes) > 150  # random, leading zeros kept by the format


def test_new_code_skips_taken_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    draws = iter([12, 12, 345678])
    monkeypatch.setattr(otp.secrets, "randbelow", lambda n: next(draws))
    taken = {"000012"}
    assert new_code(taken.__contains__) == "345678"


def test_new_code_gives_up_clearly() -> None:
    with pytest.raises(OtpUnavailable, match="no free 6-digit code after 10 draws"):
        new_code(lambda code: True, max_draws=10)


@pytest.mark.parametrize("text", ["123456", " 123456 ", "123 456", "12 34 56\n", "\t123456"])
def test_whitespace_tolerated(text: str) -> None:
    assert normalize(text) == "123456"


@pytest.mark.parametrize("text", ["१२३४५६", "౧౨౩ ౪౫౬", "12३45౬"])
def test_indian_script_digits_are_digits(text: str) -> None:
    """A Hindi or Telugu keyboard types its own digits; they are the same code."""
    assert normalize(text) == "123456"


@pytest.mark.parametrize("text", ["12345", "1234567", "12a456", "١٢٣٤٥٦", "12345²", "", None, 123456, "-12345"])
def test_non_digits_malformed(text: object) -> None:
    assert normalize(text) is None


def test_compare_is_constant_time_api() -> None:
    assert codes_equal("123456", "123456")
    assert not codes_equal("123456", "123457")
    assert not codes_equal("é23456", "123456")  # non-ASCII never raises


def test_policy_ok_wrong_malformed() -> None:
    p = OtpPolicy(max_attempts=5)
    r = p.check(" 123 456 ", "123456", failures=2)
    assert (r.ok, r.reason, r.failures, r.attempts_left) == (True, "ok", 2, 3)
    r = p.check("000000", "123456", failures=0)
    assert (r.ok, r.reason, r.failures, r.attempts_left) == (False, "wrong", 1, 4)
    assert r.params() == {"attempts_left": 4, "max_attempts": 5}
    r = p.check("abc", "123456", failures=1)
    assert (r.reason, r.failures) == ("malformed", 1)  # typos do not cost an attempt


def test_policy_locks_after_max_attempts() -> None:
    p = OtpPolicy(max_attempts=5)
    failures = 0
    reasons = []
    for _ in range(5):
        r = p.check("999999", "123456", failures)
        failures = r.failures
        reasons.append(r.reason)
    assert reasons == ["wrong"] * 4 + ["locked"]
    assert failures == 5
    r = p.check("123456", "123456", failures)  # even the right code is refused once locked
    assert (r.ok, r.reason, r.locked) == (False, "locked", True)


def test_policy_default_is_the_settings_default() -> None:
    from integrations.settings import Settings

    assert OtpPolicy().max_attempts == Settings.model_fields["otp_max_attempts"].default == 5


def test_policy_garbage_counter_is_safe() -> None:
    r = OtpPolicy(3).check("123456", "123456", failures=None)  # type: ignore[arg-type]
    assert r.ok


def test_unreadable_counter_fails_closed() -> None:
    assert OtpPolicy(3).check("123456", "123456", failures="x").reason == "locked"  # type: ignore[arg-type]
