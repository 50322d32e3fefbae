"""Build hook: compile the optional C extensions (``assistline/*/_*.c``).

aiohttp's way: the extension is built when a C compiler and the Python
headers are there, and the package falls back to its Python path (the
numpy codecs, pjmedia's own media thread) when they are not (a warning
says so at build time). Editable installs build the
module in place beside its source; wheels carry it and get a platform tag.
"""

from __future__ import annotations

import shlex
import subprocess
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

EXTENSIONS = {
    "assistline/media/_g711": "assistline/media/_g711.c",
    "assistline/media/_dtmf": "assistline/media/_dtmf.c",
    "assistline/sip/_media_poll": "assistline/sip/_media_poll.c",
    "assistline/sip/_ring_port": "assistline/sip/_ring_port.c",
    "assistline/sip/_request_guard": "assistline/sip/_request_guard.c",
    "assistline/webrtc/_opus": "assistline/webrtc/_opus.c",
}


def _compile(source: Path, target: Path) -> str | None:
    """Compile one extension module; returns the compiler's complaint on failure."""
    try:
        import numpy
    except ImportError:
        return "numpy is not installed in the build environment"
    compiler = shlex.split(sysconfig.get_config_var("CC") or "cc")
    command = [
        *compiler,
        "-O2",
        "-fPIC",
        "-shared",
        "-Wall",
        f"-I{sysconfig.get_paths()['include']}",
        f"-I{numpy.get_include()}",
        str(source),
        "-o",
        str(target),
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as error:
        return str(error)
    return None if result.returncode == 0 else result.stderr.strip()


class CustomBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    """Compile the accelerators into the wheel, or in place for editable installs."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        """Build each extension; skip (with a warning) when it cannot be compiled."""
        suffix = sysconfig.get_config_var("EXT_SUFFIX")
        root = Path(self.root)
        scratch = Path(tempfile.mkdtemp(prefix="assistline-build-"))
        for module, source in EXTENSIONS.items():
            if version == "editable":
                target = root / f"{module}{suffix}"
            else:
                target = scratch / Path(f"{module}{suffix}").name
            complaint = _compile(root / source, target)
            if complaint is not None:
                self.app.display_warning(
                    f"{source} not compiled, its Python fallback will be used: {complaint}"
                )
                continue
            build_data["pure_python"] = False
            build_data["infer_tag"] = True
            if version != "editable":
                build_data["force_include"][str(target)] = f"{module}{suffix}"
