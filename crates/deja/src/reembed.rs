//! `deja reembed`: re-embeds a stopped store with the configured model, so
//! a store made with one embedding model can be served with another. Every
//! semantic entry's vector is remade from the text it was made of (the
//! question, or behind a template its own part), and a conversation entry's
//! history vector from its earlier turns. Answers, expiry, hit counts and
//! aliases stay; the saved index is rebuilt at the next start.

use deja_api::conversation::split;
use deja_gateway::embedding_model;
use deja_gateway::state::load_embedder;
use deja_gateway::Config;
use deja_store::{Entry, ListFilter, Store};

/// Texts embedded per forward batch.
const BATCH: usize = 64;

#[derive(Debug, Default)]
pub struct Reembedded {
    pub entries: u64,
    pub histories: u64,
    pub skipped: u64,
    pub from: Option<String>,
    pub to: String,
}

/// Re-embeds every semantic entry of the configured store; `progress` is
/// told how many entries are done after each batch.
pub fn reembed(config: &Config, mut progress: impl FnMut(u64, u64)) -> Result<Reembedded, String> {
    let store = Store::open(&config.store_path).map_err(|e| {
        format!("cannot open the store at {} (is Deja still running?): {e}", config.store_path.display())
    })?;
    let model = load_embedder(config).map_err(|e| e.to_string())?;
    let from = embedding_model::recorded(&store).map_err(|e| e.to_string())?;
    let ids = store.matching(&ListFilter::default()).map_err(|e| e.to_string())?;
    let total = ids.len() as u64;
    let mut done = Reembedded { from, to: embedding_model::identity(model.as_ref()), ..Reembedded::default() };
    for chunk in ids.chunks(BATCH) {
        let mut entries: Vec<Entry> = Vec::with_capacity(chunk.len());
        for id in chunk {
            match store.get(id) {
                Ok(Some(e)) if e.semantic.is_some() => entries.push(e),
                Ok(_) => {}
                Err(_) => done.skipped += 1,
            }
        }
        let texts: Vec<String> = entries
            .iter()
            .filter_map(|e| e.semantic.as_ref())
            .map(|m| m.vector_of.clone().unwrap_or_else(|| m.text.clone()))
            .collect();
        let vectors = model.embed_batch(&texts).map_err(|e| e.to_string())?;
        for (mut entry, vector) in entries.into_iter().zip(vectors) {
            if let Some(history) = history_text(&entry) {
                let remade = model.embed_batch(&[history]).map_err(|e| e.to_string())?;
                if let (Some(c), Some(v)) =
                    (entry.semantic.as_mut().and_then(|m| m.conversation.as_mut()), remade.into_iter().next())
                {
                    c.history = v;
                    done.histories += 1;
                }
            }
            store.replace_vector(&entry, &vector).map_err(|e| e.to_string())?;
            done.entries += 1;
        }
        progress(done.entries + done.skipped, total);
    }
    embedding_model::record(&store, model.as_ref()).map_err(|e| e.to_string())?;
    store.flush().map_err(|e| e.to_string())?;
    Ok(done)
}

/// The earlier turns' text of a conversation entry, as its history vector was made.
fn history_text(entry: &Entry) -> Option<String> {
    entry.semantic.as_ref()?.conversation.as_ref()?;
    let messages = entry.request.as_array()?;
    split(messages).map(|c| c.history_text())
}
