//! Hedged requests (`hedge_after` on a ladder): when an attempt has not sent
//! its first byte `hedge_after` after it was sent, the next attempt of the
//! plan starts beside it. The first of the two to send its first byte (the
//! response head of a whole answer, the first event of a stream) wins; the
//! other is dropped, which closes its connection. At most one hedge per
//! request, so never more than two attempts in flight.
//!
//! A failure of either is recorded as usual and the race goes on with the
//! other; a client error (the request's own fault) ends it at once. The
//! loser is not a failure: health and error rate are untouched, and its
//! wait is recorded as a (lower bound) time-to-first-byte sample.
//!
//! The loser never sent a byte, so no usage of its own is known. It is
//! billed (`Walker::bill_losers`) at its input price for the prompt (as many tokens as the winner
//! reported, or estimated at four characters a token): providers may bill
//! the prompt of a cancelled request, and its output is never seen. The
//! winner's cached tokens are not carried over: a prompt cache belongs to
//! one model, and the loser's would-be cache reads are never reported, so
//! the whole prompt is priced at the (higher) input price.

use super::attempt::{AttemptEnd, Failure, Prepared, Reached};
use super::{Opened, Walker};
use crate::metrics::HedgeLabels;
use deja_api::ApiError;
use deja_router::ModelSpec;
use std::future::Future;
use std::pin::{pin, Pin};
use std::time::Instant;

/// Races `second` against `first` (sent at `first_sent`). `Ok(None)`: both
/// failed, walk on.
pub(crate) async fn race<T, A, F, Fut>(
    walker: &mut Walker,
    mut first: Pin<&mut A>,
    first_model: &ModelSpec,
    first_sent: Instant,
    second: Prepared,
    stage: &F,
) -> Result<Option<Reached<T>>, ApiError>
where
    A: Future<Output = AttemptEnd<T>>,
    F: Fn(Opened) -> Fut,
    Fut: Future<Output = Result<(Opened, T), Failure>>,
{
    let second_model = second.spec.clone();
    tracing::debug!(first = %first_model.name, hedge = %second_model.name, "hedging a slow first byte");
    let (calls, config) = walker.handles();
    let second_sent = Instant::now();
    let mut second = pin!(super::attempt::run(calls, config, second, stage));
    let (mut first_live, mut second_live) = (true, true);
    let waiting = Instant::now();
    let (result, winner) = loop {
        let (end, from_first) = tokio::select! {
            end = &mut first, if first_live => (end, true),
            end = &mut second, if second_live => (end, false),
        };
        if from_first {
            first_live = false;
        } else {
            second_live = false;
        }
        match end {
            AttemptEnd::Reached(r) => {
                walker.first_byte(&r.opened.model, r.took);
                break (Ok(Some(r)), if from_first { "first" } else { "hedge" });
            }
            AttemptEnd::Failed(spec, f) => {
                if let Some(e) = walker.failed(&spec, f) {
                    break (Err(e), "neither");
                }
                if !first_live && !second_live {
                    break (Ok(None), "neither");
                }
            }
        }
    };
    walker.upstream_time += waiting.elapsed();
    // Whichever is still running is dropped with this race (or, for the
    // first, by the caller right after): not a failure.
    if first_live {
        walker.cancel(first_model, first_sent.elapsed());
    }
    if second_live {
        walker.cancel(&second_model, second_sent.elapsed());
    }
    let labels = HedgeLabels { ladder: walker.ladder_label().ladder, winner: winner.into() };
    walker.calls().metrics.rungs.hedges.get_or_create(&labels).inc();
    result
}
