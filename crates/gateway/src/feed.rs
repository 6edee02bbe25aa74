//! A streamed answer as it arrives, shared by every client waiting on it:
//! the request that called upstream and the identical streaming requests
//! coalesced onto it.
//!
//! The upstream reader only appends to the feed and never waits for a
//! client; each client has its own writer, reading the feed at its own
//! pace. A client that stops reading is cut off after [`SLOW_CLIENT`]
//! without a byte taken, and holds up no one: the answer is still read to
//! its end, stored, and given to the others as it comes.

use crate::reply::Body;
use bytes::Bytes;
use deja_api::{sse, ApiError};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How long a client may leave a frame untaken before it is cut off. The
/// frames before it already fill the channel (64 frames), hyper's buffer
/// and the socket's send buffer (megabytes): a client this far behind has
/// stopped reading.
pub const SLOW_CLIENT: Duration = Duration::from_secs(5);

/// Who answered, known at the first event.
#[derive(Debug, Clone)]
pub struct Head {
    pub model: String,
    pub attempts: usize,
}

/// How a stream ended.
#[derive(Debug, Clone)]
pub enum End {
    /// `[DONE]`: the answer is whole, and cost this much.
    Done { cost_usd: f64 },
    /// Before the first event: nothing was sent, the error is the answer.
    /// After it: an error event ends the stream, never a `[DONE]`.
    Failed(ApiError),
}

/// One upstream event as clients get it, framed once for all of them.
#[derive(Clone)]
struct Frames {
    /// As the provider sent it: for a client that asked for usage.
    full: Bytes,
    /// Without usage (see [`bare_frame`]); `None`: not sent at all.
    bare: Option<Bytes>,
}

#[derive(Default)]
struct State {
    head: Option<Head>,
    events: Vec<Frames>,
    end: Option<End>,
}

#[derive(Default)]
pub struct Feed {
    state: Mutex<State>,
    /// Bumped on every change; readers wait on it.
    version: watch::Sender<u64>,
}

impl Feed {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn changed(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    /// The first event is coming: who answers.
    pub fn start(&self, head: Head) {
        self.lock().head = Some(head);
        self.changed();
    }

    /// One upstream event (the JSON after `data: `, and that JSON read),
    /// relayed as it came.
    pub fn push(&self, raw: &str, event: &Value) {
        let full = sse::frame(raw);
        let bare = bare_frame(&full, event);
        self.lock().events.push(Frames { full, bare });
        self.changed();
    }

    pub fn end(&self, end: End) {
        let mut state = self.lock();
        if state.end.is_none() {
            state.end = Some(end);
        }
        drop(state);
        self.changed();
    }

    /// Waits for the head, or for the error that came before it.
    pub async fn head(&self) -> Result<Head, ApiError> {
        let mut rx = self.version.subscribe();
        loop {
            rx.borrow_and_update();
            {
                let state = self.lock();
                if let Some(head) = &state.head {
                    return Ok(head.clone());
                }
                if let Some(end) = &state.end {
                    return Err(match end {
                        End::Failed(e) => e.clone(),
                        End::Done { .. } => {
                            ApiError::new(deja_api::ErrorKind::Internal, "a stream ended before it began")
                        }
                    });
                }
            }
            if rx.changed().await.is_err() {
                return Err(ApiError::new(deja_api::ErrorKind::Internal, "the stream failed unexpectedly"));
            }
        }
    }

    /// The events from `from` on, and the end once every event is read;
    /// waits while there is nothing new.
    async fn read_from(&self, from: usize) -> (Vec<Frames>, Option<End>) {
        let mut rx = self.version.subscribe();
        loop {
            rx.borrow_and_update();
            {
                let state = self.lock();
                let new: Vec<Frames> = state.events.get(from..).map(<[_]>::to_vec).unwrap_or_default();
                if !new.is_empty() || state.end.is_some() {
                    return (new, state.end.clone());
                }
            }
            if rx.changed().await.is_err() {
                return (
                    Vec::new(),
                    Some(End::Failed(ApiError::new(deja_api::ErrorKind::Internal, "the stream failed"))),
                );
            }
        }
    }

    /// The response body one client reads: every event in its own framing
    /// (see [`bare_frame`]), then `[DONE]` or an error event. `on_done`
    /// runs when the client got the whole answer.
    pub fn body(self: Arc<Self>, include_usage: bool, on_done: Option<Box<dyn FnOnce(f64) + Send>>) -> Body {
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        let cut = Arc::new(AtomicBool::new(false));
        tokio::spawn(write(self, include_usage, tx, cut.clone(), on_done));
        let stream = futures_util::stream::unfold((rx, cut, false), |(mut rx, cut, over)| async move {
            if over {
                return None;
            }
            match rx.recv().await {
                Some(b) => Some((Ok(Frame::data(b)), (rx, cut, false))),
                // A client cut off gets a broken response, never one that looks whole.
                None if cut.load(Ordering::Relaxed) => {
                    Some((Err(std::io::Error::other("the client stopped reading")), (rx, cut, true)))
                }
                None => None,
            }
        });
        BodyExt::boxed(StreamBody::new(stream))
    }
}

/// Sends one frame, waiting at most [`SLOW_CLIENT`]; false once the client
/// is gone or cut off.
async fn send(tx: &mpsc::Sender<Bytes>, cut: &AtomicBool, frame: Bytes) -> bool {
    match tokio::time::timeout(SLOW_CLIENT, tx.send(frame)).await {
        Ok(Ok(())) => true,
        Ok(Err(_)) => false,
        Err(_) => {
            tracing::info!("a client stopped reading its stream; it is cut off");
            cut.store(true, Ordering::Relaxed);
            false
        }
    }
}

/// Copies the feed to one client.
async fn write(
    feed: Arc<Feed>,
    include_usage: bool,
    tx: mpsc::Sender<Bytes>,
    cut: Arc<AtomicBool>,
    on_done: Option<Box<dyn FnOnce(f64) + Send>>,
) {
    let mut pos = 0;
    loop {
        let (events, end) = feed.read_from(pos).await;
        pos += events.len();
        for frames in events {
            let frame = if include_usage { Some(frames.full) } else { frames.bare };
            if let Some(frame) = frame {
                if !send(&tx, &cut, frame).await {
                    return;
                }
            }
        }
        match end {
            None => {}
            Some(End::Done { cost_usd }) => {
                if send(&tx, &cut, sse::done_frame()).await {
                    if let Some(f) = on_done {
                        f(cost_usd);
                    }
                }
                return;
            }
            Some(End::Failed(e)) => {
                send(&tx, &cut, sse::frame(&e.to_json().to_string())).await;
                return;
            }
        }
    }
}

/// The frame a client that did not ask for usage gets for an event (`full`
/// as sent). Deja always asks for usage; such a client gets the stream it
/// would have got without it: no usage-only chunk, and no `usage` key on
/// the others, wherever the provider put it (null in every chunk, on the
/// last content chunk, or nowhere).
fn bare_frame(full: &Bytes, event: &Value) -> Option<Bytes> {
    let Some(obj) = event.as_object() else { return Some(full.clone()) };
    let has_choices = obj.get("choices").and_then(Value::as_array).is_some_and(|c| !c.is_empty());
    let has_usage = obj.get("usage").is_some_and(|u| !u.is_null());
    if !has_choices && has_usage {
        return None;
    }
    if !obj.contains_key("usage") {
        return Some(full.clone());
    }
    let mut bare = obj.clone();
    bare.remove("usage");
    Some(sse::frame(&Value::Object(bare).to_string()))
}

/// The feeds of streams in flight, by cache key, for identical streaming
/// requests to join.
#[derive(Default)]
pub struct Feeds(Mutex<HashMap<deja_api::CacheKey, Weak<Feed>>>);

impl Feeds {
    /// Under one lock with the coalescer's join, so a follower never misses
    /// its leader's feed: `lead` true makes and registers a feed.
    pub fn join<T>(&self, key: deja_api::CacheKey, lead: impl FnOnce() -> T, stream: bool) -> (T, Option<Arc<Feed>>)
    where
        T: Leads,
    {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let joined = lead();
        if joined.leads() {
            if !stream {
                map.remove(&key);
                return (joined, None);
            }
            let feed = Arc::new(Feed::default());
            map.insert(key, Arc::downgrade(&feed));
            // Feeds of ended streams go with them.
            map.retain(|_, f| f.strong_count() > 0);
            return (joined, Some(feed));
        }
        let feed = map.get(&key).and_then(Weak::upgrade);
        (joined, feed)
    }
}

/// Whether a coalescer's answer made this request the leader.
pub trait Leads {
    fn leads(&self) -> bool;
}

impl<T: Clone> Leads for deja_cache::Role<T> {
    fn leads(&self) -> bool {
        matches!(self, deja_cache::Role::Leader(_))
    }
}
