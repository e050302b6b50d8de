//! A cache's ECPU/s limit across several proxies: control grants each
//! proxy a share from what they report they use (DESIGN §13), so the
//! cache as a whole stays at its limit however its clients spread.
//!
//! [`fair_shares`] is the decision, a pure function: max-min fair over
//! what each proxy wants (its recent use with room to grow), the shares
//! summing to the limit — a proxy wanting less than an equal part gets
//! what it wants, the rest is split among the others, and what nobody
//! wants goes out in proportion to the wants (so a proxy's demand can
//! grow into it before the next round).

/// What a proxy asks for on top of what it used: room to grow by half
/// each round (a proxy held at its share uses all of it, so its share
/// grows until the split is fair).
pub const WANT_GROWTH: f64 = 1.5;

/// The least a proxy wants, as a part of the limit: a proxy with no
/// clients yet can still admit its first requests.
pub const WANT_FLOOR: f64 = 0.05;

/// Shares of `limit` ECPU/s for proxies that used `used` ECPU/s each
/// (same order), summing to `limit` (to within rounding); an empty list
/// gets nothing.
pub fn fair_shares(limit: u64, used: &[f64]) -> Vec<u64> {
    if used.is_empty() || limit == 0 {
        return vec![0; used.len()];
    }
    let total = limit as f64;
    let wants: Vec<f64> = used
        .iter()
        .map(|u| (u.max(0.0) * WANT_GROWTH).max(total * WANT_FLOOR))
        .collect();
    // Water-filling: the smallest wants are met first, each of the rest
    // gets an equal part of what remains.
    let mut order: Vec<usize> = (0..wants.len()).collect();
    order.sort_by(|a, b| wants[*a].total_cmp(&wants[*b]));
    let mut shares = vec![0.0; wants.len()];
    let mut left = total;
    for (done, &i) in order.iter().enumerate() {
        let equal = left / (order.len() - done) as f64;
        shares[i] = wants[i].min(equal);
        left -= shares[i];
    }
    // What nobody wants, in proportion to the wants.
    let wanted: f64 = wants.iter().sum();
    if left > 0.0 {
        for (s, w) in shares.iter_mut().zip(&wants) {
            *s += left * w / wanted;
        }
    }
    shares.iter().map(|s| s.floor().max(1.0) as u64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_max_min_fair_and_sum_to_the_limit() {
        // (limit, used by each proxy, expected shares)
        let cases: &[(u64, &[f64], &[u64])] = &[
            // One proxy: the whole limit.
            (1000, &[0.0], &[1000]),
            (1000, &[5000.0], &[1000]),
            // Both greedy: an equal split.
            (1000, &[900.0, 900.0], &[500, 500]),
            // 90/10: the small one is met (with room), the big one gets
            // the rest.
            (1000, &[900.0, 100.0], &[850, 150]),
            // Nobody uses much: shares follow the wants, summing to the
            // limit.
            (1000, &[100.0, 100.0], &[500, 500]),
            (1000, &[200.0, 100.0], &[666, 333]),
            // An idle proxy keeps a floor, a busy one gets the rest.
            (1000, &[0.0, 2000.0], &[50, 950]),
        ];
        for (limit, used, want) in cases {
            let got = fair_shares(*limit, used);
            assert_eq!(&got[..], *want, "{limit} {used:?}");
            let sum: u64 = got.iter().sum();
            assert!(sum <= *limit && sum + used.len() as u64 >= *limit, "{sum}");
        }
        assert!(fair_shares(1000, &[]).is_empty());
        assert_eq!(fair_shares(0, &[1.0]), [0]);
    }
}
