"""Serializers generated from the marshmallow schemas, once, when an operation is declared:
each returns what `schema.dump` returns, at a fraction of its cost.

`schema.dump` reaches every value through four calls (the field's serialize and get_value,
the schema's accessor, the field's _serialize); for a page of 20 records that was a large
share of the request. `serializer(schema)` reads the schema's dump fields once and writes
one function that builds the dict in one expression, as a hand-written one would:

    def dump(obj):
        try:
            if <obj has __getitem__> (as marshmallow asks; remembered per type):
                return {"id": None if (v0 := obj["id"]) is None else str(v0), ...}
            return {"id": None if (v1 := obj.id) is None else str(v1), ...}
        except (KeyError, IndexError, TypeError, AttributeError):  # one is missing
            return schema.dump(obj, many=False)

(`dump.source` is the real thing.) It beats a loop over (key, attribute, converter) entries by
10-20%, and marshmallow by 2-3x; what is left is mostly the values' own formatting (a UUID's
str, Timestamp's), which marshmallow does alike.

The schema stays the only description, and marshmallow the reference whenever the function
cannot be sure to agree with it:
- a field whose `_serialize` is one of marshmallow's own (String, UUID, Integer, Float,
  Boolean, Dict, Nested, List and their subclasses that keep it) is written inline; any other
  `_serialize` (Timestamp's, say) is called as marshmallow calls it;
- a field that reads its value its own way (Method, Function, Constant, an overridden
  `serialize` or `get_value`, a dotted `attribute`) is asked by `field.serialize`;
- a schema with dump hooks, its own `get_attribute`, `_serialize` or `dict_class` is dumped
  by `schema.dump`;
- an object that lacks one of the attributes (the key is left out, or the field's
  `dump_default` dumped) is dumped by `schema.dump`: the function raises on the first one.
A Dict's dict is handed on as it is, where marshmallow copies it: equal, and only ever read
(as JSON) after.
Mappings are read by key and other objects by attribute, as marshmallow's `get_value` does.
"""

import functools
import keyword
import linecache
from collections.abc import Callable
from itertools import count
from typing import Any

from marshmallow import Schema, fields, missing
from marshmallow.decorators import POST_DUMP, PRE_DUMP
from marshmallow.utils import ensure_text_type

# What marshmallow's get_value takes for "no such key" before trying the attribute.
_MISSING = (KeyError, IndexError, TypeError, AttributeError)
_generated = count()
# type -> whether its objects are read by key (marshmallow: they have __getitem__).
_KEYED: dict[type, bool] = {}


def serializer(schema: Schema, *, many: bool | None = None) -> Callable[[Any], Any]:
    """A function of one object (a list of them when `many`, by default `schema.many`) that
    returns what `schema.dump(obj, many=many)` returns."""
    return _Writer().serializer(schema, schema.many if many is None else many, ())


def _keyed(obj) -> bool:
    """Whether marshmallow reads `obj` by key first, remembered for its type. (A class, whose
    __getitem__ is its instances', is asked each time.)"""
    keyed = hasattr(obj, "__getitem__")
    if not isinstance(obj, type):
        _KEYED[type(obj)] = keyed
    return keyed


def _text(value):
    """String's `_serialize` of a value that is not a str."""
    return None if value is None else ensure_text_type(value)


def _mapping(value):
    """Dict's `_serialize` of a value that is not a dict."""
    return None if value is None else dict(value)


def _plain(schema: Schema) -> bool:
    """Whether `schema.dump` is the sum of its fields: no hooks, marshmallow's own accessor."""
    kind = type(schema)
    return (
        not schema._hooks[PRE_DUMP]
        and not schema._hooks[POST_DUMP]
        and kind.get_attribute is Schema.get_attribute
        and kind._serialize is Schema._serialize
        and kind.dump is Schema.dump
        and schema.dict_class is dict
    )


def _reads_plainly(field: fields.Field) -> bool:
    """Whether the field's value is `get_value(obj, attribute or name)`, formatted by
    `_serialize`: what the generated code reads itself."""
    kind = type(field)
    return (
        field._CHECK_ATTRIBUTE
        and kind.serialize is fields.Field.serialize
        and kind.get_value is fields.Field.get_value
        and "." not in (field.attribute or "")
    )


def _keeps(field: fields.Field, base: type, *names: str) -> bool:
    """Whether the field formats its value with `base`'s own methods `names`."""
    return isinstance(field, base) and all(
        getattr(type(field), name) is getattr(base, name) for name in names
    )


class _Writer:
    """Writes the source of one schema's function (and of its nested schemas' functions),
    with the objects the source refers to."""

    def __init__(self) -> None:
        self.names: dict[str, Any] = {
            "_MISSING": _MISSING,
            "_missing": missing,
            "_text": _text,
            "_mapping": _mapping,
            "_KEYED": _KEYED,
            "_keyed": _keyed,
        }
        self.counter = count()
        self.made: dict[tuple[str, int], str] = {}

    def fresh(self, prefix: str) -> str:
        return f"{prefix}{next(self.counter)}"

    def refer(self, prefix: str, owner: Any, value: Any) -> str:
        """The name in the generated module of `value`, one per `owner` (a field, a schema)
        and prefix: both branches of the function share it."""
        key = (prefix, id(owner))
        if key not in self.made:
            self.made[key] = self.fresh(prefix)
            self.names[self.made[key]] = value
        return self.made[key]

    def serializer(self, schema: Schema, many: bool, outer: tuple[type, ...]) -> Callable:
        """`outer`: the schema classes this one is nested in (a schema nested in itself is
        left to its Nested field, not unrolled forever)."""
        if not _plain(schema):
            return functools.partial(schema.dump, many=many)
        source = self.function(schema, (*outer, type(schema)))
        filename = f"<serializer {type(schema).__qualname__} #{next(_generated)}>"
        namespace = dict(self.names, _slow=functools.partial(schema.dump, many=False))
        exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - our own source
        lines = source.splitlines(keepends=True)
        linecache.cache[filename] = (len(source), None, lines, filename)  # for tracebacks
        dump = namespace["dump"]
        dump.source = source
        if not many:
            return dump
        return functools.partial(_each, dump, functools.partial(schema.dump, many=True))

    def function(self, schema: Schema, outer: tuple[type, ...]) -> str:
        by_key = self.body(schema, outer, lambda name: f"obj[{name!r}]")
        by_attribute = self.body(schema, outer, _attribute)
        return "\n".join(
            [
                "def dump(obj):",
                "    try:",
                "        keyed = _KEYED.get(type(obj))",
                "        if keyed is None:",
                "            keyed = _keyed(obj)",
                "        if keyed:",
                *(f"            {line}" for line in by_key),
                *(f"        {line}" for line in by_attribute),
                "    except _MISSING:",
                "        return _slow(obj)",
                "",
            ]
        )

    def body(self, schema: Schema, outer: tuple[type, ...], read: Callable[[str], str]):
        """The lines that build and return the dict, each value read by `read(attribute)`:
        one dict display, then a statement for each field after the first that marshmallow
        has to ask (its key may be left out)."""
        members: list[str] = []
        statements: list[str] = []
        for name, field in schema.dump_fields.items():
            key = name if field.data_key is None else field.data_key
            if not _reads_plainly(field):
                asked = self.refer("_serialize", field, field.serialize)
                getter = self.refer("_get", schema, schema.get_attribute)
                statements += [
                    f"value = {asked}({name!r}, obj, accessor={getter})",
                    f"if value is not _missing: out[{key!r}] = value",
                ]
                continue
            attribute = name if field.attribute is None else field.attribute
            value = self.convert(field, read(attribute), name, outer)
            if statements:
                statements.append(f"out[{key!r}] = {value}")
            else:
                members.append(f"{key!r}: {value}")
        display = "{" + ", ".join(members) + "}"
        if not statements:
            return [f"return {display}"]
        return [f"out = {display}", *statements, "return out"]

    def convert(self, field: fields.Field, source: str, name: str, outer) -> str:
        """An expression of `field._serialize(source, name, obj)`."""
        if _keeps(field, fields.Field, "_serialize"):  # Boolean, Raw: the value as it is
            return source
        first, again = self.bind(source)
        if _keeps(field, fields.String, "_serialize"):
            return f"({again} if {first}.__class__ is str else _text({again}))"
        if _keeps(field, fields.UUID, "_serialize"):
            return f"(None if {first} is None else str({again}))"
        if _keeps(field, fields.Number, "_serialize", "_format_num", "_to_string") and (
            field.num_type in (int, float)
        ):
            number = f"{field.num_type.__name__}({again})"
            return f"(None if {first} is None else {_as_string(field, number)})"
        if (
            _keeps(field, fields.Mapping, "_serialize")
            and field.mapping_type is dict
            and field.key_field is None
            and field.value_field is None
        ):  # the same dict, not a copy: it is only read, as JSON, after
            return f"({again} if {first}.__class__ is dict else _mapping({again}))"
        if _keeps(field, fields.List, "_serialize"):
            item = self.fresh("item")
            each = self.convert(field.inner, item, name, outer)
            return f"(None if {first} is None else [{each} for {item} in {again}])"
        if _keeps(field, fields.Nested, "_serialize", "schema"):
            if type(field.schema) not in outer:
                dump = self.nested(field, outer)
                return f"(None if {first} is None else {dump}({again}))"
        own = self.refer("_format", field, field._serialize)
        return f"{own}({source}, {name!r}, obj)"

    def nested(self, field: fields.Nested, outer: tuple[type, ...]) -> str:
        """The name of the function that dumps a Nested field's value, generated once."""
        key = ("_nested", id(field))
        if key not in self.made:
            many = bool(field.schema.many or field.many)
            self.refer("_nested", field, self.serializer(field.schema, many, outer))
        return self.made[key]

    def bind(self, source: str) -> tuple[str, str]:
        """(the first use, the later uses) of a value read once."""
        if source.isidentifier():
            return source, source
        name = self.fresh("v")
        return f"({name} := {source})", name


def _attribute(name: str) -> str:
    if name.isidentifier() and not keyword.iskeyword(name):
        return f"obj.{name}"
    return f"getattr(obj, {name!r})"


def _as_string(field: fields.Number, number: str) -> str:
    return f"str({number})" if field.as_string else number


def _each(dump: Callable, slow: Callable, items) -> list:
    """`dump` of each item; None as marshmallow dumps it."""
    if items is None:
        return slow(items)
    return [dump(item) for item in items]
