//! Realistic CDRs: country number plans, a disposition mix like a carrier's, ring and talk
//! times with long tails, several switches. Deterministic for a seed.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

/// Country codes and how many subscriber digits follow.
const PLANS: [(&str, usize); 8] =
    [("1", 10), ("44", 10), ("33", 9), ("49", 10), ("34", 9), ("91", 10), ("61", 9), ("55", 11)];

/// A small, fast, seedable generator (PCG-style LCG); quality is ample for load data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let x = self.0;
        (x ^ (x >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9) >> 11
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1_u64 << 42) as f64
    }

    /// Exponentially distributed, for talk times (many short calls, a few long ones).
    fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).max(1e-12).ln()
    }
}

pub struct Generator {
    rng: Rng,
    run: String,
    sources: u64,
    next: u64,
    /// Calls start within this window before now.
    spread: Duration,
    /// With a count, calls end in the order they are generated, evenly over the spread, as a
    /// switch writes them; without, at random within it (a shuffled backfill).
    in_order: Option<u64>,
}

impl Generator {
    pub fn new(seed: u64, run: &str, sources: u64, spread: Duration) -> Self {
        Generator {
            rng: Rng::new(seed),
            run: run.to_string(),
            sources: sources.max(1),
            next: 0,
            spread,
            in_order: None,
        }
    }

    /// Calls of the `count` to come end in order, evenly over the spread.
    pub fn in_order(mut self, count: u64) -> Self {
        self.in_order = Some(count.max(1));
        self
    }

    fn number(&mut self) -> String {
        let (cc, digits) = PLANS[self.rng.below(PLANS.len() as u64) as usize];
        let mut n = format!("+{cc}");
        // A limited pool per country, so top destinations and callers are meaningful.
        let pool = self.rng.below(5000);
        let mut x = pool.wrapping_mul(2_654_435_761) ^ (cc.len() as u64 * 97);
        for _ in 0..digits {
            n.push(char::from(b'0' + (x % 10) as u8));
            x /= 10;
            if x == 0 {
                x = pool.wrapping_mul(40_503) + 7;
            }
        }
        n
    }

    /// The next CDR, with its call id (unique within the run) and its end time.
    pub fn next_cdr(&mut self, now: DateTime<Utc>) -> (String, Value) {
        let n = self.next;
        self.next += 1;
        let call_id = format!("{}-{n}", self.run);
        let source = format!("pbx-{}", self.rng.below(self.sources) + 1);
        let disposition = match self.rng.below(100) {
            0..=59 => "ANSWERED",
            60..=79 => "NO ANSWER",
            80..=89 => "BUSY",
            90..=96 => "FAILED",
            _ => "CONGESTION",
        };
        let ring = 2 + self.rng.below(if disposition == "NO ANSWER" { 45 } else { 20 }) as i64;
        let talk =
            if disposition == "ANSWERED" { 1 + self.rng.exponential(180.0).min(7200.0) as i64 } else { 0 };
        let spread_ms = self.spread.num_milliseconds().max(1) as u64;
        let before = match self.in_order {
            Some(count) => spread_ms.saturating_mul(count.saturating_sub(n + 1)) / count,
            None => self.rng.below(spread_ms),
        };
        let end = now - Duration::milliseconds(before as i64);
        let start = end - Duration::seconds(ring + talk);
        let answer = (talk > 0).then(|| start + Duration::seconds(ring));
        let hangup = match disposition {
            "ANSWERED" => "NORMAL_CLEARING",
            "NO ANSWER" => "NO_ANSWER",
            "BUSY" => "USER_BUSY",
            "FAILED" => {
                ["CALL_REJECTED", "UNALLOCATED_NUMBER", "NO_ROUTE_DESTINATION"][self.rng.below(3) as usize]
            }
            _ => "NORMAL_CIRCUIT_CONGESTION",
        };
        let cdr = json!({
            "call_id": call_id,
            "source": source,
            "src_number": self.number(),
            "dest_number": self.number(),
            "start_time": start.to_rfc3339(),
            "answer_time": answer.map(|a| a.to_rfc3339()),
            "end_time": end.to_rfc3339(),
            "disposition": disposition,
            "hangup_cause": hangup,
            "direction": if self.rng.below(2) == 0 { "inbound" } else { "outbound" },
            "account_code": format!("acct-{}", self.rng.below(50)),
        });
        (call_id, cdr)
    }
}

/// One CSV line shaped like the `cdrs` table (for the COPY baseline).
pub fn csv_line(cdr: &Value, job_id: &str) -> String {
    let field = |k: &str| cdr[k].as_str().unwrap_or("").to_string();
    let start: DateTime<Utc> = field("start_time").parse().unwrap_or_default();
    let end: DateTime<Utc> = field("end_time").parse().unwrap_or_default();
    let answer: Option<DateTime<Utc>> = cdr["answer_time"].as_str().and_then(|a| a.parse().ok());
    let duration = (end - start).num_seconds();
    let billsec = answer.map(|a| (end - a).num_seconds()).unwrap_or(0);
    format!(
        "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{{}},{}",
        field("source"),
        field("call_id"),
        field("src_number"),
        field("dest_number"),
        start.to_rfc3339(),
        answer.map(|a| a.to_rfc3339()).unwrap_or_default(),
        end.to_rfc3339(),
        duration,
        billsec,
        field("disposition"),
        field("disposition") == "ANSWERED",
        field("hangup_cause"),
        field("direction"),
        field("account_code"),
        job_id
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end_of(cdr: &Value) -> DateTime<Utc> {
        cdr["end_time"].as_str().and_then(|t| t.parse().ok()).expect("end time")
    }

    #[test]
    fn in_order_calls_end_in_order_over_the_whole_spread() {
        let now = Utc::now();
        let spread = Duration::hours(1);
        let mut g = Generator::new(3, "t", 5, spread).in_order(1000);
        let ends: Vec<_> = (0..1000).map(|_| end_of(&g.next_cdr(now).1)).collect();
        assert!(ends.windows(2).all(|w| w[0] <= w[1]), "ends out of order");
        assert!(ends[0] <= now - spread + Duration::seconds(4), "first call ends at {}", ends[0]);
        assert_eq!(ends[999], now);
    }

    #[test]
    fn shuffled_calls_end_anywhere_in_the_spread() {
        let now = Utc::now();
        let mut g = Generator::new(3, "t", 5, Duration::hours(1));
        let ends: Vec<_> = (0..1000).map(|_| end_of(&g.next_cdr(now).1)).collect();
        assert!(ends.iter().all(|e| *e <= now && *e > now - Duration::hours(1)));
        assert!(ends.windows(2).any(|w| w[0] > w[1]), "a shuffled load came out in order");
    }
}
