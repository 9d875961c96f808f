//! End to end, with real processes: a learner and two actors on the embedded model over gRPC on
//! loopback (port 0), a sled store on disk. The whole run through `casrap run`; an actor killed and
//! restarted; the learner killed and restarted on the same address and folder.

#![allow(clippy::unwrap_used)] // test helpers, like the tests, stop at the first failure

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use casrap_deploy::procs::{self, ActorSpec, Proc};
use casrap_deploy::run_records;
use casrap_proto::{v1, LearnerClient};

/// Small, fast settings; `extra` is appended (YAML).
fn config(dir: &Path, episodes: u64, extra: &str) -> PathBuf {
    let path = dir.join("run.yaml");
    let text = format!(
        "name: e2e
actions:
  - {{kind: none}}
  - {{kind: heads, intensity: 0.15}}
  - {{kind: ffn, intensity: 0.25}}
  - {{kind: layers, intensity: 0.125}}
  - {{kind: kv_window, sinks: 4, window: 16}}
learner: {{dir: {learner}}}
actors: {{count: 2, episodes: {episodes}, new_tokens: 8, pairs: 1, threads: 1}}
{extra}",
        learner = dir.join("learner").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn status(url: &str) -> Option<v1::LearnerStatus> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut c = LearnerClient::connect(url.to_string()).await.ok()?;
        c.status(v1::StatusRequest::default()).await.ok().map(tonic::Response::into_inner)
    })
}

fn durable(url: &str, actor: &str) -> u64 {
    status(url)
        .and_then(|s| s.actors.into_iter().find(|a| a.actor_id == actor))
        .map_or(0, |a| a.durable_seq)
}

/// Polls `f` every 100 ms until it holds; panics with `what` after `limit`.
fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn actor(dir: &Path, url: &str, cfg: &Path, id: &str, episodes: u64) -> Proc {
    let spec = ActorSpec {
        id: id.into(),
        learner: url.into(),
        config: cfg.into(),
        episodes,
        device: "cpu".into(),
        threads: 1,
        log: dir.join(format!("{id}.log")),
    };
    procs::spawn_actor(&procs::locate("casrap-actor").unwrap(), &spec).unwrap()
}

fn learner(dir: &Path, cfg: &Path, listen: &str) -> (Proc, String) {
    let (p, addr) = procs::spawn_learner(
        &procs::locate("casrap-learner").unwrap(),
        cfg,
        listen,
        &dir.join("learner"),
        &dir.join("learner.log"),
        Duration::from_secs(60),
    )
    .unwrap();
    (p, format!("http://{addr}"))
}

fn finish(p: &mut Proc) -> serde_json::Value {
    let status =
        p.wait_timeout(Duration::from_secs(300)).unwrap().expect("actor still running after 300 s");
    assert!(status.success(), "{} failed ({status}):\n{}", p.name, p.log_tail(30));
    // The actor's last stdout line is its summary.
    let tail = p.log_tail(1);
    serde_json::from_str(&tail).unwrap_or_else(|e| panic!("{}: summary line `{tail}`: {e}", p.name))
}

#[test]
fn casrap_run_stores_every_episode_once_advances_policies_and_learns_what_it_saw() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(
        tmp.path(),
        60,
        // Quality-weighted, so that what the actions earn depends mostly on deterministic
        // perplexity changes rather than on timing noise from two actors sharing two cores.
        "reward: {alpha: 0.1, beta: 2.0}\n\
         trainer: {batch: 32, lr: 0.003, min_replay: 8, samples_per_insert: 512, spi_tolerance: 4096, publish_every: 5, target_update: 50, checkpoint_every: 0, epsilon: {start: 1.0, end: 0.5, decay_updates: 200}, seed: 7}",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_casrap"))
        .args(["run", cfg.to_str().unwrap(), "--out"])
        .arg(tmp.path().join("runs"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "casrap run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = tmp.path().join("runs/train-1");
    assert!(stdout.contains(&format!("outputs: {}/", run.display())), "{stdout}");

    // Every episode exactly once in the store and in episodes.jsonl, with the same records.
    let stored = run_records::from_store(&run.join("learner"), 1_000_000).unwrap();
    let exported = run_records::read_jsonl(&run.join("episodes.jsonl")).unwrap();
    let want: BTreeMap<String, u64> =
        [("actor-0".to_string(), 30), ("actor-1".to_string(), 30)].into();
    run_records::check_complete(&stored, &want).unwrap();
    assert_eq!(
        stored.iter().map(|e| &e.json).collect::<Vec<_>>(),
        exported.iter().map(|e| &e.json).collect::<Vec<_>>()
    );
    for e in &exported {
        for field in [
            "prompt_tokens",
            "prompt_perplexity",
            "complexity",
            "telemetry",
            "dense",
            "pruned",
            "top1_agreement",
            "hardware",
            "epsilon",
            "measurement",
        ] {
            assert!(e.json.get(field).is_some(), "{} seq {}: no `{field}`", e.actor_id, e.seq);
        }
        assert_eq!(e.state.len(), casrap_common::state::FEATURES.len());
        assert!(e.state.iter().all(|x| (0.0..=1.0).contains(x)), "{:?}", e.state);
        assert!(e.reward.is_finite());
    }
    // Both actors acted on policies the learner published while they ran.
    for a in ["actor-0", "actor-1"] {
        let newest =
            exported.iter().filter(|e| e.actor_id == a).map(|e| e.policy_version).max().unwrap();
        assert!(newest > 1, "{a} never received a trained policy (newest version {newest})");
    }
    // `casrap export` recovers the same records from the run folder's store.
    let recovered = tmp.path().join("recovered.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_casrap"))
        .arg("export")
        .arg(&run)
        .arg("--out")
        .arg(&recovered)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("60 episodes from") && !text.contains("not contiguous"), "{text}");
    assert_eq!(
        std::fs::read(&recovered).unwrap(),
        std::fs::read(run.join("episodes.jsonl")).unwrap()
    );
    let nothing = Command::new(env!("CARGO_BIN_EXE_casrap"))
        .arg("export")
        .arg(tmp.path().join("no-such-run"))
        .output()
        .unwrap();
    assert!(
        !nothing.status.success()
            && String::from_utf8_lossy(&nothing.stderr).contains("no replay store here")
    );
    // The run's summary is reproduced exactly from its records.
    let summary = std::fs::read(run.join("summary.json")).unwrap();
    let again =
        Command::new(env!("CARGO_BIN_EXE_casrap")).arg("report").arg(&run).output().unwrap();
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(
        std::fs::read(run.join("summary.json")).unwrap(),
        summary,
        "casrap report changed summary.json"
    );
    assert!(run.join("plots/training_loss.png").is_file());
    // The learned Q-values rank the actions as the observed rewards do, wherever the records tell
    // two actions apart (their 95% intervals are disjoint). Near ties are left out: ranking
    // actions whose rewards differ by less than their noise made this test fail by chance.
    let fit = run_records::policy_fit(&run).unwrap();
    eprintln!("{}", fit.table());
    assert!(fit.rows.len() >= 4, "too few actions observed:\n{}", fit.table());
    assert!(fit.order.separated >= 3, "too few actions told apart:\n{}", fit.table());
    assert!(
        fit.order.misordered.is_empty(),
        "Q-values do not order the actions as their rewards:\n{}",
        fit.table()
    );

    // Test mode on held-out prompts, from the run's folder (newest checkpoint, its config).
    let out = Command::new(env!("CARGO_BIN_EXE_casrap"))
        .args(["test", "--prompts", "6", "--threads", "2", "--checkpoint"])
        .arg(&run)
        .arg("--out")
        .arg(tmp.path().join("runs"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "casrap test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let test = tmp.path().join("runs/test-1");
    let results: Vec<serde_json::Value> = std::fs::read_to_string(test.join("results.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), 6);
    // Measured as in training: one process per training actor (2), each on its shard, merged in
    // prompt order.
    let indices: Vec<u64> = results.iter().map(|r| r["index"].as_u64().unwrap()).collect();
    assert_eq!(indices, (0..6).collect::<Vec<u64>>());
    for k in 0..2 {
        let log = std::fs::read_to_string(test.join(format!("logs/tester-{k}.log"))).unwrap();
        assert_eq!(log.matches("measured").count(), 3, "tester-{k}:\n{log}");
    }
    assert!(test.join("policy.bin").is_file() && !test.join("results-0.jsonl").exists());
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(test.join("summary.json")).unwrap()).unwrap();
    let rows = summary["rows"].as_array().unwrap();
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["policy"] == name)
            .unwrap_or_else(|| panic!("no row `{name}`:\n{stdout}"))
    };
    // The policy's row takes, per prompt, the greedy action recorded for it.
    let greedy_mean = results
        .iter()
        .map(|r| r["results"][r["greedy"].as_u64().unwrap() as usize]["reward"].as_f64().unwrap())
        .sum::<f64>()
        / 6.0;
    assert!((row("policy (greedy)")["mean_reward"].as_f64().unwrap() - greedy_mean).abs() < 1e-12);
    // The hindsight oracle is the best per prompt: no row beats it.
    let oracle = row("oracle (hindsight)")["mean_reward"].as_f64().unwrap();
    for r in rows {
        assert!(
            r["mean_reward"].as_f64().unwrap() <= oracle + 1e-12,
            "{} beats the oracle:\n{stdout}",
            r["policy"]
        );
    }
    for name in ["always none", "random", "always ffn:0.25", "oracle (expected value)"] {
        row(name);
    }
    // Without a `budget:` section every prompt has the one class `any` (the seed's reward); its
    // per-class row is the whole test.
    assert!(results.iter().all(|r| r["budget"] == "any"));
    let classes = summary["classes"].as_array().unwrap();
    assert_eq!(classes.len(), 1);
    assert_eq!(classes[0]["prompts"], 6);
    assert!((classes[0]["policy_mean"].as_f64().unwrap() - greedy_mean).abs() < 1e-12, "{stdout}");
    assert!(stdout.contains("of the expected-value oracle's gain over always none"), "{stdout}");
    assert!(test.join("plots/adaptation.png").is_file());
    let first = std::fs::read(test.join("summary.json")).unwrap();
    assert!(Command::new(env!("CARGO_BIN_EXE_casrap"))
        .arg("report")
        .arg(&test)
        .status()
        .unwrap()
        .success());
    assert_eq!(
        std::fs::read(test.join("summary.json")).unwrap(),
        first,
        "casrap report changed the test summary"
    );
}

#[test]
fn a_killed_actor_restarts_and_continues_its_sequence_while_the_rest_go_on() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), 30, "");
    let (mut learner, url) = learner(tmp.path(), &cfg, "127.0.0.1:0");
    let mut a0 = actor(tmp.path(), &url, &cfg, "actor-0", 15);
    let mut a1 = actor(tmp.path(), &url, &cfg, "actor-1", 15);
    wait_until("actor-1 to store 3 episodes", Duration::from_secs(120), || {
        durable(&url, "actor-1") >= 3
    });
    a1.signal("KILL").unwrap();
    a1.wait_timeout(Duration::from_secs(10)).unwrap().expect("killed actor still running");
    let killed_at = durable(&url, "actor-1");
    let before = durable(&url, "actor-0");
    wait_until("actor-0 to go on without actor-1", Duration::from_secs(60), || {
        durable(&url, "actor-0") >= (before + 2).min(15)
    });
    assert_eq!(durable(&url, "actor-1"), killed_at, "a killed actor's count moved");
    let mut a1 = actor(tmp.path(), &url, &cfg, "actor-1", 15);
    let s0 = finish(&mut a0);
    let s1 = finish(&mut a1);
    assert_eq!(s0["resumed_after"], 0);
    assert!(
        s1["resumed_after"].as_u64().unwrap() >= killed_at,
        "restart resumed after {} (stored: {killed_at})",
        s1["resumed_after"]
    );
    assert!(learner.stop(Duration::from_secs(30)).unwrap().success(), "{}", learner.log_tail(20));
    let stored = run_records::from_store(&tmp.path().join("learner"), 1_000_000).unwrap();
    run_records::check_complete(
        &stored,
        &[("actor-0".to_string(), 15), ("actor-1".to_string(), 15)].into(),
    )
    .unwrap();
}

#[test]
fn actors_survive_a_learner_crash_and_lose_nothing_acknowledged_or_buffered() {
    let tmp = tempfile::tempdir().unwrap();
    // Trajectories of two episodes, so `next_state` links episodes across the crash too.
    let cfg = config(tmp.path(), 30, "");
    let text =
        std::fs::read_to_string(&cfg).unwrap().replace("threads: 1}", "threads: 1, horizon: 2}");
    std::fs::write(&cfg, text).unwrap();
    let (mut first, url) = learner(tmp.path(), &cfg, "127.0.0.1:0");
    let addr = url.trim_start_matches("http://").to_string();
    let mut a0 = actor(tmp.path(), &url, &cfg, "actor-0", 15);
    let mut a1 = actor(tmp.path(), &url, &cfg, "actor-1", 15);
    wait_until("4 episodes stored", Duration::from_secs(120), || {
        status(&url).is_some_and(|s| s.transitions_stored >= 4)
    });
    let acknowledged = status(&url).unwrap().transitions_stored;
    first.signal("KILL").unwrap();
    first.wait_timeout(Duration::from_secs(10)).unwrap().expect("killed learner still running");
    // The actors keep running episodes into their outboxes while the learner is down.
    std::thread::sleep(Duration::from_secs(2));
    let (mut second, url2) = learner(tmp.path(), &cfg, &addr);
    assert_eq!(url2, url);
    assert!(
        status(&url).unwrap().transitions_stored >= acknowledged,
        "acknowledged transitions lost in the crash"
    );
    let s0 = finish(&mut a0);
    let s1 = finish(&mut a1);
    assert!(
        s0["reconnects"].as_u64().unwrap() + s1["reconnects"].as_u64().unwrap() >= 1,
        "no actor reconnected: {s0} {s1}"
    );
    assert!(second.stop(Duration::from_secs(30)).unwrap().success(), "{}", second.log_tail(20));
    let stored = run_records::from_store(&tmp.path().join("learner"), 1_000_000).unwrap();
    run_records::check_complete(
        &stored,
        &[("actor-0".to_string(), 15), ("actor-1".to_string(), 15)].into(),
    )
    .unwrap();
    // horizon 2: odd seqs continue into the next episode's state, even seqs (and the last) end one.
    let replay =
        casrap_store::replay::Replay::open(&tmp.path().join("learner/replay"), 1_000_000).unwrap();
    let mut by_actor: BTreeMap<String, BTreeMap<u64, casrap_common::rl::Transition>> =
        BTreeMap::new();
    for r in replay.records().unwrap() {
        by_actor.entry(r.actor).or_default().insert(r.transition.seq, r.transition);
    }
    for (actor, ts) in &by_actor {
        for (seq, t) in ts {
            let last = *seq == 15;
            assert_eq!(t.done, seq % 2 == 0 || last, "{actor} seq {seq}");
            if !t.done {
                assert_eq!(
                    t.next_state,
                    ts[&(seq + 1)].state,
                    "{actor} seq {seq}: next_state is not the next episode's state"
                );
            }
        }
    }
}

#[test]
fn a_bad_config_fails_before_anything_starts_and_names_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), 4, "reward: {alpha: fast}");
    // A user's RUST_BACKTRACE=1 does not bury the message under a backtrace.
    let out = Command::new(env!("CARGO_BIN_EXE_casrap"))
        .env("HF_HUB_OFFLINE", "1")
        .env("RUST_BACKTRACE", "1")
        .env_remove("RUST_LIB_BACKTRACE")
        .args(["run", cfg.to_str().unwrap(), "--out"])
        .arg(tmp.path().join("runs"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("error: ") && stderr.contains("run.yaml: reward.alpha: invalid type"),
        "{stderr}"
    );
    assert!(!stderr.to_lowercase().contains("backtrace"), "{stderr}");
    assert!(
        !tmp.path().join("runs").exists(),
        "a run folder was made for a config that does not parse"
    );
}

#[test]
fn a_prompt_without_a_budget_class_fails_before_anything_starts_and_names_the_row() {
    let tmp = tempfile::tempdir().unwrap();
    let prompts = tmp.path().join("prompts.csv");
    std::fs::write(
        &prompts,
        "prompt,category,budget\nWhat is a list?,q,strict\nWhat is a dict?,q,lenient\nWhat is a set?,q,loose\n",
    )
    .unwrap();
    let column = format!(
        "budget: {{assign: column, classes: [{{name: strict, limit: 0.02}}, {{name: lenient}}]}}\n\
         actors: {{prompts: {}}}\n",
        prompts.display()
    );
    // The `actors:` line of the base config is replaced by the one naming the prompts.
    let base = std::fs::read_to_string(config(tmp.path(), 4, "")).unwrap();
    let base: String =
        base.lines().filter(|l| !l.starts_with("actors:")).map(|l| format!("{l}\n")).collect();
    for (extra, want) in [
        (
            column.clone(),
            "prompts.csv:4: budget `loose` is not one of the classes (strict, lenient)",
        ),
        (
            column.replace("assign: column", "assign: dependency, from_dependency: {high: strict}"),
            "prompts.csv:2: context_dependency `` has no class",
        ),
    ] {
        let cfg = tmp.path().join("budget.yaml");
        std::fs::write(&cfg, format!("{base}{extra}")).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_casrap"))
            .env("HF_HUB_OFFLINE", "1")
            .args(["run", cfg.to_str().unwrap(), "--out"])
            .arg(tmp.path().join("runs"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains(want), "wanted `{want}`:\n{stderr}");
        assert!(!tmp.path().join("runs").exists(), "a run folder was made: {stderr}");
    }
}

#[test]
fn a_failing_actor_fails_the_run_with_its_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), 4, "model: models/no-such-model");
    let out = Command::new(env!("CARGO_BIN_EXE_casrap"))
        .env("HF_HUB_OFFLINE", "1")
        .args(["run", cfg.to_str().unwrap(), "--out"])
        .arg(tmp.path().join("runs"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("actor-0 failed (exit code 1)") && stderr.contains("no-such-model"),
        "{stderr}"
    );
    assert!(stderr.contains("the run failed"), "{stderr}");
}

#[test]
fn an_actor_with_another_action_set_is_refused_and_the_learner_logs_the_difference() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), 4, "");
    let other = tmp.path().join("other.yaml");
    std::fs::write(
        &other,
        std::fs::read_to_string(&cfg).unwrap().replace("window: 16", "window: 32"),
    )
    .unwrap();
    let (mut learner, url) = learner(tmp.path(), &cfg, "127.0.0.1:0");
    let mut a = actor(tmp.path(), &url, &other, "odd", 2);
    let status =
        a.wait_timeout(Duration::from_secs(120)).unwrap().expect("refused actor still running");
    assert!(!status.success());
    let log = a.failure();
    assert!(log.contains("registration refused") && log.contains("is not the learner's"), "{log}");
    // The difference is in the learner's log, not handed to whoever registers.
    assert!(!log.contains("kv_window:4+16"), "the refusal names the learner's action: {log}");
    assert!(learner.stop(Duration::from_secs(30)).unwrap().success());
    let learner_log = learner.log_tail(400);
    assert!(
        learner_log.contains("kv_window:4+32") && learner_log.contains("kv_window:4+16"),
        "{learner_log}"
    );
    assert_eq!(run_records::from_store(&tmp.path().join("learner"), 1_000_000).unwrap().len(), 0);
}

/// The live children of `pid` (every thread's).
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        out.extend(text.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
    }
    out
}

/// Gone, or a zombie nobody reaps yet (it runs nothing any more).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next()) == Some("Z")
        }
    }
}

#[test]
fn a_sigkilled_casrap_leaves_no_learner_or_actor_running() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), 100_000, "");
    let mut casrap = Command::new(env!("CARGO_BIN_EXE_casrap"))
        .env("HF_HUB_OFFLINE", "1")
        .args(["run", cfg.to_str().unwrap(), "--out"])
        .arg(tmp.path().join("runs"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = casrap.id();
    wait_until("the learner and both actors", Duration::from_secs(120), || {
        children(pid).len() >= 3
    });
    let kids = children(pid);
    casrap.kill().unwrap();
    casrap.wait().unwrap();
    let t = Instant::now();
    wait_until("the orphaned learner and actors to stop", Duration::from_secs(30), || {
        kids.iter().all(|&k| gone(k))
    });
    println!(
        "{} orphans stopped {:.1} s after casrap was killed",
        kids.len(),
        t.elapsed().as_secs_f64()
    );
}

/// A test-mode measuring process whose orchestrator is gone (`casrap test` killed) stops at once
/// instead of measuring the whole split on its own.
#[test]
fn an_orphaned_test_mode_process_stops_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), 10, "");
    let features = casrap_common::state::FEATURES.len();
    let policy = casrap_common::qnet::QNet::new(&[features, 8, 5], 0);
    let policy_path = tmp.path().join("policy.bin");
    std::fs::write(&policy_path, policy.encode()).unwrap();
    let results = tmp.path().join("results.jsonl");
    let t = Instant::now();
    // Its recorded orchestrator (pid 1) is not its parent: orphaned from the start.
    let out = Command::new(procs::locate("casrap-actor").unwrap())
        .env(casrap_common::signals::PARENT_ENV, "1")
        .env("HF_HUB_OFFLINE", "1")
        .args(["test", "--threads", "1", "--config"])
        .arg(&cfg)
        .arg("--policy")
        .arg(&policy_path)
        .arg("--out")
        .arg(&results)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("test mode stopped"), "{stderr}");
    let measured = std::fs::read_to_string(&results).map_or(0, |t| t.lines().count());
    println!("stopped after {:.1} s with {measured} prompts measured", t.elapsed().as_secs_f64());
    assert!(t.elapsed() < Duration::from_secs(60) && measured < 50, "{measured} prompts measured");
}
