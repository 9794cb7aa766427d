//! Bearer-token authentication with roles.
//!
//! Phone numbers and call times are personal data, so every route but health, readiness and
//! the docs needs a token. Roles: `ingest` (submit batches, follow jobs), `read` (search,
//! statistics, jobs, sync status), `admin` (everything, including rebuilds and replays).
//! Tokens are compared in constant time and never logged.

use crate::error::ErrorBody;
use poem::http::{Method, StatusCode};
use poem::web::Json;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Ingest,
    Read,
    Admin,
}

impl Role {
    fn parse(s: &str) -> Option<Role> {
        match s.trim() {
            "ingest" => Some(Role::Ingest),
            "read" => Some(Role::Read),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A token and the role it grants.
type Grant = (Role, Vec<u8>);

/// Who may do what; `None` runs without authentication (local development only).
#[derive(Clone)]
pub struct Auth {
    tokens: Option<Arc<Vec<Grant>>>,
    metrics_public: bool,
}

/// Tokens never appear in debug output.
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let roles: Vec<&str> = self.tokens.iter().flat_map(|t| t.iter().map(|(r, _)| r.name())).collect();
        f.debug_struct("Auth").field("roles", &roles).field("metrics_public", &self.metrics_public).finish()
    }
}

impl Auth {
    pub fn disabled() -> Self {
        Auth { tokens: None, metrics_public: true }
    }

    /// `role:token` pairs, comma- or newline-separated (`#` starts a comment line).
    pub fn from_spec(spec: &str, metrics_public: bool) -> Result<Self, String> {
        let mut tokens = Vec::new();
        for entry in spec.split([',', '\n']).map(str::trim).filter(|e| !e.is_empty() && !e.starts_with('#')) {
            let (role, token) =
                entry.split_once(':').ok_or_else(|| "each entry is role:token".to_string())?;
            let role = Role::parse(role)
                .ok_or_else(|| format!("unknown role {:?}; roles are ingest, read, admin", role.trim()))?;
            let token = token.trim();
            if token.len() < 16 {
                return Err(format!("a {} token is shorter than 16 characters", role.name()));
            }
            tokens.push((role, token.as_bytes().to_vec()));
        }
        if tokens.is_empty() {
            return Err("no tokens given".into());
        }
        Ok(Auth { tokens: Some(Arc::new(tokens)), metrics_public })
    }

    pub fn is_disabled(&self) -> bool {
        self.tokens.is_none()
    }

    /// The role a bearer token grants, checking every token in constant time.
    fn role_of(&self, presented: &[u8]) -> Option<Role> {
        let tokens = self.tokens.as_ref()?;
        let mut found = None;
        for (role, token) in tokens.iter() {
            if constant_time_eq(presented, token) {
                found = Some(*role);
            }
        }
        found
    }
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }
}

/// Equal bytes, in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, x) in a.iter().enumerate() {
        diff |= x ^ b.get(i % b.len().max(1)).copied().unwrap_or(0);
    }
    diff == 0
}

/// Which roles a request needs; `None` means open to all. The OpenAPI document is derived
/// from this table too, so what is enforced and what is documented cannot drift apart.
pub fn required_roles(metrics_public: bool, method: &Method, path: &str) -> Option<&'static [Role]> {
    const ANY_READER: &[Role] = &[Role::Read, Role::Admin];
    const INGEST: &[Role] = &[Role::Ingest, Role::Admin];
    const JOBS: &[Role] = &[Role::Ingest, Role::Read, Role::Admin];
    const ADMIN: &[Role] = &[Role::Admin];
    match (method, path) {
        (_, "/healthz" | "/readyz") => None,
        (_, p) if p == "/schema" || p.starts_with("/schema/") => None,
        // The console's page and assets hold no data; what it shows needs the user's token.
        (_, p) if p == "/console" || p.starts_with("/console/") => None,
        (_, "/metrics") if metrics_public => None,
        (&Method::POST, "/cdrs" | "/cdrs/freeswitch") => Some(INGEST),
        (&Method::POST, "/reindex" | "/rollups/rebuild" | "/retention") => Some(ADMIN),
        (&Method::POST, p) if p.starts_with("/jobs/") => Some(ADMIN),
        (&Method::PUT | &Method::DELETE, p) if p.starts_with("/mappings/") => Some(ADMIN),
        (&Method::PUT | &Method::DELETE, p) if p.starts_with("/dialling-plans/") => Some(ADMIN),
        (&Method::POST, "/rate-decks" | "/rerate") => Some(ADMIN),
        (&Method::POST | &Method::PUT | &Method::DELETE, p) if p.starts_with("/alerts/") => Some(ADMIN),
        (_, p) if p == "/mappings" || p.starts_with("/mappings/") => Some(JOBS),
        (_, p) if p == "/jobs" || p.starts_with("/jobs/") => Some(JOBS),
        _ => Some(ANY_READER),
    }
}

fn allowed(auth: &Auth, method: &Method, path: &str) -> Option<&'static [Role]> {
    required_roles(auth.metrics_public, method, path)
}

/// Whether a route also takes HTTP Basic credentials (any user name, a token as the
/// password): the ingest routes, because switches' HTTP clients (FreeSWITCH's `cred`
/// setting, for one) can only send a user and a password.
pub fn accepts_basic(method: &Method, path: &str) -> bool {
    *method == Method::POST && matches!(path, "/cdrs" | "/cdrs/freeswitch")
}

/// The token a request presents: a bearer token, or the password of Basic credentials
/// where [`accepts_basic`] allows them.
fn presented_token(req: &Request) -> Option<Vec<u8>> {
    let value = req.headers().get(poem::http::header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.trim().as_bytes().to_vec());
    }
    if scheme.eq_ignore_ascii_case("basic") && accepts_basic(req.method(), req.uri().path()) {
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
        let colon = decoded.iter().position(|b| *b == b':')?;
        return Some(decoded[colon + 1..].to_vec());
    }
    None
}

pub struct RequireToken(pub Auth);

impl<E: Endpoint> Middleware<E> for RequireToken {
    type Output = RequireTokenEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        RequireTokenEndpoint { inner: ep, auth: self.0.clone() }
    }
}

pub struct RequireTokenEndpoint<E> {
    inner: E,
    auth: Auth,
}

fn refuse(status: StatusCode, code: crate::error::ErrorCode, message: &str, basic: bool) -> Response {
    let mut resp = Json(ErrorBody::new(code, message)).with_status(status).into_response();
    if status == StatusCode::UNAUTHORIZED {
        let headers = resp.headers_mut();
        headers.append("WWW-Authenticate", poem::http::HeaderValue::from_static("Bearer"));
        if basic {
            headers.append("WWW-Authenticate", poem::http::HeaderValue::from_static("Basic realm=\"cdr\""));
        }
    }
    resp
}

impl<E: Endpoint> Endpoint for RequireTokenEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Self::Output> {
        if !self.auth.is_disabled()
            && let Some(roles) = allowed(&self.auth, req.method(), req.uri().path())
        {
            let basic = accepts_basic(req.method(), req.uri().path());
            let Some(presented) = presented_token(&req) else {
                return Ok(refuse(
                    StatusCode::UNAUTHORIZED,
                    crate::error::ErrorCode::Unauthorized,
                    if basic {
                        "a bearer token, or Basic credentials with a token as the password, is required"
                    } else {
                        "a bearer token is required"
                    },
                    basic,
                ));
            };
            match self.auth.role_of(&presented) {
                None => {
                    return Ok(refuse(
                        StatusCode::UNAUTHORIZED,
                        crate::error::ErrorCode::Unauthorized,
                        "the token is not valid",
                        basic,
                    ));
                }
                Some(role) if !roles.contains(&role) => {
                    let needed: Vec<&str> = roles.iter().map(|r| r.name()).collect();
                    return Ok(refuse(
                        StatusCode::FORBIDDEN,
                        crate::error::ErrorCode::Forbidden,
                        &format!(
                            "the {} role cannot do this; it needs: {}",
                            role.name(),
                            needed.join(" or ")
                        ),
                        basic,
                    ));
                }
                Some(_) => {}
            }
        }
        self.inner.call(req).await.map(IntoResponse::into_response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_and_map_to_roles() {
        let auth =
            Auth::from_spec("ingest:aaaaaaaaaaaaaaaa, read:bbbbbbbbbbbbbbbb\nadmin:cccccccccccccccc", false)
                .unwrap();
        assert_eq!(auth.role_of(b"bbbbbbbbbbbbbbbb"), Some(Role::Read));
        assert_eq!(auth.role_of(b"bbbbbbbbbbbbbbb"), None);
        assert_eq!(auth.role_of(b""), None);
        assert!(Auth::from_spec("root:aaaaaaaaaaaaaaaa", false).unwrap_err().contains("unknown role"));
        assert!(Auth::from_spec("read:short", false).unwrap_err().contains("16"));
        assert!(Auth::from_spec("", false).is_err());
    }

    #[test]
    fn routes_need_the_right_roles() {
        let auth = Auth::from_spec("read:bbbbbbbbbbbbbbbb", false).unwrap();
        assert_eq!(allowed(&auth, &Method::GET, "/healthz"), None);
        assert_eq!(allowed(&auth, &Method::GET, "/schema/redoc"), None);
        assert_eq!(allowed(&auth, &Method::GET, "/metrics"), Some(&[Role::Read, Role::Admin][..]));
        assert_eq!(allowed(&auth, &Method::POST, "/cdrs"), Some(&[Role::Ingest, Role::Admin][..]));
        assert_eq!(allowed(&auth, &Method::POST, "/jobs/x/retry"), Some(&[Role::Admin][..]));
        assert!(allowed(&auth, &Method::GET, "/jobs/x").unwrap().contains(&Role::Ingest));
        assert_eq!(allowed(&auth, &Method::GET, "/search"), Some(&[Role::Read, Role::Admin][..]));
    }

    #[test]
    fn comparison_is_exact() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
