"""The demo's seeding, called directly on the test database."""

import pytest
from sqlalchemy import select

from app.auth.service import authenticate
from app.db import new_session
from app.demo.seed import seed_demo
from app.errors import Conflict
from app.models import ApiToken, User


def test_seeding_a_database_with_a_claims_queue_it_did_not_make_is_refused(make, engine, db):
    # A queue named like the demo's and a user "reviewer", but no "producer": not the demo's.
    make.queue("claims")
    make.user("lead", name="reviewer", password="their-own-pw")
    tokens = db.count(ApiToken)
    with pytest.raises(Conflict, match="no user 'producer'"):
        seed_demo(engine, history=10, incoming=0)
    # Nothing changed: the reviewer keeps their password and no token was made.
    with new_session(engine) as s:
        assert authenticate(session=s, name="reviewer", password="their-own-pw") is not None
    assert db.count(ApiToken) == tokens
    assert db.scalar(select(User.id).where(User.name == "producer")) is None
