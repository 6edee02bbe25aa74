//! Re-reading the configuration file while serving.

use crate::config::Config;
use crate::state::AppState;
use deja_api::ApiError;

/// Re-reads the config file and applies it. An invalid file changes nothing.
pub fn reload(state: &AppState) -> Result<Vec<&'static str>, ApiError> {
    let current = state.config();
    let Some(path) = current.source.clone() else {
        return Err(ApiError::invalid_request("this instance was not started from a config file", None));
    };
    match Config::load(&path) {
        Ok(new) => {
            let needs_restart = state.replace_config(new);
            tracing::info!(path = %path.display(), ?needs_restart, "configuration reloaded");
            Ok(needs_restart)
        }
        Err(e) => {
            tracing::warn!(error = %e, "configuration reload refused; the running configuration stays");
            Err(ApiError::invalid_request(format!("reload refused: {e}"), None))
        }
    }
}
