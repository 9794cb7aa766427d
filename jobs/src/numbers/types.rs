//! A number's region and type from libphonenumber's metadata, each region's patterns
//! compiled once into one set.
//!
//! The `phonenumber` crate answers "which region, which type" by matching the number
//! against its region's type patterns one after another, and every match goes through one
//! process-wide pattern cache behind a mutex held while the pattern runs: a number not seen
//! before cost tens of microseconds, and ingest workers queued on that mutex. Here a
//! region's patterns are one anchored [`RegexSet`], built the first time a number of that
//! region is seen and searched once per number without any lock held. The answers are the
//! crate's own (`validator::source_for` and `validator::number_type`, whose rules this
//! follows step by step); the tests compare the two on numbers of many countries.

use phonenumber::metadata::{DATABASE, Descriptor, Metadata};
use phonenumber::{PhoneNumber, Type, country};
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

/// Types tried after the general pattern matched, in libphonenumber's order; fixed lines
/// and mobiles come last, told apart (or not) below.
const FIRST_TYPES: [Type; 8] = [
    Type::PremiumRate,
    Type::TollFree,
    Type::SharedCost,
    Type::Voip,
    Type::PersonalNumber,
    Type::Pager,
    Type::Uan,
    Type::Voicemail,
];

/// Slots of a region's patterns: the general one, [`FIRST_TYPES`], fixed line, mobile.
const GENERAL: usize = 0;
const FIXED: usize = FIRST_TYPES.len() + 1;
const MOBILE: usize = FIXED + 1;
const SLOTS: usize = MOBILE + 1;

/// One region's patterns, compiled.
struct Patterns {
    /// Every pattern the region has, each anchored at the number's start.
    set: RegexSet,
    /// Per slot, the pattern's index in `set` and the lengths it allows (none: any).
    slots: [Option<(usize, Vec<u16>)>; SLOTS],
    /// Fixed lines and mobiles share one pattern (the type is then "either").
    fixed_is_mobile: bool,
    /// Which region of a shared calling code a number belongs to, when the metadata says so.
    leading_digits: Option<Regex>,
}

/// A pattern as the crate compiles it (whitespace ignored), anchored where the crate asks
/// for a match starting at the number's first digit.
fn anchored(pattern: &str) -> String {
    format!("^(?:{pattern}\n)")
}

/// A region's descriptors by slot.
fn descriptors(meta: &Metadata) -> [Option<&Descriptor>; SLOTS] {
    let d = meta.descriptors();
    std::array::from_fn(|slot| match slot {
        GENERAL => Some(d.general()),
        FIXED => d.fixed_line(),
        MOBILE => d.mobile(),
        first => d.get(FIRST_TYPES[first - 1]),
    })
}

/// Fixed lines and mobiles share one pattern (a number matching it is "either").
fn fixed_is_mobile(meta: &Metadata) -> bool {
    let d = meta.descriptors();
    matches!((d.fixed_line(), d.mobile()),
        (Some(f), Some(m)) if f.national_number().as_str() == m.national_number().as_str())
}

/// libphonenumber's type rules, given which slots' patterns (and lengths) take the number.
fn type_of(hit: impl Fn(usize) -> bool, fixed_is_mobile: bool) -> Type {
    if !hit(GENERAL) {
        return Type::Unknown;
    }
    if let Some(i) = (1..FIXED).find(|&slot| hit(slot)) {
        return FIRST_TYPES[i - 1];
    }
    match (hit(FIXED), hit(MOBILE)) {
        (true, mobile) if mobile || fixed_is_mobile => Type::FixedLineOrMobile,
        (true, _) => Type::FixedLine,
        (false, true) => Type::Mobile,
        (false, false) => Type::Unknown,
    }
}

impl Patterns {
    fn compile(meta: &Metadata) -> Option<Patterns> {
        let descriptors = descriptors(meta);
        let mut sources = Vec::new();
        let slots = std::array::from_fn(|slot| {
            let descriptor = descriptors[slot]?;
            sources.push(anchored(descriptor.national_number().as_str()));
            Some((sources.len() - 1, descriptor.possible_length().to_vec()))
        });
        let set = RegexSetBuilder::new(&sources).ignore_whitespace(true).build().ok()?;
        let leading_digits = match meta.leading_digits() {
            Some(p) => Some(RegexBuilder::new(&anchored(p.as_str())).ignore_whitespace(true).build().ok()?),
            None => None,
        };
        Some(Patterns { set, slots, fixed_is_mobile: fixed_is_mobile(meta), leading_digits })
    }

    /// libphonenumber's type of national digits `value` in this region.
    fn number_type(&self, value: &str) -> Type {
        let matched = self.set.matches(value);
        let length = u16::try_from(value.len()).unwrap_or(u16::MAX);
        let hit = |slot: usize| {
            self.slots[slot].as_ref().is_some_and(|(index, lengths)| {
                matched.matched(*index) && (lengths.is_empty() || lengths.contains(&length))
            })
        };
        type_of(hit, self.fixed_is_mobile)
    }
}

/// Every region's compiled patterns, by the address of its (static) metadata; `None` where
/// a pattern would not compile, and the crate's own matching answers for that region.
type Compiled = HashMap<usize, Option<Arc<Patterns>>>;

fn compiled(meta: &'static Metadata) -> Option<Arc<Patterns>> {
    static COMPILED: OnceLock<RwLock<Compiled>> = OnceLock::new();
    let all = COMPILED.get_or_init(Default::default);
    let key = std::ptr::from_ref(meta) as usize;
    if let Some(known) = all.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(&key) {
        return known.clone();
    }
    let patterns = Patterns::compile(meta).map(Arc::new);
    if patterns.is_none() {
        tracing::warn!(
            region = meta.id(),
            "libphonenumber patterns not compiled here; the crate matches them"
        );
    }
    all.write().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key, patterns.clone());
    patterns
}

/// libphonenumber's type of `value` in the region `meta` describes.
fn number_type(meta: &'static Metadata, value: &str) -> Type {
    match compiled(meta) {
        Some(patterns) => patterns.number_type(value),
        None => {
            let descriptors = descriptors(meta);
            type_of(|slot| descriptors[slot].is_some_and(|d| d.is_match(value)), fixed_is_mobile(meta))
        }
    }
}

/// Whether a region of a shared calling code claims `national` by its leading digits.
fn leads(meta: &'static Metadata, national: &str) -> bool {
    match compiled(meta) {
        Some(patterns) => patterns.leading_digits.as_ref().is_some_and(|p| p.is_match(national)),
        None => meta.leading_digits().and_then(|p| p.find(national)).is_some_and(|m| m.start() == 0),
    }
}

/// The metadata of the region a number with calling code `code` and national digits
/// `national` belongs to: the code's only region, or the first of its regions whose
/// leading digits (or, without them, whose types) take the number.
fn region(code: u16, national: &str) -> Option<&'static Metadata> {
    let regions = DATABASE.region(&code)?;
    if let [only] = regions.as_slice() {
        if *only == "001" {
            return DATABASE.by_code(&code)?.into_iter().next();
        }
        return DATABASE.by_id(only.parse::<country::Id>().ok()?.as_ref());
    }
    for name in regions {
        let Some(meta) = DATABASE.by_id(name) else { continue };
        let belongs = if meta.leading_digits().is_some() {
            leads(meta, national)
        } else {
            number_type(meta, national) != Type::Unknown
        };
        if belongs {
            return name.parse::<country::Id>().is_ok().then_some(meta);
        }
    }
    None
}

/// What libphonenumber's metadata says of a parsed number.
#[derive(Debug, Clone, Copy)]
pub(super) struct Typed {
    /// The region the number belongs to (as `PhoneNumber::metadata` finds it).
    pub region: Option<&'static Metadata>,
    /// Its type (as `PhoneNumber::number_type` answers).
    pub kind: Type,
    /// Whether it is valid (as `PhoneNumber::is_valid` answers).
    pub valid: bool,
}

/// The region, type and validity of `number`. The crate finds the type from the national
/// number without its leading zeros and validity with them (Italy's fixed lines); without
/// leading zeros both read the same digits and are one question.
pub(super) fn typed(number: &PhoneNumber) -> Typed {
    let code = number.code().value();
    let value = number.national().value().to_string();
    let found = region(code, &value);
    let kind = found.map_or(Type::Unknown, |meta| number_type(meta, &value));
    let valid = if number.national().zeros() == 0 {
        kind != Type::Unknown
    } else {
        let national = number.national().to_string();
        region(code, &national).is_some_and(|meta| number_type(meta, &national) != Type::Unknown)
    };
    Typed { region: found, kind, valid }
}

/// The E.164 form: `+`, calling code and national number with its leading zeros.
pub(super) fn e164(number: &PhoneNumber) -> String {
    format!("+{}{}", number.code().value(), number.national())
}

#[cfg(test)]
mod tests {
    use super::*;
    use phonenumber::Mode;

    /// National numbers of many countries, of every type the metadata gives examples for,
    /// plus neighbours of them (a digit changed, one added, one removed).
    fn numbers() -> Vec<String> {
        let mut out = Vec::new();
        for code in [1u16, 7, 20, 27, 33, 34, 39, 44, 49, 52, 55, 61, 81, 86, 91, 234, 353, 800, 870, 971] {
            for meta in DATABASE.by_code(&code).unwrap_or_default() {
                let d = meta.descriptors();
                let kinds = [
                    Type::FixedLine,
                    Type::Mobile,
                    Type::TollFree,
                    Type::PremiumRate,
                    Type::SharedCost,
                    Type::PersonalNumber,
                    Type::Voip,
                    Type::Pager,
                    Type::Uan,
                    Type::Voicemail,
                ];
                for example in kinds.iter().filter_map(|&k| d.get(k)).filter_map(Descriptor::example) {
                    let national = example.to_string();
                    let mut changed = national.clone().into_bytes();
                    if let Some(last) = changed.last_mut() {
                        *last = if *last == b'9' { b'0' } else { *last + 1 };
                    }
                    for n in [
                        national.clone(),
                        String::from_utf8(changed).unwrap_or_default(),
                        format!("{national}5"),
                        national[..national.len() - 1].to_string(),
                        format!("0{national}"),
                    ] {
                        out.push(format!("+{code}{n}"));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn region_type_validity_and_e164_are_the_crates_own() {
        let numbers = numbers();
        assert!(numbers.len() > 500, "{} numbers", numbers.len());
        let mut kinds = std::collections::HashSet::new();
        for raw in &numbers {
            let Ok(number) = phonenumber::parse(None, raw) else { continue };
            let typed = typed(&number);
            assert_eq!(typed.kind, number.number_type(&DATABASE), "type of {raw}");
            assert_eq!(typed.valid, number.is_valid(), "validity of {raw}");
            assert_eq!(
                typed.region.and_then(|m| m.id().parse::<country::Id>().ok()),
                number.country().id(),
                "country of {raw}"
            );
            assert_eq!(e164(&number), number.format().mode(Mode::E164).to_string(), "E.164 of {raw}");
            kinds.insert(format!("{:?}", typed.kind));
        }
        assert!(kinds.len() >= 6, "types seen: {kinds:?}");
    }

    #[test]
    fn shared_calling_codes_go_to_the_region_that_claims_the_number() {
        let region_of = |raw: &str| {
            let number = phonenumber::parse(None, raw).expect("parses");
            let region = typed(&number).region.map(|m| m.id().to_string());
            assert_eq!(region, number.country().id().map(|id| id.as_ref().to_string()), "{raw}");
            region
        };
        assert_eq!(region_of("+14165550123").as_deref(), Some("CA"), "Toronto");
        assert_eq!(region_of("+12125550123").as_deref(), Some("US"), "New York");
        assert_eq!(region_of("+447400123456").as_deref(), Some("GB"));
        assert_eq!(region_of("+447911123456").as_deref(), Some("GG"), "Guernsey's mobiles");
        assert_eq!(region_of("+441534123456").as_deref(), Some("JE"), "Jersey shares +44");
    }
}
