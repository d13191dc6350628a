//! `cargo xtask demo --no-wait`, run as a user runs it: the whole stack, the operator with the
//! shipped RBAC, the samples, and the official SDK asking the agent the operator made; and the
//! same with `--pods` (the operator as the chart's pods on a node of the test bed) on a machine
//! that can run the node, which must be as it was afterwards.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::Command;
use std::sync::Mutex;

use foundry_gateway_testbed::node::{self, HostSnapshot};

/// The two demos run one after the other: each is a whole stack.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn the_demo_shows_active_gateways_a_versioned_agent_and_its_reply_then_stops() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    run_demo(&[]);
}

#[test]
fn the_demo_with_the_operator_as_helm_installed_pods_does_the_same_and_restores_the_machine() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(err) = node::host_capabilities() {
        eprintln!("Skipping: this machine cannot run the test bed's node: {err}");
        return;
    }
    let packages = node::ensure_node_packages().expect("the node's packages install");
    let before = HostSnapshot::take(&packages);
    let stderr = run_demo(&["--pods"]);
    assert!(
        stderr.contains("helm install") && stderr.contains("foundry-gateway-operator-"),
        "the operator ran as the chart's pods:\n{stderr}"
    );
    let left = before.differences(&HostSnapshot::take(&packages));
    assert!(
        left.is_empty(),
        "the machine is as found:\n{}",
        left.join("\n")
    );
}

/// Runs the demo with `extra` flags and checks what it printed; returns its stderr.
fn run_demo(extra: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let state = dir.path().join("demo");
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["demo", "--no-wait"])
        .args(extra)
        .arg("--dir")
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
    stderr.into_owned()
}
