//! The call detail record: its validated model and how raw switch input becomes one.

pub mod formats;
mod hangup;
mod input;
mod model;
mod time;

pub use hangup::disposition_of_cause;
pub use input::{RecordError, parse_record, parse_records, row_key};
pub use model::{Cdr, Disposition};
pub use time::parse_time;
