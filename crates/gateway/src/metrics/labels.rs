//! Label sets and the namespace cap every metrics family shares: a leaf,
//! imported by the families and by whoever writes to them.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use std::sync::atomic::AtomicU64;

/// A counter of dollars.
pub type FloatCounter = Counter<f64, AtomicU64>;
/// A gauge of seconds or dollars.
pub type FloatGauge = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub endpoint: String,
    pub route: String,
    pub cache: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    pub model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelErrorLabels {
    pub model: String,
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NamespaceLabels {
    pub namespace: String,
}

/// Namespaces with series of their own in `/metrics` and per-namespace
/// counters in the store by default (`server.metrics_namespaces`); later
/// ones are counted under [`OTHER_NAMESPACES`].
/// Namespaces are client-chosen (`x-deja-namespace`): without a cap, one
/// client could grow the scrape and the store without bound.
pub const NAMESPACES_LABELLED: usize = 100;
/// Where namespaces past [`NAMESPACES_LABELLED`] are counted.
pub const OTHER_NAMESPACES: &str = "(other)";

/// The namespaces admitted as labels so far, at most `cap`, first come first
/// served (seeded at start-up with those the store already counts).
pub struct NamespaceCap {
    cap: usize,
    admitted: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl NamespaceCap {
    pub fn new(cap: usize) -> Self {
        Self { cap, admitted: std::sync::Mutex::new(std::collections::HashSet::new()) }
    }

    /// The label `namespace` is counted under.
    pub fn label(&self, namespace: &str) -> NamespaceLabels {
        NamespaceLabels { namespace: self.name(namespace).to_string() }
    }

    /// `namespace` if it has counters of its own, else [`OTHER_NAMESPACES`].
    pub fn name<'a>(&self, namespace: &'a str) -> &'a str {
        let mut admitted = self.admitted.lock().unwrap_or_else(|e| e.into_inner());
        let own = namespace == OTHER_NAMESPACES
            || admitted.contains(namespace)
            || (admitted.len() < self.cap && admitted.insert(namespace.to_string()));
        if own {
            namespace
        } else {
            OTHER_NAMESPACES
        }
    }

    /// How many namespaces get counters of their own.
    pub fn cap(&self) -> usize {
        self.cap
    }
}
