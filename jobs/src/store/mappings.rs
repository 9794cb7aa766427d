//! Saved CSV mappings: the layouts operators add for their switches, by name.

use crate::cdr::formats::{Layout, builtin_layout};
use chrono::Utc;
use entities::csv_mappings;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue, DatabaseConnection, DbErr, EntityTrait, QueryOrder};

/// Why a mapping could not be saved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MappingError {
    #[error("{0}")]
    Invalid(String),
    #[error("database unavailable: {0}")]
    Database(#[from] DbErr),
}

#[derive(Clone)]
pub struct MappingStore {
    db: DatabaseConnection,
}

/// A name a mapping can be saved under: short, URL- and file-safe, and not a built-in's.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'))
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if !ok {
        return Err(format!(
            "{name:?} is not a mapping name: 1 to 64 of a-z, 0-9, '-', '_', '.', starting with a letter or digit"
        ));
    }
    if builtin_layout(name).is_some() || name == crate::cdr::formats::GENERIC {
        return Err(format!("{name:?} is a built-in layout; save yours under another name"));
    }
    Ok(())
}

impl MappingStore {
    pub fn new(db: DatabaseConnection) -> Self {
        MappingStore { db }
    }

    /// Every saved mapping, by name. A stored layout that no longer reads is skipped (and
    /// logged) rather than failing every CSV request.
    pub async fn list(&self) -> Result<Vec<(String, Layout)>, DbErr> {
        let rows =
            csv_mappings::Entity::find().order_by_asc(csv_mappings::Column::Name).all(&self.db).await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| match serde_json::from_value::<Layout>(row.layout) {
                Ok(layout) => Some((row.name, layout)),
                Err(e) => {
                    tracing::warn!(mapping = %row.name, error = %e, "saved mapping is unreadable; skipped");
                    None
                }
            })
            .collect())
    }

    pub async fn get(&self, name: &str) -> Result<Option<Layout>, DbErr> {
        let row = csv_mappings::Entity::find_by_id(name.to_string()).one(&self.db).await?;
        Ok(row.and_then(|r| serde_json::from_value(r.layout).ok()))
    }

    /// Saves (or replaces) a mapping; `true` when it is new.
    pub async fn put(&self, name: &str, layout: &Layout) -> Result<bool, MappingError> {
        check_name(name).map_err(MappingError::Invalid)?;
        layout.validate().map_err(MappingError::Invalid)?;
        let existed = self.get(name).await?.is_some();
        let now = Utc::now();
        let json = serde_json::to_value(layout).map_err(|e| MappingError::Invalid(e.to_string()))?;
        let row = csv_mappings::ActiveModel {
            name: ActiveValue::Set(name.to_string()),
            layout: ActiveValue::Set(json),
            created_at: ActiveValue::Set(now),
            updated_at: ActiveValue::Set(now),
        };
        csv_mappings::Entity::insert(row)
            .on_conflict(
                OnConflict::column(csv_mappings::Column::Name)
                    .update_columns([csv_mappings::Column::Layout, csv_mappings::Column::UpdatedAt])
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        Ok(!existed)
    }

    /// Deletes a mapping; `false` when there was none.
    pub async fn delete(&self, name: &str) -> Result<bool, DbErr> {
        let done = csv_mappings::Entity::delete_by_id(name.to_string()).exec(&self.db).await?;
        Ok(done.rows_affected > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn names_are_checked() {
        assert!(check_name("my-pbx_2.csv").is_ok());
        for bad in ["", "-x", "Upper", "a/b", "asterisk", "generic", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
