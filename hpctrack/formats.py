"""Every file hpctrack writes and the format version it writes, in one table; the ``job.pkl`` format.

Each module that writes a file keeps the version it writes next to its code
(``manifest.FORMAT_VERSION``, ``HDF5Store.format_version``, ...); :data:`FORMATS`
lists them all, with where the version is recorded in the file, and a test keeps
the two in step and ``docs/store-format.md`` true. A reader refuses a newer
version and says how to upgrade; a file written before its format carried a
version reads as version 1.

``job.pkl``, the sweep's job function, is a cloudpickle behind one readable
header line, ``hpctrack-job <version>`` (``head -1 job.pkl``): the version is
checked before anything is unpickled. A file without the header (hpctrack
before it) is version 1 and still loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Tuple

__all__ = ["FileFormat", "FORMATS", "JOB_VERSION", "dump_job", "job_version", "load_job", "version_of"]

#: Version of ``job.pkl``: 2 adds the header line (1: a bare cloudpickle).
JOB_VERSION = 2
_JOB_MAGIC = b"hpctrack-job "


@dataclass(frozen=True)
class FileFormat:
    """One kind of file hpctrack writes."""

    #: Its name in a sweep or run directory (``<n>`` for a number).
    name: str
    #: The version this hpctrack writes.
    version: int
    #: Where the file records its version.
    recorded: str
    #: ``module:attribute`` holding the version in the code that writes it.
    source: str


FORMATS: Tuple[FileFormat, ...] = (
    FileFormat("sweep.json", 2, "key format_version", "hpctrack.manifest:FORMAT_VERSION"),
    FileFormat("job.pkl", JOB_VERSION, "header line hpctrack-job <version>", "hpctrack.formats:JOB_VERSION"),
    FileFormat("index.jsonl", 1, "key v of each line", "hpctrack.index:INDEX_VERSION"),
    FileFormat(
        "index.cache.parquet", 3, "schema metadata hpctrack_index_cache, key version", "hpctrack.index:CACHE_VERSION"
    ),  # fmt: skip
    FileFormat("run.h5 -> run.<n>.h5", 3, "root attribute format_version", "hpctrack.store:HDF5Store.format_version"),
    FileFormat("run.zarr/", 2, "zarr.json attribute format_version", "hpctrack.store:ZarrStore.format_version"),
    FileFormat("labels.json", 1, "key format_version", "hpctrack.labels:LABELS_VERSION"),
    FileFormat("pins.json", 1, "key format_version", "hpctrack.pins:PINS_VERSION"),
    FileFormat(
        "catalog/u<uid>/*.parquet",
        1,
        "schema metadata hpctrack_catalog, key version",
        "hpctrack.catalog:CATALOG_VERSION",
    ),  # fmt: skip
    FileFormat("end.json", 1, "key format_version", "hpctrack.endrecord:FORMAT_VERSION"),
    FileFormat("recovery-<n>.jsonl", 1, "key format_version of the header line", "hpctrack._recovery:RECOVERY_VERSION"),
    FileFormat("relay/<n>.json", 1, "key format_version", "hpctrack.relay:RELAY_FORMAT_VERSION"),
    FileFormat("relay/<n>.jsonl", 1, "key v of each line", "hpctrack.relay:RELAY_FORMAT_VERSION"),
    FileFormat(
        "checkpoints/<n>/checkpoint.json", 2, "key format_version (absent: 1)", "hpctrack.checkpoint:CHECKPOINT_VERSION"
    ),  # fmt: skip
    FileFormat("registry/<model>/**/*.json", 1, "key format_version", "hpctrack.models:REGISTRY_VERSION"),
)


def version_of(name: str) -> int:
    """The version this hpctrack writes of the file called ``name`` in :data:`FORMATS`."""
    for fmt in FORMATS:
        if fmt.name == name:
            return fmt.version
    raise KeyError(f"no file format {name!r}; known: {', '.join(f.name for f in FORMATS)}")


def dump_job(job_fn: Any) -> bytes:
    """The bytes of ``job.pkl`` for ``job_fn``: the version header, then its cloudpickle."""
    import cloudpickle

    return _JOB_MAGIC + str(JOB_VERSION).encode() + b"\n" + cloudpickle.dumps(job_fn)


def job_version(data: bytes) -> Tuple[int, int]:
    """``(version, offset of the pickle)`` of ``job.pkl``'s bytes; no header: version 1 at offset 0."""
    if not data.startswith(_JOB_MAGIC):
        return 1, 0  # a pickle starts with its protocol byte, never with the header
    end = data.find(b"\n", 0, 64)
    try:
        return int(data[len(_JOB_MAGIC) : end]), end + 1
    except ValueError:
        return -1, 0


def load_job(path: Path) -> Any:
    """The job function in ``job.pkl`` at ``path``.

    Raises
    ------
    FormatVersionError
        Written by a newer hpctrack (or a header that does not parse); nothing was unpickled.
    """
    import cloudpickle

    from .errors import FormatVersionError

    data = Path(path).read_bytes()
    version, offset = job_version(data)
    if version < 1:
        raise FormatVersionError(f"{path} has an unreadable header line; launch the sweep again")
    if version > JOB_VERSION:
        raise FormatVersionError(f"{path} has format_version {version} but this hpctrack reads up to {JOB_VERSION}; "
                                 "upgrade hpctrack: pip install -U hpctrack")  # fmt: skip
    return cloudpickle.loads(data[offset:])
