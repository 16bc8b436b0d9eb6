use super::*;

#[test]
fn labels_round_trip_and_index_matches_all() {
    for (i, c) in OutcomeClass::ALL.into_iter().enumerate() {
        assert_eq!(OutcomeClass::from_label(c.label()), Some(c));
        assert_eq!(c.index(), i);
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, format!("\"{}\"", c.label()), "serde and label agree");
    }
    assert_eq!(OutcomeClass::from_label("nope"), None);
}

#[test]
fn client_errors_and_rate_limits_are_not_provider_failures() {
    use OutcomeClass::*;
    let failures: Vec<_> = OutcomeClass::ALL.into_iter().filter(|c| c.is_provider_failure()).collect();
    assert_eq!(failures, [Connect, Timeout, Http5xx, StreamBroken]);
    assert!(Http429.holds_back() && Http429.retryable() && !Http429.is_provider_failure());
    assert!(!Http4xx.retryable() && Http4xx.answered_client() && Http4xx.blame() == Blame::Client);
    assert!(!ClientClosed.retryable() && ClientClosed.blame() == Blame::Cancelled);
    assert!(Ok.answered_client() && !Ok.retryable());
    assert!(Auth.retryable() && !Auth.is_provider_failure() && !Auth.answered_client(), "the operator's problem");
}

#[test]
fn a_request_is_judged_by_what_the_client_saw() {
    use OutcomeClass::*;
    assert_eq!(OutcomeClass::of_request(200, Some(Ok)), Ok);
    assert_eq!(OutcomeClass::of_request(200, Some(StreamBroken)), StreamBroken);
    assert_eq!(OutcomeClass::of_request(400, Some(Http4xx)), Http4xx);
    assert_eq!(OutcomeClass::of_request(429, None), Http429);
    assert_eq!(OutcomeClass::of_request(502, Some(Connect)), Http5xx);
    assert_eq!(OutcomeClass::of_request(499, None), ClientClosed);
}

#[test]
fn the_failure_rate_leaves_out_departed_clients() {
    let mut t = Tally::default();
    assert_eq!(t.failure_rate(), None);
    for c in [OutcomeClass::Ok, OutcomeClass::Http4xx, OutcomeClass::Http429, OutcomeClass::Http5xx] {
        t.add(c);
    }
    t.add(OutcomeClass::ClientClosed);
    assert_eq!(t.total(), 5);
    assert_eq!(t.provider_failures(), 1);
    assert_eq!(t.failure_rate(), Some(0.25));
}

#[test]
fn a_lost_hedge_is_no_verdict_and_old_tallies_still_read() {
    let o = OutcomeClass::Outpaced;
    assert!(o.blame() == Blame::Cancelled && !o.retryable() && !o.is_provider_failure() && !o.answered_client());
    let old: Tally = serde_json::from_str(r#"{"by_class":[3,1,0,0,0,0,0,0,0,0]}"#).unwrap();
    assert_eq!((old.of(OutcomeClass::Ok), old.of(OutcomeClass::Connect), old.total()), (3, 1, 4));
}

#[test]
fn judged_answered_and_unanswered_add_up() {
    let mut t = Tally::default();
    for c in
        [OutcomeClass::Ok, OutcomeClass::Http4xx, OutcomeClass::Http5xx, OutcomeClass::Http429, OutcomeClass::Outpaced]
    {
        t.add(c);
    }
    assert_eq!((t.total(), t.judged(), t.answered(), t.unanswered()), (5, 4, 2, 2));
}
