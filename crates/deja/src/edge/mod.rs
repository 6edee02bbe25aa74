//! What happens to every request between the socket and its handler, as one
//! tower stack. [`service`] lists the layers in the order a request meets
//! them; its answer meets them in reverse.
//!
//! The connection cap is not here: it is a place per connection, taken before
//! any request is read, so it stays at the accept loop (`server.rs`).

mod admin;
mod body;
mod client;
mod deadline;
mod log;
mod outcome;
mod panics;
mod request_id;
mod routes;

pub use routes::Serves;

use crate::admin_guard::{AdminGuard, Peer};
use crate::rate::RateLimits;
use bytes::Bytes;
use deja_gateway::state::AppState;
use http::{Request, Response};
use hyper::body::Incoming;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use tower::{Service, ServiceBuilder};
use tower_http::add_extension::AddExtensionLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};

/// A response body as it leaves the stack: the panic layer boxes whatever
/// the handlers answered with.
pub type EdgeBody = tower_http::body::UnsyncBoxBody<Bytes, tower_http::BoxError>;

/// What the listener shares between connections.
pub struct Edge {
    state: Arc<AppState>,
    rates: RateLimits,
    /// `None` on a listener that serves no admin routes.
    dashboard: Option<deja_admin::dashboard::Dashboard>,
    admin_guard: AdminGuard,
    serves: Serves,
}

impl Edge {
    pub fn new(state: Arc<AppState>, serves: Serves) -> Self {
        let dashboard = (serves != Serves::Clients).then(|| deja_admin::dashboard::Dashboard::start(&state));
        Self { state, rates: RateLimits::default(), dashboard, admin_guard: AdminGuard::default(), serves }
    }
}

/// The stack one connection from `peer` is served by. Its type stays
/// concrete (not boxed): hyper clones it for every request, and cloning it
/// is a few reference counts.
pub fn service(
    edge: &Arc<Edge>,
    peer: IpAddr,
) -> impl Service<
    Request<Incoming>,
    Response = Response<EdgeBody>,
    Error = Infallible,
    Future = impl std::future::Future<Output = Result<Response<EdgeBody>, Infallible>> + Send + 'static,
> + Clone
       + Send
       + 'static {
    ServiceBuilder::new()
        // The caller's address, for the admin lockout.
        .layer(AddExtensionLayer::new(Peer(peer)))
        // A client's own id is kept if it is short, printable text; otherwise one is made.
        .map_request(request_id::refuse_unfit::<Incoming>)
        .layer(SetRequestIdLayer::x_request_id(request_id::Sequential))
        // Outside the id header, so `connection: close` follows it as it always has.
        .map_response(body::close_after_timeout)
        // Every answer carries the id, a panic's included.
        .layer(PropagateRequestIdLayer::x_request_id())
        // One log line and one `requests` count per request, after the answer's head is ready.
        .layer(log::RequestLogLayer::new(edge.state.clone()))
        // A panicking handler answers an OpenAI-shaped 500 instead of dropping the connection.
        .layer(CatchPanicLayer::custom(panics::Answer))
        // Routing, admin auth, body limits and the client API's deadline.
        .service(routes::Routes::new(edge.clone()))
}
