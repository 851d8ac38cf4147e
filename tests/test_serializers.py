"""The serializers generated from the schemas (api/http/serializers.py) return exactly what
`schema.dump` returns: the same keys in the same order, the same values of the same types,
the same keys left out, the same exception when marshmallow raises. Checked on random objects
of every schema an operation answers with, on the objects the app really dumps, and on fields
and schemas the generator does not know, which it leaves to marshmallow."""

import dataclasses
import decimal
import sys
import uuid
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType, SimpleNamespace

import orjson
from helpers import API
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import Schema, fields, post_dump, pre_dump

from api import records, tokens
from api.http import problems
from api.http.operation import declaration
from api.http.serializers import serializer
from schemas.data import record_public
from schemas.users import user_public

ZONES = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
EXAMPLES = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)


class Text(str):
    """A str that is not exactly a str: String dumps it as a plain one."""


text = st.text(max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=6,
)
stamps = st.datetimes(timezones=st.sampled_from(ZONES))


def values(field: fields.Field, depth: int = 0) -> st.SearchStrategy:
    """Values of a field's type, None, and values of neighbouring types that marshmallow
    still dumps (or fails to dump) its own way: big ints, str subclasses, bytes, numbers as
    text."""
    if isinstance(field, fields.Nested):
        one = objects(field.schema, depth + 1)
        return st.none() | (st.lists(one, max_size=3) if field.many else one)
    if isinstance(field, fields.List):
        return st.none() | st.lists(values(field.inner, depth), max_size=4)
    if isinstance(field, fields.UUID):
        return st.none() | st.uuids() | st.uuids().map(str)
    if isinstance(field, fields.DateTime):
        return st.none() | stamps
    if isinstance(field, fields.Number):
        return (
            st.none()
            | st.integers()
            | st.integers(-(2**80), 2**80)
            | st.booleans()
            | (st.floats(allow_nan=False, allow_infinity=False))
        )
    if isinstance(field, fields.Mapping):
        keys = text | st.integers() | st.none()
        mapping = st.dictionaries(keys, json_values, max_size=4)
        return st.none() | mapping | mapping.map(MappingProxyType)
    if isinstance(field, fields.String):
        return st.none() | text | text.map(Text) | st.binary(max_size=4) | st.integers()
    return st.none() | st.booleans() | st.integers() | text | json_values


def objects(schema: Schema, depth: int = 0) -> st.SearchStrategy:
    """Objects to dump with `schema`: a dict, a read-only mapping, an object with attributes,
    a frozen slots dataclass; with every attribute, or with some missing, or with more."""
    if depth > 2:
        return st.none()
    names = {
        (name if field.attribute is None else field.attribute): field
        for name, field in schema.dump_fields.items()
    }
    members = {name: values(field, depth) for name, field in names.items()}
    full = st.fixed_dictionaries(members)
    partial = st.fixed_dictionaries({}, optional=members)
    extra = st.dictionaries(st.sampled_from(["keys", "items", "extra", "ñ"]), json_values)
    attributes = (full | partial).flatmap(lambda found: extra.map(lambda more: {**more, **found}))
    kinds = st.sampled_from([dict, MappingProxyType, _namespace, _dataclass])
    return st.tuples(kinds, attributes).map(lambda drawn: drawn[0](drawn[1]))


def _namespace(attributes: dict):
    found = SimpleNamespace()
    for name, value in attributes.items():
        setattr(found, name, value)
    return found


def _dataclass(attributes: dict):
    names = [name for name in attributes if name.isidentifier()]
    kind = dataclasses.make_dataclass("Drawn", names, slots=True, frozen=True)
    return kind(**{name: attributes[name] for name in names})


def exact(value):
    """What to compare: types and key order included, all the way down."""
    if isinstance(value, dict):
        return type(value), [(key, exact(item)) for key, item in value.items()]
    if isinstance(value, list):
        return type(value), [exact(item) for item in value]
    return type(value), value


def outcome(dump, obj):
    try:
        return exact(dump(obj))
    except Exception as exc:  # marshmallow's own failures must be the same
        return "raised", type(exc)


def assert_dumps_alike(schema: Schema, obj, *, many: bool = False) -> None:
    generated = outcome(serializer(schema, many=many), obj)
    assert generated == outcome(lambda found: schema.dump(found, many=many), obj)


def answered_schemas(app) -> dict[str, Schema]:
    """Every schema a declared operation answers with (success or problem), by class name,
    walking the routes as the spec builder does; and the problem schemas."""
    found = {
        type(schema).__name__: schema
        for schema in (
            problems.ProblemSchema(),
            problems.MfaRequiredProblemSchema(),
            problems.MfaCodeProblemSchema(),
        )
    }
    for rule in app.url_map.iter_rules():
        view_class = getattr(app.view_functions[rule.endpoint], "view_class", None)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            view = getattr(view_class, method.lower(), None)
            op = declaration(view) if view else None
            for schema in (op.schema, *op.problems.values()) if op else ():
                if schema is not None:
                    found[type(schema).__name__] = schema
    return found


def marshmallow_calls(dump, obj) -> list[str]:
    """The marshmallow functions that dumping `obj` ran."""
    called = []

    def profile(frame, event, _arg):
        if event == "call" and "/marshmallow/" in frame.f_code.co_filename:
            called.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        dump(obj)
    finally:
        sys.setprofile(None)
    return called


def test_every_answered_schema_dumps_alike_on_random_objects(app):
    schemas = answered_schemas(app)
    assert {"RecordPublic", "UserPublic", "Tokens", "ChangeEvent", "Jwks", "Introspection"} <= set(
        schemas
    )
    assert {"MfaRequiredProblemSchema", "MfaCodeProblemSchema"} <= set(schemas)
    strategies = {name: objects(schema) for name, schema in schemas.items()}

    @EXAMPLES
    @given(st.data())
    def check(data):
        for name, schema in sorted(schemas.items()):
            obj = data.draw(strategies[name], label=name)
            assert_dumps_alike(schema, obj)
            assert_dumps_alike(schema, [obj, obj], many=True)

    check()


def test_every_answered_schema_is_generated_not_left_to_marshmallow(app):
    for name, schema in answered_schemas(app).items():
        assert hasattr(serializer(schema), "source"), name


def test_a_complete_object_is_dumped_without_marshmallow():
    now = datetime.now(UTC)
    record = {
        "id": uuid.uuid4(),
        "collection": "todos",
        "owner_id": uuid.uuid4(),
        "data": {"title": "milk"},
        "version": 1,
        "created_at": now,
        "updated_at": now,
        "access": "owner",
    }
    dump = serializer(record_public)
    assert dump(record) == record_public.dump(record)
    assert marshmallow_calls(dump, record) == []  # Timestamp's _serialize is in schemas/
    missing_access = {name: value for name, value in record.items() if name != "access"}
    assert "dump" in marshmallow_calls(dump, missing_access)  # marshmallow leaves it out
    assert dump(missing_access) == record_public.dump(missing_access)
    assert "access" not in dump(missing_access)


def test_a_page_of_records_and_a_callers_profile_through_the_app(client, accounts, app):
    account = accounts.create()
    for n in range(3):
        body = {"data": {"n": n, "title": f"ünïcode {n}", "tags": ["a", None], "deep": {"x": []}}}
        created = client.post(f"{API}/data/todos", json=body, headers=account.headers)
        assert created.status_code == 201
    listed = client.get(f"{API}/data/todos", headers=account.headers).get_json()["items"]
    one = client.get(f"{API}/data/todos/{listed[0]['id']}", headers=account.headers).get_json()
    me = client.get(f"{API}/users/me", headers=account.headers).get_json()

    with app.test_request_context():
        caller = tokens.session_caller(uuid.UUID(account.session_id))
        assert isinstance(caller, tokens.Caller)
        record = records.find(caller, "todos", listed[0]["id"])
        assert isinstance(record, dict)  # as DB-API rows are read (api/database/statements.py)
        assert_dumps_alike(user_public, caller)
        assert_dumps_alike(record_public, record)
        assert one == _as_json(record_public.dump(record))
        assert me == _as_json(user_public.dump(caller))
        assert listed[0] == one
        # The generated path is the one taken for both.
        assert marshmallow_calls(serializer(user_public), caller) == []
        assert marshmallow_calls(serializer(record_public), record) == []


def _as_json(dumped):
    return orjson.loads(orjson.dumps(dumped))


class Upper(fields.String):
    """A field type of its own: its _serialize is called, not String's."""

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else str(value).upper()


class FromSecondLetter(fields.Field):
    """A field that reads its value its own way."""

    def get_value(self, obj, attr, accessor=None, default=None):
        value = super().get_value(obj, attr, accessor=accessor)
        return value[1:] if isinstance(value, str) else value


class Leaf(Schema):
    name = fields.String()
    size = fields.Integer(as_string=True)


class Unknown(Schema):
    """Fields the generator writes inline next to ones it must leave to marshmallow."""

    id = fields.UUID()
    method = fields.Method("describe")
    function = fields.Function(lambda obj: type(obj).__name__)
    constant = fields.Constant(42)
    upper = Upper(data_key="UPPER")
    second = FromSecondLetter()
    dotted = fields.String(attribute="leaf.name")
    renamed = fields.String(attribute="original", data_key="shown")
    defaulted = fields.Integer(dump_default=7)
    price = fields.Decimal()
    ratio = fields.Float()
    email = fields.Email()
    url = fields.Url()
    stamp = fields.DateTime()
    flags = fields.Dict(keys=fields.String(), values=fields.Integer())
    grid = fields.List(fields.List(fields.Integer()))
    leaf = fields.Nested(Leaf)
    leaves = fields.List(fields.Nested(Leaf, only=("name",)))
    many_leaves = fields.Nested(Leaf, many=True, exclude=("size",))
    plucked = fields.Pluck(Leaf, "name")
    secret = fields.String(load_only=True)
    shown_only = fields.String(dump_only=True)
    tree = fields.Nested(lambda: Unknown(only=("id", "tree")))

    def describe(self, obj):
        return type(obj).__name__


class Hooked(Schema):
    name = fields.String()

    @pre_dump
    def _trimmed(self, obj, **_kwargs):
        return {"name": obj["name"].strip()} if isinstance(obj, dict) and obj.get("name") else obj

    @post_dump
    def _counted(self, data, **_kwargs):
        return {**data, "count": len(data)}


class OwnAccessor(Schema):
    name = fields.String()

    def get_attribute(self, obj, attr, default):
        return f"<{attr}>"


def test_fields_and_schemas_it_does_not_know_dump_alike():
    zoo = [Unknown(), Unknown(exclude=("method",)), Hooked(), OwnAccessor(), Leaf(many=True)]
    decimals = st.decimals(allow_nan=False, allow_infinity=False, places=2)
    extras = {"price": decimals, "leaf": objects(Leaf()), "original": text}
    strategies = [objects(schema) for schema in zoo[:-1]]
    strategies[0] = st.tuples(strategies[0], st.fixed_dictionaries({}, optional=extras)).map(_with)

    @EXAMPLES
    @given(st.data())
    def check(data):
        for schema, strategy in zip(zoo[:-1], strategies, strict=True):
            assert_dumps_alike(schema, data.draw(strategy))
        leaves = data.draw(st.none() | st.lists(objects(Leaf()), max_size=3))
        assert_dumps_alike(zoo[-1], leaves)

    check()
    assert not hasattr(serializer(Hooked()), "source")  # left to schema.dump
    assert not hasattr(serializer(OwnAccessor()), "source")
    assert serializer(OwnAccessor())({}) == {"name": "<name>"}
    assert serializer(Hooked())({"name": " a "}) == {"name": "a", "count": 1}


def _with(drawn):
    """An object of `Unknown` given the attributes only a few of its fields read."""
    obj, more = drawn
    if isinstance(obj, SimpleNamespace):
        for name, value in more.items():
            setattr(obj, name, value)
        return obj
    if isinstance(obj, dict):
        return {**obj, **more}
    return obj


def test_an_exact_value_of_each_field_kind():
    """Spot checks whose answers are known, so that 'alike' is not 'alike and wrong'."""
    stamp = datetime(2026, 11, 21, 10, 0, 0, 123456, tzinfo=UTC)
    obj = {
        "id": uuid.UUID(int=1),
        "method": None,
        "upper": "abc",
        "second": "xyz",
        "leaf": {"name": b"caf\xc3\xa9", "size": True},
        "original": Text("t"),
        "price": decimal.Decimal("1.50"),
        "ratio": 2,
        "stamp": stamp,
        "flags": {1: "2"},
        "grid": [[True, "3"], None],
        "leaves": [None, {"name": 5, "size": 1}],
        "many_leaves": [{"name": "m", "size": 1}],
        "plucked": {"name": "p"},
        "tree": {"id": None, "tree": None},
    }
    dumped = serializer(Unknown())(obj)
    assert dumped == Unknown().dump(obj)
    assert dumped["id"] == "00000000-0000-0000-0000-000000000001"
    assert dumped["UPPER"] == "ABC" and dumped["second"] == "yz"
    assert dumped["dotted"] == "café" and dumped["leaf"] == {"name": "café", "size": "1"}
    assert type(dumped["shown"]) is str and dumped["defaulted"] == 7
    assert type(dumped["ratio"]) is float and dumped["flags"] == {"1": 2}
    assert dumped["grid"] == [[1, 3], None] and dumped["leaves"] == [None, {"name": "5"}]
    assert dumped["stamp"] == "2026-11-21T10:00:00.123456+00:00"
    assert "secret" not in dumped and dumped["tree"] == {"id": None, "tree": None}
