fn main() -> std::process::ExitCode {
    ocf::dispatch::main(&tusk_postgresql::AGENT, tusk_postgresql::run)
}
