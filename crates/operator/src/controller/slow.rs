//! "Reconciling is written only when the work will not finish at once" (issue 15): a reconcile
//! that ends within [`GRACE`] writes its result alone; one that does not says Reconciling while
//! it goes on. The same grace bounds how long an object keeps its status while the work it waits
//! for (its first probe, the connection an agent uses) runs outside the reconcile.

use std::future::Future;
use std::time::Duration;

/// How long work may run before the object says it is still being reconciled.
pub const GRACE: Duration = Duration::from_secs(2);

/// Runs `work`; when it has not finished after `grace`, `meanwhile` runs beside it (typically a
/// status write saying Reconciling), and both are awaited. Returns the work's output, and what
/// `meanwhile` returned when it ran. `meanwhile` always ends before this returns, so a status it
/// writes never overtakes the one the caller writes with the work's output.
pub async fn unless_quick<T, M>(
    work: impl Future<Output = T>,
    grace: Duration,
    meanwhile: impl Future<Output = M>,
) -> (T, Option<M>) {
    let mut work = std::pin::pin!(work);
    tokio::select! {
        biased;
        out = &mut work => return (out, None),
        () = tokio::time::sleep(grace) => {}
    }
    let (said, out) = tokio::join!(meanwhile, work);
    (out, Some(said))
}

/// How much of `grace` is left after `waited`; None once it has passed.
pub fn left(grace: Duration, waited: Duration) -> Option<Duration> {
    grace.checked_sub(waited).filter(|left| !left.is_zero())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[tokio::test]
    async fn quick_work_says_nothing_meanwhile_and_slow_work_says_it_once_before_it_ends() {
        let said = AtomicBool::new(false);
        let meanwhile = async {
            said.store(true, Ordering::SeqCst);
        };
        let (out, ran) = unless_quick(async { 7 }, Duration::from_secs(5), meanwhile).await;
        assert_eq!((out, ran), (7, None));
        assert!(!said.load(Ordering::SeqCst), "quick work said something");

        let slow = async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            "done"
        };
        let meanwhile = async {
            said.store(true, Ordering::SeqCst);
            "reconciling"
        };
        let (out, ran) = unless_quick(slow, Duration::from_millis(10), meanwhile).await;
        assert_eq!((out, ran), ("done", Some("reconciling")));
        assert!(said.load(Ordering::SeqCst));
    }

    #[test]
    fn what_is_left_of_the_grace() {
        let s = Duration::from_secs;
        assert_eq!(left(s(2), s(0)), Some(s(2)));
        assert_eq!(
            left(s(2), Duration::from_millis(500)),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(left(s(2), s(2)), None);
        assert_eq!(left(s(2), s(3)), None);
    }
}
