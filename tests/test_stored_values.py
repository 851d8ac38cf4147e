"""The UUIDs and datetimes that SQLite's row readers make (api/database/statements.py) carry
their text, made from what is stored: it must be exactly the text the plain types make. And
what the statements bind and read without SQLAlchemy's result objects is what SQLAlchemy's
own processors bind and read."""

import copy
import pickle
import uuid
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite

from api.database.engine import _json_text
from api.database.statements import (
    StoredDateTime,
    StoredUUID,
    _bind_processor,
    _reader,
    _result_processor,
)
from api.models import UTCDateTime
from schemas.common import format_timestamp
from schemas.data import record_public

DIALECT = sqlite.dialect()
READ_UUID = _result_processor(sa.Uuid(), DIALECT)
READ_TIME = _result_processor(UTCDateTime(), DIALECT)
OWN_UUID = sa.Uuid().dialect_impl(DIALECT).result_processor(DIALECT, None)
OWN_TIME = UTCDateTime().dialect_impl(DIALECT).result_processor(DIALECT, None)
BIND_TIME = _bind_processor(UTCDateTime(), DIALECT)
OWN_BIND_TIME = UTCDateTime().dialect_impl(DIALECT).bind_processor(DIALECT)
TIMESPECS = ("auto", "hours", "minutes", "seconds", "milliseconds", "microseconds")

moments = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 31))


def stored(moment: datetime) -> str:
    """What SQLAlchemy writes to SQLite for a datetime (always six digits of microseconds)."""
    return sa.DateTime().dialect_impl(DIALECT).bind_processor(DIALECT)(moment)


@given(st.uuids(), st.booleans())
def test_a_stored_uuid_is_the_uuid_and_its_text(found, upper):
    digits = found.hex.upper() if upper else found.hex
    read = READ_UUID(digits)
    assert isinstance(read, StoredUUID) and read == found == OWN_UUID(digits)
    assert str(read) == str(found) and hash(read) == hash(found)
    assert (read.hex, read.bytes, read.version) == (found.hex, found.bytes, found.version)
    for other in (copy.copy(read), pickle.loads(pickle.dumps(read))):
        assert other == found and str(other) == str(found)


def test_other_stored_forms_of_a_uuid_are_read_by_the_type_itself():
    found = uuid.uuid4()
    assert type(READ_UUID(str(found))) is uuid.UUID and READ_UUID(str(found)) == found
    assert READ_UUID(None) is None
    spaced = " ".join(found.hex[i : i + 2] for i in range(0, 32, 2))[:32]  # fromhex skips spaces
    for odd in (spaced, "0x" + found.hex[2:], "1_" + found.hex[2:]):
        try:
            expected = OWN_UUID(odd)
        except ValueError:
            expected = ValueError
        try:
            got = READ_UUID(odd)
        except ValueError:
            got = ValueError
        assert got == expected and (got is ValueError or str(got) == str(expected)), odd


@given(moments)
def test_a_stored_datetime_is_the_datetime_and_formats_alike(moment):
    text = stored(moment)
    read, own = READ_TIME(text), OWN_TIME(text)
    assert isinstance(read, StoredDateTime) and read == own and read.tzinfo is UTC
    assert format_timestamp(read) == format_timestamp(own)
    for timespec in TIMESPECS:
        for sep in ("T", " "):
            assert read.isoformat(sep, timespec) == own.isoformat(sep, timespec)
    assert str(read) == str(own) and read.timestamp() == own.timestamp()
    # What is made from it formats itself, not as the value it came from.
    later = read + timedelta(milliseconds=1)
    assert format_timestamp(later) == format_timestamp(own + timedelta(milliseconds=1))
    # Another minute: every hour has one, where not every year has a 29 February.
    minute = (moment.minute + 1) % 60
    moved = read.replace(minute=minute)
    assert format_timestamp(moved) == format_timestamp(own.replace(minute=minute))
    for other in (copy.copy(read), pickle.loads(pickle.dumps(read))):
        assert other == own and format_timestamp(other) == format_timestamp(own)


@given(st.uuids(), st.uuids(), moments, moments)
def test_a_record_read_from_sqlite_dumps_as_the_plain_record(record_id, owner, created, updated):
    made = {"collection": "c", "data": {"a": 1}, "version": 1, "access": "owner"}
    plain = {
        **made,
        "id": record_id,
        "owner_id": owner,
        "created_at": OWN_TIME(stored(created)),
        "updated_at": OWN_TIME(stored(updated)),
    }
    read = {
        **made,
        "id": READ_UUID(record_id.hex),
        "owner_id": READ_UUID(owner.hex),
        "created_at": READ_TIME(stored(created)),
        "updated_at": READ_TIME(stored(updated)),
    }
    assert record_public.dump(read) == record_public.dump(plain)


@given(st.uuids(), moments)
def test_a_json_column_writes_them_as_the_plain_types(found, moment):
    """orjson refuses subclasses of UUID and datetime; a JSON column given one (an event's
    details, say) writes it as orjson writes the plain value."""
    text = stored(moment)
    read = {"id": READ_UUID(found.hex), "at": READ_TIME(text), "n": [1, None]}
    plain = {"id": found, "at": OWN_TIME(text), "n": [1, None]}
    assert _json_text(read) == orjson.dumps(plain).decode()
    with pytest.raises(TypeError):
        _json_text({"x": object()})


zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
)


@given(moments, zones)
def test_a_datetime_is_bound_as_sqlalchemy_binds_it(moment, zone):
    """The auth check binds "now" on every request: UTC ones are written straight, any other
    (another zone, naive, None) by the type's own processor, and all exactly alike."""
    assert BIND_TIME is not OWN_BIND_TIME  # SQLite's own form is known, so it has a fast path
    aware = moment.replace(tzinfo=UTC).astimezone(zone)
    assert BIND_TIME(aware) == OWN_BIND_TIME(aware)
    assert BIND_TIME(READ_TIME(stored(moment))) == OWN_BIND_TIME(aware)  # a StoredDateTime
    assert BIND_TIME(None) is None
    assert BIND_TIME(moment) == OWN_BIND_TIME(moment)  # naive: read in the local zone alike


def test_other_types_and_databases_bind_with_their_own_processors():
    postgresql = sa.create_engine("postgresql+psycopg://").dialect
    for type_, dialect in ((UTCDateTime(), postgresql), (sa.DateTime(), DIALECT)):
        own = type_.dialect_impl(dialect).bind_processor(dialect)
        assert _bind_processor(type_, dialect).__code__ is own.__code__
    assert _bind_processor(sa.Integer(), DIALECT) is None


@given(
    st.lists(
        st.tuples(st.one_of(st.none(), st.uuids().map(lambda u: u.hex)), st.integers()),
        max_size=5,
    )
)
def test_rows_are_read_into_dicts_keyed_like_the_columns(rows):
    """The reader written for a statement's columns: each value through its processor, None
    through it too (the processors take None), and keys that are no Python names kept."""
    keys = ("id", "class", "a b")
    read = _reader(keys, (READ_UUID, None, str))
    raw = [(found, number, number) for found, number in rows]
    assert read(raw) == [
        {"id": READ_UUID(found), "class": number, "a b": str(number)} for found, number in rows
    ]
    with pytest.raises(ValueError):  # a row of another statement
        read([(None, 1)])
    assert _reader((), ())([(), ()]) == [{}, {}]
