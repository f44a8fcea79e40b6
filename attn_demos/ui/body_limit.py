"""A cap on each HTTP request's body, checked before the app reads it: an ASGI middleware that the
app's FastAPI server takes through `launch(app_kwargs={"middleware": [...]})`.

A request that announces a larger body (Content-Length) is answered 413 at once, unread; one that
does not (chunked) is counted as the app reads it, and stopped at the limit. Uploads (Gradio's
`/upload` route) have their own limit. Each refusal is one line naming the setting."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse

from attn_demos import settings

MB = 2**20
UPLOAD_ROUTE = "/upload"  # Gradio's upload route ends so (/gradio_api/upload)
MULTIPART_BYTES = 64 * 2**10  # the form's own bytes around an uploaded file


def body_limit() -> Middleware:
    """The middleware, with the limits of the settings in force."""
    limits = settings.current()
    return Middleware(
        BodyLimit,
        most=int(limits.max_body_mb * MB),
        upload_most=int(limits.max_upload_mb * MB) + MULTIPART_BYTES,
        refusal=f"Refused: a request's body may hold at most {settings.limit('max_body_mb')}.",
        upload_refusal=f"Refused: an upload may hold at most {settings.limit('max_upload_mb')}.",
    )


class TooLarge(HTTPException):
    def __init__(self, refusal: str) -> None:
        super().__init__(status_code=413, detail=refusal)


class BodyLimit:
    """ASGI middleware: refuse (413, one line) a request whose body is more than `most` bytes, or
    `upload_most` for an upload."""

    def __init__(self, app, most: int, upload_most: int, refusal: str, upload_refusal: str) -> None:
        self.app = app
        self.limits = {False: (most, refusal), True: (upload_most, upload_refusal)}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        most, refusal = self.limits[scope["path"].rstrip("/").endswith(UPLOAD_ROUTE)]
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > most:
            await PlainTextResponse(refusal, status_code=413)(scope, receive, send)  # the body is never read
            return
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > most:
                    raise TooLarge(refusal)  # the app answers it as any HTTPException (413)
            return message

        await self.app(scope, counted, send)
