//! Where the program keeps its own files (the demo, the recent-projects list). This binary holds
//! one test, because it changes the process's environment.

use lens_inspect::demo::home_dir;
use std::path::PathBuf;

#[test]
#[cfg(target_os = "linux")]
fn the_data_folder_follows_xdg_and_ignores_empty_or_relative_values() {
    let home = tempfile::tempdir().expect("tmp");
    std::env::set_var("HOME", home.path());
    std::env::remove_var("LENS_INSPECT_HOME");
    let default = home.path().join(".local/share/lens-inspect");
    for (xdg, want) in [
        (None, default.clone()),
        (Some(""), default.clone()),
        (Some("relative/data"), default.clone()),
        (Some("/srv/data"), PathBuf::from("/srv/data/lens-inspect")),
    ] {
        match xdg {
            Some(v) => std::env::set_var("XDG_DATA_HOME", v),
            None => std::env::remove_var("XDG_DATA_HOME"),
        }
        assert_eq!(home_dir(), want, "XDG_DATA_HOME = {xdg:?}");
    }
    // LENS_INSPECT_HOME wins, unless it is empty.
    std::env::set_var("LENS_INSPECT_HOME", "/tmp/li-home");
    assert_eq!(home_dir(), PathBuf::from("/tmp/li-home"));
    std::env::set_var("LENS_INSPECT_HOME", "");
    assert_eq!(home_dir(), PathBuf::from("/srv/data/lens-inspect"));
}
