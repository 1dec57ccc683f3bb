//! The `mmap-batcher` command line (see `mmap_batcher::cli`).

/// mimalloc rather than glibc's malloc: a stream's batches are built on builder threads and
/// freed on the consumer's, and glibc's per-thread arenas serve such frees under a lock (on
/// 2 cores a stream of 1 builder and the consumer served 1.6× one thread with glibc, 1.9×
/// with mimalloc: the benchmarks doc, "Read-ahead"). DataFusion's own CLI uses it too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    mmap_batcher::cli::main(std::env::args_os())
}
