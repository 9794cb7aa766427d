//! Saved dialling plans, by source.

use super::plan::{DiallingPlan, DiallingPlanSpec};
use foldhash::HashMap;
use sea_orm::{DatabaseConnection, DbErr};

/// The source whose plan applies to sources without one of their own.
pub const DEFAULT_SOURCE: &str = "*";

/// Every source's plan, as ingest applies them.
#[derive(Debug, Clone, Default)]
pub struct PlanBook {
    by_source: HashMap<String, DiallingPlan>,
    fallback: DiallingPlan,
}

impl PlanBook {
    pub fn new(plans: impl IntoIterator<Item = (String, DiallingPlan)>) -> Self {
        let mut by_source: HashMap<String, DiallingPlan> = plans.into_iter().collect();
        let fallback = by_source.remove(DEFAULT_SOURCE).unwrap_or_default();
        PlanBook { by_source, fallback }
    }

    /// The plan of `source`, or the default one.
    pub fn for_source(&self, source: &str) -> &DiallingPlan {
        self.by_source.get(source).unwrap_or(&self.fallback)
    }

    /// The plan of `source` with the name it is saved under: the source's own, or
    /// [`DEFAULT_SOURCE`] for every source without one (so they share what they derive).
    pub fn named_for<'a>(&'a self, source: &'a str) -> (&'a str, &'a DiallingPlan) {
        match self.by_source.get(source) {
            Some(plan) => (source, plan),
            None => (DEFAULT_SOURCE, &self.fallback),
        }
    }
}

type PlanRow = (String, Option<String>, Vec<String>, Option<String>, Vec<String>, bool);

const LIST: &str = "SELECT source, home_country, international_prefixes, national_prefix, strip_prefixes, \
     digits_are_e164 FROM dialling_plans ORDER BY source";

const PUT: &str = "INSERT INTO dialling_plans (source, home_country, international_prefixes, national_prefix, \
     strip_prefixes, digits_are_e164, updated_at) VALUES ($1, $2, $3, $4, $5, $6, clock_timestamp()) \
     ON CONFLICT (source) DO UPDATE SET home_country = $2, international_prefixes = $3, national_prefix = $4, \
     strip_prefixes = $5, digits_are_e164 = $6, updated_at = clock_timestamp()";

fn db_err(e: sqlx::Error) -> DbErr {
    DbErr::Custom(format!("dialling plans: {e}"))
}

/// Every saved plan as it was stated.
pub async fn list(db: &DatabaseConnection) -> Result<Vec<(String, DiallingPlanSpec)>, DbErr> {
    let rows: Vec<PlanRow> =
        sqlx::query_as(LIST).fetch_all(db.get_postgres_connection_pool()).await.map_err(db_err)?;
    Ok(rows
        .into_iter()
        .map(
            |(
                source,
                home_country,
                international_prefixes,
                national_prefix,
                strip_prefixes,
                digits_are_e164,
            )| {
                let spec = DiallingPlanSpec {
                    home_country,
                    international_prefixes,
                    national_prefix,
                    strip_prefixes,
                    digits_are_e164,
                };
                (source, spec)
            },
        )
        .collect())
}

/// Every saved plan, ready to apply. A plan this version cannot read (a country dropped
/// from the metadata) is logged and left out, so the source falls back to the default.
pub async fn load(db: &DatabaseConnection) -> Result<PlanBook, DbErr> {
    let plans = list(db).await?.into_iter().filter_map(|(source, spec)| match spec.plan() {
        Ok(plan) => Some((source, plan)),
        Err(e) => {
            tracing::warn!(%source, error = %e, "saved dialling plan is unusable; the default applies");
            None
        }
    });
    Ok(PlanBook::new(plans))
}

/// Saves `source`'s plan, replacing any earlier one. Checked by the caller.
pub async fn put(db: &DatabaseConnection, source: &str, spec: &DiallingPlanSpec) -> Result<(), DbErr> {
    sqlx::query(PUT)
        .bind(source)
        .bind(spec.home_country.as_ref().map(|c| c.trim().to_ascii_uppercase()))
        .bind(&spec.international_prefixes)
        .bind(&spec.national_prefix)
        .bind(&spec.strip_prefixes)
        .bind(spec.digits_are_e164)
        .execute(db.get_postgres_connection_pool())
        .await
        .map_err(db_err)?;
    Ok(())
}

/// Deletes `source`'s plan; `false` when it had none.
pub async fn delete(db: &DatabaseConnection, source: &str) -> Result<bool, DbErr> {
    let done = sqlx::query("DELETE FROM dialling_plans WHERE source = $1")
        .bind(source)
        .execute(db.get_postgres_connection_pool())
        .await
        .map_err(db_err)?;
    Ok(done.rows_affected() > 0)
}
