"""kubectl's label selectors (``-l``): ``a=b``, ``a==b``, ``a!=b``, ``a``, ``!a``,
``a in (x,y)``, ``a notin (x)``, ``a>1``, ``a<1``, a comma between requirements meaning AND.

The grammar, the lexer's quirks (``in`` is a value where a value is expected) and the error
texts are those of ``k8s.io/apimachinery/pkg/labels``, so that a selector kjob refuses reads
as the API server's answer to ``kubectl get -l``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NamedTuple

__all__ = ["Requirement", "Selector", "parse_selector", "selector_of"]

_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

_NAME_MESSAGE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
_VALUE_MESSAGE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
    "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
_SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


def _key_errors(key: str) -> list[str]:
    """``validation.IsQualifiedName``: ``[prefix/]name``."""
    parts = key.split("/")
    if len(parts) == 1:
        name = parts[0]
        errors: list[str] = []
    elif len(parts) == 2:
        prefix, name = parts
        errors = []
        if not prefix:
            errors.append("prefix part must be non-empty")
        elif len(prefix) > 253:
            errors.append("prefix part must be no more than 253 characters")
        elif not _DNS_SUBDOMAIN.match(prefix):
            errors.append("prefix part " + _SUBDOMAIN_MESSAGE)
    else:
        return [
            "a qualified name "
            + _NAME_MESSAGE.removeprefix("name part ")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > 63:
        errors.append("name part must be no more than 63 characters")
    if name and not _NAME.match(name):
        errors.append(_NAME_MESSAGE)
    return errors


def _value_errors(value: str) -> list[str]:
    errors = []
    if len(value) > 63:
        errors.append("must be no more than 63 characters")
    if not _VALUE.match(value):
        errors.append(_VALUE_MESSAGE)
    return errors


class Requirement(NamedTuple):
    """One requirement of a selector: ``key``, an operator (``=``, ``==``, ``!=``, ``in``,
    ``notin``, ``exists``, ``!``, ``gt``, ``lt``) and its values, sorted."""

    key: str
    operator: str
    values: tuple[str, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy the requirement, as ``labels.Requirement.Matches``."""
        present = self.key in labels
        if self.operator in ("=", "==", "in"):
            return present and labels[self.key] in self.values
        if self.operator in ("!=", "notin"):
            return not present or labels[self.key] not in self.values
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        # gt, lt: an integer label compared with the requirement's integer.
        if not present:
            return False
        try:
            have = int(labels[self.key])
        except ValueError:
            return False
        want = int(self.values[0])
        return have > want if self.operator == "gt" else have < want

    def __str__(self) -> str:
        if self.operator == "exists":
            return self.key
        if self.operator == "!":
            return f"!{self.key}"
        if self.operator in ("in", "notin"):
            return f"{self.key} {self.operator} ({','.join(self.values)})"
        symbol = {"gt": ">", "lt": "<"}.get(self.operator, self.operator)
        return f"{self.key}{symbol}{self.values[0]}"


class Selector(NamedTuple):
    """A parsed selector: every requirement must hold (an empty one matches everything)."""

    requirements: tuple[Requirement, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


# Tokens, named as the Go lexer names them.
_EOS, _ERROR, _IDENT = "end", "error", "identifier"
_SYMBOLS = {
    ")": ")",
    ",": ",",
    "!": "!",
    "==": "==",
    "=": "=",
    ">": ">",
    "<": "<",
    "!=": "!=",
    "(": "(",
}
_KEYWORDS = {"in", "notin"}
_SPECIAL = set("=!(),><")
_SPACE = set(" \t\r\n")


def _lex(text: str) -> list[tuple[str, str]]:
    """The whole input as (token, literal) pairs, ending with the end-of-string token."""
    items: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in _SPACE:
            i += 1
        if i >= n:
            items.append((_EOS, ""))
            return items
        if text[i] in _SPECIAL:
            # The longest run of symbols that is still an operator ("!=" before "!").
            j, last = i, None
            while j < n and text[j] in _SPECIAL:
                if text[i : j + 1] in _SYMBOLS:
                    last = j + 1
                elif last is not None:
                    break
                j += 1
            if last is None:
                items.append((_ERROR, f"error expected: keyword found '{text[i:j]}'"))
                i = j
            else:
                items.append((_SYMBOLS[text[i:last]], text[i:last]))
                i = last
        else:
            j = i
            while j < n and text[j] not in _SPECIAL and text[j] not in _SPACE:
                j += 1
            word = text[i:j]
            items.append((word if word in _KEYWORDS else _IDENT, word))
            i = j


class _Parser:
    def __init__(self, text: str) -> None:
        self.items = _lex(text)
        self.pos = 0

    def _at(self, index: int, values: bool) -> tuple[str, str]:
        token, literal = self.items[min(index, len(self.items) - 1)]
        # Where a value is expected, "in" and "notin" are plain words.
        if values and token in _KEYWORDS:
            token = _IDENT
        return token, literal

    def peek(self, values: bool = True) -> tuple[str, str]:
        return self._at(self.pos, values)

    def take(self, values: bool = True) -> tuple[str, str]:
        item = self._at(self.pos, values)
        self.pos += 1
        return item

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            token, literal = self.peek()
            if token in (_IDENT, "!"):
                try:
                    requirements.append(self.requirement())
                except ValueError as e:
                    raise ValueError(f"unable to parse requirement: {e}") from None
                token, literal = self.take()
                if token == _EOS:
                    return requirements
                if token == ",":
                    after, after_literal = self.peek()
                    if after not in (_IDENT, "!"):
                        raise ValueError(f"found '{after_literal}', expected: identifier after ','")
                    continue
                raise ValueError(f"found '{literal}', expected: ',' or 'end of string'")
            if token == _EOS:
                return requirements
            raise ValueError(f"found '{literal}', expected: !, identifier, or 'end of string'")

    def requirement(self) -> Requirement:
        token, key = self.take()
        operator = ""
        if token == "!":
            operator = "!"
            token, key = self.take()
        if token != _IDENT:
            raise ValueError(f"found '{key}', expected: identifier")
        errors = _key_errors(key)
        if errors:
            raise ValueError(f'invalid label key "{key}": ' + "; ".join(errors))
        # "!a" takes no operator: in "!a=b" the "=" is then refused where a comma belongs.
        if operator == "!" or self.peek()[0] in (_EOS, ","):
            return Requirement(key, operator or "exists", ())
        token, literal = self.take(values=False)
        operators = {"in": "in", "notin": "notin", "=": "=", "==": "==", "!=": "!=", ">": "gt", "<": "lt"}
        if token not in operators:
            raise ValueError(f"found '{literal}', expected: '=', '!=', '==', 'in', notin'")
        operator = operators[token]
        values = self.set_values() if operator in ("in", "notin") else self.exact_value()
        for value in values:
            errors = _value_errors(value)
            if errors:
                raise ValueError(f'invalid label value: "{value}": at key: "{key}": ' + "; ".join(errors))
        if operator in ("gt", "lt"):
            try:
                int(values[0])
            except ValueError:
                raise ValueError(
                    f"for 'Gt', 'Lt' operators, the value must be an integer: {values[0]}"
                ) from None
        return Requirement(key, operator, values)

    def set_values(self) -> tuple[str, ...]:
        token, literal = self.take()
        if token != "(":
            raise ValueError(f"found '{literal}' expected: '('")
        token, literal = self.peek()
        if token == ")":
            self.take()
            return ("",)
        if token not in (_IDENT, ","):
            raise ValueError(f"found '{literal}', expected: ',', ')' or identifier")
        values: set[str] = set()
        while True:
            token, literal = self.take()
            if token == _IDENT:
                values.add(literal)
                after, after_literal = self.peek()
                if after == ",":
                    continue
                if after == ")":
                    break
                raise ValueError(f"found '{after_literal}', expected: ',' or ')'")
            if token == ",":
                # Empty values: "(,", ",)" and ",," each stand for "".
                if not values:
                    values.add("")
                after = self.peek()[0]
                if after == ")":
                    values.add("")
                    break
                if after == ",":
                    self.take()
                    values.add("")
                continue
            raise ValueError(f"found '{literal}', expected: ',', or identifier")
        token, _ = self.take()
        if token != ")":
            raise ValueError(f"found '{literal}', expected: ')'")
        return tuple(sorted(values))

    def exact_value(self) -> tuple[str, ...]:
        token, literal = self.peek()
        if token in (_EOS, ","):
            return ("",)
        token, literal = self.take()
        if token == _IDENT:
            return (literal,)
        raise ValueError(f"found '{literal}', expected: identifier")


def parse_selector(text: str) -> Selector:
    """Parses kubectl's label selector syntax; raises ``ValueError`` with the API server's
    words (``unable to parse requirement: found '', expected: identifier``)."""
    requirements = _Parser(text).parse()
    # Sorted by key, as the Go parser sorts them, so the text form is deterministic.
    return Selector(tuple(sorted(requirements, key=lambda r: r.key)))


def selector_of(labels: Mapping[str, str] | str | None) -> Selector:
    """A selector from what ``Job.list(labels=...)`` takes: ``None`` (everything), a mapping
    (each label equal) or a selector string."""
    if labels is None:
        return Selector(())
    if isinstance(labels, str):
        return parse_selector(labels)
    return Selector(tuple(Requirement(k, "=", (v,)) for k, v in sorted(labels.items())))
