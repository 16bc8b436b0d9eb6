//! Choosing a target for the next attempt of a request: the strategies (weighted, latency,
//! priority) over candidates whose availability and weight the live state has already worked out.

pub mod budget;

use crate::config::Strategy;
use crate::outcome::Skip;

/// One target as the router sees it for one attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Its effective weight now (0 when skipped).
    pub weight: u32,
    /// `Some` when it may not take this request.
    pub skip: Option<Skip>,
    /// Whether it may take the request only as its provider's half-open trial.
    pub trial: bool,
    /// Its latency cost (decayed peak average × load), for the latency strategy.
    pub cost: f64,
}

impl Candidate {
    fn eligible(&self) -> bool {
        self.skip.is_none() && self.weight > 0
    }
}

/// Picks a target among `cands` by `strategy`, avoiding those in `tried` while others remain,
/// and `last_failed` unless it is the only choice left.
pub fn choose(
    strategy: Strategy,
    cands: &[Candidate],
    tried: u64,
    last_failed: Option<usize>,
    rng: &mut fastrand::Rng,
) -> Option<usize> {
    let n = cands.len();
    let passes: [&dyn Fn(usize) -> bool; 2] = [&|i| tried & (1 << i) == 0, &|i| Some(i) != last_failed];
    for allow in passes {
        let ok = |i: usize| cands[i].eligible() && allow(i);
        let pick = match strategy {
            Strategy::Weighted => pick_weighted(n, |i| if ok(i) { cands[i].weight } else { 0 }, rng),
            Strategy::Priority => (0..n).find(|&i| ok(i)),
            Strategy::Latency => pick_p2c(n, ok, |i| cands[i].cost, rng),
        };
        if pick.is_some() {
            return pick;
        }
    }
    last_failed.filter(|&i| cands[i].eligible())
}

/// Power of two choices: two distinct random eligible targets, the cheaper one wins.
fn pick_p2c(
    n: usize,
    ok: impl Fn(usize) -> bool,
    cost: impl Fn(usize) -> f64,
    rng: &mut fastrand::Rng,
) -> Option<usize> {
    let count = (0..n).filter(|&i| ok(i)).count();
    let nth = |k: usize| (0..n).filter(|&i| ok(i)).nth(k);
    match count {
        0 => None,
        1 => nth(0),
        _ => {
            let a = rng.usize(..count);
            let mut b = rng.usize(..count - 1);
            if b >= a {
                b += 1;
            }
            let (a, b) = (nth(a)?, nth(b)?);
            Some(if cost(b) < cost(a) { b } else { a })
        }
    }
}

/// Picks one of `n` targets in proportion to `weight(i)` (0: never). The tried/last-failed
/// rules live in [`choose`], the same for every strategy.
fn pick_weighted(n: usize, weight: impl Fn(usize) -> u32, rng: &mut fastrand::Rng) -> Option<usize> {
    let total: u64 = (0..n).map(|i| weight(i) as u64).sum();
    if total == 0 {
        return None;
    }
    let mut x = rng.u64(0..total);
    for i in 0..n {
        let w = weight(i) as u64;
        if x < w {
            return Some(i);
        }
        x -= w;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(weight: u32, cost: f64) -> Candidate {
        Candidate { weight, skip: None, trial: false, cost }
    }

    #[test]
    fn strategies() {
        let mut rng = fastrand::Rng::with_seed(5);
        let mut c = [cand(1, 40.0), cand(1, 840.0), cand(1, 50.0)];
        // Latency: the slow one loses every pairing it is in.
        let slow = (0..3000).filter(|_| choose(Strategy::Latency, &c, 0, None, &mut rng) == Some(1)).count();
        assert_eq!(slow, 0);
        // Priority: the first available takes everything; the next on failure.
        assert_eq!(choose(Strategy::Priority, &c, 0, None, &mut rng), Some(0));
        assert_eq!(choose(Strategy::Priority, &c, 0b1, Some(0), &mut rng), Some(1));
        c[1].skip = Some(Skip::Ejected);
        assert_eq!(choose(Strategy::Priority, &c, 0b1, Some(0), &mut rng), Some(2));
        // Weighted: skipped targets' weight is renormalized away.
        for _ in 0..100 {
            assert_ne!(choose(Strategy::Weighted, &c, 0, None, &mut rng), Some(1));
        }
        c[0].skip = Some(Skip::Drained);
        c[2].skip = Some(Skip::Ejected);
        assert_eq!(choose(Strategy::Weighted, &c, 0, None, &mut rng), None);
    }

    #[test]
    fn follows_weights() {
        let w = [60, 20, 20, 0];
        let mut rng = fastrand::Rng::with_seed(7);
        let mut counts = [0u32; 4];
        for _ in 0..10_000 {
            counts[pick_weighted(4, |i| w[i], &mut rng).unwrap()] += 1;
        }
        assert_eq!(counts[3], 0, "zero weight is never chosen");
        assert!((5_800..6_200).contains(&counts[0]), "{counts:?}");
        assert!((1_800..2_200).contains(&counts[1]), "{counts:?}");
    }

    #[test]
    fn avoids_tried_and_last_failed() {
        let mut rng = fastrand::Rng::with_seed(1);
        let c = [cand(1, 1.0); 3];
        for strategy in [Strategy::Weighted, Strategy::Latency, Strategy::Priority] {
            for _ in 0..100 {
                assert_eq!(choose(strategy, &c, 0b011, Some(1), &mut rng), Some(2));
                // Everything tried: anything but the one that just failed.
                assert_ne!(choose(strategy, &c, 0b111, Some(1), &mut rng), Some(1));
                // The last failure is the last resort.
                let only = [
                    Candidate { skip: Some(Skip::Drained), ..c[0] },
                    c[1],
                    Candidate { skip: Some(Skip::Drained), ..c[2] },
                ];
                assert_eq!(choose(strategy, &only, 0b111, Some(1), &mut rng), Some(1));
                assert_eq!(choose(strategy, &[Candidate { weight: 0, ..c[0] }], 0, None, &mut rng), None);
            }
        }
    }
}
