//! Every machine-readable output validates against its schema in schemas/:
//! `vserver-stat --json`, `vserver NAME status --json` (running, stopped),
//! `vlimit --stats --json`, `vhashify --json` and `vserver-info --json`,
//! taken from the real binaries with a running busybox guest. The schemas
//! allow no unknown keys, so a renamed key fails here.

use std::path::PathBuf;

use serde_json::Value;
use vserver_rs_tests::guest::World;
use vserver_rs_tests::{describe, require_busybox, require_root, run};

fn schema_url(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas").join(name);
    format!("file://{}", p.display())
}

/// Validates `doc` against schemas/`name`; the error lists every violation.
fn validate(name: &str, doc: &Value) -> Result<(), String> {
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    let index = compiler.compile(&schema_url(name), &mut schemas).map_err(|e| format!("schema {name}: {e:#}"))?;
    schemas.validate(doc, index).map_err(|e| format!("{name}: {e:#}\n{doc:#}"))
}

fn json_of(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", describe(out)))
}

#[test]
fn every_json_output_matches_its_schema() {
    if !require_root() || !require_busybox() {
        return;
    }
    let w = World::new("schemas");
    let (g, _) = w.busybox_guest("schema");
    std::fs::create_dir_all(w.guest_conf(&g).join("apps/vunify")).unwrap();
    let stopped = json_of(&w.vserver(&[&g, "status", "--json"]));
    w.ok(&g, &["start"]);

    let mut outputs: Vec<(&str, Value)> = vec![("vserver-status.json", stopped)];
    outputs.push(("vserver-status.json", json_of(&w.vserver(&[&g, "status", "--json"]))));
    let stat = run(w.cmd("vserver-stat").arg("--json"));
    assert!(stat.status.success(), "{}", describe(&stat));
    outputs.push(("vserver-stat.json", json_of(&stat)));
    let vlimit = run(w.cmd("vlimit").args(["-c", &g, "--stats", "--json"]));
    assert!(vlimit.status.success(), "{}", describe(&vlimit));
    outputs.push(("vlimit-stats.json", json_of(&vlimit)));
    let hashify = run(w.cmd("vhashify").args(["--json", "-n", &g]));
    assert!(hashify.status.success(), "{}", describe(&hashify));
    outputs.push(("vhashify.json", json_of(&hashify)));
    outputs.push(("vserver-info.json", json_of(&run(w.cmd("vserver-info").arg("--json")))));

    let failures: Vec<String> = outputs.iter().filter_map(|(schema, doc)| validate(schema, doc).err()).collect();
    assert!(failures.is_empty(), "outputs that do not match their schemas:\n{}", failures.join("\n\n"));

    // The same guest is `name` everywhere.
    let stat = &outputs[2].1;
    assert!(stat["contexts"].as_array().unwrap().iter().any(|c| c["name"] == g.as_str()));
    assert_eq!(outputs[1].1["name"], g.as_str());
    assert_eq!(outputs[3].1["name"], g.as_str());
    w.ok(&g, &["stop"]);
}

#[test]
fn the_schemas_refuse_renamed_keys_and_strings_for_numbers() {
    let good = serde_json::json!({"name": "web1", "status": "running", "xid": 101, "init_pid": 10, "monitor_pid": 9,
        "started_at_seconds": 1700000000, "uptime_seconds": 5});
    validate("vserver-status.json", &good).unwrap();
    let mut renamed = good.clone();
    renamed["guest"] = renamed["name"].take();
    renamed.as_object_mut().unwrap().remove("name");
    assert!(validate("vserver-status.json", &renamed).is_err());
    let mut stringly = good.clone();
    stringly["xid"] = "101".into();
    assert!(validate("vserver-status.json", &stringly).is_err());
    let old_stat = serde_json::json!({"contexts": [{"xid": 0, "name": "root server", "processes": 1, "vsz_bytes": 1,
        "rss_bytes": 1, "user_ms": 1, "system_ms": 1, "uptime_ms": 1}]});
    assert!(validate("vserver-stat.json", &old_stat).is_err(), "units belong in the key names");
}
