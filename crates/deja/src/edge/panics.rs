//! What a client gets when a handler panics: an OpenAI-shaped 500
//! (`internal_error`) rather than a dropped connection. The request log
//! layer, which knows the request, logs the panic's message.

use deja_api::{ApiError, ErrorKind};
use deja_gateway::reply::{self, Body};
use http::Response;
use std::any::Any;
use tower_http::catch_panic::ResponseForPanic;

/// A panic's message, carried on its 500 to the request log layer.
#[derive(Debug, Clone)]
pub struct Panicked(pub String);

/// The panic handler given to `CatchPanicLayer`.
#[derive(Debug, Clone, Copy)]
pub struct Answer;

impl ResponseForPanic for Answer {
    type ResponseBody = Body;

    fn response_for_panic(&mut self, panic: Box<dyn Any + Send + 'static>) -> Response<Body> {
        let e = ApiError::new(ErrorKind::Internal, "the server failed while handling this request")
            .with_code("internal_error");
        let mut response = reply::error(&e);
        response.extensions_mut().insert(Panicked(message(&*panic)));
        response
    }
}

fn message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_is_an_openai_shaped_500_carrying_the_message() {
        let response = Answer.response_for_panic(Box::new(String::from("boom")));
        assert_eq!(response.status(), 500);
        let panicked = response.extensions().get::<Panicked>().map(|p| p.0.clone());
        assert_eq!(panicked.as_deref(), Some("boom"));
        assert_eq!(message(&*Box::new("static") as &(dyn Any + Send)), "static");
        assert_eq!(message(&*Box::new(7_u8) as &(dyn Any + Send)), "a non-string panic payload");
    }
}
