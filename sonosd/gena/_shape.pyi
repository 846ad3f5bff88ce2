# The compiled reader of sonosd/gena/_shape.c (see its comment).
from typing import Any

MAX_NS: int
MAX_ATTRS: int
MAX_DEPTH: int

def tree3(document: bytes, /) -> tuple[str, dict[str, str], Any] | None: ...
