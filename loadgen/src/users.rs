//! The simulated shoppers: leases so one user runs one journey at a time, and
//! each user's cached login token.
//!
//! Real users do not check out the same cart from two tabs at once a hundred
//! times a second; if we let concurrent journeys share a user, they would
//! race on one cart and fail checkouts the shop is not to blame for.

use std::sync::Arc;

use parking_lot::Mutex;

/// All users, `user1 ..= userN`.
pub struct UserPool {
    slots: Mutex<Vec<Slot>>,
}

#[derive(Default)]
struct Slot {
    busy: bool,
    /// The last token the shop gave this user. Kept across journeys, as a
    /// browser keeps a session; dropped and renewed when the shop says 401.
    token: Option<String>,
}

/// Exclusive use of one user until dropped; the token goes back to the pool
/// with it.
pub struct UserLease {
    pool: Arc<UserPool>,
    /// 1-based user number.
    user: u32,
    pub token: Option<String>,
}

// === impl UserPool ===

impl UserPool {
    pub fn new(users: u32) -> Arc<Self> {
        let slots = (0..users).map(|_| Slot::default()).collect();
        Arc::new(UserPool {
            slots: Mutex::new(slots),
        })
    }

    /// Leases `preferred` (1-based) if free, else the next free user after it
    /// (wrapping); `None` if every user is busy.
    ///
    /// Taking a neighbour rather than dropping keeps the offered load at the
    /// target rate when a few users are busy; it is the one place a run's
    /// choices depend on timing, and only when journeys overlap on a user.
    pub fn lease(self: &Arc<Self>, preferred: u32) -> Option<UserLease> {
        let mut slots = self.slots.lock();
        let n = slots.len();
        if n == 0 {
            return None;
        }
        let first = (preferred.max(1) as usize - 1) % n;
        let i = (0..n).map(|k| (first + k) % n).find(|&i| !slots[i].busy)?;
        slots[i].busy = true;
        Some(UserLease {
            pool: Arc::clone(self),
            user: u32::try_from(i + 1).unwrap_or(u32::MAX),
            token: slots[i].token.take(),
        })
    }
}

// === impl UserLease ===

impl UserLease {
    pub fn username(&self) -> String {
        format!("user{}", self.user)
    }
}

impl Drop for UserLease {
    fn drop(&mut self) {
        let mut slots = self.pool.slots.lock();
        if let Some(slot) = slots.get_mut(self.user as usize - 1) {
            slot.busy = false;
            slot.token = self.token.take();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_exclusive_and_return_with_their_token() {
        let pool = UserPool::new(3);
        let mut a = pool.lease(2).unwrap();
        assert_eq!(a.username(), "user2");
        a.token = Some("t2".into());

        // user2 is busy: the next free one, wrapping.
        let b = pool.lease(2).unwrap();
        assert_eq!(b.username(), "user3");
        let c = pool.lease(3).unwrap();
        assert_eq!(c.username(), "user1");
        assert!(pool.lease(1).is_none(), "all busy");

        drop(a);
        let again = pool.lease(2).unwrap();
        assert_eq!(again.username(), "user2");
        assert_eq!(again.token.as_deref(), Some("t2"));
        drop((b, c));
        // 500 wraps to user2, still leased as `again`, so the next one.
        assert_eq!(pool.lease(500).unwrap().username(), "user3");
    }

    #[test]
    fn empty_pool_leases_nothing() {
        assert!(UserPool::new(0).lease(1).is_none());
    }
}
