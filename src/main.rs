fn main() -> std::process::ExitCode {
    eqopt::cli::main()
}
