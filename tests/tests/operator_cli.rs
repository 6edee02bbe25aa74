//! The admin API as `deja cache` uses it, with what a new operator types:
//! the short ids `ls` prints, the namespace a client sends in
//! `x-deja-namespace`, and previews that tell templated prompts apart.

mod common;

use common::*;
use deja_api::CacheKey;
use deja_store::{Entry, EntryKind, EntryUsage};
use deja_testkit::{spawn_proxy, Harness, TestConfig};
use reqwest::Method;
use serde_json::{json, Value};

fn ids(listing: &Value) -> Vec<String> {
    listing["entries"].as_array().into_iter().flatten().filter_map(|e| e["id"].as_str().map(str::to_string)).collect()
}

#[tokio::test]
async fn the_short_ids_ls_prints_show_and_delete_their_entry() {
    let h = spawn_proxy(exact_only()).await;
    chat(&h, &ask("When do you open?")).await;
    chat(&h, &ask("Where are you?")).await;
    let listed = ids(&admin_get(&h, "/admin/cache").await.body);
    assert_eq!(listed.len(), 2);
    let id = listed[0].clone();
    let short = &id[..16];

    let shown = admin_get(&h, &format!("/admin/cache/{short}")).await;
    assert_eq!((shown.status, shown.body["id"].as_str()), (200, Some(id.as_str())), "{}", shown.text);
    let shown = admin_get(&h, &format!("/admin/cache/{}", short[..8].to_uppercase())).await;
    assert_eq!(shown.status, 200, "8 characters, either case: {}", shown.text);

    for bad in [&id[..7], "zzzzzzzzzz", &format!("{id}0")] {
        let r = admin_get(&h, &format!("/admin/cache/{bad}")).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
        assert_eq!(r.body["error"]["type"], "invalid_request_error", "{}", r.text);
        assert!(r.text.contains("at least 8"), "{}", r.text);
    }
    let other = if id.starts_with('0') { "1111111111" } else { "0000000000" };
    if !listed[1].starts_with(other) {
        assert_eq!(admin_get(&h, &format!("/admin/cache/{other}")).await.status, 404);
        assert_eq!(admin_send(&h, Method::DELETE, &format!("/admin/cache/{other}"), &json!({})).await.status, 404);
    }

    assert_eq!(admin_send(&h, Method::DELETE, &format!("/admin/cache/{short}"), &json!({})).await.status, 204);
    assert_eq!(admin_get(&h, &format!("/admin/cache/{id}")).await.status, 404, "the whole entry went");
    assert_eq!(admin_get(&h, &format!("/admin/cache/{short}")).await.status, 404);
    assert_eq!(admin_get(&h, &format!("/admin/cache/{}", &listed[1][..12])).await.status, 200, "the other stays");
    assert_eq!(chat(&h, &ask("Where are you?")).await.cache(), "miss", "newest first: the deleted one");
}

fn entry_with_id(h: &Harness, bytes: [u8; 32], question: &str) -> Entry {
    let e = Entry {
        id: CacheKey(bytes),
        kind: EntryKind::Chat,
        namespace: "default".into(),
        requested_model: "auto".into(),
        answered_by: "cheap".into(),
        request: json!([{"role": "user", "content": question}]),
        response: json!({"id": "x", "object": "chat.completion", "choices": []}),
        usage: EntryUsage { prompt_tokens: 1, completion_tokens: 1 },
        cost_usd: 0.0,
        created_ms: now_ms(),
        expires_ms: u64::MAX / 2,
        semantic: None,
    };
    h.proxy.state.store.put(&e, None).expect("put");
    e
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[tokio::test]
async fn a_prefix_two_entries_share_is_refused_and_names_both() {
    let h = spawn_proxy(exact_only()).await;
    let mut a = [0x5a; 32];
    a[10] = 0x01;
    let mut b = [0x5a; 32];
    b[10] = 0x02;
    let (a, b) = (entry_with_id(&h, a, "first"), entry_with_id(&h, b, "second"));
    let (a, b) = (a.id.to_hex(), b.id.to_hex());
    let shared = &a[..16];
    assert_eq!(&b[..16], shared);

    for method in [Method::GET, Method::DELETE] {
        let r = admin_send(&h, method.clone(), &format!("/admin/cache/{shared}"), &json!({})).await;
        assert_eq!(r.status, 400, "{method}: {}", r.text);
        assert_eq!(r.body["error"]["type"], "invalid_request_error", "{}", r.text);
        assert_eq!(r.body["error"]["code"], "ambiguous_id", "{}", r.text);
        let message = r.body["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains("ambiguous") && message.contains(&a) && message.contains(&b), "{message}");
    }
    assert_eq!(admin_get(&h, &format!("/admin/cache/{a}")).await.status, 200, "nothing was deleted");
    let r = admin_get(&h, &format!("/admin/cache/{}", &b[..22])).await;
    assert_eq!((r.status, r.body["id"].as_str()), (200, Some(b.as_str())), "a longer prefix is unique: {}", r.text);
}

#[tokio::test]
async fn a_namespace_filter_takes_the_name_clients_send() {
    let h = spawn_proxy(TestConfig { client_keys: vec!["sk-a".into(), "sk-b".into()], ..exact_only() }).await;
    let sent = |key: &'static str, question: &'static str, namespace: Option<&'static str>| {
        let h = &h;
        async move {
            let mut headers = vec![("authorization", format!("Bearer {key}"))];
            headers.extend(namespace.map(|n| ("x-deja-namespace", n.to_string())));
            let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let r = chat_with(h, &ask(question), &headers).await;
            assert_eq!(r.status, 200, "{}", r.text);
        }
    };
    sent("sk-a", "team question from a", Some("team")).await;
    sent("sk-b", "team question from b", Some("team")).await;
    sent("sk-a", "no namespace", None).await;
    sent("sk-a", "other team", Some("other")).await;
    sent("sk-b", "nested team", Some("eu/team")).await;

    let team = admin_get(&h, "/admin/cache?namespace=team").await.body;
    let entries = team["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 2, "{team}");
    let stored: Vec<&str> = entries.iter().filter_map(|e| e["namespace"].as_str()).collect();
    assert!(stored.iter().all(|ns| ns.starts_with("key-") && ns.ends_with("/team")), "{stored:?}");
    assert_ne!(stored[0], stored[1], "one per client key");
    assert!(entries.iter().all(|e| e["client_namespace"] == "team"), "{team}");

    // The stored form still matches exactly.
    let exact = admin_get(&h, &format!("/admin/cache?namespace={}", stored[0])).await.body;
    assert_eq!(ids(&exact).len(), 1, "{exact}");
    let nested = admin_get(&h, "/admin/cache?namespace=eu/team").await.body;
    assert_eq!(ids(&nested).len(), 1, "a name with a slash: {nested}");

    // Paging through a client's name: every entry once, then no cursor.
    let first = admin_get(&h, "/admin/cache?namespace=team&limit=1").await.body;
    let cursor = first["next_cursor"].as_str().expect("a full page has a cursor").to_string();
    let second = admin_get(&h, &format!("/admin/cache?namespace=team&limit=1&cursor={cursor}")).await.body;
    let mut paged = [ids(&first), ids(&second)].concat();
    if let Some(c) = second["next_cursor"].as_str() {
        let third = admin_get(&h, &format!("/admin/cache?namespace=team&limit=1&cursor={c}")).await.body;
        assert_eq!(ids(&third).len(), 0, "{third}");
        assert!(third["next_cursor"].is_null());
    }
    paged.sort();
    let mut all = ids(&team);
    all.sort();
    assert_eq!(paged, all);

    // Purging by the client's name: a dry run lists, then both go.
    let purge = |body: Value| {
        let h = &h;
        async move { admin_send(h, Method::POST, "/admin/cache/purge", &body).await }
    };
    let dry = purge(json!({"namespace": "team", "dry_run": true, "list": 10})).await;
    assert_eq!(dry.status, 200, "{}", dry.text);
    assert_eq!(dry.body["would_remove"], 2, "{}", dry.text);
    assert_eq!(dry.body["entries"].as_array().map(Vec::len), Some(2), "{}", dry.text);
    let mut named: Vec<&str> =
        dry.body["namespaces"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    named.sort();
    let mut expected = stored.clone();
    expected.sort();
    assert_eq!(named, expected);
    assert_eq!(admin_get(&h, "/admin/stats").await.body["entries"], 5, "a dry run removes nothing");

    let done = purge(json!({"namespace": "team"})).await;
    assert_eq!(done.body["removed"], 2, "{}", done.text);
    assert_eq!(admin_get(&h, "/admin/stats").await.body["entries"], 3);
    assert_eq!(ids(&admin_get(&h, "/admin/cache?namespace=other").await.body).len(), 1);
}

#[tokio::test]
async fn ls_previews_show_what_tells_templated_prompts_apart() {
    let h = spawn_proxy(exact_only()).await;
    let template = "You are a support assistant for Example Corp. Read the customer's ticket below, classify it \
                    into billing, technical or account, and answer politely in two sentences.";
    let tickets = ["Ticket: 1041\nMy printer will not connect", "Ticket: 2093\nI was charged twice"];
    for t in tickets {
        assert_eq!(chat(&h, &ask(&format!("{template}\n\n{t}"))).await.status, 200);
    }
    let short = "When do you open?";
    chat(&h, &ask(short)).await;
    let long_line = "word ".repeat(40);
    chat(&h, &ask(&long_line)).await;

    let listing = admin_get(&h, "/admin/cache").await.body;
    let previews: Vec<&str> =
        listing["entries"].as_array().into_iter().flatten().filter_map(|e| e["preview"].as_str()).collect();
    assert_eq!(previews.len(), 4, "{listing}");
    // Newest first.
    assert!(previews[0].starts_with("word word") && previews[0].ends_with('…'), "{}", previews[0]);
    assert!(previews[0].chars().count() <= 81, "{}", previews[0]);
    assert_eq!(previews[1], short);
    assert_eq!(previews[2], "… Ticket: 2093 I was charged twice");
    assert_eq!(previews[3], "… Ticket: 1041 My printer will not connect");
    assert!(previews.iter().all(|p| !p.contains('\n')), "{previews:?}");
}
