//! The `mmap-batcher` command line (see `mmap_batcher::cli`).

fn main() -> std::process::ExitCode {
    mmap_batcher::cli::main(std::env::args_os())
}
