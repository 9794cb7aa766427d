//! Points where the process can be made to die, to prove every step survives a crash.
//!
//! Built only with the `failpoints` feature (which the integration tests turn on); then a
//! point named in the `FAILPOINTS` environment variable with the `return` action
//! (`FAILPOINTS=ingest-after-commit=return`) aborts the process the moment it is reached,
//! exactly as a power cut or `kill -9` would at that step. Without the feature every point
//! compiles to nothing.

/// Reaching a named crash point.
#[inline(always)]
pub fn point(name: &str) {
    #[cfg(feature = "failpoints")]
    if fail::eval(name, |_| ()).is_some() {
        tracing::error!(point = name, "crash point reached: aborting");
        std::process::abort();
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}

/// Reads `FAILPOINTS` once at start-up; a no-op without the feature.
pub fn setup() {
    #[cfg(feature = "failpoints")]
    std::mem::forget(fail::FailScenario::setup());
}
