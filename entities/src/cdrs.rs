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
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
