//! Every kept input of every target, run through the target's check on
//! stable: the corpus (`corpus/TARGET/`, what the fuzzer learnt) and the
//! inputs that once broke something (`regressions/TARGET/`, one file each,
//! named after what it broke). tests/run runs this; tests/fuzz/run fuzzes.

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(here.join(dir).join(target)) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            if std::panic::catch_unwind(|| check(&data)).is_err() {
                panic!("{} fails its check", path.display());
            }
            n += 1;
        }
    }
    assert!(n > 0, "no kept inputs for {target}: tests/fuzz/run keeps them");
    eprintln!("{target}: {n} inputs");
}

/// One test per target, named after it.
macro_rules! replay_tests {
    ($($target:ident),*) => {$(
        #[test]
        fn $target() {
            replay(stringify!($target), pullgate_fuzz::$target);
        }
    )*};
}

replay_tests!(routes, access_log, user_agent, report_filter, token_scope);
