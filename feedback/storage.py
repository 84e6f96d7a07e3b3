"""Where dataset versions live: a folder per version on any fsspec filesystem, written atomically, verified on read.

A version exists once its ``manifest.json`` does. On a local disk the whole folder is staged and renamed into
place; elsewhere (object stores) the data files are written first and the manifest last. Versions are
content-addressed, so writing one that exists is a no-op that returns the stored manifest.

>>> store = DatasetStore("memory://doctest-datasets")
>>> store.location("ds-1")
'memory:///doctest-datasets/ds-1'
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from feedback.manifest import DatasetManifest

MANIFEST = "manifest.json"


class ChecksumMismatch(ValueError):
    """A stored file whose sha256 differs from the one its manifest recorded."""

    def __init__(self, dataset_id: str, name: str, expected: str, actual: str) -> None:
        super().__init__(f"{dataset_id}/{name}: sha256 is {actual}, the manifest says {expected}")
        self.dataset_id, self.name, self.expected, self.actual = dataset_id, name, expected, actual


class DatasetStore:
    """Dataset versions under ``url``: a local directory or any fsspec URL (``memory://``, ``s3://bucket/x``)."""

    def __init__(self, url: str | Path) -> None:
        self.url = str(url)
        fs, root = url_to_fs(self.url)
        self.fs: AbstractFileSystem = fs
        self.root: str = root.rstrip("/")

    @classmethod
    def open(cls, storage_url: str | None, data_dir: Path) -> DatasetStore:
        """The store a deployment configured: ``storage_url``, else ``data_dir/datasets``."""
        return cls(storage_url or data_dir / "datasets")

    @classmethod
    def of(cls, manifest: DatasetManifest) -> DatasetStore:
        """The store holding ``manifest``'s version (its folder's parent)."""
        return cls(manifest.path.rsplit("/", 1)[0] if "://" in manifest.path else Path(manifest.path).parent)

    @property
    def local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def _folder(self, dataset_id: str) -> str:
        if not dataset_id or "/" in dataset_id or dataset_id.startswith("."):
            raise ValueError(f"not a dataset id: {dataset_id!r}")
        return f"{self.root}/{dataset_id}"

    def location(self, dataset_id: str) -> str:
        """What a manifest's ``path`` says: an absolute local path, or the folder's URL."""
        folder = self._folder(dataset_id)
        return str(Path(folder).resolve()) if self.local else self.fs.unstrip_protocol(folder)

    def manifest(self, dataset_id: str) -> DatasetManifest | None:
        """The stored manifest of ``dataset_id``; None when that version does not exist (yet)."""
        try:
            return DatasetManifest.model_validate_json(self.fs.cat_file(f"{self._folder(dataset_id)}/{MANIFEST}"))
        except FileNotFoundError:
            return None

    def ids(self) -> list[str]:
        """Ids of the complete versions in the store (staging folders and manifest-less leftovers excluded)."""
        if not self.fs.exists(self.root):
            return []
        names = sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self.root, detail=False))
        return [n for n in names if not n.startswith(".") and self.fs.exists(f"{self.root}/{n}/{MANIFEST}")]

    def write(self, manifest: DatasetManifest, files: dict[str, bytes]) -> DatasetManifest:
        """Store ``files`` and then ``manifest`` as version ``manifest.id``; an existing version wins."""
        if existing := self.manifest(manifest.id):
            return existing
        if self.local:
            return self._write_local(manifest, files)
        folder = self._folder(manifest.id)
        for name, data in files.items():
            self.fs.pipe_file(f"{folder}/{name}", data)
        self.fs.pipe_file(f"{folder}/{MANIFEST}", manifest.model_dump_json(indent=2).encode())
        return self.manifest(manifest.id) or manifest

    def _write_local(self, manifest: DatasetManifest, files: dict[str, bytes]) -> DatasetManifest:
        root = Path(self.root)
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{manifest.id}-", dir=root))
        try:
            for name, data in {**files, MANIFEST: manifest.model_dump_json(indent=2).encode()}.items():
                (staging / name).parent.mkdir(parents=True, exist_ok=True)
                (staging / name).write_bytes(data)
            os.rename(staging, root / manifest.id)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if existing := self.manifest(manifest.id):  # a concurrent writer won the rename
                return existing
            raise
        return manifest

    def read(self, dataset_id: str, name: str, manifest: DatasetManifest | None = None) -> bytes:
        """The bytes of one file, checked against the sha256 in ``manifest`` (default: the stored one).

        Raises ``FileNotFoundError`` for a file the manifest does not list and ``ChecksumMismatch`` for a
        file whose content changed. ``manifest.json`` itself is returned as stored.
        """
        folder = self._folder(dataset_id)
        if name == MANIFEST:
            return self.fs.cat_file(f"{folder}/{MANIFEST}")
        manifest = manifest or self.manifest(dataset_id)
        entry = manifest.file(name) if manifest else None
        if entry is None:
            raise FileNotFoundError(f"dataset {dataset_id} has no file {name!r}")
        data = self.fs.cat_file(f"{folder}/{name}")
        if (actual := hashlib.sha256(data).hexdigest()) != entry.sha256:
            raise ChecksumMismatch(dataset_id, name, entry.sha256, actual)
        return data

    def verify(self, dataset_id: str) -> None:
        """Read every file of a version; raises ``ChecksumMismatch`` at the first altered one."""
        manifest = self.manifest(dataset_id)
        if manifest is None:
            raise FileNotFoundError(f"no dataset {dataset_id}")
        for entry in manifest.files:
            self.read(dataset_id, entry.name, manifest)

    def delete(self, dataset_id: str) -> bool:
        """Remove a version (its manifest first, so it stops existing at once); False when there was none."""
        folder = self._folder(dataset_id)
        if not self.fs.exists(folder):
            return False
        if self.local:
            doomed = Path(tempfile.mkdtemp(prefix=f".{dataset_id}-deleted-", dir=self.root))
            os.rename(folder, doomed / dataset_id)
            shutil.rmtree(doomed, ignore_errors=True)
            return True
        if self.fs.exists(f"{folder}/{MANIFEST}"):
            self.fs.rm_file(f"{folder}/{MANIFEST}")
        self.fs.rm(folder, recursive=True)
        return True
