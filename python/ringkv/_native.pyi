# Type stub of the private native module (python/src/lib.rs). Checked by mypy.stubtest.
from typing import Any, List, Optional, Tuple

from typing_extensions import final

__all__ = ["NativeClient", "NativeError", "_at_exit"]

def _at_exit() -> None: ...

class NativeError(Exception): ...

@final
class NativeClient:
    def __new__(
        cls,
        seeds: List[str],
        r: Optional[int] = None,
        w: Optional[int] = None,
        pr: Optional[int] = None,
        pw: Optional[int] = None,
        timeout: Optional[float] = None,
        token: Optional[str] = None,
        tls: Optional[Tuple[str, Optional[str], Optional[str], Optional[str]]] = None,
        context_key: Optional[bytes] = None,
    ) -> NativeClient: ...
    @staticmethod
    def connect_async(
        seeds: List[str],
        r: Optional[int] = None,
        w: Optional[int] = None,
        pr: Optional[int] = None,
        pw: Optional[int] = None,
        timeout: Optional[float] = None,
        token: Optional[str] = None,
        tls: Optional[Tuple[str, Optional[str], Optional[str], Optional[str]]] = None,
        context_key: Optional[bytes] = None,
    ) -> Any: ...
    def get(
        self,
        bucket: str,
        key: bytes,
        r: Optional[int] = None,
        pr: Optional[int] = None,
        timeout: Optional[float] = None,
        touch: Optional[float] = None,
    ) -> Tuple[List[bytes], bytes]: ...
    def get_async(
        self,
        bucket: str,
        key: bytes,
        r: Optional[int] = None,
        pr: Optional[int] = None,
        timeout: Optional[float] = None,
        touch: Optional[float] = None,
    ) -> Any: ...
    def get_many(
        self,
        bucket: str,
        keys: List[bytes],
        r: Optional[int] = None,
        pr: Optional[int] = None,
        timeout: Optional[float] = None,
    ) -> List[
        Tuple[
            Optional[Tuple[List[bytes], bytes]],
            Optional[Tuple[str, str, Tuple[Any, Any, Any, Any, Any]]],
        ]
    ]: ...
    def get_many_async(
        self,
        bucket: str,
        keys: List[bytes],
        r: Optional[int] = None,
        pr: Optional[int] = None,
        timeout: Optional[float] = None,
    ) -> Any: ...
    def put(
        self,
        bucket: str,
        key: bytes,
        value: Optional[bytes],
        context: Optional[bytes] = None,
        w: Optional[int] = None,
        pw: Optional[int] = None,
        timeout: Optional[float] = None,
        overwrite: bool = False,
        dw: Optional[int] = None,
        ttl: Optional[float] = None,
    ) -> Tuple[List[str], List[str], List[bytes], bytes]: ...
    def put_async(
        self,
        bucket: str,
        key: bytes,
        value: Optional[bytes],
        context: Optional[bytes] = None,
        w: Optional[int] = None,
        pw: Optional[int] = None,
        timeout: Optional[float] = None,
        overwrite: bool = False,
        dw: Optional[int] = None,
        ttl: Optional[float] = None,
    ) -> Any: ...
    def flush(self, timeout: float) -> bool: ...
    def flush_async(self, timeout: float) -> Any: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
