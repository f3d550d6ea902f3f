"""Self-describing components: constructor parameters, JSON specs, and rebuilding from a spec.

Spaces, estimators and strategies derive from :class:`Configurable`. Each instance remembers the
arguments its constructor was called with (bound to the constructor's signature, defaults filled
in), so it can say how it was made:

- ``obj.get_params()``: ``{parameter: value}`` for every constructor parameter;
- ``obj.spec()``: the same as plain JSON data, ``{"class": "module:QualName", "params": {...}}``,
  with nested components written as nested specs;
- :func:`from_spec`: the object rebuilt from such a spec.

A constructor that forwards ``**kwargs`` to its parent's constructor has the parent's parameters
too (the signatures are flattened along the class hierarchy), so a subclass need not repeat them;
it must pass those keyword arguments on unchanged. A constructor that turns an argument into a
canonical form (a list of architecture strings, rung levels computed from a range) reports that
form with :meth:`Configurable._settle_params`, so rebuilding from ``get_params()`` gives the same
object.

Only classes of the ``nasforge`` package (and callables registered with :func:`register`) are
rebuilt: a spec is data, and data read from a file or a database must not import arbitrary code.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import numpy as np

from nasforge.errors import NasforgeError

T = TypeVar("T")

_P = inspect.Parameter
#: extra rebuildable callables: "module:QualName" -> class or factory function
_REGISTRY: dict[str, Callable[..., Any]] = {}
#: flattened constructor signature per class (None: no constructor of its own anywhere)
_SIGNATURES: weakref.WeakKeyDictionary[type, inspect.Signature | None] = weakref.WeakKeyDictionary()


# --- constructor signatures ---------------------------------------------------------------------
def constructor_signature(cls: type) -> inspect.Signature | None:
    """The parameters ``cls(...)`` accepts, ``self`` left out.

    Where a constructor takes ``**kwargs``, the parameters of the next constructor up the class
    hierarchy are added as keyword-only parameters (those not already named), and so on until a
    constructor without ``**kwargs``; a ``**kwargs`` left at the end stays. ``None`` when no class
    of the hierarchy below ``object`` defines ``__init__``.
    """
    try:
        return _SIGNATURES[cls]
    except KeyError:
        pass
    params: list[inspect.Parameter] = []
    names: set[str] = set()
    var_kw: inspect.Parameter | None = None
    found = False
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if klass is object or init is None:
            continue
        try:
            own = list(inspect.signature(init).parameters.values())[1:]  # drop self
        except (TypeError, ValueError):  # not introspectable: describe nothing rather than guess
            _SIGNATURES[cls] = None
            return None
        inherited = found
        found, var_kw = True, None
        for p in own:
            if p.kind is _P.VAR_KEYWORD:
                var_kw = p
                continue
            if p.name in names:
                continue
            if inherited:  # reachable only by keyword, through the subclass's **kwargs
                if p.kind in (_P.VAR_POSITIONAL, _P.POSITIONAL_ONLY):
                    continue
                p = p.replace(kind=_P.KEYWORD_ONLY)
            params.append(p)
            names.add(p.name)
        if var_kw is None:
            break
    if not found:
        sig = None
    else:
        sig = inspect.Signature(params + ([var_kw] if var_kw is not None else []))
    _SIGNATURES[cls] = sig
    return sig


def _bound_params(sig: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    bound = sig.bind(*args, **kwargs)
    bound.apply_defaults()
    out: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        kind = sig.parameters[name].kind
        if kind is _P.VAR_KEYWORD:
            out.update(value)  # a catch-all flattens into ordinary parameters
        elif kind is _P.VAR_POSITIONAL:
            out[name] = tuple(value)
        else:
            out[name] = value
    return out


class Configurable:
    """Base of components that describe themselves by their constructor arguments.

    Capturing happens in ``__new__``, before any ``__init__`` runs, so subclasses need no code
    for it. ``get_params()`` returns what the constructor was given (defaults filled in, values
    settled by :meth:`_settle_params`); ``spec()`` the same as JSON-able data.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        obj = super().__new__(cls)
        sig = constructor_signature(cls)
        if sig is None:
            if args or kwargs:  # what object.__init__ would say had __new__ not been overridden
                raise TypeError(f"{cls.__name__}() takes no arguments")
            params: dict[str, Any] | None = {}
        else:
            try:
                params = _bound_params(sig, args, kwargs)
            except TypeError:
                # a wrong call (the constructor itself reports it), or unpickling/copying, which
                # creates the object without arguments and then restores its attributes
                params = None
        if params is not None:
            object.__setattr__(obj, "_init_params", params)
        return obj

    def get_params(self) -> dict[str, Any]:
        """``{parameter: value}`` for every constructor parameter (a new dict each call)."""
        params = self.__dict__.get("_init_params")
        if params is None:
            raise NasforgeError(f"{type(self).__name__} object was not made by calling its class; "
                                "its constructor parameters are unknown")
        return dict(params)

    def spec(self, skip: Iterable[str] = ()) -> dict[str, Any]:
        """This object as JSON-able data: ``{"class": "module:QualName", "params": {...}}``.

        Nested components become nested specs, numpy scalars Python numbers, tuples lists, paths
        strings. A parameter that plain data cannot hold (a function, a tensor, a dataset, an
        array) is an error naming it, unless ``skip`` lists it: skipped parameters are left out
        (the rebuilt object then gets their defaults). ``skip`` names parameters of this object;
        ``"space.ops"`` names parameter ``ops`` of the component held in parameter ``space``.
        """
        skip = (skip,) if isinstance(skip, str) else tuple(skip)
        return _spec(self, skip, "")

    def _settle_params(self, **values: Any) -> None:
        """Report the canonical form a constructor gave some of its arguments (call it from
        ``__init__``): ``get_params()`` and ``spec()`` then show those values."""
        params = self.__dict__.get("_init_params")
        if params is None:
            return
        unknown = [k for k in values if k not in params]
        if unknown:
            raise TypeError(f"{type(self).__name__} has no constructor parameter(s) {', '.join(unknown)}")
        params.update(values)


def parameter_defaults(cls: type) -> dict[str, Any]:
    """Default of each constructor parameter of ``cls`` (``inspect.Parameter.empty`` if required)."""
    sig = constructor_signature(cls)
    return {} if sig is None else {name: p.default for name, p in sig.parameters.items()}


# --- specs --------------------------------------------------------------------------------------
def class_path(obj: Any) -> str:
    """``"module:QualName"`` of a class or function."""
    return f"{obj.__module__}:{obj.__qualname__}"


def built_by(obj: T, factory: Callable[..., Any], **params: Any) -> T:
    """Record that ``obj`` is what ``factory(**params)`` returns, and return ``obj``.

    Its :meth:`~Configurable.spec` then names the factory (which must be registered with
    :func:`register`) instead of the class: the way to describe an object whose constructor
    arguments are bulky data (a benchmark table) but whose recipe is short (its name).
    """
    object.__setattr__(obj, "_built_by", (class_path(factory), dict(params)))
    return obj


def _spec(obj: Configurable, skip: tuple[str, ...], prefix: str) -> dict[str, Any]:
    made = obj.__dict__.get("_built_by")
    if made is not None:
        name, params = made
    else:
        name, params = class_path(type(obj)), obj.get_params()
    out = {}
    for key, value in params.items():
        path = prefix + key
        if path not in skip:
            out[key] = _plain(value, path, skip, type(obj), path)
    return {"class": name, "params": out}


def _plain(value: Any, path: str, skip: tuple[str, ...], owner: type | None, param: str) -> Any:
    """``value`` as plain data; ``path`` locates it for messages, ``param`` is the parameter (of
    ``owner``, a Configurable class) that holds it, as ``spec(skip=...)`` names it."""
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, (np.bool_, np.integer, np.floating)):
        return value.item()
    if isinstance(value, Configurable):
        return _spec(value, skip, path + ".")
    if type(value) in (list, tuple):
        return [_plain(v, f"{path}[{i}]", skip, owner, param) for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _plain(v, f"{path}[{k!r}]", skip, owner, param) for k, v in value.items()}
    if isinstance(value, os.PathLike):
        text = os.fspath(value)
        if isinstance(text, str):
            return text
    if owner is None:
        raise NasforgeError(f"{path} holds a {type(value).__name__}, which is not plain (JSON) data")
    raise NasforgeError(
        f"{owner.__name__} parameter {path!r} holds a {type(value).__name__}, which a spec cannot represent as "
        f"plain data; leave it out with spec(skip=({param!r},)) and pass it to from_spec when rebuilding"
    )


def jsonable(value: Any, name: str = "value") -> Any:
    """``value`` as plain JSON data (the conversion :meth:`Configurable.spec` applies to each
    parameter); a :class:`NasforgeError` naming ``name`` when it cannot be."""
    return _plain(value, name, (), None, name)


def register(obj: T, name: str | None = None) -> T:
    """Allow :func:`from_spec` to rebuild ``obj`` (a class or a factory function) from outside the
    ``nasforge`` package; usable as a decorator. ``name`` defaults to ``"module:QualName"``."""
    if not callable(obj):
        raise TypeError(f"register() takes a class or a function, got {obj!r}")
    _REGISTRY[name or class_path(obj)] = obj
    return obj


def _resolve(name: str) -> Callable[..., Any]:
    if name in _REGISTRY:
        return _REGISTRY[name]
    module, sep, qual = name.partition(":")
    if not sep or not module or not qual:
        raise NasforgeError(f"bad class {name!r} in spec: expected 'module:QualName'")
    if module != "nasforge" and not module.startswith("nasforge."):
        raise NasforgeError(
            f"refusing to rebuild {name!r}: a spec may name only nasforge classes and classes registered with "
            "nasforge.params.register()"
        )
    try:
        target: Any = importlib.import_module(module)
    except ImportError as exc:
        raise NasforgeError(f"cannot rebuild {name!r}: {exc}") from None
    for part in qual.split("."):
        target = getattr(target, part, None) if part.isidentifier() else None
        if target is None:
            raise NasforgeError(f"cannot rebuild {name!r}: module {module!r} has no {qual!r}")
    if _REGISTRY.get(name) is target:  # registered when its module was imported
        return target
    if not (isinstance(target, type) and issubclass(target, Configurable)):
        raise NasforgeError(f"refusing to rebuild {name!r}: it is not a configurable nasforge class")
    return target


def _is_spec(value: Any) -> bool:
    return (isinstance(value, dict) and set(value) == {"class", "params"} and isinstance(value["class"], str)
            and isinstance(value["params"], dict))


def _rebuild(value: Any) -> Any:
    if _is_spec(value):
        return from_spec(value)
    if isinstance(value, list):
        return [_rebuild(v) for v in value]
    if isinstance(value, dict):
        return {k: _rebuild(v) for k, v in value.items()}
    return value


def from_spec(spec: Mapping[str, Any] | str, **overrides: Any) -> Any:
    """The object a spec describes (a dict from :meth:`Configurable.spec`, or its JSON text).

    Nested specs are rebuilt first. ``overrides`` replace or add constructor arguments (as
    objects, not specs), e.g. a parameter left out with ``spec(skip=...)``. Only nasforge classes
    and registered callables are rebuilt; anything else is refused with a :class:`NasforgeError`.
    """
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as exc:
            raise NasforgeError(f"a spec must be JSON: {exc}") from None
    if not _is_spec(spec):
        raise NasforgeError(f"a spec is a dict {{'class': 'module:QualName', 'params': {{...}}}}, got {spec!r:.200}")
    name = spec["class"]
    target = _resolve(name)
    params = {k: _rebuild(v) for k, v in spec["params"].items()}
    params.update(overrides)
    sig = constructor_signature(target) if isinstance(target, type) else inspect.signature(target)
    args: list[Any] = []
    if sig is not None and any(p.kind in (_P.POSITIONAL_ONLY, _P.VAR_POSITIONAL) for p in sig.parameters.values()):
        for p in sig.parameters.values():  # pass the leading parameters by position
            if p.kind is _P.VAR_POSITIONAL:
                args.extend(params.pop(p.name, ()))
                break
            if p.kind not in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD) or p.name not in params:
                break
            args.append(params.pop(p.name))
    if sig is not None:
        try:
            sig.bind(*args, **params)
        except TypeError as exc:
            raise NasforgeError(f"cannot rebuild {name!r} from its spec: {exc}") from None
    return target(*args, **params)


__all__ = ["Configurable", "from_spec", "register", "built_by", "jsonable", "class_path", "constructor_signature",
           "parameter_defaults"]
