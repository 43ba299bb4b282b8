"""Names shared across layers: bots, internal events, error keys and report keys.

Flows, hooks and workflows must agree on these strings; keeping them here means they are
written once (a typo becomes an ImportError, not a silently unanswered event).
"""
from __future__ import annotations

# -- bots (the `bot:` of each shipped flow)
TEACHER_BOT = "teacher"
STUDENT_BOT = "student"

# -- internal events posted into conversations (each has an `on:` branch in a flow)
REPORT_EVENT = "session_report"  # teacher: the end-of-session report
VERIFIED = "verified"  # student: face matched and attendance recorded
RECORDED_OFFLINE = "recorded_offline"  # matched; the attendance API was down, it waits in the outbox
QUEUED_OFFLINE = "queued_offline"  # the face service was down; the frame waits in the outbox
RETRY_LATER = "retry_later"  # the face service was down and the frame could not be kept
ATTEMPTS_EXHAUSTED = "attempts_exhausted"
NO_REFERENCE = "no_reference"
BAD_VIDEO = "bad_video"
CHECK_INTERRUPTED = "check_interrupted"  # the process died while a face check was running
VERIFIED_LATER = "verified_later"  # outbox: a late face check matched
NOT_VERIFIED_LATER = "not_verified_later"  # outbox: a late face check did not

REPORT_CORRECTED_EVENT = "report_corrected"  # teacher: a face check answered after the report was sent

# -- transient keys a face check's answer carries, for the flow-wide message when the student's
# conversation is about another session by then (the event is `about` its session id)
CHECK_SUBJECT_KEY = "_check_subject"
CHECK_TIME_KEY = "_check_time"

# -- the student flow's state that waits for a face check's answer (flows/student.yaml)
VERIFYING_STATE = "verifying"

# -- face check reasons
MATCH = "match"
MISMATCH = "mismatch"
NO_FACE = "no_face"
THROTTLED = "throttled"
SERVICE_ERROR = "service_error"
FACE_SERVICE_DOWN = frozenset({THROTTLED, SERVICE_ERROR})  # the face service, not the student
NOT_LIVE = "not_live"  # LIVENESS=enforce and the note looks like a photo held up: record a new one
TOO_SHORT = "too_short"  # under a second, or too few frames with a face: a still picture, not a recording
CORRUPT_VIDEO = "corrupt_video"  # not a decodable video
# Reasons a student can fix by recording again; they count toward FACE_MAX_ATTEMPTS (a refused
# liveness check too: the limit also bounds trying photo after photo).
STUDENT_FACE_FAULTS = frozenset({MISMATCH, NO_FACE, NOT_LIVE})

# -- attendance
PRESENT, ABSENT, FAILED = "present", "absent", "failed"
BY_FACE, BY_HAND = "face", "manual"

# -- the teacher's report: every key the report text in flows/teacher.yaml may use
REPORT_CSV_KEY = "_report_csv"  # transient: the CSV bytes, sent as a document
REPORT_KEYS = (
    "report_subject", "report_batches", "report_date", "report_closed", "total_count",
    "present_count", "present_names", "manual_count", "absent_count", "absent_names",
    "failed_count", "failed_names", "locked_count", "locked_names", "unsynced_count", "unchecked_count",
    "report_complete", "report_filename", "answers_text", REPORT_CSV_KEY,
)

# -- how students say who they are (STUDENT_IDENTITY; flows/student.yaml's `identity_mode` hook)
BY_CONTACT, BY_STUDENT_ID = "contact", "student_id"


def attempt_key(student_id: str, user_id: object = None) -> str:
    """What wrong codes and failed face checks are counted against: the student *and* the
    Telegram account that typed their id, so nobody can lock a classmate out by using the
    classmate's id. Without a user id (an operator's action) it is the student alone."""
    return f"{student_id}#{int(user_id)}" if user_id is not None else str(student_id)


def student_of_key(key: str) -> str:
    """The student id inside an :func:`attempt_key`."""
    head, sep, tail = str(key).rpartition("#")
    return head if sep and tail.lstrip("-").isdigit() else str(key)


def user_of_key(key: str) -> "int | None":
    """The Telegram user id inside an :func:`attempt_key` (None for a student-only key)."""
    head, sep, tail = str(key).rpartition("#")
    return int(tail) if sep and tail.lstrip("-").isdigit() else None
