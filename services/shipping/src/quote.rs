//! The shipping quote: which carrier takes an order, and how long it takes.
//!
//! Deterministic by design: a retried request, or the same order on another
//! instance, must book the same carrier with the same estimate.

use serde::{Deserialize, Serialize};

/// One line of an order to ship.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Item {
    pub product_id: i64,
    pub quantity: i64,
}

/// Carriers and their base transit time in days.
const CARRIERS: &[(&str, i64)] = &[
    ("parcelpost", 4),
    ("swiftship", 2),
    ("greenline", 5),
    ("northwind", 3),
];
/// Parcels heavier than this (grams) go by freight with `northwind`.
const FREIGHT_OVER_GRAMS: i64 = 30_000;
/// Parcels heavier than this (grams) take a day longer.
const HEAVY_OVER_GRAMS: i64 = 10_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    pub shipment_id: String,
    pub carrier: &'static str,
    pub eta_days: i64,
    pub weight_grams: i64,
}

/// Checks the items of a shipment request.
pub fn validate(items: &[Item]) -> Result<(), String> {
    if items.is_empty() {
        return Err("items must not be empty".into());
    }
    for item in items {
        if item.product_id <= 0 {
            return Err(format!("invalid product_id {}", item.product_id));
        }
        if !(1..=10_000).contains(&item.quantity) {
            return Err(format!(
                "quantity must be between 1 and 10000 (product {})",
                item.product_id
            ));
        }
    }
    Ok(())
}

/// Quotes a shipment for `order_id` (items already validated).
pub fn quote(order_id: i64, items: &[Item]) -> Quote {
    let mut hash = Fnv::default();
    hash.write(order_id);
    for item in items {
        hash.write(item.product_id);
        hash.write(item.quantity);
    }
    let hash = hash.finish();
    let weight_grams: i64 = items
        .iter()
        .map(|i| i.quantity.saturating_mul(unit_weight_grams(i.product_id)))
        .sum();
    let (carrier, base_days) = if weight_grams > FREIGHT_OVER_GRAMS {
        CARRIERS[3]
    } else {
        CARRIERS[(hash % CARRIERS.len() as u64) as usize]
    };
    // Some days a depot is slower: one extra day for half the orders.
    let eta_days =
        base_days + i64::from(weight_grams > HEAVY_OVER_GRAMS) + ((hash >> 8) % 2) as i64;
    Quote {
        shipment_id: format!("SHP-{order_id}-{:06X}", (hash >> 16) & 0xFF_FFFF),
        carrier,
        eta_days,
        weight_grams,
    }
}

/// A product's weight: a stable pseudo-random 200 g .. 2 kg.
fn unit_weight_grams(product_id: i64) -> i64 {
    200 + product_id
        .rem_euclid(1801)
        .wrapping_mul(37)
        .rem_euclid(1801)
}

/// FNV-1a, 64-bit: tiny, stable across releases (unlike `DefaultHasher`).
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, value: i64) {
        for byte in value.to_le_bytes() {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(lines: &[(i64, i64)]) -> Vec<Item> {
        lines
            .iter()
            .map(|&(product_id, quantity)| Item {
                product_id,
                quantity,
            })
            .collect()
    }

    #[test]
    fn the_same_order_gets_the_same_quote() {
        let a = quote(42, &items(&[(1, 2), (7, 1)]));
        assert_eq!(a, quote(42, &items(&[(1, 2), (7, 1)])));
        assert!(a.shipment_id.starts_with("SHP-42-"));
        assert!((2..=7).contains(&a.eta_days), "{a:?}");
    }

    #[test]
    fn orders_spread_over_carriers() {
        let carriers: std::collections::BTreeSet<_> = (1..200)
            .map(|order| quote(order, &items(&[(3, 1)])).carrier)
            .collect();
        assert_eq!(carriers.len(), CARRIERS.len(), "{carriers:?}");
    }

    #[test]
    fn heavy_parcels_go_by_freight_and_take_longer() {
        let heavy = quote(1, &items(&[(5, 100)]));
        assert!(heavy.weight_grams > FREIGHT_OVER_GRAMS);
        assert_eq!(heavy.carrier, "northwind");
        assert!(heavy.eta_days >= 4);
    }

    #[test]
    fn validation_rejects_empty_and_bad_lines() {
        assert!(validate(&items(&[(1, 1)])).is_ok());
        assert!(validate(&[]).is_err());
        assert!(validate(&items(&[(1, 0)])).is_err());
        assert!(validate(&items(&[(0, 1)])).is_err());
        assert!(validate(&items(&[(1, 10_001)])).is_err());
    }
}
