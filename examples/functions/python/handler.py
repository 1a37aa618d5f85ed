#!/usr/bin/env python3
"""A Baton process function in Python.

Baton starts this script once and keeps it running between calls. It
speaks JSON lines over stdin and stdout (docs/functions.md, "process
functions"):

  - when ready, it writes {"ready": true};
  - for each request line {"id": ..., "input": ...} it writes one response
    line {"id": ..., "output": ...} or {"id": ..., "error": "..."}.

Anything meant for humans goes to stderr: stdout carries the protocol only.

    baton fn deploy hello-py --exec "python3 examples/functions/python/handler.py"
    baton fn invoke hello-py --input '{"name": "Ada"}'
"""
import json
import sys


def handle(payload):
    if not isinstance(payload, dict):
        raise ValueError("input must be an object")
    name = str(payload.get("name") or "world").strip() or "world"
    return {"greeting": f"Hello, {name}!", "runtime": "python"}


def main():
    out = sys.stdout
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            response = {"id": request["id"], "output": handle(request.get("input"))}
        except Exception as exc:  # the call fails, the process lives on
            response = {"id": request["id"], "error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(response) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
