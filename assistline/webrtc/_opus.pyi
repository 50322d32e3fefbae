from typing import Any

import numpy as np
import numpy.typing as npt
from typing_extensions import Buffer

# numpy's stubs do not declare the buffer protocol its arrays have.
_In = Buffer | npt.NDArray[Any]

def load(path: str) -> str: ...

class Encoder:
    def __init__(self, rate: int, bitrate: int, complexity: int) -> None: ...
    def encode(self, samples: _In) -> bytes: ...

class Decoder:
    def __init__(self, rate: int) -> None: ...
    def decode(self, packet: _In) -> npt.NDArray[np.int16]: ...
