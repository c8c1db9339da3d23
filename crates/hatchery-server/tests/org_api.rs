//! Org import against the real server on SQLite and Postgres: the plan (a dry run changes
//! nothing), the best-effort import where a node that cannot be created is `failed` with
//! its reason and its subtree with "parent failed" (never left `provisioning`), strict
//! mode, required environment variables, and bad templates.

mod common;

use common::{Db, Env, Running, spawn, write_manifest};
use serde_json::{Value, json};

hatchery_testkit::both_databases!(
    a_dry_run_plans_every_node_and_changes_nothing,
    bad_templates_are_refused_with_the_path_of_the_problem,
    a_node_that_cannot_be_derived_fails_with_its_subtree_and_the_rest_provisions,
    strict_imports_all_or_nothing,
    required_env_is_checked_unless_forced,
    a_reimport_is_refused_unless_it_replaces_or_duplicates,
    templates_of_the_server_directory_are_listed_and_imported_by_name,
    a_directory_template_brings_its_files_and_none_from_outside,
    nodes_based_on_workspace_templates_inherit_and_cycles_are_refused,
    a_files_dir_that_loops_or_blocks_is_refused_and_the_server_keeps_answering,
);

/// `x-1` is matched by both `a` and `b`: ambiguous for `rt`; `p/…` is the platform's.
const OVERLAPPING: &str = "schema_version: 1
providers:
  - {name: a, display_name: A, protocol: openai, auth_mode: k, auth_env: [A_KEY], model_prefix_match: '^x-'}
  - {name: b, display_name: B, protocol: openai, auth_mode: k, auth_env: [B_KEY], model_prefix_match: '^x-1'}
  - {name: platform, display_name: P, protocol: openai, auth_mode: k, auth_env: [P_KEY], model_prefix_match: '^p/'}
runtimes:
  rt: {providers: [{name: a}, {name: b}, {name: platform}]}
";

/// A team on `rt` whose "Analyst" asks for an ambiguous model.
const SEED: &str = "name: seed
defaults:
  runtime: rt
  model: p/large
workspaces:
  - name: PM
    children:
      - name: Analyst
        model: x-1
        children:
          - name: Junior Analyst
      - name: Engineer
";

async fn spawn_overlapping(env: &Env) -> Running {
    let path = write_manifest(env.dir.path(), "providers.yaml", OVERLAPPING);
    let mut config = env.config();
    config.providers = Some(path);
    spawn(config).await
}

fn by_name<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {list}"))
}

const TEAM: &str = "name: research\n\
    required_env: [SEARCH_API_KEY]\n\
    defaults:\n  runtime: claude-code\n  model: moonshot/kimi-k2.6\n\
    workspaces:\n\
    \x20 - name: PM\n    children:\n\
    \x20     - name: Researcher\n\
    \x20     - name: Critic\n        model: anthropic:claude-opus-4-5\n";

async fn a_dry_run_plans_every_node_and_changes_nothing(db: Db) {
    let env = Env::new(db).await;
    let server = env.spawn().await;
    let before = server.counts().await;
    let (status, plan) = server
        .post("/org/import?dry_run=true", &json!({"template": TEAM}))
        .await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["org"], "research");
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["ok"], false, "one node cannot be created: {plan}");
    let nodes = plan["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    assert_eq!(nodes[0]["provider"], "platform");
    assert_eq!(nodes[0]["provider_source"], "derived:exact_model");
    assert_eq!(nodes[1]["parent"], "workspaces[0]");
    let critic = &nodes[2]["problems"][0];
    assert!(
        critic.as_str().unwrap().starts_with("byok_key_missing"),
        "{critic}"
    );
    assert_eq!(plan["missing_env"], json!(["SEARCH_API_KEY"]));
    assert_eq!(server.counts().await, before, "a dry run creates nothing");

    // The same template as a JSON object plans the same.
    let object = json!({"name": "tiny", "defaults": {"runtime": "claude-code", "model": "moonshot/kimi-k2.6"},
                        "workspaces": [{"name": "solo"}]});
    let (status, plan) = server
        .post("/org/import?dry_run=true", &json!({"template": object}))
        .await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["ok"], true, "{plan}");

    assert_eq!(server.counts().await, before);
}

async fn bad_templates_are_refused_with_the_path_of_the_problem(db: Db) {
    let env = Env::new(db).await;
    let server = env.spawn().await;
    let before = server.counts().await;
    let typo = TEAM.replace("        model: anthropic", "        modle: anthropic");
    let (status, body) = server
        .post("/org/import?dry_run=true", &json!({"template": typo}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid org template");
    assert_eq!(body["code"], "invalid_org_template");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("workspaces[0].children[1]") && detail.contains("did you mean `model`?"),
        "{detail}"
    );
    let (status, body) = server
        .post(
            "/org/import?dry_run=true",
            &json!({"template": "name: a\nname: b\n"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_org_template")),
        "{body}"
    );
    let (status, body) = server.post("/org/import?dry_run=true", &json!({})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("provide 'dir' or 'template'"))
    );
    let (status, _) = server
        .post_as("/org/import?dry_run=true", &json!({"template": TEAM}), None)
        .await;
    assert_eq!(status, 401, "admin only");
    assert_eq!(server.counts().await, before);
}

async fn a_node_that_cannot_be_derived_fails_with_its_subtree_and_the_rest_provisions(db: Db) {
    let env = Env::new(db).await;
    let server = spawn_overlapping(&env).await;
    let (status, body) = server.post("/org/import", &json!({"template": SEED})).await;
    assert_eq!(status, 207, "some nodes failed: {body}");
    assert_eq!(body["org"], "seed");
    assert_eq!(body["count"], 4);
    let answered = &body["workspaces"];
    assert_eq!(by_name(answered, "Analyst")["status"], "failed");
    assert!(
        by_name(answered, "Analyst")["error"]
            .as_str()
            .unwrap()
            .contains("provider_derivation_failed"),
        "{body}"
    );
    assert_eq!(
        by_name(answered, "Junior Analyst")["error"],
        "parent failed"
    );
    for fine in ["PM", "Engineer"] {
        assert_eq!(by_name(answered, fine)["status"], "provisioning", "{body}");
        assert!(by_name(answered, fine).get("error").is_none());
    }

    // What is stored says the same; nothing failed is left provisioning, the tree holds.
    let (_, list) = server.get("/workspaces").await;
    let analyst = by_name(&list, "Analyst");
    assert_eq!(analyst["status"], "failed");
    assert!(
        analyst["failure_reason"]
            .as_str()
            .unwrap()
            .contains("provider_derivation_failed")
    );
    let junior = by_name(&list, "Junior Analyst");
    assert_eq!(junior["status"], "failed");
    assert_eq!(junior["failure_reason"], "parent failed");
    assert_eq!(junior["parent_id"], analyst["id"]);
    let pm = by_name(&list, "PM");
    assert_eq!(pm["provider"], "platform");
    assert_eq!(by_name(&list, "Engineer")["parent_id"], pm["id"]);
    // Jobs only for what provisions.
    let jobs = server.store.job_list().await.unwrap();
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    let (_, config) = server
        .get(&format!(
            "/workspaces/{}/config",
            pm["id"].as_str().unwrap()
        ))
        .await;
    assert!(config.to_string().contains("platform"), "{config}");
}

async fn strict_imports_all_or_nothing(db: Db) {
    let env = Env::new(db).await;
    let server = spawn_overlapping(&env).await;
    let before = server.counts().await;
    let (status, body) = server
        .post("/org/import?strict=true", &json!({"template": SEED}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "org_import_refused");
    let analyst = by_name(&body["plan"]["nodes"], "Analyst");
    assert!(
        !analyst["problems"].as_array().unwrap().is_empty(),
        "{body}"
    );
    assert_eq!(server.counts().await, before, "nothing created");

    // A field only the build checks (workspace_access) refuses a strict import too.
    let bad_access = SEED.replace("        model: x-1\n", "").replace(
        "      - name: Engineer\n",
        "      - name: Engineer\n        workspace_access: everything\n",
    );
    let (status, body) = server
        .post("/org/import?strict=true", &json!({"template": bad_access}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["plan"]["failed"].to_string().contains("Engineer"),
        "{body}"
    );
    assert_eq!(server.counts().await, before, "nothing created");

    let clean = SEED.replace("        model: x-1\n", "");
    let (status, body) = server
        .post("/org/import?strict=true", &json!({"template": clean}))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["count"], 4);
    let (_, list) = server.get("/workspaces").await;
    assert_eq!(list.as_array().unwrap().len(), 4);
}

async fn required_env_is_checked_unless_forced(db: Db) {
    let env = Env::new(db).await;
    let server = env.spawn().await;
    let template = "name: needs\nrequired_env: [SEARCH_API_KEY]\n\
        defaults:\n  runtime: claude-code\n  model: moonshot/kimi-k2.6\n\
        workspaces:\n  - name: solo\n";
    let before = server.counts().await;
    let (status, body) = server
        .post("/org/import", &json!({"template": template}))
        .await;
    assert_eq!(status, 412, "{body}");
    assert_eq!(body["error"], "missing required environment variables");
    assert_eq!(body["missing_env"], json!(["SEARCH_API_KEY"]));
    assert_eq!(body["template"], "needs");
    assert_eq!(server.counts().await, before);
    let (status, body) = server
        .post("/org/import", &json!({"template": template, "force": true}))
        .await;
    assert_eq!(status, 201, "{body}");
}

const SMALL: &str = "name: small
defaults:
  runtime: claude-code
  model: moonshot/kimi-k2.6
workspaces:
  - name: Lead
    children:
      - name: Helper
";

async fn a_reimport_is_refused_unless_it_replaces_or_duplicates(db: Db) {
    let env = Env::new(db).await;
    let server = env.spawn().await;
    let (status, first) = server
        .post("/org/import", &json!({"template": SMALL}))
        .await;
    assert_eq!(status, 201, "{first}");
    let first_root = by_name(&first["workspaces"], "Lead")["id"].clone();
    let before = server.counts().await;

    let (status, body) = server
        .post("/org/import", &json!({"template": SMALL}))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "org_already_imported");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains(first_root.as_str().unwrap()),
        "names the existing root: {body}"
    );
    assert_eq!(server.counts().await, before, "nothing written");

    let (status, body) = server
        .post(
            "/org/import?replace=true&duplicate=true",
            &json!({"template": SMALL}),
        )
        .await;
    assert_eq!(status, 400, "{body}");

    let (status, body) = server
        .post("/org/import?duplicate=true", &json!({"template": SMALL}))
        .await;
    assert_eq!(status, 201, "{body}");
    let (_, list) = server.get("/workspaces").await;
    assert_eq!(list.as_array().unwrap().len(), 4, "two copies: {list}");

    // Replace removes every live copy, in the same transaction as the new tree.
    let (status, body) = server
        .post("/org/import?replace=true", &json!({"template": SMALL}))
        .await;
    assert_eq!(status, 201, "{body}");
    let new_root = by_name(&body["workspaces"], "Lead")["id"].clone();
    let (_, list) = server.get("/workspaces").await;
    let live: Vec<&Value> = list.as_array().unwrap().iter().collect();
    assert_eq!(live.len(), 2, "{list}");
    assert!(live.iter().any(|w| w["id"] == new_root));
    let (_, old) = server
        .get(&format!("/workspaces/{}", first_root.as_str().unwrap()))
        .await;
    assert_eq!(old["status"], "removed", "{old}");
    // And a plain re-import now finds the new tree.
    let (status, _) = server
        .post("/org/import", &json!({"template": SMALL}))
        .await;
    assert_eq!(status, 409);
}

async fn templates_of_the_server_directory_are_listed_and_imported_by_name(db: Db) {
    let env = Env::new(db).await;
    let templates = env.dir.path().join("templates");
    std::fs::create_dir_all(templates.join("org/nested")).unwrap();
    std::fs::write(templates.join("org/small.yaml"), SMALL).unwrap();
    std::fs::write(
        templates.join("org/nested/org.yaml"),
        SMALL.replace("name: small", "name: nested\nrequired_env: [NESTED_KEY]"),
    )
    .unwrap();
    std::fs::write(templates.join("org/broken.yaml"), "name: [unclosed\n").unwrap();
    std::fs::write(env.dir.path().join("secret.yaml"), SMALL).unwrap();
    std::os::unix::fs::symlink(
        env.dir.path().join("secret.yaml"),
        templates.join("org/escape.yaml"),
    )
    .unwrap();
    std::fs::create_dir_all(templates.join("coder/skills/review")).unwrap();
    std::fs::write(
        templates.join("coder/config.yaml"),
        "name: Coder\ndescription: Writes code.\ntier: 2\nruntime: claude-code\n\
         model: moonshot/kimi-k2.6\nrequired_env: [GITHUB_TOKEN]\n",
    )
    .unwrap();
    std::fs::create_dir_all(templates.join("broken")).unwrap();
    std::fs::write(templates.join("broken/config.yaml"), "a: 1\na: 2\n").unwrap();
    let mut config = env.config();
    config.templates_dir = Some(templates);
    let server = common::spawn(config).await;

    let (status, workspace_templates) = server.get("/templates").await;
    assert_eq!(status, 200, "{workspace_templates}");
    let list = workspace_templates.as_array().unwrap();
    assert_eq!(
        list.len(),
        2,
        "org/ is not a workspace template: {workspace_templates}"
    );
    let coder = &list[1];
    assert_eq!(coder["id"], "coder");
    assert_eq!(coder["name"], "Coder");
    assert_eq!(coder["runtime"], "claude-code");
    assert_eq!(coder["required_env"], json!(["GITHUB_TOKEN"]));
    assert_eq!(coder["skills"], json!(["review"]));
    assert_eq!(coder["skill_count"], 1);
    assert!(
        list[0]["error"].is_string(),
        "duplicate keys refused: {workspace_templates}"
    );

    let (status, listed) = server.get("/org/templates").await;
    assert_eq!(status, 200, "{listed}");
    let small = by_dir(&listed, "small");
    assert_eq!(small["name"], "small");
    assert_eq!(small["workspaces"], 2);
    assert_eq!(small["required_env_satisfied"], true);
    let nested = by_dir(&listed, "nested");
    assert_eq!(nested["required_env"], json!(["NESTED_KEY"]));
    assert_eq!(nested["required_env_satisfied"], false);
    assert!(by_dir(&listed, "broken")["error"].is_string(), "{listed}");
    assert!(
        by_dir(&listed, "escape")["error"].is_string(),
        "a symlink out is not read: {listed}"
    );

    let before = server.counts().await;
    let (status, plan) = server
        .post("/org/import?dry_run=true", &json!({"dir": "small"}))
        .await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["org"], "small");
    for (dir, expected) in [
        ("../secret", 400),
        ("escape", 404),
        ("missing", 404),
        ("", 400),
    ] {
        let (status, body) = server
            .post("/org/import?dry_run=true", &json!({"dir": dir}))
            .await;
        assert_eq!(status, expected, "{dir}: {body}");
    }
    assert_eq!(server.counts().await, before);
    let (status, body) = server.post("/org/import", &json!({"dir": "small"})).await;
    assert_eq!(status, 201, "{body}");
}

fn by_dir<'a>(list: &'a Value, dir: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|t| t["dir"] == dir)
        .unwrap_or_else(|| panic!("{dir} in {list}"))
}

async fn a_directory_template_brings_its_files_and_none_from_outside(db: Db) {
    let env = Env::new(db).await;
    let templates = env.dir.path().join("templates");
    let dir = templates.join("org/withfiles");
    for sub in ["prompts", "skills/sub", "elsewhere"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    std::fs::create_dir_all(env.dir.path().join("outside")).unwrap();
    std::fs::write(env.dir.path().join("outside/secret.txt"), "do not read").unwrap();
    std::fs::write(dir.join("prompts/start.md"), "Start here.").unwrap();
    std::fs::write(dir.join("skills/a.md"), "skill a").unwrap();
    std::fs::write(dir.join("skills/sub/b.md"), "skill b").unwrap();
    std::os::unix::fs::symlink(env.dir.path().join("outside"), dir.join("linked")).unwrap();
    std::fs::write(
        dir.join("org.yaml"),
        "name: withfiles
defaults:
  runtime: claude-code
  model: moonshot/kimi-k2.6
  initial_prompt_file: prompts/start.md
workspaces:
  - name: Lead
    system_prompt: You lead.
    files_dir: skills
    children:
      - name: Sneaky
        idle_prompt_file: ../../../outside/secret.txt
      - name: Linked
        files_dir: linked
",
    )
    .unwrap();
    let mut config = env.config();
    config.templates_dir = Some(templates);
    let server = common::spawn(config).await;

    let (status, body) = server
        .post("/org/import", &json!({"dir": "withfiles"}))
        .await;
    assert_eq!(status, 207, "{body}");
    let answered = &body["workspaces"];
    let sneaky = by_name(answered, "Sneaky")["error"].as_str().unwrap();
    assert!(
        sneaky.contains("relative path inside the template"),
        "{sneaky}"
    );
    let linked = by_name(answered, "Linked")["error"].as_str().unwrap();
    assert!(linked.contains("outside the template"), "{linked}");
    let lead = by_name(answered, "Lead")["id"].as_str().unwrap();
    let (_, config) = server.get(&format!("/workspaces/{lead}/config")).await;
    let files = &config["files"];
    assert_eq!(files["system-prompt.md"], "You lead.");
    assert_eq!(
        files["initial-prompt.md"], "Start here.",
        "from the defaults' file"
    );
    assert_eq!(files["files/a.md"], "skill a");
    assert_eq!(files["files/sub/b.md"], "skill b");
    assert!(!config.to_string().contains("do not read"));

    // An inline template has no directory to read files from.
    let inline = "name: inline\ndefaults:\n  runtime: claude-code\n  model: moonshot/kimi-k2.6\n\
                  workspaces:\n  - name: a\n    initial_prompt_file: start.md\n";
    let (status, plan) = server
        .post("/org/import?dry_run=true", &json!({"template": inline}))
        .await;
    assert_eq!(status, 200);
    let problem = plan["nodes"][0]["problems"][0].as_str().unwrap();
    assert!(problem.contains("needs a template directory"), "{problem}");

    // Unless its files come with it (what `hatchery org import DIR` sends), each a plain
    // relative path.
    let (status, plan) = server
        .post(
            "/org/import?dry_run=true",
            &json!({"template": inline, "files": {"start.md": "Go."}}),
        )
        .await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["ok"], true, "{plan}");
    for escape in ["../start.md", "/etc/passwd", "a/../../b", ""] {
        let (status, body) = server
            .post(
                "/org/import?dry_run=true",
                &json!({"template": inline, "files": {escape: "x"}}),
            )
            .await;
        assert_eq!(status, 400, "{escape:?}: {body}");
        assert_eq!(body["code"], "invalid_template_files");
        assert_eq!(body["field"], "files");
    }
    let (status, body) = server
        .post(
            "/org/import",
            &json!({"dir": "withfiles", "files": {"start.md": "Go."}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
}

/// A `files_dir` with a symlink loop, a pipe or a deep tree: each node says why, the
/// import ends, and the server keeps answering (it once walked a loop for ever, and opened
/// a pipe on a runtime worker).
async fn a_files_dir_that_loops_or_blocks_is_refused_and_the_server_keeps_answering(db: Db) {
    let env = Env::new(db).await;
    let templates = env.dir.path().join("templates");
    let dir = templates.join("org/looped");
    for sub in ["fine/again", "spin", "skills/sub", "piped"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    std::fs::write(dir.join("fine/ok.md"), "fine").unwrap();
    std::fs::write(dir.join("fine/again/two.md"), "two").unwrap();
    // A second way to a directory or a file is no loop: each is read once, by its name.
    std::os::unix::fs::symlink("again", dir.join("fine/also")).unwrap();
    std::os::unix::fs::symlink("ok.md", dir.join("fine/same.md")).unwrap();
    std::os::unix::fs::symlink(".", dir.join("spin/self")).unwrap();
    std::fs::write(dir.join("skills/a.md"), "skill a").unwrap();
    std::os::unix::fs::symlink("..", dir.join("skills/sub/back")).unwrap();
    let fifo = dir.join("piped/pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo {}", fifo.display());
    let mut deep = dir.join("deep");
    for _ in 0..17 {
        deep = deep.join("d");
    }
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("bottom.md"), "bottom").unwrap();
    std::fs::write(
        dir.join("org.yaml"),
        "name: looped
defaults:
  runtime: claude-code
  model: moonshot/kimi-k2.6
workspaces:
  - name: Lead
    files_dir: fine
    children:
      - name: Spinner
        files_dir: spin
      - name: Back
        files_dir: skills
      - name: Piped
        files_dir: piped
      - name: Deep
        files_dir: deep
",
    )
    .unwrap();
    let mut config = env.config();
    config.templates_dir = Some(templates);
    let server = common::spawn(config).await;
    let within = std::time::Duration::from_secs(30);

    let (status, body) = tokio::time::timeout(
        within,
        server.post("/org/import", &json!({"dir": "looped"})),
    )
    .await
    .expect("the import ends");
    assert_eq!(status, 207, "{body}");
    let answered = &body["workspaces"];
    for (name, expected) in [
        ("Spinner", "\"spin/self\" leads back to \"spin\""),
        ("Back", "\"skills/sub/back\" leads back to \"skills\""),
        ("Piped", "\"piped/pipe\" is not a regular file"),
        ("Deep", "more than 16 directories deep"),
    ] {
        let error = by_name(answered, name)["error"].as_str().unwrap();
        assert!(error.contains(expected), "{name}: {error}");
        assert!(!error.contains(env.dir.path().to_str().unwrap()), "{error}");
    }
    assert!(
        by_name(answered, "Spinner")["error"]
            .as_str()
            .unwrap()
            .contains("symlink loop")
    );
    let lead = by_name(answered, "Lead");
    assert_eq!(lead["error"], Value::Null, "{body}");
    let lead = lead["id"].as_str().unwrap();
    let (status, config) =
        tokio::time::timeout(within, server.get(&format!("/workspaces/{lead}/config")))
            .await
            .expect("the server keeps answering");
    assert_eq!(status, 200, "{config}");
    assert_eq!(config["files"]["files/ok.md"], "fine", "{config}");
    assert_eq!(config["files"]["files/again/two.md"], "two", "{config}");
    let mut names: Vec<&String> = config["files"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("files/"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["files/again/two.md", "files/ok.md"],
        "each file once"
    );
}

async fn nodes_based_on_workspace_templates_inherit_and_cycles_are_refused(db: Db) {
    let env = Env::new(db).await;
    let templates = env.dir.path().join("templates");
    for (name, config) in [
        (
            "base",
            "runtime: claude-code\nmodel: moonshot/kimi-k2.6\ntier: 3\ndescription: Base.\n",
        ),
        ("derived", "template: base\ndescription: Derived.\n"),
        ("loop-a", "template: loop-b\n"),
        ("loop-b", "template: loop-a\n"),
    ] {
        std::fs::create_dir_all(templates.join(name)).unwrap();
        std::fs::write(templates.join(name).join("config.yaml"), config).unwrap();
    }
    let mut config = env.config();
    config.templates_dir = Some(templates);
    let server = common::spawn(config).await;
    let template = "name: based\nworkspaces:\n  - name: x\n    template: derived\n\
                    \x20 - name: y\n    template: loop-a\n  - name: z\n    template: missing\n";
    let (status, plan) = server
        .post("/org/import?dry_run=true", &json!({"template": template}))
        .await;
    assert_eq!(status, 200, "{plan}");
    let x = by_name(&plan["nodes"], "x");
    assert_eq!(
        x["runtime"], "claude-code",
        "from the template it is based on: {plan}"
    );
    assert_eq!(x["tier"], 3);
    assert_eq!(x["provider"], "platform");
    assert_eq!(x["problems"], json!([]));
    let y = by_name(&plan["nodes"], "y")["problems"].to_string();
    assert!(y.contains("cycle") && y.contains("loop-a"), "{y}");
    let z = by_name(&plan["nodes"], "z")["problems"].to_string();
    assert!(z.contains("not found"), "{z}");

    // Imported: the role comes from the nearest template.
    let only_x = "name: based-x\nworkspaces:\n  - name: x\n    template: derived\n";
    let (status, body) = server
        .post("/org/import", &json!({"template": only_x}))
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["workspaces"][0]["id"].as_str().unwrap();
    let (_, row) = server.get(&format!("/workspaces/{id}")).await;
    assert_eq!(row["role"], "Derived.");
    assert_eq!(row["tier"], 3);
}
