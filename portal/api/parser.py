import json

from django.http import HttpRequest
from ninja.parser import Parser


class DuplicateKeyError(ValueError):
    pass


def _no_duplicates(pairs):
    result = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKeyError(f"duplicate key: {key}")
        result[key] = value
    return result


class StrictJsonParser(Parser):
    """Refuses duplicate keys: `{"nir": a, "nir": b}` is ambiguous, not last-one-wins."""

    def parse_body(self, request: HttpRequest):
        return json.loads(request.body, object_pairs_hook=_no_duplicates)
