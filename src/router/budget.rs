//! The retry budget of a route: retries may add at most a share of its recent requests, plus a
//! small floor, so a total outage cannot multiply the load on providers.

use std::sync::Mutex;

/// Seconds the budget looks back.
pub const WINDOW_S: u64 = 10;

#[derive(Debug, Default)]
struct Counts {
    sec: u64,
    requests: [u32; WINDOW_S as usize],
    retries: [u32; WINDOW_S as usize],
}

impl Counts {
    fn advance(&mut self, now_s: u64) {
        if now_s <= self.sec {
            return;
        }
        let gap = (now_s - self.sec).min(WINDOW_S);
        for k in 1..=gap {
            let i = ((self.sec + k) % WINDOW_S) as usize;
            self.requests[i] = 0;
            self.retries[i] = 0;
        }
        self.sec = now_s;
    }
}

/// Requests and retries of one route over the last [`WINDOW_S`] seconds.
#[derive(Debug, Default)]
pub struct RetryBudget {
    counts: Mutex<Counts>,
}

impl RetryBudget {
    /// A client request arrived at second `now_s`.
    pub fn request(&self, now_s: u64) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.advance(now_s);
        c.requests[(now_s % WINDOW_S) as usize] += 1;
    }

    /// Takes one retry from the budget if it allows one: retries over the window stay within
    /// `ratio` × requests + `floor_per_s` × window.
    pub fn try_retry(&self, now_s: u64, ratio: f64, floor_per_s: f64) -> bool {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.advance(now_s);
        let requests: u32 = c.requests.iter().sum();
        let retries: u32 = c.retries.iter().sum();
        let allowed = ratio * requests as f64 + floor_per_s * WINDOW_S as f64;
        if (retries as f64) < allowed {
            c.retries[(now_s % WINDOW_S) as usize] += 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_retries_to_a_share_plus_a_floor() {
        let b = RetryBudget::default();
        for _ in 0..1000 {
            b.request(5);
        }
        let granted = (0..1000).filter(|_| b.try_retry(5, 0.2, 3.0)).count();
        assert_eq!(granted, 200 + 30);
        // Ten seconds later the window has moved on: only the floor is left.
        let granted = (0..1000).filter(|_| b.try_retry(15, 0.2, 3.0)).count();
        assert_eq!(granted, 30);
    }
}
