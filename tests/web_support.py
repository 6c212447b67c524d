"""What the web tests share: Starlette's TestClient, and a real uvicorn server in a thread.

Starlette warns on importing its TestClient with httpx (it would like httpx2, which is not
a dependency); the warning is about Starlette's future, not about our code, so it is
silenced for that one import and pytest's filterwarnings=error holds everywhere else.
"""

from __future__ import annotations

import warnings

from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

__all__ = ["TestClient"]
