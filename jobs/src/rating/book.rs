//! Every rate deck version in memory, and the choice of deck and rate for one call.

use super::price::Rate;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::str::FromStr;
use std::sync::Arc;

/// Which price a deck gives: what the customer pays (`sell`) or what the carrier charges
/// (`buy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Sell = 0,
    Buy = 1,
}

impl Side {
    pub const ALL: [Side; 2] = [Side::Sell, Side::Buy];

    pub fn as_str(self) -> &'static str {
        match self {
            Side::Sell => "sell",
            Side::Buy => "buy",
        }
    }
}

impl FromStr for Side {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sell" => Ok(Side::Sell),
            "buy" => Ok(Side::Buy),
            _ => Err(format!("{s:?} is neither sell nor buy")),
        }
    }
}

/// Which calls a deck prices: one account code's, one source's (a trunk or switch), or every
/// call that no more specific deck prices.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AppliesTo {
    Account(String),
    Source(String),
    All,
}

impl fmt::Display for AppliesTo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppliesTo::Account(a) => write!(f, "account:{a}"),
            AppliesTo::Source(s) => write!(f, "source:{s}"),
            AppliesTo::All => f.write_str("all"),
        }
    }
}

impl FromStr for AppliesTo {
    type Err = String;
    /// `account:<code>`, `source:<name>` or `all`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let named = |v: &str| (!v.is_empty() && v.len() <= 255).then(|| v.to_string());
        if s == "all" {
            return Ok(AppliesTo::All);
        }
        if let Some(code) = s.strip_prefix("account:").and_then(named) {
            return Ok(AppliesTo::Account(code));
        }
        if let Some(name) = s.strip_prefix("source:").and_then(named) {
            return Ok(AppliesTo::Source(name));
        }
        Err(format!("{s:?} is not account:<code>, source:<name> or all"))
    }
}

/// One version of a deck: its rates by prefix, in force from `effective_from` until the next
/// version for the same side and calls.
#[derive(Debug, Clone)]
pub struct DeckVersion {
    pub id: i64,
    pub side: Side,
    pub applies_to: AppliesTo,
    pub effective_from: DateTime<Utc>,
    /// Shared with every rating the deck gives.
    pub currency: Arc<str>,
    /// By [`prefix_key`]: a call's longest prefix is found by hashing integers.
    rates: HashMap<u64, Rate, BuildHasherDefault<KeyHasher>>,
    longest: usize,
}

/// Digits an E.164 number has at most: no longer prefix can match one.
const MAX_DIGITS: usize = 15;

/// A digit string as one integer, its length in the low bits so that `1` and `01` differ.
/// `None` for anything but 1–15 ASCII digits (a prefix no E.164 number can start with).
fn prefix_key(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > MAX_DIGITS || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = digits.iter().fold(0u64, |v, d| v * 10 + u64::from(d - b'0'));
    Some(value << 4 | digits.len() as u64)
}

/// Hashes the integer keys of [`DeckVersion`]'s rates with one multiplication (they are
/// already unique integers; SipHash over strings cost more than the rest of pricing).
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
    }
}

impl DeckVersion {
    pub fn new(
        id: i64,
        side: Side,
        applies_to: AppliesTo,
        effective_from: DateTime<Utc>,
        currency: Arc<str>,
        rates: Vec<Rate>,
    ) -> Self {
        let longest = rates.iter().map(|r| r.prefix.len()).max().unwrap_or(0);
        let rates = rates.into_iter().filter_map(|r| Some((prefix_key(r.prefix.as_bytes())?, r))).collect();
        DeckVersion { id, side, applies_to, effective_from, currency, rates, longest }
    }

    /// The rate of the longest prefix of `digits` (an E.164 number without its `+`).
    pub fn rate_for(&self, digits: &str) -> Option<&Rate> {
        let digits = digits.as_bytes();
        let n = self.longest.min(digits.len()).min(MAX_DIGITS);
        // Prefixes are digits: none reaches past a character that is not one.
        let n = digits[..n].iter().position(|d| !d.is_ascii_digit()).unwrap_or(n);
        let mut keys = [0u64; MAX_DIGITS];
        let mut value = 0u64;
        for (i, d) in digits[..n].iter().enumerate() {
            value = value * 10 + u64::from(d - b'0');
            keys[i] = value << 4 | (i as u64 + 1);
        }
        keys[..n].iter().rev().find_map(|k| self.rates.get(k))
    }
}

/// How a call was priced on one side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RatingStatus {
    /// Priced by a rate of a deck.
    Rated,
    /// A deck applies but none of its prefixes matches the destination.
    Unmatched,
    /// No deck applies to the call at its start time.
    NoDeck,
    /// The destination has no E.164 form (an extension, a SIP user): nothing to match.
    NoNumber,
}

impl RatingStatus {
    pub const ALL: [RatingStatus; 4] =
        [RatingStatus::Rated, RatingStatus::Unmatched, RatingStatus::NoDeck, RatingStatus::NoNumber];

    pub fn as_str(self) -> &'static str {
        match self {
            RatingStatus::Rated => "rated",
            RatingStatus::Unmatched => "unmatched",
            RatingStatus::NoDeck => "no_deck",
            RatingStatus::NoNumber => "no_number",
        }
    }
}

/// One side's price of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rating {
    pub status: RatingStatus,
    /// Present when rated.
    pub cost: Option<Decimal>,
    pub currency: Option<Arc<str>>,
    /// The deck prefix that matched.
    pub prefix: Option<Arc<str>>,
    /// The deck version that applied, rated or not.
    pub deck: Option<i64>,
}

impl Rating {
    fn unrated(status: RatingStatus, deck: Option<&DeckVersion>) -> Self {
        Rating { status, cost: None, currency: None, prefix: None, deck: deck.map(|d| d.id) }
    }
}

/// Every deck version, by side and the calls it applies to, oldest first.
#[derive(Debug, Clone, Default)]
pub struct RateBook {
    /// Sell side first.
    sides: [SideDecks; 2],
}

/// One side's deck versions, looked up by an account code or source name as a CDR has it
/// (no key built per call: every CDR is priced on both sides).
#[derive(Debug, Clone, Default)]
struct SideDecks {
    accounts: foldhash::HashMap<String, Vec<Arc<DeckVersion>>>,
    sources: foldhash::HashMap<String, Vec<Arc<DeckVersion>>>,
    all: Vec<Arc<DeckVersion>>,
}

/// The version in force at `start` among `versions`, oldest first.
fn in_force(versions: &[Arc<DeckVersion>], start: DateTime<Utc>) -> Option<&DeckVersion> {
    let after = versions.partition_point(|d| d.effective_from <= start);
    after.checked_sub(1).map(|i| versions[i].as_ref())
}

impl RateBook {
    pub fn new(decks: impl IntoIterator<Item = DeckVersion>) -> Self {
        let mut book = RateBook::default();
        for d in decks {
            let side = &mut book.sides[d.side as usize];
            let versions = match &d.applies_to {
                AppliesTo::Account(code) => side.accounts.entry(code.clone()).or_default(),
                AppliesTo::Source(name) => side.sources.entry(name.clone()).or_default(),
                AppliesTo::All => &mut side.all,
            };
            versions.push(Arc::new(d));
        }
        for side in &mut book.sides {
            let SideDecks { accounts, sources, all } = side;
            for versions in accounts.values_mut().chain(sources.values_mut()).chain([all]) {
                versions.sort_by_key(|d| d.effective_from);
            }
        }
        book
    }

    /// The deck that prices a call on `side` at `start`: the account's own, else the source's,
    /// else the one for all calls, each in the version in force at `start`.
    pub fn deck_for(
        &self,
        side: Side,
        account: Option<&str>,
        source: &str,
        start: DateTime<Utc>,
    ) -> Option<&DeckVersion> {
        let decks = &self.sides[side as usize];
        account
            .filter(|a| !a.is_empty() && !decks.accounts.is_empty())
            .and_then(|a| decks.accounts.get(a))
            .and_then(|v| in_force(v, start))
            .or_else(|| decks.sources.get(source).and_then(|v| in_force(v, start)))
            .or_else(|| in_force(&decks.all, start))
    }

    /// The price of a call on `side`: the deck in force, the longest prefix of the E.164
    /// destination it has, and that rate's cost of `billsec`.
    pub fn rate(
        &self,
        side: Side,
        account: Option<&str>,
        source: &str,
        dest_e164: Option<&str>,
        start: DateTime<Utc>,
        billsec: i32,
    ) -> Rating {
        let Some(deck) = self.deck_for(side, account, source, start) else {
            return Rating::unrated(RatingStatus::NoDeck, None);
        };
        let Some(digits) = dest_e164.map(|n| n.trim_start_matches('+')) else {
            return Rating::unrated(RatingStatus::NoNumber, Some(deck));
        };
        match deck.rate_for(digits) {
            Some(rate) => Rating {
                status: RatingStatus::Rated,
                cost: Some(rate.cost(i64::from(billsec))),
                currency: Some(deck.currency.clone()),
                prefix: Some(rate.prefix.clone()),
                deck: Some(deck.id),
            },
            None => Rating::unrated(RatingStatus::Unmatched, Some(deck)),
        }
    }

    /// Whether any deck exists at all (ingest skips rating work without one).
    pub fn is_empty(&self) -> bool {
        self.sides.iter().all(|s| s.accounts.is_empty() && s.sources.is_empty() && s.all.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn rate(prefix: &str, per_minute: &str) -> Rate {
        Rate {
            prefix: prefix.into(),
            destination: prefix.into(),
            rate_per_minute: per_minute.parse().unwrap(),
            connect_fee: Decimal::ZERO,
            min_seconds: 60,
            increment_seconds: 60,
        }
    }

    fn deck(id: i64, side: Side, to: &str, from: &str, rates: Vec<Rate>) -> DeckVersion {
        DeckVersion::new(id, side, to.parse().unwrap(), t(from), "EUR".into(), rates)
    }

    #[test]
    fn the_longest_prefix_wins() {
        let book = RateBook::new([deck(
            1,
            Side::Sell,
            "all",
            "2026-01-01T00:00:00Z",
            vec![rate("44", "0.01"), rate("447", "0.05"), rate("4479", "0.20")],
        )]);
        let at = t("2026-06-01T00:00:00Z");
        let r = |n: &str| book.rate(Side::Sell, None, "pbx", Some(n), at, 60);
        assert_eq!(r("+447400123456").prefix.as_deref(), Some("447"));
        assert_eq!(r("+447911123456").prefix.as_deref(), Some("4479"));
        assert_eq!(r("+441212345678").cost.map(|c| c.to_string()).as_deref(), Some("0.010000"));
        assert_eq!(r("+33142685300").status, RatingStatus::Unmatched);
        assert_eq!(book.rate(Side::Sell, None, "pbx", None, at, 60).status, RatingStatus::NoNumber);
        assert_eq!(book.rate(Side::Buy, None, "pbx", Some("+44"), at, 60).status, RatingStatus::NoDeck);
    }

    #[test]
    fn prefixes_differ_by_their_leading_zeros_and_stop_at_a_non_digit() {
        let at = t("2026-06-01T00:00:00Z");
        let book = RateBook::new([deck(
            1,
            Side::Sell,
            "all",
            "2026-01-01T00:00:00Z",
            vec![rate("1", "0.01"), rate("10", "0.02"), rate("100", "0.03"), rate("123456789012345", "0.04")],
        )]);
        let prefix = |n: &str| book.rate(Side::Sell, None, "pbx", Some(n), at, 60).prefix;
        assert_eq!(prefix("+1000").as_deref(), Some("100"));
        assert_eq!(prefix("+1050").as_deref(), Some("10"));
        assert_eq!(prefix("+1500").as_deref(), Some("1"));
        assert_eq!(prefix("+10x0").as_deref(), Some("10"));
        assert_eq!(prefix("+123456789012345").as_deref(), Some("123456789012345"));
        assert_eq!(prefix("+1é").as_deref(), Some("1"));
        assert_eq!(prefix("+2").as_deref(), None);
    }

    #[test]
    fn the_version_in_force_at_the_calls_start_applies() {
        let book = RateBook::new([
            deck(2, Side::Sell, "all", "2026-03-01T00:00:00Z", vec![rate("44", "0.02")]),
            deck(1, Side::Sell, "all", "2026-01-01T00:00:00Z", vec![rate("44", "0.01")]),
        ]);
        let deck_at = |s: &str| book.rate(Side::Sell, None, "x", Some("+4412"), t(s), 60).deck;
        assert_eq!(deck_at("2025-12-31T23:59:59Z"), None);
        assert_eq!(deck_at("2026-02-28T23:59:59Z"), Some(1));
        assert_eq!(deck_at("2026-03-01T00:00:00Z"), Some(2));
    }

    #[test]
    fn an_accounts_deck_comes_before_a_sources_before_the_default() {
        let book = RateBook::new([
            deck(1, Side::Sell, "all", "2026-01-01T00:00:00Z", vec![rate("44", "0.01")]),
            deck(2, Side::Sell, "source:trunk-a", "2026-01-01T00:00:00Z", vec![rate("44", "0.02")]),
            deck(3, Side::Sell, "account:acme", "2026-01-01T00:00:00Z", vec![rate("44", "0.03")]),
        ]);
        let at = t("2026-06-01T00:00:00Z");
        let deck = |acc: Option<&str>, src: &str| book.rate(Side::Sell, acc, src, Some("+4412"), at, 1).deck;
        assert_eq!(deck(Some("acme"), "trunk-a"), Some(3));
        assert_eq!(deck(Some("other"), "trunk-a"), Some(2));
        assert_eq!(deck(None, "trunk-b"), Some(1));
        assert_eq!(deck(Some(""), "trunk-b"), Some(1));
    }

    #[test]
    fn applies_to_reads_its_three_forms() {
        assert_eq!("account:acme".parse::<AppliesTo>(), Ok(AppliesTo::Account("acme".into())));
        assert_eq!("source:gw1".parse::<AppliesTo>(), Ok(AppliesTo::Source("gw1".into())));
        assert_eq!("all".parse::<AppliesTo>(), Ok(AppliesTo::All));
        for bad in ["account:", "acme", "source", ""] {
            assert!(bad.parse::<AppliesTo>().is_err(), "{bad}");
        }
        assert_eq!(AppliesTo::Source("gw1".into()).to_string(), "source:gw1");
    }
}
