"""What web pages need: the ``journeyman.js`` snippet, the demo shop, and CORS on ingest.

The snippet posts text/plain JSON with the write key in the body, a "simple" request that
needs no preflight; the answer must still allow the page's origin, or the page cannot read
it (nor a ``Retry-After``). Write keys are public in browsers, as Segment's are, so ``/v1``
allows any origin, without credentials. Nothing else in the API does: ``/api`` stays
same-origin.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from fastapi import APIRouter, Request, Response
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

router = APIRouter(tags=["browser"], include_in_schema=False)

SNIPPET_PATH = "/js/journeyman.js"
DEMO_SHOP_PATH = "/demo/shop"
INGEST_PREFIX = "/v1/"

# Short enough that a new version reaches every site within minutes; the ETag makes each
# revalidation a 304.
SNIPPET_CACHE_CONTROL = "public, max-age=300"


@dataclass(frozen=True)
class _Asset:
    content: bytes
    etag: str


@cache
def _asset(name: str) -> _Asset:
    content = (resources.files("journeyman.orchestrator.api") / "static" / name).read_bytes()
    return _Asset(content, f'"{hashlib.sha256(content).hexdigest()[:32]}"')


def _not_modified(request: Request, etag: str) -> bool:
    wanted = request.headers.get("if-none-match", "")
    return etag in (tag.strip() for tag in wanted.split(",")) or wanted.strip() == "*"


@router.get(SNIPPET_PATH)
async def snippet(request: Request) -> Response:
    """The browser snippet, cacheable, loadable from any site."""
    asset = _asset("journeyman.js")
    headers = {
        "Cache-Control": SNIPPET_CACHE_CONTROL,
        "ETag": asset.etag,
        "X-Content-Type-Options": "nosniff",
        # Lets sites load it with `crossorigin` and Subresource Integrity.
        "Access-Control-Allow-Origin": "*",
    }
    if _not_modified(request, asset.etag):
        return Response(status_code=304, headers=headers)
    return Response(
        asset.content, media_type="application/javascript; charset=utf-8", headers=headers
    )


@router.get(DEMO_SHOP_PATH)
async def demo_shop() -> Response:
    """A tiny beauty shop that sends its visitors' steps through the snippet.

    The write key comes from the page's address (``?writeKey=...``): the page holds no secret.
    """
    return Response(
        _asset("shop.html").content,
        media_type="text/html; charset=utf-8",
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


class IngestCors:
    """CORS for ``/v1`` only: any origin may POST, no credentials, ``Retry-After`` readable."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=["*"],
            allow_methods=["POST"],
            # Authorization: SDKs that send the write key as HTTP Basic, which needs a preflight.
            allow_headers=["Content-Type", "Content-Encoding", "Authorization"],
            allow_credentials=False,
            expose_headers=["Retry-After"],
            max_age=86400,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(INGEST_PREFIX):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)
