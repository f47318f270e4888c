"""The models' helpers: a row's id, a model's Core table."""

import pytest

from app.models import Item, Queue, id_of, table_of


def test_id_of_a_row_is_its_id_once_flushed_and_an_error_before(session):
    queue = Queue(name="ids", labels=["a", "b"])
    session.add(queue)
    with pytest.raises(RuntimeError, match="This Queue has no id yet"):
        id_of(queue)
    session.flush()
    assert isinstance(queue.id, int)
    assert id_of(queue) == queue.id


def test_table_of_a_model_is_its_table():
    table = table_of(Item)
    assert table.name == "item"
    assert table.c.lease_expires_at.type is Item.__table__.c.lease_expires_at.type
