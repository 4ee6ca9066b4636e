"""JSON bodies only. A body nested too deep for Python's parser, over DATA_UPLOAD_MAX_MEMORY_SIZE,
or holding a lone surrogate is a 400 like any malformed JSON (each would otherwise be a 500)."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class JsonObjectParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", "utf-8")
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1) if stream is not None else b""
        if limit is not None and len(raw) > limit:
            raise ParseError(f"The body is over {limit} bytes.")
        try:
            text = raw.decode(encoding)
            data = json.loads(text, parse_constant=_no_constant) if text else {}
            # A "\ud800" escape decodes to a lone surrogate, which no database column can store.
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:  # (a ValueError too: first)
            raise ParseError("The body holds text that is not valid Unicode (a lone surrogate).") from exc
        except (ValueError, RecursionError, UnicodeDecodeError) as exc:
            raise ParseError("The body is not valid JSON.") from exc
        return data
