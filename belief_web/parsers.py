"""The project's JSON parser (referenced by settings, so it imports no DRF view)."""

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class BoundedJSONParser(JSONParser):
    """JSON whose nesting is too deep for Python's parser is a 400, not a RecursionError 500.

    Four kilobytes of `[` are enough to exceed the interpreter's recursion limit.
    """

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
