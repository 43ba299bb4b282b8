#!/usr/bin/env python
"""Benchmark opening an attendance session (issue 12; run on demand, not a test).

Measures the CPU time of this process (``time.process_time``) spent in
``records.create_session`` for a class of N students, for each N. Opening a session used to be
O(N²) in mongoengine's validation of the roster snapshot, all of it GIL-bound; this shows the
growth. The server (by default a private SecantusDB in memory; ``--uri mongodb://…`` for another)
is another process: its own CPU time is reported apart (``server_cpu_ms``).

    .venv/bin/python scripts/bench_session_open.py [--sizes 100 1000 3000] [--uri mongodb://127.0.0.1:27555/bench --server-pid PID]

Prints one JSON line: {"cpu_ms": {N: ...}, "wall_ms": {N: ...}, with ``--server-pid`` a local
server's "server_cpu_ms": {N: ...}, and the load average before and after}.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from integrations.roster import records  # noqa: E402
from integrations.roster.base import StudentInfo  # noqa: E402
from integrations.storage.connection import connect_db, disconnect_db  # noqa: E402
from integrations.storage.documents import Session, Teacher  # noqa: E402
from integrations.storage.indexes import ensure_indexes  # noqa: E402
from scripts.private_db import start_private_db  # noqa: E402

TEACHER_TG = 777


def roster(n: int) -> list[StudentInfo]:
    """N students in 4 batches with realistic (formatted) phones, as a backend returns them."""
    return [StudentInfo(f"S{i:06d}", f"Student {i}", f"B{i % 4}", f"+91 9{i:09d}") for i in range(n)]


def process_cpu(pid: Optional[int]) -> float:
    """CPU seconds (user + system) a local process has used so far; 0 without a pid."""
    if not pid:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_once(n: int, otp: str, server_pid: Optional[int] = None) -> tuple[float, float, float]:
    """(CPU ms, wall ms, server CPU ms) of one ``create_session`` with N students."""
    students = roster(n)
    expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5)
    server0, cpu0, wall0 = process_cpu(server_pid), time.process_time(), time.perf_counter()
    session = records.create_session(TEACHER_TG, otp, ["B0", "B1", "B2", "B3"], "Python", 17.0, 78.0, 50.0,
                                     expires, students)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    server = process_cpu(server_pid) - server0
    stored = Session._get_collection().find_one({"_id": session.id}, {"students": {"$slice": -1}})
    assert stored is not None and stored["students"][0]["phone_tail"], "snapshot lost its phone tail"
    Session.close(session.id)
    return cpu * 1000, wall * 1000, server * 1000


def main(argv: Optional[list[str]] = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 3000])
    p.add_argument("--uri", help="a MongoDB-compatible server (a scratch database: it is dropped); default: a private SecantusDB in memory")
    p.add_argument("--server-pid", type=int, help="a local server's pid: also report its CPU time")
    args = p.parse_args(argv)
    if args.uri is None:
        args.uri, args.server_pid = start_private_db("bench_session_open")
    uri = args.uri
    client = connect_db(uri)
    client.drop_database(Session._get_collection().database.name)  # start from an empty database
    ensure_indexes()
    Teacher(email="bench@example.edu", name="Bench", telegram_id=TEACHER_TG).save()
    load0 = os.getloadavg()
    open_once(10, "000000")  # warm-up (imports, index cache, first insert)
    cpu: dict[int, float] = {}
    wall: dict[int, float] = {}
    server: dict[int, float] = {}
    for i, n in enumerate(args.sizes, start=1):
        cpu[n], wall[n], server[n] = open_once(n, f"{i:06d}", args.server_pid)
    client.drop_database(Session._get_collection().database.name)
    disconnect_db()
    result = {"bench": "session_open", "uri": args.uri, "cpu_ms": {str(k): round(v, 1) for k, v in cpu.items()},
              "wall_ms": {str(k): round(v, 1) for k, v in wall.items()},
              **({"server_cpu_ms": {str(k): round(v) for k, v in server.items()}} if args.server_pid else {}),
              "load": [round(x, 2) for x in (*load0, *os.getloadavg())]}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
