"""``python -m tracking.sdk sync [DIR]``: upload runs spooled while the server was away."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tracking.sdk.settings import spool_dir_default
from tracking.sdk.sync import sync_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tracking.sdk", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    sync = commands.add_parser("sync", help="upload spooled runs (safe to repeat)")
    sync.add_argument(
        "dir",
        nargs="?",
        type=Path,
        help="spool folder (default: LABBOOK_SPOOL_DIR or ~/.labbook/spool)",
    )
    sync.add_argument(
        "--url", help="server to upload to (default: the one each run was logging to)"
    )
    sync.add_argument("--token", help="API token (default: LABBOOK_TOKEN)")
    args = parser.parse_args(argv)
    token = args.token or os.environ.get("LABBOOK_TOKEN", "")
    if not token:
        parser.error("no API token: pass --token or set LABBOOK_TOKEN")
    failed = sync_all(args.dir or spool_dir_default(), url=args.url, token=token)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
