//! The `acgs` binary.

fn main() -> std::process::ExitCode {
    acgs_cli::main_entry()
}
