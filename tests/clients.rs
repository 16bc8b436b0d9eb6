//! Client keys: with `[[clients]]`, only their keys get in, and their names (never keys) appear
//! in history; a gateway reachable beyond loopback must have them or say it runs open.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use llmgw::config::Config;

const KEY: &str = "client-key-aaaaaaaaaaaa";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_configured_keys_get_in_and_history_names_the_client() {
    let a = sim("a", instant()).await;
    let dir = tempfile::tempdir().unwrap();
    let digest: String =
        llmgw::config::key_digest(b"other-client-key-bbbbbb").iter().map(|b| format!("{b:02x}")).collect();
    let text = config_text(dir.path(), &[&a], "[cache]\n")
        + &format!(
            "\n[[clients]]\nname = \"web\"\nkey_env = \"LLMGW_TEST_WEB_KEY\"\n\n[[clients]]\nname = \"batch\"\nkey_sha256 = \"{digest}\"\n"
        );
    std::fs::write(dir.path().join("gw.toml"), &text).unwrap();
    let cfg = Config::parse(&dir.path().join("gw.toml"), &text, &|k| (k == "LLMGW_TEST_WEB_KEY").then(|| KEY.into()))
        .unwrap();
    llmgw::install_crypto();
    let gw = llmgw::server::start(cfg).await.unwrap();
    let c = client();
    let post = || c.post(url(&gw)).json(&body("hi", false));
    for (req, status) in [
        (post(), 401),
        (post().bearer_auth("wrong-key-cccccccccccc"), 401),
        (post().bearer_auth(KEY).header("x-request-id", "from-web"), 200),
        (post().header("x-api-key", "other-client-key-bbbbbb").header("x-request-id", "from-batch"), 200),
    ] {
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status);
        if status == 401 {
            let v: serde_json::Value = r.json().await.unwrap();
            assert_eq!(v["error"]["code"], "invalid_api_key");
        }
    }
    let stores = gw.gw.stores().unwrap().clone();
    assert!(wait_for(Duration::from_secs(5), || stores.writer.written() == 2).await, "the two let in");
    assert_eq!(stores.history.find("from-web").unwrap().client.as_deref(), Some("web"));
    assert_eq!(stores.history.find("from-batch").unwrap().client.as_deref(), Some("batch"));
    // Per client in /metrics too, by configured name only (never a key or a fingerprint).
    let token = std::fs::read_to_string(llmgw::server::admin::viewer_token_path(dir.path())).unwrap();
    let metrics = c
        .get(format!("http://{}/metrics", gw.admin_addr))
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "llmgw_client_requests_total{client=\"web\",outcome=\"ok\"} 1",
        "llmgw_client_requests_total{client=\"batch\",outcome=\"ok\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }
    // And on the console (the snapshot it renders): requests per configured name.
    let counts = || {
        let s = gw.snapshots.borrow().clone();
        s.clients.iter().map(|c| (c.name.clone(), c.requests, c.unanswered)).collect::<Vec<_>>()
    };
    let want = vec![("web".to_string(), 1, 0), ("batch".to_string(), 1, 0)];
    assert!(wait_for(Duration::from_secs(5), || counts() == want).await, "{:?}", counts());
    gw.stop().await.unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("install.salt")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the fingerprint salt is this user's alone");
    }
}

#[test]
fn a_gateway_open_beyond_loopback_must_say_so() {
    let text = "[server]\nlisten = \"0.0.0.0:8080\"\n\n[[providers]]\nname = \"a\"\nbase_url = \"http://127.0.0.1:9/v1\"\n\n[[routes]]\nmodel = \"chat\"\ntargets = [{ provider = \"a\", model = \"m\" }]\n";
    let e = Config::parse(Path::new("gw.toml"), text, &|_| None).unwrap_err().to_string();
    assert!(e.contains("gw.toml:2") && e.contains("[[clients]]") && e.contains("allow_anonymous"), "{e}");
    let open = text.replace("listen = \"0.0.0.0:8080\"", "listen = \"0.0.0.0:8080\"\nallow_anonymous = true");
    assert!(Config::parse(Path::new("gw.toml"), &open, &|_| None).is_ok());
    let keyed = text.to_string() + "\n[[clients]]\nname = \"web\"\nkey_env = \"K\"\n";
    assert!(Config::parse(Path::new("gw.toml"), &keyed, &|_| Some(KEY.into())).is_ok());
    let short = Config::parse(Path::new("gw.toml"), &keyed, &|_| Some("short".into())).unwrap_err().to_string();
    assert!(short.contains("at least 16"), "{short}");
}
