"""Trees as they come: files reached twice (symlinks, hard links, overlapping globs) are
served once with a warning naming them, or refused when asked; bad files (not UTF-8,
sockets) fail the open by default, naming the flag and the keyword that help, or are
skipped and listed with ``on_bad_file="skip"`` / ``--skip-bad-files``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from conftest import REPO
from mmap_batcher import DuplicateInputError, InvalidUtf8Error, MmapBatcher, SpecialFileError

CLI = str(REPO / "target" / "debug" / "mmap-batcher")


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "src"
    (root / "a" / "deep").mkdir(parents=True)
    (root / "b").mkdir()
    for i, d in enumerate(["a", "a/deep", "b"]):
        for j in range(3):
            (root / d / f"f{j}.c").write_text("".join(f"{d} {j} line {k}\n" for k in range(5 + i)))
    os.symlink(root / "a" / "f0.c", root / "b" / "link.c")  # a file reached twice
    os.link(root / "b" / "f1.c", root / "b" / "hard.c")  # a hard link
    os.symlink(root / "a" / "deep", root / "b" / "deep-link")  # a directory reached twice
    return root


def unique_lines(root):
    seen, n = set(), 0
    for p in root.rglob("*.c"):
        st = p.stat()
        if p.is_file() and (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            n += p.read_bytes().count(b"\n")
    return n


def test_files_reached_twice_are_served_once(tree):
    glob = str(tree / "**" / "*.c")
    with pytest.warns(RuntimeWarning, match=r"reached twice served once: .*link\.c \(= .*f0\.c\)"):
        mmb = MmapBatcher([glob, str(tree / "a" / "f0.c")], batch_size=4, shuffle=False, ignore_leftovers=False, index_cache=False)
    assert mmb.num_lines == unique_lines(tree)
    assert len({os.stat(p).st_ino for p in mmb.paths}) == len(mmb.paths)
    assert sum(len(b) for b in mmb) == mmb.num_lines
    with pytest.raises(DuplicateInputError, match="twice"):
        MmapBatcher(glob, on_duplicate_file="error", index_cache=False)


def test_cli_counts_the_same_and_can_refuse(tree):
    glob = str(tree / "**" / "*.c")
    out = subprocess.run([CLI, "count", "--no-index-cache", glob], capture_output=True, text=True, check=True)
    assert out.stdout.startswith(f"{unique_lines(tree)} kept lines"), out.stdout
    assert "reached twice served once" in out.stderr
    refused = subprocess.run([CLI, "count", "--no-index-cache", "--error-on-duplicate-files", glob], capture_output=True, text=True)
    assert refused.returncode != 0 and "given twice" in refused.stderr


@pytest.fixture
def with_bad_files(tree):
    (tree / "b" / "logo.c").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe binary\n")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tree / "a" / "server.c"))
    yield tree
    sock.close()


def test_bad_files_fail_by_default_and_say_what_helps(with_bad_files):
    with pytest.raises(InvalidUtf8Error, match=r"logo\.c.*--binary / binary=True.*--skip-bad-files / on_bad_file=\"skip\""):
        list(MmapBatcher(str(with_bad_files / "b" / "*.c"), batch_size=2, index_cache=False, output="arrow"))
    with pytest.raises(SpecialFileError, match="server.c"):
        MmapBatcher(str(with_bad_files / "a" / "*.c"), index_cache=False)


def test_bad_files_skipped_and_listed(with_bad_files):
    glob = str(with_bad_files / "**" / "*.c")
    with pytest.warns(RuntimeWarning, match=r"2 file\(s\) skipped"):
        mmb = MmapBatcher(glob, on_bad_file="skip", batch_size=4, index_cache=False)
    skipped = sorted(os.path.basename(p) for p, _ in mmb.skipped_files)
    assert skipped == ["logo.c", "server.c"]
    assert mmb.num_lines == unique_lines(with_bad_files) - 3  # logo.c's three lines
    assert all(os.path.basename(p) not in skipped for p in mmb.paths)
    assert sum(len(b) for b in mmb) > 0
    # As bytes, the image is served; the socket is still skipped.
    with pytest.warns(RuntimeWarning, match=r"1 file\(s\) skipped"):
        raw = MmapBatcher(glob, on_bad_file="skip", binary=True, index_cache=False)
    assert raw.num_lines == unique_lines(with_bad_files)


def test_an_epoch_without_a_batch_is_said(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("".join(f"{i}\n" for i in range(90)))
    with pytest.warns(RuntimeWarning, match="90 kept lines make no full batch of 100"):
        mmb = MmapBatcher(str(path), index_cache=False)
    assert mmb.num_batches == 0


def test_cli_skip_bad_files_and_info(with_bad_files):
    glob = str(with_bad_files / "**" / "*.c")
    failed = subprocess.run([CLI, "count", "--no-index-cache", glob], capture_output=True, text=True)
    assert failed.returncode != 0 and "server.c" in failed.stderr
    info = subprocess.run([CLI, "info", "--no-index-cache", "--skip-bad-files", glob], capture_output=True, text=True, check=True)
    assert "skipped: 2 files" in info.stdout and "logo.c (skipped)" in info.stdout, info.stdout
    assert "--skip-bad-files" in info.stderr


def test_a_glob_or_a_list_keeps_the_file_column_for_one_match(tmp_path):
    import polars as pl

    from mmap_batcher import scan_lines

    (tmp_path / "only.txt").write_text("a\nb\nc\n")
    single = MmapBatcher(str(tmp_path / "only.txt"), batch_size=3, index_cache=False)
    assert "file" not in single.columns
    for paths in (str(tmp_path / "*.txt"), [str(tmp_path / "only.txt")]):
        mmb = MmapBatcher(paths, batch_size=3, index_cache=False)
        assert mmb.columns[-1] == "file"
        assert pl.DataFrame(mmb.epoch(0).batch(0))["file"].to_list() == [str(tmp_path / "only.txt")] * 3
    assert "file" in scan_lines(str(tmp_path / "*.txt"), index_cache=False).collect_schema()
    sql = subprocess.run([CLI, "sql", "--no-index-cache", "--format", "csv", str(tmp_path / "*.txt"),
                          "SELECT count(DISTINCT file) AS n FROM lines"], capture_output=True, text=True, check=True)
    assert sql.stdout.split() == ["n", "1"]


def test_cli_raises_its_soft_descriptor_limit(tmp_path):
    # 300 files, batches of 100 lines from up to 100 files each, several batches in flight:
    # more descriptors than a soft limit of 64 allows. The CLI lifts its soft limit to the
    # hard one (1024 here), so every command serves the whole corpus.
    d = tmp_path / "many"
    d.mkdir()
    for i in range(300):
        (d / f"f{i:03d}.txt").write_text(f"f{i} a\nf{i} b\nf{i} c\n")
    glob = str(d / "*.txt")
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 1024:
        pytest.skip(f"a hard descriptor limit of {hard} leaves nothing to raise to")
    script = (f'ulimit -Sn 64 && ulimit -Hn 1024 && "{CLI}" ipc --file --seed 1 --keep-leftovers -o "{tmp_path}/out.arrow" "{glob}"'
              f' && "{CLI}" batches --seed 1 --keep-leftovers "{glob}" | grep -c "^\\["')
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, MMAP_BATCHER_CACHE_DIR=str(tmp_path / "cache")))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["9"]  # 900 lines in batches of 100
    import pyarrow as pa

    assert pa.ipc.open_file(str(tmp_path / "out.arrow")).read_all().num_rows == 900


def test_info_says_what_the_rules_skip(tmp_path):
    # C code: `#include` lines are comments under the default rules; info says so.
    src = tmp_path / "x.c"
    src.write_text("// header\n#include <stdio.h>\n#define N 3\n\nint main(void) {\n   \n  return N;\n}\n")
    out = subprocess.run([CLI, "info", "--header-lines", "1", str(src)], capture_output=True, text=True, check=True).stdout
    assert "skipped:     1 header, 2 comment (starting with '#'; --no-comment-char serves them), 2 blank" in out, out
    assert "3 kept lines, 8 physical lines" in out
    assert list(tmp_path.iterdir()) == [src]  # and info wrote no index file


def test_info_on_a_fifo_does_not_read_it_twice(tmp_path):
    fifo = tmp_path / "lines.fifo"
    os.mkfifo(fifo)
    info = subprocess.Popen([CLI, "info", str(fifo)], stdout=subprocess.PIPE, text=True)
    with open(fifo, "w") as w:  # one writer: the open spools it; a second read would wait forever
        w.write("a\nb\n")
    out, _ = info.communicate(timeout=30)
    assert info.returncode == 0 and "2 kept lines" in out


MAPPED_TREE = r'''
import os, resource, sys
from mmap_batcher import FileChangedError, MmapBatcher
root, = sys.argv[1:]
# A soft descriptor limit of 64 for 300 files: mapped files keep no descriptor.
resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
mmb = MmapBatcher(os.path.join(root, "*.txt"), batch_size=50, seed=1, io="cached", index_cache=False)
with open("/proc/self/maps") as m:
    mapped = {line.split()[-1] for line in m if root in line}
fds = len(os.listdir("/proc/self/fd"))
lines = [l for b in mmb.epoch(0).batches() for l in b]
print(len(mapped), fds, len(lines), len(set(lines)))
ep = mmb.epoch(1).batches()
next(ep)
victim = os.path.join(root, "f123.txt")
with open(victim, "r+b") as f:  # the same size, a byte changed: only a watch or a stat sees it
    f.write(b"X")
try:
    for _ in ep:
        pass
    print("unseen")
except FileChangedError as e:
    print("changed", "f123.txt" in str(e))
'''


def test_a_tree_past_the_descriptor_limit_stays_mapped_and_checked(tmp_path):
    for i in range(300):
        (tmp_path / f"f{i:03d}.txt").write_text("".join(f"f{i} line {k}\n" for k in range(4)))
    out = subprocess.run([sys.executable, "-c", MAPPED_TREE, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    counts, changed = out.stdout.split("\n")[:2]
    mapped, fds, served, distinct = map(int, counts.split())
    assert mapped == 300  # every file mapped at once
    assert fds < 40  # and not one descriptor each
    assert served == distinct == 1200
    assert changed == "changed True", out.stdout


FORKED = r'''
import os, sys
from mmap_batcher import FileChangedError, MmapBatcher
root, = sys.argv[1:]
mmb = MmapBatcher(os.path.join(root, "*.txt"), batch_size=12, seed=1, io="cached", index_cache=False)
ep = mmb.epoch(0)
ready_r, ready_w = os.pipe()
pid = os.fork()
if pid == 0:
    os.read(ready_r, 1)  # the parent has changed a file and drained the event
    try:
        ep.batch(0)
        os._exit(3)
    except FileChangedError:
        os._exit(0)
with open(os.path.join(root, "f0.txt"), "r+b") as f:
    f.write(b"X")
try:
    ep.batch(0)
    sys.exit("the parent missed the change")
except FileChangedError:
    pass
os.write(ready_w, b"x")
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
'''


def test_a_forked_child_sees_a_change_the_parent_already_read(tmp_path):
    # DataLoader workers are forked with the batcher: the inotify queue they inherit is
    # shared, and the parent drains it. The child must check by stat instead.
    for i in range(3):
        (tmp_path / f"f{i}.txt").write_text("".join(f"f{i} line {k}\n" for k in range(4)))
    out = subprocess.run([sys.executable, "-c", FORKED, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, (out.returncode, out.stdout, out.stderr[-2000:])
