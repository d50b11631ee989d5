"""Safe file writing shared by images and models: atomic replace, permissions, output checks.

Every write goes to a temporary sibling (same folder, so the rename cannot cross file
systems) and is renamed over the target only once it is complete; a failed write removes the
temporary and leaves any earlier file untouched. Output paths can be checked before long
work starts, so that an unwritable path or one that would overwrite an input fails at once.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from .._errors import SelfDenoiseError

__all__ = ["check_output_folder", "check_output_path", "one_line", "replace_atomically"]

_UMASK_LOCK = threading.Lock()


def one_line(exc: BaseException) -> str:
    """An exception's message on one line of at most 200 characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _umask() -> int:
    """The process umask, read without changing it where the system allows."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def default_mode(directory: bool) -> int:
    """The permissions a plain ``open()`` (or ``mkdir``) would give: 0o666/0o777 less umask."""
    return (0o777 if directory else 0o666) & ~_umask()


def _cannot_write(path: Path, exc: BaseException) -> SelfDenoiseError:
    return SelfDenoiseError(f"cannot write '{path}': {one_line(exc)}.")


def replace_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write ``path`` through a temporary sibling file, then rename it over ``path``.

    ``write`` receives the temporary path (its suffix is the target's, for writers that look
    at it). On any failure the temporary file is removed, an existing ``path`` is left as it
    was, and errors other than :class:`SelfDenoiseError` become one-line SelfDenoiseErrors.
    """
    path = Path(path)
    try:
        handle, name = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.stem}.", suffix=f".partial{path.suffix}"
        )
        os.close(handle)
    except OSError as exc:
        raise _cannot_write(path, exc) from exc
    temporary = Path(name)
    try:
        write(temporary)
        os.chmod(temporary, default_mode(directory=False))  # mkstemp creates 0600
        os.replace(temporary, path)
    except SelfDenoiseError:
        raise
    except Exception as exc:  # OSError, SafetensorError, torch's RuntimeError, ...
        raise _cannot_write(path, exc) from exc
    finally:
        temporary.unlink(missing_ok=True)


def replace_tree(path: Path, write: Callable[[Path], None]) -> None:
    """Like :func:`replace_atomically` for a folder (a zarr store).

    The new folder is complete before the old one, if any, is moved aside and removed.
    """
    path = Path(path)
    try:
        temporary = Path(
            tempfile.mkdtemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".partial.zarr")
        )
    except OSError as exc:
        raise _cannot_write(path, exc) from exc
    try:
        os.chmod(temporary, default_mode(directory=True))  # mkdtemp creates 0700
        write(temporary)
        swap_in(temporary, path)
    except SelfDenoiseError:
        raise
    except Exception as exc:
        raise _cannot_write(path, exc) from exc
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)


def swap_in(new: Path, path: Path) -> None:
    """Rename the finished folder ``new`` to ``path``, replacing what was there."""
    if not path.exists() and not path.is_symlink():
        os.replace(new, path)
        return
    if not path.is_dir():
        raise SelfDenoiseError(f"cannot write '{path}': a file of that name is in the way.")
    old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".old"))
    os.replace(path, old / path.name)
    os.replace(new, path)
    shutil.rmtree(old, ignore_errors=True)


def _resolved(path: str | os.PathLike) -> Path:
    return Path(path).expanduser().resolve()


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a == b or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_output_path(
    path: str | os.PathLike,
    inputs: Iterable[str | os.PathLike] = (),
    *,
    folder_ok: bool = False,
    option: str = "the output",
) -> Path:
    """Check that an output path can be written and would not overwrite an input.

    Call it before long work (training, prediction) so that a bad path fails at once.

    Parameters
    ----------
    path : str or path-like
        The file (or, with ``folder_ok``, the zarr store) to write.
    inputs : iterable of path-like
        Files or stores being read; the output may be none of them, lie inside none of them
        (a path in an input store) and contain none of them (an input in the output store).
    folder_ok : bool
        Allow ``path`` to be an existing folder (a zarr store that will be replaced).
    option : str
        How to name the output in messages, e.g. ``'--out'``.

    Returns
    -------
    Path
        ``path`` as given.

    Raises
    ------
    SelfDenoiseError
        If the output would overwrite an input, is a folder, or its folder is missing or not
        writable.
    """
    given = Path(path)
    target = _resolved(given)
    for item in inputs:
        source = _resolved(item)
        if _same_file(target, source) or source in target.parents or target in source.parents:
            raise SelfDenoiseError(
                f"{option} '{given}' would overwrite the input '{item}'; "
                "choose another output path (inputs are never modified)."
            )
    if target.is_dir() and not folder_ok:
        raise SelfDenoiseError(f"{option} '{given}' is a folder; give a file name inside it.")
    _check_writable_folder(target.parent, option, given)
    return given


def check_output_folder(
    folder: str | os.PathLike, inputs: Iterable[str | os.PathLike] = (), option: str = "folder"
) -> Path:
    """Check that files can be written in ``folder`` (created later if missing).

    The nearest existing folder on the way must be writable. The folder may not be an input
    or lie inside one (an input zarr store); checking the names written into it against the
    inputs is :func:`check_output_path`'s job.
    """
    given = Path(folder)
    target = _resolved(given)
    if target.exists() and not target.is_dir():
        raise SelfDenoiseError(f"{option} '{given}' is a file, not a folder; choose a folder.")
    for item in inputs:
        source = _resolved(item)
        if _same_file(target, source) or source in target.parents:
            raise SelfDenoiseError(
                f"{option} '{given}' would write into the input '{item}'; choose another folder."
            )
    existing = target
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise SelfDenoiseError(f"cannot create {option} '{given}': '{existing}' is a file.")
    _check_writable_folder(existing, option, given)
    return given


def _check_writable_folder(folder: Path, option: str, given: Path) -> None:
    if not folder.exists():
        raise SelfDenoiseError(
            f"cannot write {option} '{given}': the folder '{folder}' does not exist; create it first."
        )
    if not folder.is_dir():
        raise SelfDenoiseError(f"cannot write {option} '{given}': '{folder}' is not a folder.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SelfDenoiseError(
            f"cannot write {option} '{given}': no permission to write in '{folder}'; "
            "choose another folder."
        )
