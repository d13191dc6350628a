//! Child processes of the test bed: started detached (they outlive the caller, for the CLI) or
//! attached (a watchdog ends them when the owner process disappears, for test runs, which have no
//! global teardown).

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::state::ProcessRecord;
use crate::{Error, Result};

/// How the processes of a test bed are tied to their starter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Each process runs in its own session and survives the starter (`cargo xtask testbed up`).
    Detached,
    /// A watchdog terminates the processes within a second or two of `owner` disappearing.
    Attached {
        /// The pid whose end ends the test bed.
        owner: u32,
    },
}

impl Mode {
    /// Attached to the calling process.
    pub fn attached_to_this_process() -> Self {
        Self::Attached {
            owner: std::process::id(),
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    /// A short name for messages and the state file (`etcd`, `kube-apiserver`).
    pub name: String,
    /// The executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// The file that receives its stdout and stderr.
    pub log: PathBuf,
    /// Its working directory.
    pub cwd: PathBuf,
    /// Changes to the inherited environment, in order: `Some` sets a variable, `None` removes it.
    pub env: Vec<(OsString, Option<OsString>)>,
}

/// A running (or finished) process of the test bed. When this value was made by the process that
/// spawned it, it holds the [`Child`]; when it was read back from a state file, only the pid.
#[derive(Debug)]
pub struct ManagedProcess {
    name: String,
    pid: u32,
    program: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    /// What started it, when this process did: what [`ManagedProcess::respawn`] runs again.
    started_as: Option<(ProcessSpec, Mode)>,
}

impl ManagedProcess {
    /// Starts `spec` in `mode`: detached through `setsid`, attached as a plain child.
    pub fn spawn(spec: &ProcessSpec, mode: Mode) -> Result<Self> {
        Self::spawn_logging(spec, mode, File::create(&spec.log))
    }

    fn spawn_logging(spec: &ProcessSpec, mode: Mode, log: std::io::Result<File>) -> Result<Self> {
        let log = log.map_err(|source| Error::WriteFile {
            path: spec.log.clone(),
            source,
        })?;
        let log_err = log.try_clone().map_err(|source| Error::WriteFile {
            path: spec.log.clone(),
            source,
        })?;
        let mut command = match mode {
            Mode::Detached => {
                // The child is not a process group leader, so setsid execs in place and the pid
                // stays that of the real program.
                let mut command = Command::new("setsid");
                command.arg(&spec.program);
                command
            }
            Mode::Attached { .. } => Command::new(&spec.program),
        };
        for (name, value) in &spec.env {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        command
            .args(&spec.args)
            .current_dir(&spec.cwd)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let child = command.spawn().map_err(|source| Error::Spawn {
            program: spec.program.display().to_string(),
            source,
        })?;
        Ok(Self {
            name: spec.name.clone(),
            pid: child.id(),
            program: spec.program.clone(),
            log: spec.log.clone(),
            child: Some(child),
            started_as: Some((spec.clone(), mode)),
        })
    }

    /// Stops the process (SIGTERM, then SIGKILL after `grace`), waits `down`, and starts it again
    /// as it was started, its log appended to. Only for a process this value started.
    pub fn respawn(&mut self, grace: Duration, down: Duration) -> Result<()> {
        let Some((spec, mode)) = self.started_as.clone() else {
            return Err(Error::NoProcess {
                name: self.name.clone(),
            });
        };
        self.terminate(grace)?;
        thread::sleep(down);
        let log = OpenOptions::new().append(true).create(true).open(&spec.log);
        *self = Self::spawn_logging(&spec, mode, log)?;
        Ok(())
    }

    /// A process known only from a state file.
    pub fn from_record(record: &ProcessRecord) -> Self {
        Self {
            name: record.name.clone(),
            pid: record.pid,
            program: record.program.clone(),
            log: record.log.clone(),
            child: None,
            started_as: None,
        }
    }

    /// What the state file keeps of this process.
    pub fn record(&self) -> ProcessRecord {
        ProcessRecord {
            name: self.name.clone(),
            pid: self.pid,
            program: self.program.clone(),
            log: self.log.clone(),
        }
    }

    /// Its short name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Its log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// `Some(description)` once the process is known to have exited.
    pub fn exit_status(&mut self) -> Option<String> {
        match &mut self.child {
            Some(child) => match child.try_wait() {
                Ok(Some(status)) => Some(status.to_string()),
                Ok(None) => None,
                Err(err) => Some(format!("unknown status: {err}")),
            },
            None => (!pid_runs(self.pid, &self.program)).then(|| "exited".to_owned()),
        }
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        self.exit_status().is_none()
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }

    /// SIGTERM, up to `grace` for it to exit, then SIGKILL.
    pub fn terminate(&mut self, grace: Duration) -> Result<()> {
        if !self.is_running() {
            return Ok(());
        }
        signal(self.pid, "TERM");
        if self.wait_for_exit(grace) {
            return Ok(());
        }
        signal(self.pid, "KILL");
        if self.wait_for_exit(Duration::from_secs(5)) {
            Ok(())
        } else {
            Err(Error::Stop {
                name: self.name.clone(),
                pid: self.pid,
            })
        }
    }

    /// SIGKILL, with no grace: the process gets no chance to clean up (a crash, as tests need).
    /// Waits until it is gone.
    pub fn kill(&mut self) -> Result<()> {
        if !self.is_running() {
            return Ok(());
        }
        signal(self.pid, "KILL");
        if self.wait_for_exit(Duration::from_secs(5)) {
            Ok(())
        } else {
            Err(Error::Stop {
                name: self.name.clone(),
                pid: self.pid,
            })
        }
    }

    fn wait_for_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.is_running() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Whether `pid` is alive and still runs `program` (a pid from an old state file may have been
/// reused). Zombies count as dead.
fn pid_runs(pid: u32, program: &Path) -> bool {
    let proc_dir = Path::new("/proc");
    if proc_dir.join("self").exists() {
        let Ok(cmdline) = fs::read(proc_dir.join(pid.to_string()).join("cmdline")) else {
            return false;
        };
        let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
        let argv0 = Path::new(std::str::from_utf8(argv0).unwrap_or_default());
        return !cmdline.is_empty() && argv0.file_name() == program.file_name();
    }
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(err) => format!("(cannot read {}: {err})", path.display()),
    }
}

/// The watchdog of an attached test bed: a shell loop that polls the owner once a second and, when
/// it is gone, stops every pid listed in a file, newest first (kube-apiserver hangs on SIGTERM once
/// etcd is gone), then optionally removes the state directory. Zombies count as gone: the init
/// process of some machines reaps orphans only every few seconds.
const WATCHDOG_SCRIPT: &str = r#"
owner=$1 pids=$2 dir=$3
trap '' INT HUP
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  case $(ps -o stat= -p "$1" 2>/dev/null) in Z*) return 1 ;; esac
}
while alive "$owner"; do sleep 1; done
order=
for p in $(cat "$pids" 2>/dev/null); do order="$p $order"; done
for p in $order; do
  alive "$p" || continue
  kill -TERM "$p" 2>/dev/null
  i=0
  while [ "$i" -lt 40 ] && alive "$p"; do sleep 0.25; i=$((i + 1)); done
  alive "$p" && kill -KILL "$p" 2>/dev/null
done
if [ -n "$dir" ]; then sleep 0.2; rm -rf "$dir"; fi
"#;

/// Ends the processes of an attached test bed when its owner process ends.
#[derive(Debug)]
pub struct Watchdog {
    child: Child,
    pids_file: PathBuf,
}

impl Watchdog {
    /// Starts watching `owner`. With `remove_dir`, the watchdog deletes `dir` after the processes.
    pub fn start(owner: u32, dir: &Path, remove_dir: bool) -> Result<Self> {
        let pids_file = dir.join("attached.pids");
        File::create(&pids_file).map_err(|source| Error::WriteFile {
            path: pids_file.clone(),
            source,
        })?;
        let remove: &Path = if remove_dir { dir } else { Path::new("") };
        let child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg("foundry-testbed-watchdog")
            .arg(owner.to_string())
            .arg(&pids_file)
            .arg(remove)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: a Ctrl-C aimed at the test run must not skip the cleanup.
            .process_group(0)
            .spawn()
            .map_err(|source| Error::Spawn {
                program: "sh".to_owned(),
                source,
            })?;
        Ok(Self { child, pids_file })
    }

    /// Adds `pid` to the processes ended with the owner.
    pub fn watch(&self, pid: u32) -> Result<()> {
        let mut file = OpenOptions::new()
            .append(true)
            .open(&self.pids_file)
            .map_err(|source| Error::WriteFile {
                path: self.pids_file.clone(),
                source,
            })?;
        writeln!(file, "{pid}").map_err(|source| Error::WriteFile {
            path: self.pids_file.clone(),
            source,
        })
    }

    /// Stops the watchdog itself, before the processes are stopped by other means (so it never
    /// signals a pid that was reused after they exited).
    pub fn disarm(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the processes of one test bed in one mode and keeps them, so a failed start can end
/// whatever already runs.
#[derive(Debug)]
pub struct Launcher {
    mode: Mode,
    watchdog: Option<Watchdog>,
    processes: Vec<ManagedProcess>,
}

impl Launcher {
    /// A launcher for `dir`; in attached mode it starts the watchdog first.
    pub fn new(dir: &Path, mode: Mode, remove_dir_with_owner: bool) -> Result<Self> {
        let watchdog = match mode {
            Mode::Detached => None,
            Mode::Attached { owner } => Some(Watchdog::start(owner, dir, remove_dir_with_owner)?),
        };
        Ok(Self {
            mode,
            watchdog,
            processes: Vec::new(),
        })
    }

    /// Starts `spec` and returns it to wait for its readiness.
    pub fn spawn(&mut self, spec: &ProcessSpec) -> Result<&mut ManagedProcess> {
        let mut process = ManagedProcess::spawn(spec, self.mode)?;
        if let Some(watchdog) = &self.watchdog
            && let Err(err) = watchdog.watch(process.pid())
        {
            let _ = process.terminate(Duration::from_secs(5));
            return Err(err);
        }
        self.processes.push(process);
        let last = self.processes.len() - 1;
        Ok(&mut self.processes[last])
    }

    /// Ends every process started so far, newest first.
    pub fn abort(self) {
        let (mut processes, watchdog) = self.into_parts();
        if let Some(watchdog) = watchdog {
            watchdog.disarm();
        }
        for process in processes.iter_mut().rev() {
            let _ = process.terminate(Duration::from_secs(5));
        }
    }

    /// The started processes and the watchdog, for the finished test bed to own.
    pub fn into_parts(self) -> (Vec<ManagedProcess>, Option<Watchdog>) {
        (self.processes, self.watchdog)
    }
}
