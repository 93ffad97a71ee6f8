//! Scoring on a cluster: shards scored by separate processes and merged equal one scoring run,
//! and merging twice equals merging once.

use lens_inspect::project::{NewCandidate, Project};
use lens_inspect::survey::fixtures::synthetic_cutout;
use lens_inspect::survey::{ObjectSource, ObjectSpec};
use std::path::Path;
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lens-inspect"))
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    o
}

fn make_project(path: &Path, n: usize) {
    let mut p = Project::create_or_open(path).unwrap();
    let items: Vec<NewCandidate> = (0..n)
        .map(|k| {
            let c = synthetic_cutout(&format!("obj{k:03}"), 101, k as u64);
            NewCandidate::from_cutout(
                ObjectSpec::new(c.name.clone(), ObjectSource::File { path: "/x.fits".into() }),
                &c,
                true,
            )
        })
        .collect();
    p.insert_candidates(&items).unwrap();
}

#[test]
fn four_shards_merged_equal_one_scoring_run_and_merging_twice_equals_once() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.lensproj");
    let sharded = dir.path().join("sharded.lensproj");
    make_project(&whole, 40);
    make_project(&sharded, 40);
    ok(bin().args(["score", "--project"]).arg(&whole).output().unwrap());
    let expected = Project::open_existing(&whole).unwrap().latest_predictions().unwrap().1;
    assert_eq!(expected.len(), 40);

    // Four jobs at once, as a job array would run them, each reading the project read-only.
    let files: Vec<_> = (1..=4).map(|k| dir.path().join(format!("shard-{k}.json"))).collect();
    let jobs: Vec<_> = (1..=4)
        .map(|k| {
            bin()
                .args(["score", "--project"])
                .arg(&sharded)
                .args(["--shard", &format!("{k}/4"), "--shard-out"])
                .arg(&files[k - 1])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut j in jobs {
        assert!(j.wait().unwrap().success());
    }
    let sizes: Vec<usize> = files
        .iter()
        .map(|f| {
            serde_json::from_slice::<serde_json::Value>(&std::fs::read(f).unwrap()).unwrap()["scores"]
                .as_array()
                .unwrap()
                .len()
        })
        .collect();
    assert_eq!(sizes.iter().sum::<usize>(), 40, "every candidate in exactly one shard: {sizes:?}");
    assert!(sizes.iter().all(|&s| s > 0), "{sizes:?}");
    // The shard jobs wrote nothing into the project.
    assert!(Project::open_existing(&sharded).unwrap().latest_predictions().unwrap().0.is_none());

    // Three shards first: the fourth is reported missing (exit 3).
    let o =
        bin().args(["score", "merge"]).args(&files[..3]).arg("--project").arg(&sharded).arg("--json").output().unwrap();
    assert_eq!(o.status.code(), Some(3));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let missing: Vec<u64> = r["missing_shards"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(missing, vec![4]);
    // Then all four, and all four again.
    let merge = || {
        let o = ok(bin()
            .args(["score", "merge"])
            .args(&files)
            .arg("--project")
            .arg(&sharded)
            .arg("--json")
            .output()
            .unwrap());
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let first = merge();
    let p = Project::open_existing(&sharded).unwrap();
    let once = p.latest_predictions().unwrap();
    let versions_once = p.model_history().unwrap().len();
    drop(p);
    let second = merge();
    assert_eq!(first["versions"], second["versions"], "the same model version both times");
    let p = Project::open_existing(&sharded).unwrap();
    assert_eq!(p.latest_predictions().unwrap(), once, "merging twice equals merging once");
    assert_eq!(p.model_history().unwrap().len(), versions_once, "no second version");
    assert_eq!(versions_once, 1);

    // Scores equal the one-run scores, candidate by candidate (by name: ids are the same here,
    // both projects being made alike).
    let names = |p: &Project| {
        p.candidates().unwrap().into_iter().map(|c| (c.id, c.name)).collect::<std::collections::HashMap<_, _>>()
    };
    let whole_names = names(&Project::open_existing(&whole).unwrap());
    let shard_names = names(&p);
    let by_name = |scores: &std::collections::HashMap<i64, f32>, names: &std::collections::HashMap<i64, String>| {
        scores.iter().map(|(id, s)| (names[id].clone(), *s)).collect::<std::collections::BTreeMap<_, _>>()
    };
    let a = by_name(&expected, &whole_names);
    let b = by_name(&once.1, &shard_names);
    assert_eq!(a.len(), b.len());
    for (name, s) in &a {
        assert!((s - b[name]).abs() < 1e-5, "{name}: {s} vs {}", b[name]);
    }
}

#[test]
fn bad_shard_arguments_and_files_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("p.lensproj");
    make_project(&project, 2);
    let o = bin()
        .args(["score", "--project"])
        .arg(&project)
        .args(["--shard", "5/4", "--shard-out"])
        .arg(dir.path().join("s.json"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 <= K <= N"));
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{\"not\": 1}").unwrap();
    let o = bin().args(["score", "merge"]).arg(&junk).arg("--project").arg(&project).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("junk.json") && err.contains("not a shard file"), "{err}");
}

#[test]
fn the_slurm_script_runs_one_shard_per_array_task() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("p.lensproj");
    make_project(&project, 12);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/score_slurm.sh");
    for k in 1..=3 {
        // As SLURM would start task k of an array of 3 (without sbatch's own variables).
        let o = Command::new("bash")
            .arg(script)
            .env("PROJECT", &project)
            .env("LENS_INSPECT", env!("CARGO_BIN_EXE_lens-inspect"))
            .env("SLURM_ARRAY_TASK_ID", k.to_string())
            .env("SLURM_ARRAY_TASK_COUNT", "3")
            .env("SLURM_CPUS_PER_TASK", "1")
            .output()
            .unwrap();
        ok(o);
    }
    let shards = dir.path().join("shards");
    let files: Vec<_> = (1..=3).map(|k| shards.join(format!("shard-{k}-of-3.json"))).collect();
    assert!(files.iter().all(|f| f.exists()), "{:?}", std::fs::read_dir(&shards).unwrap().collect::<Vec<_>>());
    ok(bin().args(["score", "merge"]).args(&files).arg("--project").arg(&project).output().unwrap());
    assert_eq!(Project::open_existing(&project).unwrap().latest_predictions().unwrap().1.len(), 12);
}
