//! Micro-batching: concurrent requests that arrive while the model is busy
//! are run together in one forward pass, which costs far less than one each.

use crate::{EmbedError, Embedder};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Texts embedded together, in one forward pass, and where their vectors go.
struct Job {
    texts: Vec<String>,
    reply: oneshot::Sender<Result<Vec<Vec<f32>>, EmbedError>>,
}

#[derive(Clone)]
pub struct EmbedService {
    tx: mpsc::Sender<Job>,
}

/// Latency of the last batch and its size, for metrics.
pub type BatchObserver = Arc<dyn Fn(usize, Duration) + Send + Sync>;

impl EmbedService {
    /// Starts the worker thread. `max_batch` bounds one forward pass.
    pub fn start(embedder: Arc<dyn Embedder>, max_batch: usize, observer: Option<BatchObserver>) -> Self {
        let (tx, mut rx) = mpsc::channel::<Job>(4096);
        let spawned = std::thread::Builder::new().name("deja-embed".into()).spawn(move || {
            while let Some(first) = rx.blocking_recv() {
                let mut size = first.texts.len();
                let mut jobs = vec![first];
                while size < max_batch.max(1) {
                    match rx.try_recv() {
                        Ok(job) => {
                            size += job.texts.len();
                            jobs.push(job);
                        }
                        Err(_) => break,
                    }
                }
                let counts: Vec<usize> = jobs.iter().map(|j| j.texts.len()).collect();
                let texts: Vec<String> = jobs.iter_mut().flat_map(|j| std::mem::take(&mut j.texts)).collect();
                let started = Instant::now();
                let result = embedder.embed_batch(&texts);
                if let Some(obs) = &observer {
                    obs(jobs.len(), started.elapsed());
                }
                match result {
                    Ok(vectors) => {
                        let mut vectors = vectors.into_iter();
                        for (job, n) in jobs.into_iter().zip(counts) {
                            let mine: Vec<Vec<f32>> = vectors.by_ref().take(n).collect();
                            let reply = if mine.len() == n {
                                Ok(mine)
                            } else {
                                Err(EmbedError::Inference("too few vectors".into()))
                            };
                            let _ = job.reply.send(reply);
                        }
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        for job in jobs {
                            let _ = job.reply.send(Err(EmbedError::Inference(msg.clone())));
                        }
                    }
                }
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start the embedding thread");
        }
        Self { tx }
    }

    pub async fn embed(&self, text: String) -> Result<Vec<f32>, EmbedError> {
        self.embed_many(vec![text]).await?.pop().ok_or(EmbedError::Stopped)
    }

    /// Embeds `texts` in the same forward pass (one batch, one round trip),
    /// in order. A batch may run past `max_batch` by the texts of one call.
    pub async fn embed_many(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Job { texts, reply }).await.map_err(|_| EmbedError::Stopped)?;
        rx.await.map_err(|_| EmbedError::Stopped)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HashEmbedder;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_all_get_their_own_vector() {
        let svc = EmbedService::start(Arc::new(HashEmbedder::new(64)), 8, None);
        let texts: Vec<String> = (0..50).map(|i| format!("question number {i}")).collect();
        let handles: Vec<_> = texts
            .iter()
            .map(|t| {
                tokio::spawn({
                    let svc = svc.clone();
                    let t = t.clone();
                    async move { svc.embed(t).await }
                })
            })
            .collect();
        let mut got = Vec::new();
        for h in handles {
            got.push(h.await.expect("task"));
        }
        let direct = HashEmbedder::new(64).embed_batch(&texts).expect("embed");
        for (g, d) in got.into_iter().zip(direct) {
            assert_eq!(g.expect("vector"), d);
        }
    }

    #[tokio::test]
    async fn texts_embedded_together_come_back_in_order() {
        let svc = EmbedService::start(Arc::new(HashEmbedder::new(64)), 1, None);
        let texts = vec!["the question".to_string(), "the history".to_string()];
        let got = svc.embed_many(texts.clone()).await.expect("vectors");
        assert_eq!(got, HashEmbedder::new(64).embed_batch(&texts).expect("embed"));
    }
}
