//! The nsroot binary: everything is in the library's command layer (`nsroot::commands`).

fn main() -> std::process::ExitCode {
    nsroot::commands::main()
}
