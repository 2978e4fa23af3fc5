"""The project's JSON parser (referenced by settings, so it imports no DRF view)."""

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


def _utf8_clean(data: Any) -> bool:
    """Whether every string (keys included) can be written back as UTF-8.

    JSON may spell a lone surrogate (`"\\ud800"`); Python reads it into a str that no UTF-8
    encoder (PostgreSQL, the JSON renderer echoing it in an error) will take. Iterative: a
    document nested as deep as the parser allows must not overflow the stack here.
    """
    pending = [data]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return True


class BoundedJSONParser(JSONParser):
    """JSON whose nesting is too deep, or that holds a lone surrogate, is a 400, not a 500.

    Four kilobytes of `[` are enough to exceed the interpreter's recursion limit.
    """

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
        if not _utf8_clean(data):
            raise ParseError("JSON parse error - a string holds a lone surrogate.")
        return data
