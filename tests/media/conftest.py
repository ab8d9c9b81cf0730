"""The speech and music backend tests run against the in-process fakes that live beside the service tests."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services"))
