fn main() -> std::process::ExitCode {
    ocf::dispatch::main(&tusk_pgpool::Pgpool)
}
