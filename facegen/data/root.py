"""Where the face data lives: a ``--data`` flag or the ``FACEGEN_DATA`` environment variable."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

#: The folders of the shared face data (see the data root's README.md).
SHARED_SETS: tuple[str, ...] = (
    "jaffe",
    "rafd_subset",
    "ckplus48",
    "lfw",
    "lfw_expressions",
    "celeba_fsrnet",
    "fer2013_partial",
    "att_orl",
)

ENV_VAR = "FACEGEN_DATA"


class DataRootError(RuntimeError):
    """The face data root is not set, does not exist, or lacks a set the caller needs."""


def data_root(flag: str | Path | None = None, require: Iterable[str] | None = None) -> Path:
    """Resolve the data root from ``flag`` (wins) or ``$FACEGEN_DATA``.

    ``require`` names the set folders that must exist under the root (default: every shared set,
    :data:`SHARED_SETS`); pass a subset to check only what you read. Raises :class:`DataRootError`
    with a sentence that says what is missing and how to fix it.
    """
    if flag is not None and str(flag) != "":
        where, origin = Path(flag).expanduser(), "the --data flag"
    elif os.environ.get(ENV_VAR):
        where, origin = Path(os.environ[ENV_VAR]).expanduser(), f"${ENV_VAR}"
    else:
        raise DataRootError(
            f"No face data root given: pass the data folder (e.g. --data PATH) or set {ENV_VAR}, "
            f"e.g. `export {ENV_VAR}=/path/to/data`, to the folder that holds "
            f"{', '.join(s + '/' for s in SHARED_SETS)}."
        )
    if not where.is_dir():
        raise DataRootError(
            f"The face data root {where} (from {origin}) is not a folder. "
            f"Set {ENV_VAR} (or --data) to the folder that holds {', '.join(s + '/' for s in SHARED_SETS)}."
        )
    needed = SHARED_SETS if require is None else tuple(require)
    missing = [name for name in needed if not (where / name).is_dir()]
    if missing:
        raise DataRootError(
            f"The face data root {where} (from {origin}) lacks the folder(s) "
            f"{', '.join(m + '/' for m in missing)}. Point {ENV_VAR} (or --data) at the folder that "
            f"holds them, e.g. `export {ENV_VAR}=/path/to/data`."
        )
    return where.resolve()
