//! The `mmap-batcher` binary, run as a real process.

use std::collections::HashSet;
use std::process::Command;

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mmap-batcher")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/numbers.txt");

/// The README's first command: 3 batches of 3 lines per epoch, a line of dashes after
/// each epoch, and (over a few epochs) not always the same leftover line.
#[test]
fn readme_example_shape() {
    let (ok, out, _) = run(&["batches", EXAMPLE, "--batch-size", "3", "--epochs", "4", "--seed", "5"]);
    assert!(ok);
    let kept: HashSet<String> = ["one", "two two", "three three three", "four", "five five", "six", "seven", "eight eight", "nine", "ten"]
        .iter()
        .map(|s| format!("b'{s}\\n'"))
        .collect();
    let mut leftovers = HashSet::new();
    for epoch in out.split_terminator(&format!("{}\n", "-".repeat(40))) {
        let batches: Vec<&str> = epoch.lines().collect();
        assert_eq!(batches.len(), 3, "{epoch}");
        let mut served = HashSet::new();
        for b in batches {
            let items: Vec<String> = b.trim_start_matches('[').trim_end_matches(']').split(", ").map(String::from).collect();
            assert_eq!(items.len(), 3);
            served.extend(items);
        }
        assert_eq!(served.len(), 9);
        assert!(served.is_subset(&kept), "{served:?}");
        leftovers.insert(kept.difference(&served).next().unwrap().clone());
    }
    assert!(leftovers.len() > 1, "the same leftover every epoch");
    // Reproducible with the same seed.
    let (_, again, _) = run(&["batches", EXAMPLE, "--batch-size", "3", "--epochs", "4", "--seed", "5"]);
    assert_eq!(out, again);
}

#[test]
fn jsonl_lines_match_their_line_numbers() {
    let (ok, out, _) = run(&["batches", EXAMPLE, "--batch-size", "4", "--keep-leftovers", "--format", "jsonl", "--seed", "1"]);
    assert!(ok);
    let file = std::fs::read_to_string(EXAMPLE).unwrap();
    let physical: Vec<&str> = file.lines().collect();
    let mut count = 0;
    for (i, line) in out.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["epoch"], 0);
        assert_eq!(v["batch"], i as u64);
        for (n, l) in v["line_numbers"].as_array().unwrap().iter().zip(v["lines"].as_array().unwrap()) {
            assert_eq!(physical[n.as_u64().unwrap() as usize - 1], l.as_str().unwrap());
            count += 1;
        }
    }
    assert_eq!(count, 10);
}

#[test]
fn unseeded_run_reports_its_seed() {
    let (ok, _, err) = run(&["batches", EXAMPLE, "--batch-size", "3"]);
    assert!(ok);
    assert!(err.contains("--seed "), "{err}");
}

#[test]
fn errors_name_the_file_and_fail() {
    let (ok, out, err) = run(&["batches", "/nonexistent/dir/corpus.txt"]);
    assert!(!ok && out.is_empty());
    assert!(err.contains("/nonexistent/dir/corpus.txt") && err.contains("no such file"), "{err}");
    let (ok, _, err) = run(&["batches", EXAMPLE, "--comment-char", "é"]);
    assert!(!ok && err.contains("ASCII"), "{err}");
    let (ok, _, err) = run(&["batches", EXAMPLE, "--batch-size", "0"]);
    assert!(!ok && err.contains("batch_size"), "{err}");
}

#[cfg(feature = "datafusion")]
#[test]
fn sql_prints_table_csv_and_json() {
    let q = "SELECT epoch, count(*) AS n FROM lines GROUP BY epoch ORDER BY epoch";
    let args = |fmt: &'static str| ["sql", EXAMPLE, q, "--batch-size", "3", "--epochs", "2", "--seed", "1", "--format", fmt];
    let (ok, out, err) = run(&args("csv"));
    assert!(ok, "{err}");
    // SQL sees every line: the last partial batch is kept by default.
    assert_eq!(out, "epoch,n\n0,10\n1,10\n");
    let (ok, out, _) = run(&args("table"));
    assert!(ok && out.contains("| epoch | n  |") && out.contains("| 1     | 10 |"), "{out}");
    let (ok, out, _) = run(&args("json"));
    assert!(ok);
    let rows: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows[1]["n"], 10);
    let (ok, _, err) = run(&["sql", EXAMPLE, "SELECT nope FROM lines"]);
    assert!(!ok && err.contains("nope"), "{err}");
}

#[test]
fn ipc_writes_a_stream_arrow_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("batches.arrows");
    let (ok, _, err) = run(&["ipc", EXAMPLE, "-o", out_path.to_str().unwrap(), "--batch-size", "3", "--epochs", "2", "--seed", "1"]);
    assert!(ok, "{err}");
    let reader = arrow::ipc::reader::StreamReader::try_new(std::fs::File::open(&out_path).unwrap(), None).unwrap();
    assert_eq!(reader.schema().field(0).data_type(), &arrow::datatypes::DataType::LargeUtf8);
    let batches: Vec<_> = reader.map(Result::unwrap).collect();
    assert_eq!(batches.len(), 6);
    assert!(batches.iter().all(|b| b.num_rows() == 3 && b.num_columns() == 5));
}

/// Under an address-space limit (`ulimit -v`, as on some shared clusters) the generous
/// reservation of index slots is refused; the index is then sized by counting lines first,
/// and every line is still served.
#[test]
fn indexes_under_an_address_space_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("limited.txt");
    let lines = 1_300_000;
    let text: String = (0..lines).map(|i| format!("line number {i} with some padding text here\n")).collect();
    std::fs::write(&path, &text).unwrap();
    // 8 bytes of slots per file byte (470 MiB here) do not fit under 400 MiB; the file,
    // the exact index and the threads' malloc arenas (64 MiB of address space each) do.
    let script = format!(
        "ulimit -v 409600 && exec '{}' batches '{}' --no-shuffle --keep-leftovers --batch-size 100000 --format jsonl --no-index-cache",
        env!("CARGO_BIN_EXE_mmap-batcher"),
        path.display()
    );
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let served: Vec<u64> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .flat_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["line_numbers"].as_array().unwrap().iter().map(|n| n.as_u64().unwrap()).collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(served, (1..=lines).collect::<Vec<u64>>());
}
