//! Which model made a store's vectors. A cosine between vectors of two
//! models means nothing, so a store answers semantic lookups only with the
//! model that embedded it; another model starts only after `deja reembed`.

use deja_embed::Embedder;
use deja_store::{Store, StoreError};

/// The store metadata key naming the model of its vectors.
pub const META_KEY: &str = "embedding_model";

/// How a model is named in the store: its name (with its file's digest) and
/// its dimension.
pub fn identity(model: &dyn Embedder) -> String {
    format!("{}/{}", model.name(), model.dim())
}

#[derive(Debug, thiserror::Error)]
pub enum ModelCheckError {
    #[error(
        "the store at {path} holds vectors made by `{stored}`, but this configuration embeds with `{configured}`: \
         vectors of two models are never compared. Run `deja reembed --config <this file>` to re-embed the store \
         with the configured model (the server must be stopped), or point store.path at another store"
    )]
    Mismatch { path: String, stored: String, configured: String },
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// The model that made the store's vectors, when it is recorded.
pub fn recorded(store: &Store) -> Result<Option<String>, StoreError> {
    Ok(store.meta(META_KEY)?.map(|b| String::from_utf8_lossy(&b).into_owned()))
}

/// Records `model` as the maker of the store's vectors.
pub fn record(store: &Store, model: &dyn Embedder) -> Result<(), StoreError> {
    store.set_meta(META_KEY, identity(model).as_bytes())
}

/// Refuses a store whose vectors another model made. A store written before
/// the model was recorded is taken as this model's when its vectors have
/// this model's dimension (every such store was embedded with the one model
/// Deja shipped then), and refused otherwise.
pub fn check(store: &Store, model: &dyn Embedder) -> Result<(), ModelCheckError> {
    let configured = identity(model);
    let path = store.path().map(|p| p.display().to_string()).unwrap_or_else(|| "(temporary)".into());
    match recorded(store)? {
        Some(stored) if stored == configured => Ok(()),
        Some(stored) => Err(ModelCheckError::Mismatch { path, stored, configured }),
        None => match store.vectors().next().transpose()? {
            Some(v) if v.vector.len() != model.dim() => Err(ModelCheckError::Mismatch {
                path,
                stored: format!("an unrecorded model/{}", v.vector.len()),
                configured,
            }),
            _ => Ok(record(store, model)?),
        },
    }
}
