//! Rating: what each call cost on each side — sold to the customer (`sell`, by account
//! code) and bought from the carrier (`buy`, by source) — from versioned rate decks, by
//! longest-prefix match on the E.164 destination at the call's start, in exact decimals.
//!
//! Prices live in fields of their own beside the switch's values; a re-rate
//! ([`rerate`]) prices stored calls again after a deck changes, keeping the previous price.

pub mod book;
pub mod catalogue;
pub mod deck;
pub mod price;
pub mod rerate;
pub mod store;

pub use book::{AppliesTo, RateBook, Rating, RatingStatus, Side};
pub use catalogue::{Catalogue, CatalogueCache, Derived};
