//! The price of one call under one rate, in exact decimal arithmetic.
//!
//! Carriers write a rate's billing increments as `min/increment` (`60/60`, `1/1`, `30/6`):
//! an answered call is billed at least `min_seconds`, then in whole `increment_seconds`
//! steps. A call that was not answered (no billable seconds) costs nothing, connect fee
//! included; an answered one costs the connect fee plus the per-minute rate over its billed
//! seconds, rounded half away from zero to [`COST_SCALE`] decimal places, the precision
//! costs are stored with.

use rust_decimal::{Decimal, RoundingStrategy};
use std::sync::Arc;

/// Decimal places a cost is kept to (PostgreSQL `NUMERIC(24, 6)`).
pub const COST_SCALE: u32 = 6;

/// One row of a rate deck: what calls to numbers starting with `prefix` cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rate {
    /// Shared with every rating that matched it.
    pub prefix: Arc<str>,
    pub destination: String,
    pub rate_per_minute: Decimal,
    pub connect_fee: Decimal,
    pub min_seconds: u32,
    /// Never 0 (checked when the deck is read).
    pub increment_seconds: u32,
}

impl Rate {
    /// The seconds billed for a call of `billsec` billable seconds.
    pub fn billed_seconds(&self, billsec: i64) -> i64 {
        if billsec <= 0 {
            return 0;
        }
        let min = i64::from(self.min_seconds);
        if billsec <= min {
            return min;
        }
        let step = i64::from(self.increment_seconds.max(1));
        let over = billsec - min;
        min + (over + step - 1) / step * step
    }

    /// What a call of `billsec` billable seconds costs.
    pub fn cost(&self, billsec: i64) -> Decimal {
        let billed = self.billed_seconds(billsec);
        if billed == 0 {
            return Decimal::new(0, COST_SCALE);
        }
        let raw = self.connect_fee + self.rate_per_minute * Decimal::from(billed) / Decimal::from(60);
        let mut cost = raw.round_dp_with_strategy(COST_SCALE, RoundingStrategy::MidpointAwayFromZero);
        // Always six places, as stored, so every cost reads the same way.
        cost.rescale(COST_SCALE);
        cost
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn rate(per_minute: &str, fee: &str, min: u32, inc: u32) -> Rate {
        Rate {
            prefix: "44".into(),
            destination: "United Kingdom".into(),
            rate_per_minute: Decimal::from_str(per_minute).unwrap(),
            connect_fee: Decimal::from_str(fee).unwrap(),
            min_seconds: min,
            increment_seconds: inc,
        }
    }

    fn cost(r: &Rate, billsec: i64) -> String {
        r.cost(billsec).to_string()
    }

    #[test]
    fn sixty_sixty_bills_whole_minutes() {
        let r = rate("0.012", "0", 60, 60);
        // 1 s → 1 minute; 60 s → 1 minute; 61 s → 2 minutes; 125 s → 3 minutes.
        assert_eq!(r.billed_seconds(1), 60);
        assert_eq!(r.billed_seconds(60), 60);
        assert_eq!(r.billed_seconds(61), 120);
        assert_eq!(cost(&r, 125), "0.036000");
    }

    #[test]
    fn one_one_bills_every_second() {
        let r = rate("0.60", "0", 1, 1);
        // 0.60 a minute is 0.01 a second: 37 s → 0.37.
        assert_eq!(r.billed_seconds(37), 37);
        assert_eq!(cost(&r, 37), "0.370000");
        assert_eq!(cost(&r, 1), "0.010000");
    }

    #[test]
    fn thirty_six_bills_half_a_minute_then_six_second_steps() {
        let r = rate("0.10", "0.05", 30, 6);
        // 10 s → 30 s: 0.05 + 0.10 × 30/60 = 0.10.
        assert_eq!(cost(&r, 10), "0.100000");
        // 31 s → 36 s: 0.05 + 0.10 × 36/60 = 0.11.
        assert_eq!(r.billed_seconds(31), 36);
        assert_eq!(cost(&r, 31), "0.110000");
        // 95 s → 30 + 66 = 96 s: 0.05 + 0.16 = 0.21.
        assert_eq!(r.billed_seconds(95), 96);
        assert_eq!(cost(&r, 95), "0.210000");
    }

    #[test]
    fn unanswered_calls_cost_nothing_not_even_the_connect_fee() {
        let r = rate("0.10", "0.25", 60, 60);
        assert_eq!(r.cost(0), Decimal::ZERO);
        assert_eq!(cost(&r, 0), "0.000000");
        assert_eq!(r.cost(-3), Decimal::ZERO);
    }

    #[test]
    fn a_fraction_of_a_micro_unit_rounds_half_away_from_zero() {
        // 0.01 a minute over 7 s: 0.0011666… → 0.001167.
        let r = rate("0.01", "0", 1, 1);
        assert_eq!(cost(&r, 7), "0.001167");
        // 0.000003 a minute over 30 s: 0.0000015 → 0.000002 (half rounds up).
        let r = rate("0.000003", "0", 1, 1);
        assert_eq!(cost(&r, 30), "0.000002");
    }
}
