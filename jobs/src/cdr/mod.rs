//! The call detail record: its validated model and how raw switch input becomes one.

pub mod formats;
mod input;
mod model;
mod time;

pub use input::{RecordError, parse_record, parse_records};
pub use model::{Cdr, Disposition};
pub use time::parse_time;
