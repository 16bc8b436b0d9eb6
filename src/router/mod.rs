//! Choosing a target for the next attempt of a request.

/// At most this many targets per route, so a request's tried set fits in a `u64` bitmask.
pub const MAX_TARGETS: usize = 64;

/// Picks one of `n` targets in proportion to `weight(i)`, the target's current weight, or 0
/// when it may not take traffic now (drained, held back, out of rotation).
///
/// Targets in `tried` (a bitmask of target indexes) are avoided while any untried one can be
/// chosen; after that any target may be tried again except `last_failed`, which is used only
/// when it is the sole choice left.
pub fn pick_weighted(
    n: usize,
    weight: impl Fn(usize) -> u32,
    tried: u64,
    last_failed: Option<usize>,
    rng: &mut fastrand::Rng,
) -> Option<usize> {
    let mut pass = |allow: &dyn Fn(usize) -> bool| -> Option<usize> {
        let total: u64 = (0..n).filter(|&i| allow(i)).map(|i| weight(i) as u64).sum();
        if total == 0 {
            return None;
        }
        let mut x = rng.u64(0..total);
        for i in (0..n).filter(|&i| allow(i)) {
            let w = weight(i) as u64;
            if x < w {
                return Some(i);
            }
            x -= w;
        }
        None
    };
    if let Some(i) = pass(&|i| tried & (1 << i) == 0) {
        return Some(i);
    }
    if let Some(i) = pass(&|i| Some(i) != last_failed) {
        return Some(i);
    }
    last_failed.filter(|&i| weight(i) > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_weights() {
        let w = [60, 20, 20, 0];
        let mut rng = fastrand::Rng::with_seed(7);
        let mut counts = [0u32; 4];
        for _ in 0..10_000 {
            counts[pick_weighted(4, |i| w[i], 0, None, &mut rng).unwrap()] += 1;
        }
        assert_eq!(counts[3], 0, "zero weight is never chosen");
        assert!((5_800..6_200).contains(&counts[0]), "{counts:?}");
        assert!((1_800..2_200).contains(&counts[1]), "{counts:?}");
    }

    #[test]
    fn avoids_tried_and_last_failed() {
        let mut rng = fastrand::Rng::with_seed(1);
        for _ in 0..100 {
            assert_eq!(pick_weighted(3, |_| 1, 0b011, Some(1), &mut rng), Some(2));
            // Everything tried: anything but the one that just failed.
            assert_ne!(pick_weighted(3, |_| 1, 0b111, Some(1), &mut rng), Some(1));
            // Targets without weight are never chosen; the last failure is the last resort.
            assert_eq!(pick_weighted(3, |i| u32::from(i == 1), 0b111, Some(1), &mut rng), Some(1));
            assert_eq!(pick_weighted(3, |_| 0, 0, None, &mut rng), None);
        }
    }
}
