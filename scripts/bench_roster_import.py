#!/usr/bin/env python
"""Benchmark the roster CSV import (issue 12; run on demand, not a test).

Generates a roster CSV of N rows (one teacher per 1,000 rows with a pre-hashed password, so
scrypt is not what is measured; the rest students in classes of 60), imports it into an empty
database, then imports the same file again (every row already stored). Wall time of
``import_roster(path)`` each time, this process's CPU time, with ``--server-pid`` a local
server's CPU time, and the time to parse the file alone.

    .venv/bin/python scripts/bench_roster_import.py [--rows 100000] [--uri mongodb://127.0.0.1:27555/bench_import --server-pid PID]

The default is a private SecantusDB server in memory (its CPU time reported apart); ``--uri`` names
another server. Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from integrations.foundation.crypto import hash_password  # noqa: E402
from integrations.roster.csv_import import import_roster, parse_roster  # noqa: E402
from integrations.storage.connection import connect_db, disconnect_db  # noqa: E402
from integrations.storage.documents import Student, Teacher  # noqa: E402
from integrations.storage.indexes import ensure_indexes  # noqa: E402
from scripts.private_db import start_private_db  # noqa: E402

CLASS_SIZE = 60
ROWS_PER_TEACHER = 1000


def write_csv(path: Path, rows: int) -> tuple[int, int]:
    """Write N data rows (plus the header); returns (teachers, students)."""
    teachers = max(1, rows // ROWS_PER_TEACHER)
    students = rows - teachers
    password = hash_password("bench-password")  # one hash, stored as is by the import
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write("role,id,name,phone,email,password,batch,subject\n")
        for t in range(teachers):
            classes = ";".join(f"B{b}" for b in range(t, (students // CLASS_SIZE) + 1, teachers))
            fh.write(f"teacher,,Teacher {t},+91 98{t:08d},t{t}@example.edu,{password},{classes},Python\n")
        for i in range(students):
            fh.write(f"student,S{i:07d},Student {i},+91 9{i:09d},,,B{i // CLASS_SIZE},\n")
    return teachers, students


def process_cpu(pid: Optional[int]) -> float:
    """CPU seconds (user + system) a local process has used so far; 0 without a pid."""
    if not pid:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_import(path: Path, server_pid: Optional[int]) -> dict[str, Any]:
    """Wall time, this process's CPU and (with its pid) the server's CPU for one import."""
    cpu0, server0, start = time.process_time(), process_cpu(server_pid), time.perf_counter()
    result = import_roster(path)
    seconds = time.perf_counter() - start
    out: dict[str, Any] = {"seconds": round(seconds, 3), "cpu_s": round(time.process_time() - cpu0, 3)}
    if server_pid:
        out["server_cpu_s"] = round(process_cpu(server_pid) - server0, 2)
    out["result"] = dict(vars(result))
    return out


def main(argv: Optional[list[str]] = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--uri", help="a MongoDB-compatible server (a scratch database: it is dropped); default: a private SecantusDB in memory")
    p.add_argument("--no-reimport", action="store_true", help="skip the second import (all updates)")
    p.add_argument("--server-pid", type=int, help="a local server's pid: also report its CPU time")
    args = p.parse_args(argv)
    if args.uri is None:
        args.uri, args.server_pid = start_private_db("bench_import")
    client = connect_db(args.uri)
    client.drop_database(Student._get_collection().database.name)  # start from an empty database
    ensure_indexes()
    load0 = os.getloadavg()
    out: dict[str, Any] = {"bench": "roster_import", "uri": args.uri, "rows": args.rows}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "roster.csv"
        out["teachers"], out["students"] = write_csv(path, args.rows)
        start = time.perf_counter()
        with open(path, encoding="utf-8-sig", newline="") as fh:
            parse_roster(fh)
        out["parse_s"] = round(time.perf_counter() - start, 3)
        out["first"] = timed_import(path, args.server_pid)
        assert Student.objects.count() == out["students"] and Teacher.objects.count() == out["teachers"]
        if not args.no_reimport:
            out["again"] = timed_import(path, args.server_pid)
            assert Student.objects.count() == out["students"]
        for run in ("first", "again"):
            if run in out:
                out[run]["rows_per_s"] = round(args.rows / out[run]["seconds"])
    client.drop_database(Student._get_collection().database.name)
    disconnect_db()
    out["load"] = [round(x, 2) for x in (*load0, *os.getloadavg())]
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
