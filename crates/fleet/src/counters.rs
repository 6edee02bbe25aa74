//! Fleet-wide numbers. Each replica adds its hits, misses and USD to Redis
//! hashes (`{prefix}:counters` for the fleet, `{prefix}:counters:ns:{namespace}`
//! per namespace) in one batch every `cluster.counters_flush`, never from
//! the request path: a request only adds to an in-memory tally. The same
//! batch reads the fleet's totals back, which `/admin/stats` and `/metrics`
//! report beside this replica's own counters.
//!
//! Namespaces are client-chosen, so per-namespace hashes are capped as
//! `/metrics` series and store counters are (`server.metrics_namespaces`):
//! a replica tallies the namespaces past its own cap under `(other)`, and
//! Redis gives hashes of their own to the first namespaces of the whole
//! fleet only (their names in the set `{prefix}:counters:namespaces`),
//! adding the rest to `{prefix}:counters:ns:(other)`. The check and the
//! additions are one script, so replicas flushing at once cannot overshoot.
//!
//! A batch that fails is kept and added to the next one, so Redis being away
//! loses nothing; a batch that timed out after Redis applied it is counted
//! twice. USD are kept as integer nano-USD, never floats, so sums are exact.

use super::{Fleet, Query};
use deja_gateway::metrics::FleetMetrics;
use deja_gateway::metrics::{NamespaceCap, OTHER_NAMESPACES};
use deja_gateway::state::AppState;
use deja_store::{nano_to_usd, Counter};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Adds each namespace's figures to its own hash while it is one of the
/// first `cap` namespaces the fleet has counted, else to `(other)`'s.
/// KEYS: the set of namespaces with hashes of their own, `(other)`'s hash,
/// then each namespace's hash. ARGV: the cap, the five field names, then per
/// namespace its name and its five values (decimal, passed to `HINCRBY` as
/// they are, so no value goes through a Lua float).
const ADD_BY_NAMESPACE: &str = r"
local cap = tonumber(ARGV[1])
local a = 7
for i = 3, #KEYS do
  local key = KEYS[i]
  if key ~= KEYS[2] and redis.call('SISMEMBER', KEYS[1], ARGV[a]) == 0 then
    if redis.call('SCARD', KEYS[1]) < cap then
      redis.call('SADD', KEYS[1], ARGV[a])
    else
      key = KEYS[2]
    end
  end
  for f = 1, 5 do
    local v = ARGV[a + f]
    if v ~= '0' then
      redis.call('HINCRBY', key, ARGV[1 + f], v)
    end
  end
  a = a + 6
end
return 0
";

/// Counts added since the last flush (or, for the totals, read back).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Figures {
    pub exact_hits: u64,
    pub semantic_hits: u64,
    pub misses: u64,
    pub nano_usd_saved: u64,
    pub nano_usd_spent: u64,
}

impl Figures {
    const FIELDS: [&'static str; 5] = ["exact_hits", "semantic_hits", "misses", "nano_usd_saved", "nano_usd_spent"];

    fn values(&self) -> [u64; 5] {
        [self.exact_hits, self.semantic_hits, self.misses, self.nano_usd_saved, self.nano_usd_spent]
    }

    fn add(&mut self, o: &Figures) {
        self.exact_hits += o.exact_hits;
        self.semantic_hits += o.semantic_hits;
        self.misses += o.misses;
        self.nano_usd_saved += o.nano_usd_saved;
        self.nano_usd_spent += o.nano_usd_spent;
    }

    fn from_hash(h: &HashMap<String, i64>) -> Self {
        let get = |f: &str| h.get(f).copied().unwrap_or(0).max(0) as u64;
        Figures {
            exact_hits: get("exact_hits"),
            semantic_hits: get("semantic_hits"),
            misses: get("misses"),
            nano_usd_saved: get("nano_usd_saved"),
            nano_usd_spent: get("nano_usd_spent"),
        }
    }

    /// The shape `/admin/stats` uses for this replica and for the fleet.
    pub fn to_json(self) -> Value {
        let hits = self.exact_hits + self.semantic_hits;
        let lookups = hits + self.misses;
        json!({
            "hits": {"exact": self.exact_hits, "semantic": self.semantic_hits, "total": hits},
            "misses": self.misses,
            "hit_rate": if lookups == 0 { 0.0 } else { hits as f64 / lookups as f64 },
            "usd_saved": nano_to_usd(self.nano_usd_saved),
            "usd_spent": nano_to_usd(self.nano_usd_spent),
        })
    }
}

#[derive(Default)]
struct Pending {
    total: Figures,
    by_namespace: HashMap<String, Figures>,
}

/// This replica's unflushed counts and the fleet's totals as last read.
pub(crate) struct Tally {
    /// The replica's cap, shared with `/metrics`: which namespaces are tallied apart.
    namespaces: Arc<NamespaceCap>,
    pending: Mutex<Pending>,
    totals: Mutex<Option<(Figures, Instant)>>,
}

impl Tally {
    pub fn new(namespaces: Arc<NamespaceCap>) -> Self {
        Self { namespaces, pending: Mutex::default(), totals: Mutex::default() }
    }

    fn add(&self, namespace: &str, f: impl Fn(&mut Figures)) {
        // At most the cap and `(other)` between two flushes.
        let namespace = self.namespaces.name(namespace);
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut p.total);
        // Allocates only for a namespace not yet seen since the last flush.
        if let Some(n) = p.by_namespace.get_mut(namespace) {
            f(n);
        } else {
            let mut n = Figures::default();
            f(&mut n);
            p.by_namespace.insert(namespace.to_string(), n);
        }
    }

    fn take(&self) -> Pending {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Puts back a batch Redis did not take, under what was counted since.
    fn restore(&self, batch: Pending) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.total.add(&batch.total);
        for (ns, f) in batch.by_namespace {
            p.by_namespace.entry(ns).or_default().add(&f);
        }
    }

    pub fn totals(&self) -> Option<(Figures, Instant)> {
        *self.totals.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Shows the fleet's totals as last read from Redis on `/metrics`.
fn set_totals(m: &FleetMetrics, t: &Figures) {
    let set = |kind: &str, v: u64| {
        m.hits.get_or_create(&deja_gateway::metrics::KindLabels { kind: kind.into() }).set(v as i64);
    };
    set("exact", t.exact_hits);
    set("semantic", t.semantic_hits);
    m.misses.set(t.misses as i64);
    m.saved_usd.set(nano_to_usd(t.nano_usd_saved));
    m.spent_usd.set(nano_to_usd(t.nano_usd_spent));
}

/// This replica's hits, misses and spend, added to the tally the next flush sends.
impl deja_gateway::ledger::SharedTally for Fleet {
    fn hit(&self, namespace: &str, semantic: bool, nano_usd_saved: u64) {
        self.tally.add(namespace, |f| {
            if semantic {
                f.semantic_hits += 1;
            } else {
                f.exact_hits += 1;
            }
            f.nano_usd_saved += nano_usd_saved;
        });
    }

    fn miss(&self, namespace: &str) {
        self.tally.add(namespace, |f| f.misses += 1);
    }

    fn spend(&self, namespace: &str, nano_usd: u64) {
        self.tally.add(namespace, |f| f.nano_usd_spent += nano_usd);
    }
}

fn totals_key(fleet: &Fleet) -> String {
    format!("{}:counters", fleet.prefix())
}

/// Adds this replica's tally to Redis and reads the fleet's totals back, in
/// one atomic round trip. While degraded the tally waits for the next flush.
pub(super) async fn flush(fleet: &Fleet) {
    if !fleet.is_connected() {
        return;
    }
    let batch = fleet.tally.take();
    let totals = totals_key(fleet);
    let mut pipe = redis::pipe();
    pipe.atomic();
    let add = |pipe: &mut redis::Pipeline, key: &str, f: &Figures| {
        for (field, v) in Figures::FIELDS.iter().zip(f.values()) {
            if v > 0 {
                pipe.cmd("HINCRBY").arg(key).arg(*field).arg(v.min(i64::MAX as u64)).ignore();
            }
        }
    };
    if batch.total != Figures::default() {
        add(&mut pipe, &totals, &batch.total);
        if !batch.by_namespace.is_empty() {
            pipe.add_command(by_namespace(&totals, fleet.tally.namespaces.cap(), &batch.by_namespace)).ignore();
        }
    }
    pipe.cmd("HGETALL").arg(&totals);
    match fleet.run::<(HashMap<String, i64>,)>(Query::Pipe(&pipe)).await {
        Ok((read,)) => {
            let t = Figures::from_hash(&read);
            set_totals(&fleet.fleet_metrics, &t);
            *fleet.tally.totals.lock().unwrap_or_else(|e| e.into_inner()) = Some((t, Instant::now()));
        }
        Err(e) => {
            tracing::debug!(error = %e, "could not add this replica's counts to the fleet's; kept for the next flush");
            fleet.tally.restore(batch);
        }
    }
}

/// The script call adding a batch's per-namespace figures ([`ADD_BY_NAMESPACE`]).
fn by_namespace(totals: &str, cap: usize, batch: &HashMap<String, Figures>) -> redis::Cmd {
    let hash = |ns: &str| format!("{totals}:ns:{ns}");
    let rows: Vec<(&String, &Figures)> = batch.iter().collect();
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(ADD_BY_NAMESPACE).arg(2 + rows.len());
    cmd.arg(format!("{totals}:namespaces")).arg(hash(OTHER_NAMESPACES));
    for (ns, _) in &rows {
        cmd.arg(hash(ns));
    }
    cmd.arg(cap).arg(&Figures::FIELDS[..]);
    for (ns, f) in &rows {
        cmd.arg(ns.as_str());
        for v in f.values() {
            cmd.arg(v.min(i64::MAX as u64));
        }
    }
    cmd
}

/// The `fleet` object of `/admin/stats`: this replica's own counts (from its
/// store) beside the whole fleet's (from Redis, as of the last flush).
pub fn figures(state: &AppState, fleet: &Fleet) -> Value {
    let c = |k: Counter| state.store.counter(k).unwrap_or(0);
    let replica = Figures {
        exact_hits: c(Counter::ExactHits),
        semantic_hits: c(Counter::SemanticHits),
        misses: c(Counter::Misses),
        nano_usd_saved: c(Counter::NanoUsdSaved),
        nano_usd_spent: c(Counter::NanoUsdSpent),
    };
    let (total, age_ms) = match fleet.tally.totals() {
        Some((t, at)) => (t.to_json(), Some(at.elapsed().as_millis() as u64)),
        None => (Value::Null, None),
    };
    json!({
        "enabled": true,
        "state": fleet.state_label(),
        "replica": replica.to_json(),
        "total": total,
        "total_age_ms": age_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(cap: usize) -> Tally {
        Tally::new(Arc::new(NamespaceCap::new(cap)))
    }

    #[test]
    fn a_failed_batch_is_added_to_the_next() {
        let t = tally(100);
        t.add("a", |f| f.exact_hits += 1);
        t.add("b", |f| f.misses += 2);
        let batch = t.take();
        assert_eq!(batch.total, Figures { exact_hits: 1, misses: 2, ..Figures::default() });
        t.add("a", |f| f.nano_usd_spent += 5);
        t.restore(batch);
        let p = t.take();
        assert_eq!(p.total, Figures { exact_hits: 1, misses: 2, nano_usd_spent: 5, ..Figures::default() });
        assert_eq!(p.by_namespace.get("a"), Some(&Figures { exact_hits: 1, nano_usd_spent: 5, ..Figures::default() }));
        assert_eq!(t.take().total, Figures::default());
    }

    #[test]
    fn namespaces_past_the_cap_are_tallied_as_other() {
        let t = tally(3);
        for i in 0..10 {
            t.add(&format!("ns{i}"), |f| f.exact_hits += 1);
        }
        // Admitted ones keep their own, across flushes.
        t.add("ns1", |f| f.misses += 1);
        let p = t.take();
        assert_eq!(p.by_namespace.len(), 4);
        assert_eq!(p.by_namespace.get("ns1"), Some(&Figures { exact_hits: 1, misses: 1, ..Figures::default() }));
        assert_eq!(p.by_namespace.get(OTHER_NAMESPACES).map(|f| f.exact_hits), Some(7));
        assert_eq!(p.total.exact_hits, 10);
        t.add("ns11", |f| f.exact_hits += 1);
        assert_eq!(t.take().by_namespace.keys().collect::<Vec<_>>(), [OTHER_NAMESPACES]);
    }

    #[test]
    fn the_script_call_names_each_namespace_once_with_its_values() {
        let mut batch = HashMap::new();
        batch.insert("a".to_string(), Figures { misses: 2, ..Figures::default() });
        batch.insert(OTHER_NAMESPACES.to_string(), Figures { nano_usd_spent: u64::MAX, ..Figures::default() });
        let args: Vec<String> = by_namespace("deja:counters", 100, &batch)
            .args_iter()
            .filter_map(|a| match a {
                redis::Arg::Simple(b) => Some(String::from_utf8_lossy(b).into_owned()),
                redis::Arg::Cursor => None,
            })
            .collect();
        assert_eq!(args.first().map(String::as_str), Some("EVAL"));
        assert_eq!(args.get(2).map(String::as_str), Some("4"));
        assert_eq!(
            args.get(3..5),
            Some(&["deja:counters:namespaces".to_string(), "deja:counters:ns:(other)".into()][..])
        );
        // Keys, the cap, five field names, then six values per namespace.
        assert_eq!(args.len(), 3 + 4 + 1 + 5 + 12);
        assert!(args.contains(&i64::MAX.to_string()), "a value past i64 is clamped: {args:?}");
    }
}
