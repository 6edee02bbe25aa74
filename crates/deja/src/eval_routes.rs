//! `deja eval --routes`: how well a ladder's semantic routes
//! (`[[ladders.routes]]`) send labelled questions where they belong. The file
//! is JSONL of `{"text": "...", "route": "<route name>"}` (optionally
//! gzipped); `"route": "none"` or `null` says no route should take the
//! question. Each question is routed exactly as a request is: embedded with
//! the configured model, then `deja_router::choose_route`.

use deja_gateway::config::NO_ROUTE;
use deja_router::{choose_route, EmbeddedRoute};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Labelled {
    text: String,
    #[serde(default)]
    route: Option<String>,
}

/// One labelled question: its text and the route it belongs to (`None`: no route).
pub type Example = (String, Option<String>);

/// Reads the labelled questions; a label that names no route of the ladder
/// is an error naming its line, so a typo cannot pass as a miss.
pub fn read_labelled(path: &Path, names: &[String]) -> Result<Vec<Example>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut out = Vec::new();
    for (i, line) in BufReader::new(reader).lines().enumerate() {
        let line = line.map_err(|e| format!("{}: {e}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{} line {}", path.display(), i + 1);
        let l: Labelled = serde_json::from_str(&line).map_err(|e| format!("{}: {e}", at()))?;
        let route = l.route.filter(|r| r != NO_ROUTE);
        if let Some(r) = route.as_deref().filter(|r| !names.iter().any(|n| n == r)) {
            return Err(format!("{}: `{r}` is not a route of this ladder (routes: {})", at(), names.join(", ")));
        }
        out.push((l.text, route));
    }
    if out.is_empty() {
        return Err(format!("{}: no labelled questions", path.display()));
    }
    Ok(out)
}

/// The route name each question is sent to (`None`: no route), with every
/// route's threshold replaced by `threshold` when one is given.
pub fn predict(
    routes: &[EmbeddedRoute],
    names: &[String],
    vectors: &[Vec<f32>],
    threshold: Option<f32>,
) -> Vec<Option<String>> {
    let overridden: Vec<EmbeddedRoute>;
    let routes = match threshold {
        Some(t) => {
            overridden = routes.iter().map(|r| EmbeddedRoute { threshold: t, ..r.clone() }).collect();
            &overridden
        }
        None => routes,
    };
    vectors.iter().map(|v| choose_route(routes, v).and_then(|c| names.get(c.index).cloned())).collect()
}

/// Accuracy, per-route precision and recall, and the confusion of one run.
pub struct RouteReport {
    /// Route names in configuration order (a name shared by routes appears once), then `none`.
    labels: Vec<String>,
    /// (expected, predicted) → count.
    confusion: BTreeMap<(usize, usize), usize>,
    total: usize,
}

impl RouteReport {
    pub fn new(names: &[String], expected: &[Option<String>], predicted: &[Option<String>]) -> Self {
        let mut labels: Vec<String> = Vec::new();
        for n in names {
            if !labels.contains(n) {
                labels.push(n.clone());
            }
        }
        labels.push(NO_ROUTE.to_string());
        let index = |r: &Option<String>| {
            let name = r.as_deref().unwrap_or(NO_ROUTE);
            labels.iter().position(|l| l == name).unwrap_or(labels.len() - 1)
        };
        let mut confusion = BTreeMap::new();
        for (e, p) in expected.iter().zip(predicted) {
            *confusion.entry((index(e), index(p))).or_insert(0) += 1;
        }
        Self { confusion, total: expected.len().min(predicted.len()), labels }
    }

    fn count(&self, expected: Option<usize>, predicted: Option<usize>) -> usize {
        self.confusion
            .iter()
            .filter(|((e, p), _)| expected.is_none_or(|x| x == *e) && predicted.is_none_or(|x| x == *p))
            .map(|(_, n)| n)
            .sum()
    }

    /// The share of questions sent where their label says (no route included).
    pub fn accuracy(&self) -> f64 {
        let right: usize = (0..self.labels.len()).map(|i| self.count(Some(i), Some(i))).sum();
        right as f64 / self.total.max(1) as f64
    }

    /// Questions no route took.
    pub fn unrouted(&self) -> usize {
        self.count(None, Some(self.labels.len() - 1))
    }

    /// Questions no route took though their label names one.
    pub fn missed(&self) -> usize {
        let none = self.labels.len() - 1;
        self.unrouted() - self.count(Some(none), Some(none))
    }

    /// Questions a route took though they belong to another route or to none.
    pub fn misrouted(&self) -> usize {
        let none = self.labels.len() - 1;
        self.confusion.iter().filter(|((e, p), _)| e != p && *p != none).map(|(_, n)| n).sum()
    }

    /// (precision, recall, support) of label `i`; `None` where undefined.
    pub fn scores(&self, i: usize) -> (Option<f64>, Option<f64>, usize) {
        let hit = self.count(Some(i), Some(i));
        let (predicted, support) = (self.count(None, Some(i)), self.count(Some(i), None));
        let ratio = |d: usize| (d > 0).then(|| hit as f64 / d as f64);
        (ratio(predicted), ratio(support), support)
    }

    pub fn render(&self) -> String {
        let pct = |x: Option<f64>| x.map_or("     -".to_string(), |x| format!("{:>5.1}%", x * 100.0));
        let width = self.labels.iter().map(String::len).max().unwrap_or(4).max(8);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "questions: {}; accuracy {:.1}%; sent to no route: {} ({} of them labelled with a route); \
             sent to a wrong route: {}",
            self.total,
            self.accuracy() * 100.0,
            self.unrouted(),
            self.missed(),
            self.misrouted()
        );
        let _ = writeln!(out, "\n  {:<width$}  precision  recall  support", "route");
        for (i, label) in self.labels.iter().enumerate() {
            let (p, r, support) = self.scores(i);
            let _ = writeln!(out, "  {label:<width$}     {}  {}  {support:>7}", pct(p), pct(r));
        }
        let _ = writeln!(out, "\nconfusion (rows: labelled, columns: chosen):");
        let _ = write!(out, "  {:<width$}", "");
        for label in &self.labels {
            let _ = write!(out, " {label:>width$}");
        }
        out.push('\n');
        for (e, label) in self.labels.iter().enumerate() {
            let _ = write!(out, "  {label:<width$}");
            for p in 0..self.labels.len() {
                let _ = write!(out, " {:>width$}", self.count(Some(e), Some(p)));
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    fn some(s: &str) -> Option<String> {
        (s != "none").then(|| s.to_string())
    }

    #[test]
    fn counts_accuracy_precision_recall_and_the_unrouted() {
        let routes = names(&["refunds", "shipping"]);
        let expected: Vec<_> = ["refunds", "refunds", "refunds", "shipping", "shipping", "none"].map(some).to_vec();
        let predicted: Vec<_> = ["refunds", "refunds", "none", "shipping", "refunds", "none"].map(some).to_vec();
        let r = RouteReport::new(&routes, &expected, &predicted);
        assert!((r.accuracy() - 4.0 / 6.0).abs() < 1e-9);
        assert_eq!(r.unrouted(), 2);
        assert_eq!(r.missed(), 1);
        assert_eq!(r.misrouted(), 1);
        // refunds: chosen 3 times, 2 right; labelled 3 times, 2 found.
        let (p, rc, support) = r.scores(0);
        assert_eq!((p, rc, support), (Some(2.0 / 3.0), Some(2.0 / 3.0), 3));
        // shipping: chosen once, right; labelled twice.
        assert_eq!(r.scores(1), (Some(1.0), Some(0.5), 2));
        // none: chosen twice, once right; labelled once.
        assert_eq!(r.scores(2), (Some(0.5), Some(1.0), 1));
        let text = r.render();
        assert!(text.contains("accuracy 66.7%"), "{text}");
        assert!(text.contains("sent to no route: 2 (1 of them labelled with a route)"), "{text}");
    }

    #[test]
    fn a_route_never_chosen_has_no_precision() {
        let r = RouteReport::new(&names(&["a", "b"]), &[some("b")], &[some("a")]);
        assert_eq!(r.scores(1), (None, Some(0.0), 1));
        assert_eq!(r.accuracy(), 0.0);
    }

    #[test]
    fn prediction_uses_the_router_and_can_override_thresholds() {
        let routes = vec![
            EmbeddedRoute { start_at: "mid".into(), threshold: 0.9, examples: vec![vec![1.0, 0.0]] },
            EmbeddedRoute { start_at: "top".into(), threshold: 0.9, examples: vec![vec![0.0, 1.0]] },
        ];
        let n = names(&["refunds", "code"]);
        let vectors = vec![vec![1.0, 0.05], vec![0.6, 0.8], vec![0.1, 1.0]];
        assert_eq!(predict(&routes, &n, &vectors, None), vec![some("refunds"), None, some("code")]);
        assert_eq!(predict(&routes, &n, &vectors, Some(0.5)), vec![some("refunds"), some("code"), some("code")]);
    }

    #[test]
    fn a_label_that_names_no_route_is_an_error_naming_its_line() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("l.jsonl");
        let text = "{\"text\": \"refund me\", \"route\": \"refunds\"}\n{\"text\": \"hi\", \"route\": null}\n\
                    {\"text\": \"hello\", \"route\": \"none\"}\n";
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        let read = read_labelled(&path, &names(&["refunds"])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read, vec![("refund me".into(), some("refunds")), ("hi".into(), None), ("hello".into(), None)]);
        std::fs::write(&path, "{\"text\": \"a\", \"route\": \"refunds\"}\n{\"text\": \"b\", \"route\": \"refund\"}\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let err = read_labelled(&path, &names(&["refunds"])).err().unwrap_or_default();
        assert!(err.contains("line 2") && err.contains("`refund`"), "{err}");
    }
}
