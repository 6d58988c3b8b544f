"""Fail when the running environment holds a package the lock does not pin, or another version.

``pip install -c constraints.txt`` pins what the lock lists and silently takes the newest
release of anything it does not list: a dependency added to pyproject.toml without a
``make lock`` would go untested at a random version. Run inside the venv CI just installed:

    python .ci/check_lock.py constraints.txt
"""

from __future__ import annotations

import re
import sys
from importlib.metadata import distributions

# Installed by `python -m venv` or by the README's first command, not by the lock.
NOT_LOCKED = {"pip", "setuptools", "wheel", "torch", "lmforge"}


def canonical(name: str) -> str:
    """PEP 503 name normalisation (``Foo_Bar`` and ``foo-bar`` are one project)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_versions(path: str) -> dict[str, str]:
    pins = {}
    with open(path, encoding="utf-8") as lock:
        for line in lock:
            match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)", line)
            if match:
                pins[canonical(match[1])] = match[2]
    return pins


def main(path: str) -> int:
    pins = locked_versions(path)
    problems = []
    for dist in distributions():
        name = canonical(dist.metadata["Name"])
        if name in NOT_LOCKED:
            continue
        if name not in pins:
            problems.append(f"{name}=={dist.version} is installed but not in {path}")
        elif pins[name] != dist.version:
            problems.append(f"{name}=={dist.version} is installed, {path} pins {pins[name]}")
    for problem in sorted(problems):
        print(f"lock: {problem}", file=sys.stderr)
    if problems:
        print(f"lock: run `make lock` and commit {path}", file=sys.stderr)
        return 1
    print(f"lock: every installed package is pinned by {path} ({len(pins)} pins)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "constraints.txt"))
