//! The kubernetes backend end to end, on the real `hatchery serve` and a fake cluster (no
//! cluster is reachable here): the testkit's API server speaks the wire protocol `kube`
//! uses, and its kubelet runs each pod's container as a real process. A create ends with
//! a Pod and its Secret, rendered locked down, whose `hatchery agent` registered itself;
//! a message reaches the agent at its pod's address (each fake pod has a loopback address
//! of its own) while it registered the sandbox URL, which discovery turns into the proxy's
//! route; a crashing agent fails its workspace with its exit code and last words; a
//! control plane killed with -9 adopts its live pods when it comes back and deletes the
//! ones that must not run; a delete leaves no pod, no secret and no process.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hatchery_testkit::fake_kube::FakeCluster;
use serde_json::{Value, json};

mod common;

const TOKEN: &str = "kubernetes-backend-admin";
const NAMESPACE: &str = "agents";

async fn cluster() -> FakeCluster {
    FakeCluster::start(HashMap::from([
        (
            "hatchery-agent:test".to_owned(),
            vec![
                env!("CARGO_BIN_EXE_hatchery").to_owned(),
                "agent".to_owned(),
            ],
        ),
        (
            "crasher:test".to_owned(),
            vec![
                "/bin/sh".to_owned(),
                "-c".to_owned(),
                "echo 'cannot find my model weights'; exit 3".to_owned(),
            ],
        ),
    ]))
    .await
}

/// `hatchery serve` on `port`: agents reach it there, as through a Service's stable URL.
async fn serve(cluster: &FakeCluster, data_dir: &std::path::Path, port: u16) -> common::Server {
    serve_with(cluster, data_dir, port, &[]).await
}

async fn serve_with(
    cluster: &FakeCluster,
    data_dir: &std::path::Path,
    port: u16,
    extra: &[(&'static str, &str)],
) -> common::Server {
    let mut env = vec![
        ("HATCHERY_DATA_DIR", data_dir.display().to_string()),
        ("HATCHERY_ADMIN_TOKEN", TOKEN.to_owned()),
        ("HATCHERY_PLATFORM_KEY", "platform-gateway-key".to_owned()),
        ("HATCHERY_BACKEND", "kubernetes".to_owned()),
        ("HATCHERY_KUBE_API", cluster.url.clone()),
        ("HATCHERY_KUBE_NAMESPACE", NAMESPACE.to_owned()),
        (
            "HATCHERY_KUBE_AGENT_URL",
            format!("http://127.0.0.1:{port}"),
        ),
        ("HATCHERY_AGENT_IMAGE", "hatchery-agent:test".to_owned()),
        (
            "HATCHERY_RUNTIME_IMAGES",
            json!({"crasher": "crasher:test", "unpullable": "nowhere.example/agent:1"}).to_string(),
        ),
        ("HATCHERY_HEARTBEAT_TTL", "3s".to_owned()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    common::Server::start_on(port, &env, TOKEN).await
}

/// A secret's value at `key`, decoded.
fn secret_value(secret: &Value, key: &str) -> String {
    use base64::Engine as _;
    let encoded = secret["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {secret}"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

fn named<'a>(objects: &'a [Value], name: &str) -> Option<&'a Value> {
    objects.iter().find(|o| o["metadata"]["name"] == name)
}

/// Wait (bounded) until neither pod nor secret of the workspace remains.
async fn until_gone(cluster: &FakeCluster, id: &str) {
    let name = format!("hatchery-{id}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while named(&cluster.objects("pods", NAMESPACE), &name).is_some()
        || named(&cluster.objects("secrets", NAMESPACE), &name).is_some()
    {
        assert!(Instant::now() < deadline, "{name} left behind");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_ends_with_a_locked_down_pod_online_and_a_delete_removes_it() {
    let cluster = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&cluster, &dir.path().join("data"), common::free_port()).await;
    let id = server
        .create(json!({"name": "coder", "runtime": "claude-code", "model": "moonshot/kimi-k2.6"}))
        .await;
    let row = server.until_status(&id, "online").await;
    assert_eq!(row["agent_card"]["provider"], "platform", "{row}");
    assert_eq!(row["agent_card"]["llm_billing_mode"], "platform");

    let name = format!("hatchery-{id}");
    let pods = cluster.objects("pods", NAMESPACE);
    let pod = named(&pods, &name).expect("a pod named after the workspace");
    assert_eq!(pod["metadata"]["labels"]["hatchery.dev/workspace"], id);
    assert_eq!(
        pod["metadata"]["annotations"]["hatchery.dev/runtime"],
        "claude-code"
    );
    let spec = &pod["spec"];
    assert_eq!(spec["restartPolicy"], "Never");
    assert_eq!(spec["automountServiceAccountToken"], false);
    assert_eq!(spec["hostNetwork"], false);
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        spec["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let container = &spec["containers"][0];
    assert_eq!(container["image"], "hatchery-agent:test");
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(
        container["securityContext"]["capabilities"]["drop"],
        json!(["ALL"])
    );
    assert_eq!(container["resources"]["limits"]["memory"], "2147483648");
    assert_eq!(container["resources"]["limits"]["cpu"], "1000m");
    let secrets = cluster.objects("secrets", NAMESPACE);
    let secret = named(&secrets, &name).expect("a secret beside the pod");
    let owner = &secret["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "Pod");
    assert_eq!(
        owner["uid"], pod["metadata"]["uid"],
        "collected with its pod"
    );
    let bootstrap = secret_value(secret, "env.HATCHERY_BOOTSTRAP_TOKEN");
    assert!(bootstrap.len() > 16, "{bootstrap}");
    let config = secret_value(secret, "file.0");
    assert!(config.contains("kimi-k2.6"), "config files too: {config}");
    let rendered = pod.to_string();
    assert!(
        !rendered.contains(&bootstrap) && !rendered.contains("platform-gateway-key"),
        "credentials only in the secret: {rendered}"
    );
    // Only the environment comes from the secret, variable by variable: the config files
    // are not environment.
    assert!(container["envFrom"].is_null(), "{container}");
    let from_secret: Vec<&str> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["valueFrom"]["secretKeyRef"]["key"].as_str())
        .collect();
    assert!(
        from_secret.contains(&"env.HATCHERY_BOOTSTRAP_TOKEN"),
        "{from_secret:?}"
    );
    assert!(
        from_secret.iter().all(|k| k.starts_with("env.")),
        "{from_secret:?}"
    );

    // Logs come from the cluster.
    let logs = server.logs(&id).await;
    assert!(logs.contains("registered"), "{logs}");

    server.delete(&id).await;
    until_gone(&cluster, &id).await;
    assert!(
        cluster
            .requests()
            .iter()
            .any(|r| r == &format!("DELETE /api/v1/namespaces/{NAMESPACE}/pods/{name}")),
        "{:?}",
        cluster.requests()
    );
}

/// Send workspace `id`'s agent `text` as the operator; asserted: its answer (200) echoes it.
async fn say(server: &common::Server, id: &str, text: &str) {
    let response = server
        .client
        .post(format!("{}/workspaces/{id}/a2a", server.base))
        .bearer_auth(TOKEN)
        .json(
            &json!({"method": "message/send", "params": {"message": {"role": "user",
            "parts": [{"kind": "text", "text": text}]}}}),
        )
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{answer}");
    let said = answer["result"]["parts"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(said.contains(text), "{answer}");
}

/// The control plane, not the caller, knows where a pod's agent is: its pod's address. The
/// agent registers the sandbox URL (a pod's private address would be refused by
/// registration's URL rules, and means nothing to peers), and discovery answers the proxy's
/// route for it.
#[tokio::test(flavor = "multi_thread")]
async fn a_message_reaches_the_agent_at_its_pod_address() {
    let cluster = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&cluster, &dir.path().join("data"), common::free_port()).await;
    let id = server
        .create(json!({"name": "podded", "runtime": "claude-code", "model": "moonshot/kimi-k2.6"}))
        .await;
    let row = server.until_status(&id, "online").await;
    assert_eq!(
        row["url"],
        format!("http://localhost/hatchery-sandbox/{id}"),
        "{row}"
    );
    let pods = cluster.objects("pods", NAMESPACE);
    let pod = named(&pods, &format!("hatchery-{id}")).unwrap();
    let pod_ip: std::net::Ipv4Addr = pod["status"]["podIP"].as_str().unwrap().parse().unwrap();
    assert!(
        pod_ip.is_loopback() && pod_ip != std::net::Ipv4Addr::LOCALHOST,
        "a loopback address of its own: {pod_ip}"
    );
    let env = pod["spec"]["containers"][0]["env"].as_array().unwrap();
    let value = |name: &str| {
        env.iter()
            .find(|v| v["name"] == name)
            .and_then(|v| v["value"].as_str())
            .unwrap_or_else(|| panic!("{name} in {env:?}"))
            .to_owned()
    };
    assert_eq!(value("HATCHERY_AGENT_LISTEN"), "0.0.0.0:8000");

    say(&server, &id, "hello, pod").await;

    // Peers are sent through the proxy, not to the sandbox URL.
    let (status, minted) = server
        .call(
            reqwest::Method::POST,
            &format!("/workspaces/{id}/tokens"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 201, "{minted}");
    let found: Value = server
        .client
        .get(format!("{}/registry/discover/{id}", server.base))
        .header("x-workspace-id", &id)
        .bearer_auth(minted["auth_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        found["url"],
        format!("{}/workspaces/{id}/a2a", server.base),
        "{found}"
    );

    server.delete(&id).await;
    until_gone(&cluster, &id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashing_pod_fails_its_workspace_with_the_exit_code_and_last_words() {
    let cluster = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&cluster, &dir.path().join("data"), common::free_port()).await;
    let id = server
        .create(json!({"name": "crasher", "runtime": "crasher"}))
        .await;
    let row = server.until_status(&id, "failed").await;
    let reason = row["failure_reason"].as_str().unwrap();
    assert!(reason.contains("exited with code 3"), "{reason}");
    assert!(reason.contains("cannot find my model weights"), "{reason}");
    server.delete(&id).await;
    until_gone(&cluster, &id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_that_cannot_start_fails_its_workspace_at_once_and_goes() {
    let cluster = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&cluster, &dir.path().join("data"), common::free_port()).await;
    let id = server
        .create(json!({"name": "unpullable", "runtime": "unpullable"}))
        .await;
    // Long before the provisioning deadline (10 minutes).
    let row = server.until_status(&id, "failed").await;
    let reason = row["failure_reason"].as_str().unwrap();
    assert!(reason.contains("ErrImagePull"), "{reason}");
    until_gone(&cluster, &id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn after_kill_9_live_pods_are_adopted_and_the_unwanted_deleted() {
    let cluster = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = common::free_port();
    let mut server = serve(&cluster, &data, port).await;
    let kept = server
        .create(json!({"name": "kept", "runtime": "claude-code", "model": "moonshot/kimi-k2.6"}))
        .await;
    let dropped = server
        .create(json!({"name": "dropped", "runtime": "claude-code", "model": "moonshot/kimi-k2.6"}))
        .await;
    server.until_status(&kept, "online").await;
    server.until_status(&dropped, "online").await;
    let uid_before = named(
        &cluster.objects("pods", NAMESPACE),
        &format!("hatchery-{kept}"),
    )
    .unwrap()["metadata"]["uid"]
        .clone();

    server.process.child.kill().unwrap();
    server.process.child.wait().unwrap();
    // While it was down, another replica deleted one of them.
    common::remove_while_down(&data, &dropped).await;

    let server = serve(&cluster, &data, port).await;
    until_gone(&cluster, &dropped).await;
    server.still_beating(&kept).await;
    let pods = cluster.objects("pods", NAMESPACE);
    let pod = named(&pods, &format!("hatchery-{kept}")).unwrap();
    assert_eq!(pod["metadata"]["uid"], uid_before, "the same pod, adopted");
    // Its address is known again: the adopting control plane reaches it.
    say(&server, &kept, "still there?").await;

    server.delete(&kept).await;
    until_gone(&cluster, &kept).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_while_a_pod_starts_leaves_one_agent_and_nothing_stuck() {
    let cluster = cluster().await;
    // The steps after which a pod exists: it outlives the crash.
    for point in ["agent-started", "job-done"] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let port = common::free_port();
        let lease = ("HATCHERY_JOB_LEASE", "1s");
        let mut server = serve_with(
            &cluster,
            &data,
            port,
            &[("HATCHERY_TEST_CRASH_AT", point), lease],
        )
        .await;
        let fragile =
            json!({"name": "fragile", "runtime": "claude-code", "model": "moonshot/kimi-k2.6"});
        server.crash_on("/workspaces", fragile).await;
        drop(server);

        let server = serve_with(&cluster, &data, port, &[lease]).await;
        let id = server.only_workspace().await;
        server.until_status(&id, "online").await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (_, row) = server
            .call(reqwest::Method::GET, &format!("/workspaces/{id}"), None)
            .await;
        assert_eq!(row["status"], "online", "{point}: {row}");
        let pods = cluster.objects("pods", NAMESPACE);
        assert_eq!(pods.len(), 1, "{point}: one pod: {pods:?}");
        assert_eq!(cluster.processes(), 1, "{point}: one agent process");
        server.delete(&id).await;
        until_gone(&cluster, &id).await;
    }
}

/// A cluster's agents outlive their control plane and a replica adopts every one it finds:
/// a second live replica on the same database would take the first's agents for its own,
/// so it is refused at its start, saying why; the first, restarted, is itself again.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_live_replica_of_the_same_cluster_is_refused_at_start() {
    let cluster = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let database = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("shared.db").display()
    );
    let shared = [("HATCHERY_DATABASE_URL", database.as_str())];
    let first = serve_with(
        &cluster,
        &dir.path().join("a"),
        common::free_port(),
        &shared,
    )
    .await;
    // Its lease is taken as soon as it serves; give it a beat.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut second = std::process::Command::new(env!("CARGO_BIN_EXE_hatchery"));
    second
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("HATCHERY_DATA_DIR", dir.path().join("b"))
        .env("HATCHERY_DATABASE_URL", &database)
        .env("HATCHERY_ADMIN_TOKEN", TOKEN)
        .env("HATCHERY_BACKEND", "kubernetes")
        .env("HATCHERY_KUBE_API", &cluster.url)
        .env("HATCHERY_KUBE_NAMESPACE", NAMESPACE)
        .env("HATCHERY_KUBE_AGENT_URL", "http://127.0.0.1:9")
        .env("HATCHERY_AGENT_IMAGE", "hatchery-agent:test");
    let (started, said) = common::run_bounded(&mut second, Duration::from_secs(30)).await;
    assert!(!started, "a second replica started: {said}");
    assert!(
        said.contains("another control-plane replica") && said.contains("kubernetes"),
        "{said}"
    );

    let port = common::free_port();
    drop(first);
    let again = serve_with(&cluster, &dir.path().join("a"), port, &shared).await;
    let (status, _) = again.call(reqwest::Method::GET, "/health", None).await;
    assert_eq!(
        status, 200,
        "the same replica, restarted, is not a second one"
    );
}
