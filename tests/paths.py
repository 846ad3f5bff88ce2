"""Where the tests find the checkout and the shared reference beside it."""

from __future__ import annotations

from pathlib import Path

#: The project's checkout.
ROOT = Path(__file__).resolve().parent.parent
#: ``../shared`` beside the checkout: the design, the protocol notes and the captured samples.
SHARED = ROOT.parent / "shared"
#: Payloads captured from real speakers.
SAMPLES = SHARED / "reference" / "samples"
