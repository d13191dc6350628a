#!/usr/bin/env python3
"""The documented "bring your own AI gateway" flow, run with the official Foundry SDK.

It does exactly what the Foundry docs and the azure-ai-projects samples do, against any
endpoint (the real service or the local foundry-emulator):

    AIProjectClient -> agents.create_version(model="<connection>/<model>")
    -> get_openai_client() -> conversations.create -> responses.create(extra_body={agent ref})
    -> print the reply -> the same again with stream=True in the same conversation, checking the
    server-sent events (stream_check.py) and that the conversation holds the streamed turn
    -> delete the conversation and the agent version

With --use-existing-agent it creates no version: it reads the agent (made by someone else, such as
the operator) by name, references it by name only (so the service picks its latest version), and
deletes only the conversation.

TLS trust comes from the environment (SSL_CERT_FILE / REQUESTS_CA_BUNDLE).
Exit code 0 when every expectation held, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from azure.ai.projects import AIProjectClient
from azure.ai.projects.models import PromptAgentDefinition
from azure.core.credentials import AccessToken, AccessTokenInfo
import openai as openai_module

from stream_check import read_stream


class StaticTokenCredential:
    """A TokenCredential that returns one fixed bearer token for every scope."""

    def __init__(self, token: str) -> None:
        self._token = token

    def _expires_on(self) -> int:
        return int(time.time()) + 3600

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:  # noqa: ARG002
        return AccessToken(self._token, self._expires_on())

    def get_token_info(self, *scopes: str, options: object = None) -> AccessTokenInfo:  # noqa: ARG002
        return AccessTokenInfo(self._token, self._expires_on())

    def close(self) -> None:
        pass

    def __enter__(self) -> "StaticTokenCredential":
        return self

    def __exit__(self, *args: object) -> None:
        pass


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value else default


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--endpoint", default=env("FOUNDRY_PROJECT_ENDPOINT"),
                   help="project endpoint, e.g. https://127.0.0.1:PORT/api/projects/local-project "
                        "(env FOUNDRY_PROJECT_ENDPOINT)")
    p.add_argument("--token", default=env("FOUNDRY_TOKEN"),
                   help="static bearer token for the data plane (env FOUNDRY_TOKEN)")
    p.add_argument("--connection", default=env("FOUNDRY_CONNECTION"),
                   help="gateway connection name (env FOUNDRY_CONNECTION)")
    p.add_argument("--model", default=env("FOUNDRY_MODEL"),
                   help="model (deployment) name inside the connection (env FOUNDRY_MODEL)")
    p.add_argument("--agent-name", default=env("FOUNDRY_AGENT_NAME", "sdk-flow-agent"),
                   help="agent name (env FOUNDRY_AGENT_NAME, default sdk-flow-agent)")
    p.add_argument("--instructions", default=env("FOUNDRY_INSTRUCTIONS", "You are a helpful assistant."),
                   help="agent instructions")
    p.add_argument("--input", default=env("FOUNDRY_INPUT", "Say hello."),
                   help="user input sent in responses.create")
    p.add_argument("--expect", default=env("FOUNDRY_EXPECT_REPLY"),
                   help="expected reply text (exact match after trimming; env FOUNDRY_EXPECT_REPLY)")
    p.add_argument("--reference-form", choices=["agent", "agent_reference"],
                   default=env("FOUNDRY_REFERENCE_FORM", "agent_reference"),
                   help="key of the agent reference in extra_body: the current 'agent_reference' "
                        "or the legacy 'agent' (env FOUNDRY_REFERENCE_FORM)")
    p.add_argument("--expect-model-not-found", action="store_true",
                   default=env("FOUNDRY_EXPECT_MODEL_NOT_FOUND", "") in ("1", "true", "yes"),
                   help="expect responses.create to fail with the openai NotFoundError")
    p.add_argument("--no-stream", action="store_true",
                   default=env("FOUNDRY_NO_STREAM", "") in ("1", "true", "yes"),
                   help="skip the streamed response (env FOUNDRY_NO_STREAM)")
    p.add_argument("--use-existing-agent", action="store_true",
                   default=env("FOUNDRY_USE_EXISTING_AGENT", "") in ("1", "true", "yes"),
                   help="create no version: use the agent named --agent-name as it is, referenced "
                        "by name only, and leave it in place (env FOUNDRY_USE_EXISTING_AGENT)")
    args = p.parse_args(argv)
    required = ("endpoint", "token") if args.use_existing_agent else ("endpoint", "token", "connection", "model")
    missing = [n for n in required if not getattr(args, n)]
    if missing:
        p.error("missing: " + ", ".join("--" + m for m in missing))
    if not args.expect and not args.expect_model_not_found:
        p.error("give --expect TEXT or --expect-model-not-found")
    return args


def stream_in_conversation(openai, conversation_id: str, args: argparse.Namespace, reference: dict) -> bool:
    """responses.create(stream=True) in the conversation: the documented events, the expected
    text, and the streamed turn stored in the conversation. Model-not-found fails before the
    stream starts, with the same exception as without streaming."""
    try:
        stream = openai.responses.create(
            conversation=conversation_id,
            input=args.input,
            stream=True,
            extra_body={args.reference_form: reference},
        )
        result = read_stream(stream)
    except openai_module.NotFoundError as e:
        if args.expect_model_not_found:
            print(f"STREAM MODEL NOT FOUND: {e}")
            return True
        print(f"FAILED: unexpected NotFoundError when streaming: {e}")
        return False
    if args.expect_model_not_found:
        print("FAILED: expected a model-not-found error when streaming, got a stream")
        return False
    print(f"STREAMED EVENTS: {len(result.types)}")
    print(f"STREAMED REPLY: {result.text}")
    ok = True
    for problem in result.problems:
        print(f"FAILED: stream: {problem}")
        ok = False
    if result.text.strip() != args.expect.strip():
        print(f"FAILED: expected streamed reply {args.expect!r}, got {result.text!r}")
        ok = False
    newest = openai.conversations.items.list(conversation_id=conversation_id, order="desc", limit=1).data
    last = newest[0] if newest else None
    last_text = "".join(
        getattr(part, "text", "") for part in (getattr(last, "content", None) or [])
    )
    if getattr(last, "role", None) != "assistant" or last_text != result.text:
        print(f"FAILED: the conversation's last item is not the streamed reply: {last!r}")
        ok = False
    return ok


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    credential = StaticTokenCredential(args.token)
    model = f"{args.connection}/{args.model}"
    ok = True

    with AIProjectClient(endpoint=args.endpoint, credential=credential) as project:
        if args.use_existing_agent:
            details = project.agents.get(agent_name=args.agent_name)
            latest = details.versions.latest
            print(f"AGENT: {details.name} version {latest.version} model {latest.definition.model}")
            reference = {"name": details.name, "type": "agent_reference"}
        else:
            agent = project.agents.create_version(
                agent_name=args.agent_name,
                definition=PromptAgentDefinition(model=model, instructions=args.instructions),
            )
            print(f"AGENT: {agent.name} version {agent.version} model {model}")
            reference = {"name": agent.name, "version": agent.version, "type": "agent_reference"}
        openai = project.get_openai_client()
        conversation = openai.conversations.create(
            items=[{"type": "message", "role": "user", "content": "Hello from the SDK flow."}],
        )
        print(f"CONVERSATION: {conversation.id}")
        try:
            try:
                response = openai.responses.create(
                    conversation=conversation.id,
                    input=args.input,
                    extra_body={args.reference_form: reference},
                )
            except openai_module.NotFoundError as e:
                if args.expect_model_not_found:
                    print(f"MODEL NOT FOUND: {e}")
                else:
                    print(f"FAILED: unexpected NotFoundError: {e}")
                    ok = False
            else:
                reply = response.output_text
                served = (response.model_extra or {}).get("agent_reference") or {}
                if served:
                    print(f"SERVED BY: {served.get('name')} version {served.get('version')}")
                print(f"REPLY: {reply}")
                if args.expect_model_not_found:
                    print("FAILED: expected a model-not-found error, got a reply")
                    ok = False
                elif reply.strip() != args.expect.strip():
                    print(f"FAILED: expected reply {args.expect!r}, got {reply!r}")
                    ok = False
            if not args.no_stream:
                ok = stream_in_conversation(openai, conversation.id, args, reference) and ok
        finally:
            openai.conversations.delete(conversation_id=conversation.id)
            print(f"DELETED CONVERSATION: {conversation.id}")
            if not args.use_existing_agent:
                project.agents.delete_version(agent_name=agent.name, agent_version=agent.version)
                print(f"DELETED AGENT VERSION: {agent.name} {agent.version}")

    print("PASSED" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
