//! `cargo xtask demo --no-wait`, run as a user runs it: the whole stack, the operator with the
//! shipped RBAC, the samples, and the official SDK asking the agent the operator made.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::Command;

#[test]
fn the_demo_shows_active_gateways_a_versioned_agent_and_its_reply_then_stops() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let state = dir.path().join("demo");
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["demo", "--no-wait", "--dir"])
        .arg(&state)
        .output()
        .expect("the xtask runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "demo failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let table: Vec<&str> = stdout.lines().collect();
    for connection in ["apim-openai", "apim-entra", "litellm", "gateway-oauth"] {
        assert!(
            table.iter().any(|l| l.contains(&format!("/{connection} "))
                && l.contains(" True ")
                && l.contains(" Active ")),
            "GatewayConnection {connection} is not shown Ready and Active:\n{stdout}"
        );
    }
    assert!(
        table.iter().any(
            |l| l.contains("promptagent.gateway.foundry.dev/support-agent")
                && l.contains(" True ")
                && l.contains(" 1 ")
                && l.contains("litellm/gpt-4o")
        ),
        "the agent is not shown Ready at version 1:\n{stdout}"
    );
    assert!(
        stdout.contains("Agent support-agent (version 1) replied: Hello from the gateway (gpt-4o)"),
        "no reply of the LiteLLM mock through the SDK:\n{stdout}\n{stderr}"
    );
    // The stack's throwaway secrets are 48 hex digits (the LiteLLM key with `sk-` before them);
    // no such run may show up in anything the demo printed.
    for text in [&stdout, &stderr] {
        let leaked = text
            .split(|c: char| !c.is_ascii_hexdigit())
            .find(|run| run.len() >= 40);
        assert!(
            leaked.is_none(),
            "the demo printed a secret-like value:\n{text}"
        );
    }
    assert!(
        !state.exists(),
        "--no-wait left its state directory behind: {}",
        state.display()
    );
}
