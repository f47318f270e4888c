#!/usr/bin/env python3
"""The two commands of the README, for a fresh machine with nothing but Python 3.11+.

    python3 dev.py demo   # a virtualenv, the dependencies, then `loupe demo`
    python3 dev.py test   # the same virtualenv, then the whole test suite
    python3 dev.py check  # the gates CI runs first: ruff check, ruff format --check, mypy

Extra arguments are passed on (to `loupe demo` or to pytest).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")


# What the installation depends on: a change to any of them reinstalls.
INSTALL_INPUTS = ("pyproject.toml", "setup.py", "constraints.txt")


def ensure_env() -> None:
    """Creates .venv and installs the project, at the versions CI tested (constraints.txt),
    when pyproject.toml, setup.py or constraints.txt changed since last time."""
    if sys.version_info < (3, 11):
        sys.exit(f"Loupe needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    if not PY.exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = VENV / ".loupe-installed"
    digest = hashlib.sha256()
    for name in INSTALL_INPUTS:
        digest.update(name.encode() + b"\0" + (ROOT / name).read_bytes())
    if stamp.exists() and stamp.read_text() == digest.hexdigest():
        return
    print(
        "installing Loupe and its dependencies into .venv (first run takes a minute) ...",
        flush=True,
    )
    subprocess.run([PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    # The embedded Redis (demo, tests) and the gates (ruff, mypy) are extras: production
    # images go without them.
    pins = ["-c", ROOT / "constraints.txt"]
    subprocess.run(
        [PY, "-m", "pip", "install", "--quiet", *pins, "-e", f"{ROOT}[embedded,test,dev]"],
        check=True,
    )
    stamp.write_text(digest.hexdigest())


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test", "check"}:
        print(__doc__)
        return 2
    ensure_env()
    command, rest = argv[0], argv[1:]
    if command == "demo":
        return _run([BIN / "loupe", "demo", *rest])
    if command == "check":
        gates = [["ruff", "check", "."], ["ruff", "format", "--check", "."], ["mypy"]]
        return max(_run([BIN / gate[0], *gate[1:], *rest]) for gate in gates)
    return _run([PY, "-m", "pytest", *rest])


def _run(cmd: list) -> int:
    """Runs the command and waits for it, Ctrl-C included: the terminal sends the child the
    same Ctrl-C, and it needs a few seconds to stop its workers and its Redis
    (subprocess.call would kill it after a quarter of a second)."""
    child = subprocess.Popen(cmd, cwd=ROOT)
    while True:
        try:
            return child.wait()
        except KeyboardInterrupt:
            continue


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
