"""Request parsers of the REST API."""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError

from trackstat.validators import MAX_JSON_DEPTH, json_too_deep

TOO_DEEP_MESSAGE = f"JSON nested more than {MAX_JSON_DEPTH} levels deep is not accepted."


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing JSON nested beyond ``MAX_JSON_DEPTH`` levels: no request
    of the API nests deeper, and Python's decoder fails with a RecursionError (a server
    error) at about a thousand."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(TOO_DEEP_MESSAGE) from None
        if json_too_deep(data):
            raise ParseError(TOO_DEEP_MESSAGE)
        return data
