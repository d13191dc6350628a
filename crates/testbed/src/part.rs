//! One supervised process of a part of the stack, restartable with the same arguments: in
//! attached mode a watchdog (its own, or one shared by the whole stack) ends it when the owner
//! process ends; in detached mode it runs in its own session and outlives the starter.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::probe::Probe;
use crate::process::{ManagedProcess, Mode, ProcessSpec, Watchdog};
use crate::stack_error::StackResult;

/// How long stopping waits after SIGTERM before SIGKILL.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(10);

/// A watchdog shared by the parts of one stack: it ends every part, then removes the stack's
/// directory, so no part's pid list can vanish before it is read.
pub(crate) type SharedWatchdog = Arc<Watchdog>;

#[derive(Debug)]
enum Supervision {
    None,
    Own(Watchdog),
    Shared(SharedWatchdog),
}

#[derive(Debug)]
pub(crate) struct PartProcess {
    spec: ProcessSpec,
    mode: Mode,
    process: Option<ManagedProcess>,
    watchdog: Supervision,
}

impl PartProcess {
    /// Starts `spec` in `mode`. Attached, it is watched by `shared` when given, else by a
    /// watchdog of its own whose pid list lives in `dir`.
    pub(crate) fn start(
        spec: ProcessSpec,
        mode: Mode,
        dir: &Path,
        shared: Option<SharedWatchdog>,
    ) -> StackResult<Self> {
        let watchdog = match (mode, shared) {
            (Mode::Detached, _) => Supervision::None,
            (Mode::Attached { .. }, Some(shared)) => Supervision::Shared(shared),
            (Mode::Attached { owner }, None) => {
                Supervision::Own(Watchdog::start(owner, dir, false)?)
            }
        };
        let mut part = Self {
            spec,
            mode,
            process: None,
            watchdog,
        };
        part.spawn()?;
        Ok(part)
    }

    fn spawn(&mut self) -> StackResult<()> {
        let mut process = ManagedProcess::spawn(&self.spec, self.mode)?;
        let watchdog = match &self.watchdog {
            Supervision::None => None,
            Supervision::Own(watchdog) => Some(watchdog),
            Supervision::Shared(watchdog) => Some(watchdog.as_ref()),
        };
        if let Some(watchdog) = watchdog
            && let Err(err) = watchdog.watch(process.pid())
        {
            let _ = process.terminate(STOP_GRACE);
            return Err(err.into());
        }
        self.process = Some(process);
        Ok(())
    }

    /// Waits until `probe` answers 2xx; a failure carries the log's tail.
    pub(crate) fn wait_ready(&mut self, probe: &Probe, timeout: Duration) -> StackResult<()> {
        match &mut self.process {
            Some(process) => Ok(probe.wait_until_ready(process, timeout)?),
            None => Err(crate::stack_error::StackError::NotRunning {
                what: "the process",
            }),
        }
    }

    /// The running process, if any.
    pub(crate) fn process(&self) -> Option<&ManagedProcess> {
        self.process.as_ref()
    }

    /// The running process, if any, to ask about its state.
    pub(crate) fn process_mut(&mut self) -> Option<&mut ManagedProcess> {
        self.process.as_mut()
    }

    /// The log file of the current (or last) run.
    pub(crate) fn log(&self) -> &Path {
        &self.spec.log
    }

    /// Whether the process runs now.
    pub(crate) fn is_running(&mut self) -> bool {
        self.process
            .as_mut()
            .is_some_and(ManagedProcess::is_running)
    }

    /// Stops the process (SIGTERM, then SIGKILL after a grace period); a no-op when stopped.
    pub(crate) fn stop(&mut self) -> StackResult<()> {
        if let Some(mut process) = self.process.take() {
            process.terminate(STOP_GRACE)?;
        }
        Ok(())
    }

    /// SIGKILL, no grace (a crash); a no-op when stopped. Supervision stays for a restart.
    pub(crate) fn kill(&mut self) -> StackResult<()> {
        if let Some(mut process) = self.process.take() {
            process.kill()?;
        }
        Ok(())
    }

    /// Stops the process if it runs and starts it again with the same arguments; the previous
    /// log is kept as `<log>.previous`.
    pub(crate) fn restart(&mut self) -> StackResult<()> {
        let mut previous = self.spec.log.clone().into_os_string();
        previous.push(".previous");
        self.restart_keeping_log_as(Path::new(&previous))
    }

    /// Stops the process if it runs, moves its log to `previous` and starts it again with the
    /// same arguments.
    pub(crate) fn restart_keeping_log_as(&mut self, previous: &Path) -> StackResult<()> {
        self.stop()?;
        let _ = fs::rename(&self.spec.log, previous);
        self.spawn()
    }

    /// Ends supervision (its own watchdog stops; a shared one is let go), then the process.
    pub(crate) fn shutdown(&mut self) -> StackResult<()> {
        if let Supervision::Own(watchdog) = std::mem::replace(&mut self.watchdog, Supervision::None)
        {
            watchdog.disarm();
        }
        self.stop()
    }
}

impl Drop for PartProcess {
    fn drop(&mut self) {
        if matches!(self.mode, Mode::Attached { .. }) {
            let _ = self.shutdown();
        }
    }
}
