//! Semantic routes: a request whose question is close to a route's examples
//! starts at that route's rung. The examples are embedded by the caller (once
//! per configuration); this module only compares vectors.

/// One `[[ladders.routes]]` table, as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteSpec {
    /// What reports call the route (`deja eval --routes` labels, `check-config`).
    pub name: String,
    pub examples: Vec<String>,
    /// A rung of the route's ladder.
    pub start_at: String,
    /// The least cosine similarity to an example that selects the route.
    pub threshold: f32,
}

/// A route with its examples embedded.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddedRoute {
    pub start_at: String,
    pub threshold: f32,
    pub examples: Vec<Vec<f32>>,
}

/// The route a question matched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouteChoice<'a> {
    /// Index into the routes given to [`choose_route`].
    pub index: usize,
    pub start_at: &'a str,
    /// The highest similarity between the question and the route's examples.
    pub similarity: f32,
}

/// The route whose nearest example is closest to `question`, among those
/// whose nearest example clears the route's own threshold. Ties go to the
/// route listed first.
pub fn choose_route<'a>(routes: &'a [EmbeddedRoute], question: &[f32]) -> Option<RouteChoice<'a>> {
    let mut best: Option<RouteChoice<'a>> = None;
    for (index, route) in routes.iter().enumerate() {
        let similarity = route.examples.iter().map(|e| cosine(e, question)).fold(f32::NEG_INFINITY, f32::max);
        if similarity < route.threshold {
            continue;
        }
        if best.is_none_or(|b| similarity > b.similarity) {
            best = Some(RouteChoice { index, start_at: &route.start_at, similarity });
        }
    }
    best
}

/// Cosine similarity; 0 for vectors of different lengths or a zero vector.
fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    dot / (na.sqrt() * nb.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(start_at: &str, threshold: f32, examples: &[[f32; 2]]) -> EmbeddedRoute {
        EmbeddedRoute {
            start_at: start_at.to_string(),
            threshold,
            examples: examples.iter().map(|e| e.to_vec()).collect(),
        }
    }

    #[test]
    fn the_nearest_example_above_its_threshold_wins() {
        let routes = [route("mid", 0.5, &[[1.0, 0.0]]), route("top", 0.5, &[[0.0, 1.0], [0.6, 0.8]])];
        let choice = choose_route(&routes, &[0.5, 0.866]).expect("a route");
        assert_eq!((choice.index, choice.start_at), (1, "top"));
        let choice = choose_route(&routes, &[1.0, 0.1]).expect("a route");
        assert_eq!(choice.start_at, "mid");
    }

    #[test]
    fn nothing_is_chosen_below_every_threshold() {
        let routes = [route("mid", 0.9, &[[1.0, 0.0]]), route("top", 0.9, &[[0.0, 1.0]])];
        assert_eq!(choose_route(&routes, &[0.7, 0.7]), None);
        assert_eq!(choose_route(&[], &[1.0, 0.0]), None);
    }

    #[test]
    fn a_route_under_its_own_threshold_loses_to_a_lower_scoring_one_above_its() {
        let routes = [route("mid", 0.99, &[[1.0, 0.0]]), route("top", 0.5, &[[0.0, 1.0]])];
        let choice = choose_route(&routes, &[0.8, 0.6]).expect("a route");
        assert_eq!(choice.start_at, "top");
    }

    #[test]
    fn mismatched_or_zero_vectors_never_match() {
        let routes = [route("mid", 0.1, &[[1.0, 0.0]])];
        assert_eq!(choose_route(&routes, &[1.0, 0.0, 0.0]), None);
        assert_eq!(choose_route(&routes, &[0.0, 0.0]), None);
        assert_eq!(choose_route(&[route("mid", 0.1, &[])], &[1.0, 0.0]), None);
    }
}
