"""What every Arbor MCP server shares: flat tools from one input model, error translation, transports."""

from __future__ import annotations

import argparse
import functools
import hmac
import inspect
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_type_hints

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from arbor.tools.errors import ArborError
from arbor.tools.netpolicy import is_loopback

In = TypeVar("In", bound=BaseModel)
Handler = Callable[[In, Context], Awaitable[Any]]
log = logging.getLogger("arbor.servers")


def _parameters(model: type[BaseModel]) -> tuple[list[inspect.Parameter], dict[str, Any]]:
    params, factory_defaults = [], {}
    for name, info in model.model_fields.items():
        if info.alias or info.validation_alias or info.discriminator:
            raise TypeError(f"{model.__name__}.{name}: aliases and discriminators do not survive flattening")
        annotation = Annotated[(info.annotation, *info.metadata, Field(description=info.description))]
        if info.is_required():
            default = inspect.Parameter.empty
        elif info.default_factory is not None:
            # The schema needs a value; the call drops it again so the model's factory runs per call.
            default = factory_defaults[name] = info.default_factory()  # type: ignore[call-arg]
        else:
            default = info.default
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                        annotation=annotation))
    return params, factory_defaults


def tool(server: MCPServer, model: type[In], name: str | None = None) -> Callable[[Handler], Handler]:
    """Register `handler(args: model, ctx)` as a tool whose arguments are the model's fields.

    The model validates the whole input (unknown arguments are refused, cross-field
    rules run) before the handler starts, and our own errors reach the client as
    clear `is_error` results.
    """

    params, factory_defaults = _parameters(model)

    def decorator(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(ctx: Context, **kwargs: Any) -> Any:
            given = {k: v for k, v in kwargs.items() if not (k in factory_defaults and v is factory_defaults[k])}
            try:
                args = model.model_validate(given)
            except ValidationError as exc:
                raise ToolError(f"invalid arguments: {exc}") from exc
            try:
                return await handler(args, ctx)
            except ArborError as exc:
                raise ToolError(str(exc)) from exc

        # Resolve the handler's (string) annotations in its own module, not in this one.
        returns = get_type_hints(handler).get("return", inspect.Signature.empty)
        wrapper.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context), *params],
            return_annotation=returns,
        )
        wrapper.__annotations__ = {"ctx": Context, "return": returns}
        tool_name = name or handler.__name__
        server.add_tool(wrapper, name=tool_name, description=(handler.__doc__ or "").strip())
        _refuse_unknown_arguments(server, tool_name)
        return handler

    return decorator


def _refuse_unknown_arguments(server: MCPServer, name: str) -> None:
    # The SDK's argument model ignores unknown keys; a misspelt argument must be an error instead.
    registered = server._tool_manager.get_tool(name)
    base = registered.fn_metadata.arg_model
    strict = type(f"{base.__name__}Strict", (base,), {"model_config": ConfigDict(extra="forbid",
                                                                                 arbitrary_types_allowed=True)})
    registered.fn_metadata.arg_model = strict
    registered.parameters = strict.model_json_schema(by_alias=True)  # publish additionalProperties: false


class Progress:
    """Forward progress to the MCP client, never failing the tool if the client went away."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def __call__(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        try:
            await self.ctx.report_progress(progress, total, message)
        except Exception:  # noqa: BLE001 - progress is advisory; the work goes on
            log.debug("progress notification dropped", exc_info=True)


class BearerAuth:
    """ASGI middleware: every HTTP request must carry `Authorization: Bearer <token>`."""

    def __init__(self, app: Any, token: str) -> None:
        self.app, self.expected = app, f"Bearer {token}".encode()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"text/plain"), (b"www-authenticate", b"Bearer")]})
                await send({"type": "http.response.body", "body": b"missing or wrong bearer token\n"})
                return
        await self.app(scope, receive, send)


def transport_args(description: str, argv: list[str] | None = None,
                   extra: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """Parse the transport flags every server takes (stdio by default, --http for streamable HTTP)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP at /mcp instead of stdio")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default loopback)")
    parser.add_argument("--port", type=int, default=8000, help="HTTP port")
    parser.add_argument("--token", default=os.environ.get("ARBOR_MCP_TOKEN"),
                        help="bearer token required on HTTP (required off loopback; env ARBOR_MCP_TOKEN)")
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    if args.http and not is_loopback(args.host) and not args.token:
        parser.error(f"binding {args.host} (not loopback) requires --token or ARBOR_MCP_TOKEN")
    if not 1 <= args.port <= 65535:
        parser.error("--port must be in 1..65535")
    return args


def serve(server: MCPServer, args: argparse.Namespace) -> None:
    """Run `server` on stdio or streamable HTTP as `args` say."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if not args.http:
        server.run()
        return
    import uvicorn

    app: Any = server.streamable_http_app(host=args.host)
    if args.token:
        app = BearerAuth(app, args.token)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


def run_with_root(create: Callable[[Path | None], MCPServer], description: str, argv: list[str] | None = None,
                  flag: str = "--runs-root", help_text: str = "folder that holds run folders") -> None:
    """The `main()` of a server whose only setting besides the transport is its root folder."""

    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(flag, type=Path, default=None, dest="root", help=help_text)

    args = transport_args(description, argv, extra)
    serve(create(args.root), args)
