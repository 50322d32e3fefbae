from typing import Any

import numpy.typing as npt
from typing_extensions import Buffer

_In = Buffer | npt.NDArray[Any]

def project(samples: _In, basis: _In, projections: _In, purity: float) -> list[list[float]]: ...
