//! Leader election on a `coordination.k8s.io/v1` Lease, so two replicas never both write.
//!
//! Follows client-go's lease lock: a candidate takes the Lease when nobody holds it or when the
//! holder has not renewed it for `lease_duration` as seen on this replica's own clock (no clock
//! comparison across machines); the leader renews every `retry_period` and gives up leadership
//! when it could not renew for `renew_deadline`; writes carry the resourceVersion read, so two
//! candidates can never both win. On graceful shutdown the Lease is released at once.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::time::Instant;

/// Lease settings.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (pod name, or host name plus a random suffix).
    pub identity: String,
    /// How long a Lease is valid without renewal.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leadership.
    pub renew_deadline: Duration,
    /// Time between attempts.
    pub retry_period: Duration,
}

/// Errors of the Lease calls.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The Lease could not be read or written.
    #[error("lease {name} could not be read or written")]
    Api {
        /// Lease name.
        name: String,
        /// The apiserver error.
        #[source]
        source: kube::Error,
    },
    /// Renewal failed for longer than the renew deadline.
    #[error("lost the leader lease {name}: not renewed within {deadline:?}")]
    Lost {
        /// Lease name.
        name: String,
        /// The renew deadline.
        deadline: Duration,
    },
}

/// A Lease elector for one replica.
#[derive(Debug)]
pub struct Elector {
    api: Api<Lease>,
    settings: LeaseSettings,
    /// The holder and renew time last read, and when this replica saw them change.
    observed: Option<(Option<String>, Option<Timestamp>, Instant)>,
}

impl Elector {
    /// An elector for the Lease described by `settings`.
    pub fn new(client: kube::Client, settings: LeaseSettings) -> Self {
        let api = Api::namespaced(client, &settings.namespace);
        Self {
            api,
            settings,
            observed: None,
        }
    }

    /// Waits until this replica holds the Lease.
    pub async fn acquire(&mut self) -> Result<(), LeaderError> {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(error = %error, "Failed to read or write the leader lease")
                }
            }
            tokio::time::sleep(self.settings.retry_period).await;
        }
    }

    /// Renews the Lease until renewal fails for longer than the renew deadline; returns the loss.
    pub async fn hold(&mut self) -> LeaderError {
        let mut last_renewed = Instant::now();
        loop {
            tokio::time::sleep(self.settings.retry_period).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewed = Instant::now(),
                Ok(false) => {
                    return LeaderError::Lost {
                        name: self.settings.name.clone(),
                        deadline: self.settings.renew_deadline,
                    };
                }
                Err(error) => tracing::warn!(error = %error, "Failed to renew the leader lease"),
            }
            if last_renewed.elapsed() > self.settings.renew_deadline {
                return LeaderError::Lost {
                    name: self.settings.name.clone(),
                    deadline: self.settings.renew_deadline,
                };
            }
        }
    }

    /// Gives the Lease up so that another replica can take over at once.
    pub async fn release(&mut self) -> Result<(), LeaderError> {
        let Some(mut lease) = self.get().await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        self.replace(&lease).await.map(|_| ())
    }

    /// One attempt: true when this replica holds the Lease afterwards.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, LeaderError> {
        let now = Timestamp::now();
        let me = self.settings.identity.clone();
        let duration_seconds =
            i32::try_from(self.settings.lease_duration.as_secs()).unwrap_or(i32::MAX);
        let Some(mut lease) = self.get().await? else {
            return self.create(&me, duration_seconds, now).await;
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let expired = self.expired(spec, duration_seconds);
        let held_by_me = holder.as_deref() == Some(me.as_str());
        if !(held_by_me || holder.is_none() || expired) {
            return Ok(false);
        }
        if !held_by_me {
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
            tracing::info!(identity = %me, previous = ?holder, "Took the leader lease");
        }
        spec.holder_identity = Some(me);
        spec.lease_duration_seconds = Some(duration_seconds);
        spec.renew_time = Some(MicroTime(now));
        match self.replace(&lease).await {
            Ok(updated) => {
                let spec = updated.spec.unwrap_or_default();
                self.observed = Some((
                    spec.holder_identity,
                    spec.renew_time.map(|t| t.0),
                    Instant::now(),
                ));
                Ok(true)
            }
            Err(LeaderError::Api {
                source: kube::Error::Api(status),
                ..
            }) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Creates the Lease held by `me`; false when another replica created it first.
    async fn create(
        &self,
        me: &str,
        duration_seconds: i32,
        now: Timestamp,
    ) -> Result<bool, LeaderError> {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.settings.name.clone()),
                namespace: Some(self.settings.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(me.to_owned()),
                lease_duration_seconds: Some(duration_seconds),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        match self.api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(source) => Err(LeaderError::Api {
                name: self.settings.name.clone(),
                source,
            }),
        }
    }

    /// Whether the holder's Lease expired: its holder and renew time have not changed for
    /// longer than its duration, by this replica's clock (never by comparing clocks).
    fn expired(&mut self, spec: &LeaseSpec, duration_seconds: i32) -> bool {
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let renew = spec.renew_time.as_ref().map(|t| t.0);
        let changed = self
            .observed
            .as_ref()
            .is_none_or(|(h, r, _)| *h != holder || *r != renew);
        if changed {
            self.observed = Some((holder, renew, Instant::now()));
        }
        let holder_duration = Duration::from_secs(
            u64::try_from(spec.lease_duration_seconds.unwrap_or(duration_seconds)).unwrap_or(0),
        );
        self.observed
            .as_ref()
            .is_some_and(|(_, _, seen)| seen.elapsed() > holder_duration)
    }

    async fn get(&self) -> Result<Option<Lease>, LeaderError> {
        self.api
            .get_opt(&self.settings.name)
            .await
            .map_err(|source| LeaderError::Api {
                name: self.settings.name.clone(),
                source,
            })
    }

    async fn replace(&self, lease: &Lease) -> Result<Lease, LeaderError> {
        self.api
            .replace(&self.settings.name, &PostParams::default(), lease)
            .await
            .map_err(|source| LeaderError::Api {
                name: self.settings.name.clone(),
                source,
            })
    }
}
