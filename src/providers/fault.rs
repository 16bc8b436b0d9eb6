//! The fault wrapper of the provider adapter: the one place where an injected fault acts on a
//! call, before the network, for client attempts and health probes alike.

use std::time::Duration;

use tokio::time::Instant;

use crate::control::Fault;
use crate::outcome::OutcomeClass;

/// What kind of call a fault acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// A client attempt answered with one JSON body.
    Json,
    /// A client attempt answered with an SSE stream.
    Stream,
    /// A health probe. A provider that rate-limits completions or cuts streams still answers
    /// its probes, as a real one would.
    Probe,
}

/// A fault that ends a stream early, acted out while relaying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFault {
    /// Drop the stream after this many events.
    Cut(u32),
    /// Stop relaying after this many events (the idle timeout then ends it).
    Stall(u32),
    /// Hold the first content back this long.
    FirstToken(Duration),
    /// Leave out the `data: [DONE]` event.
    NoDone,
}

/// A fault's verdict on one call, reached before anything goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Make the call (any delay has been waited out), breaking its stream as given.
    Proceed(Option<StreamFault>),
    /// Fail as the real failure would.
    Fail {
        /// The outcome, as a real failure of this kind ends.
        class: OutcomeClass,
        /// The status the provider would have sent.
        status: Option<u16>,
        /// How long a real 429 would have asked us to wait.
        hold_back: Option<Duration>,
    },
}

/// What `fault` (if any) does to one call: the one interpretation of faults, for attempts and
/// probes alike. Waits as the fault says (a hang until `first_byte_by`, a stall until
/// `read_by`), so the failure takes as long as the real one.
pub async fn before_call(
    fault: Option<Fault>,
    call: Call,
    first_byte_by: Instant,
    read_by: Instant,
    rng: &mut fastrand::Rng,
) -> Verdict {
    let fail = |class, status| Verdict::Fail { class, status, hold_back: None };
    let Some(action) = fault.and_then(|f| f.action(rng)) else { return Verdict::Proceed(None) };
    match (action, call) {
        (Action::Refuse, _) => fail(OutcomeClass::Connect, None),
        (Action::Status(s), _) => fail(OutcomeClass::Http5xx, Some(s)),
        (
            Action::RateLimit(_) | Action::Cut(_) | Action::Stall(_) | Action::FirstToken(_) | Action::NoDone,
            Call::Probe,
        ) => Verdict::Proceed(None),
        (Action::FirstToken(d), Call::Stream) => Verdict::Proceed(Some(StreamFault::FirstToken(d))),
        (Action::NoDone, Call::Stream) => Verdict::Proceed(Some(StreamFault::NoDone)),
        // Without a stream, a late first token is a late answer; a missing [DONE] is nothing.
        (Action::FirstToken(d), Call::Json) => {
            if Instant::now() + d >= first_byte_by {
                tokio::time::sleep_until(first_byte_by).await;
                return fail(OutcomeClass::Timeout, None);
            }
            tokio::time::sleep(d).await;
            Verdict::Proceed(None)
        }
        (Action::NoDone, Call::Json) => Verdict::Proceed(None),
        (Action::RateLimit(wait), _) => {
            Verdict::Fail { class: OutcomeClass::Http429, status: Some(429), hold_back: Some(wait) }
        }
        (Action::Hang, _) => {
            tokio::time::sleep_until(first_byte_by).await;
            fail(OutcomeClass::Timeout, None)
        }
        (Action::Delay(d), _) => {
            if Instant::now() + d >= first_byte_by {
                tokio::time::sleep_until(first_byte_by).await;
                return fail(OutcomeClass::Timeout, None);
            }
            tokio::time::sleep(d).await;
            Verdict::Proceed(None)
        }
        (Action::Cut(n), Call::Stream) => Verdict::Proceed(Some(StreamFault::Cut(n))),
        (Action::Stall(n), Call::Stream) => Verdict::Proceed(Some(StreamFault::Stall(n))),
        (Action::Cut(_), Call::Json) => fail(OutcomeClass::StreamBroken, Some(200)),
        (Action::Stall(_), Call::Json) => {
            tokio::time::sleep_until(read_by).await;
            fail(OutcomeClass::Timeout, Some(200))
        }
    }
}

/// What one attempt suffers from a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Fail as a refused connection.
    Refuse,
    /// Fail as this HTTP status.
    Status(u16),
    /// Fail as a 429 that asks to wait.
    RateLimit(Duration),
    /// Wait this long before sending.
    Delay(Duration),
    /// Never answer.
    Hang,
    /// Drop the stream after this many events.
    Cut(u32),
    /// Stop the stream after this many events.
    Stall(u32),
    /// Hold a stream's first content back this long.
    FirstToken(Duration),
    /// End a stream without `[DONE]`.
    NoDone,
}

impl Fault {
    /// What happens to one attempt; `None` when it goes through untouched.
    pub fn action(&self, rng: &mut fastrand::Rng) -> Option<Action> {
        Some(match *self {
            Fault::Down => Action::Refuse,
            Fault::Errors { percent } => {
                if rng.u8(0..100) >= percent {
                    return None;
                }
                Action::Status(503)
            }
            Fault::Ratelimit { retry_after_s } => Action::RateLimit(Duration::from_secs(retry_after_s as u64)),
            Fault::Slow { delay_ms } => Action::Delay(Duration::from_millis(delay_ms)),
            Fault::Hang => Action::Hang,
            Fault::Cut { after } => Action::Cut(after),
            Fault::Stall { after } => Action::Stall(after),
            Fault::SlowFirstToken { delay_ms } => Action::FirstToken(Duration::from_millis(delay_ms)),
            Fault::NoDone => Action::NoDone,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn attempts_and_probes_fail_as_the_real_thing() {
        let t0 = Instant::now();
        let (fb, rb) = (t0 + Duration::from_secs(5), t0 + Duration::from_secs(20));
        let v =
            |f: Fault, c: Call| async move { before_call(Some(f), c, fb, rb, &mut fastrand::Rng::with_seed(1)).await };
        let fail = |class, status| Verdict::Fail { class, status, hold_back: None };
        assert_eq!(v(Fault::Down, Call::Probe).await, fail(OutcomeClass::Connect, None));
        assert_eq!(v(Fault::Errors { percent: 100 }, Call::Json).await, fail(OutcomeClass::Http5xx, Some(503)));
        let rl = v(Fault::Ratelimit { retry_after_s: 7 }, Call::Stream).await;
        assert_eq!(
            rl,
            Verdict::Fail { class: OutcomeClass::Http429, status: Some(429), hold_back: Some(Duration::from_secs(7)) }
        );
        assert_eq!(v(Fault::Ratelimit { retry_after_s: 7 }, Call::Probe).await, Verdict::Proceed(None));
        assert_eq!(v(Fault::Cut { after: 2 }, Call::Stream).await, Verdict::Proceed(Some(StreamFault::Cut(2))));
        assert_eq!(v(Fault::Cut { after: 2 }, Call::Probe).await, Verdict::Proceed(None));
        assert_eq!(v(Fault::Hang, Call::Probe).await, fail(OutcomeClass::Timeout, None));
        assert_eq!(Instant::now(), fb, "a hang lasts until the first-byte deadline");
        assert_eq!(v(Fault::Stall { after: 1 }, Call::Json).await, fail(OutcomeClass::Timeout, Some(200)));
        assert_eq!(Instant::now(), rb);
        assert_eq!(before_call(None, Call::Json, fb, rb, &mut fastrand::Rng::new()).await, Verdict::Proceed(None));
    }

    #[test]
    fn errors_fail_the_given_share() {
        let mut rng = fastrand::Rng::with_seed(3);
        let f = Fault::Errors { percent: 30 };
        let failed = (0..10_000).filter(|_| f.action(&mut rng).is_some()).count();
        assert!((2_700..3_300).contains(&failed), "{failed}");
    }
}
