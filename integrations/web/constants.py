"""Every tunable number and name of the web panel, in one place."""
from __future__ import annotations

# -- cookies and logins
SESSION_COOKIE = "af_session"
SECURE_SESSION_COOKIE = "__Host-af_session"  # the browser refuses it without https, path=/ and no domain
PRE_LOGIN_COOKIE = "af_prelogin"  # the login form's CSRF token (double submit) before there is a login
CSRF_FIELD = "csrf"
TOKEN_BYTES = 32

# -- failed sign-ins before a wait (429): per email and per client address, in MongoDB
LOGIN_WAIT_S, LOGIN_WAIT_CAP_S = 60.0, 3600.0  # after the free failures: 1 min, doubling to 1 h (in MongoDB)
LOGIN_FAILURES_PER_EMAIL = 5
LOGIN_FAILURES_PER_CLIENT = 20

# -- uploads
PHOTO_TYPES = {"image/jpeg": ".jpg", "image/png": ".png"}
PHOTO_MAX_PIXELS = 20_000_000  # refused from the header, before any decoding
PHOTO_MIN_SIDE = 200  # pixels: smaller photos are too coarse to enrol
PHOTO_MIN_FACE_FRACTION = 0.08  # the face's width as a share of the photo's width
PHOTO_MIN_SHARPNESS = 25.0  # variance of the Laplacian of the face region; below: blurred
PHOTO_BRIGHTNESS = (40.0, 220.0)  # mean grey level of the face region accepted
PHOTO_STORED_MAX_SIDE = 1600  # stored photos are scaled down to this and re-encoded as JPEG
PHOTO_JPEG_QUALITY = 90
CSV_TYPES = {"text/csv", "application/vnd.ms-excel", "text/plain", "application/octet-stream"}
CSV_MAX_BYTES = 2 * 1024 * 1024
FORM_OVERHEAD_BYTES = 64 * 1024  # multipart framing and the other fields beside a file

# -- pages
PAGE_SIZE = 50  # rows per page of students and sessions
SEARCH_MAX_LEN = 64
HISTORY_DEFAULT_DAYS = 30
HISTORY_MAX_SESSIONS = 500  # sessions in one history page (the chart and the table)
CLOSED_CACHE_S = 30.0  # who was present in a closed session is re-read after this (queries.PresentCache)
CLOSED_CACHE_SESSIONS = 5000
STUDENT_DETAIL_SESSIONS = 5  # a student's history shows method, note and "failed" for this many latest sessions
LIVE_INTERVAL_S = 1.0  # the live page looks for changes this often
LIVE_STREAM_MAX_S = 300.0  # one event stream lasts this long; the browser reconnects by itself
LIVE_HEARTBEAT_S = 15.0
LIVE_POLL_MS = 3000  # fallback polling interval of the page's script without EventSource
EXTEND_MAX_MIN = 60
REASON_MAX_LEN = 200

# -- the embedded server
SHUTDOWN_GRACE_S = 5.0  # open requests (live streams) get this long when the process stops
