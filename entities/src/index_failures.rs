//! A row the search index refused for good, with the engine's reason.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "index_failures")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub cdr_id: i64,
    pub job_id: String,
    pub error: String,
    pub failed_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
