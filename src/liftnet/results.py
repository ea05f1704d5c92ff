"""Results files and saved models, written atomically so a failure never corrupts them."""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import platform
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from .activations import ACTIVATIONS
from .graph import Network, Params, network

MODEL_FORMAT = "liftnet-model/1"


def versions() -> dict[str, str]:
    """Versions of liftnet and of the libraries that shaped a result."""
    from . import __version__

    return {
        "liftnet": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def check_writable(path: str | os.PathLike, what: str = "output") -> Path:
    """Raise a clear ValueError when ``path`` cannot be an output file: empty, a directory, or
    below a path component that is a file.  Checked before a long run, not after it."""
    if str(path) == "":
        raise ValueError(f"{what}: empty file name")
    given = str(path)
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {path} is a directory; give a file name")
    if given.endswith((os.sep, os.altsep or os.sep)):  # Path() drops the slash: it would
        raise ValueError(f"{what} {given} names a directory; give a file name")  # be a file
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{what} {path}: {parent} is a file, not a directory")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ValueError(f"{what} {path}: the directory {parent} is not writable")
            if parent == path.parent and (path.is_file() or not path.exists()):
                _probe(parent, f"{what} {path}")  # os.access trusts permissions only
            break
    return path


def _probe(folder: Path, what: str) -> None:
    """Create and remove a file in ``folder``: where permissions say yes and the file system
    says no (root on a read-only or virtual file system, a root-squashed share), the error
    comes before a long run instead of after it."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".liftnet-probe-", dir=folder)
    except OSError as exc:
        raise ValueError(f"{what}: cannot create a file in {folder} "
                         f"({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(tmp)


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Write through a temporary file in the same directory, then rename: an existing file is
    replaced whole or not at all.  A symbolic link is followed (the file it names is replaced,
    the link kept); a target that exists and is not a regular file (``/dev/stdout``, a named
    pipe, a device) is written in place, since renaming over it would replace the node."""
    path = check_writable(path)
    given = path
    if path.is_symlink():
        path = check_writable(os.path.realpath(path))
    if path.exists() and not path.is_file():
        try:
            with open(path, "wb") as fh:
                write(fh)
        except OSError as exc:
            raise OSError(f"cannot write {given}: {exc.strerror or exc}") from None
        return given
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".liftnet-", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise OSError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # the permissions of an ordinary new file
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise OSError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return given


def atomic_save(path: str | os.PathLike, save: Callable[[IO[bytes]], Any]) -> Path:
    """Serialise by ``save(buffer)`` (e.g. ``lambda fh: torch.save(obj, fh)``) into memory, then
    write the bytes with :func:`atomic_write`.  torch's zip writer thus never sees the file: a
    full disk is an OSError naming it ("cannot write FILE: No space left on device"), never the
    writer's RuntimeError nor an abort from its destructor; an error of ``save`` itself (an
    object that cannot be serialised) propagates unchanged, before anything is written."""
    buffer = io.BytesIO()
    save(buffer)
    with buffer.getbuffer() as data:  # no copy of the serialised bytes
        return atomic_write(path, lambda fh: fh.write(data))


STDOUT = "-"  # the file name that means the standard output (write_json, the CLI's --out)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically (temp file + rename); ``"-"``
    (:data:`STDOUT`) writes it to the standard output."""
    text = json.dumps(_finite(obj), indent=2, allow_nan=False) + "\n"
    if str(path) == STDOUT:
        sys.stdout.write(text)
        sys.stdout.flush()
        return Path(STDOUT)
    return atomic_write(path, lambda fh: fh.write(text.encode()))


def _finite(obj: Any) -> Any:
    """NaN and infinities become null, so the file is strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def save_model(
    path: str | os.PathLike, net: Network, params: Params, meta: dict[str, Any] | None = None
) -> Path:
    """Save the network description and its parameters (CPU tensors) atomically; parameters
    with NaN or infinite entries (a diverged run) are refused and nothing is written."""
    net.check_params(params)
    bad = _non_finite(params)
    if bad is not None:
        raise ValueError(f"save_model: {bad} contain NaN or infinite values (did training "
                         f"diverge?); nothing was written to {path}")
    try:
        meta_text = json.dumps(meta or {})
    except (TypeError, ValueError) as exc:
        raise ValueError(f"save_model: meta must be JSON-serialisable ({exc})") from None
    payload = {
        "format": MODEL_FORMAT,
        "arch": net.spec,
        "activations": [layer.activation for layer in net.layers],
        "loss": net.loss,
        "weights": [W.detach().cpu().contiguous() for W, _ in params],
        "biases": [b.detach().cpu().contiguous() for _, b in params],
        "meta": meta_text,
    }
    return atomic_save(path, lambda fh: torch.save(payload, fh))


def unreadable(exc: Exception, writer: str) -> str:
    """Why torch.load could not read a file, in words: torch's own first line where it says
    something (a truncated archive, a missing record), else that ``writer`` did not write it
    (an empty file, bytes that are no pickle, torch's advice to unpickle arbitrary code)."""
    detail = str(exc).split("\n")[0].strip()
    if isinstance(exc, EOFError):
        return "the file is empty or cut short"
    if (not detail or isinstance(exc, (KeyError, pickle.UnpicklingError))
            or "weights_only" in detail or "Weights only" in detail):
        return f"not a file written by {writer}"
    return detail


ZIP_MAGIC = b"PK\x03\x04"  # the first bytes of a zip archive, which torch.save writes


def check_archive(path: str | os.PathLike) -> None:
    """ValueError when ``path`` is a zip archive (what torch.save writes) that is truncated or
    whose bytes changed since it was written: torch.load checks no CRC, so a flipped bit in a
    tensor would load as an altered weight.  Other files are left to torch.load."""
    try:
        with open(path, "rb") as fh:
            if fh.read(len(ZIP_MAGIC)) != ZIP_MAGIC:
                return
            try:
                with zipfile.ZipFile(fh) as archive:
                    bad = archive.testzip()  # reads every member and checks its CRC-32
            except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as exc:
                why = "" if str(exc) == "File is not a zip file" else f": {exc}"  # no end
                raise ValueError(f"{path} is truncated or corrupt (not a whole zip archive"
                                 f"{why})") from None
    except OSError as exc:
        raise OSError(f"cannot read {path}: {exc.strerror or exc}") from None
    if bad is not None:
        raise ValueError(f"{path} is corrupt or truncated (its record {bad} fails its CRC "
                         "check: the file changed since it was written)")


def load_torch_file(path: str | os.PathLike, what: str, writer: str, *, missing: str,
                    weights_only: bool, map_location: Any = "cpu") -> Any:
    """What torch.save wrote to ``path``, a liftnet file (``what``, e.g. "liftnet model")
    written by ``writer``: the one loader of liftnet's .pt files (models, checkpoints,
    --init-from), so that each is checked whole (:func:`check_archive`) before torch.load
    reads it.  ``missing`` names it when there is no such file (FileNotFoundError); anything
    unreadable is a ValueError that says why in words."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {missing} at {path}")
    check_archive(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=weights_only)
    except Exception as exc:  # torch / pickle raise many kinds for a malformed file
        detail = str(exc).split("\n")[0]
        if (isinstance(exc, OSError) and exc.errno == 22) or "PytorchStreamReader" in detail:
            # miniz's words (or EINVAL from a seek past the end) for a cut or mangled archive
            raise ValueError(f"{path} is truncated or corrupt ({detail.split('. ')[0]})"
                             ) from None
        # torch's advice to retry with weights_only=False (arbitrary code) is not passed on
        raise ValueError(f"{path} is not a readable {what}: {unreadable(exc, writer)}"
                         ) from None


def load_model(path: str | os.PathLike) -> tuple[Network, Params, dict[str, Any]]:
    """Load a model saved by :func:`save_model`; clear errors for anything else."""
    path = Path(path)
    payload = load_torch_file(path, "liftnet model",
                              "liftnet's save_model (torch.save of tensors)",
                              missing="saved model", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path} is not a liftnet model (format {MODEL_FORMAT!r} expected)")
    try:
        acts = [str(a) for a in payload["activations"]]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path} holds a damaged liftnet model: {exc}") from None
    unknown = sorted({a for a in acts if a not in ACTIVATIONS})
    if unknown:  # e.g. a plugin's activation
        raise ValueError(
            f"{path} uses the activation {', '.join(map(repr, unknown))}, which is not "
            "registered here: import the module that registers it first (liftnet --plugin "
            "MODULE, or liftnet.register_activation in Python)")
    try:
        net = network(str(payload["arch"]), loss=payload["loss"], activations=acts)
        params = list(zip(payload["weights"], payload["biases"], strict=True))
        net.check_params(params)
        meta = json.loads(payload["meta"])
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path} holds a damaged liftnet model: {exc}") from None
    bad = _non_finite(params)
    if bad is not None:
        raise ValueError(f"{path} holds a damaged liftnet model: {bad} contain NaN or "
                         "infinite values")
    return net, params, meta


def _non_finite(params: Params) -> str | None:
    """'layer l's weights' (or biases) of the first non-finite parameter, else None."""
    for l, (W, b) in enumerate(params):
        for name, t in (("weights", W), ("biases", b)):
            if not bool(torch.isfinite(t).all()):
                return f"layer {l}'s {name}"
    return None

