"""CSV for downloads: streamed line by line, and never a spreadsheet formula."""

import csv
from collections.abc import Iterable, Iterator

# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: str) -> str:
    """Text from a feed or a person, neutralised so that no spreadsheet runs it."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_lines(rows: Iterable[list], *, delimiter: str = ",") -> Iterator[str]:
    """Rows as CSV text, one line at a time (for a `StreamingHttpResponse`)."""
    writer = csv.writer(_Echo(), delimiter=delimiter)
    for row in rows:
        yield writer.writerow(row)
