//! Choosing a target for the next attempt of a request.

use crate::config::RouteConfig;

/// At most this many targets per route, so a request's tried set fits in a `u64` bitmask.
pub const MAX_TARGETS: usize = 64;

/// Picks a target of `route` by weight among those `available` says may take traffic.
///
/// Targets in `tried` (a bitmask of target indexes) are avoided while any untried one can be
/// chosen; after that any available target may be tried again except `last_failed`, which is
/// used only when it is the sole choice left.
pub fn pick_weighted(
    route: &RouteConfig,
    tried: u64,
    last_failed: Option<usize>,
    available: impl Fn(usize) -> bool,
    rng: &mut fastrand::Rng,
) -> Option<usize> {
    let eligible = |i: usize| route.targets[i].weight > 0 && available(i);
    let mut pass = |allow: &dyn Fn(usize) -> bool| -> Option<usize> {
        let total: u64 = (0..route.targets.len())
            .filter(|&i| eligible(i) && allow(i))
            .map(|i| route.targets[i].weight as u64)
            .sum();
        if total == 0 {
            return None;
        }
        let mut x = rng.u64(0..total);
        for (i, t) in route.targets.iter().enumerate() {
            if eligible(i) && allow(i) {
                let w = t.weight as u64;
                if x < w {
                    return Some(i);
                }
                x -= w;
            }
        }
        None
    };
    if let Some(i) = pass(&|i| tried & (1 << i) == 0) {
        return Some(i);
    }
    if let Some(i) = pass(&|i| Some(i) != last_failed) {
        return Some(i);
    }
    last_failed.filter(|&i| eligible(i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Strategy, TargetConfig};
    use std::time::Duration;

    fn route(weights: &[u32]) -> RouteConfig {
        RouteConfig {
            model: "r".into(),
            strategy: Strategy::Weighted,
            max_attempts: 3,
            deadline: Duration::from_secs(1),
            targets: weights
                .iter()
                .enumerate()
                .map(|(i, &w)| TargetConfig {
                    provider: i,
                    model: "m".into(),
                    weight: w,
                })
                .collect(),
        }
    }

    #[test]
    fn follows_weights() {
        let r = route(&[60, 20, 20, 0]);
        let mut rng = fastrand::Rng::with_seed(7);
        let mut counts = [0u32; 4];
        for _ in 0..10_000 {
            counts[pick_weighted(&r, 0, None, |_| true, &mut rng).unwrap()] += 1;
        }
        assert_eq!(counts[3], 0, "zero weight is never chosen");
        assert!((5_800..6_200).contains(&counts[0]), "{counts:?}");
        assert!((1_800..2_200).contains(&counts[1]), "{counts:?}");
    }

    #[test]
    fn avoids_tried_and_last_failed() {
        let r = route(&[1, 1, 1]);
        let mut rng = fastrand::Rng::with_seed(1);
        for _ in 0..100 {
            assert_eq!(
                pick_weighted(&r, 0b011, Some(1), |_| true, &mut rng),
                Some(2)
            );
            // Everything tried: anything but the one that just failed.
            assert_ne!(
                pick_weighted(&r, 0b111, Some(1), |_| true, &mut rng),
                Some(1)
            );
            // Unavailable targets are never chosen; the last failure is the last resort.
            assert_eq!(
                pick_weighted(&r, 0b111, Some(1), |i| i == 1, &mut rng),
                Some(1)
            );
            assert_eq!(pick_weighted(&r, 0, None, |_| false, &mut rng), None);
        }
    }
}
