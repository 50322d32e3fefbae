"""Media core benchmark (issue 3): DTMF against spandsp, G.711 and resampling.

Runs ``_media_dtmf.run()`` (the Q.24 battery, noise, talk-off, cost per
frame and suppression, ours and spandsp side by side on the same signals)
and ``_media_codecs.run()`` (G.711 against ``audioop``, resampling against
PyAV), prints a table per item, then one JSON object as the last line, and
exits 1 when any target is missed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import _media_codecs  # noqa: E402  (bench/ is put on sys.path just above)
import _media_dtmf  # noqa: E402


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "pass" if value else "FAIL"
    if value is None:
        return "-"
    return str(value)


def _print_dtmf(result: dict[str, Any]) -> None:
    print("DTMF (8 kHz, same signals for both detectors)")
    print(f"  {'item':58} {'ours':>10} {'spandsp':>10}")
    paired = set()
    for key, value in result.items():
        if key.endswith("_ours") and f"{key[:-5]}_spandsp" in result:
            stem = key[:-5]
            paired |= {key, f"{stem}_spandsp"}
            print(f"  {stem:58} {_cell(value):>10} {_cell(result[stem + '_spandsp']):>10}")
    for key, value in result.items():
        if key not in paired and key != "name":
            print(f"  {key:58} {_cell(value):>10}")


def _print_codecs(result: dict[str, Any]) -> None:
    print("G.711 and resampling")
    for key, value in result.items():
        if key != "name":
            shown = f"{value:.3f}" if isinstance(value, float) else _cell(value)
            print(f"  {key:58} {shown:>10}")


def main() -> int:
    """Run both parts, print the report and the JSON line; 0 when every target is met."""
    dtmf = _media_dtmf.run(lambda stage: print(f"... {stage}", file=sys.stderr, flush=True))
    _print_dtmf(dtmf)
    codecs = _media_codecs.run()
    _print_codecs(codecs)
    met = bool(dtmf["targets_met"]) and bool(codecs["targets_met"])
    print("targets met" if met else "TARGETS MISSED")
    print(json.dumps({"name": "media", "dtmf": dtmf, "codecs": codecs, "targets_met": met}))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
