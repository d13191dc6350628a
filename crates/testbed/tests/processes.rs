//! Process supervision and startup failures, without Kubernetes: fake binaries and `sleep`.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use foundry_gateway_testbed::process::{Launcher, Mode, ProcessSpec};
use foundry_gateway_testbed::{Error, KubeBinaries, Options, Testbed, random_hex};

fn scratch_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("testbed-test-{}", random_hex(6)));
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// An executable shell script standing in for a binary.
fn script(dir: &Path, name: &str, body: &str) -> std::io::Result<PathBuf> {
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n"))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

fn sleeper(dir: &Path) -> ProcessSpec {
    ProcessSpec {
        name: "sleeper".to_owned(),
        program: PathBuf::from("sleep"),
        args: vec!["600".into()],
        log: dir.join("sleeper.log"),
        cwd: dir.to_path_buf(),
        env: Vec::new(),
    }
}

#[test]
fn an_attached_process_is_ended_when_its_owner_exits() {
    let dir = scratch_dir().unwrap();
    let mut owner = Command::new("sleep").arg("1").spawn().unwrap();
    let mut launcher = Launcher::new(&dir, Mode::Attached { owner: owner.id() }, false).unwrap();
    launcher.spawn(&sleeper(&dir)).unwrap();
    owner.wait().unwrap();

    let (mut processes, _watchdog) = launcher.into_parts();
    let deadline = Instant::now() + Duration::from_secs(10);
    while processes[0].is_running() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !processes[0].is_running(),
        "the watchdog did not end the process"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn stopping_an_attached_process_ends_it_while_its_owner_lives() {
    let dir = scratch_dir().unwrap();
    let mut launcher = Launcher::new(&dir, Mode::attached_to_this_process(), false).unwrap();
    let process = launcher.spawn(&sleeper(&dir)).unwrap();
    assert!(process.is_running());
    process.terminate(Duration::from_secs(5)).unwrap();
    assert!(!process.is_running());
    assert!(process.exit_status().is_some());
    launcher.abort();
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_binary_that_dies_during_startup_fails_the_start_with_the_end_of_its_log() {
    let dir = scratch_dir().unwrap();
    let fake_etcd = script(
        &dir,
        "etcd",
        "echo 'fatal: the disk is on fire' >&2\nexit 3",
    )
    .unwrap();
    let state = dir.join("state");
    let err = Testbed::start(Options {
        state_dir: Some(state.clone()),
        binaries: Some(KubeBinaries {
            etcd: fake_etcd,
            kube_apiserver: PathBuf::from("unused"),
        }),
        ready_timeout: Duration::from_secs(20),
        ..Options::default()
    })
    .unwrap_err();

    assert!(
        matches!(err, Error::ExitedDuringStartup { ref name, .. } if name == "etcd"),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("the disk is on fire"), "{message}");
    assert!(message.contains("exit status: 3"), "{message}");
    assert!(
        state.join("logs/etcd.log").is_file(),
        "a given state dir keeps its logs"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_binary_that_never_answers_fails_the_start_after_the_timeout() {
    let dir = scratch_dir().unwrap();
    let silent_etcd = script(&dir, "etcd", "echo 'waiting forever'\nexec sleep 600").unwrap();
    let started = Instant::now();
    let err = Testbed::start(Options {
        state_dir: None,
        binaries: Some(KubeBinaries {
            etcd: silent_etcd,
            kube_apiserver: PathBuf::from("unused"),
        }),
        ready_timeout: Duration::from_secs(2),
        ..Options::default()
    })
    .unwrap_err();

    assert!(started.elapsed() < Duration::from_secs(15));
    let message = err.to_string();
    assert!(matches!(err, Error::NotReady { .. }), "{err:?}");
    assert!(message.contains("waiting forever"), "{message}");
    fs::remove_dir_all(&dir).unwrap();
}
