use super::*;
use crate::metrics::Metrics;

fn ledger() -> (tempfile::TempDir, Arc<Ledger>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(&dir.path().join("s")).expect("store"));
    let ledger = Ledger::new(store, Arc::new(Metrics::with_namespace_cap(10)), Arc::default(), None);
    (dir, ledger)
}

fn budget(daily: f64) -> Budget {
    Budget { id: client_id("k"), daily_usd: Some(daily), monthly_usd: None }
}

#[test]
fn reservations_count_against_the_budget_until_let_go() {
    let (_dir, ledger) = ledger();
    let b = budget(1.0);
    let first = ledger.reserve(&b, 0.6).expect("room for the first");
    let second = ledger.reserve(&b, 0.6).expect("0.6 held is under 1.0");
    let refused = ledger.reserve(&b, 0.01).err().expect("1.2 held reaches the budget");
    assert_eq!(refused.which, "daily");
    drop(first);
    drop(second);
    assert!(ledger.reserve(&b, 0.6).is_ok(), "let go, the money is free again");
}

#[test]
fn a_charge_in_the_clients_namespace_is_spent_from_its_budget() {
    let (_dir, ledger) = ledger();
    let b = budget(1.0);
    let ns = deja_api::Namespace::new(Some("k"), Some("team")).as_str().to_string();
    ledger.charge(&ns, "cheap", 0.4, Spend::Verification);
    ledger.charge(&ns, "cheap", 0.4, Spend::Shadow);
    assert!((ledger.spent(&b.id).0 - 0.8).abs() < 1e-9);
    let _held = ledger.reserve(&b, 0.3).expect("0.8 spent is under 1.0");
    assert!(ledger.reserve(&b, 0.0).is_err(), "0.8 spent and 0.3 held reach 1.0");
    // The open gateway's namespace has no client and no budget.
    ledger.charge("open", "cheap", 5.0, Spend::Answer);
    assert!((ledger.spent(&b.id).0 - 0.8).abs() < 1e-9);
}

#[test]
fn no_limit_means_no_reservation_to_refuse() {
    let (_dir, ledger) = ledger();
    let b = Budget { id: client_id("k"), daily_usd: None, monthly_usd: None };
    assert!(ledger.reserve(&b, 1e9).is_ok());
}
