#!/usr/bin/env python3
"""The project data plane beyond the documented flow, called through the official Foundry SDK.

Each step prints one line `OK: <what>` or `FAILED: <what>: <why>`; the exit code is 0 only when
every step passed. Against the emulator (or the service) it checks:

- connections: project.connections.list() / get() / get(include_credentials=True) show the
  gateway connection --connection, without secrets unless asked;
- deployments: project.deployments.list() / get("<connection>/<model>") show the connection's
  model with connection_name set;
- agents: POST /agents on an existing name adds a version (the SDK has no method for it, so it
  goes through project.send_request, the SDK's own pipeline); state and agent_guid are read;
  disable() / enable(); a draft needs allow_preview and is never "latest"; the `_project`
  alias of the endpoint reaches the same project;
- responses (openai client from get_openai_client()): a streamed response without a
  conversation, its replay with responses.retrieve(stream=True, starting_after=N),
  input_items.list, cancel of a foreground response refused, a background response that
  completes, a background response cancelled while its gateway hangs (--hanging-connection),
  delete.

TLS trust comes from the environment (SSL_CERT_FILE / REQUESTS_CA_BUNDLE).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Callable

from azure.ai.projects import AIProjectClient
from azure.ai.projects.models import PromptAgentDefinition
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.rest import HttpRequest
import openai as openai_module

from flow import StaticTokenCredential, env
from stream_check import TEXT_EVENTS, read_stream


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--endpoint", default=env("FOUNDRY_PROJECT_ENDPOINT"), help="project endpoint")
    p.add_argument("--token", default=env("FOUNDRY_TOKEN"), help="data-plane bearer token (env FOUNDRY_TOKEN)")
    p.add_argument("--connection", required=True, help="a gateway connection with a static model list and an API key")
    p.add_argument("--model", required=True, help="a model of --connection")
    p.add_argument("--expect", required=True, help="the reply of --model")
    p.add_argument("--connection-key", default=env("FOUNDRY_CONNECTION_KEY"),
                   help="the API key of --connection, for get(include_credentials=True) (env FOUNDRY_CONNECTION_KEY)")
    p.add_argument("--hanging-connection", default=None,
                   help="a gateway connection whose gateway never answers, with model --model")
    p.add_argument("--agent-prefix", default="sdk-surface", help="prefix of the agents created")
    args = p.parse_args(argv)
    if not args.endpoint or not args.token:
        p.error("--endpoint and --token (or FOUNDRY_TOKEN) are required")
    return args


class Checks:
    """Runs named steps; a step fails by raising or by returning a message."""

    def __init__(self) -> None:
        self.ok = True

    def step(self, what: str, fn: Callable[[], str | None]) -> None:
        try:
            problem = fn()
        except Exception as e:  # noqa: BLE001 - every failure is reported, then the next step runs
            problem = f"{type(e).__name__}: {e}"
        if problem:
            print(f"FAILED: {what}: {problem}")
            self.ok = False
        else:
            print(f"OK: {what}")


def expect_equal(what: str, got: Any, want: Any) -> str | None:
    return None if got == want else f"{what} is {got!r}, expected {want!r}"


def first_problem(*problems: str | None) -> str | None:
    return next((p for p in problems if p), None)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    credential = StaticTokenCredential(args.token)
    model = f"{args.connection}/{args.model}"
    agent = f"{args.agent_prefix}-agent"
    hanging_agent = f"{args.agent_prefix}-hanging"
    checks = Checks()
    created: list[str] = []

    with AIProjectClient(endpoint=args.endpoint, credential=credential) as project, \
            AIProjectClient(endpoint=args.endpoint, credential=credential, allow_preview=True) as preview:

        # --- connections -------------------------------------------------------------------
        def connections_list() -> str | None:
            found = [c for c in project.connections.list() if c.name == args.connection]
            if len(found) != 1:
                return f"{args.connection} not in the list"
            c = found[0]
            return first_problem(
                expect_equal("type", c.type, "ModelGateway"),
                expect_equal("credentials.type", c.credentials.type, "ApiKey"),
                None if getattr(c.credentials, "api_key", None) is None else "the list shows the key",
                None if c.id.endswith(f"/connections/{args.connection}") else f"id {c.id}",
                expect_equal("is_default", c.is_default, False),
            )
        checks.step("connections.list() shows the gateway connection without its key", connections_list)

        def connections_get() -> str | None:
            c = project.connections.get(args.connection)
            with_key = project.connections.get(args.connection, include_credentials=True)
            return first_problem(
                expect_equal("name", c.name, args.connection),
                None if getattr(c.credentials, "api_key", None) is None else "get() shows the key",
                expect_equal("key with include_credentials", with_key.credentials.api_key, args.connection_key)
                if args.connection_key else None,
                expect_equal("metadata.deploymentInPath", c.metadata.get("deploymentInPath"), "false"),
            )
        checks.step("connections.get() hides the key unless include_credentials=True", connections_get)

        def connections_missing() -> str | None:
            try:
                project.connections.get("no-such-connection")
            except ResourceNotFoundError:
                return None
            return "no ResourceNotFoundError"
        checks.step("connections.get() of an unknown name raises ResourceNotFoundError", connections_missing)

        # --- deployments -------------------------------------------------------------------
        def deployments() -> str | None:
            listed = {d.name: d for d in project.deployments.list()}
            d = listed.get(model)
            if d is None:
                return f"{model} not in {sorted(listed)}"
            one = project.deployments.get(model)
            return first_problem(
                expect_equal("type", d.type, "ModelDeployment"),
                expect_equal("connection_name", d.connection_name, args.connection),
                expect_equal("model_name", d.model_name, args.model),
                expect_equal("get(name).name", one.name, model),
            )
        checks.step("deployments.list()/get() show <connection>/<model> with connection_name", deployments)

        # --- agents ------------------------------------------------------------------------
        definition = PromptAgentDefinition(model=model, instructions="You are a helpful assistant.")
        first = project.agents.create_version(agent_name=agent, definition=definition)
        created.append(agent)

        def create_existing() -> str | None:
            body = {"name": agent, "definition": definition.as_dict()}
            response = project.send_request(HttpRequest("POST", "/agents?api-version=v1", json=body))
            if response.status_code != 200:
                return f"POST /agents answered {response.status_code}: {response.text()}"
            latest = response.json()["versions"]["latest"]["version"]
            return expect_equal("versions.latest.version", latest, str(int(first.version) + 1))
        checks.step("POST /agents on an existing name creates a new version", create_existing)

        def state_and_guid() -> str | None:
            details = project.agents.get(agent_name=agent)
            guid = details.versions.latest.agent_guid
            problem = first_problem(
                expect_equal("state", details.state, "enabled"),
                expect_equal("configuration_state", details.configuration_state, "enabled"),
                None if guid and len(guid) == 36 else f"agent_guid {guid!r}",
                expect_equal("status", details.versions.latest.status, "active"),
            )
            if problem:
                return problem
            project.agents.disable(agent)
            disabled = project.agents.get(agent_name=agent).state
            project.agents.enable(agent)
            return first_problem(
                expect_equal("state after disable()", disabled, "disabled"),
                expect_equal("state after enable()", project.agents.get(agent_name=agent).state, "enabled"),
            )
        checks.step("agents carry state and agent_guid; disable()/enable() change state", state_and_guid)

        def drafts() -> str | None:
            try:
                project.agents.create_version(agent_name=agent, definition=definition, draft=True)
                return "a draft without allow_preview was accepted"
            except HttpResponseError as e:
                if e.status_code != 403 or "allow_preview" not in str(e):
                    return f"without allow_preview: {e.status_code} {e}"
            latest_before = project.agents.get(agent_name=agent).versions.latest.version
            draft = preview.agents.create_version(agent_name=agent, definition=definition, draft=True)
            listed = [v.version for v in project.agents.list_versions(agent_name=agent)]
            with_drafts = [v.version for v in project.agents.list_versions(agent_name=agent, include_drafts=True)]
            return first_problem(
                expect_equal("draft", draft.draft, True),
                expect_equal("latest after the draft", project.agents.get(agent_name=agent).versions.latest.version,
                             latest_before),
                None if draft.version not in listed else f"the draft is listed by default: {listed}",
                None if draft.version in with_drafts else f"the draft is not listed with include_drafts: {with_drafts}",
            )
        checks.step("a draft needs allow_preview and is not latest", drafts)

        def alias() -> str | None:
            base = args.endpoint.rsplit("/api/projects/", 1)[0]
            with AIProjectClient(endpoint=f"{base}/api/projects/_project", credential=credential) as default:
                return expect_equal("agent name via _project", default.agents.get(agent_name=agent).name, agent)
        checks.step("the _project endpoint reaches the default project", alias)

        # --- responses ---------------------------------------------------------------------
        openai = project.get_openai_client()
        reference = {"type": "agent_reference", "name": agent}
        streamed: dict[str, Any] = {}

        def stream_without_conversation() -> str | None:
            stream = openai.responses.create(input="Say hello.", stream=True, extra_body={"agent_reference": reference})
            result = read_stream(stream)
            streamed["id"] = result.response_id
            streamed["count"] = len(result.types)
            return first_problem(
                "; ".join(result.problems) or None,
                expect_equal("streamed text", result.text, args.expect),
                expect_equal("conversation", getattr(result.completed, "conversation", None), None),
            )
        checks.step("responses.create(stream=True) without a conversation", stream_without_conversation)

        def replay() -> str | None:
            rid = streamed.get("id")
            if not rid:
                return "no streamed response to replay"
            stored = openai.responses.retrieve(rid)
            events = openai.responses.retrieve(rid, stream=True, starting_after=1)
            result = read_stream(events, first_sequence=2, expected_types=TEXT_EVENTS[2:])
            return first_problem(
                expect_equal("retrieved output_text", stored.output_text, args.expect),
                "; ".join(result.problems) or None,
                expect_equal("replayed events", len(result.types), streamed["count"] - 2),
            )
        checks.step("responses.retrieve(stream=True, starting_after=1) replays the rest", replay)

        def input_items_and_cancel() -> str | None:
            response = openai.responses.create(
                input=[{"role": "user", "content": "first"}, {"role": "user", "content": "second"}],
                extra_body={"agent_reference": reference},
            )
            items = openai.responses.input_items.list(response.id, order="asc")
            texts = [item.content[0].text for item in items]
            problem = expect_equal("input item texts", texts, ["first", "second"])
            if problem:
                return problem
            try:
                openai.responses.cancel(response.id)
                return "cancel of a foreground response succeeded"
            except openai_module.BadRequestError:
                pass
            openai.responses.delete(response.id)
            try:
                openai.responses.retrieve(response.id)
                return "the deleted response is still there"
            except openai_module.NotFoundError:
                return None
        checks.step("input_items.list, cancel refused without background, delete", input_items_and_cancel)

        def background() -> str | None:
            response = openai.responses.create(input="Say hello.", background=True,
                                               extra_body={"agent_reference": reference})
            if response.status not in ("queued", "in_progress", "completed"):
                return f"status {response.status}"
            deadline = time.monotonic() + 30
            while response.status in ("queued", "in_progress") and time.monotonic() < deadline:
                time.sleep(0.2)
                response = openai.responses.retrieve(response.id)
            return first_problem(
                expect_equal("status", response.status, "completed"),
                expect_equal("output_text", response.output_text, args.expect),
            )
        checks.step("a background response completes", background)

        if args.hanging_connection:
            def cancel_background() -> str | None:
                project.agents.create_version(
                    agent_name=hanging_agent,
                    definition=PromptAgentDefinition(model=f"{args.hanging_connection}/{args.model}"),
                )
                created.append(hanging_agent)
                response = openai.responses.create(
                    input="Say hello.", background=True,
                    extra_body={"agent_reference": {"type": "agent_reference", "name": hanging_agent}},
                )
                cancelled = openai.responses.cancel(response.id)
                time.sleep(0.5)
                after = openai.responses.retrieve(response.id)
                return first_problem(
                    expect_equal("status when queued", response.status, "queued"),
                    expect_equal("status after cancel", cancelled.status, "cancelled"),
                    expect_equal("status later", after.status, "cancelled"),
                )
            checks.step("responses.cancel() stops a background response", cancel_background)

        for name in created:
            project.agents.delete(agent_name=name)
        print(f"DELETED AGENTS: {', '.join(created)}")

    print("PASSED" if checks.ok else "FAILED")
    return 0 if checks.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
