#!/usr/bin/env python3
"""Attendance Flows command line: run the bots, check/simulate/draw flows, run the demo."""
import sys

from integrations.app.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
