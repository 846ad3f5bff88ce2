"""Where the tests find the checkout and the shared reference beside it."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

#: The project's checkout.
ROOT = Path(__file__).resolve().parent.parent
#: ``../shared`` beside the checkout: the design, the protocol notes and the captured samples.
SHARED = ROOT.parent / "shared"
#: Payloads captured from real speakers.
SAMPLES = SHARED / "reference" / "samples"


@functools.cache
def openapi_spec() -> dict[str, Any]:
    """docs/openapi.yaml, read once per test process (libyaml's loader): many parametrized
    tests read it, and the pure-Python loader under coverage took ~0.5 s a read. Read only:
    the one document is shared."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    spec: dict[str, Any] = yaml.load((ROOT / "docs" / "openapi.yaml").read_bytes(), loader)
    return spec
