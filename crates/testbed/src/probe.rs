//! Readiness checks over HTTP(S) with a blocking client, usable from inside async tests.

use std::thread;
use std::time::{Duration, Instant};

use ureq::Agent;

use crate::error::LogTail;
use crate::process::ManagedProcess;
use crate::{Error, Result, Secret};

/// How long one probe request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// How often [`Probe::wait_until_ready`] asks.
const INTERVAL: Duration = Duration::from_millis(200);

/// A GET request that answers "ready" with any 2xx status.
#[derive(Debug)]
pub struct Probe {
    agent: Agent,
    url: String,
    bearer: Option<Secret>,
}

impl Probe {
    /// A probe of `url`, trusting only `ca_pem` for HTTPS when given, sending `bearer` when given.
    /// Proxy settings of the environment are ignored: the test bed lives on loopback.
    pub fn new(
        url: impl Into<String>,
        ca_pem: Option<&str>,
        bearer: Option<&Secret>,
    ) -> Result<Self> {
        let mut config = Agent::config_builder()
            .proxy(None)
            .timeout_global(Some(REQUEST_TIMEOUT));
        if let Some(pem) = ca_pem {
            config = config.tls_config(crate::http::trusting(pem)?);
        }
        Ok(Self {
            agent: config.build().new_agent(),
            url: url.into(),
            bearer: bearer.cloned(),
        })
    }

    /// The probed URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// One request: `Ok` on 2xx, else a short description of what came back.
    pub fn check(&self) -> Result<(), String> {
        let mut request = self.agent.get(&self.url);
        if let Some(token) = &self.bearer {
            request = request.header("Authorization", format!("Bearer {}", token.expose()));
        }
        match request.call() {
            Ok(_) => Ok(()),
            Err(ureq::Error::StatusCode(code)) => Err(format!("HTTP {code}")),
            Err(err) => Err(err.to_string()),
        }
    }

    /// Asks until the answer is 2xx, `process` exits, or `timeout` passes; both failures carry the
    /// tail of the process's log.
    pub fn wait_until_ready(&self, process: &mut ManagedProcess, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = process.exit_status() {
                return Err(Error::ExitedDuringStartup {
                    name: process.name().to_owned(),
                    status,
                    log: Box::new(LogTail {
                        path: process.log().to_path_buf(),
                        tail: process.log_tail(40),
                    }),
                });
            }
            let answer = match self.check() {
                Ok(()) => return Ok(()),
                Err(answer) => answer,
            };
            if Instant::now() >= deadline {
                return Err(Error::NotReady {
                    name: process.name().to_owned(),
                    url: self.url.clone(),
                    timeout,
                    last: answer,
                    log: Box::new(LogTail {
                        path: process.log().to_path_buf(),
                        tail: process.log_tail(40),
                    }),
                });
            }
            thread::sleep(INTERVAL);
        }
    }
}
