//! Reading a rate deck from CSV, as carriers publish them.
//!
//! The header is `prefix,destination,rate_per_minute,connect_fee,min_seconds,increment_seconds,currency`
//! (columns in any order, names in any case). Every row is checked and the first fault is
//! named by line and column, so an operator can fix the file: a deck is all or nothing.

use super::price::Rate;
use rust_decimal::Decimal;
use std::collections::HashSet;
use std::str::FromStr;

/// The columns a deck must have.
pub const COLUMNS: [&str; 7] = [
    "prefix",
    "destination",
    "rate_per_minute",
    "connect_fee",
    "min_seconds",
    "increment_seconds",
    "currency",
];

/// The largest rate per minute or connect fee: far above any real tariff, and low enough that
/// the longest call's cost fits the stored precision and the index's sums in millionths.
pub const MAX_AMOUNT: u32 = 10_000;

/// Most digits a prefix may have: a whole E.164 number.
const MAX_PREFIX_DIGITS: usize = 15;

/// A deck's rates, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeckRates {
    /// ISO 4217 code every row gave.
    pub currency: String,
    pub rates: Vec<Rate>,
}

/// Where a deck is wrong. `line` is 1-based, the header being line 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, {field}: {reason}")]
pub struct DeckError {
    pub line: u64,
    pub field: String,
    pub reason: String,
}

fn fault(line: u64, field: &str, reason: impl Into<String>) -> DeckError {
    DeckError { line, field: field.to_string(), reason: reason.into() }
}

/// Reads a deck, refusing it whole at its first fault.
pub fn read_deck(body: &[u8]) -> Result<DeckRates, DeckError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).flexible(false).from_reader(body);
    let header = reader.headers().map_err(|e| fault(1, "header", e.to_string()))?.clone();
    let mut at = [usize::MAX; COLUMNS.len()];
    for (i, name) in header.iter().enumerate() {
        let name = name.to_ascii_lowercase();
        match COLUMNS.iter().position(|c| *c == name) {
            Some(k) if at[k] == usize::MAX => at[k] = i,
            Some(_) => return Err(fault(1, &name, "column given twice")),
            None => {
                return Err(fault(1, &name, format!("unknown column; a deck has {}", COLUMNS.join(","))));
            }
        }
    }
    if let Some(k) = at.iter().position(|i| *i == usize::MAX) {
        return Err(fault(1, COLUMNS[k], format!("missing column; a deck has {}", COLUMNS.join(","))));
    }
    let mut currency: Option<String> = None;
    let mut seen = HashSet::new();
    let mut rates = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let line = n as u64 + 2;
        let record = record.map_err(|e| fault(line, "row", e.to_string()))?;
        let get = |k: usize| record.get(at[k]).unwrap_or_default();
        let prefix = get(0).trim_start_matches('+');
        if prefix.is_empty()
            || prefix.len() > MAX_PREFIX_DIGITS
            || !prefix.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(fault(
                line,
                "prefix",
                format!("{:?} is not 1 to 15 digits of an E.164 number", get(0)),
            ));
        }
        if !seen.insert(prefix.to_string()) {
            return Err(fault(line, "prefix", format!("{prefix} is given twice")));
        }
        let money = |k: usize| -> Result<Decimal, DeckError> {
            let v = Decimal::from_str(get(k))
                .map_err(|_| fault(line, COLUMNS[k], format!("{:?} is not a decimal number", get(k))))?;
            if v.is_sign_negative() {
                return Err(fault(line, COLUMNS[k], "must not be negative"));
            }
            if v.scale() > super::price::COST_SCALE {
                return Err(fault(line, COLUMNS[k], "more than 6 decimal places"));
            }
            if v > Decimal::from(MAX_AMOUNT) {
                return Err(fault(line, COLUMNS[k], format!("more than {MAX_AMOUNT}")));
            }
            Ok(v)
        };
        let seconds = |k: usize, least: u32| -> Result<u32, DeckError> {
            get(k).parse::<u32>().ok().filter(|s| (least..=86_400).contains(s)).ok_or_else(|| {
                fault(line, COLUMNS[k], format!("{:?} is not whole seconds from {least} to 86400", get(k)))
            })
        };
        let rate = Rate {
            prefix: prefix.into(),
            destination: get(1).to_string(),
            rate_per_minute: money(2)?,
            connect_fee: money(3)?,
            min_seconds: seconds(4, 0)?,
            increment_seconds: seconds(5, 1)?,
        };
        let code = get(6).to_ascii_uppercase();
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(fault(line, "currency", format!("{:?} is not an ISO 4217 code", get(6))));
        }
        match &currency {
            Some(c) if *c != code => {
                return Err(fault(
                    line,
                    "currency",
                    format!("{code} differs from the deck's {c}; a deck has one currency"),
                ));
            }
            Some(_) => {}
            None => currency = Some(code),
        }
        rates.push(rate);
    }
    let currency = currency.ok_or_else(|| fault(2, "row", "the deck has no rates"))?;
    Ok(DeckRates { currency, rates })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str =
        "prefix,destination,rate_per_minute,connect_fee,min_seconds,increment_seconds,currency\n";

    #[test]
    fn a_deck_is_read_with_its_increments_and_currency() {
        let body = format!("{HEADER}44,United Kingdom,0.012,0,60,60,EUR\n447,UK mobile,0.05,0.01,30,6,eur\n");
        let deck = read_deck(body.as_bytes()).unwrap();
        assert_eq!(deck.currency, "EUR");
        assert_eq!(deck.rates.len(), 2);
        assert_eq!(&*deck.rates[1].prefix, "447");
        assert_eq!((deck.rates[1].min_seconds, deck.rates[1].increment_seconds), (30, 6));
        assert_eq!(deck.rates[1].connect_fee.to_string(), "0.01");
    }

    #[test]
    fn columns_may_come_in_any_order_with_a_plus_on_prefixes() {
        let body = "currency,prefix,destination,increment_seconds,min_seconds,connect_fee,rate_per_minute\nUSD,+1,US,1,1,0,0.005\n";
        let deck = read_deck(body.as_bytes()).unwrap();
        assert_eq!(&*deck.rates[0].prefix, "1");
        assert_eq!(deck.rates[0].rate_per_minute.to_string(), "0.005");
    }

    #[test]
    fn faults_name_the_line_and_column() {
        for (rows, line, field) in [
            ("44,UK,abc,0,60,60,EUR\n", 2, "rate_per_minute"),
            ("44,UK,0.1,0,60,60,EUR\n4a,X,0.1,0,60,60,EUR\n", 3, "prefix"),
            ("44,UK,0.1,0,60,0,EUR\n", 2, "increment_seconds"),
            ("44,UK,-0.1,0,60,60,EUR\n", 2, "rate_per_minute"),
            ("44,UK,0.1,0,60,60,EUR\n33,FR,0.1,0,60,60,USD\n", 3, "currency"),
            ("44,UK,0.1,0,60,60,EUR\n44,UK,0.2,0,60,60,EUR\n", 3, "prefix"),
            ("44,UK,0.1234567,0,60,60,EUR\n", 2, "rate_per_minute"),
            ("44,UK,0.1,10000.01,60,60,EUR\n", 2, "connect_fee"),
            ("44,UK,0.1,0,60,60\n", 2, "row"),
        ] {
            let err = read_deck(format!("{HEADER}{rows}").as_bytes()).unwrap_err();
            assert_eq!((err.line, err.field.as_str()), (line, field), "{rows:?}: {err}");
        }
        let err = read_deck(b"prefix,destination\n44,UK\n").unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (1, "rate_per_minute"));
        assert_eq!(read_deck(HEADER.as_bytes()).unwrap_err().field, "row");
    }
}
