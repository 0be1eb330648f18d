"""Where dataset files live, whether they are intact, and how missing ones are downloaded.

Folder resolution: the `data_dir` argument, else `$STOCHTP_DATA`, else the
project's `data/` folder (the repository root's `data/` when stochtp runs from a checkout,
`./data` when it is installed elsewhere). That folder is the *root*; a dataset's files are
looked up in `<root>/<name>/` and also directly in `<root>/`, so both
`STOCHTP_DATA=/srv/data` and `STOCHTP_DATA=/srv/data/mnist` find MNIST in /srv/data/mnist. The
dataset's folder is the first of the two that holds any of its files, or `<root>/<name>/`
when neither does; missing files are downloaded there.

Files are identified by SHA-256. Hashing is done once per file per process: the digest is
cached in memory under the file's path, size and modification time.

Downloads go to a temporary file in the destination folder, are checked against the
expected SHA-256, and only then renamed (atomically) to their final name, so an interrupted
or corrupt download never leaves a file that passes for a complete one.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.request
from pathlib import Path

from stochtp.errors import DataError

ENVIRONMENT_VARIABLE = "STOCHTP_DATA"
DOWNLOAD_TIMEOUT_S = 60
CHUNK_BYTES = 1 << 20

_digest_cache: dict[tuple[str, int, int], str] = {}


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The root data folder: `data_dir`, else `$STOCHTP_DATA`, else the project's `data/`."""
    if data_dir is not None:
        return Path(data_dir).expanduser().absolute()
    from_environment = os.environ.get(ENVIRONMENT_VARIABLE)
    if from_environment:
        return Path(from_environment).expanduser().absolute()
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file():
        return checkout / "data"
    return Path.cwd() / "data"


def dataset_folder(root: Path, name: str, file_names) -> Path:
    """The folder holding dataset `name`'s files: `<root>/<name>` or `<root>`, see module doc."""
    for candidate in (root / name, root):
        if any((candidate / file_name).is_file() for file_name in file_names):
            return candidate
    return root / name


def sha256_of(path: Path) -> str:
    """SHA-256 (hex) of the file at `path`, computed once per path, size and mtime."""
    status = path.stat()
    key = (str(path.resolve()), status.st_size, status.st_mtime_ns)
    if key not in _digest_cache:
        digest = hashlib.sha256()
        with open(path, "rb") as stream:
            while chunk := stream.read(CHUNK_BYTES):
                digest.update(chunk)
        _digest_cache[key] = digest.hexdigest()
    return _digest_cache[key]


def download(urls, destination: Path, sha256: str) -> None:
    """Download the first of `urls` that works to `destination`, verified against `sha256`.

    Mirrors are tried in order; one that fails or serves a file with the wrong digest is
    skipped. Raises `ConnectionError` when no mirror could be reached, `DataError` when the
    only files obtained had the wrong digest, `OSError` when the folder cannot be written;
    in every case `destination` is left untouched.
    """
    created = [folder for folder in (destination.parent, *destination.parent.parents) if not folder.exists()]  # deepest first
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        _download_from_mirrors(urls, destination, sha256)
    except BaseException:
        for folder in created:  # a failed download leaves no empty folders behind
            try:
                folder.rmdir()
            except OSError:
                break
        raise


def _download_from_mirrors(urls, destination: Path, sha256: str) -> None:
    """`download`'s work, into a folder that exists: the first mirror that serves the right file."""
    network_error: Exception | None = None
    corrupt_from: list[str] = []
    for url in urls:
        try:
            if _download_verified(url, destination, sha256):
                return
            corrupt_from.append(url)
        except (OSError, http.client.HTTPException) as error:
            network_error = error
    if corrupt_from:
        raise DataError(
            f"the download of {destination.name} from {', '.join(corrupt_from)} does not match "
            f"its expected sha256, so it was discarded; nothing was written to {destination.parent}."
        )
    raise ConnectionError(f"no mirror of {destination.name} could be reached, last error: {network_error}")


def _download_verified(url: str, destination: Path, sha256: str) -> bool:
    """Fetch `url` into a temporary file next to `destination`; keep it only if it matches."""
    descriptor, temporary_name = tempfile.mkstemp(
        dir=destination.parent, prefix=f".{destination.name}.", suffix=".part"
    )
    temporary = Path(temporary_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(descriptor, "wb") as sink, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as source:
            while chunk := source.read(CHUNK_BYTES):
                digest.update(chunk)
                sink.write(chunk)
        if digest.hexdigest() != sha256:
            return False
        os.replace(temporary, destination)
        return True
    finally:
        temporary.unlink(missing_ok=True)
