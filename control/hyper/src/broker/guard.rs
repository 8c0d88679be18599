//! The loop guard (SPEC §2.4 step 1): an addressable id may be in flight only once per node.

use crate::broker::ChannelError;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::types::DeliveryError;

/// Most requests in flight through one broker at once. Every in-flight request holds an entry
/// (≤ ~1.2 KiB: the addressable id); 16384 is well above the gateway's and gRPC server's
/// concurrency bounds, so hitting it means a flood, which is refused rather than queued.
pub const MAX_IN_TRANSIT: usize = 16_384;

/// The set of addressable ids being delivered.
#[derive(Debug, Default)]
pub struct InTransit {
    // std Mutex: held only for one set operation, never across an await.
    ids: Mutex<HashSet<String>>,
}

/// Proof that an id is in flight; dropping it (call finished, failed or cancelled) frees the id.
#[derive(Debug)]
pub struct TransitGuard {
    set: Arc<InTransit>,
    id: String,
}

impl InTransit {
    /// Marks `id` as in flight, or refuses a second concurrent delivery of the same id.
    pub fn enter(self: &Arc<Self>, id: &str) -> Result<TransitGuard, DeliveryError> {
        let mut ids = self.lock();
        if ids.contains(id) {
            return Err(DeliveryError::Loop(id.to_owned()));
        }
        if ids.len() >= MAX_IN_TRANSIT {
            return Err(ChannelError::TooManyInTransit {
                max: MAX_IN_TRANSIT,
            }
            .into());
        }
        ids.insert(id.to_owned());
        Ok(TransitGuard {
            set: self.clone(),
            id: id.to_owned(),
        })
    }

    /// How many ids are in flight.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is in flight.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, HashSet<String>> {
        // Single set operations cannot leave the set inconsistent, so a poisoned lock is usable.
        self.ids.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for TransitGuard {
    fn drop(&mut self) {
        self.set.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_delivery_of_the_same_id_is_a_loop_until_the_first_ends() {
        let set = Arc::new(InTransit::default());
        let first = set.enter("hd-2._ping(1)").unwrap();
        assert_eq!(
            set.enter("hd-2._ping(1)").unwrap_err(),
            DeliveryError::Loop("hd-2._ping(1)".into())
        );
        let other = set.enter("hd-2._ping(2)").unwrap();
        drop(first);
        assert!(set.enter("hd-2._ping(1)").is_ok());
        drop(other);
        assert!(set.is_empty());
    }
}
