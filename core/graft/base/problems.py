"""Problems in a spec, each tied to a YAML path, rendered ``path (line N): message``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

Path = tuple[str | int, ...]


def format_path(path: Path) -> str:
    """``("stages", 1, "policy")`` -> ``stages[1].policy``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def did_you_mean(word: object, choices: Iterable[object]) -> str:
    """`` — did you mean 'x'?`` for the closest choice, or an empty string.

    Anything that is not a string (a number given as a layer name) is compared as its ``str``.
    """
    import difflib  # only when a word is unknown: importing it (and heapq) costs graft validate ~15 ms

    close = difflib.get_close_matches(str(word), [str(choice) for choice in choices], n=1, cutoff=0.6)
    return f" — did you mean '{close[0]}'?" if close else ""


def listing(names: Sequence[object], limit: int = 12) -> str:
    """Names joined by commas, cut after ``limit`` with a count."""
    if not names:
        return "(none)"
    shown = ", ".join(str(name) for name in names[:limit])
    return shown if len(names) <= limit else f"{shown}, ... ({len(names)} in all)"


def printable(text: str, keep: str = "") -> str:
    """``text`` with control characters escaped as Python writes them (``\\x00``, ``\\r``, ``\\x1b``), except
    those in ``keep``: user input echoed in a message can neither hide nor rewrite what a terminal shows."""
    if text.isprintable() and not keep:
        return text
    return "".join(
        character if character in keep or not _is_control(character) else repr(character)[1:-1]
        for character in text
    )


def _is_control(character: str) -> bool:
    code = ord(character)
    return code < 0x20 or 0x7F <= code < 0xA0 or character in _INVISIBLE


_INVISIBLE = "\u2028\u2029\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"  # breaks, bidi


class GraftError(Exception):
    """An error keras-graft reports to the user as a message, without a traceback."""


class SpecProblem(Exception):
    """One or more problems at YAML paths relative to where they are raised.

    Plugins raise it from params validators or hooks; keras-graft prefixes the
    path of the plugin's ``params`` and adds the YAML line.
    """

    def __init__(self, path: Path, message: str):
        super().__init__(message)
        self.items: list[tuple[Path, str]] = [(tuple(path), message)]

    @classmethod
    def of(cls, items: Iterable[tuple[Path, str]]) -> SpecProblem:
        """One SpecProblem holding ``items`` (at least one)."""
        items = [(tuple(path), message) for path, message in items]
        problem = cls(*items[0])
        problem.items = items
        return problem

    @classmethod
    def combine(cls, problems: Iterable[SpecProblem]) -> SpecProblem | None:
        """One SpecProblem holding all items of ``problems``, or None if empty."""
        items = [item for problem in problems for item in problem.items]
        if not items:
            return None
        combined = cls(*items[0])
        combined.items = items
        return combined

    def prefixed(self, prefix: Path) -> list[tuple[Path, str]]:
        return [(tuple(prefix) + path, message) for path, message in self.items]

    def __str__(self) -> str:
        return "\n".join(f"{format_path(p)}: {m}" for p, m in self.items)


class Problems:
    """Collects problems so that all of them are reported at once, not only the first.

    ```python
    problems = Problems()
    for index, pattern in enumerate(params.freeze):
        with problems.collect(("freeze", index)):   # a SpecProblem raised inside is kept, prefixed
            match_pattern(pattern, layers)
    problems.add(("default",), "must be train or freeze")
    problems.raise_all()                            # one SpecProblem with every item, if any
    ```
    """

    def __init__(self) -> None:
        self.items: list[tuple[Path, str]] = []

    def __bool__(self) -> bool:
        return bool(self.items)

    def add(self, path: Path, message: str) -> None:
        self.items.append((tuple(path), message))

    def extend(self, problem: SpecProblem, prefix: Path = ()) -> None:
        self.items += problem.prefixed(prefix)

    @contextmanager
    def collect(self, prefix: Path = ()) -> Iterator[None]:
        """Keep a ``SpecProblem`` raised inside the block (its paths under ``prefix``) and go on."""
        try:
            yield
        except SpecProblem as problem:
            self.extend(problem, prefix)

    def raise_all(self) -> None:
        if self.items:
            raise SpecProblem.of(self.items)


class SpecError(GraftError):
    """A spec that cannot be used; ``lines`` are the rendered problems, one line each; ``notes`` lines shown
    under them (a file's layers, a block of YAML to paste), each kept to one line too."""

    def __init__(self, source: str, lines: list[str], notes: Sequence[str] = ()):
        super().__init__("\n".join(lines))
        self.source = source
        self.lines = lines
        self.notes = list(notes)

    def __str__(self) -> str:
        count = len(self.lines)
        head = f"{printable(self.source)}: {count} problem{'s' if count != 1 else ''}"
        return "\n".join([head, *("  " + printable(line, keep="\t") for line in [*self.lines, *self.notes])])


def kind_of(value: object, limit: int = 60) -> str:
    """``str 'x'``, ``int 3``, ``list``, ``null``: a value's type and (short) repr, for "expected ..., got ..."."""
    if isinstance(value, (dict, list)):
        return type(value).__name__
    if value is None:
        return "null"  # what YAML calls it: "~", "null" or nothing
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"int of about {int(value.bit_length() * 0.30103)} digits"  # repr would be long, or raise
    text = repr(value)
    if len(text) > limit:
        text = f"{text[: limit - 5]}...{text[-2:]}"
    return f"{type(value).__name__} {text}"
