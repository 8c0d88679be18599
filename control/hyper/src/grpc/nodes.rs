//! Sans-IO choice among the nodes of one operator (an entry with several `grpc_server` channels,
//! e.g. the nodes of a proxy operator): each node is up or down; a call tries the nodes in the
//! order [`plan`] gives (power of two choices on calls in flight among the usable ones first), a
//! failed dial or a broken channel marks the node down ([`Health::failed`]), and a down node is
//! probed again by one call once its back-off has passed ([`Health::claim_probe`]). No clock, no
//! randomness of its own: `now` and the random source come from the caller.

use std::time::{Duration, Instant};

/// First back-off of a node that just went down: a refused dial costs little, so retry soon.
pub const MIN_NODE_BACKOFF: Duration = Duration::from_millis(500);
/// Longest back-off between probes of a down node (doubling from [`MIN_NODE_BACKOFF`]): a node
/// that comes back is used again within this time.
pub const MAX_NODE_BACKOFF: Duration = Duration::from_secs(30);

/// A node's health as seen by one caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Health {
    /// Usable: the last dial or call on it did not fail at the transport.
    #[default]
    Up,
    /// Failed `failures` times in a row; not chosen before `retry_at` unless every node is down.
    Down {
        /// Consecutive transport failures (saturating).
        failures: u32,
        /// When one call may probe it again.
        retry_at: Instant,
    },
}

impl Health {
    /// The back-off after `failures` consecutive failures: doubling, bounded by
    /// [`MAX_NODE_BACKOFF`].
    pub fn backoff(failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(16);
        MIN_NODE_BACKOFF
            .saturating_mul(1 << doublings)
            .min(MAX_NODE_BACKOFF)
    }

    /// A transport failure at `now`: down, with the next back-off.
    pub fn failed(self, now: Instant) -> Self {
        let failures = match self {
            Self::Up => 1,
            Self::Down { failures, .. } => failures.saturating_add(1),
        };
        Self::Down {
            failures,
            retry_at: now + Self::backoff(failures),
        }
    }

    /// A call that reached the node: up again.
    pub fn succeeded(self) -> Self {
        Self::Up
    }

    /// Whether a call may use the node at `now` (up, or down with its back-off passed).
    pub fn usable(&self, now: Instant) -> bool {
        match self {
            Self::Up => true,
            Self::Down { retry_at, .. } => *retry_at <= now,
        }
    }

    /// A call is about to use the node at `now`: a down node's probe is claimed (its next probe
    /// moves a whole back-off away), so concurrent calls do not all probe a dead node.
    pub fn claim_probe(self, now: Instant) -> Self {
        match self {
            Self::Down { failures, retry_at } if retry_at <= now => Self::Down {
                failures,
                retry_at: now + Self::backoff(failures),
            },
            other => other,
        }
    }
}

/// What [`plan`] needs to know about one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeView {
    /// Calls in flight on it from this caller.
    pub in_flight: usize,
    /// Its health.
    pub health: Health,
}

/// The order in which one call tries `nodes` (indices into it): first the power-of-two-choices
/// pick among the usable nodes (of two drawn at random, the one with fewer calls in flight), then
/// the other usable nodes by calls in flight, then the down nodes by the end of their back-off
/// (when every node is down a call still tries them rather than fail without a dial).
/// `random(n)` returns a number below `n`.
pub fn plan(
    nodes: &[NodeView],
    now: Instant,
    mut random: impl FnMut(usize) -> usize,
) -> Vec<usize> {
    let (mut usable, mut down): (Vec<usize>, Vec<usize>) =
        (0..nodes.len()).partition(|&i| nodes[i].health.usable(now));
    if usable.len() >= 2 {
        let a = random(usable.len());
        // A second draw among the others: two distinct candidates.
        let b = (a + 1 + random(usable.len() - 1)) % usable.len();
        let first = if nodes[usable[b]].in_flight < nodes[usable[a]].in_flight {
            b
        } else {
            a
        };
        let chosen = usable.remove(first);
        usable.sort_by_key(|&i| nodes[i].in_flight);
        usable.insert(0, chosen);
    }
    down.sort_by_key(|&i| match nodes[i].health {
        Health::Down { retry_at, .. } => Some(retry_at),
        Health::Up => None,
    });
    usable.extend(down);
    usable
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn up(in_flight: usize) -> NodeView {
        NodeView {
            in_flight,
            health: Health::Up,
        }
    }

    fn down(retry_at: Instant) -> NodeView {
        NodeView {
            in_flight: 0,
            health: Health::Down {
                failures: 1,
                retry_at,
            },
        }
    }

    #[test]
    fn of_two_drawn_nodes_the_less_loaded_goes_first() {
        let now = Instant::now();
        let nodes = [up(5), up(1), up(3)];
        // Draws 0 and 1: node 1 has fewer calls in flight.
        let mut draws = [0, 0].into_iter();
        let order = plan(&nodes, now, |_| draws.next().unwrap());
        assert_eq!(order, vec![1, 2, 0]);
        // Draws 0 and 2: node 2 beats node 0; the rest follow by load.
        let mut draws = [0, 1].into_iter();
        assert_eq!(plan(&nodes, now, |_| draws.next().unwrap()), vec![2, 1, 0]);
    }

    #[test]
    fn the_two_choices_are_distinct_and_in_range() {
        let now = Instant::now();
        let nodes = [up(0), up(0), up(0)];
        for a in 0..3 {
            for b in 0..2 {
                let mut draws = [a, b].into_iter();
                let order = plan(&nodes, now, |n| {
                    let d = draws.next().unwrap();
                    assert!(d < n);
                    d
                });
                let mut sorted = order.clone();
                sorted.sort_unstable();
                assert_eq!(sorted, vec![0, 1, 2], "every node once: {order:?}");
            }
        }
    }

    #[test]
    fn equal_loads_spread_over_every_node() {
        let now = Instant::now();
        let nodes = [up(0), up(0), up(0)];
        let mut seed = 7u64;
        let mut random = |n: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) % n as u64) as usize
        };
        let mut firsts = [0usize; 3];
        for _ in 0..300 {
            firsts[plan(&nodes, now, &mut random)[0]] += 1;
        }
        assert!(firsts.iter().all(|&n| n > 50), "{firsts:?}");
    }

    #[test]
    fn down_nodes_come_last_by_retry_time_and_usable_ones_are_not_skipped() {
        let now = Instant::now();
        let later = now + Duration::from_secs(5);
        let soon = now + Duration::from_secs(1);
        let nodes = [down(later), up(9), down(soon)];
        assert_eq!(plan(&nodes, now, |_| 0), vec![1, 2, 0]);
        // Every node down: still every node, soonest first.
        let nodes = [down(later), down(soon)];
        assert_eq!(plan(&nodes, now, |_| 0), vec![1, 0]);
        // A down node whose back-off has passed is usable again (a probe).
        let nodes = [down(now), up(3)];
        let mut draws = [0, 0].into_iter();
        assert_eq!(plan(&nodes, now, |_| draws.next().unwrap()), vec![0, 1]);
        assert!(plan(&[], now, |_| 0).is_empty());
    }

    #[test]
    fn back_off_doubles_up_to_its_bound_and_success_resets_it() {
        let now = Instant::now();
        let mut health = Health::Up;
        let mut waits = Vec::new();
        for _ in 0..12 {
            health = health.failed(now);
            let Health::Down { retry_at, .. } = health else {
                panic!("down after a failure");
            };
            waits.push(retry_at - now);
        }
        assert_eq!(waits[0], MIN_NODE_BACKOFF);
        assert_eq!(waits[1], MIN_NODE_BACKOFF * 2);
        assert_eq!(waits[2], MIN_NODE_BACKOFF * 4);
        assert_eq!(*waits.last().unwrap(), MAX_NODE_BACKOFF);
        assert!(waits.windows(2).all(|w| w[0] <= w[1]));
        assert!(!health.usable(now));
        assert!(health.usable(now + MAX_NODE_BACKOFF));
        assert_eq!(health.succeeded(), Health::Up);
        assert_eq!(Health::backoff(u32::MAX), MAX_NODE_BACKOFF);
    }

    #[test]
    fn one_call_claims_a_probe_and_the_next_waits_a_back_off() {
        let now = Instant::now();
        let health = Health::Up.failed(now);
        let due = now + MIN_NODE_BACKOFF;
        assert!(health.usable(due));
        let claimed = health.claim_probe(due);
        assert!(!claimed.usable(due), "a second call does not probe too");
        assert!(claimed.usable(due + MIN_NODE_BACKOFF));
        assert_eq!(Health::Up.claim_probe(now), Health::Up);
        // Not yet due: claiming changes nothing.
        assert_eq!(health.claim_probe(now), health);
    }

    proptest! {
        /// Whatever the loads, health and draws: every node exactly once, the usable ones before
        /// the down ones, the first no busier than the other drawn node, the down ones by retry time.
        #[test]
        fn a_plan_is_an_order_of_every_node_usable_first(
            nodes in proptest::collection::vec((0usize..300, proptest::option::of(0u64..5_000)), 0..12),
            draws in proptest::collection::vec(any::<usize>(), 2),
        ) {
            let now = Instant::now();
            let views: Vec<NodeView> = nodes
                .iter()
                .map(|&(in_flight, down)| NodeView {
                    in_flight,
                    health: match down {
                        None => Health::Up,
                        Some(ms) => Health::Down {
                            failures: 1,
                            retry_at: now + Duration::from_millis(ms),
                        },
                    },
                })
                .collect();
            let mut draw = draws.iter();
            let mut first_draws = Vec::new();
            let order = plan(&views, now, |n| {
                let d = draw.next().copied().unwrap_or(0) % n;
                first_draws.push(d);
                d
            });
            let mut sorted = order.clone();
            sorted.sort_unstable();
            prop_assert_eq!(sorted, (0..views.len()).collect::<Vec<_>>());
            let usable = views.iter().filter(|v| v.health.usable(now)).count();
            prop_assert!(order[..usable].iter().all(|&i| views[i].health.usable(now)));
            let retry = |i: usize| match views[i].health {
                Health::Down { retry_at, .. } => retry_at,
                Health::Up => now,
            };
            prop_assert!(order[usable..].windows(2).all(|w| retry(w[0]) <= retry(w[1])));
            if usable >= 2 {
                let loads: Vec<usize> = order[..usable].iter().map(|&i| views[i].in_flight).collect();
                // The rest after the pick are by load.
                prop_assert!(loads[1..].windows(2).all(|w| w[0] <= w[1]));
                // The pick is one of the two drawn usable nodes, and not the busier of them.
                let candidates: Vec<usize> =
                    (0..views.len()).filter(|&i| views[i].health.usable(now)).collect();
                let a = candidates[first_draws[0]];
                let b = candidates[(first_draws[0] + 1 + first_draws[1]) % usable];
                prop_assert!(a != b);
                prop_assert!(order[0] == a || order[0] == b);
                let other = if order[0] == a { b } else { a };
                prop_assert!(views[order[0]].in_flight <= views[other].in_flight);
            }
        }
    }
}
