"""Where the files of KV snapshots and adapters live: the home, or a shared store.

Every artifact is written first to its path under the home (``kv/<cube
id>/<id>.safetensors``, ``adapters/...``), the path its row records. With
``MEMOS_ARTIFACTS`` (``MemosConfig.artifacts``) naming a shared store, an
fsspec URL such as ``s3://bucket/prefix`` or ``file:///shared/folder``, it is
then put there under the same relative path, so every replica of a service on
any machine finds it:

- **Atomic writes.** An S3 object becomes visible whole when its upload
  completes; a folder gets a temporary name renamed into place. A reader never
  sees half an artifact.
- **Verified, cached reads.** :meth:`ArtifactFiles.fetch` gives a local copy
  under the home, checked against the BLAKE3 digest the row records: a copy
  already there with that digest is used as it is (the check itself is
  remembered per file, see :mod:`memos.store.files`); a missing or different
  one is downloaded to a temporary name, checked, and renamed into place.
- **Deletes** (removal, purge, budget eviction) remove the shared object and
  the local copy: a purge leaves no copy anywhere.

Without ``MEMOS_ARTIFACTS`` the home is the only place, exactly as before.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from memos.errors import ConfigError, StoreError
from memos.store.artifacts import locate
from memos.store.files import digest_matches, fsync_dir

#: Environment variables the S3 client reads besides the usual AWS ones.
S3_ENDPOINT_ENV = "MEMOS_S3_ENDPOINT_URL"


class ArtifactFiles:
    """The local home's artifact files and, when configured, their shared copies.

    Args:
        home: the store's home (local copies live under it).
        url: the shared store (``s3://bucket/prefix``, ``file:///folder``) or
            ``None`` for the home alone.
    """

    def __init__(self, home: Path, url: str | None) -> None:
        self.home = home
        self.url = url.rstrip("/") if url else None
        self._fs: Any = None
        self._root = ""

    @property
    def shared(self) -> bool:
        """Whether artifacts are also kept in a shared store."""
        return self.url is not None

    def _filesystem(self) -> tuple[Any, str]:
        if self._fs is None:
            assert self.url is not None
            import fsspec

            options: dict[str, Any] = {}
            if self.url.startswith("s3://"):
                endpoint = os.environ.get(S3_ENDPOINT_ENV)
                options = {
                    "config_kwargs": {"retries": {"max_attempts": 2}, "connect_timeout": 5},
                    "skip_instance_cache": True,
                }
                if endpoint:
                    options["client_kwargs"] = {"endpoint_url": endpoint}
            self._fs, self._root = fsspec.core.url_to_fs(self.url, **options)
            if hasattr(self._fs, "retries"):
                self._fs.retries = 2  # s3fs retries 5 times on top of botocore
        return self._fs, self._root

    def _remote(self, recorded: str) -> str:
        _, root = self._filesystem()
        return f"{root}/{recorded}"

    def check(self) -> None:
        """Fail now, in one line, when the shared store cannot be reached or is missing."""
        if not self.shared:
            return
        fs, root = self._filesystem()
        top = root.split("/", 1)[0] if self.url and self.url.startswith("s3://") else root
        try:
            fs.ls(top, detail=False)  # exists() can swallow a connection error as False
        except FileNotFoundError:
            raise ConfigError(f"artifact store {self.url} does not exist") from None
        except Exception as exc:  # botocore, aiohttp and OS errors alike
            raise ConfigError(f"artifact store {self.url} is unreachable: {exc}") from None

    def put(self, recorded: str) -> None:
        """Copy the local file of ``recorded`` to the shared store (atomically)."""
        if not self.shared:
            return
        local = self._local(recorded)
        fs, _ = self._filesystem()
        target = self._remote(recorded)
        try:
            if self.url and self.url.startswith("s3://"):
                fs.put_file(str(local), target)  # an object appears whole or not at all
            else:
                staging = f"{target}.{uuid.uuid4().hex[:8]}.tmp"
                fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
                fs.put_file(str(local), staging)
                fs.mv(staging, target)
        except Exception as exc:
            raise StoreError(f"could not store artifact {recorded} in {self.url}: {exc}") from None

    def fetch(self, recorded: str, digest: str) -> Path | None:
        """A local copy of ``recorded`` whose bytes have ``digest``, or ``None`` when
        there is none to be had (missing everywhere, or altered)."""
        local = self._local(recorded)
        if local.is_file() and digest_matches(local, digest):
            return local
        if not self.shared:
            return None
        fs, _ = self._filesystem()
        staging = local.with_name(f".{local.name}.{uuid.uuid4().hex[:8]}.download")
        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            fs.get_file(self._remote(recorded), str(staging))
            if not digest_matches(staging, digest):
                return None
            os.replace(staging, local)
            fsync_dir(local.parent)
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise StoreError(f"could not read artifact {recorded} from {self.url}: {exc}") from None
        finally:
            staging.unlink(missing_ok=True)
        return local

    def delete(self, recorded: str) -> None:
        """Remove the artifact's local copy and its shared object (if any)."""
        path = locate(self.home, recorded)
        if path is not None:
            path.unlink(missing_ok=True)
        if self.shared:
            fs, _ = self._filesystem()
            try:
                fs.rm(self._remote(recorded))
            except FileNotFoundError:
                pass
            except Exception as exc:
                raise StoreError(
                    f"could not delete artifact {recorded} from {self.url}: {exc}"
                ) from None

    def _local(self, recorded: str) -> Path:
        path = locate(self.home, recorded)
        if path is None:
            raise StoreError(f"artifact path {recorded!r} lies outside the home")
        return path
