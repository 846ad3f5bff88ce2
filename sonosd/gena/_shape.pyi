# The compiled reader of sonosd/gena/_shape.c (see its comment).
from typing import Any

def tree3(document: bytes, /) -> tuple[str, dict[str, str], Any] | None: ...
