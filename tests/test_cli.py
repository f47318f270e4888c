"""The `loupe` command, run as a real process against the test database."""

import json
import os
import subprocess
import sys

from app.models import Item, User
from tests.conftest import PROJECT


def loupe(*args, input=None):
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=PROJECT,
        env={**os.environ},
        capture_output=True,
        text=True,
        input=input,
        timeout=120,
    )


def test_user_token_queue_import_export(app, db, tmp_path):
    assert loupe("db", "upgrade").returncode == 0
    assert loupe("queue", "create", "claims", "--labels", "legit,fraud").returncode == 0
    r = loupe(
        "user", "create", "ana", "--role", "scientist", "--password", "pw", "--queue", "claims"
    )
    assert r.returncode == 0, r.stderr
    assert db.count(User, User.name == "ana") == 1
    dup = loupe("user", "create", "ana", "--role", "scientist", "--password", "pw")
    assert dup.returncode == 2 and "already exists" in dup.stderr
    token = loupe("token", "create", "--user", "ana")
    assert token.returncode == 0 and token.stdout.strip().splitlines()[-1].startswith("lp_")

    csv_file = tmp_path / "in.csv"
    csv_file.write_text(
        "external_id,amount,country,candidates\n"
        'c1,12.5,FR,"[{""label"": ""fraud"", ""score"": 0.99}]"\n'
        "c2,900,DE,\n"
    )
    r = loupe("import", str(csv_file), "--queue", "claims")
    assert r.returncode == 0, r.stderr
    assert "created 2" in r.stdout
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text(json.dumps({"external_id": "j1", "payload": {"a": 1}}) + "\n{broken\n")
    bad = loupe("import", str(jsonl), "--queue", "claims")
    assert bad.returncode == 2 and "row 1" in bad.stderr
    assert db.count(Item) == 2

    out = loupe("export", "--queue", "claims", "--format", "jsonl")
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["external_id"] for r in rows] == ["c1"] and rows[0]["payload"]["amount"] == 12.5
