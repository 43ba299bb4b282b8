"""Secrets at rest (Fernet, rotation, production refusal) and scrypt password hashes."""
from __future__ import annotations

import logging

import pytest

from integrations.foundation.crypto import (
    DecryptError,
    SecretBox,
    SecretKeyError,
    generate_key,
    hash_password,
    make_secret_box,
    verify_password,
)


def test_round_trip_and_ciphertext_hides_plaintext():
    box = SecretBox([generate_key()])
    token = box.encrypt("hunter2")
    assert "hunter2" not in token and box.decrypt(token) == "hunter2"


def test_wrong_key_cannot_decrypt():
    token = SecretBox([generate_key()]).encrypt("x")
    with pytest.raises(DecryptError):
        SecretBox([generate_key()]).decrypt(token)


def test_key_rotation_first_key_encrypts_all_decrypt():
    old, new = generate_key(), generate_key()
    token = make_secret_box(old, "production").encrypt("secret")
    rotated = make_secret_box(f"{new},{old}", "production")
    assert rotated.decrypt(token) == "secret"
    assert make_secret_box(new, "production").decrypt(rotated.encrypt("y")) == "y"


def test_production_refuses_to_start_without_a_key():
    with pytest.raises(SecretKeyError) as err:
        make_secret_box(None, "production")
    assert "python run.py keygen" in str(err.value)


def test_invalid_key_is_refused_with_a_hint():
    with pytest.raises(SecretKeyError) as err:
        make_secret_box("not-a-key", "demo")
    assert "keygen" in str(err.value)


@pytest.mark.parametrize("env", ["demo", "test"])
def test_demo_uses_an_ephemeral_key_and_warns(env, caplog):
    with caplog.at_level(logging.WARNING):
        box = make_secret_box(None, env)
    assert box.decrypt(box.encrypt("x")) == "x"
    assert any("ephemeral" in r.getMessage() for r in caplog.records)


def test_generate_key_is_a_valid_fernet_key():
    assert len(generate_key()) == 44 and generate_key() != generate_key()


def test_password_hash_format_and_check():
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$16384$8$1$") and "correct" not in stored
    assert verify_password("correct horse", stored)
    assert not verify_password("correct hors", stored)
    assert stored != hash_password("correct horse")  # salted


@pytest.mark.parametrize("stored", [None, "", "plain-text", "scrypt$x$y$z$a$b", "scrypt$16384$8$1$!!$!!"])
def test_malformed_hashes_never_verify(stored):
    assert not verify_password("anything", stored)


def test_init_secret_box_from_settings():
    from integrations.foundation import crypto
    from integrations.settings import load_settings

    with pytest.raises(SecretKeyError):
        crypto.init_secret_box(load_settings(app_env="production", secret_key=None, allow_embedded_db=True))
    key = generate_key()
    box = crypto.init_secret_box(load_settings(app_env="production", secret_key=key, allow_embedded_db=True))
    try:
        assert crypto.get_secret_box() is box
        assert SecretBox([key]).decrypt(box.encrypt("x")) == "x"
    finally:
        crypto.set_secret_box(None)
