"""Run one facade operation through the sync or the async client, so each rule is tested on both."""

from __future__ import annotations

import asyncio
from typing import Any

from binance_userstream import AsyncUserDataStream, UserDataStream


class Facade:
    """Calls an operation on a fresh UserDataStream or AsyncUserDataStream built with `options`."""

    def __init__(self, mode: str, **options: Any) -> None:
        self.mode = mode
        self.options = options

    def __call__(self, operation: str, *args: Any) -> Any:
        if self.mode == "sync":
            with UserDataStream(**self.options) as uds:
                return getattr(uds, operation)(*args)
        return asyncio.run(self._async(operation, *args))

    async def _async(self, operation: str, *args: Any) -> Any:
        async with AsyncUserDataStream(**self.options) as uds:
            return await getattr(uds, operation)(*args)
