"""Downloads: CSV streamed a row at a time, with spreadsheet formulas defused."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from django.http import StreamingHttpResponse


class _Echo:
    """A file-like object whose write returns the text, so csv.writer can feed a stream."""

    def write(self, value: str) -> str:
        return value


# A spreadsheet runs a cell that starts like a formula when the export is opened (CSV injection):
# such text (a client's name, a reason) gets an apostrophe in front, which spreadsheets show as text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cells(row: Sequence[Any]) -> list[Any]:
    return [f"'{value}" if isinstance(value, str) and value.startswith(_FORMULA_START) else value for value in row]


def csv_stream(rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    for row in rows:
        yield writer.writerow(csv_cells(row))


def streamed_csv(rows: Iterable[Sequence[Any]], filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(csv_stream(rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response
