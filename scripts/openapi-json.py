#!/usr/bin/env python3
"""Converts openapi.yaml (the repository's root) to JSON.

    scripts/openapi-json.py shared/src/http/openapi.json

Keys keep the document's order, indented by 2, with a trailing newline. Needs PyYAML.
"""

import json
import pathlib
import sys

import yaml


def main() -> int:
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} <output.json>", file=sys.stderr)
        return 2
    source = pathlib.Path(__file__).resolve().parent.parent / "openapi.yaml"
    with source.open(encoding="utf-8") as f:
        document = yaml.safe_load(f)
    text = json.dumps(document, indent=2, sort_keys=False, ensure_ascii=False) + "\n"
    pathlib.Path(sys.argv[1]).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
