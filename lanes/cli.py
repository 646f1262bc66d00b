"""`laneway policy check|schema|hash-key`: policy tools that start nothing.

The main `laneway` CLI hands `laneway policy ...` arguments to `main()`; the three
functions below are also usable on their own.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from lanes.advice import advice
from lanes.api_key import hash_api_key
from lanes.policy_errors import PolicyError
from lanes.policy_load import load_policy
from lanes.policy_schema import policy_json_schema


def check(path: str | Path) -> int:
    """Validate a policy file; print a one-line summary or every problem. Returns the exit code."""
    try:
        policy = load_policy(path)
    except PolicyError as err:
        print(err, file=sys.stderr)
        return 1
    counts = f"{len(policy.lanes)} lanes, {len(policy.endpoints)} endpoints, {len(policy.tenants)} tenants"
    print(f"OK: {path}: {counts}")
    for note in advice(policy):
        print(f"note: {path}: {note}")
    return 0


def schema() -> str:
    return json.dumps(policy_json_schema(), indent=2, sort_keys=False)


def hash_key(key: str) -> str:
    return hash_api_key(key)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="laneway policy", description="Check and document policy files.")
    commands = parser.add_subparsers(dest="command", required=True)
    check_cmd = commands.add_parser("check", help="validate policy files without starting anything")
    check_cmd.add_argument("files", nargs="+", metavar="FILE")
    commands.add_parser("schema", help="print the JSON Schema of policy files (for editors)")
    hash_cmd = commands.add_parser("hash-key", help="print the SHA-256 hash of an API key for keys_sha256")
    hash_cmd.add_argument("key", nargs="?", help="the key; read from stdin when left out (keeps it out of history)")
    args = parser.parse_args(argv)

    if args.command == "check":
        return max(check(path) for path in args.files)
    if args.command == "schema":
        print(schema())
        return 0
    key = args.key if args.key is not None else sys.stdin.readline().strip()
    if not key:
        print("laneway policy hash-key: no key given", file=sys.stderr)
        return 2
    print(hash_key(key))
    return 0


if __name__ == "__main__":
    sys.exit(main())
