//! One stored call detail record.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "cdrs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub source: String,
    pub call_id: String,
    /// Tells apart records that share a call id (see the CDR model).
    pub record_key: String,
    pub src_number: String,
    pub dest_number: String,
    pub start_time: DateTimeUtc,
    pub answer_time: Option<DateTimeUtc>,
    pub end_time: Option<DateTimeUtc>,
    pub duration: i32,
    pub billsec: i32,
    pub disposition: String,
    /// The disposition exactly as the switch wrote it.
    pub disposition_raw: Option<String>,
    pub call_successful: bool,
    pub hangup_cause: Option<String>,
    pub direction: Option<String>,
    pub account_code: Option<String>,
    /// Groups the legs of one call.
    pub linked_id: Option<String>,
    /// The caller withheld or had no number.
    pub caller_withheld: bool,
    #[sea_orm(column_type = "JsonBinary")]
    pub extra: Json,
    /// The ingest job that first stored this record.
    pub job_id: String,
    pub ingested_at: DateTimeUtc,
    /// The caller in E.164 (`+` and digits), when the switch wrote a dialable number.
    pub src_e164: Option<String>,
    /// The callee in E.164, when the switch wrote a dialable number.
    pub dest_e164: Option<String>,
    /// ISO 3166-1 alpha-2 country of the callee's number.
    pub dest_country: Option<String>,
    /// The callee's number type (`mobile`, `fixed_line`, …) or why it has no E.164 form.
    pub dest_type: Option<String>,
    /// How the customer's price was found: `rated`, `unmatched`, `no_deck`, `no_number`.
    pub sell_rating: Option<String>,
    #[sea_orm(column_type = "Decimal(Some((24, 6)))")]
    pub sell_cost: Option<Decimal>,
    pub sell_currency: Option<String>,
    pub sell_prefix: Option<String>,
    pub sell_deck: Option<i64>,
    /// How the carrier's cost was found.
    pub buy_rating: Option<String>,
    #[sea_orm(column_type = "Decimal(Some((24, 6)))")]
    pub buy_cost: Option<Decimal>,
    pub buy_currency: Option<String>,
    pub buy_prefix: Option<String>,
    pub buy_deck: Option<i64>,
    /// When a re-rate last rewrote the derived values; `None`: as ingested.
    pub derived_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
