//! `/mappings`: the layouts CSV files are read by — built in, and saved by operators so a
//! new switch needs no release.

use super::Tag;
use super::cdrs::invalid_parameter;
use crate::error::ApiError;
use crate::state::AppState;
use jobs::cdr::formats::{GENERIC, Layout, builtin_layout, builtin_layouts};
use jobs::store::mappings::MappingError;
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

pub struct MappingsApi;

/// A layout with its name.
#[derive(Debug, Object)]
pub struct NamedMapping {
    /// What `format=` names it by.
    pub name: String,
    /// Shipped with the system (read-only), or saved by an operator.
    pub builtin: bool,
    /// Whether files in it start with a header row.
    pub header: bool,
    pub mapping: Layout,
}

/// Every layout `POST /cdrs` reads.
#[derive(Debug, Object)]
pub struct MappingList {
    pub items: Vec<NamedMapping>,
    /// `format=generic` (a header row of this API's own field names), not a mapping.
    pub generic: String,
}

#[derive(ApiResponse)]
pub enum MappingListResponse {
    /// Built-in layouts first, then saved ones by name.
    #[oai(status = 200)]
    Ok(Json<MappingList>),
}

#[derive(ApiResponse)]
pub enum MappingResponse {
    #[oai(status = 200)]
    Ok(Json<NamedMapping>),
}

#[derive(ApiResponse)]
pub enum PutMappingResponse {
    /// Replaced.
    #[oai(status = 200)]
    Replaced(Json<NamedMapping>),
    /// Saved.
    #[oai(status = 201)]
    Created(Json<NamedMapping>, #[oai(header = "Location")] String),
}

#[derive(ApiResponse)]
pub enum DeleteMappingResponse {
    /// Deleted.
    #[oai(status = 204)]
    Deleted,
}

fn named(name: &str, builtin: bool, mapping: Layout) -> NamedMapping {
    NamedMapping { name: name.to_string(), builtin, header: mapping.has_header(), mapping }
}

#[OpenApi(tag = "Tag::Mappings")]
impl MappingsApi {
    /// List CSV mappings
    ///
    /// The built-in layouts (Asterisk `cdr_csv` with each combination of `loguniqueid`,
    /// `loguserfield` and `newcdrcolumns`, Asterisk `cdr_custom`, FreeSWITCH `mod_cdr_csv`,
    /// CDR-Stats, Grandstream UCM) and the saved ones. A file is read by the one `format=`
    /// names, else by the one its header row matches, else by the first headerless one its
    /// rows fit (saved ones first).
    #[oai(path = "/mappings", method = "get")]
    async fn list(&self, state: Data<&AppState>) -> Result<MappingListResponse, ApiError> {
        let mut items: Vec<NamedMapping> =
            builtin_layouts().iter().map(|b| named(&b.name, true, b.layout.clone())).collect();
        let saved = state.mappings.list().await.map_err(|e| ApiError::unavailable("postgresql", e))?;
        items.extend(saved.into_iter().map(|(name, layout)| named(&name, false, layout)));
        Ok(MappingListResponse::Ok(Json(MappingList { items, generic: GENERIC.to_string() })))
    }

    /// Get a CSV mapping
    #[oai(path = "/mappings/:name", method = "get")]
    async fn get(&self, state: Data<&AppState>, name: Path<String>) -> Result<MappingResponse, ApiError> {
        if let Some(layout) = builtin_layout(&name.0) {
            return Ok(MappingResponse::Ok(Json(named(&name.0, true, layout))));
        }
        match state.mappings.get(&name.0).await {
            Ok(Some(layout)) => Ok(MappingResponse::Ok(Json(named(&name.0, false, layout)))),
            Ok(None) => Err(ApiError::not_found(format!("no mapping {:?}", name.0))),
            Err(e) => Err(ApiError::unavailable("postgresql", e)),
        }
    }

    /// Save a CSV mapping
    ///
    /// Describes a switch's CSV layout: its columns (or a header row), which column holds
    /// which field, its time formats and zone, what its own values mean, and what makes a row
    /// one record. Checked when saved; `POST /cdrs?format=<name>` then reads files with it,
    /// and files whose header row matches it are read with it without `format`.
    #[oai(path = "/mappings/:name", method = "put")]
    async fn put(
        &self,
        state: Data<&AppState>,
        name: Path<String>,
        mapping: Json<Layout>,
    ) -> Result<PutMappingResponse, ApiError> {
        match state.mappings.put(&name.0, &mapping.0).await {
            Ok(true) => Ok(PutMappingResponse::Created(
                Json(named(&name.0, false, mapping.0)),
                format!("/mappings/{}", name.0),
            )),
            Ok(false) => Ok(PutMappingResponse::Replaced(Json(named(&name.0, false, mapping.0)))),
            Err(MappingError::Invalid(reason)) => Err(ApiError::Unprocessable(Json(
                crate::error::ErrorBody::new(crate::error::ErrorCode::InvalidMapping, reason),
            ))),
            Err(e) => Err(ApiError::unavailable("postgresql", e)),
        }
    }

    /// Delete a saved CSV mapping
    #[oai(path = "/mappings/:name", method = "delete")]
    async fn delete(
        &self,
        state: Data<&AppState>,
        name: Path<String>,
    ) -> Result<DeleteMappingResponse, ApiError> {
        if builtin_layout(&name.0).is_some() {
            return Err(invalid_parameter("name", "built-in mappings cannot be deleted"));
        }
        match state.mappings.delete(&name.0).await {
            Ok(true) => Ok(DeleteMappingResponse::Deleted),
            Ok(false) => Err(ApiError::not_found(format!("no mapping {:?}", name.0))),
            Err(e) => Err(ApiError::unavailable("postgresql", e)),
        }
    }
}
