//! Gateway probes run here, outside the reconciles, so that a slow or hostile gateway holds
//! neither a reconcile slot nor another namespace's probe slot.
//!
//! A reconcile that finds a probe due submits a [`ProbeJob`] and carries on with what it knows;
//! the scheduler runs at most [`Limits::global`] probes at once, at most
//! [`Limits::per_namespace`] of them from one namespace, and picks the next job round-robin
//! across namespaces. When a probe ends, its [`ProbeResult`] is kept for the object and the
//! object is woken (through the channel [`ProbeScheduler::new`] returns, which feeds the
//! GatewayConnection controller), whose next reconcile takes the result and writes status.

pub mod verdict;

use crate::keys::ObjectKey;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use foundry_gateway_api::GatewayConnection;
use foundry_gateway_api::conditions::reasons;
use foundry_gateway_client::CreateResponseRequest;
use foundry_gateway_client::probe::{InactiveCause, ProbeOutcome, ProbeRequest, Prober};
use kube::runtime::reflector::ObjectRef;
use tokio::sync::{Notify, mpsc};
use tracing::debug;

use crate::clients::ResolvedProject;
use crate::failure::Failure;

/// How many probes may run at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Across all namespaces (at least 1).
    pub global: usize,
    /// Of one namespace (at least 1).
    pub per_namespace: usize,
}

/// What a probe ran with: a result for other inputs is stale and dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeStamp {
    /// The object's generation.
    pub generation: i64,
    /// The connection's credentials digest.
    pub credentials: String,
}

/// What a probe calls.
#[derive(Clone, Debug)]
pub enum ProbeKind {
    /// The gateway, directly, the way Foundry calls it.
    Gateway(Box<ProbeRequest>),
    /// Foundry, for one minimal response with `model` (`<connection>/<deployment>`); Foundry
    /// calls the gateway with its own identity.
    Foundry {
        /// The project whose Responses API is asked.
        project: Arc<ResolvedProject>,
        /// `<connection>/<deployment>`.
        model: String,
        /// Budget of the call.
        timeout: Duration,
    },
}

/// One probe to run for one GatewayConnection.
#[derive(Clone, Debug)]
pub struct ProbeJob {
    /// Namespace of the object (the fairness unit).
    pub namespace: String,
    /// Name of the object.
    pub name: String,
    /// The probe.
    pub kind: ProbeKind,
    /// Its inputs.
    pub stamp: ProbeStamp,
    /// How old a probe of the same call made for another connection may be to answer this
    /// one (the connection's probe interval; zero never reuses one).
    pub reuse_within: Duration,
}

impl ProbeJob {
    fn key(&self) -> ObjectKey {
        ObjectKey::new(&self.namespace, &self.name)
    }
}

impl ProbeKind {
    /// What makes two probes the same call ([`ProbeRequest::identity`]); None when the probe
    /// speaks for one project's identity (Entra ID, or through Foundry) and serves no other.
    pub fn identity(&self) -> Option<[u8; 32]> {
        match self {
            Self::Gateway(request) => request.identity(),
            Self::Foundry { .. } => None,
        }
    }
}

/// How long the last probe of a call is kept for reuse at most.
const SHARED_RESULT_TTL: Duration = Duration::from_secs(3600);

/// What [`State::offer`] did with a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Offer {
    /// Queued to run.
    Queued,
    /// Answered at once by a recent probe of the same call for another connection.
    Answered,
    /// Waits for the running probe of the same call.
    Joined,
    /// The same probe of this object already runs.
    Skipped,
}

/// What [`ProbeScheduler::submit`] did with a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// Queued, or joined to the running probe of the same call: the object is woken when it ends.
    Pending,
    /// Answered at once by a recent probe of the same call: the result is there to take.
    Answered,
    /// The same probe of the object already runs.
    Skipped,
}

/// The last finished probe of one call.
#[derive(Clone, Debug)]
struct Finished {
    started: Instant,
    elapsed: Duration,
    outcome: Result<ProbeOutcome, Failure>,
}

impl Finished {
    fn result_for(&self, stamp: ProbeStamp) -> ProbeResult {
        ProbeResult {
            stamp,
            started: self.started,
            elapsed: self.elapsed,
            outcome: self.outcome.clone(),
        }
    }
}

/// Probes shared by connections that would make the same call (same gateway, settings,
/// credentials and request): at most one runs, and its answer serves every one of them.
#[derive(Debug, Default)]
struct Sharing {
    /// The last finished probe of each call.
    last: HashMap<[u8; 32], Finished>,
    /// The object whose running probe makes each call.
    running: HashMap<[u8; 32], ObjectKey>,
    /// Jobs waiting for the running probe of their call.
    waiting: HashMap<[u8; 32], Vec<ProbeJob>>,
}

/// The end of one probe.
#[derive(Debug)]
pub struct ProbeResult {
    /// Its inputs.
    pub stamp: ProbeStamp,
    /// When it started (the probe interval counts from here).
    pub started: Instant,
    /// How long it took.
    pub elapsed: Duration,
    /// The verdict, or why none could be had (settings that cannot be probed, Foundry failing).
    pub outcome: Result<ProbeOutcome, Failure>,
}

/// Queues, running probes and results. Pure bookkeeping, no IO.
#[derive(Debug, Default)]
struct State {
    /// Queued jobs by object key.
    queued: HashMap<ObjectKey, ProbeJob>,
    /// Queued object keys per namespace, oldest first.
    queues: HashMap<String, VecDeque<ObjectKey>>,
    /// Namespaces with queued work, in round-robin order.
    order: VecDeque<String>,
    /// Running probes by object key.
    running: HashMap<ObjectKey, ProbeStamp>,
    /// Running probes per namespace.
    running_per_namespace: HashMap<String, usize>,
    /// Objects deleted while their probe ran: their result is dropped.
    cancelled: HashSet<ObjectKey>,
    /// Finished probes not yet taken.
    results: HashMap<ObjectKey, ProbeResult>,
    /// Probes shared by connections making the same call.
    sharing: Sharing,
}

impl State {
    /// Queues `job` unless the same probe already runs; a queued job of the object is replaced
    /// in place (it keeps its turn). Returns whether the job is now queued.
    fn submit(&mut self, job: ProbeJob) -> bool {
        let key = job.key();
        if self.running.get(&key) == Some(&job.stamp) {
            return false;
        }
        self.cancelled.remove(&key);
        if self.queued.insert(key.clone(), job.clone()).is_none() {
            let queue = self.queues.entry(job.namespace.clone()).or_default();
            if queue.is_empty() && !self.order.contains(&job.namespace) {
                self.order.push_back(job.namespace.clone());
            }
            queue.push_back(key);
        }
        true
    }

    /// Takes a job: answered by a recent probe of the same call, joined to a running one, or
    /// queued ([`Self::submit`]).
    fn offer(&mut self, job: ProbeJob, now: Instant) -> Offer {
        let Some(id) = job.kind.identity() else {
            return if self.submit(job) {
                Offer::Queued
            } else {
                Offer::Skipped
            };
        };
        let key = job.key();
        if let Some(last) = self.sharing.last.get(&id)
            && now.saturating_duration_since(last.started) < job.reuse_within
        {
            let result = last.result_for(job.stamp);
            self.results.insert(key, result);
            return Offer::Answered;
        }
        if self
            .sharing
            .running
            .get(&id)
            .is_some_and(|owner| *owner != key)
        {
            self.forget(&key);
            self.cancelled.remove(&key);
            let waiting = self.sharing.waiting.entry(id).or_default();
            waiting.retain(|w| w.key() != key);
            waiting.push(job);
            return Offer::Joined;
        }
        if self.submit(job) {
            Offer::Queued
        } else {
            Offer::Skipped
        }
    }

    /// Starts `job` (picked by [`Self::next`]) as the probe of its call, or joins it to the
    /// running probe of the same call; returns the job to execute.
    fn start(&mut self, job: ProbeJob) -> Option<ProbeJob> {
        let Some(id) = job.kind.identity() else {
            return Some(job);
        };
        let key = job.key();
        match self.sharing.running.get(&id) {
            Some(owner) if *owner != key => {
                self.unmark(&key, &job.namespace);
                self.sharing.waiting.entry(id).or_default().push(job);
                None
            }
            _ => {
                self.sharing.running.insert(id, key);
                Some(job)
            }
        }
    }

    /// Records the answer of the call `id` and hands it to the jobs that waited for it; returns
    /// the objects to wake.
    fn share(&mut self, id: [u8; 32], result: &ProbeResult, now: Instant) -> Vec<ProbeJob> {
        self.sharing.running.remove(&id);
        self.sharing
            .last
            .retain(|_, f| now.saturating_duration_since(f.started) < SHARED_RESULT_TTL);
        let finished = Finished {
            started: result.started,
            elapsed: result.elapsed,
            outcome: result.outcome.clone(),
        };
        let waiters = self.sharing.waiting.remove(&id).unwrap_or_default();
        for waiter in &waiters {
            self.results
                .insert(waiter.key(), finished.result_for(waiter.stamp.clone()));
        }
        self.sharing.last.insert(id, finished);
        waiters
    }

    /// Whether a job of `key` waits for the probe of another object.
    fn joined(&self, key: &ObjectKey) -> bool {
        self.sharing
            .waiting
            .values()
            .any(|jobs| jobs.iter().any(|j| j.key() == *key))
    }

    /// Undoes the running mark [`Self::next`] set.
    fn unmark(&mut self, key: &ObjectKey, namespace: &str) {
        self.running.remove(key);
        if let Some(count) = self.running_per_namespace.get_mut(namespace) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.running_per_namespace.remove(namespace);
            }
        }
    }

    /// The next job to start within `limits`, round-robin across namespaces; marks it running.
    fn next(&mut self, limits: Limits) -> Option<ProbeJob> {
        if self.running.len() >= limits.global.max(1) {
            return None;
        }
        for _ in 0..self.order.len() {
            let namespace = self.order.pop_front()?;
            let busy = self
                .running_per_namespace
                .get(&namespace)
                .copied()
                .unwrap_or(0);
            let Some(queue) = self.queues.get_mut(&namespace) else {
                continue;
            };
            // One probe per object at a time: a newer job waits for the running one.
            let position = (busy < limits.per_namespace.max(1))
                .then(|| queue.iter().position(|k| !self.running.contains_key(k)))
                .flatten();
            let key = position.and_then(|i| queue.remove(i));
            if queue.is_empty() {
                self.queues.remove(&namespace);
            } else {
                self.order.push_back(namespace.clone());
            }
            let Some(key) = key else {
                continue;
            };
            let job = self.queued.remove(&key)?;
            self.running.insert(key, job.stamp.clone());
            let count = self.running_per_namespace.entry(namespace).or_default();
            *count = count.saturating_add(1);
            return Some(job);
        }
        None
    }

    /// Records the end of a running probe; false when the object was forgotten meanwhile.
    fn finish(&mut self, key: &ObjectKey, namespace: &str, result: ProbeResult) -> bool {
        self.unmark(key, namespace);
        if self.cancelled.remove(key) {
            return false;
        }
        self.results.insert(key.clone(), result);
        true
    }

    fn forget(&mut self, key: &ObjectKey) {
        if let Some(job) = self.queued.remove(key)
            && let Some(queue) = self.queues.get_mut(&job.namespace)
        {
            queue.retain(|k| k != key);
        }
        self.results.remove(key);
        for jobs in self.sharing.waiting.values_mut() {
            jobs.retain(|j| j.key() != *key);
        }
        if self.running.contains_key(key) {
            self.cancelled.insert(key.clone());
        }
    }
}

/// Runs gateway probes with a global budget and fairness per namespace.
pub struct ProbeScheduler {
    prober: Arc<Prober>,
    limits: Limits,
    state: Mutex<State>,
    wake: Notify,
    done: mpsc::UnboundedSender<ObjectRef<GatewayConnection>>,
}

impl std::fmt::Debug for ProbeScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeScheduler")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// The objects whose probe ended, for the GatewayConnection controller to reconcile.
pub type ProbeEvents = mpsc::UnboundedReceiver<ObjectRef<GatewayConnection>>;

impl ProbeScheduler {
    /// A scheduler and the stream of objects whose probe ended.
    pub fn new(prober: Arc<Prober>, limits: Limits) -> (Self, ProbeEvents) {
        let (done, events) = mpsc::unbounded_channel();
        let scheduler = Self {
            prober,
            limits,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            done,
        };
        (scheduler, events)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a probe (see [`State::offer`]). When a recent probe of the same call answers it at
    /// once, its result waits for the caller to take ([`Self::take_result`]) and the object is
    /// not woken: the reconcile that submitted it reports it.
    pub fn submit(&self, job: ProbeJob) -> Submitted {
        match self.state().offer(job, Instant::now()) {
            Offer::Queued => {
                self.wake.notify_one();
                Submitted::Pending
            }
            Offer::Joined => Submitted::Pending,
            Offer::Answered => Submitted::Answered,
            Offer::Skipped => Submitted::Skipped,
        }
    }

    /// Whether a probe of `key` is queued or running.
    pub fn pending(&self, key: &ObjectKey) -> bool {
        let state = self.state();
        state.queued.contains_key(key) || state.running.contains_key(key) || state.joined(key)
    }

    /// Takes the finished probe of `key`, if any.
    pub fn take_result(&self, key: &ObjectKey) -> Option<ProbeResult> {
        self.state().results.remove(key)
    }

    /// Drops what is known or queued for a deleted object.
    pub fn forget(&self, key: &ObjectKey) {
        self.state().forget(key);
    }

    /// Starts queued probes as slots free up, until the process ends.
    pub async fn run(self: Arc<Self>) {
        loop {
            loop {
                let mut state = self.state();
                let Some(job) = state.next(self.limits) else {
                    break;
                };
                let Some(job) = state.start(job) else {
                    continue;
                };
                drop(state);
                let this = Arc::clone(&self);
                tokio::spawn(async move { this.execute(job).await });
            }
            self.wake.notified().await;
        }
    }

    async fn execute(&self, job: ProbeJob) {
        let key = job.key();
        let identity = job.kind.identity();
        let (namespace, name) = (job.namespace.clone(), job.name.clone());
        let started = Instant::now();
        debug!(namespace = %job.namespace, name = %job.name, "Probe started");
        let outcome = match &job.kind {
            ProbeKind::Gateway(request) => self.prober.probe(request).await.map_err(|e| {
                Failure::permanent(
                    reasons::INVALID_SPEC,
                    format!(
                        "The gateway cannot be probed as configured: {}",
                        e.message()
                    ),
                )
            }),
            ProbeKind::Foundry {
                project,
                model,
                timeout,
            } => ask_foundry(project, model, *timeout).await,
        };
        let elapsed = started.elapsed();
        let verdict = match &outcome {
            Ok(ProbeOutcome::Active { .. }) => "Active",
            Ok(ProbeOutcome::Inactive { cause, .. }) => cause.as_str(),
            Err(failure) => failure.label(),
        };
        debug!(namespace = %job.namespace, name = %job.name, verdict, elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX), "Probe finished");
        let result = ProbeResult {
            stamp: job.stamp,
            started,
            elapsed,
            outcome,
        };
        let wake = {
            let mut state = self.state();
            let waiters = identity
                .map(|id| state.share(id, &result, Instant::now()))
                .unwrap_or_default();
            let keep = state.finish(&key, &namespace, result);
            let mut wake: Vec<ObjectRef<GatewayConnection>> = waiters
                .iter()
                .map(|j| ObjectRef::new(&j.name).within(&j.namespace))
                .collect();
            if keep {
                wake.push(ObjectRef::new(&name).within(&namespace));
            }
            wake
        };
        for object in wake {
            let _ = self.done.send(object);
        }
        self.wake.notify_one();
    }
}

/// One minimal response through the connection, as Foundry would serve an agent's call.
async fn ask_foundry(
    project: &ResolvedProject,
    model: &str,
    timeout: Duration,
) -> Result<ProbeOutcome, Failure> {
    // Not stored: a probe leaves nothing behind in the project.
    let request = CreateResponseRequest {
        store: Some(false),
        ..CreateResponseRequest::for_model(model, FOUNDRY_PROBE_INPUT)
    };
    match tokio::time::timeout(timeout, project.data.responses_create(&request)).await {
        Ok(answer) => verdict::foundry_verdict(model, answer.as_ref().map(|_| ())),
        Err(_) => Ok(ProbeOutcome::Inactive {
            cause: InactiveCause::Timeout,
            message: format!(
                "Foundry did not answer a response through the gateway for model {model:?} within {timeout:?}"
            ),
        }),
    }
}

/// The smallest input a Foundry probe sends.
pub const FOUNDRY_PROBE_INPUT: &str = "Hi";

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use foundry_gateway_client::ConnectionCategory;
    use foundry_gateway_client::probe::{GatewayAuth, GatewaySettings, ProbeMode};

    use super::*;

    fn job(namespace: &str, name: &str, generation: i64) -> ProbeJob {
        ProbeJob {
            namespace: namespace.into(),
            name: name.into(),
            kind: ProbeKind::Gateway(Box::new(ProbeRequest {
                settings: GatewaySettings {
                    target: "https://gateway.example".into(),
                    category: ConnectionCategory::ModelGateway,
                    deployment_in_path: false,
                    inference_api_version: None,
                    deployment_api_version: None,
                    discovery: None,
                    static_models: vec!["m".into()],
                    model_formats: BTreeMap::new(),
                    custom_headers: BTreeMap::new(),
                    auth: GatewayAuth::None,
                },
                mode: ProbeMode::Inference,
                model: None,
                timeout: Duration::from_secs(1),
            })),
            stamp: ProbeStamp {
                generation,
                credentials: "c".into(),
            },
            reuse_within: Duration::ZERO,
        }
    }

    /// A job of a connection with this API key, reusing answers younger than `reuse`.
    fn keyed(name: &str, api_key: &str, reuse: Duration) -> ProbeJob {
        let mut job = job("ns", name, 1);
        if let ProbeKind::Gateway(request) = &mut job.kind {
            request.settings.auth = GatewayAuth::ApiKey {
                key: api_key.into(),
                auth_config: None,
            };
        }
        job.reuse_within = reuse;
        job
    }

    #[test]
    fn one_probe_serves_every_connection_making_the_same_call() {
        let mut s = State::default();
        let minute = Duration::from_secs(60);
        let now = Instant::now();
        assert_eq!(s.offer(keyed("a", "k1", minute), now), Offer::Queued);
        let first = s.next(LIMITS).expect("starts");
        let first = s.start(first).expect("runs: nobody makes this call yet");
        // Same gateway, same key: waits for the running probe instead of running its own.
        assert_eq!(s.offer(keyed("b", "k1", minute), now), Offer::Joined);
        assert!(s.joined(&key("ns/b")));
        // Another key is another call.
        assert_eq!(s.offer(keyed("c", "k2", minute), now), Offer::Queued);
        let other = s.next(LIMITS).expect("starts");
        assert!(s.start(other).is_some(), "a distinct credential is probed");
        let waiters = s.share(first.kind.identity().expect("shareable"), &result(1), now);
        assert_eq!(waiters.len(), 1);
        assert!(s.finish(&key("ns/a"), "ns", result(1)));
        let shared = s.results.remove(&key("ns/b")).expect("b got the answer");
        assert!(matches!(shared.outcome, Ok(ProbeOutcome::Inactive { .. })));
        assert!(!s.joined(&key("ns/b")));
        // Within the interval a fourth connection of the same call is answered without a probe;
        // one that never reuses queues its own.
        let later = now + Duration::from_secs(30);
        assert_eq!(s.offer(keyed("d", "k1", minute), later), Offer::Answered);
        assert!(s.results.contains_key(&key("ns/d")));
        assert_eq!(
            s.offer(keyed("e", "k1", Duration::ZERO), later),
            Offer::Queued
        );
        // After the interval the call is probed again.
        let stale = now + Duration::from_secs(61);
        assert_eq!(s.offer(keyed("f", "k1", minute), stale), Offer::Queued);
    }

    #[test]
    fn a_probe_with_a_projects_entra_identity_is_never_shared() {
        let entra = |name: &str| {
            let mut job = keyed(name, "unused", Duration::from_secs(60));
            if let ProbeKind::Gateway(request) = &mut job.kind {
                request.settings.auth = GatewayAuth::Entra {
                    credential: foundry_gateway_client::StaticTokenCredential::new("t"),
                    audience: "https://cognitiveservices.azure.com".into(),
                };
            }
            job
        };
        let mut s = State::default();
        let now = Instant::now();
        assert_eq!(s.offer(entra("a"), now), Offer::Queued);
        assert!(s.next(LIMITS).and_then(|j| s.start(j)).is_some());
        assert_eq!(s.offer(entra("b"), now), Offer::Queued, "b runs its own");
    }

    #[test]
    fn a_waiter_that_is_forgotten_gets_no_answer() {
        let mut s = State::default();
        let now = Instant::now();
        let minute = Duration::from_secs(60);
        s.offer(keyed("a", "k1", minute), now);
        let first = s.next(LIMITS).and_then(|j| s.start(j)).expect("runs");
        assert_eq!(s.offer(keyed("b", "k1", minute), now), Offer::Joined);
        s.forget(&key("ns/b"));
        assert!(
            s.share(first.kind.identity().expect("shareable"), &result(1), now)
                .is_empty()
        );
        assert!(!s.results.contains_key(&key("ns/b")));
    }

    #[test]
    fn a_queued_job_of_a_call_that_started_meanwhile_joins_it() {
        let mut s = State::default();
        let now = Instant::now();
        let minute = Duration::from_secs(60);
        s.offer(keyed("a", "k1", minute), now);
        s.offer(keyed("b", "k1", minute), now);
        // Both were queued before either ran: the second joins the first when picked.
        let a = s.next(LIMITS).and_then(|j| s.start(j)).expect("a runs");
        let b = s.next(LIMITS).expect("b is picked");
        assert!(s.start(b).is_none(), "b joins a's probe");
        assert!(!s.running.contains_key(&key("ns/b")));
        assert_eq!(
            s.share(a.kind.identity().expect("shareable"), &result(1), now)
                .len(),
            1
        );
    }

    fn result(generation: i64) -> ProbeResult {
        ProbeResult {
            stamp: ProbeStamp {
                generation,
                credentials: "c".into(),
            },
            started: Instant::now(),
            elapsed: Duration::ZERO,
            outcome: Ok(ProbeOutcome::Inactive {
                cause: foundry_gateway_client::probe::InactiveCause::Timeout,
                message: "m".into(),
            }),
        }
    }

    fn key(text: &str) -> ObjectKey {
        let (namespace, name) = text.split_once('/').expect("namespace/name");
        ObjectKey::new(namespace, name)
    }

    const LIMITS: Limits = Limits {
        global: 4,
        per_namespace: 2,
    };

    #[test]
    fn one_namespace_never_takes_more_than_its_share_of_slots() {
        let mut s = State::default();
        for i in 0..20 {
            assert!(s.submit(job("hostile", &format!("drip-{i}"), 1)));
        }
        assert!(s.submit(job("healthy", "gw", 1)));
        let started: Vec<String> = std::iter::from_fn(|| s.next(LIMITS))
            .map(|j| j.namespace)
            .collect();
        // Two hostile slots (its cap), and the healthy namespace gets its turn at once.
        assert_eq!(started, ["hostile", "healthy", "hostile"]);
        assert_eq!(s.running.len(), 3);
        // A new healthy probe starts in a free slot while hostile ones wait.
        assert!(s.submit(job("healthy", "gw2", 1)));
        assert_eq!(s.next(LIMITS).map(|j| j.name), Some("gw2".to_owned()));
        assert!(s.next(LIMITS).is_none(), "global budget of 4 reached");
    }

    #[test]
    fn namespaces_take_turns() {
        let mut s = State::default();
        for ns in ["a", "b", "c"] {
            for i in 0..3 {
                s.submit(job(ns, &format!("{ns}{i}"), 1));
            }
        }
        let limits = Limits {
            global: 9,
            per_namespace: 9,
        };
        let names: Vec<String> = std::iter::from_fn(|| s.next(limits))
            .map(|j| j.name)
            .collect();
        assert_eq!(
            names,
            ["a0", "b0", "c0", "a1", "b1", "c1", "a2", "b2", "c2"]
        );
    }

    #[test]
    fn a_running_probe_is_not_queued_twice_and_a_newer_one_replaces_the_queued() {
        let mut s = State::default();
        assert!(s.submit(job("ns", "gw", 1)));
        let running = s.next(LIMITS).expect("starts");
        assert!(!s.submit(job("ns", "gw", 1)), "same inputs already running");
        assert!(
            s.submit(job("ns", "gw", 2)),
            "new generation queues behind it"
        );
        assert!(s.submit(job("ns", "gw", 3)), "replaces the queued one");
        assert_eq!(s.queues.get("ns").map(VecDeque::len), Some(1));
        assert!(s.next(LIMITS).is_none(), "one probe per object at a time");
        assert!(s.finish(&key("ns/gw"), "ns", result(running.stamp.generation)));
        let next = s.next(LIMITS).expect("queued one starts");
        assert_eq!(next.stamp.generation, 3);
    }

    #[test]
    fn results_of_forgotten_objects_are_dropped() {
        let mut s = State::default();
        s.submit(job("ns", "gw", 1));
        s.next(LIMITS).expect("starts");
        s.forget(&key("ns/gw"));
        assert!(!s.finish(&key("ns/gw"), "ns", result(1)));
        assert!(s.results.is_empty());
        assert!(s.running_per_namespace.is_empty());
        s.submit(job("ns", "queued", 1));
        s.forget(&key("ns/queued"));
        assert!(s.next(LIMITS).is_none());
    }
}
