//! `GET /v1/models`: every ladder and model a client may name.

use crate::reply::{self, Body};
use crate::state::AppState;
use http::{Response, StatusCode};
use serde_json::json;

pub fn list(state: &AppState) -> Response<Body> {
    let config = state.config();
    let ladders = config.catalog.ladders.iter().map(|l| {
        json!({"id": l.name, "object": "model", "created": 0, "owned_by": "deja", "deja": {"kind": "ladder", "rungs": l.rungs}})
    });
    let models = config.catalog.models.iter().map(|m| {
        json!({
            "id": m.name, "object": "model", "created": 0, "owned_by": m.provider,
            "deja": {
                "kind": "model",
                "input_usd_per_mtok": m.input_usd_per_mtok,
                "cached_input_usd_per_mtok": m.cached_input_usd_per_mtok,
                "cache_write_usd_per_mtok": m.cache_write_usd_per_mtok,
                "output_usd_per_mtok": m.output_usd_per_mtok,
                "context_window": m.context_window,
            }
        })
    });
    let data: Vec<_> = ladders.chain(models).collect();
    reply::json(StatusCode::OK, &json!({"object": "list", "data": data}))
}
