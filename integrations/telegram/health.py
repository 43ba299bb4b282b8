"""A heartbeat file the runtime refreshes, so ``python run.py health`` (the Docker HEALTHCHECK)
can tell a live bot from a hung one without talking to Telegram or holding the session lock."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Mapping, Optional

HEARTBEAT_FILE = "heartbeat.json"


def heartbeat_path(session_dir: Path | str) -> Path:
    return Path(session_dir) / HEARTBEAT_FILE


def write_heartbeat(path: Path, bots: Mapping[str, bool], now: Optional[float] = None,
                    queues: Optional[Mapping[str, Any]] = None) -> None:
    """Atomically record which bots are connected, how their send queues are, and when."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    beat: dict[str, Any] = {"ts": time.time() if now is None else now, "bots": dict(bots)}
    if queues is not None:
        beat["queues"] = dict(queues)
    tmp.write_text(json.dumps(beat))
    os.replace(tmp, path)


def check_heartbeat(path: Path, max_age: float = 90.0, now: Optional[float] = None) -> tuple[bool, str]:
    """(healthy, reason): fresh enough and every bot connected."""
    try:
        beat = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return False, f"no heartbeat at {path}"
    except (OSError, ValueError) as exc:
        return False, f"unreadable heartbeat: {exc}"
    age = (time.time() if now is None else now) - float(beat.get("ts", 0))
    if age > max_age:
        return False, f"heartbeat is {age:.0f}s old (max {max_age:.0f}s)"
    down = [bot for bot, ok in beat.get("bots", {}).items() if not ok]
    if down or not beat.get("bots"):
        return False, "disconnected: " + (", ".join(down) or "no bots")
    stalled = [f"{bot} (oldest reply waiting {q.get('oldest_wait_s', '?')}s)"
               for bot, q in (beat.get("queues") or {}).items() if q.get("stalled")]
    if stalled:
        return False, "send queue stalled: " + ", ".join(stalled)
    return True, "ok"


def health_command(session_dir: Path | str, max_age: float = 90.0) -> int:
    """What ``python run.py health`` runs: print the verdict, return the exit status (0 healthy)."""
    healthy, reason = check_heartbeat(heartbeat_path(session_dir), max_age)
    print(reason)
    return 0 if healthy else 1
