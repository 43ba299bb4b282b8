"""Presence checks for attendance: geofence, OTP, video-note frame and face verification.

Pure library code: no Telegram imports, and no engine imports but ``media_reader`` (the
simulator's `/video` reader). Every check returns a small frozen result with
``ok``/``reason`` (a machine-readable message key) plus the numbers a flow text can show; bad input
never raises. See ``docs/presence.md``.
"""
