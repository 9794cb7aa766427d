//! Numbers as the world dials them: the E.164 form of a party the switch wrote, the
//! destination's country and type, from libphonenumber's metadata and the source's own
//! dialling rules.
//!
//! Nothing is guessed. A value becomes E.164 only when it is written internationally (`+`,
//! or an international prefix) with a known country calling code, or nationally by a source
//! whose home country is known and libphonenumber finds it a valid number. Everything else keeps no E.164 and a type that
//! says why: `extension` (a short number, a feature code such as `*1001`, or a one-letter
//! dialplan extension such as `s`), `sip_user`, `invalid`, `unresolved` (national digits from a
//! source without a home country) or `empty`.

mod plan;
pub mod plans;
mod types;

pub use plan::{DiallingPlan, DiallingPlanSpec, PlanError};

use phonenumber::{PhoneNumber, Type};
use std::sync::Arc;

/// Digits at most that are an extension or a service code rather than a number: no
/// national number anywhere is shorter than 7 digits with its area code, short codes aside.
const MAX_EXTENSION_DIGITS: usize = 6;

/// What was derived from one party.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalised {
    /// `+` and digits, when the value is a valid dialable number. Shared, as the country
    /// is, by every call the number is remembered for.
    pub e164: Option<Arc<str>>,
    /// ISO 3166-1 alpha-2 of the number's country; `None` for non-geographic numbers and
    /// values without an E.164 form.
    pub country: Option<Arc<str>>,
    /// The number's type (`mobile`, `fixed_line`, `toll_free`, `premium_rate`, …), or, with no
    /// E.164 form, why not (`extension`, `sip_user`, `invalid`, `unresolved`, `empty`).
    pub kind: &'static str,
}

impl Normalised {
    fn none(kind: &'static str) -> Self {
        Normalised { e164: None, country: None, kind }
    }
}

/// Every type a destination can have, for documentation and validation of filters.
pub const KINDS: [&str; 22] = [
    "fixed_line",
    "mobile",
    "fixed_line_or_mobile",
    "toll_free",
    "premium_rate",
    "shared_cost",
    "personal_number",
    "voip",
    "pager",
    "uan",
    "emergency",
    "voicemail",
    "short_code",
    "standard_rate",
    "carrier",
    "no_international",
    "unknown",
    "extension",
    "sip_user",
    "invalid",
    "unresolved",
    "empty",
];

/// The party as a digit string: scheme, host and parameters of a URI removed, visual
/// separators dropped. `Err` names why the value is no number.
fn dialled(raw: &str) -> Result<String, &'static str> {
    let mut s = raw.trim();
    for scheme in ["sip:", "sips:", "tel:"] {
        if s.len() >= scheme.len() && s[..scheme.len()].eq_ignore_ascii_case(scheme) {
            s = &s[scheme.len()..];
        }
    }
    let s = s.split(['@', ';']).next().unwrap_or_default();
    let digits: String = s.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')')).collect();
    if digits.is_empty() {
        return Err("empty");
    }
    let (plus, rest) = match digits.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, digits.as_str()),
    };
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
        // Feature and service codes (`*1001`, `*99#`) and Asterisk's one-letter dialplan
        // extensions (`s`, `t`, `h`, `i`) are extensions; other words are SIP users.
        let code = !plus && rest.bytes().all(|b| b.is_ascii_digit() || b == b'*' || b == b'#');
        let letter = !plus && rest.len() == 1 && rest.bytes().all(|b| b.is_ascii_alphabetic());
        return Err(if code || letter {
            "extension"
        } else if !plus && rest.chars().any(char::is_alphabetic) {
            "sip_user"
        } else {
            "invalid"
        });
    }
    Ok(if plus { digits } else { rest.to_string() })
}

/// Compiled patterns libphonenumber's metadata may keep at once. The crate keeps them in one
/// LRU of 100, fewer than the patterns of even a few countries' numbers, so every call
/// recompiled patterns evicted by the one before (~70 µs a number); a cache that holds every
/// pattern in use makes a number cost a few microseconds. Patterns are compiled only when
/// used: traffic to a handful of countries compiles a few hundred.
const PATTERNS_KEPT: usize = 20_000;

static PATTERN_CACHE: std::sync::Once = std::sync::Once::new();

fn keep_patterns() {
    PATTERN_CACHE.call_once(|| {
        let cache = phonenumber::metadata::DATABASE.cache();
        let mut kept = cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *kept = regex_cache::RegexCache::new(PATTERNS_KEPT);
    });
}

impl DiallingPlan {
    /// The E.164 form, country and type of a party as this source wrote it.
    pub fn normalise(&self, raw: &str) -> Normalised {
        keep_patterns();
        let digits = match dialled(raw) {
            Ok(d) => d,
            Err(kind) => return Normalised::none(kind),
        };
        if let Some(international) = digits.strip_prefix('+') {
            return international_number(international);
        }
        let digits = self.without_tech_prefix(&digits);
        if digits.len() <= MAX_EXTENSION_DIGITS {
            return Normalised::none("extension");
        }
        if let Some(rest) = self.international_prefixes.iter().find_map(|p| digits.strip_prefix(p.as_str())) {
            return international_number(rest);
        }
        if let Some(country) = self.home {
            if let Some(rest) = without_home_idd(country, digits) {
                return international_number(rest);
            }
            let national = match &self.national_prefix {
                Some(p) => digits.strip_prefix(p.as_str()).unwrap_or(digits),
                None => digits,
            };
            // libphonenumber strips the country's own trunk and international prefixes.
            return classify(phonenumber::parse(Some(country), national).ok());
        }
        if self.digits_are_e164 {
            return international_number(digits);
        }
        Normalised::none("unresolved")
    }

    fn without_tech_prefix<'a>(&self, digits: &'a str) -> &'a str {
        // Longest first (sorted when the plan was built), so `1010` wins over `10`.
        self.strip_prefixes.iter().find_map(|p| digits.strip_prefix(p.as_str())).unwrap_or(digits)
    }
}

/// The digits after the home country's own international prefix (`011` in the US, `00` in
/// most of Europe), when they start with one followed by a country code (never `0`).
/// Done here rather than left to libphonenumber's parser, which misses some (`011 33 …`
/// from the US).
fn without_home_idd(country: phonenumber::country::Id, digits: &str) -> Option<&str> {
    let meta = phonenumber::metadata::DATABASE.by_id(country.as_ref())?;
    let idd = meta.international_prefix()?.find(digits)?;
    let rest = &digits[idd.end()..];
    (idd.start() == 0 && !rest.is_empty() && !rest.starts_with('0')).then_some(rest)
}

/// A number written internationally. One libphonenumber does not find valid (a range newer
/// than its metadata, a test or reserved range) keeps its E.164 form — the switch dialled
/// it so — with type `unknown`, and the country only when its calling code is one
/// country's alone (`+34` is Spain; `+1` or `+44` could be several).
fn international_number(digits: &str) -> Normalised {
    if digits.len() < 7 || digits.len() > 15 {
        return Normalised::none("invalid");
    }
    let Ok(number) = phonenumber::parse(None, format!("+{digits}")) else {
        return Normalised::none("invalid");
    };
    let typed = types::typed(&number);
    if typed.valid {
        return classified(&number, typed);
    }
    let code = number.code().value();
    let regions = phonenumber::metadata::DATABASE.region(&code).unwrap_or_default();
    let country = match regions.as_slice() {
        [only] if *only != "001" => Some((*only).into()),
        _ => None,
    };
    Normalised { e164: Some(types::e164(&number).into()), country, kind: "unknown" }
}

fn classify(number: Option<PhoneNumber>) -> Normalised {
    match number.map(|n| (types::typed(&n), n)) {
        Some((typed, number)) if typed.valid => classified(&number, typed),
        _ => Normalised::none("invalid"),
    }
}

fn classified(number: &PhoneNumber, typed: types::Typed) -> Normalised {
    let country = typed.region.and_then(|meta| meta.id().parse::<phonenumber::country::Id>().ok());
    Normalised {
        e164: Some(types::e164(number).into()),
        country: country.map(|id| id.as_ref().into()),
        kind: type_name(typed.kind),
    }
}

fn type_name(t: Type) -> &'static str {
    match t {
        Type::FixedLine => "fixed_line",
        Type::Mobile => "mobile",
        Type::FixedLineOrMobile => "fixed_line_or_mobile",
        Type::TollFree => "toll_free",
        Type::PremiumRate => "premium_rate",
        Type::SharedCost => "shared_cost",
        Type::PersonalNumber => "personal_number",
        Type::Voip => "voip",
        Type::Pager => "pager",
        Type::Uan => "uan",
        Type::Emergency => "emergency",
        Type::Voicemail => "voicemail",
        Type::ShortCode => "short_code",
        Type::StandardRate => "standard_rate",
        Type::Carrier => "carrier",
        Type::NoInternational => "no_international",
        Type::Unknown => "unknown",
    }
}

#[cfg(test)]
mod tests;
