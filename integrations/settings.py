"""One validated settings object, read from the environment and `.env`.

Every setting has a documented default in `.env.example`; the defaults run the offline demo
(simulated transport, in-memory store, local roster and face verifier). A malformed value stops
start-up with one message that names every problem.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsError(RuntimeError):
    """Raised with a human-readable list of every bad or missing setting."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # --- general
    app_env: Literal["demo", "test", "production"] = "demo"
    data_dir: Path = Path("data")
    flows_dir: Path = Path("flows")
    log_level: str = "INFO"
    log_json: bool = False

    # --- storage
    store: Literal["memory", "mongo"] = "mongo"  # where conversations live
    mongodb_uri: Optional[str] = None  # unset: the embedded server on DATA_DIR (SecantusDB)
    allow_embedded_db: bool = False  # APP_ENV=production refuses the embedded server without it
    secret_key: Optional[SecretStr] = None  # Fernet key for secrets at rest

    # --- Telegram (MTProto via Pyrogram)
    api_id: Optional[int] = None
    api_hash: Optional[SecretStr] = None
    teacher_bot_token: Optional[SecretStr] = None
    student_bot_token: Optional[SecretStr] = None
    telegram_session_dir: Path = Path("data/sessions")
    send_rate_per_chat: float = 1.0  # messages per second to one chat
    send_rate_global: float = 30.0  # messages per second per bot
    student_bot_tokens: Optional[SecretStr] = None  # comma-separated extra bots running the student flow
    telegram_workers: int = Field(16, ge=1, le=256)  # Pyrogram handler tasks per bot
    send_burst_per_chat: int = Field(2, ge=1, le=10)  # messages one chat may get back to back
    send_concurrency: int = Field(8, ge=1, le=64)  # sends in flight per bot
    send_max_attempts: int = Field(5, ge=1, le=20)  # tries of one message before it is recorded as failed
    telegram_catch_up: bool = True  # at start, fetch and answer what arrived while the bots were down

    # --- roster and the external attendance API
    roster_backend: Literal["local", "http"] = "local"
    base_url: str = "https://api.codegnan.example/api/v1"
    jwt_login_endpoint: str = "/login"
    api_timeout_seconds: float = 10.0
    # how students say who they are: their phone contact, their student ID, or `auto` (contact
    # on the local roster, which has phones; student ID on the http backend, whose lists may not)
    student_identity: Literal["auto", "contact", "student_id"] = "auto"

    # --- sessions
    session_duration_seconds: int = Field(300, ge=30, le=6 * 3600)
    report_buffer_seconds: int = Field(30, ge=0)
    location_distance_limit_meters: float = Field(50.0, gt=0)
    timezone: str = "UTC"  # how times are shown to users, e.g. Asia/Kolkata
    default_phone_region: str = "IN"  # country of roster phones written without a country code (ISO 3166)
    otp_max_attempts: int = Field(5, ge=1)
    otp_user_wrong_per_10min: int = Field(10, ge=1)  # codes (right or wrong) one Telegram user may try per 10 min
    otp_session_max_wrong: int = Field(100, ge=1)  # after max(this, class size) misses, one miss locks out
    login_free_attempts: int = Field(5, ge=1)  # failed teacher logins before a growing wait (1 min, doubling to 1 h)

    # --- face verification
    face_verifier: Literal["local", "rekognition"] = "local"
    face_match_threshold: float = Field(80.0, ge=0, le=100)  # Rekognition similarity, percent
    local_face_tolerance: float = Field(0.6, gt=0, le=1.5)  # dlib embedding distance
    faces_dir: Path = Path("data/faces")
    face_max_attempts: int = Field(3, ge=1)
    aws_region: str = "us-east-1"
    aws_s3_bucket: str = "attendance-faces"
    aws_endpoint_url: Optional[str] = None  # e.g. a local moto server

    # --- video notes and the verification queue
    video_max_bytes: int = Field(8 * 1024 * 1024, gt=0)
    video_max_seconds: int = Field(60, gt=0)
    video_max_side_px: int = Field(1280, ge=64, le=4096)  # frames larger than this are refused undecoded
    verify_queue_capacity: int = Field(1000, ge=1)
    verify_workers: int = Field(8, ge=1)
    # worker processes that decode notes (frame, liveness) off the event loop; 0: in the verify threads.
    # Default: one core fewer than the machine has (1 on 2 cores), so the bot keeps a core.
    verify_processes: int = Field(default_factory=lambda: max(1, (os.cpu_count() or 2) - 1), ge=0, le=64)
    liveness: Literal["off", "flag", "enforce"] = "flag"  # passive liveness of video notes (docs/presence.md)
    outbox_interval_seconds: float = Field(15.0, gt=0)  # how often waiting attendance is retried

    # --- the web admin panel (integrations/web, docs/web.md)
    web_enabled: bool = True  # `run.py run` serves the panel beside the bots
    web_host: str = "127.0.0.1"  # keep it on loopback and put a TLS reverse proxy in front
    web_port: int = Field(8080, ge=0, le=65535)
    web_secure_cookies: bool = False  # true behind TLS: the login cookie is only sent over https
    web_session_hours: float = Field(12.0, gt=0, le=24 * 30)  # a login lasts this long
    web_upload_max_bytes: int = Field(10 * 1024 * 1024, gt=0, le=50 * 1024 * 1024)  # photos and CSV files
    web_attendance_threshold: float = Field(75.0, ge=0, le=100)  # history: students below this are highlighted

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be an IANA time zone such as UTC or Asia/Kolkata") from None
        return value

    @field_validator("default_phone_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        value = value.strip().upper()
        if value not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError("must be a two-letter country code such as IN, US or GB")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        value = value.upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return value

    @field_validator("mongodb_uri")
    @classmethod
    def _server_uri(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not value.strip():
            return None
        if value is not None and not value.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("must be a mongodb:// or mongodb+srv:// URI (unset: the embedded database)")
        return value

    @model_validator(mode="after")
    def _production_storage(self) -> "Settings":
        if self.app_env != "production":
            return self
        if self.store == "memory":
            raise ValueError("APP_ENV=production keeps conversations in MongoDB: unset STORE or set STORE=mongo")
        if self.mongodb_uri is None and not self.allow_embedded_db:
            raise ValueError("APP_ENV=production needs MONGODB_URI (mongodb://host:27017/attendance); "
                             "to run on the embedded database anyway, set ALLOW_EMBEDDED_DB=1")
        return self

    def identity_mode(self) -> str:
        """`contact` or `student_id`: STUDENT_IDENTITY, with `auto` resolved per roster backend."""
        if self.student_identity != "auto":
            return self.student_identity
        return "contact" if self.roster_backend == "local" else "student_id"

    def missing_for_telegram(self) -> list[str]:
        """Names of settings the real Telegram transport needs but that are not set."""
        needed = {
            "API_ID": self.api_id,
            "API_HASH": self.api_hash,
            "TEACHER_BOT_TOKEN": self.teacher_bot_token,
            "STUDENT_BOT_TOKEN": self.student_bot_token,
        }
        return [name for name, value in needed.items() if not value]


_SECRET_FIELDS = {"secret_key", "api_hash", "teacher_bot_token", "student_bot_token", "student_bot_tokens"}


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning pydantic's error into one readable :class:`SettingsError`."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = ".".join(str(part) for part in err["loc"]).upper()
            if not name:  # a rule across settings: its message names them
                lines.append(f"  {err['msg'].removeprefix('Value error, ')}")
                continue
            shown = "<hidden>" if name.lower() in _SECRET_FIELDS else repr(err.get("input"))
            lines.append(f"  {name}: {err['msg']} (got {shown})")
        raise SettingsError("Invalid settings:\n" + "\n".join(lines)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
