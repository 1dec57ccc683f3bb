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
    let out = out_path.to_str().unwrap();
    // The last partial batch of each epoch is in the stream unless dropped (10 lines: 3+3+3+1).
    let (ok, _, err) = run(&["ipc", EXAMPLE, "-o", out, "--batch-size", "3", "--epochs", "2", "--seed", "1"]);
    assert!(ok, "{err}");
    let rows: usize =
        arrow::ipc::reader::StreamReader::try_new(std::fs::File::open(&out_path).unwrap(), None).unwrap().map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 20);
    let (ok, _, err) = run(&["ipc", EXAMPLE, "-o", out, "--batch-size", "3", "--epochs", "2", "--seed", "1", "--drop-leftovers"]);
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

/// `--state-out` saves where the run is after each batch; a run killed with SIGKILL
/// resumes with `--resume`: the batches the state counts, then the resumed run's output,
/// equal an uninterrupted run.
#[test]
fn resume_after_sigkill() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.txt");
    let text: String = (0..3000).map(|i| format!("row {i}\n")).collect();
    std::fs::write(&file, text).unwrap();
    let args = |extra: &[&str]| {
        let mut a = vec!["batches", file.to_str().unwrap(), "--format", "jsonl", "--batch-size", "7", "--epochs", "3", "--seed", "5"];
        a.extend_from_slice(extra);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let whole = Command::new(env!("CARGO_BIN_EXE_mmap-batcher")).args(args(&[])).output().unwrap();
    let whole: Vec<String> = String::from_utf8(whole.stdout).unwrap().lines().map(String::from).collect();
    let state = dir.path().join("state.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mmap-batcher"))
        .args(args(&["--state-out", state.to_str().unwrap()]))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut got = Vec::new();
    // Read past the first epoch, then kill at once.
    while got.len() < 600 {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        got.push(line.trim_end().to_string());
    }
    child.kill().unwrap();
    child.wait().unwrap();
    for line in reader.lines() {
        got.push(line.unwrap());
    }
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    let per_epoch = 3000 / 7;
    let served = saved["epoch"].as_u64().unwrap() as usize * per_epoch + saved["done"].as_u64().unwrap() as usize;
    // The state counts the batches whose output was flushed: at most what was read.
    assert!(served >= 500 && served <= got.len(), "{served} of {}", got.len());
    let resumed = Command::new(env!("CARGO_BIN_EXE_mmap-batcher")).args(args(&["--resume", state.to_str().unwrap()])).output().unwrap();
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    let mut joined: Vec<String> = got[..served].to_vec();
    joined.extend(String::from_utf8(resumed.stdout).unwrap().lines().map(String::from));
    assert_eq!(joined, whole);
    // Another corpus, or options that change the order, are refused by name.
    let bad = Command::new(env!("CARGO_BIN_EXE_mmap-batcher"))
        .args(["batches", file.to_str().unwrap(), "--batch-size", "8", "--seed", "5", "--resume", state.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("batch_size"));
}

/// `count`, `info`, `line` and `index` answer from the index, and `--version` works.
#[test]
fn file_commands() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f.txt");
    std::fs::write(&file, "one\n# two\n\nfour\nfive").unwrap();
    let f = file.to_str().unwrap();
    let (ok, out, _) = run(&["count", f]);
    assert!(ok && out.trim() == "3 kept lines, 5 physical lines", "{out}");
    let (ok, out, _) = run(&["line", f, "2", "5", "1"]);
    assert!(ok && out == "# two\nfive\none\n", "{out:?}");
    let (ok, out, _) = run(&["line", f, "--offset", "12"]);
    assert!(ok && out == "four\n", "{out:?}");
    let (ok, _, err) = run(&["line", f, "9"]);
    assert!(!ok && err.contains("no line 9"), "{err}");
    let (ok, out, _) = run(&["index", f]);
    assert!(ok && out.contains("3 lines") && out.contains(".mmbi"), "{out}");
    let (ok, out, _) = run(&["info", f]);
    assert!(ok && out.contains("valid, reused") && out.contains("UTF-8"), "{out}");
    let (ok, out, _) = run(&["--version"]);
    assert!(ok && out.starts_with("mmap-batcher "), "{out}");
}

#[test]
fn compressed_files_and_compressed_standard_input() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("f.txt.gz");
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b"one\n# two\n\nfour\nfive").unwrap();
    let bytes = e.finish().unwrap();
    std::fs::write(&gz, &bytes).unwrap();
    let (ok, out, _) = run(&["count", gz.to_str().unwrap()]);
    assert!(ok && out.trim() == "3 kept lines, 5 physical lines", "{out}");
    let (ok, out, _) = run(&["line", gz.to_str().unwrap(), "5"]);
    assert!(ok && out == "five\n", "{out:?}");
    // `cat f.gz | mmap-batcher count -`: standard input is decompressed too.
    let mut child = Command::new(env!("CARGO_BIN_EXE_mmap-batcher"))
        .args(["count", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "3 kept lines, 5 physical lines");
    // A truncated file: exit 1 with the file and the format named.
    let cut = dir.path().join("cut.gz");
    std::fs::write(&cut, &bytes[..bytes.len() - 9]).unwrap();
    let (ok, _, err) = run(&["count", cut.to_str().unwrap()]);
    assert!(!ok && err.contains("cut.gz: gzip:"), "{err}");
}
