"""Runs LiteLLM's proxy app for the test bed, with the APIM-style model discovery routes added.

Why a launcher instead of the `litellm` command: Foundry's ApiManagement connections discover
models, when nothing else is configured, with `GET {target}/deployments` and
`GET {target}/deployments/{deploymentName}` and parse the AzureOpenAI (ARM deployment) shape
`{"value": [{"name", "properties": {"model": {"format", "name", "version"}}}]}` (reference
section 3.2). LiteLLM 1.102.4 serves the Azure-style inference route
`/openai/deployments/{model}/chat/completions` and the OpenAI-style `/v1/models`, but no deployment
list or get: `GET /openai/deployments[/name]` falls into its `/openai/{endpoint:path}`
pass-through to the real OpenAI. So this launcher imports LiteLLM's own FastAPI app, adds exactly
those two GET routes under `/openai` (built from the configured model list, behind the same
`user_api_key_auth` dependency as every LiteLLM route, so the custom auth hook applies), puts them
ahead of the pass-through, and runs the app with uvicorn over HTTPS.

It also stands in for a reasoning deployment (gpt-5, o-series): a model whose config entry has
`model_info.foundry_refuses_max_tokens: true` refuses every chat completion that carries
`max_tokens` with HTTP 400 and the error those deployments answer,
`{"error":{"message":"Unsupported parameter: 'max_tokens' is not supported with this model. Use
'max_completion_tokens' instead.","type":"invalid_request_error","param":"max_tokens",
"code":"unsupported_parameter"}}`, after the caller's credentials were accepted (a refused
caller still gets LiteLLM's 401). LiteLLM's own hooks cannot answer with that body (its
`ProxyException` puts the HTTP status into `code`, and `drop_params` would drop the parameter),
so `RefuseMaxTokens` wraps LiteLLM's ASGI app and answers before LiteLLM sees the request.

Everything else is LiteLLM's: config loading (`CONFIG_FILE_PATH`), mock responses, `/v1/models`,
`/v1/chat/completions`, `/openai/deployments/{model}/chat/completions`, `/health/liveliness`.

Secrets come from files (0600), not from the command line, so `ps` never shows them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from urllib.parse import unquote


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="LiteLLM proxy of the Foundry gateway test bed")
    p.add_argument("--config", required=True, help="LiteLLM config YAML")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ssl-certfile", required=True, help="server certificate (PEM)")
    p.add_argument("--ssl-keyfile", required=True, help="server private key (PEM)")
    p.add_argument("--master-key-file", required=True, help="file holding the master key")
    p.add_argument("--jwks-url", help="JWKS of the token server whose JWTs are accepted")
    p.add_argument("--jwt-audience", action="append", default=[], help="accepted `aud` (repeatable)")
    p.add_argument("--jwt-issuer", help="required `iss` of accepted JWTs")
    p.add_argument("--jwt-required-claims-file",
                   help="JSON list of claims a JWT of an audience must carry (read on every check)")
    p.add_argument("--ca-file", help="CA (PEM) trusted when fetching the JWKS")
    return p.parse_args(argv)


def configure_environment(args: argparse.Namespace) -> None:
    """Everything LiteLLM and the auth hook read from the environment, set before importing them."""
    with open(args.master_key_file, encoding="utf-8") as f:
        master_key = f.read().strip()
    # A stray database, Redis or proxy setting of the developer's shell must not change the gateway.
    for name in ("DATABASE_URL", "DIRECT_URL", "REDIS_HOST", "REDIS_URL", "STORE_MODEL_IN_DB",
                 "WORKER_CONFIG", "LITELLM_LICENSE"):
        os.environ.pop(name, None)
    os.environ.update({
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_MASTER_KEY": master_key,
        "CONFIG_FILE_PATH": os.path.abspath(args.config),
        "LITELLM_TELEMETRY": "False",
        "LITELLM_DONT_SHOW_FEEDBACK_BOX": "True",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "FOUNDRY_GATEWAY_JWKS_URL": args.jwks_url or "",
        "FOUNDRY_GATEWAY_JWT_AUDIENCES": ",".join(args.jwt_audience),
        "FOUNDRY_GATEWAY_JWT_ISSUER": args.jwt_issuer or "",
        "FOUNDRY_GATEWAY_REQUIRED_CLAIMS_FILE": os.path.abspath(args.jwt_required_claims_file)
        if args.jwt_required_claims_file else "",
        "FOUNDRY_GATEWAY_CA_FILE": args.ca_file or "",
    })


def add_discovery_routes(app, proxy_server) -> None:
    from fastapi import APIRouter, Depends
    from fastapi.responses import JSONResponse
    from litellm.proxy.auth.user_api_key_auth import user_api_key_auth

    def deployments() -> list[dict]:
        out = []
        for entry in proxy_server.llm_model_list or []:
            params = entry.get("litellm_params") or {}
            info = entry.get("model_info") or {}
            model = str(params.get("model", entry["model_name"])).split("/", 1)[-1]
            out.append({
                "id": entry["model_name"],
                "name": entry["model_name"],
                "type": "Microsoft.CognitiveServices/accounts/deployments",
                "properties": {
                    "model": {
                        "format": "OpenAI",
                        "name": info.get("foundry_model_name", model),
                        "version": info.get("foundry_model_version", ""),
                    },
                    "provisioningState": "Succeeded",
                },
            })
        return out

    router = APIRouter()

    @router.get("/openai/deployments", dependencies=[Depends(user_api_key_auth)])
    async def list_deployments() -> dict:
        return {"value": deployments()}

    @router.get("/openai/deployments/{deployment}", dependencies=[Depends(user_api_key_auth)])
    async def get_deployment(deployment: str):
        for item in deployments():
            if item["name"] == deployment:
                return item
        return JSONResponse(
            status_code=404,
            content={"error": {"code": "DeploymentNotFound",
                               "message": f"The API deployment {deployment} does not exist."}},
        )

    ours = list(router.routes)
    app.include_router(router)
    # Starlette matches in order: ahead of LiteLLM's `/openai/{endpoint:path}` pass-through.
    others = [r for r in app.router.routes if r not in ours]
    app.router.routes[:] = [*ours, *others]


# What a gpt-5 or o-series deployment answers to `max_tokens` (HTTP 400).
MAX_TOKENS_REFUSAL = {
    "error": {
        "message": "Unsupported parameter: 'max_tokens' is not supported with this model. "
                   "Use 'max_completion_tokens' instead.",
        "type": "invalid_request_error",
        "param": "max_tokens",
        "code": "unsupported_parameter",
    }
}

# `/openai/deployments/{d}/chat/completions`, `/engines/{m}/chat/completions` (model in the path).
_MODEL_IN_PATH = re.compile(r"/(?:deployments|engines)/([^/]+)/chat/completions/?$")


class RefuseMaxTokens:
    """ASGI wrapper of LiteLLM's app: reasoning-style models refuse `max_tokens` (module doc)."""

    def __init__(self, app, proxy_server) -> None:
        self.app = app
        self.proxy_server = proxy_server

    def _refusing_models(self) -> set[str]:
        return {
            entry["model_name"]
            for entry in self.proxy_server.llm_model_list or []
            if (entry.get("model_info") or {}).get("foundry_refuses_max_tokens") is True
        }

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "")
        if (scope["type"] != "http" or scope.get("method") != "POST"
                or not path.rstrip("/").endswith("/chat/completions")):
            return await self.app(scope, receive, send)
        refusing = self._refusing_models()
        if not refusing:
            return await self.app(scope, receive, send)

        # Read the whole body, then hand LiteLLM the same bytes.
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return await self.app(scope, _replay([message], receive), send)
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replay = _replay([{"type": "http.request", "body": body, "more_body": False}], receive)

        try:
            request = json.loads(body)
        except ValueError:
            request = None
        match = _MODEL_IN_PATH.search(path)
        model = unquote(match.group(1)) if match else (
            request.get("model") if isinstance(request, dict) else None)
        if model not in refusing or not isinstance(request, dict) or "max_tokens" not in request:
            return await self.app(scope, replay, send)

        from starlette.datastructures import Headers

        import foundry_gateway_auth

        try:
            foundry_gateway_auth.identify(Headers(scope=scope))
        except Exception:  # noqa: BLE001 - a refused caller gets LiteLLM's own 401
            return await self.app(scope, replay, send)
        payload = json.dumps(MAX_TOKENS_REFUSAL, separators=(",", ":")).encode()
        await send({
            "type": "http.response.start",
            "status": 400,
            "headers": [(b"content-type", b"application/json"),
                        (b"content-length", str(len(payload)).encode())],
        })
        await send({"type": "http.response.body", "body": payload})


def _replay(messages: list, receive):
    """A `receive` that yields `messages` first, then the real ones."""
    pending = list(messages)

    async def replayed():
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    configure_environment(args)
    # The auth hook module sits next to this file; LiteLLM imports it by name from the config.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

    import uvicorn
    import litellm.proxy.proxy_server as proxy_server

    add_discovery_routes(proxy_server.app, proxy_server)
    uvicorn.run(
        RefuseMaxTokens(proxy_server.app, proxy_server),
        host=args.host,
        port=args.port,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
        log_level="info",
        access_log=True,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
