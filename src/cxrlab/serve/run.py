"""``cxrlab serve``: start uvicorn on the app with the security defaults.

Loopback (127.0.0.1, localhost, ::1) is the default. Any other ``--host`` prints a warning and requires a token
(``--token`` or ``CXRLAB_SERVE_TOKEN``), checked on every ``/api`` call.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from cxrlab.errors import CxrlabError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
TOKEN_ENV = "CXRLAB_SERVE_TOKEN"


def resolve_token(host: str, token: str | None) -> str | None:
    """The token to require: given or from the environment; mandatory off loopback."""
    token = token or os.environ.get(TOKEN_ENV) or None
    if host not in LOOPBACK:
        if not token:
            raise CxrlabError(f"--host {host} exposes the service beyond this machine: give --token T (or set "
                              f"{TOKEN_ENV}); every API call must then send 'Authorization: Bearer T'")
        print(f"warning: serving on {host}, reachable from other machines; API calls need the token. "
              "Research use only.", file=sys.stderr)
    return token


def build(source: str | Path, which: str = "best", host: str = "127.0.0.1", token: str | None = None,
          laterality: str | None = None, **limits):
    """The app for ``source`` (run directory or .onnx) with ``limits`` (``Settings`` fields); ``laterality``: the
    OOD gate's left-right model when it is fitted here (``ServedModel``)."""
    from cxrlab.serve.app import Settings, create_app
    from cxrlab.serve.model import ServedModel

    settings = Settings(token=resolve_token(host, token), **limits)
    return create_app(ServedModel(source, which, laterality), settings)


def serve(source: str | Path, host: str = "127.0.0.1", port: int = 8000, which: str = "best",
          token: str | None = None, laterality: str | None = None, **limits) -> None:
    """Serve ``source`` until interrupted."""
    from cxrlab.extras import require_extra

    uvicorn = require_extra("serve", "uvicorn")
    app = build(source, which, host, token, laterality, **limits)
    shown = f"[{host}]" if ":" in host else host
    print(f"cxrlab serve: http://{shown}:{port}/  (Ctrl-C to stop)", file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_level="warning", limit_concurrency=64, server_header=False)
