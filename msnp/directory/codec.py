"""
The directory's values (events, endpoint and presence records, switchboard
tickets) as JSON, for a directory shared by several processes.

Values are attrs classes of msnp holding plain data: strings, numbers,
booleans, None, bytes, tuples, lists, dicts, frozensets and other such
classes.  Fields compared by nothing (C{eq=False}: the per-process render
caches of events) stay behind.  Only attrs classes under C{msnp.} are made
from what is read back.
"""

from __future__ import annotations

import base64
from collections.abc import KeysView
import importlib
import json

import attrs

_TRUSTED_PREFIX = "msnp."


class DecodeError(ValueError):
    """
    What was read is not a value this codec wrote.
    """


def dumps(value) -> str:
    return json.dumps(_encode(value), separators=(",", ":"))


def loads(text) -> object:
    try:
        return _decode(json.loads(text))
    except DecodeError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise DecodeError(str(error))


def _encode(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, bytes):
        return {"$b": base64.b64encode(value).decode("ascii")}
    if isinstance(value, (frozenset, set, KeysView)):
        return {"$s": [_encode(item) for item in sorted(value, key=repr)]}
    if isinstance(value, tuple):
        return {"$t": [_encode(item) for item in value]}
    if isinstance(value, list):
        return [_encode(item) for item in value]
    if isinstance(value, dict):
        return {"$d": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if attrs.has(type(value)):
        cls = type(value)
        fields = {
            field.name: _encode(getattr(value, field.name)) for field in attrs.fields(cls) if field.eq and field.init
        }
        return {"$a": f"{cls.__module__}:{cls.__qualname__}", "f": fields}
    raise TypeError(f"cannot encode {type(value).__name__}")


def _decode(value):
    if isinstance(value, list):
        return [_decode(item) for item in value]
    if not isinstance(value, dict):
        return value
    if "$b" in value:
        return base64.b64decode(value["$b"])
    if "$s" in value:
        return frozenset(_decode(item) for item in value["$s"])
    if "$t" in value:
        return tuple(_decode(item) for item in value["$t"])
    if "$d" in value:
        return {_decode(k): _decode(v) for k, v in value["$d"]}
    if "$a" in value:
        cls = _class(value["$a"])
        return cls(**{name: _decode(item) for name, item in value["f"].items()})
    raise DecodeError(f"untagged object {sorted(value)}")


def _class(path: str):
    module_name, _, qualname = path.partition(":")
    if not module_name.startswith(_TRUSTED_PREFIX):
        raise DecodeError(f"not a class of msnp: {path}")
    target = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    if not (isinstance(target, type) and attrs.has(target)):
        raise DecodeError(f"not a record class: {path}")
    return target
