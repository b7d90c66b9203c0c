"""YAML configs: safe loading that remembers ``file:line`` for every value, ``include:``,
``--set`` overrides, and validation of a mapping against a typed signature.

A config document is plain data (dicts, lists, scalars) plus a map from each value's path
(a tuple of keys and list indices) to where it was written. Validation checks a mapping
against a dataclass or a constructor signature, so a reader, protocol or stage declares
its parameters once, as typed arguments, and the YAML is checked against them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.errors import ConfigError, closest, unknown_name

Key = tuple  # path of keys / indices into a document


@dataclass
class Origin:
    """Where a value was written: a file and line, or a command-line option."""

    file: str
    line: int | None = None
    base_dir: Path = field(default_factory=Path.cwd)  # relative paths resolve against this

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line is not None else self.file


@dataclass
class Doc:
    """A loaded config: ``data`` and the :class:`Origin` of each value by path."""

    data: dict
    origins: dict[Key, Origin]
    path: Path | None = None

    def origin(self, key: Key) -> Origin:
        """Origin of ``key`` or of its nearest written ancestor."""
        for n in range(len(key), -1, -1):
            if key[:n] in self.origins:
                return self.origins[key[:n]]
        return Origin(str(self.path) if self.path else "<config>")

    def where(self, key: Key) -> str:
        return str(self.origin(key))

    def digest(self) -> str:
        """sha256 of the canonical JSON of the data (key order does not matter)."""
        return hashlib.sha256(json.dumps(self.data, sort_keys=True, default=str).encode()).hexdigest()


# --------------------------------------------------------------------------- loading


MAX_DEPTH = 64  # nesting levels a config may use; shipped configs use fewer than 8


CORE = "tag:yaml.org,2002:"
#: Explicit tags a config may carry: the JSON-like core types. Any other (``!!python/...``, ``!!set``,
#: ``!custom``) is refused, on scalars, mappings and sequences alike, rather than ignored or half-applied.
STANDARD_TAGS = frozenset(CORE + t for t in ("str", "int", "float", "bool", "null", "map", "seq"))


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses aliases (they can expand exponentially, the "billion laughs", and are
    never needed), non-standard tags (:data:`STANDARD_TAGS`) and nesting deeper than :data:`MAX_DEPTH`
    (PyYAML composes recursively, so ``[[[[...`` thousands deep would end in a RecursionError)."""

    depth = 0

    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
        mark = self.peek_event().start_mark
        where = f"{mark.name}:{mark.line + 1}"
        if self.check_event(yaml.AliasEvent):
            raise ConfigError("YAML anchors and aliases are not supported; use 'include:' to share settings", where)
        if self.depth >= MAX_DEPTH:
            raise ConfigError(f"YAML nested deeper than {MAX_DEPTH} levels", where)
        tag = getattr(self.peek_event(), "tag", None)
        if tag not in (None, "!") and tag not in STANDARD_TAGS:
            shown = tag.replace(CORE, "!!", 1) if tag.startswith(CORE) else tag
            raise ConfigError(f"YAML tag {shown} is not supported: a config holds plain mappings, lists, strings, numbers, "
                              "booleans and nulls (remove the tag)", where)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _read_yaml(path: Path) -> Doc:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"file not found: {path}") from None
    except (IsADirectoryError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    loader = _Loader(text)
    loader.name = str(path)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise ConfigError(f"invalid YAML: {exc.problem}", f"{path}:{mark.line + 1 if mark else '?'}") from None
    finally:
        loader.dispose()
    origins: dict[Key, Origin] = {}
    if node is None:
        raise ConfigError("empty YAML file", f"{path}:1")
    data = _construct(node, (), path, origins, loader)
    if not isinstance(data, dict):
        raise ConfigError("top level must be a mapping of keys to values", f"{path}:{node.start_mark.line + 1}")
    return Doc(data, origins, path)


def _construct(node: yaml.Node, key: Key, path: Path, origins: dict, loader: _Loader) -> Any:
    origins[key] = Origin(str(path), node.start_mark.line + 1, path.parent)
    if isinstance(node, yaml.MappingNode):
        out: dict = {}
        for knode, vnode in node.value:
            k = loader.construct_object(knode)
            if not isinstance(k, (str, int)):
                raise ConfigError(f"mapping keys must be names, got {k!r}", f"{path}:{knode.start_mark.line + 1}")
            if k in out:
                raise ConfigError(f"duplicate key '{k}'", f"{path}:{knode.start_mark.line + 1}")
            out[k] = _construct(vnode, key + (k,), path, origins, loader)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(v, key + (i,), path, origins, loader) for i, v in enumerate(node.value)]
    return loader.construct_object(node)


def load_yaml(path: str | Path, _seen: tuple[Path, ...] = ()) -> Doc:
    """Load a YAML config, resolving ``include:`` (a path or list of paths, relative to the file).

    Included files are merged first, in order; the including file's values win. Mappings are
    merged key by key, everything else is replaced.
    """
    path = Path(path).resolve()
    if path in _seen:
        raise ConfigError(f"include cycle: {' -> '.join(map(str, _seen + (path,)))}")
    doc = _read_yaml(path)
    check_name(doc.data.get("name"), doc.where(("name",)))
    includes = doc.data.pop("include", None)
    if includes is None:
        return doc
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise ConfigError("'include' must be a path or a list of paths", doc.where(("include",)))
    merged = Doc({}, {}, path)
    for i, inc in enumerate(includes):
        where = doc.where(("include", i))
        inc_path = path.parent / inc
        if not inc_path.is_file():
            raise ConfigError(f"included file not found: {inc_path}", where)
        _merge(merged, load_yaml(inc_path, _seen + (path,)))
    _merge(merged, Doc(doc.data, {k: v for k, v in doc.origins.items() if k[:1] != ("include",)}, path))
    return merged


def check_name(value: Any, where: str) -> None:
    """Raise ConfigError unless a config's top-level ``name`` can name a results folder and file.

    Suite and pipeline names become folder names (``results/<suite>/``, ``visuals/<pipeline>/``),
    so a name may not be blank, ``.`` or ``..``, nor hold ``/``, ``\\`` or control characters; any
    other text (spaces, quotes, ``<``, ``$``, ``;``) is kept as written and escaped where shown.
    A value that is not a string is left to the type check of :func:`build`.
    """
    if not isinstance(value, str):
        return
    bad = sorted({c for c in value if c in "/\\" or ord(c) < 32 or ord(c) == 127})
    if value.strip() in ("", ".", "..") or bad:
        why = f"it holds {', '.join(map(repr, bad))}" if bad else "it is blank, '.' or '..'"
        raise ConfigError(f"name {value!r} cannot name a results folder: {why}", where)


def _merge(into: Doc, other: Doc) -> None:
    def rec(a: dict, b: dict, key: Key) -> None:
        for k, v in b.items():
            if isinstance(v, dict) and isinstance(a.get(k), dict):
                rec(a[k], v, key + (k,))
            else:
                for old in [o for o in into.origins if o[: len(key) + 1] == key + (k,)]:
                    del into.origins[old]
                a[k] = v
        into.origins.update({p: o for p, o in other.origins.items() if p[: len(key)] == key})

    rec(into.data, other.data, ())


def apply_overrides(doc: Doc, assignments: list[str]) -> None:
    """Apply ``dotted.key=value`` overrides in place; values are parsed as YAML scalars/lists."""
    for text in assignments:
        origin = Origin(f"--set {text}")
        name, sep, raw = text.partition("=")
        if not sep or not name:
            raise ConfigError("--set expects dotted.key=value", str(origin))
        loader = _Loader(raw)
        loader.name = str(origin)
        try:
            value = loader.get_single_data() if raw else ""
        except yaml.YAMLError as exc:
            why = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(f"cannot parse value {raw!r} as YAML: {why}", str(origin)) from None
        finally:
            loader.dispose()
        parts: list = [int(p) if p.isdigit() else p for p in name.split(".")]
        node: Any = doc.data
        for i, part in enumerate(parts[:-1]):
            if isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
            elif isinstance(node, dict):
                node = node.setdefault(part, {})
            else:
                raise ConfigError(f"cannot set '{name}': '{'.'.join(map(str, parts[:i + 1]))}' is not a mapping", str(origin))
        last = parts[-1]
        if parts == ["name"]:
            check_name(value, str(origin))
        for stale in [k for k in doc.origins if k[: len(parts)] == tuple(parts)]:
            del doc.origins[stale]  # the replaced value's parts were written elsewhere
        if isinstance(node, list) and isinstance(last, int) and last < len(node):
            node[last] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise ConfigError(f"cannot set '{name}'", str(origin))
        doc.origins[tuple(parts)] = origin


# --------------------------------------------------------------------------- validation


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, doc: Doc, key: Key) -> Any:
    """Check ``value`` against annotation ``tp``; convert paths and nested dataclasses."""
    where = doc.where(key)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any or tp is inspect.Parameter.empty:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, doc, key)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is typing.Literal:
        if value in args:
            return value
        raise ConfigError(f"'{value}' is not one of {list(args)}", where, closest(str(value), map(str, args)))
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"expected a list, got {type(value).__name__} {value!r}", where)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"expected {len(args)} values, got {len(value)}: {value!r}", where)
            return tuple(_coerce(v, a, doc, key + (i,)) for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        out = [_coerce(v, item, doc, key + (i,)) for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"expected a mapping, got {type(value).__name__} {value!r}", where)
        if len(args) == 2:
            return {_coerce(k, args[0], doc, key): _coerce(v, args[1], doc, key + (k,)) for k, v in value.items()}
        return value
    if dataclasses.is_dataclass(tp):
        return build(tp, value, doc, key)
    if tp is Path:
        if not isinstance(value, str):
            raise ConfigError(f"expected a path, got {value!r}", where)
        return (doc.origin(key).base_dir / value).resolve()
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool):
        if isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
            return value
        raise ConfigError(f"expected {tp.__name__}, got {type(value).__name__} {value!r}", where)
    raise TypeError(f"unsupported annotation {tp!r} at {where}")  # a bug in our schema, not the user's


def parameters(target: Any) -> dict[str, tuple[Any, Any]]:
    """Typed parameters of a class or function: name -> (annotation, default or Parameter.empty)."""
    func = target.__init__ if inspect.isclass(target) else target
    hints = typing.get_type_hints(func)
    sig = inspect.signature(target)
    return {
        n: (hints.get(n, Any), p.default)
        for n, p in sig.parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def coerce_kwargs(target: Any, mapping: Any, doc: Doc, key: Key = (), skip: tuple[str, ...] = (), provided: tuple[str, ...] = ()) -> dict:
    """Check ``mapping`` against ``target``'s typed signature and return the converted keyword arguments.

    ``skip`` names keys of ``mapping`` that are consumed by the caller (e.g. ``reader:``);
    ``provided`` names arguments the harness supplies itself, which the YAML may not set.
    """
    if not isinstance(mapping, dict):
        raise ConfigError(f"expected a mapping, got {type(mapping).__name__} {mapping!r}", doc.where(key))
    settable = {n: v for n, v in parameters(target).items() if n not in provided}
    kwargs = {}
    for name, value in mapping.items():
        if name in skip:
            continue
        if name not in settable:
            raise unknown_name("key", name, list(settable) + list(skip), doc.where(key + (name,)))
        kwargs[name] = _coerce(value, settable[name][0], doc, key + (name,))
    missing = [n for n, (_, d) in settable.items() if d is inspect.Parameter.empty and n not in kwargs]
    if missing:
        raise ConfigError(f"missing required key '{missing[0]}'", doc.where(key))
    return kwargs


def build(target: Any, mapping: Any, doc: Doc, key: Key = (), skip: tuple[str, ...] = (), **given: Any) -> Any:
    """Call ``target`` (dataclass, class or function) with ``mapping`` checked against its signature.

    ``given`` are arguments the harness supplies itself and the YAML may not set.
    """
    return target(**given, **coerce_kwargs(target, mapping, doc, key, skip, tuple(given)))
