use criterion::{black_box, criterion_group, criterion_main, Criterion};
use deja_api::key::chat_keys;
use deja_api::{ChatRequest, Namespace};
use deja_benches::faq_request;

fn keys(c: &mut Criterion) {
    let ns = Namespace::new(Some("sk-tenant"), None);
    let req = faq_request(42);
    let body = serde_json::to_vec(&req).unwrap_or_default();
    c.bench_function("chat_keys (4-message FAQ request)", |b| b.iter(|| chat_keys(black_box(&ns), black_box(&req))));
    c.bench_function("parse + chat_keys", |b| {
        b.iter(|| {
            let r = ChatRequest::parse(black_box(&body)).unwrap_or_else(|e| panic!("{e}"));
            chat_keys(&ns, &r)
        })
    });
}

criterion_group!(benches, keys);
criterion_main!(benches);
