fn main() -> std::process::ExitCode {
    // The rebuild's detached worker (see rebuild.rs): no OCF action.
    if std::env::args().nth(1).as_deref() == Some(tusk_postgresql::rebuild::WORKER_ARG) {
        return tusk_postgresql::rebuild::worker_main();
    }
    ocf::dispatch::main(&tusk_postgresql::Postgresql)
}
